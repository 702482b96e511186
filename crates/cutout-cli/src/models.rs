//! Resolving `--model <id|path|URL>` to model bytes and the manifest entry that says how to feed it.
//! Manifest ids and URLs are downloaded once into the user cache directory.

use crate::error::{CliError, DownloadFailure};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use cutout::manifest::Download;
use cutout::{sha256_hex, Manifest, ModelEntry};
use serde::{Deserialize, Serialize};

use crate::net;

/// Environment variable naming a base URL that replaces the manifest's host for every model file
/// (`<base>/<file>`), for mirrors and self-hosting.
pub const MIRROR_ENV: &str = "CUTOUT_MODEL_BASE_URL";
/// Environment variable overriding the cache directory.
pub const CACHE_ENV: &str = "CUTOUT_CACHE_DIR";
/// Environment variable naming a manifest file that replaces the built-in one (your own model
/// list, or the real hosts' layouts reproduced on a local server).
pub const MANIFEST_ENV: &str = "CUTOUT_MANIFEST";
/// Hashes recorded at the first download of models the manifest does not pin, by URL.
const TRUST_FILE: &str = "trusted-downloads.json";

pub struct ResolvedModel {
    pub bytes: Vec<u8>,
    pub entry: ModelEntry,
    /// Where it came from, for messages.
    pub origin: String,
    /// Warnings to show the user (unverified hash, assumed conventions).
    pub notes: Vec<String>,
}

pub struct ModelRequest<'a> {
    pub model: Option<&'a str>,
    /// Pins the sha256 of a path or URL model.
    pub sha256: Option<&'a str>,
    /// Manifest id whose input/normalisation/output conventions an unknown file follows.
    pub preset: Option<&'a str>,
    pub quiet: bool,
    /// Download without asking (`--yes`); a non-interactive run never asks.
    pub yes: bool,
}

/// The built-in manifest, or the file `CUTOUT_MANIFEST` names.
pub fn load_manifest() -> Result<Manifest, CliError> {
    match std::env::var_os(MANIFEST_ENV).filter(|p| !p.is_empty()) {
        None => Ok(Manifest::builtin()),
        Some(path) => {
            let path = PathBuf::from(path);
            let text = fs::read_to_string(&path).map_err(|e| {
                CliError::Model(format!(
                    "cannot read the manifest {} ({MANIFEST_ENV}): {e}",
                    path.display()
                ))
            })?;
            Manifest::parse(&text)
                .map_err(|e| CliError::Model(format!("{} ({MANIFEST_ENV}): {e}", path.display())))
        }
    }
}

pub fn cache_dir() -> Result<PathBuf, CliError> {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir().map(|d| d.join("cutout")).ok_or_else(|| {
        CliError::Model(format!(
            "no user cache directory on this system: set {CACHE_ENV}"
        ))
    })
}

pub fn models_dir() -> Result<PathBuf, CliError> {
    Ok(cache_dir()?.join("models"))
}

fn lookup<'m>(manifest: &'m Manifest, id: &str) -> Result<&'m ModelEntry, CliError> {
    manifest.get(id).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown model '{id}': known models are {}",
            manifest.ids()
        ))
    })
}

pub fn resolve(manifest: &Manifest, request: &ModelRequest) -> Result<ResolvedModel, CliError> {
    if let Some(hash) = request.sha256 {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CliError::Model(format!(
                "--model-sha256 '{hash}' is not 64 hex digits"
            )));
        }
    }
    let preset = request.preset.map(|id| lookup(manifest, id)).transpose()?;
    let arg = request.model.unwrap_or(&manifest.default);
    // A file path or a URL: the file itself, described by its hash or the preset.
    let file_bytes = if Path::new(arg).is_file() {
        Some(
            fs::read(arg)
                .map_err(|e| CliError::Model(format!("cannot read model file {arg}: {e}")))?,
        )
    } else if net::is_url(arg) {
        let file_name = arg
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("model.onnx");
        let url_key = &sha256_hex(arg.as_bytes())[..16];
        let path = models_dir()?.join(format!("url-{url_key}")).join(file_name);
        let source = Download::File(arg.to_string());
        ensure_cached(&source, &path, None, request.sha256, request.quiet)?;
        Some(read_cached(&path)?)
    } else {
        None
    };
    if let Some(bytes) = file_bytes {
        let origin = arg.to_string();
        return Ok(describe_file(
            manifest,
            bytes,
            origin,
            request.sha256,
            preset,
        ));
    }
    if let Some(scheme) = net::unsupported_scheme(arg) {
        return Err(CliError::Model(format!(
            "model URL scheme '{scheme}' is not supported: use http(s)"
        )));
    }
    if arg.contains('/') || arg.contains('\\') || arg.ends_with(".onnx") {
        return Err(CliError::Model(format!("model file not found: {arg}")));
    }
    let entry = lookup(manifest, arg)?;
    if preset.is_some() || request.sha256.is_some() {
        return Err(CliError::Usage(
            "--preset and --model-sha256 apply to model files and URLs, not manifest ids".into(),
        ));
    }
    let path = models_dir()?.join(&entry.file);
    fetch_entry(entry, &path, request.quiet, request.yes)?;
    let bytes = read_cached(&path)?;
    Ok(ResolvedModel {
        bytes,
        entry: entry.clone(),
        origin: path.display().to_string(),
        notes: vec![],
    })
}

fn mirror_base() -> Option<String> {
    std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty())
}

/// Makes sure a verified copy of `entry` is at `path`, downloading it (after saying what, from
/// where, under which licence, and asking when someone is at the terminal) when it is not.
pub fn fetch_entry(
    entry: &ModelEntry,
    path: &Path,
    quiet: bool,
    yes: bool,
) -> Result<(), CliError> {
    let mirror = mirror_base();
    let Some(source) = entry.download(mirror.as_deref()) else {
        if path.is_file() {
            return Ok(());
        }
        return Err(CliError::Model(missing_model_help(entry, path)));
    };
    if cached_copy_is_good(&source, path, entry.sha256.as_deref())? {
        return Ok(());
    }
    announce(entry, &source, path);
    if !yes && std::io::stdin().is_terminal() && !confirm()? {
        return Err(CliError::Model(format!(
            "download of model '{}' declined: nothing was downloaded (pass --yes to skip the question)",
            entry.id
        )));
    }
    download_verified(&source, path, entry.size, entry.sha256.as_deref(), quiet)
        .map_err(|e| with_self_hosting_help(e, entry))
}

/// What the user reads before the first download: model, size, licence, host and destination.
fn announce(entry: &ModelEntry, source: &Download, path: &Path) {
    let size = entry
        .size
        .map_or_else(|| "size unknown".to_string(), megabytes);
    eprintln!("model {}: {}, {size}", entry.id, entry.name);
    let link = entry
        .licence_url
        .as_deref()
        .map_or_else(String::new, |u| format!(" ({u})"));
    eprintln!("  licence: {}{link}", entry.licence);
    let from = match (source, entry.parts_base_url.as_deref()) {
        (Download::Parts(parts), Some(base)) => {
            format!("{base} ({} parts, each named by its sha256)", parts.len())
        }
        _ => net::source_label(source).to_string(),
    };
    eprintln!("  from:    {from}");
    let verified = if entry.is_pinned() {
        "verified against its pinned sha256"
    } else {
        "no pinned sha256: its hash is recorded now and any different file is refused later"
    };
    eprintln!(
        "  into:    {} ({verified}; downloaded once, then used offline)",
        path.display()
    );
}

fn confirm() -> Result<bool, CliError> {
    eprint!("Download it? [Y/n] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Model(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "" | "y" | "yes"
    ))
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn with_self_hosting_help(error: CliError, entry: &ModelEntry) -> CliError {
    let refused = error.download_failure() == Some(DownloadFailure::Refused);
    if !refused && !entry.gated {
        return error;
    }
    CliError::Model(format!(
        "{error}\n  Model '{}' is gated: its host serves it only to signed-in accounts that \
         accepted its terms.\n  Self-host it: download {} where you have access, put it on your \
         own server and set {MIRROR_ENV}=https://your.host/models (or pass --model /path/to/{}).\n  \
         Or choose an open model: `cutout models list`.",
        entry.id, entry.file, entry.file
    ))
}

/// `cutout models fetch ID [--dir DIR]`: download and verify into the cache, or into a directory
/// a site owner uploads (`<dir>/<file>`, the layout `CUTOUT_MODEL_BASE_URL` and `modelBaseUrl`
/// expect). Returns where the file is.
pub fn fetch_command(
    manifest: &Manifest,
    id: &str,
    dir: Option<&Path>,
    quiet: bool,
    yes: bool,
) -> Result<PathBuf, CliError> {
    let entry = lookup(manifest, id)?;
    let cached = models_dir()?.join(&entry.file);
    fetch_entry(entry, &cached, quiet, yes)?;
    let Some(dir) = dir else {
        return Ok(cached);
    };
    fs::create_dir_all(dir)
        .map_err(|e| CliError::Model(format!("cannot create {}: {e}", dir.display())))?;
    let dest = dir.join(&entry.file);
    let partial = dest.with_extension("part");
    fs::copy(&cached, &partial)
        .and_then(|_| fs::rename(&partial, &dest))
        .map_err(|e| {
            let _ = fs::remove_file(&partial);
            CliError::Model(format!("cannot write {}: {e}", dest.display()))
        })?;
    Ok(dest)
}

/// True when `path` holds the file asked for: its pinned hash, or the hash recorded at its first
/// download. A damaged or replaced copy is reported and downloaded again.
fn cached_copy_is_good(
    source: &Download,
    path: &Path,
    pinned: Option<&str>,
) -> Result<bool, CliError> {
    if !path.is_file() {
        return Ok(false);
    }
    let key = net::source_label(source).to_string();
    let expected = match pinned {
        Some(hash) => Some(hash.to_ascii_lowercase()),
        None => TrustStore::load()?.get(&key),
    };
    let Some(expected) = expected else {
        return Ok(true); // nothing to check it against (kept from before hashes were recorded)
    };
    let actual = sha256_hex(&read_cached(path)?);
    if actual == expected {
        return Ok(true);
    }
    eprintln!(
        "warning: cached model {} has sha256 {actual}, expected {expected}; downloading it again",
        path.display()
    );
    Ok(false)
}

/// Downloads into the cache unless a verified copy is already there.
fn ensure_cached(
    source: &Download,
    path: &Path,
    size: Option<u64>,
    pinned: Option<&str>,
    quiet: bool,
) -> Result<(), CliError> {
    if cached_copy_is_good(source, path, pinned)? {
        return Ok(());
    }
    download_verified(source, path, size, pinned, quiet)
}

/// Downloads to `path`, verified against the pinned hash; without one, the first download's hash
/// is recorded, and a later download that differs is refused.
fn download_verified(
    source: &Download,
    path: &Path,
    size: Option<u64>,
    pinned: Option<&str>,
    quiet: bool,
) -> Result<(), CliError> {
    let key = net::source_label(source).to_string();
    let mut trust = TrustStore::load()?;
    let recorded = if pinned.is_none() {
        trust.get(&key)
    } else {
        None
    };
    let expected = pinned.map(str::to_string).or(recorded.clone());
    let actual =
        net::download_model(source, path, size, expected.as_deref(), quiet).map_err(|e| {
            if recorded.is_some() && e.download_failure() == Some(DownloadFailure::HashMismatch) {
                CliError::Model(format!(
                    "{e}\n  The first download from this URL had that hash (trusted on first \
                 download, recorded in {}): the host now serves a different file. If the change \
                 is expected, pin the new file with --model-sha256.",
                    TrustStore::path()
                        .map_or_else(|_| TRUST_FILE.into(), |p| p.display().to_string())
                ))
            } else {
                e
            }
        })?;
    if pinned.is_none() && recorded.is_none() {
        eprintln!(
            "note: {key} has no pinned sha256; recorded its sha256 {actual} (trusted on first \
             download: a different file from this URL will be refused)"
        );
        trust.record(&key, &actual)?;
    }
    Ok(())
}

/// Hashes recorded at first download (`<models dir>/trusted-downloads.json`), by URL.
#[derive(Default, Serialize, Deserialize)]
struct TrustStore {
    sha256_by_url: BTreeMap<String, String>,
}

impl TrustStore {
    fn path() -> Result<PathBuf, CliError> {
        Ok(models_dir()?.join(TRUST_FILE))
    }

    fn load() -> Result<TrustStore, CliError> {
        let path = Self::path()?;
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                CliError::Model(format!(
                    "{} is damaged ({e}): delete it to trust downloads anew",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore::default()),
            Err(e) => Err(CliError::Model(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn get(&self, url: &str) -> Option<String> {
        self.sha256_by_url.get(url).cloned()
    }

    fn record(&mut self, url: &str, sha256: &str) -> Result<(), CliError> {
        self.sha256_by_url
            .insert(url.to_string(), sha256.to_string());
        let path = Self::path()?;
        let text = serde_json::to_string_pretty(self).expect("a map of strings serialises");
        let partial = path.with_extension("json.part");
        fs::write(&partial, text)
            .and_then(|()| fs::rename(&partial, &path))
            .map_err(|e| {
                CliError::Model(format!(
                    "cannot record the model's hash in {}: {e}",
                    path.display()
                ))
            })
    }
}

fn missing_model_help(entry: &ModelEntry, path: &Path) -> String {
    format!(
        "model '{}' is not in the cache and has no download URL.\n  Put the file at {}\n  \
         (or set {MIRROR_ENV} to a server that has it), or pass --model /path/to/{}",
        entry.id,
        path.display(),
        entry.file
    )
}

fn read_cached(path: &Path) -> Result<Vec<u8>, CliError> {
    fs::read(path)
        .map_err(|e| CliError::Model(format!("cannot read cached model {}: {e}", path.display())))
}

/// A file given by path or URL: recognised by its hash when the manifest knows it, otherwise
/// described by `--preset` or the default model's conventions.
fn describe_file(
    manifest: &Manifest,
    bytes: Vec<u8>,
    origin: String,
    pinned: Option<&str>,
    preset: Option<&ModelEntry>,
) -> ResolvedModel {
    let actual = sha256_hex(&bytes);
    let mut notes = vec![];
    let mut entry = match (preset, manifest.find_by_sha256(&actual)) {
        (Some(p), _) => p.clone(),
        (None, Some(known)) => known.clone(),
        (None, None) => {
            let default = manifest.default_entry();
            notes.push(format!(
                "{origin} is not a model the manifest knows: assuming {} conventions (choose others with --preset)",
                default.id
            ));
            default.clone()
        }
    };
    // Only what the user pinned is checked at load: a preset's own hash describes another file.
    entry.sha256 = pinned.map(str::to_ascii_lowercase);
    ResolvedModel {
        bytes,
        entry,
        origin,
        notes,
    }
}
