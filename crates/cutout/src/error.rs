//! One error type for the whole engine. Every message says what went wrong in words a user can act on;
//! shells (CLI, wasm) add the file name or URL the error belongs to.

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Each variant's message says what went wrong; [`Error::code`] names it for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the input is empty (0 bytes)")]
    EmptyInput,
    /// The bytes are not in any image format the engine decodes.
    #[error("not a supported image: {detail}")]
    NotAnImage { detail: String },
    /// The header declares a zero width or height.
    #[error("the image has no pixels ({width}x{height})")]
    ZeroSize { width: u32, height: u32 },
    /// The header declares more pixels than the configured limit (each shell names its own
    /// way to raise it).
    #[error(
        "the image is too large: {width}x{height} = {} pixels, the limit is {max_pixels}",
        *width as u64 * *height as u64
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("the image is corrupt or truncated: {detail}")]
    CorruptImage { detail: String },
    /// Raw pixels whose buffer does not match the stated size.
    #[error(
        "pixel buffer has {len} bytes but {width}x{height} RGBA needs {}",
        *width as usize * *height as usize * 4
    )]
    BadPixelBuffer { width: u32, height: u32, len: usize },
    /// The model bytes do not hash to the pinned sha256.
    #[error(
        "model file hash mismatch: expected sha256 {expected}, got {actual} \
         (the file is corrupt, incomplete or a different model)"
    )]
    HashMismatch { expected: String, actual: String },
    /// The model file is not a usable ONNX segmentation model.
    #[error("unusable model: {detail}")]
    BadModel { detail: String },
    /// The model loaded but running it failed.
    #[error("inference failed: {detail}")]
    Inference { detail: String },
    #[error("could not encode the output: {detail}")]
    Encode { detail: String },
    /// The options cannot be satisfied (e.g. crop with an empty mask, bad colour).
    #[error("{detail}")]
    InvalidOption { detail: String },
    /// The model manifest is malformed or does not name a model.
    #[error("model manifest: {detail}")]
    Manifest { detail: String },
    /// A bug: the engine panicked. Never expected; reported instead of crashing the caller.
    #[error("internal error (please report): {detail}")]
    Internal { detail: String },
}

impl Error {
    /// A stable name for the kind of failure, for programs to tell errors apart without
    /// reading the message: the CLI's exit code, the wasm error's `name`, the JS `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyInput => "empty-input",
            Error::NotAnImage { .. } => "not-an-image",
            Error::ZeroSize { .. } => "zero-size",
            Error::TooManyPixels { .. } => "too-many-pixels",
            Error::CorruptImage { .. } => "corrupt-image",
            Error::BadPixelBuffer { .. } => "bad-pixel-buffer",
            Error::HashMismatch { .. } => "hash-mismatch",
            Error::BadModel { .. } => "bad-model",
            Error::Inference { .. } => "inference-failed",
            Error::Encode { .. } => "encode-failed",
            Error::InvalidOption { .. } => "invalid-option",
            Error::Manifest { .. } => "bad-manifest",
            Error::Internal { .. } => "internal",
        }
    }

    /// Whether the fault is in the model file (or its manifest entry).
    pub fn is_bad_model(&self) -> bool {
        matches!(
            self,
            Error::HashMismatch { .. } | Error::BadModel { .. } | Error::Manifest { .. }
        )
    }
}

/// Runs engine code so that a panic deep inside a dependency becomes an `Error` instead of
/// unwinding into the caller. (On wasm, panics abort; the wasm shell reports them through its hook.)
pub(crate) fn catch_panics<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Error::Internal {
                detail: format!("{what} panicked: {message}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn every_kind_of_error_has_its_own_stable_code() {
        let detail = || "x".to_string();
        let all = [
            Error::EmptyInput,
            Error::NotAnImage { detail: detail() },
            Error::ZeroSize {
                width: 0,
                height: 1,
            },
            Error::TooManyPixels {
                width: 9,
                height: 9,
                max_pixels: 1,
            },
            Error::CorruptImage { detail: detail() },
            Error::BadPixelBuffer {
                width: 1,
                height: 1,
                len: 3,
            },
            Error::HashMismatch {
                expected: detail(),
                actual: detail(),
            },
            Error::BadModel { detail: detail() },
            Error::Inference { detail: detail() },
            Error::Encode { detail: detail() },
            Error::InvalidOption { detail: detail() },
            Error::Manifest { detail: detail() },
            Error::Internal { detail: detail() },
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(Error::code).collect();
        assert_eq!(codes.len(), all.len(), "codes are unique");
        for code in codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{code}"
            );
        }
        let too_large = all[3].to_string();
        assert!(
            too_large.contains("9x9 = 81 pixels, the limit is 1"),
            "{too_large}"
        );
        assert!(
            !too_large.contains("--"),
            "no CLI flag in an engine message: {too_large}"
        );
    }
}
