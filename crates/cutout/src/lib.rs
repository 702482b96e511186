//! Cutout's engine: background removal with RMBG-family ONNX models run by tract.
//!
//! decode -> preprocess -> tract inference -> postprocess -> encode, with no knowledge of browsers
//! or terminals. The CLI (crates/cutout-cli) and the wasm API (crates/cutout-wasm) are thin shells over
//! [`Session::run`]; ARCHITECTURE.md has the picture.

pub mod edit;
pub mod error;
pub mod hash;
pub mod image_io;
pub mod manifest;
pub mod model;
mod ops;
mod optimise;
pub mod pipeline;
pub mod refine;
mod resize;
// The engine's unit tests run in headless Chromium too (`make wasm-tests`).
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

pub use error::{Error, Result};
pub use hash::sha256_hex;
/// The `image` crate this engine speaks, for shells that build pixel buffers.
pub use image;
pub use image_io::{decode, OutputFormat, DEFAULT_MAX_PIXELS};
pub use manifest::{Manifest, ModelEntry};
pub use model::{LoadPhases, Model, OpProfile};
pub use pipeline::{
    composite, parse_colour, Cutout, Input, ModelMask, Options, OutputKind, Progress, Rendered,
    Session, Stage,
};

#[cfg(feature = "multithread")]
pub use model::set_threads;
