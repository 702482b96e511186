//! Generated test images and the corpus of broken inputs (one corpus for every suite: the
//! engine, the CLI and the wasm API).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

/// Red square (the "subject" the tiny model sees) on a blue background.
pub fn red_square_on_blue(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        let inside = x >= width / 4 && x < width * 3 / 4 && y >= height / 4 && y < height * 3 / 4;
        if inside {
            Rgba([230, 20, 20, 255])
        } else {
            Rgba([20, 40, 220, 255])
        }
    })
}

pub fn encode(image: &RgbaImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let dynamic = DynamicImage::ImageRgba8(image.clone());
    let dynamic = match format {
        // These encoders take no alpha.
        ImageFormat::Jpeg | ImageFormat::Bmp => DynamicImage::ImageRgb8(dynamic.to_rgb8()),
        _ => dynamic,
    };
    dynamic
        .write_to(&mut out, format)
        .expect("encode test image");
    out.into_inner()
}

/// Every format the engine reads.
pub const IMAGE_FORMATS: [ImageFormat; 6] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::WebP,
    ImageFormat::Tiff,
];

/// `jpeg` with an EXIF block holding a thumbnail, whose own end marker sits near the start of
/// the file (a check that looks for an end marker finds it).
pub fn jpeg_with_exif_thumbnail(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let thumbnail = [&[0xFF, 0xD8][..], &[0x55; 40], &[0xFF, 0xD9]].concat();
    let exif = [&b"Exif\0\0"[..], &thumbnail].concat();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(((exif.len() + 2) as u16).to_be_bytes());
    out.extend(&exif);
    out.extend(&jpeg[2..]);
    out
}

/// Wraps a baseline JPEG with an EXIF APP1 segment carrying `orientation` (1-8).
pub fn jpeg_with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png_with_ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    let crc = crc32(&ihdr);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc.to_be_bytes());
    // An IDAT with a few bytes and IEND: never reached when the header is rejected.
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    out.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"IEND");
    out.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn bmp_header(width: i32, height: i32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&(54u32 + 16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    out.extend_from_slice(&[0; 16]);
    out
}

/// A camera-like JPEG: noise (so the scan is long), with an EXIF thumbnail.
fn camera_like_jpeg() -> Vec<u8> {
    let (width, height) = (256, 192);
    let noise = crate::Rng::new(0x5EED).bytes((width * height * 3) as usize);
    let rgb = image::RgbImage::from_raw(width, height, noise).expect("sized buffer");
    let mut jpeg = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(rgb)
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .expect("encode test image");
    jpeg_with_exif_thumbnail(&jpeg.into_inner())
}

/// A minimal WebP (VP8X) header whose canvas is `width`x`height`.
fn webp_canvas(width: u32, height: u32) -> Vec<u8> {
    let mut vp8x = b"VP8X".to_vec();
    vp8x.extend(10u32.to_le_bytes());
    vp8x.extend([0; 4]);
    vp8x.extend(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend(&(height - 1).to_le_bytes()[..3]);
    let mut out = b"RIFF".to_vec();
    out.extend(((vp8x.len() + 4) as u32).to_le_bytes());
    out.extend(b"WEBP");
    out.extend(vp8x);
    out
}

/// One broken input and a phrase its error message must contain.
pub struct BadInput {
    pub file_name: &'static str,
    pub bytes: Vec<u8>,
    pub expected: &'static str,
}

/// Broken, hostile and unsupported inputs. Every one must fail with `expected` in its message,
/// quickly, without a panic.
pub fn bad_input_corpus() -> Vec<BadInput> {
    let valid = red_square_on_blue(64, 48);
    let png = encode(&valid, ImageFormat::Png);
    let jpeg = encode(&valid, ImageFormat::Jpeg);
    let gif = encode(&valid, ImageFormat::Gif);
    let webp = encode(&valid, ImageFormat::WebP);
    let tiff = encode(&valid, ImageFormat::Tiff);
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    let mut bad_crc = png.clone();
    let idat = bad_crc
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("png has IDAT");
    bad_crc[idat + 6] ^= 0xFF;
    let mut gif_huge = gif.clone();
    gif_huge[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let pseudo_random = crate::Rng::new(0x1234_5678).bytes(4096);
    let camera = camera_like_jpeg();
    let cut_in_scan = camera[..camera.len() * 3 / 5].to_vec();
    let half_with_end_marker = [&half(&camera)[..], &[0xFF, 0xD9]].concat();
    let start_of_frame = |jpeg: &[u8]| {
        jpeg.windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline JPEG")
    };
    // A small file whose header claims 7000x7000 pixels.
    let mut claims_more = jpeg.clone();
    let sof = start_of_frame(&claims_more);
    claims_more[sof + 5..sof + 9].copy_from_slice(&[0x1B, 0x58, 0x1B, 0x58]);
    // The same frame marked as arithmetic-coded (SOF9): a valid JPEG kind few decoders read.
    let mut arithmetic = jpeg.clone();
    arithmetic[start_of_frame(&jpeg) + 1] = 0xC9;
    let cut_short = "cut short)";
    let corrupt = "corrupt or truncated";
    let unknown = "not in a recognised image format";
    vec![
        BadInput {
            file_name: "empty.png",
            bytes: vec![],
            expected: "empty",
        },
        BadInput {
            file_name: "text-renamed.png",
            bytes: b"just some text, not a picture\n".to_vec(),
            expected: unknown,
        },
        BadInput {
            file_name: "html-renamed.jpg",
            bytes: b"<!doctype html><html><body>404</body></html>".to_vec(),
            expected: unknown,
        },
        BadInput {
            file_name: "random-bytes.jpg",
            bytes: pseudo_random,
            expected: unknown,
        },
        BadInput {
            file_name: "truncated.jpg",
            bytes: half(&jpeg),
            expected: cut_short,
        },
        BadInput {
            file_name: "camera-cut-in-scan.jpg",
            bytes: cut_in_scan,
            expected: cut_short,
        },
        BadInput {
            file_name: "half-with-end-marker.jpg",
            bytes: half_with_end_marker,
            expected: cut_short,
        },
        BadInput {
            file_name: "claims-7000x7000.jpg",
            bytes: claims_more,
            expected: cut_short,
        },
        BadInput {
            file_name: "arithmetic-coded.jpg",
            bytes: arithmetic,
            expected: "this JPEG uses arithmetic coding, which is not supported",
        },
        BadInput {
            file_name: "truncated.png",
            bytes: half(&png),
            expected: cut_short,
        },
        BadInput {
            file_name: "truncated.gif",
            bytes: half(&gif),
            expected: cut_short,
        },
        BadInput {
            file_name: "truncated.webp",
            bytes: half(&webp),
            expected: cut_short,
        },
        BadInput {
            file_name: "truncated.tiff",
            bytes: half(&tiff),
            expected: cut_short,
        },
        BadInput {
            file_name: "signature-only.png",
            bytes: png[..8].to_vec(),
            expected: cut_short,
        },
        BadInput {
            file_name: "bad-crc.png",
            bytes: bad_crc,
            expected: corrupt,
        },
        BadInput {
            file_name: "huge-header.png",
            bytes: png_with_ihdr(100_000, 100_000),
            expected: "the image is too large: 100000x100000 =",
        },
        BadInput {
            file_name: "huge-header.bmp",
            bytes: bmp_header(100_000, 100_000),
            expected: "the image is too large: 100000x100000 =",
        },
        BadInput {
            file_name: "huge-header.gif",
            bytes: gif_huge,
            expected: "the image is too large: 65535x65535 =",
        },
        BadInput {
            file_name: "huge-header.webp",
            bytes: webp_canvas(16384, 16384),
            expected: "the image is too large: 16384x16384 =",
        },
        BadInput {
            file_name: "zero-width.png",
            bytes: png_with_ihdr(0, 16),
            expected: "",
        },
        BadInput {
            file_name: "image.avif",
            bytes: b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec(),
            expected: "AVIF files are not supported",
        },
        BadInput {
            file_name: "document.pdf",
            bytes: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n".to_vec(),
            expected: "PDF files are not supported",
        },
    ]
}
