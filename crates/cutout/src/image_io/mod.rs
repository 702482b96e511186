//! Decoding input files into RGBA pixels (with EXIF orientation applied and the pixel limit enforced
//! from the header, before any pixel is decoded) and encoding results as PNG, lossless WebP or
//! JPEG.

mod header;
mod jpeg_scan;

use std::io::Cursor;

use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader,
    RgbaImage,
};

use crate::error::{Error, Result};
pub use header::{read_header, Header};

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
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => ends_early(),
        other if says_data_ends(&other.to_string()) => ends_early(),
        other => Error::CorruptImage {
            detail: plain_words(&other.to_string()),
        },
    }
}

/// Whether a decoder's message means the data stopped early: each decoder words it its own way,
/// and the user should read the same words for the same problem in every format.
fn says_data_ends(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "end of file",
        "not enough bytes",
        "unexpected eof",
        "unexpected end",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// The one message for data that stops before the image is complete, in every format.
fn ends_early() -> Error {
    Error::CorruptImage {
        detail: "the data ends before the image is complete (the file is cut short)".into(),
    }
}

/// A decoder's message without the Rust value dumps some of them carry ("CrcMismatch {
/// crc_val: ... }", "BadCodeLengthHuffmanTree"): the first clause, which names the problem.
fn plain_words(message: &str) -> String {
    let message = message
        .strip_prefix("Format error decoding ")
        .map(|rest| rest.split_once(": ").map_or(rest, |(_, m)| m))
        .unwrap_or(message);
    // Some decoders quote their message and start it with "Error".
    let message = message.trim().trim_matches('"').trim();
    let message = message.strip_prefix("Error ").unwrap_or(message);
    let first = message.split(['{', '(']).next().unwrap_or(message);
    let first = first.trim().trim_end_matches(['.', ':']).trim();
    let words: Vec<String> = first
        .split(['.', ' '])
        .filter(|w| !w.is_empty())
        .map(split_camel_case)
        .collect();
    if words.is_empty() {
        "the data is damaged".into()
    } else {
        words.join(" ")
    }
}

/// "BadCodeLengthHuffmanTree" -> "bad code length huffman tree"; ordinary words pass through.
fn split_camel_case(word: &str) -> String {
    let uppers = word.chars().filter(|c| c.is_ascii_uppercase()).count();
    let chars: Vec<char> = word.chars().collect();
    // An acronym ("SOF", "CRC") is a word of its own.
    let acronym = chars
        .windows(2)
        .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase());
    if uppers < 2 || acronym || word.chars().any(|c| !c.is_ascii_alphanumeric()) {
        return word.to_string();
    }
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn not_an_image(bytes: &[u8]) -> Error {
    let detail = match sniff_unsupported(bytes) {
        Some(kind) => format!("{kind} files are not supported here (supported: {SUPPORTED})"),
        None => format!("the data is not in a recognised image format (supported: {SUPPORTED})"),
    };
    Error::NotAnImage { detail }
}

fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<()> {
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
    Ok(())
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

/// Checks what the first bytes of a file already decide, for a shell that reads a large file
/// in pieces: an empty file, a format that is not an image, a header whose size is zero or over
/// `max_pixels`. `Ok` means the rest is worth reading (it may still fail to decode).
pub fn check_prefix(prefix: &[u8], max_pixels: u64) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::EmptyInput);
    }
    match read_header(prefix)? {
        Header::Found { width, height, .. } => check_size(width, height, max_pixels),
        Header::Incomplete(_) => Ok(()),
        Header::Unrecognised => match image::guess_format(prefix) {
            Ok(format) if format.reading_enabled() => Ok(()),
            _ => Err(not_an_image(prefix)),
        },
    }
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

/// Recognises the format and reads the header; refuses empty, unknown, zero-sized and too large
/// images, from the header's own bytes before any decoder runs.
fn open_decoder(bytes: &[u8], max_pixels: u64) -> Result<impl ImageDecoder + '_> {
    if bytes.is_empty() {
        return Err(Error::EmptyInput);
    }
    match read_header(bytes)? {
        Header::Found {
            format,
            width,
            height,
        } => {
            check_size(width, height, max_pixels)?;
            // The JPEG decoder fills missing data with grey instead of failing: the data is
            // walked first so that a file cut short is refused.
            if format == ImageFormat::Jpeg {
                jpeg_scan::check(bytes).into_result()?;
            }
            if format == ImageFormat::WebP && header::riff_cut_short(bytes) {
                return Err(ends_early());
            }
        }
        Header::Incomplete(format) => {
            return Err(Error::CorruptImage {
                detail: format!(
                    "the file ends inside its {} header (it is cut short)",
                    format_name(format)
                ),
            })
        }
        Header::Unrecognised => {}
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::CorruptImage {
            detail: e.to_string(),
        })?;
    if !reader.format().is_some_and(|f| f.reading_enabled()) {
        return Err(not_an_image(bytes));
    }
    let mut limits = image::Limits::default();
    // Room for the largest allowed image at 16 bits per channel plus decoder scratch.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, max_pixels)?;
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
    // The formats' own limits on a side, said in words before an encoder says it its way.
    let largest_side = match format {
        OutputFormat::Png => u32::MAX,
        OutputFormat::WebpLossless => 16384,
        OutputFormat::Jpeg { .. } => 65535,
    };
    if width.max(height) > largest_side {
        return Err(Error::Encode {
            detail: format!(
                "a {} holds at most {largest_side} pixels a side and this result is {width}x{height} \
                 (save it as PNG)",
                match format {
                    OutputFormat::Jpeg { .. } => "JPEG",
                    _ => "WebP",
                }
            ),
        });
    }
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
    use cutout_testkit::{encode, jpeg_with_exif_thumbnail, IMAGE_FORMATS};
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

    fn noisy(width: u32, height: u32) -> RgbaImage {
        let mut rng = cutout_testkit::Rng::new(7);
        RgbaImage::from_fn(width, height, |_, _| {
            Rgba([rng.byte(), rng.byte(), rng.byte(), 255])
        })
    }

    #[test]
    fn every_format_cut_short_is_refused_never_filled_in() {
        let image = noisy(96, 64);
        let rgb = DynamicImage::ImageRgba8(image.clone()).into_rgb8();
        // The image crate writes baseline JPEG only; progressive files (what browsers and phones
        // often save) and restart markers are real cases whose scans can be cut too.
        let jpeg_with = |configure: &dyn Fn(&mut jpeg_encoder::Encoder<&mut Vec<u8>>)| {
            let mut out = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
            configure(&mut encoder);
            encoder
                .encode(rgb.as_raw(), 96, 64, jpeg_encoder::ColorType::Rgb)
                .unwrap();
            out
        };
        let progressive = jpeg_with(&|e| e.set_progressive(true));
        let restarts = jpeg_with(&|e| e.set_restart_interval(2));
        let progressive_restarts = jpeg_with(&|e| {
            e.set_progressive(true);
            e.set_restart_interval(3);
        });
        // An EXIF block holding a thumbnail, whose own end marker must not pass for the file's.
        let with_thumbnail = jpeg_with_exif_thumbnail(&encode(&image, ImageFormat::Jpeg));
        let mut files: Vec<(&str, Vec<u8>)> = IMAGE_FORMATS
            .into_iter()
            .map(|f| (format_name(f), encode(&image, f)))
            .collect();
        files.extend([
            ("progressive JPEG", progressive),
            ("JPEG with restart markers", restarts),
            (
                "progressive JPEG with restart markers",
                progressive_restarts,
            ),
            ("JPEG with an EXIF thumbnail", with_thumbnail),
        ]);
        for (name, bytes) in &files {
            decode(bytes, DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{name} whole: {e}"));
            for cut in [
                bytes.len() / 10,
                bytes.len() / 3,
                bytes.len() * 2 / 3,
                bytes.len() - 40,
            ] {
                let err = decode(&bytes[..cut], DEFAULT_MAX_PIXELS)
                    .err()
                    .unwrap_or_else(|| {
                        panic!("{name} cut to {cut} of {} bytes decoded", bytes.len())
                    });
                assert!(
                    matches!(err, Error::CorruptImage { .. }),
                    "{name} at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn a_jpeg_cut_and_closed_with_an_end_marker_is_refused() {
        // What a decoder that only looks for the end marker accepts: part of the scan, then FF D9.
        let image = noisy(96, 64);
        let rgb = DynamicImage::ImageRgba8(image.clone()).into_rgb8();
        let mut progressive = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 90);
        encoder.set_progressive(true);
        encoder
            .encode(rgb.as_raw(), 96, 64, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        for bytes in [encode(&image, ImageFormat::Jpeg), progressive] {
            for cut in [bytes.len() / 2, bytes.len() - 30] {
                let mut closed = bytes[..cut].to_vec();
                closed.extend([0xFF, 0xD9]);
                let err = decode(&closed, DEFAULT_MAX_PIXELS).map_err(|e| e.to_string());
                assert_eq!(
                    err.err().as_deref(),
                    Some("the image is corrupt or truncated: the data ends before the image is complete (the file is cut short)")
                );
            }
        }
        // A header that claims far more pixels than its few bytes of data can hold.
        let mut claims = encode(&noisy(16, 16), ImageFormat::Jpeg);
        let sof = claims.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        claims[sof + 5..sof + 9].copy_from_slice(&[0x1B, 0x58, 0x1B, 0x58]);
        let err = decode(&claims, DEFAULT_MAX_PIXELS).err();
        assert!(matches!(err, Some(Error::CorruptImage { .. })), "{err:?}");
    }

    #[test]
    fn every_format_too_large_is_refused_from_its_header_in_the_same_words() {
        for format in IMAGE_FORMATS {
            let bytes = encode(&noisy(40, 30), format);
            let too_large_message =
                "the image is too large: 40x30 = 1200 pixels, the limit is 1199".to_string();
            let err = decode(&bytes, 1199).map_err(|e| e.to_string());
            assert_eq!(err.err(), Some(too_large_message.clone()), "{format:?}");
            // The first bytes alone decide it, so a shell can stop reading a huge file (but a
            // TIFF may keep its header at the end, as this encoder does).
            if format != ImageFormat::Tiff {
                let err = check_prefix(&bytes[..64], 1199).map_err(|e| e.to_string());
                assert_eq!(err, Err(too_large_message.clone()), "{format:?}");
            }
        }
    }

    #[test]
    fn a_result_too_wide_for_its_format_says_so() {
        let wide = RgbaImage::new(16385, 1);
        let err = encode_rgba(&wide, OutputFormat::WebpLossless).map_err(|e| e.to_string());
        assert_eq!(
            err.err().as_deref(),
            Some("could not encode the output: a WebP holds at most 16384 pixels a side and this result is 16385x1 (save it as PNG)")
        );
        assert!(encode_rgba(&wide, OutputFormat::Png).is_ok());
    }

    #[test]
    fn decoder_messages_are_plain_words() {
        let png = encode(&noisy(64, 64), ImageFormat::Png);
        let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
        let mut damaged = png.clone();
        damaged[idat + 12] ^= 0xFF;
        let err = decode(&damaged, DEFAULT_MAX_PIXELS)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the image is corrupt or truncated: "),
            "{err}"
        );
        assert!(
            !err.contains(['{', '}']) && !err.contains("Format error"),
            "no debug dump: {err}"
        );
        assert_eq!(
            plain_words(
                "Format error decoding Png: Corrupt deflate stream. BadCodeLengthHuffmanTree"
            ),
            "Corrupt deflate stream bad code length huffman tree"
        );
        assert_eq!(
            plain_words("\"Error decoding SOF Marker, Number of components cannot be zero \""),
            "decoding SOF Marker, Number of components cannot be zero"
        );
        assert_eq!(
            check_prefix(b"hello", 100).unwrap_err().to_string(),
            decode(b"hello", 100).unwrap_err().to_string()
        );
    }
}
