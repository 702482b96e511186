//! The pipeline, stage by stage, matching BRIA's RMBG-1.4 reference:
//! decode -> RGB -> bilinear resize to the model size (PyTorch semantics) -> truncate to u8 ->
//! normalise -> infer -> bilinear resize of the mask to the original size -> min-max ->
//! truncate to u8 -> alpha = mask x original alpha -> render (cutout, mask, background, crop) -> encode.
//! With `Options::refine` (the default) the mask's resize follows the photo's edges and the cutout's
//! semi-transparent pixels get the subject's colour (crate::refine); without it every value is the
//! reference's.

use std::borrow::Cow;
use std::sync::Arc;

use image::imageops::FilterType;
use image::{GrayImage, ImageBuffer, Rgba, RgbaImage};

use crate::edit::{self, Stroke};
use crate::error::{Error, Result};
use crate::image_io::{self, OutputFormat};
use crate::manifest::{Normalisation, OutputSpec};
use crate::model::Model;
use crate::refine;
use crate::resize::bilinear_planar;

/// Stages reported to progress callbacks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Decode,
    Preprocess,
    Inference,
    Postprocess,
    Encode,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Decode,
        Stage::Preprocess,
        Stage::Inference,
        Stage::Postprocess,
        Stage::Encode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
            Stage::Encode => "encode",
        }
    }
}

/// What a long run reports as it goes: each stage as it starts, and during inference the
/// fraction of the graph's work done.
pub trait Progress {
    fn stage(&mut self, stage: Stage);
    /// Between 0 and 1, rising; called after each node of the graph.
    fn inference(&mut self, _fraction_done: f32) {}
}

/// Stages only, for callers that show no more.
struct Stages<'a>(&'a mut dyn FnMut(Stage));

impl Progress for Stages<'_> {
    fn stage(&mut self, stage: Stage) {
        (self.0)(stage)
    }
}

/// What the output image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// The input with the background made transparent.
    #[default]
    Cutout,
    /// The alpha mask alone, as an 8-bit grey image (255 = subject).
    Mask,
}

/// Options shared by the CLI, the wasm API and JS.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub kind: OutputKind,
    /// Composite the cutout over this RGBA colour instead of leaving it transparent.
    pub background: Option<[u8; 4]>,
    /// Composite the cutout over this picture, scaled to cover the output and centred (over
    /// `background`, where the picture is transparent).
    pub background_image: Option<Arc<RgbaImage>>,
    /// Crop to the subject's bounding box, keeping this many pixels of margin on each side.
    pub crop_margin: Option<u32>,
    pub format: OutputFormat,
    /// Scale the result down so that its longer side is at most this many pixels.
    pub max_side: Option<u32>,
    pub max_pixels: u64,
    /// Edge refinement (edge-aware upsampling of the mask, the subject's colour in semi-transparent
    /// pixels); off gives the reference pipeline's values.
    pub refine: bool,
    /// Also return [`Cutout::view`], for an editor to show and paint on.
    pub keep_view: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kind: OutputKind::Cutout,
            background: None,
            background_image: None,
            crop_margin: None,
            format: OutputFormat::Png,
            max_side: None,
            max_pixels: image_io::DEFAULT_MAX_PIXELS,
            refine: true,
            keep_view: false,
        }
    }
}

/// Alpha at or above which a pixel counts as subject when cropping (about 3%): low enough to keep
/// wisps of hair, high enough to ignore faint noise far from the subject.
const CROP_ALPHA_THRESHOLD: u8 = 8;

/// Resizes the RGB channels of `image` to the model's input size and normalises them, as BRIA's
/// `preprocess_image` does: float resize, cast to uint8 (truncation), /255, (x - mean) / std.
pub fn preprocess(
    image: &RgbaImage,
    (width, height): (usize, usize),
    norm: &Normalisation,
) -> Vec<f32> {
    let raw = image.as_raw();
    let mut planes = bilinear_planar(
        3,
        (image.width() as usize, image.height() as usize),
        (width, height),
        |plane, index| raw[index * 4 + plane] as f32,
    );
    let plane_len = width * height;
    for (c, plane) in planes.chunks_mut(plane_len).enumerate() {
        let (mean, std) = (norm.mean[c], norm.std[c]);
        for v in plane {
            // `as u8` truncates toward zero and saturates, like torch's `.type(torch.uint8)` here.
            let byte = *v as u8;
            *v = (byte as f32 / 255.0 - mean) / std;
        }
    }
    planes
}

/// The raw model output as probabilities on the model's grid: the sigmoid if the graph has none,
/// then the reference's min-max stretch.
pub fn unit_mask(raw_mask: &[f32], spec: &OutputSpec) -> Vec<f32> {
    let mut mask: Vec<f32> = if spec.sigmoid_applied {
        raw_mask.to_vec()
    } else {
        raw_mask.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
    };
    stretch(&mut mask, spec);
    mask
}

/// BRIA's min-max stretch, where the spec asks for it; values end in [0, 1].
fn stretch(values: &mut [f32], spec: &OutputSpec) {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    // A flat mask cannot be stretched (BRIA's code would divide by zero): keep it as it is.
    let stretch = spec.min_max_normalise && hi - lo > f32::EPSILON;
    for v in values {
        let unit = if stretch { (*v - lo) / (hi - lo) } else { *v };
        *v = unit.clamp(0.0, 1.0);
    }
}

/// Turns the raw model output into an 8-bit mask at the original size, as BRIA's
/// `postprocess_image` does: bilinear resize, min-max stretch, x255, truncate.
pub fn postprocess(
    raw_mask: &[f32],
    (mask_w, mask_h): (usize, usize),
    (width, height): (u32, u32),
    spec: &OutputSpec,
) -> GrayImage {
    let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
    let mut resized = bilinear_planar(
        1,
        (mask_w, mask_h),
        (width as usize, height as usize),
        |_, i| {
            let v = raw_mask[i];
            if spec.sigmoid_applied {
                v
            } else {
                sigmoid(v)
            }
        },
    );
    stretch(&mut resized, spec);
    let pixels = resized.iter().map(|v| (v * 255.0) as u8).collect();
    GrayImage::from_raw(width, height, pixels).expect("buffer sized from the dimensions")
}

/// Final alpha: the model's mask times the input's own alpha, so existing transparency stays.
pub fn combine_alpha(mask: &mut GrayImage, image: &RgbaImage) {
    for (m, px) in mask.pixels_mut().zip(image.pixels()) {
        let alpha = px[3] as u32;
        if alpha != 255 {
            m[0] = ((m[0] as u32 * alpha + 127) / 255) as u8;
        }
    }
}

/// Bounding box (x, y, w, h) of pixels at or above the crop threshold, grown by `margin` and
/// clamped to the image, or `None` if the mask is empty.
pub fn subject_bounds(mask: &GrayImage, margin: u32) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] >= CROP_ALPHA_THRESHOLD {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 == u32::MAX {
        return None;
    }
    let x0 = x0.saturating_sub(margin);
    let y0 = y0.saturating_sub(margin);
    let x1 = x1.saturating_add(margin).min(mask.width() - 1);
    let y1 = y1.saturating_add(margin).min(mask.height() - 1);
    Some((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// Source-over compositing of a straight-alpha pixel onto a straight-alpha background.
fn over(fg: [u8; 3], alpha: u8, bg: [u8; 4]) -> Rgba<u8> {
    let a = alpha as f32 / 255.0;
    let ba = bg[3] as f32 / 255.0;
    let out_a = a + ba * (1.0 - a);
    if out_a <= 0.0 {
        return Rgba([0, 0, 0, 0]);
    }
    let channel = |f: u8, b: u8| {
        ((f as f32 * a + b as f32 * ba * (1.0 - a)) / out_a)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    Rgba([
        channel(fg[0], bg[0]),
        channel(fg[1], bg[1]),
        channel(fg[2], bg[2]),
        (out_a * 255.0).round() as u8,
    ])
}

/// The rendered result before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Rgba(RgbaImage),
    Mask(GrayImage),
}

impl Rendered {
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Rendered::Rgba(i) => i.dimensions(),
            Rendered::Mask(m) => m.dimensions(),
        }
    }

    pub fn encode(&self, format: OutputFormat) -> Result<Vec<u8>> {
        match self {
            Rendered::Rgba(i) => image_io::encode_rgba(i, format),
            Rendered::Mask(m) => image_io::encode_gray(m, format),
        }
    }
}

/// Applies the output options to an image and its final alpha mask.
pub fn render(image: &RgbaImage, alpha: &GrayImage, options: &Options) -> Result<Rendered> {
    let bounds = match options.crop_margin {
        Some(margin) => Some(subject_bounds(alpha, margin).ok_or_else(|| {
            Error::InvalidOption {
                detail:
                    "cannot crop: no subject was found (the mask is empty); run without crop to \
                     get the full-size transparent image"
                        .into(),
            }
        })?),
        None => None,
    };
    let (x0, y0, w, h) = bounds.unwrap_or((0, 0, image.width(), image.height()));
    let rendered = match options.kind {
        OutputKind::Mask => Rendered::Mask(GrayImage::from_fn(w, h, |x, y| {
            *alpha.get_pixel(x0 + x, y0 + y)
        })),
        OutputKind::Cutout => {
            // A format without alpha shows the background it is flattened onto: white unless
            // one was chosen.
            let colour = match options.background {
                Some(colour) if !options.format.has_alpha() => Some(over_white(colour)),
                None if !options.format.has_alpha() => Some([255, 255, 255, 255]),
                other => other,
            };
            let picture = options
                .background_image
                .as_deref()
                .map(|picture| cover(picture, w, h));
            Rendered::Rgba(RgbaImage::from_fn(w, h, |x, y| {
                let px = image.get_pixel(x0 + x, y0 + y);
                let a = alpha.get_pixel(x0 + x, y0 + y)[0];
                let behind = match (&picture, colour) {
                    (Some(picture), colour) => {
                        let p = picture.get_pixel(x, y).0;
                        Some(match colour {
                            Some(colour) => over([p[0], p[1], p[2]], p[3], colour).0,
                            None => p,
                        })
                    }
                    (None, colour) => colour,
                };
                match behind {
                    Some(bg) => over([px[0], px[1], px[2]], a, bg),
                    None => Rgba([px[0], px[1], px[2], a]),
                }
            }))
        }
    };
    Ok(match options.max_side {
        Some(side) => shrink(rendered, side),
        None => rendered,
    })
}

/// A colour as it shows over white (what a format without alpha stores for it).
fn over_white(colour: [u8; 4]) -> [u8; 4] {
    over(
        [colour[0], colour[1], colour[2]],
        colour[3],
        [255, 255, 255, 255],
    )
    .0
}

/// `picture` scaled (up or down) to cover `width` x `height` and cut to it, centred.
fn cover(picture: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    if picture.width() == 0 || picture.height() == 0 {
        return RgbaImage::new(width, height);
    }
    let (pw, ph) = picture.dimensions();
    let scale = (width as f64 / pw as f64).max(height as f64 / ph as f64);
    // The part of the picture that ends up in the output, cut first and scaled alone: scaling
    // the whole picture would cost memory in proportion to the output's aspect ratio against
    // the picture's (a thin picture behind a wide photo), not to the output.
    let part_w = ((width as f64 / scale).round() as u32).clamp(1, pw);
    let part_h = ((height as f64 / scale).round() as u32).clamp(1, ph);
    let (left, top) = ((pw - part_w) / 2, (ph - part_h) / 2);
    let part = image::imageops::crop_imm(picture, left, top, part_w, part_h).to_image();
    image::imageops::resize(&part, width, height, FilterType::Triangle)
}

/// Scales `rendered` down so its longer side is at most `side` (never up). Colours are
/// weighted by alpha while resampling, so no dark or old-background fringe appears at edges.
fn shrink(rendered: Rendered, side: u32) -> Rendered {
    let (w, h) = rendered.dimensions();
    let longer = w.max(h);
    if side == 0 || longer <= side {
        return rendered;
    }
    let scale = side as f64 / longer as f64;
    let new_w = ((w as f64 * scale).round() as u32).max(1);
    let new_h = ((h as f64 * scale).round() as u32).max(1);
    match rendered {
        Rendered::Mask(mask) => Rendered::Mask(image::imageops::resize(
            &mask,
            new_w,
            new_h,
            FilterType::CatmullRom,
        )),
        Rendered::Rgba(image) => {
            // Premultiplied, in 16 bits: colour x alpha, and alpha x 257.
            let premultiplied: ImageBuffer<Rgba<u16>, Vec<u16>> =
                ImageBuffer::from_fn(w, h, |x, y| {
                    let [r, g, b, a] = image.get_pixel(x, y).0;
                    let a16 = a as u16;
                    Rgba([r as u16 * a16, g as u16 * a16, b as u16 * a16, a16 * 257])
                });
            drop(image);
            let small =
                image::imageops::resize(&premultiplied, new_w, new_h, FilterType::CatmullRom);
            Rendered::Rgba(RgbaImage::from_fn(new_w, new_h, |x, y| {
                let [r, g, b, a] = small.get_pixel(x, y).0;
                let alpha = a as f32 / 257.0;
                if alpha < 0.5 {
                    return Rgba([0, 0, 0, 0]);
                }
                let colour = |c: u16| (c as f32 / alpha).round().clamp(0.0, 255.0) as u8;
                Rgba([colour(r), colour(g), colour(b), alpha.round() as u8])
            }))
        }
    }
}

/// Raw RGBA bytes (e.g. a canvas's ImageData) as an image, refusing a buffer of the wrong length.
pub fn rgba_image(rgba: Vec<u8>, width: u32, height: u32) -> Result<RgbaImage> {
    let len = rgba.len();
    RgbaImage::from_raw(width, height, rgba)
        .filter(|_| len == width as usize * height as usize * 4)
        .ok_or(Error::BadPixelBuffer { width, height, len })
}

/// What [`Session::run`] takes: an encoded file (PNG, JPEG, WebP, ...) or decoded pixels.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Encoded(&'a [u8]),
    Pixels(&'a RgbaImage),
}

/// What [`Session::run`] returns: the rendered result, its encoded file and the full-size mask.
#[derive(Debug, Clone)]
pub struct Cutout {
    /// The result as options asked (cutout or mask, background, crop), before encoding.
    pub image: Rendered,
    /// `image` encoded in the options' format.
    pub encoded: Vec<u8>,
    /// The final alpha (subject = 255) at the input's size, uncropped.
    pub alpha: GrayImage,
    /// With [`Options::keep_view`]: the cutout at the input's size whatever the options (the
    /// subject's colours at its edges when refined, the final alpha, no crop or background).
    pub view: Option<RgbaImage>,
}

/// A loaded model plus the pipeline around it. Load once, process many images.
#[derive(Debug, Clone)]
pub struct Session {
    model: Model,
}

impl Session {
    pub fn new(model: Model) -> Session {
        Session { model }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The whole pipeline, reporting each stage to `progress` as it starts: decode (for an
    /// encoded input), preprocess, inference, postprocess, encode.
    pub fn run(
        &self,
        input: Input,
        options: &Options,
        progress: &mut dyn FnMut(Stage),
    ) -> Result<Cutout> {
        self.run_reporting(input, options, &mut Stages(progress))
    }

    /// [`Session::run`], reporting inference's progress too.
    pub fn run_reporting(
        &self,
        input: Input,
        options: &Options,
        progress: &mut dyn Progress,
    ) -> Result<Cutout> {
        let image = self.decoded(input, options, progress)?;
        let alpha = self
            .model_mask_reporting(&image, progress)?
            .alpha(&image, options.refine);
        finish(image, alpha, options, progress)
    }

    /// The input's pixels, decoded if need be, within the options' pixel limit.
    fn decoded<'a>(
        &self,
        input: Input<'a>,
        options: &Options,
        progress: &mut dyn Progress,
    ) -> Result<Cow<'a, RgbaImage>> {
        let image = match input {
            Input::Encoded(bytes) => {
                progress.stage(Stage::Decode);
                Cow::Owned(image_io::decode(bytes, options.max_pixels)?)
            }
            Input::Pixels(image) => Cow::Borrowed(image),
        };
        if image.width() as u64 * image.height() as u64 > options.max_pixels {
            return Err(Error::TooManyPixels {
                width: image.width(),
                height: image.height(),
                max_pixels: options.max_pixels,
            });
        }
        Ok(image)
    }

    /// Times every op of one inference on `image` (preprocessed as [`Session::run`] does):
    /// seconds per op type, longest first.
    pub fn profile(&self, image: &RgbaImage) -> Result<Vec<crate::OpProfile>> {
        let input = preprocess(
            image,
            self.model.input_size(),
            &self.model.entry().normalisation,
        );
        self.model.profile(input)
    }

    /// The model's mask of `image` (preprocess and inference), before it is brought to the
    /// image's size: what [`ModelMask::alpha`] turns into the final alpha, as often as needed.
    pub fn model_mask(
        &self,
        image: &RgbaImage,
        progress: &mut dyn FnMut(Stage),
    ) -> Result<ModelMask> {
        self.model_mask_reporting(image, &mut Stages(progress))
    }

    fn model_mask_reporting(
        &self,
        image: &RgbaImage,
        progress: &mut dyn Progress,
    ) -> Result<ModelMask> {
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::ZeroSize {
                width: image.width(),
                height: image.height(),
            });
        }
        let entry = self.model.entry();
        progress.stage(Stage::Preprocess);
        let input = preprocess(image, self.model.input_size(), &entry.normalisation);
        progress.stage(Stage::Inference);
        let raw = self
            .model
            .infer_reporting(input, &mut |done| progress.inference(done))?;
        progress.stage(Stage::Postprocess);
        Ok(ModelMask {
            raw,
            size: self.model.mask_size(),
            spec: entry.output.clone(),
        })
    }
}

/// The end of the pipeline, from the final alpha: the subject's colours at its edges (with
/// `refine`), the options rendered and encoded.
fn finish(
    mut image: Cow<RgbaImage>,
    alpha: GrayImage,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Cutout> {
    let wants_colours = options.kind == OutputKind::Cutout || options.keep_view;
    if options.refine && wants_colours {
        refine::estimate_foreground(image.to_mut(), &alpha);
    }
    let rendered = render(&image, &alpha, options)?;
    progress.stage(Stage::Encode);
    let view = options.keep_view.then(|| {
        let mut view = image.into_owned();
        for (px, a) in view.pixels_mut().zip(alpha.pixels()) {
            px[3] = a[0];
        }
        view
    });
    Ok(Cutout {
        encoded: rendered.encode(options.format)?,
        image: rendered,
        alpha,
        view,
    })
}

/// A result made again without inference: `model_alpha` (a [`Cutout::alpha`] of `image`) with
/// the touch-up `strokes` applied, then rendered with `options` as [`Session::run`] renders.
pub fn composite(
    image: &RgbaImage,
    model_alpha: &GrayImage,
    strokes: &[Stroke],
    options: &Options,
) -> Result<Cutout> {
    if image.dimensions() != model_alpha.dimensions() {
        return Err(Error::InvalidOption {
            detail: format!(
                "the mask is {}x{} but the image is {}x{}",
                model_alpha.width(),
                model_alpha.height(),
                image.width(),
                image.height()
            ),
        });
    }
    let mut alpha = model_alpha.clone();
    edit::apply_strokes(&mut alpha, image, strokes)?;
    finish(
        Cow::Borrowed(image),
        alpha,
        options,
        &mut Stages(&mut |_| {}),
    )
}

/// A model's raw output on its own grid, for one image.
#[derive(Debug, Clone)]
pub struct ModelMask {
    raw: Vec<f32>,
    size: (usize, usize),
    spec: OutputSpec,
}

impl ModelMask {
    /// The final alpha (subject = 255) at `image`'s size, times its own alpha: guided by its
    /// colours with `refine`, else resized as the reference does.
    pub fn alpha(&self, image: &RgbaImage, refine: bool) -> GrayImage {
        let mut mask = if refine {
            refine::upsample(&unit_mask(&self.raw, &self.spec), self.size, image)
        } else {
            postprocess(&self.raw, self.size, image.dimensions(), &self.spec)
        };
        combine_alpha(&mut mask, image);
        mask
    }
}

/// Parses a colour: `#rgb`, `#rrggbb`, `#rrggbbaa` (the `#` is optional) or a few names.
pub fn parse_colour(text: &str) -> Result<[u8; 4]> {
    let named = match text.trim().to_ascii_lowercase().as_str() {
        "white" => Some([255, 255, 255, 255]),
        "black" => Some([0, 0, 0, 255]),
        "red" => Some([255, 0, 0, 255]),
        "green" => Some([0, 128, 0, 255]),
        "blue" => Some([0, 0, 255, 255]),
        "grey" | "gray" => Some([128, 128, 128, 255]),
        "transparent" => Some([0, 0, 0, 0]),
        _ => None,
    };
    if let Some(c) = named {
        return Ok(c);
    }
    let hex = text.trim().trim_start_matches('#');
    let bad = || {
        Error::InvalidOption {
        detail: format!(
            "'{text}' is not a colour: use #rrggbb, #rrggbbaa, #rgb or white/black/red/green/blue/grey"
        ),
    }
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
    match hex.len() {
        3 => {
            let nibble = |i: usize| {
                u8::from_str_radix(&hex[i..i + 1], 16)
                    .map(|v| v * 17)
                    .map_err(|_| bad())
            };
            Ok([nibble(0)?, nibble(1)?, nibble(2)?, 255])
        }
        6 => Ok([byte(0)?, byte(2)?, byte(4)?, 255]),
        8 => Ok([byte(0)?, byte(2)?, byte(4)?, byte(6)?]),
        _ => Err(bad()),
    }
}
