//! How the CLI gets its models on a first run, with the public hosts' URL layouts reproduced on a
//! local server (no test reaches the internet): the licence shown before the download, models in
//! parts assembled and verified, trust on first download for files nobody pinned, and a clear
//! message for every host that refuses.

use std::fs;
use std::path::{Path, PathBuf};

use cutout::manifest::ModelPart;
use cutout::{sha256_hex, Manifest, ModelEntry};
use cutout_testkit::*;

/// Cargo builds the binary for its own integration tests.
const CLI: &str = env!("CARGO_BIN_EXE_cutout");
/// The exit code when the model cannot be found, downloaded, verified or loaded.
const MODEL_FAILED: i32 = 3;
use image::ImageFormat;

fn photo(dir: &Path) -> String {
    let path = dir.join("photo.png");
    fs::write(
        &path,
        encode(&red_square_on_blue(120, 90), ImageFormat::Png),
    )
    .unwrap();
    path.display().to_string()
}

/// A copy of the default entry for the tiny model, published in parts of `part_size` bytes on
/// the stand-in for IMG.LY's CDN.
fn tiny_in_parts(manifest: &Manifest, id: &str, bytes: &[u8], part_size: usize) -> ModelEntry {
    let mut entry = manifest.default_entry().clone();
    entry.id = id.into();
    entry.file = format!("{id}.onnx");
    entry.size = Some(bytes.len() as u64);
    entry.sha256 = Some(sha256_hex(bytes));
    entry.parts = bytes
        .chunks(part_size)
        .map(|chunk| ModelPart {
            sha256: sha256_hex(chunk),
            size: chunk.len() as u64,
        })
        .collect();
    entry
}

fn models_in_cache(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = fs::read_dir(dir.join(".cache/models")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e != "json") {
                found.push(entry.path());
            }
        }
    }
    found
}

/// The tiny model as the default, in three parts on the stand-in for IMG.LY's CDN.
struct PartsFixture {
    dir: PathBuf,
    input: String,
    server: TestServer,
    tiny: Vec<u8>,
    entry: ModelEntry,
    manifest_path: String,
}

fn parts_fixture(name: &str) -> PartsFixture {
    let dir = temp_dir(name);
    let input = photo(&dir);
    let server = TestServer::start();
    let tiny = TinyModel::default().onnx_bytes();
    let mut manifest = manifest_on(&server);
    let entry = tiny_in_parts(&manifest, "tiny-parts", &tiny, tiny.len() / 3 + 1);
    assert_eq!(entry.parts.len(), 3);
    manifest.models.push(entry.clone());
    manifest.default = entry.id.clone();
    serve_model(&server, &manifest, "tiny-parts", &tiny);
    let manifest_path = write_manifest(&dir, &manifest);
    PartsFixture {
        dir,
        input,
        server,
        tiny,
        entry,
        manifest_path,
    }
}

#[test]
fn a_model_in_parts_is_announced_assembled_verified_and_cached() {
    let PartsFixture {
        dir,
        input,
        server,
        tiny,
        entry,
        manifest_path,
    } = parts_fixture("downloads-parts");
    let env = [("CUTOUT_MANIFEST", manifest_path.as_str())];

    // No --model: the default, announced with its licence before the download.
    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "-o", "out.png"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "model tiny-parts:",
        "licence: AGPL-3.0",
        "(https://www.gnu.org/licenses/agpl-3.0.html)",
        "from:    http://127.0.0.1",
        "/@imgly/background-removal-data/1.4.5/dist/ (3 parts, each named by its sha256)",
        "into:",
        "downloaded once, then used offline",
    ] {
        assert!(err.contains(expected), "'{expected}' missing from:\n{err}");
    }
    let out_png = image::open(dir.join("out.png")).unwrap().to_rgba8();
    assert_eq!(out_png.dimensions(), (120, 90));
    assert_eq!(
        fs::read(dir.join(".cache/models/tiny-parts.onnx")).unwrap(),
        tiny,
        "the parts are assembled in order"
    );
    let first_part = format!(
        "/@imgly/background-removal-data/1.4.5/dist/{}",
        entry.parts[0].sha256
    );
    assert_eq!(server.hits(&first_part), 1);

    // Later runs use the cache: no request, no announcement.
    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "-o", "again.png"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("licence:"), "{}", stderr(&out));
    assert_eq!(server.hits(&first_part), 1);

    // Self-hosting: the assembled file into a directory a site owner uploads.
    let out = run_cli_with_env(
        CLI,
        &dir,
        &["models", "fetch", "tiny-parts", "--dir", "site/models"],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(dir.join("site/models/tiny-parts.onnx")).unwrap(),
        tiny
    );
    assert!(stdout(&out).contains("site/models/tiny-parts.onnx"));

    // ... which then serves as the mirror, file by file.
    let mirror = TestServer::start();
    mirror.add("/models/tiny-parts.onnx", Route::File(tiny.clone()));
    let other = temp_dir("downloads-parts-mirror");
    let mirror_base = mirror.url("/models");
    let out = run_cli_with_env(
        CLI,
        &other,
        &["-i", &input, "-o", "out.png"],
        &[
            ("CUTOUT_MANIFEST", manifest_path.as_str()),
            ("CUTOUT_MODEL_BASE_URL", mirror_base.as_str()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mirror.hits("/models/tiny-parts.onnx"), 1);
}

#[test]
fn a_wrong_or_cut_part_keeps_nothing_and_says_which_part() {
    let PartsFixture {
        dir,
        input,
        server,
        tiny,
        entry,
        manifest_path,
    } = parts_fixture("downloads-bad-parts");
    let base = "/@imgly/background-removal-data/1.4.5/dist/";
    let second = format!("{base}{}", entry.parts[1].sha256);
    let mut altered = tiny[entry.parts[0].size as usize..][..entry.parts[1].size as usize].to_vec();
    altered[7] ^= 1;
    server.add(&second, Route::File(altered));
    let env = [("CUTOUT_MANIFEST", manifest_path.as_str())];

    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "--model", "tiny-parts"], &env);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains("part 2 of 3") && err.contains(&entry.parts[1].sha256),
        "{err}"
    );
    assert!(models_in_cache(&dir).is_empty(), "nothing partial is kept");

    let body = tiny[entry.parts[0].size as usize..][..entry.parts[1].size as usize].to_vec();
    server.add(&second, Route::Cut { body, sent: 10 });
    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "--model", "tiny-parts"], &env);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    assert!(stderr(&out).contains("was cut after"), "{}", stderr(&out));
    assert!(models_in_cache(&dir).is_empty(), "nothing partial is kept");
}

#[test]
fn an_unpinned_model_is_trusted_on_first_download_and_a_changed_file_refused() {
    let dir = temp_dir("downloads-tofu");
    let input = photo(&dir);
    let server = TestServer::start();
    let tiny = TinyModel::default().onnx_bytes();
    let mut manifest = manifest_on(&server);
    let mut entry = manifest.default_entry().clone();
    entry.id = "tiny-unpinned".into();
    entry.file = "tiny-unpinned.onnx".into();
    entry.parts.clear();
    entry.parts_base_url = None;
    entry.size = None;
    entry.sha256 = None;
    entry.url = Some(server.url("/owner/repo/resolve/main/model.onnx"));
    manifest.models.push(entry);
    server.add(
        "/owner/repo/resolve/main/model.onnx",
        Route::File(tiny.clone()),
    );
    let manifest_path = write_manifest(&dir, &manifest);
    let env = [("CUTOUT_MANIFEST", manifest_path.as_str())];
    let run = || {
        run_cli_with_env(
            CLI,
            &dir,
            &[
                "-i",
                &input,
                "-o",
                "out.png",
                "--force",
                "--model",
                "tiny-unpinned",
            ],
            &env,
        )
    };

    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let hash = sha256_hex(&tiny);
    assert!(
        stderr(&out).contains("no pinned sha256"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("recorded its sha256 {hash}")),
        "{}",
        stderr(&out)
    );
    let record = fs::read_to_string(dir.join(".cache/models/trusted-downloads.json")).unwrap();
    assert!(record.contains(&hash), "{record}");

    // The host now serves another file: once the cached copy is gone, it is refused.
    let mut changed = tiny.clone();
    changed.extend_from_slice(b"tampered");
    server.add(
        "/owner/repo/resolve/main/model.onnx",
        Route::File(changed.clone()),
    );
    fs::remove_file(dir.join(".cache/models/tiny-unpinned.onnx")).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains(&hash) && err.contains(&sha256_hex(&changed)),
        "{err}"
    );
    assert!(err.contains("trusted on first download"), "{err}");
    assert!(
        models_in_cache(&dir).is_empty(),
        "the changed file is not kept"
    );
}

#[test]
fn hosts_that_refuse_get_messages_that_name_the_problem_and_the_fix() {
    let dir = temp_dir("downloads-refused");
    let input = photo(&dir);
    let server = TestServer::start();
    let manifest = manifest_on(&server);
    server.add(
        "/briaai/RMBG-1.4/resolve/main/onnx/model_quantized.onnx",
        Route::Status(401),
    );
    let manifest_path = write_manifest(&dir, &manifest);
    let env = [("CUTOUT_MANIFEST", manifest_path.as_str())];

    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "--model", "rmbg-1.4"], &env);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    for expected in [
        "HTTP 401",
        "gated",
        "CUTOUT_MODEL_BASE_URL",
        "cutout models list",
        "licence: bria-rmbg-1.4",
    ] {
        assert!(err.contains(expected), "'{expected}' missing from:\n{err}");
    }

    // Not served at all (moved or removed upstream).
    let out = run_cli_with_env(CLI, &dir, &["-i", &input, "--model", "ormbg"], &env);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 404") && err.contains("no such file"),
        "{err}"
    );
    assert!(
        err.contains("/schirrmacher/ormbg/resolve/main/ormbg.onnx"),
        "{err}"
    );
    assert!(models_in_cache(&dir).is_empty());
}

/// With no override the default goes to the real public host; this machine is offline, so the
/// message must name that URL and say what is wrong.
#[test]
fn without_overrides_the_default_comes_from_the_public_host() {
    let dir = temp_dir("downloads-offline");
    let input = photo(&dir);
    let out = run_cli(CLI, &dir, &["-i", &input, "--yes"]);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    let official = "https://staticimgly.com/@imgly/background-removal-data/1.4.5/dist/";
    assert!(
        err.contains(&format!("from:    {official} (22 parts")),
        "{err}"
    );
    let first_part =
        format!("{official}fe1b9f06af9d2147016884f4eb683d4dc540244a7453c3b742ae527725df2eec");
    assert!(
        err.contains(&format!("could not fetch {first_part}")),
        "{err}"
    );
    assert!(err.contains("licence: AGPL-3.0"), "{err}");
    assert!(err.contains("offline, or the host is unreachable"), "{err}");
    assert!(models_in_cache(&dir).is_empty());
}

#[test]
fn models_list_shows_licences_sources_and_how_each_is_verified() {
    let dir = temp_dir("downloads-list");
    let out = run_cli(CLI, &dir, &["models", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let default_line = text
        .lines()
        .find(|l| l.starts_with("isnet-fp16 "))
        .unwrap_or("");
    assert!(
        default_line.contains("(default)") && default_line.contains("pinned"),
        "{text}"
    );
    let rmbg2 = text
        .lines()
        .find(|l| l.starts_with("rmbg-2.0 "))
        .unwrap_or("");
    assert!(
        rmbg2.contains("1024.3 MB") && rmbg2.contains("pinned"),
        "{text}"
    );
    assert!(text.contains("TOFU: trusted on first download"), "{text}");
    for expected in [
        "ormbg",
        "Apache-2.0",
        "https://www.gnu.org/licenses/agpl-3.0.html",
        "gated: self-host it",
        "staticimgly.com",
    ] {
        assert!(
            text.contains(expected),
            "'{expected}' missing from:\n{text}"
        );
    }
    assert_eq!(stdout(&run_cli(CLI, &dir, &["--list-models"])), text);
}

/// Every model file under the cache, URL downloads' folders included (not the JSON records).
fn model_files_under_cache(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e != "json") {
                found.push(path);
            }
        }
    }
    let mut found = vec![];
    walk(&dir.join(".cache"), &mut found);
    found
}

/// The tiny model on a server that sends it one byte every `interval`.
fn trickled_model(server: &TestServer, interval_ms: u64) -> String {
    server.add(
        "/m/slow.onnx",
        Route::Trickle {
            body: TinyModel::default().onnx_bytes(),
            interval: std::time::Duration::from_millis(interval_ms),
        },
    );
    server.url("/m/slow.onnx")
}

#[test]
fn a_trickling_model_download_is_stopped_and_leaves_nothing() {
    let dir = temp_dir("cli-model-trickle");
    let input = photo(&dir);
    let server = TestServer::start();
    let url = trickled_model(&server, 100);
    let started = std::time::Instant::now();
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "--model", &url, "--stall-timeout", "2"],
    );
    assert_eq!(out.status.code(), Some(MODEL_FAILED), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "download of {url} stalled: under 1024 bytes in 2 s"
        )) && stderr(&out).contains("--stall-timeout"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "stopped after {:?}",
        started.elapsed()
    );
    assert!(
        model_files_under_cache(&dir).is_empty(),
        "{:?}",
        model_files_under_cache(&dir)
    );
}

#[test]
fn an_interrupted_model_download_leaves_no_part_file() {
    let dir = temp_dir("cli-model-interrupted");
    let input = photo(&dir);
    let server = TestServer::start();
    let url = trickled_model(&server, 50);
    let child = cli_command(
        CLI,
        &dir,
        &["-i", &input, "--model", &url, "--stall-timeout", "600"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("the CLI starts");
    let waited = std::time::Instant::now();
    while model_files_under_cache(&dir).is_empty() {
        assert!(waited.elapsed().as_secs() < 30, "no .part file appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let part = model_files_under_cache(&dir);
    assert!(part[0].extension().is_some_and(|e| e == "part"), "{part:?}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("the CLI ends");
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("interrupted: nothing partial was left behind"),
        "{}",
        stderr(&output)
    );
    assert!(
        model_files_under_cache(&dir).is_empty(),
        "{:?}",
        model_files_under_cache(&dir)
    );
}
