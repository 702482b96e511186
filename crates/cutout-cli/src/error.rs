//! What can stop the CLI, and the exit code each gives. The engine's errors keep their stable
//! [`cutout::Error::code`]; the CLI adds the file they were about and the flag that helps.

/// Exit codes (also in `cutout --help` and the README).
pub mod exit {
    /// Every input was processed.
    pub const SUCCESS: u8 = 0;
    /// At least one input failed; the others were processed.
    pub const SOME_INPUTS_FAILED: u8 = 1;
    /// The command line asks for something impossible (or names no input).
    pub const USAGE: u8 = 2;
    /// The model could not be found, downloaded, verified or loaded.
    pub const MODEL: u8 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag or combination of flags.
    #[error("{0}")]
    Usage(String),
    /// Finding, downloading or caching the model (or the manifest) failed.
    #[error("{0}")]
    Model(String),
    /// A download failed (an image's or a model's: the caller says which it was).
    #[error("{message}")]
    Download {
        kind: DownloadFailure,
        message: String,
    },
    /// Reading an input or writing its result failed.
    #[error("{0}")]
    File(String),
    /// The engine refused something; `context` names what (a model file, ...).
    #[error("{context}{source}{}", hint(source))]
    Engine {
        context: String,
        source: cutout::Error,
    },
}

impl CliError {
    pub fn engine(context: impl Into<String>, source: cutout::Error) -> CliError {
        CliError::Engine {
            context: context.into(),
            source,
        }
    }

    /// The exit code when this error stops the whole run.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::File(_) => exit::USAGE,
            CliError::Model(_) | CliError::Download { .. } => exit::MODEL,
            CliError::Engine { source, .. } if source.is_bad_model() => exit::MODEL,
            CliError::Engine { .. } => exit::USAGE,
        }
    }
}

/// Why a download failed, where the CLI has more to say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadFailure {
    /// HTTP 401 / 403: the host serves the file only to signed-in accounts.
    Refused,
    /// The bytes arrived but hash to something other than expected.
    HashMismatch,
    Other,
}

impl CliError {
    pub fn download(message: String) -> CliError {
        CliError::Download {
            kind: DownloadFailure::Other,
            message,
        }
    }

    /// The download failure's kind, if this is one.
    pub fn download_failure(&self) -> Option<DownloadFailure> {
        match self {
            CliError::Download { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<cutout::Error> for CliError {
    fn from(source: cutout::Error) -> CliError {
        CliError::engine("", source)
    }
}

/// The CLI's way out of an engine error, where it has one.
fn hint(error: &cutout::Error) -> &'static str {
    match error {
        cutout::Error::TooManyPixels { .. } => " (raise the limit with --max-pixels)",
        _ => "",
    }
}
