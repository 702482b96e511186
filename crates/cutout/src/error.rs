//! One error type for the whole engine. Every message says what went wrong in words a user can act on;
//! shells (CLI, wasm) add the file name or URL the error belongs to.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input has no bytes at all.
    EmptyInput,
    /// The bytes are not in any image format the engine decodes.
    NotAnImage { detail: String },
    /// The header declares a zero width or height.
    ZeroSize { width: u32, height: u32 },
    /// The header declares more pixels than the configured limit.
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    /// The image data is corrupt or cut short.
    CorruptImage { detail: String },
    /// Raw pixels whose buffer does not match the stated size.
    BadPixelBuffer { width: u32, height: u32, len: usize },
    /// The model bytes do not hash to the pinned sha256.
    HashMismatch { expected: String, actual: String },
    /// The model file is not a usable ONNX segmentation model.
    BadModel { detail: String },
    /// The model loaded but running it failed.
    Inference { detail: String },
    /// Writing the output image failed.
    Encode { detail: String },
    /// The options cannot be satisfied (e.g. crop with an empty mask, bad colour).
    InvalidOption { detail: String },
    /// The model manifest is malformed or does not name a model.
    Manifest { detail: String },
    /// A bug: the engine panicked. Never expected; reported instead of crashing the caller.
    Internal { detail: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyInput => write!(f, "the input is empty (0 bytes)"),
            Error::NotAnImage { detail } => write!(f, "not a supported image: {detail}"),
            Error::ZeroSize { width, height } => {
                write!(f, "the image has no pixels ({width}x{height})")
            }
            Error::TooManyPixels {
                width,
                height,
                max_pixels,
            } => write!(
                f,
                "the image is too large: {width}x{height} = {} pixels, the limit is {max_pixels} \
                 (raise it with --max-pixels / the maxPixels option)",
                *width as u64 * *height as u64
            ),
            Error::CorruptImage { detail } => {
                write!(f, "the image is corrupt or truncated: {detail}")
            }
            Error::BadPixelBuffer { width, height, len } => write!(
                f,
                "pixel buffer has {len} bytes but {width}x{height} RGBA needs {}",
                *width as usize * *height as usize * 4
            ),
            Error::HashMismatch { expected, actual } => write!(
                f,
                "model file hash mismatch: expected sha256 {expected}, got {actual} \
                 (the file is corrupt, incomplete or a different model)"
            ),
            Error::BadModel { detail } => write!(f, "unusable model: {detail}"),
            Error::Inference { detail } => write!(f, "inference failed: {detail}"),
            Error::Encode { detail } => write!(f, "could not encode the output: {detail}"),
            Error::InvalidOption { detail } => write!(f, "{detail}"),
            Error::Manifest { detail } => write!(f, "model manifest: {detail}"),
            Error::Internal { detail } => write!(f, "internal error (please report): {detail}"),
        }
    }
}

impl std::error::Error for Error {}

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
