//! Test support shared by every Cutout suite (a dev-dependency only): tiny models built in code,
//! generated test images and the corpus of broken inputs every shell must reject with a clear
//! message, a local HTTP server standing in for the model hosts, one seeded RNG, and where the
//! real models are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cutout::Manifest;

mod corpus;
mod rng;
mod server;
pub mod tiny_model;
pub use corpus::*;
pub use rng::Rng;
pub use server::{Route, TestServer};
pub use tiny_model::TinyModel;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cutout-testkit is two levels down")
        .to_path_buf()
}

/// Runs the CLI binary `cli` (in its own tests, `env!("CARGO_BIN_EXE_cutout")`: cargo builds it)
/// in `cwd`, with a model cache of its own (`cwd/.cache`).
pub fn run_cli(cli: &str, cwd: &Path, args: &[&str]) -> Output {
    run_cli_with_env(cli, cwd, args, &[])
}

/// Like [`run_cli`], with extra environment variables.
pub fn run_cli_with_env(cli: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = cli_command(cli, cwd, args);
    for (key, value) in env {
        command.env(key, value);
    }
    checked(command.output().expect("the CLI starts"))
}

/// Like [`run_cli`], with `input` piped into its standard input.
pub fn run_cli_with_stdin(cli: &str, cwd: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cli_command(cli, cwd, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // Written from a thread: the CLI may answer (or refuse) before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("the CLI runs");
    let _ = writer.join();
    checked(output)
}

/// The command [`run_cli`] runs, for a test that needs to spawn it (to signal it, say).
pub fn cli_command(cli: &str, cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(cli);
    command
        .args(args)
        .current_dir(cwd)
        .env("CUTOUT_CACHE_DIR", cwd.join(".cache"))
        .env_remove("CUTOUT_MODEL_BASE_URL");
    command
}

fn checked(output: Output) -> Output {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "the CLI panicked:\n{stderr}");
    output
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh empty directory under target/e2e-tmp (kept after the run for inspection).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/e2e-tmp").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Directory of the shared fixtures (models, eval images), if this checkout has it beside it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CUTOUT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    dir.is_dir().then_some(dir)
}

/// The real IS-Net quint8 model: ../shared/models, else the copy `models/fetch-isnet.sh` assembled
/// from npm into target/models. `None` (and a loud message) when neither exists.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let candidates = [
        shared_dir().map(|d| d.join("models").join(file)),
        Some(workspace_root().join("target/models").join(file)),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "\n\n*** SKIPPING real-model test: {file} not found in ../shared/models or target/models.\n\
             *** Run models/fetch-isnet.sh to fetch it from npm. ***\n"
        );
    }
    found
}

/// The built-in manifest with every public host replaced by `server`, paths unchanged: the
/// stand-in for IMG.LY's CDN serves parts at `/@imgly/background-removal-data/<version>/dist/<sha256>`
/// and the one for Hugging Face files at `/<owner>/<repo>/resolve/main/<path>`, as the real hosts do.
pub fn manifest_on(server: &TestServer) -> Manifest {
    let mut manifest = Manifest::builtin();
    let local = |url: &str| {
        let path = url.splitn(4, '/').nth(3).unwrap_or("");
        format!("{}/{path}", server.base)
    };
    for entry in &mut manifest.models {
        entry.url = entry.url.as_deref().map(local);
        entry.parts_base_url = entry.parts_base_url.as_deref().map(local);
    }
    manifest
}

/// Serves `bytes` on `server` in the layout `manifest` gives model `id` (its parts, or its file).
pub fn serve_model(server: &TestServer, manifest: &Manifest, id: &str, bytes: &[u8]) {
    let entry = manifest.get(id).expect("a manifest id");
    let path_of = |url: &str| url[server.base.len()..].to_string();
    if let Some(url) = &entry.url {
        server.add(&path_of(url), Route::File(bytes.to_vec()));
    }
    let mut offset = 0;
    for part in &entry.parts {
        let base = entry.parts_base_url.as_deref().expect("parts have a base");
        let end = (offset + part.size as usize).min(bytes.len());
        server.add(
            &path_of(&format!("{base}{}", part.sha256)),
            Route::File(bytes[offset..end].to_vec()),
        );
        offset = end;
    }
}

/// Writes `manifest` as JSON into `dir` for `CUTOUT_MANIFEST`.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> String {
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(manifest).unwrap()).unwrap();
    path.display().to_string()
}
