//! Resolving `--model <id|path|URL>` to model bytes and the manifest entry that says how to feed it.
//! Manifest ids and URLs are downloaded once into the user cache directory.

use std::fs;
use std::path::{Path, PathBuf};

use cutout::{sha256_hex, Manifest, ModelEntry};

use crate::net;

/// Environment variable naming a base URL that replaces the manifest's host for every model file
/// (`<base>/<file>`), for mirrors and self-hosting.
pub const MIRROR_ENV: &str = "CUTOUT_MODEL_BASE_URL";
/// Environment variable overriding the cache directory.
pub const CACHE_ENV: &str = "CUTOUT_CACHE_DIR";

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
}

pub fn cache_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::cache_dir()
        .map(|d| d.join("cutout"))
        .ok_or_else(|| format!("no user cache directory on this system: set {CACHE_ENV}"))
}

pub fn models_dir() -> Result<PathBuf, String> {
    Ok(cache_dir()?.join("models"))
}

fn lookup<'m>(manifest: &'m Manifest, id: &str) -> Result<&'m ModelEntry, String> {
    manifest
        .get(id)
        .ok_or_else(|| format!("unknown model '{id}': known models are {}", manifest.ids()))
}

pub fn resolve(manifest: &Manifest, request: &ModelRequest) -> Result<ResolvedModel, String> {
    if let Some(hash) = request.sha256 {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("--model-sha256 '{hash}' is not 64 hex digits"));
        }
    }
    let preset = request.preset.map(|id| lookup(manifest, id)).transpose()?;
    let arg = request.model.unwrap_or(&manifest.default);
    // A file path or a URL: the file itself, described by its hash or the preset.
    let file_bytes = if Path::new(arg).is_file() {
        Some(fs::read(arg).map_err(|e| format!("cannot read model file {arg}: {e}"))?)
    } else if net::is_url(arg) {
        let file_name = arg
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("model.onnx");
        let url_key = &sha256_hex(arg.as_bytes())[..16];
        let path = models_dir()?.join(format!("url-{url_key}")).join(file_name);
        fetch_into_cache(arg, &path, None, request.sha256, request.quiet)?;
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
        return Err(format!(
            "model URL scheme '{scheme}' is not supported: use http(s)"
        ));
    }
    if arg.contains('/') || arg.contains('\\') || arg.ends_with(".onnx") {
        return Err(format!("model file not found: {arg}"));
    }
    let entry = lookup(manifest, arg)?;
    if preset.is_some() || request.sha256.is_some() {
        return Err(
            "--preset and --model-sha256 apply to model files and URLs, not manifest ids".into(),
        );
    }
    let path = models_dir()?.join(&entry.file);
    let mirror = std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty());
    match entry.download_url(mirror.as_deref()) {
        Some(url) => fetch_into_cache(
            &url,
            &path,
            entry.size,
            entry.sha256.as_deref(),
            request.quiet,
        )?,
        None if path.is_file() => {}
        None => return Err(missing_model_help(entry, &path)),
    }
    let bytes = read_cached(&path)?;
    let mut notes = vec![];
    if entry.sha256.is_none() {
        notes.push(format!(
            "model '{}' has no pinned sha256 in the manifest: it is used unverified",
            entry.id
        ));
    }
    Ok(ResolvedModel {
        bytes,
        entry: entry.clone(),
        origin: path.display().to_string(),
        notes,
    })
}

fn missing_model_help(entry: &ModelEntry, path: &Path) -> String {
    format!(
        "model '{}' is not in the cache and has no download URL.\n  Put the file at {}\n  \
         (for IS-Net: run models/fetch-isnet.sh, which assembles it from the npm package \
         @imgly/background-removal-data), or pass --model /path/to/{}",
        entry.id,
        path.display(),
        entry.file
    )
}

/// Downloads into the cache unless a verified copy is already there.
fn fetch_into_cache(
    url: &str,
    path: &Path,
    size: Option<u64>,
    sha256: Option<&str>,
    quiet: bool,
) -> Result<(), String> {
    if path.is_file() {
        match sha256 {
            None => return Ok(()),
            Some(expected) => {
                let actual = sha256_hex(&read_cached(path)?);
                if actual.eq_ignore_ascii_case(expected) {
                    return Ok(());
                }
                eprintln!(
                    "warning: cached model {} has sha256 {actual}, expected {expected}; downloading it again",
                    path.display()
                );
            }
        }
    }
    if !quiet {
        eprintln!("downloading model from {url} into {}", path.display());
    }
    net::download_file(url, path, size, sha256, quiet)
}

fn read_cached(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read cached model {}: {e}", path.display()))
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
