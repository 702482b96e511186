//! Image sizes read from the first bytes of a file, by a few lines of parsing per format, before
//! any decoder runs: every format's limits are then checked the same way and with the same words,
//! a gigantic or empty image is refused without allocating anything, and a shell streaming a
//! large file can refuse it from its first kilobytes.

use image::ImageFormat;

use crate::error::Error;

/// What the first bytes of a file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The format and the size its header declares (before EXIF orientation).
    Found {
        format: ImageFormat,
        width: u32,
        height: u32,
    },
    /// A known format whose header goes on past the bytes given.
    Incomplete(ImageFormat),
    /// Not a format this parser knows (the decoders may still recognise it).
    Unrecognised,
}

/// Reads the header at the start of `bytes`. Errors only for a header that names a way of coding
/// the pixels no decoder here supports.
pub fn read_header(bytes: &[u8]) -> Result<Header, Error> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(png(bytes));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return jpeg(bytes);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Ok(sized(ImageFormat::Gif, bytes, 10, |b| {
            (le16(b, 6) as u32, le16(b, 8) as u32)
        }));
    }
    if bytes.starts_with(b"BM") {
        return Ok(bmp(bytes));
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok(webp(bytes));
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Ok(tiff(bytes));
    }
    Ok(Header::Unrecognised)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0])
}

/// The size from a fixed-layout header of `need` bytes.
fn sized(
    format: ImageFormat,
    bytes: &[u8],
    need: usize,
    size: impl Fn(&[u8]) -> (u32, u32),
) -> Header {
    if bytes.len() < need {
        return Header::Incomplete(format);
    }
    let (width, height) = size(bytes);
    Header::Found {
        format,
        width,
        height,
    }
}

/// IHDR is always the first chunk: length, "IHDR", width, height (big-endian).
fn png(bytes: &[u8]) -> Header {
    sized(ImageFormat::Png, bytes, 24, |b| (be32(b, 16), be32(b, 20)))
}

/// The DIB header after the 14-byte file header: OS/2's 12-byte one has 16-bit sizes, every
/// later one signed 32-bit (a negative height means top-down rows).
fn bmp(bytes: &[u8]) -> Header {
    if bytes.len() < 18 {
        return Header::Incomplete(ImageFormat::Bmp);
    }
    if le32(bytes, 14) == 12 {
        sized(ImageFormat::Bmp, bytes, 22, |b| {
            (le16(b, 18) as u32, le16(b, 20) as u32)
        })
    } else {
        sized(ImageFormat::Bmp, bytes, 26, |b| {
            let w = le32(b, 18) as i32;
            let h = le32(b, 22) as i32;
            (w.unsigned_abs(), h.unsigned_abs())
        })
    }
}

/// Whether a WebP file is shorter than the length its RIFF header declares.
pub fn riff_cut_short(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && le32(bytes, 4) as u64 + 8 > bytes.len() as u64
}

/// The first chunk after "WEBP": a lossy (VP8), lossless (VP8L) or extended (VP8X) header.
fn webp(bytes: &[u8]) -> Header {
    let format = ImageFormat::WebP;
    if bytes.len() < 16 {
        return Header::Incomplete(format);
    }
    match &bytes[12..16] {
        // Frame tag (3 bytes), start code (3 bytes), then 14-bit width and height.
        b"VP8 " => sized(format, bytes, 30, |b| {
            ((le16(b, 26) & 0x3FFF) as u32, (le16(b, 28) & 0x3FFF) as u32)
        }),
        // Signature byte, then width-1 and height-1 in 14 bits each.
        b"VP8L" => sized(format, bytes, 25, |b| {
            let bits = le32(b, 21);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }),
        // Flags (4 bytes), then canvas width-1 and height-1 in 24 bits each.
        b"VP8X" => sized(format, bytes, 30, |b| (le24(b, 24) + 1, le24(b, 27) + 1)),
        _ => Header::Unrecognised,
    }
}

/// Walks the marker segments up to the frame header (SOFn), which holds the size and says how
/// the pixels are coded.
fn jpeg(bytes: &[u8]) -> Result<Header, Error> {
    let format = ImageFormat::Jpeg;
    let mut at = 2;
    loop {
        // Any number of 0xFF fill bytes may precede a marker.
        while at < bytes.len() && bytes[at] == 0xFF && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if at + 4 > bytes.len() {
            return Ok(Header::Incomplete(format));
        }
        if bytes[at] != 0xFF {
            return Ok(Header::Unrecognised);
        }
        let marker = bytes[at + 1];
        let length = be16(bytes, at + 2) as usize;
        match marker {
            // Start of scan or end of image before any frame header: no size to read.
            0xDA | 0xD9 => return Ok(Header::Unrecognised),
            // SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if at + 9 > bytes.len() {
                    return Ok(Header::Incomplete(format));
                }
                let coding = match marker {
                    0xC0..=0xC2 => None,
                    0xC3 => Some("lossless coding"),
                    0xC5..=0xC7 => Some("hierarchical (differential) coding"),
                    _ => Some("arithmetic coding"),
                };
                if let Some(coding) = coding {
                    return Err(Error::NotAnImage {
                        detail: format!(
                            "this JPEG uses {coding}, which is not supported (save it again \
                             as an ordinary baseline or progressive JPEG)"
                        ),
                    });
                }
                return Ok(Header::Found {
                    format,
                    height: be16(bytes, at + 5) as u32,
                    width: be16(bytes, at + 7) as u32,
                });
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => at += 2,
            _ if length < 2 => return Ok(Header::Unrecognised),
            _ => at += 2 + length,
        }
    }
}

/// The first image file directory's ImageWidth (256) and ImageLength (257) tags.
fn tiff(bytes: &[u8]) -> Header {
    let format = ImageFormat::Tiff;
    let little = bytes[0] == b'I';
    let u16_at = |at: usize| {
        if little {
            le16(bytes, at)
        } else {
            be16(bytes, at)
        }
    };
    let u32_at = |at: usize| {
        if little {
            le32(bytes, at)
        } else {
            be32(bytes, at)
        }
    };
    if bytes.len() < 8 {
        return Header::Incomplete(format);
    }
    let ifd = u32_at(4) as usize;
    if ifd < 8 {
        return Header::Unrecognised;
    }
    if ifd + 2 > bytes.len() {
        return Header::Incomplete(format);
    }
    let count = u16_at(ifd) as usize;
    let (mut width, mut height) = (None, None);
    for i in 0..count {
        let entry = ifd + 2 + i * 12;
        if entry + 12 > bytes.len() {
            return Header::Incomplete(format);
        }
        let value = match u16_at(entry + 2) {
            3 => u16_at(entry + 8) as u32,
            4 => u32_at(entry + 8),
            _ => continue,
        };
        match u16_at(entry) {
            256 => width = Some(value),
            257 => height = Some(value),
            _ => {}
        }
    }
    match (width, height) {
        (Some(width), Some(height)) => Header::Found {
            format,
            width,
            height,
        },
        _ => Header::Unrecognised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutout_testkit::{encode, IMAGE_FORMATS};
    use image::RgbaImage;

    fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
        let image = RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([x as u8, y as u8, 90, 255])
        });
        encode(&image, format)
    }

    #[test]
    fn every_format_says_its_size_from_its_first_bytes() {
        for format in IMAGE_FORMATS {
            let bytes = encoded(format, 37, 21);
            assert_eq!(
                read_header(&bytes).unwrap(),
                Header::Found {
                    format,
                    width: 37,
                    height: 21
                },
                "{format:?}"
            );
            assert_eq!(
                read_header(&bytes[..6]).unwrap(),
                match format {
                    // Six bytes are short of PNG's and WebP's signatures.
                    ImageFormat::Png | ImageFormat::WebP => Header::Unrecognised,
                    _ => Header::Incomplete(format),
                },
                "{format:?} cut to 6 bytes"
            );
        }
    }

    #[test]
    fn lossy_webp_and_arithmetic_jpeg_headers() {
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        vp8.extend([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]);
        vp8.extend(300u16.to_le_bytes());
        vp8.extend((200u16 | 0x4000).to_le_bytes());
        assert_eq!(
            read_header(&vp8).unwrap(),
            Header::Found {
                format: ImageFormat::WebP,
                width: 300,
                height: 200
            }
        );
        let mut jpeg = encoded(ImageFormat::Jpeg, 8, 8);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 1] = 0xC9;
        let err = read_header(&jpeg).unwrap_err().to_string();
        assert!(
            err.contains("arithmetic coding, which is not supported"),
            "{err}"
        );
    }
}
