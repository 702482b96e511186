//! HTTP(S) for the CLI: fetching input images into memory (size-capped, timed out) and downloading
//! model files into the cache (streamed to a `.part` file, sha256-checked, renamed only when whole).

use crate::error::{CliError, DownloadFailure};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use cutout::hash::{Digest, Sha256};
use cutout::manifest::Download;
use indicatif::{ProgressBar, ProgressStyle};

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

fn get(agent: &ureq::Agent, url: &str) -> Result<ureq::Response, CliError> {
    agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, resp) => {
            let why = match code {
                401 | 403 => {
                    ": the host refuses anonymous downloads (a gated file needs an account)"
                }
                404 | 410 => ": there is no such file there (moved or removed)",
                _ => "",
            };
            CliError::Download {
                kind: if matches!(code, 401 | 403) {
                    DownloadFailure::Refused
                } else {
                    DownloadFailure::Other
                },
                message: format!("HTTP {code} {} from {url}{why}", resp.status_text()),
            }
        }
        ureq::Error::Transport(t) => {
            let offline = matches!(
                t.kind(),
                ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed
            );
            let hint = if offline {
                " (offline, or the host is unreachable)"
            } else {
                ""
            };
            CliError::download(format!("could not fetch {url}{hint}: {t}"))
        }
    })
}

fn content_length(resp: &ureq::Response) -> Option<u64> {
    resp.header("content-length")
        .and_then(|v| v.trim().parse().ok())
}

/// Fetches an input image into memory, refusing anything larger than `max_bytes`.
pub fn fetch_image(url: &str, max_bytes: u64) -> Result<Vec<u8>, CliError> {
    let resp = get(&agent(Some(IMAGE_TIMEOUT)), url)?;
    if let Some(len) = content_length(&resp) {
        if len > max_bytes {
            return Err(CliError::download(format!(
                "{url} is {len} bytes, over the {max_bytes}-byte download limit (--max-download-bytes)"
            )));
        }
    }
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            CliError::download(format!(
                "download of {url} failed after {} bytes: {e}",
                bytes.len()
            ))
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(CliError::download(format!(
            "{url} is over the {max_bytes}-byte download limit (--max-download-bytes)"
        )));
    }
    Ok(bytes)
}

/// Downloads a model to `dest`, showing byte progress, and returns its sha256. The file appears
/// at `dest` only when it is complete and, if `expected_sha256` is given, verified; otherwise
/// nothing is left behind. A model in parts is fetched part by part, each checked against its own
/// hash, and assembled.
pub fn download_model(
    source: &Download,
    dest: &Path,
    expected_size: Option<u64>,
    expected_sha256: Option<&str>,
    quiet: bool,
) -> Result<String, CliError> {
    let partial = dest.with_extension("part");
    let result = download_to(source, &partial, expected_size, expected_sha256, quiet);
    match result {
        Ok(actual) => fs::rename(&partial, dest).map(|()| actual).map_err(|e| {
            CliError::download(format!(
                "could not move the download into {}: {e}",
                dest.display()
            ))
        }),
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn progress_bar(total: Option<u64>, label: &str, quiet: bool) -> ProgressBar {
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
    bar.set_message(format!("downloading {label}"));
    bar
}

fn download_to(
    source: &Download,
    partial: &Path,
    expected_size: Option<u64>,
    expected_sha256: Option<&str>,
    quiet: bool,
) -> Result<String, CliError> {
    if let Some(dir) = partial.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| CliError::download(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = fs::File::create(partial)
        .map_err(|e| CliError::download(format!("cannot write {}: {e}", partial.display())))?;
    let mut hasher = Sha256::new();
    let label = partial
        .file_stem()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let agent = agent(None);
    match source {
        Download::File(url) => {
            let resp = get(&agent, url)?;
            let announced = content_length(&resp);
            if let (Some(announced), Some(expected)) = (announced, expected_size) {
                if announced != expected {
                    return Err(CliError::download(format!(
                        "{url} announces {announced} bytes but the model is {expected} bytes: wrong file"
                    )));
                }
            }
            let total = announced.or(expected_size);
            let bar = progress_bar(total, &label, quiet);
            let mut sink = Sink {
                file: &mut file,
                partial,
                hasher: &mut hasher,
                bar: &bar,
            };
            let received = copy_body(resp, url, expected_size, &mut sink, |_| Ok(()))?;
            bar.finish_and_clear();
            if let Some(total) = total {
                if received != total {
                    return Err(CliError::download(format!(
                        "download of {url} was cut after {received} of {total} bytes"
                    )));
                }
            }
        }
        Download::Parts(parts) => {
            let bar = progress_bar(expected_size, &label, quiet);
            let mut sink = Sink {
                file: &mut file,
                partial,
                hasher: &mut hasher,
                bar: &bar,
            };
            for (index, (url, part)) in parts.iter().enumerate() {
                let which = format!("part {} of {} ({url})", index + 1, parts.len());
                let resp = get(&agent, url)?;
                let mut part_hasher = Sha256::new();
                let received = copy_body(resp, url, Some(part.size), &mut sink, |bytes| {
                    part_hasher.update(bytes);
                    Ok(())
                })?;
                if received != part.size {
                    return Err(CliError::download(format!(
                        "download of {which} was cut after {received} of {} bytes",
                        part.size
                    )));
                }
                let actual = cutout::hash::hex_digest(part_hasher);
                if actual != part.sha256 {
                    return Err(CliError::Download {
                        kind: DownloadFailure::HashMismatch,
                        message: format!(
                        "{which} has sha256 {actual}, expected {}: the host serves a different \
                         file; nothing was kept",
                        part.sha256
                    ),
                    });
                }
            }
            bar.finish_and_clear();
        }
    }
    file.sync_all()
        .map_err(|e| CliError::download(format!("cannot write {}: {e}", partial.display())))?;
    let actual = cutout::hash::hex_digest(hasher);
    if let Some(expected) = expected_sha256 {
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(CliError::Download {
                kind: DownloadFailure::HashMismatch,
                message: format!(
                    "downloaded model from {} has sha256 {actual}, expected {expected}: \
                 the file was not kept (wrong or corrupt file)",
                    source_label(source)
                ),
            });
        }
    }
    Ok(actual)
}

/// The URL a download names in messages (the first part's for a model in parts).
pub fn source_label(source: &Download) -> &str {
    match source {
        Download::File(url) => url,
        Download::Parts(parts) => parts.first().map_or("", |(url, _)| url.as_str()),
    }
}

/// Where downloaded bytes go: the `.part` file, the whole file's hash and the progress bar.
struct Sink<'a> {
    file: &'a mut fs::File,
    partial: &'a Path,
    hasher: &'a mut Sha256,
    bar: &'a ProgressBar,
}

/// Streams one response body into the sink (and `also`), refusing more than `limit` bytes.
fn copy_body(
    resp: ureq::Response,
    url: &str,
    limit: Option<u64>,
    sink: &mut Sink,
    mut also: impl FnMut(&[u8]) -> Result<(), CliError>,
) -> Result<u64, CliError> {
    let total = content_length(&resp).or(limit);
    let mut reader = resp.into_reader();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            CliError::download(format!(
                "download of {url} was cut after {received} of {} bytes: {e}",
                fmt_total(total)
            ))
        })?;
        if n == 0 {
            return Ok(received);
        }
        received += n as u64;
        if let Some(limit) = limit {
            if received > limit {
                return Err(CliError::download(format!(
                    "{url} sent more than the expected {limit} bytes: wrong file"
                )));
            }
        }
        let bytes = &buf[..n];
        also(bytes)?;
        sink.hasher.update(bytes);
        sink.file.write_all(bytes).map_err(|e| {
            CliError::download(format!(
                "cannot write {}: {e} (is the disk full?)",
                sink.partial.display()
            ))
        })?;
        sink.bar.inc(n as u64);
    }
}

fn fmt_total(total: Option<u64>) -> String {
    total.map_or_else(|| "an unknown number of".to_string(), |t| t.to_string())
}
