//! Decoding input files into RGBA pixels (with EXIF orientation applied and the pixel limit enforced
//! from the header, before any pixel is decoded) and encoding results as PNG, lossless WebP or
//! JPEG.

use std::io::Cursor;

use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader,
    RgbaImage,
};

use crate::error::{Error, Result};

/// Default ceiling on decoded pixels: 50 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// Formats the engine decodes itself, for messages.
const SUPPORTED: &str = "JPEG, PNG, WebP, BMP, TIFF, GIF";

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Png,
    /// Lossless WebP (smaller than PNG for photos, same pixels).
    WebpLossless,
    /// JPEG at this quality (1-100): no transparency, so the result is flattened onto its
    /// background (white when none is chosen).
    Jpeg { quality: u8 },
}

/// The JPEG quality used when none is asked for.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::WebpLossless => "webp",
            OutputFormat::Jpeg { .. } => "jpg",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::WebpLossless => "image/webp",
            OutputFormat::Jpeg { .. } => "image/jpeg",
        }
    }

    /// Whether the format keeps an alpha channel.
    pub fn has_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg { .. })
    }

    /// From a file extension or a name like "png" / "webp" / "jpg" (case-insensitive).
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Png),
            "webp" => Some(OutputFormat::WebpLossless),
            "jpg" | "jpeg" => Some(OutputFormat::Jpeg {
                quality: DEFAULT_JPEG_QUALITY,
            }),
            _ => None,
        }
    }
}

/// Names formats we recognise but do not decode, so the message says what the file is.
fn sniff_unsupported(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(64)];
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if has(b"ftypavif") || has(b"ftypavis") {
        Some("AVIF")
    } else if has(b"ftypheic") || has(b"ftypheix") || has(b"ftypmif1") {
        Some("HEIC/HEIF")
    } else if head.starts_with(b"%PDF") {
        Some("PDF")
    } else if head.starts_with(b"<svg") || has(b"<svg") {
        Some("SVG")
    } else {
        None
    }
}

fn corrupt(e: ImageError) -> Error {
    match e {
        ImageError::Limits(l) => Error::CorruptImage {
            detail: format!("decoder limit hit: {l}"),
        },
        ImageError::Unsupported(u) => Error::NotAnImage {
            detail: u.to_string(),
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::CorruptImage {
                detail: "the data ends early".into(),
            }
        }
        other => Error::CorruptImage {
            detail: other.to_string(),
        },
    }
}

/// A JPEG must end with an EOI marker (FF D9), possibly followed by padding. The decoder fills a
/// truncated scan with grey instead of failing, so without this check a cut-off download would be
/// processed as if it were whole.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    !tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// `(width, height)` from the header alone, with the same checks and messages as [`decode`]
/// (before EXIF orientation is applied): lets a shell refuse a gigantic image before any
/// decoder allocates its pixels.
pub fn probe_dimensions(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32)> {
    Ok(open_decoder(bytes, max_pixels)?.dimensions())
}

/// Decodes `bytes` to RGBA8 with EXIF orientation applied. The header's size is checked against
/// `max_pixels` before the pixel data is touched.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbaImage> {
    let mut decoder = open_decoder(bytes, max_pixels)?;
    // A broken EXIF block should not cost the user the image: fall back to no rotation.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgba8())
}

/// Recognises the format and reads the header; refuses empty, unknown, zero-sized, too large
/// and visibly truncated images.
fn open_decoder(bytes: &[u8], max_pixels: u64) -> Result<impl ImageDecoder + '_> {
    if bytes.is_empty() {
        return Err(Error::EmptyInput);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::CorruptImage {
            detail: e.to_string(),
        })?;
    let format = match reader.format() {
        Some(f) if f.reading_enabled() => f,
        _ => {
            let detail = match sniff_unsupported(bytes) {
                Some(kind) => {
                    format!("{kind} files are not supported here (supported: {SUPPORTED})")
                }
                None => {
                    format!("the data is not in a recognised image format (supported: {SUPPORTED})")
                }
            };
            return Err(Error::NotAnImage { detail });
        }
    };
    let mut limits = image::Limits::default();
    // Room for the largest allowed image at 16 bits per channel plus decoder scratch.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::ZeroSize { width, height });
    }
    if width as u64 * height as u64 > max_pixels {
        return Err(Error::TooManyPixels {
            width,
            height,
            max_pixels,
        });
    }
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        return Err(Error::CorruptImage {
            detail: "the JPEG data ends before its end marker".into(),
        });
    }
    Ok(decoder)
}

/// Encodes an RGBA image; JPEG keeps only its colour (flatten it onto a background first).
pub fn encode_rgba(image: &RgbaImage, format: OutputFormat) -> Result<Vec<u8>> {
    if !format.has_alpha() {
        let rgb = DynamicImage::ImageRgba8(image.clone()).into_rgb8();
        return encode(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
            format,
        );
    }
    encode(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgba8,
        format,
    )
}

/// Encodes a single-channel 8-bit mask.
pub fn encode_gray(mask: &GrayImage, format: OutputFormat) -> Result<Vec<u8>> {
    match format {
        OutputFormat::Png | OutputFormat::Jpeg { .. } => encode(
            mask.as_raw(),
            mask.width(),
            mask.height(),
            image::ExtendedColorType::L8,
            format,
        ),
        // The WebP encoder takes only RGB(A): store the mask as grey RGB, which decodes to the same values.
        OutputFormat::WebpLossless => {
            let rgb = DynamicImage::ImageLuma8(mask.clone()).into_rgb8();
            encode(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
                format,
            )
        }
    }
}

fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    color: image::ExtendedColorType,
    format: OutputFormat,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let result = match format {
        OutputFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(pixels, width, height, color),
        OutputFormat::WebpLossless => image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .write_image(pixels, width, height, color),
        OutputFormat::Jpeg { quality } => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
                .write_image(pixels, width, height, color)
        }
    };
    result.map_err(|e| Error::Encode {
        detail: e.to_string(),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, y| Rgba([x as u8, y as u8, 7, 200]));
        encode_rgba(&img, OutputFormat::Png).unwrap()
    }

    #[test]
    fn png_round_trip_keeps_pixels_and_alpha() {
        let bytes = png_bytes(5, 3);
        let img = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(img.dimensions(), (5, 3));
        assert_eq!(img.get_pixel(4, 2), &Rgba([4, 2, 7, 200]));
    }

    #[test]
    fn webp_lossless_round_trip() {
        let img = RgbaImage::from_fn(6, 4, |x, y| {
            Rgba([x as u8 * 40, y as u8 * 60, 9, (x * 40) as u8])
        });
        let bytes = encode_rgba(&img, OutputFormat::WebpLossless).unwrap();
        assert_eq!(&bytes[8..12], b"WEBP");
        assert_eq!(decode(&bytes, DEFAULT_MAX_PIXELS).unwrap(), img);
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        let err = decode(&png_bytes(10, 10), 99).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooManyPixels {
                    width: 10,
                    height: 10,
                    max_pixels: 99
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_text_and_unsupported_inputs_are_named() {
        assert_eq!(decode(b"", 100).unwrap_err(), Error::EmptyInput);
        let err = decode(b"hello, I am text", 100).unwrap_err().to_string();
        assert!(err.contains("not in a recognised image format"), "{err}");
        let avif = b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miaf";
        let err = decode(avif, 100).unwrap_err().to_string();
        assert!(err.contains("AVIF files are not supported"), "{err}");
    }

    #[test]
    fn truncated_files_are_corrupt_not_silently_grey() {
        let png = png_bytes(64, 64);
        let err = decode(&png[..png.len() / 2], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, Error::CorruptImage { .. }), "{err}");
        let rgb =
            image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 3, 50]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&rgb)
            .unwrap();
        let err = decode(&jpeg[..jpeg.len() * 2 / 3], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().contains("end marker"), "{err}");
    }
}
