//! HTTP(S) for the CLI: fetching input images into memory (size-capped, timed out) and downloading
//! model files into the cache (streamed to a `.part` file, sha256-checked, renamed only when whole).

use crate::error::{CliError, DownloadFailure};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use cutout::hash::{Digest, Sha256};
use cutout::manifest::Download;
use indicatif::{ProgressBar, ProgressStyle};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Under this many bytes in a stall window, a transfer counts as stalled (a server that
/// trickles a byte every few seconds would otherwise hold the run for ever).
const STALL_MIN_BYTES: u64 = 1024;

/// The time limits every download runs under (the CLI's flags set them once at start).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Whole-transfer ceiling for an input image.
    pub image: Duration,
    /// Whole-transfer ceiling for a model file (they are large).
    pub model: Duration,
    /// Longest wait for the first byte of the answer, and for each stall window's bytes.
    pub stall: Duration,
}

pub const DEFAULT_IMAGE_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MODEL_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

static TIMEOUTS: std::sync::OnceLock<Timeouts> = std::sync::OnceLock::new();

pub fn set_timeouts(timeouts: Timeouts) {
    let _ = TIMEOUTS.set(timeouts);
}

fn timeouts() -> Timeouts {
    *TIMEOUTS.get_or_init(|| Timeouts {
        image: DEFAULT_IMAGE_TIMEOUT,
        model: DEFAULT_MODEL_TIMEOUT,
        stall: DEFAULT_STALL_TIMEOUT,
    })
}

/// Watches one transfer against its overall limit and the stall rule, with the messages that
/// name the URL and the limit that stopped it.
struct Transfer<'a> {
    url: &'a str,
    started: Instant,
    overall: Duration,
    stall: Duration,
    window_started: Instant,
    window_bytes: u64,
}

impl<'a> Transfer<'a> {
    fn new(url: &'a str, overall: Duration) -> Transfer<'a> {
        let now = Instant::now();
        Transfer {
            url,
            started: now,
            overall,
            stall: timeouts().stall,
            window_started: now,
            window_bytes: 0,
        }
    }

    fn received(&mut self, n: usize, total: u64) -> Result<(), CliError> {
        self.window_bytes += n as u64;
        if self.started.elapsed() > self.overall {
            return Err(CliError::download(format!(
                "download of {} stopped: not finished within the {} s limit (--download-timeout), \
                 {total} bytes arrived",
                self.url,
                self.overall.as_secs()
            )));
        }
        if self.window_started.elapsed() >= self.stall {
            if self.window_bytes < STALL_MIN_BYTES {
                return Err(self.stalled(total));
            }
            self.window_started = Instant::now();
            self.window_bytes = 0;
        }
        Ok(())
    }

    fn stalled(&self, total: u64) -> CliError {
        CliError::download(format!(
            "download of {} stalled: under {STALL_MIN_BYTES} bytes in {} s after {total} bytes \
             (--stall-timeout)",
            self.url,
            self.stall.as_secs()
        ))
    }

    /// One read of the body; a read a signal interrupted is retried (the interrupt handler
    /// decides whether the run ends).
    fn read(
        &self,
        reader: &mut impl Read,
        buf: &mut [u8],
        total: u64,
        of: &str,
    ) -> Result<usize, CliError> {
        loop {
            match reader.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => return read.map_err(|e| self.read_failed(e, total, of)),
            }
        }
    }

    /// A read error: the socket's own timeout is the stall limit.
    fn read_failed(&self, e: std::io::Error, total: u64, of: &str) -> CliError {
        if is_timeout(&e) {
            return self.stalled(total);
        }
        CliError::download(format!(
            "download of {} was cut after {total} of {of} bytes: {e}",
            self.url
        ))
    }
}

/// A socket read or connect that ran into its timeout (the platforms name it either way).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

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

/// Connect and first-byte limits are the socket's; the overall limit is checked as bytes arrive
/// (ureq's own overall timeout would replace the per-read one, so a silent server would hold
/// the run for the whole overall limit).
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(timeouts().stall)
        .user_agent(concat!("cutout/", env!("CARGO_PKG_VERSION")))
        .build()
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
            let timed_out = std::error::Error::source(&t)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(is_timeout);
            if timed_out && t.kind() == ureq::ErrorKind::ConnectionFailed {
                return CliError::download(format!(
                    "could not connect to {url} within {} s (offline, or the host is unreachable)",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
            if timed_out {
                return CliError::download(format!(
                    "{url} did not answer within {} s: the server accepted the connection but \
                     sent nothing (--stall-timeout)",
                    timeouts().stall.as_secs()
                ));
            }
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
    let mut transfer = Transfer::new(url, timeouts().image);
    let resp = get(&agent(), url)?;
    let too_large = || {
        CliError::download(format!(
            "{url} is over the {max_bytes}-byte download limit (--max-download-bytes)"
        ))
    };
    let announced = content_length(&resp);
    if announced.is_some_and(|len| len > max_bytes) {
        return Err(too_large());
    }
    let of = fmt_total(announced);
    let mut reader = resp.into_reader();
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = transfer.read(&mut reader, &mut buf, bytes.len() as u64, &of)?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&buf[..n]);
        if bytes.len() as u64 > max_bytes {
            return Err(too_large());
        }
        transfer.received(n, bytes.len() as u64)?;
    }
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
    let _removed_if_interrupted = crate::cleanup::track(partial.clone());
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
    let agent = agent();
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
    let mut transfer = Transfer::new(url, timeouts().model);
    let mut reader = resp.into_reader();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = transfer.read(&mut reader, &mut buf, received, &fmt_total(total))?;
        transfer.received(n, received + n as u64)?;
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
