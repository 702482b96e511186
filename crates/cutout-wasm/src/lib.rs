//! The wasm-bindgen shell over the cutout engine: what the web worker calls. Compiled only for
//! wasm32; it translates JS values to engine types and engine errors to JS `Error`s, nothing more.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use cutout::edit::Stroke;
use cutout::image_io::{probe_dimensions, OutputFormat, DEFAULT_JPEG_QUALITY};
use cutout::{
    Input, Manifest, ModelEntry, Options, OutputKind, Progress, Rendered, Session, Stage,
};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    // Panics are bugs; make them readable in the console. The worker turns the resulting trap
    // into a message for the page and re-instantiates the module.
    console_error_panic_hook::set_once();
}

/// An engine error as a JS `Error` whose `name` is the engine's stable code
/// ([`cutout::Error::code`]), so JS tells failures apart without reading the message.
pub struct EngineError(js_sys::Error);

impl From<cutout::Error> for EngineError {
    fn from(error: cutout::Error) -> EngineError {
        let js = js_sys::Error::new(&error.to_string());
        js.set_name(error.code());
        EngineError(js)
    }
}

impl From<EngineError> for JsValue {
    fn from(error: EngineError) -> JsValue {
        error.0.into()
    }
}

fn invalid_option(detail: impl Into<String>) -> EngineError {
    cutout::Error::InvalidOption {
        detail: detail.into(),
    }
    .into()
}

/// A result that could not cross into JS: a bug, reported as one.
fn internal(e: impl std::fmt::Display) -> EngineError {
    cutout::Error::Internal {
        detail: e.to_string(),
    }
    .into()
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
pub fn probe_dimensions_js(bytes: &[u8], max_pixels: f64) -> Result<Vec<u32>, EngineError> {
    let (w, h) = probe_dimensions(bytes, max_pixels as u64)?;
    Ok(vec![w, h])
}

/// Options as JS passes them: `{ output: "png" | "webp" | "jpeg" | "mask", quality: 1-100,
/// background: "#fff", crop: false | true | marginPx, maxSide: px, maxPixels, refine: true |
/// false, withMask, withAlpha, withView }`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JsOptions {
    output: Option<String>,
    quality: Option<f64>,
    background: Option<String>,
    crop: Option<CropOption>,
    max_side: Option<f64>,
    max_pixels: Option<f64>,
    refine: Option<bool>,
    with_mask: bool,
    with_alpha: bool,
    with_view: bool,
}

/// What an Output carries besides the encoded result.
#[derive(Debug, Clone, Copy, Default)]
struct Extras {
    /// The mask as a grey PNG.
    mask_png: bool,
    /// The final alpha, one byte per pixel at the input's size: what `composite` starts from.
    alpha: bool,
}

/// `crop: true` (no margin) or `crop: 12` (12 px margin).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CropOption {
    Flag(bool),
    Margin(f64),
}

impl JsOptions {
    fn parse(value: JsValue) -> Result<(Options, Extras), EngineError> {
        let js: JsOptions = if value.is_undefined() || value.is_null() {
            JsOptions::default()
        } else {
            serde_wasm_bindgen::from_value(value)
                .map_err(|e| invalid_option(format!("invalid options: {e}")))?
        };
        let mut options = Options::default();
        match js.output.as_deref().unwrap_or("png") {
            "png" => {}
            "webp" => options.format = OutputFormat::WebpLossless,
            "jpeg" | "jpg" => {
                let quality = match js.quality {
                    None => DEFAULT_JPEG_QUALITY,
                    Some(q) if (1.0..=100.0).contains(&q) => q.round() as u8,
                    Some(q) => {
                        return Err(invalid_option(format!(
                            "JPEG quality must be between 1 and 100, got {q}"
                        )))
                    }
                };
                options.format = OutputFormat::Jpeg { quality }
            }
            "mask" => options.kind = OutputKind::Mask,
            other => {
                return Err(invalid_option(format!(
                    "unknown output '{other}': use png, webp, jpeg or mask"
                )))
            }
        }
        options.max_side = match js.max_side {
            None => None,
            Some(side) if side >= 1.0 => Some(side as u32),
            Some(side) => {
                return Err(invalid_option(format!(
                    "maxSide must be at least 1 pixel, got {side}"
                )))
            }
        };
        if let Some(colour) = js.background.as_deref().filter(|c| !c.is_empty()) {
            options.background = Some(cutout::parse_colour(colour)?);
        }
        options.crop_margin = match js.crop {
            None | Some(CropOption::Flag(false)) => None,
            Some(CropOption::Flag(true)) => Some(0),
            Some(CropOption::Margin(m)) if m >= 0.0 => Some(m as u32),
            Some(CropOption::Margin(m)) => {
                return Err(invalid_option(format!(
                    "crop margin must not be negative, got {m}"
                )))
            }
        };
        if let Some(max) = js.max_pixels {
            if max.is_nan() || max < 1.0 {
                return Err(invalid_option("maxPixels must be a positive number"));
            }
            options.max_pixels = max as u64;
        }
        options.refine = js.refine.unwrap_or(true);
        options.keep_view = js.with_view;
        let extras = Extras {
            mask_png: js.with_mask,
            alpha: js.with_alpha,
        };
        Ok((options, extras))
    }
}

/// A finished image: the encoded result and, on request, the 8-bit mask as a grey PNG and the
/// raw alpha.
#[wasm_bindgen]
pub struct Output {
    bytes: Vec<u8>,
    mime: &'static str,
    mask_png: Option<Vec<u8>>,
    alpha: Option<Vec<u8>>,
    view: Option<Vec<u8>>,
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

    /// The cutout at the input's size as RGBA bytes, uncropped and without background (asked
    /// for with `withView`): what an editor shows.
    #[wasm_bindgen(js_name = takeView)]
    pub fn take_view(&mut self) -> Option<Vec<u8>> {
        self.view.take()
    }

    /// The final alpha at the input's size, one byte per pixel (asked for with `withAlpha`).
    #[wasm_bindgen(js_name = takeAlpha)]
    pub fn take_alpha(&mut self) -> Option<Vec<u8>> {
        self.alpha.take()
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

/// Calls JS's progress callback with `(stage)` as each stage starts and `("inference",
/// fraction)` as the graph runs.
struct Reporter<'a>(&'a Option<js_sys::Function>);

impl Progress for Reporter<'_> {
    fn stage(&mut self, stage: Stage) {
        if let Some(f) = self.0 {
            // A throwing progress callback must not abort the work.
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(stage.name()));
        }
    }

    fn inference(&mut self, fraction_done: f32) {
        if let Some(f) = self.0 {
            let stage = JsValue::from_str(Stage::Inference.name());
            let _ = f.call2(
                &JsValue::NULL,
                &stage,
                &JsValue::from_f64(fraction_done as f64),
            );
        }
    }
}

#[wasm_bindgen]
impl Engine {
    /// Loads `model` (ONNX bytes) described by `entry_json` (a manifest entry; its sha256, when
    /// set, is verified) or by the manifest id `entry_json` names.
    #[wasm_bindgen(constructor)]
    pub fn new(model: &[u8], entry_json: &str) -> Result<Engine, EngineError> {
        let entry: ModelEntry = match serde_json::from_str(entry_json) {
            Ok(entry) => entry,
            Err(_) => Manifest::builtin()
                .get(entry_json)
                .cloned()
                .ok_or_else(|| cutout::Error::Manifest {
                    detail: format!("'{entry_json}' is neither a manifest entry nor a model id"),
                })?,
        };
        let model = cutout::Model::load(model, &entry)?;
        Ok(Engine {
            session: Session::new(model),
        })
    }

    /// Seconds each phase of loading took: `{verify, parse, typing, declutter, rewrite,
    /// optimise, plan}`.
    #[wasm_bindgen(js_name = loadPhases)]
    pub fn load_phases(&self) -> Result<JsValue, EngineError> {
        serde_wasm_bindgen::to_value(self.session.model().load_phases()).map_err(internal)
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
    ) -> Result<Output, EngineError> {
        let (options, extras) = JsOptions::parse(options)?;
        let image = cutout::pipeline::rgba_image(pixels, width, height)?;
        self.run(Input::Pixels(&image), &options, extras, &progress)
    }

    /// Times every op of one inference on decoded RGBA pixels: `[{op, calls, seconds}]`,
    /// longest first (for the benchmark's `--profile`).
    pub fn profile(
        &self,
        pixels: Vec<u8>,
        width: u32,
        height: u32,
    ) -> Result<JsValue, EngineError> {
        let image = cutout::pipeline::rgba_image(pixels, width, height)?;
        let ops = self.session.profile(&image)?;
        serde_wasm_bindgen::to_value(&ops).map_err(internal)
    }

    /// Encoded image bytes in (formats the browser cannot decode, such as TIFF), result out.
    #[wasm_bindgen(js_name = processEncoded)]
    pub fn process_encoded(
        &self,
        bytes: &[u8],
        options: JsValue,
        progress: Option<js_sys::Function>,
    ) -> Result<Output, EngineError> {
        let (options, extras) = JsOptions::parse(options)?;
        self.run(Input::Encoded(bytes), &options, extras, &progress)
    }
}

impl Engine {
    fn run(
        &self,
        input: Input,
        options: &Options,
        extras: Extras,
        progress: &Option<js_sys::Function>,
    ) -> Result<Output, EngineError> {
        let cutout = self
            .session
            .run_reporting(input, options, &mut Reporter(progress))?;
        output(cutout, options, extras)
    }
}

fn output(
    cutout: cutout::Cutout,
    options: &Options,
    extras: Extras,
) -> Result<Output, EngineError> {
    let (width, height) = cutout.image.dimensions();
    let mask_png = if extras.mask_png {
        Some(Rendered::Mask(cutout.alpha.clone()).encode(OutputFormat::Png)?)
    } else {
        None
    };
    Ok(Output {
        bytes: cutout.encoded,
        mime: options.format.mime_type(),
        mask_png,
        alpha: extras.alpha.then(|| cutout.alpha.into_raw()),
        view: cutout.view.map(|view| view.into_raw()),
        width,
        height,
    })
}

/// Decodes an encoded image (formats the browser cannot, such as TIFF) to RGBA pixels:
/// `{width, height, pixels}`; refuses one over `max_pixels`.
#[wasm_bindgen(js_name = decodeRgba)]
pub fn decode_rgba(bytes: &[u8], max_pixels: f64) -> Result<DecodedImage, EngineError> {
    let image = cutout::decode(bytes, max_pixels as u64)?;
    Ok(DecodedImage {
        width: image.width(),
        height: image.height(),
        pixels: image.into_raw(),
    })
}

/// Pixels [`decode_rgba`] decoded.
#[wasm_bindgen]
pub struct DecodedImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

#[wasm_bindgen]
impl DecodedImage {
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> u32 {
        self.width
    }

    #[wasm_bindgen(getter)]
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGBA bytes (moves them out; call once).
    #[wasm_bindgen(js_name = takePixels)]
    pub fn take_pixels(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pixels)
    }
}

/// Makes a result again without inference: the photo's RGBA `pixels`, the `alpha` a
/// `processRgba` with `withAlpha` returned, the touch-up strokes as JSON (`[{mode: "erase" |
/// "restore", radius, hardness, points: [[x, y], ...]}]`), `options` as for `processRgba`, and
/// optionally a background picture's RGBA pixels with its size.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn composite(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    alpha: Vec<u8>,
    strokes_json: &str,
    options: JsValue,
    background: Option<Vec<u8>>,
    background_width: u32,
    background_height: u32,
) -> Result<Output, EngineError> {
    let (mut options, extras) = JsOptions::parse(options)?;
    let image = cutout::pipeline::rgba_image(pixels, width, height)?;
    let alpha_len = alpha.len();
    let alpha = cutout::image::GrayImage::from_raw(width, height, alpha)
        .filter(|_| alpha_len == width as usize * height as usize)
        .ok_or_else(|| {
            invalid_option(format!(
                "the mask has {alpha_len} values, not {width}x{height}"
            ))
        })?;
    let strokes: Vec<Stroke> = serde_json::from_str(strokes_json)
        .map_err(|e| invalid_option(format!("invalid brush strokes: {e}")))?;
    if let Some(background) = background {
        let picture =
            cutout::pipeline::rgba_image(background, background_width, background_height)?;
        options.background_image = Some(Arc::new(picture));
    }
    let cutout = cutout::composite(&image, &alpha, &strokes, &options)?;
    output(cutout, &options, extras)
}
