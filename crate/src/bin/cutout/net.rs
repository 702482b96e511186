//! HTTP(S) for the CLI: fetching input images into memory (size-capped, timed out) and downloading
//! model files into the cache (streamed to a `.part` file, sha256-checked, renamed only when whole).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest silence tolerated mid-transfer before a download is called cut.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-request ceiling for an input image.
const IMAGE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// "ftp://x" and friends get a clear refusal instead of "file not found".
pub fn unsupported_scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    let plain = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+');
    (plain && !rest.is_empty() && !is_url(text)).then_some(scheme)
}

fn agent(overall: Option<Duration>) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .user_agent(concat!("cutout/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = overall {
        builder = builder.timeout(t);
    }
    builder.build()
}

fn get(agent: &ureq::Agent, url: &str) -> Result<ureq::Response, String> {
    agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, resp) => format!("HTTP {code} {} from {url}", resp.status_text()),
        ureq::Error::Transport(t) => format!("could not fetch {url}: {t}"),
    })
}

fn content_length(resp: &ureq::Response) -> Option<u64> {
    resp.header("content-length")
        .and_then(|v| v.trim().parse().ok())
}

/// Fetches an input image into memory, refusing anything larger than `max_bytes`.
pub fn fetch_image(url: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let resp = get(&agent(Some(IMAGE_TIMEOUT)), url)?;
    if let Some(len) = content_length(&resp) {
        if len > max_bytes {
            return Err(format!(
                "{url} is {len} bytes, over the {max_bytes}-byte download limit (--max-download-bytes)"
            ));
        }
    }
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("download of {url} failed after {} bytes: {e}", bytes.len()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!(
            "{url} is over the {max_bytes}-byte download limit (--max-download-bytes)"
        ));
    }
    Ok(bytes)
}

/// Downloads `url` to `dest`, showing byte progress. The file appears at `dest` only when it is
/// complete and, if `expected_sha256` is given, verified; otherwise nothing is left behind.
pub fn download_file(
    url: &str,
    dest: &Path,
    expected_size: Option<u64>,
    expected_sha256: Option<&str>,
    quiet: bool,
) -> Result<(), String> {
    let partial = dest.with_extension("part");
    let result = download_to(url, &partial, expected_size, expected_sha256, quiet);
    match result {
        Ok(()) => fs::rename(&partial, dest)
            .map_err(|e| format!("could not move the download into {}: {e}", dest.display())),
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn download_to(
    url: &str,
    partial: &Path,
    expected_size: Option<u64>,
    expected_sha256: Option<&str>,
    quiet: bool,
) -> Result<(), String> {
    if let Some(dir) = partial.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let resp = get(&agent(None), url)?;
    let announced = content_length(&resp);
    if let (Some(announced), Some(expected)) = (announced, expected_size) {
        if announced != expected {
            return Err(format!(
                "{url} announces {announced} bytes but the model is {expected} bytes: wrong file"
            ));
        }
    }
    let total = announced.or(expected_size);
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total.unwrap_or(0))
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "downloading {}",
        url.rsplit('/').next().unwrap_or(url)
    ));
    let mut file = fs::File::create(partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let mut reader = resp.into_reader();
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            format!(
                "download of {url} was cut after {received} of {} bytes: {e}",
                fmt_total(total)
            )
        })?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if let Some(expected) = expected_size {
            if received > expected {
                return Err(format!(
                    "{url} sent more than the expected {expected} bytes: wrong file"
                ));
            }
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| {
            format!(
                "cannot write {}: {e} (is the disk full?)",
                partial.display()
            )
        })?;
        bar.set_position(received);
    }
    bar.finish_and_clear();
    if let Some(total) = total {
        if received != total {
            return Err(format!(
                "download of {url} was cut after {received} of {total} bytes"
            ));
        }
    }
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let actual = cutout::model::hex_digest(hasher);
    if let Some(expected) = expected_sha256 {
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(format!(
                "downloaded model from {url} has sha256 {actual}, expected {expected}: \
                 the file was not kept (wrong or corrupt file)"
            ));
        }
    }
    Ok(())
}

fn fmt_total(total: Option<u64>) -> String {
    total.map_or_else(|| "an unknown number of".to_string(), |t| t.to_string())
}
