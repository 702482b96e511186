//! The wasm-bindgen shell over the cutout engine: what the web worker calls. Compiled only for
//! wasm32; it translates JS values to engine types and engine errors to JS `Error`s, nothing more.
#![cfg(target_arch = "wasm32")]

use cutout::image;
use cutout::image_io::{probe_dimensions, OutputFormat};
use cutout::{Manifest, ModelEntry, Options, OutputKind, Rendered, Session, Stage};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(start)]
fn start() {
    // Panics are bugs; make them readable in the console. The worker turns the resulting trap
    // into a message for the page and re-instantiates the module.
    console_error_panic_hook::set_once();
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Seconds from `performance.now()` (std's clocks do not exist on wasm32-unknown-unknown); 0
/// where there is no such clock.
fn performance_clock() -> impl Fn() -> f64 {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let now = performance
        .as_ref()
        .and_then(|p| js_sys::Reflect::get(p, &"now".into()).ok())
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    move || match (&performance, &now) {
        (Some(performance), Some(now)) => {
            now.call0(performance)
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
                / 1000.0
        }
        _ => 0.0,
    }
}

// initThreadPool(n) starts n Web Workers sharing this module's memory (the threads build).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Whether this build can run inference on several threads (after `initThreadPool`).
#[wasm_bindgen(js_name = threadsSupported)]
pub fn threads_supported() -> bool {
    cfg!(feature = "threads")
}

/// Runs inference on `threads` threads from now on (the pool must have been started with
/// `initThreadPool(threads)`); 1 in builds without threads.
#[wasm_bindgen(js_name = useThreads)]
pub fn use_threads(threads: usize) -> usize {
    #[cfg(feature = "threads")]
    {
        cutout::set_threads(threads);
        threads.max(1)
    }
    #[cfg(not(feature = "threads"))]
    {
        let _ = threads;
        1
    }
}

/// The manifest compiled into this build, as JSON.
#[wasm_bindgen(js_name = manifestJson)]
pub fn manifest_json() -> String {
    cutout::manifest::BUILTIN_MANIFEST_JSON.to_string()
}

/// `[width, height]` from an encoded image's header, without decoding pixels; throws for data
/// that is not an image the engine reads, or one over `max_pixels`.
#[wasm_bindgen(js_name = probeDimensions)]
pub fn probe_dimensions_js(bytes: &[u8], max_pixels: f64) -> Result<Vec<u32>, JsError> {
    let (w, h) = probe_dimensions(bytes, max_pixels as u64).map_err(js_error)?;
    Ok(vec![w, h])
}

/// Options as JS passes them: `{ output: "png" | "webp" | "mask", background: "#fff",
/// crop: false | true | marginPx, maxPixels, withMask }`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JsOptions {
    output: Option<String>,
    background: Option<String>,
    crop: Option<CropOption>,
    max_pixels: Option<f64>,
    with_mask: bool,
}

/// `crop: true` (no margin) or `crop: 12` (12 px margin).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CropOption {
    Flag(bool),
    Margin(f64),
}

impl JsOptions {
    fn parse(value: JsValue) -> Result<(Options, bool), JsError> {
        let js: JsOptions = if value.is_undefined() || value.is_null() {
            JsOptions::default()
        } else {
            serde_wasm_bindgen::from_value(value)
                .map_err(|e| js_error(format!("invalid options: {e}")))?
        };
        let mut options = Options::default();
        match js.output.as_deref().unwrap_or("png") {
            "png" => {}
            "webp" => options.format = OutputFormat::WebpLossless,
            "mask" => options.kind = OutputKind::Mask,
            other => {
                return Err(js_error(format!(
                    "unknown output '{other}': use png, webp or mask"
                )))
            }
        }
        if let Some(colour) = js.background.as_deref().filter(|c| !c.is_empty()) {
            options.background = Some(cutout::parse_colour(colour).map_err(js_error)?);
        }
        options.crop_margin = match js.crop {
            None | Some(CropOption::Flag(false)) => None,
            Some(CropOption::Flag(true)) => Some(0),
            Some(CropOption::Margin(m)) if m >= 0.0 => Some(m as u32),
            Some(CropOption::Margin(m)) => {
                return Err(js_error(format!(
                    "crop margin must not be negative, got {m}"
                )))
            }
        };
        if let Some(max) = js.max_pixels {
            if max.is_nan() || max < 1.0 {
                return Err(js_error("maxPixels must be a positive number"));
            }
            options.max_pixels = max as u64;
        }
        Ok((options, js.with_mask))
    }
}

/// A finished image: the encoded result and, on request, the 8-bit mask as a grey PNG.
#[wasm_bindgen]
pub struct Output {
    bytes: Vec<u8>,
    mime: &'static str,
    mask_png: Option<Vec<u8>>,
    width: u32,
    height: u32,
}

#[wasm_bindgen]
impl Output {
    /// The encoded image (moves the bytes out; call once).
    #[wasm_bindgen(js_name = takeBytes)]
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    #[wasm_bindgen(js_name = takeMaskPng)]
    pub fn take_mask_png(&mut self) -> Option<Vec<u8>> {
        self.mask_png.take()
    }

    #[wasm_bindgen(getter)]
    pub fn mime(&self) -> String {
        self.mime.to_string()
    }

    #[wasm_bindgen(getter)]
    pub fn width(&self) -> u32 {
        self.width
    }

    #[wasm_bindgen(getter)]
    pub fn height(&self) -> u32 {
        self.height
    }
}

/// A loaded model and the pipeline around it.
#[wasm_bindgen]
pub struct Engine {
    session: Session,
}

fn reporter(progress: &Option<js_sys::Function>) -> impl FnMut(Stage) + '_ {
    move |stage: Stage| {
        if let Some(f) = progress {
            // A throwing progress callback must not abort the work.
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(stage.name()));
        }
    }
}

#[wasm_bindgen]
impl Engine {
    /// Loads `model` (ONNX bytes) described by `entry_json` (a manifest entry; its sha256, when
    /// set, is verified) or by the manifest id `entry_json` names.
    #[wasm_bindgen(constructor)]
    pub fn new(model: &[u8], entry_json: &str) -> Result<Engine, JsError> {
        let entry: ModelEntry = match serde_json::from_str(entry_json) {
            Ok(entry) => entry,
            Err(_) => Manifest::builtin()
                .get(entry_json)
                .cloned()
                .ok_or_else(|| {
                    js_error(format!(
                        "'{entry_json}' is neither a manifest entry nor a model id"
                    ))
                })?,
        };
        let model = cutout::Model::load_with_clock(model, &entry, &performance_clock())
            .map_err(js_error)?;
        Ok(Engine {
            session: Session::new(model),
        })
    }

    /// Seconds each phase of loading took: `{verify, parse, typing, declutter, rewrite,
    /// optimise, plan}`.
    #[wasm_bindgen(js_name = loadPhases)]
    pub fn load_phases(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(self.session.model().load_phases()).map_err(js_error)
    }

    /// `[width, height]` the model takes.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> Vec<u32> {
        let (w, h) = self.session.model().input_size();
        vec![w as u32, h as u32]
    }

    /// Decoded RGBA pixels (e.g. `ImageData.data`) in, encoded result out.
    #[wasm_bindgen(js_name = processRgba)]
    pub fn process_rgba(
        &self,
        pixels: Vec<u8>,
        width: u32,
        height: u32,
        options: JsValue,
        progress: Option<js_sys::Function>,
    ) -> Result<Output, JsError> {
        let (options, with_mask) = JsOptions::parse(options)?;
        let image = cutout::pipeline::rgba_image(pixels, width, height).map_err(js_error)?;
        self.finish(&image, &options, with_mask, &progress)
    }

    /// Times every op of one inference on decoded RGBA pixels: `[{op, calls, seconds}]`,
    /// longest first (for the benchmark's `--profile`).
    pub fn profile(&self, pixels: Vec<u8>, width: u32, height: u32) -> Result<JsValue, JsError> {
        let image = cutout::pipeline::rgba_image(pixels, width, height).map_err(js_error)?;
        let ops = self
            .session
            .profile(&image, &performance_clock())
            .map_err(js_error)?;
        serde_wasm_bindgen::to_value(&ops).map_err(js_error)
    }

    /// Encoded image bytes in (formats the browser cannot decode, such as TIFF), result out.
    #[wasm_bindgen(js_name = processEncoded)]
    pub fn process_encoded(
        &self,
        bytes: &[u8],
        options: JsValue,
        progress: Option<js_sys::Function>,
    ) -> Result<Output, JsError> {
        let (options, with_mask) = JsOptions::parse(options)?;
        reporter(&progress)(Stage::Decode);
        let image = cutout::decode(bytes, options.max_pixels).map_err(js_error)?;
        self.finish(&image, &options, with_mask, &progress)
    }
}

impl Engine {
    fn finish(
        &self,
        image: &image::RgbaImage,
        options: &Options,
        with_mask: bool,
        progress: &Option<js_sys::Function>,
    ) -> Result<Output, JsError> {
        let mut report = reporter(progress);
        let (rendered, mask) = self
            .session
            .process_image_with_mask(image, options, &mut report)
            .map_err(js_error)?;
        report(Stage::Encode);
        let (width, height) = rendered.dimensions();
        let bytes = rendered.encode(options.format).map_err(js_error)?;
        let mask_png = if with_mask {
            Some(
                Rendered::Mask(mask)
                    .encode(OutputFormat::Png)
                    .map_err(js_error)?,
            )
        } else {
            None
        };
        Ok(Output {
            bytes,
            mime: options.format.mime_type(),
            mask_png,
            width,
            height,
        })
    }
}
