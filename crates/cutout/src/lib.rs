//! Cutout's engine: background removal with RMBG-family ONNX models run by tract.
//!
//! decode -> preprocess -> tract inference -> postprocess -> encode, with no knowledge of browsers
//! or terminals. The CLI (crates/cutout-cli) and the wasm API (crates/cutout-wasm) are thin shells over
//! [`Session::run`]; ARCHITECTURE.md has the picture.

pub mod error;
pub mod hash;
pub mod image_io;
pub mod manifest;
pub mod model;
mod ops;
mod optimise;
pub mod pipeline;
mod resize;
/// Our wasm SIMD code (the matmul kernels, the quantizer, Winograd convolution), exposed for the wasm test suite to
/// hold against tract's kernels and the reference formulas.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[doc(hidden)]
pub mod wasm_kernels {
    pub use crate::ops::quantize::quantize as dynamic_quantize_u8;
    pub use crate::ops::wasm_kernels::ensure_registered;
    pub use crate::ops::wasm_kernels::f32::KERNEL_NAME as F32_KERNEL;
    pub use crate::ops::wasm_kernels::int8::KERNEL_NAME as INT8_KERNEL;
    pub use crate::ops::winograd::{WinogradConvF32, WinogradConvU8};
}

pub use error::{Error, Result};
pub use hash::sha256_hex;
/// The `image` crate this engine speaks, for shells that build pixel buffers.
pub use image;
pub use image_io::{decode, OutputFormat, DEFAULT_MAX_PIXELS};
pub use manifest::{Manifest, ModelEntry};
pub use model::{LoadPhases, Model, OpProfile};
pub use pipeline::{parse_colour, Cutout, Input, Options, OutputKind, Rendered, Session, Stage};

#[cfg(feature = "multithread")]
pub use model::set_threads;
