use image::{GrayImage, Rgba, RgbaImage};

use super::{estimate_foreground, upsample};
use crate::resize::bilinear_planar;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A deterministic pseudo-random byte per (x, y, salt).
fn noise(x: u32, y: u32, salt: u32) -> u8 {
    let mut v =
        x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B) ^ salt.wrapping_mul(0xC2B2_AE35);
    v ^= v >> 15;
    v = v.wrapping_mul(0x2C1B_3C6D);
    (v >> 24) as u8
}

fn textured(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        Rgba([noise(x, y, 1), noise(x, y, 2), noise(x, y, 3), 255])
    })
}

/// Partly transparent pixels in each row (alpha strictly between `lo` and `hi`), at most.
fn widest_transition(alpha: &GrayImage, lo: u8, hi: u8) -> usize {
    alpha
        .rows()
        .map(|row| row.filter(|p| p[0] > lo && p[0] < hi).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn flat_masks_stay_flat_on_a_textured_photo() {
    let photo = textured(300, 200);
    for (value, expected) in [(1.0f32, 255u8), (0.0, 0)] {
        let mask = vec![value; 64 * 64];
        let alpha = upsample(&mask, (64, 64), &photo);
        assert_eq!(alpha.dimensions(), (300, 200));
        assert!(
            alpha.pixels().all(|p| p[0] == expected),
            "a flat mask of {value} changed"
        );
    }
}

#[test]
fn the_mask_edge_snaps_to_the_photo_edge() {
    // A red subject left of x = 130, a blue background right of it; the model's 64x64 mask has a
    // soft edge two grid cells (8 photo pixels) wide, centred on the true edge, as IS-Net's are.
    let (width, height, edge) = (256u32, 256u32, 130u32);
    let photo = RgbaImage::from_fn(width, height, |x, _| {
        if x < edge {
            Rgba([210, 40, 30, 255])
        } else {
            Rgba([30, 60, 200, 255])
        }
    });
    let grid = 64usize;
    let centre = edge as f32 * grid as f32 / width as f32;
    let mask: Vec<f32> = (0..grid * grid)
        .map(|i| {
            let x = (i % grid) as f32 + 0.5;
            (0.5 - (x - centre) / 2.0).clamp(0.0, 1.0)
        })
        .collect();
    let bilinear = bilinear_planar(
        1,
        (grid, grid),
        (width as usize, height as usize),
        |_, i| mask[i],
    );
    let plain = GrayImage::from_raw(
        width,
        height,
        bilinear.iter().map(|v| (v * 255.0) as u8).collect(),
    )
    .unwrap();
    let refined = upsample(&mask, (grid, grid), &photo);

    assert!(
        widest_transition(&plain, 12, 243) >= 6,
        "the test's edge is not soft"
    );
    assert!(
        widest_transition(&refined, 12, 243) <= 2,
        "refined edge is {} px wide",
        widest_transition(&refined, 12, 243)
    );
    for (x, _, p) in refined.enumerate_pixels() {
        if x + 2 < edge {
            assert!(p[0] >= 243, "subject pixel at x = {x} is {}", p[0]);
        } else if x > edge + 1 {
            assert!(p[0] <= 12, "background pixel at x = {x} is {}", p[0]);
        }
    }
}

#[test]
fn photos_smaller_than_the_grid_and_thin_ones() {
    for (width, height) in [(1, 1), (1, 90), (90, 1), (50, 30), (2000, 3)] {
        let photo = textured(width, height);
        let mask: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 31.0).collect();
        let alpha = upsample(&mask, (32, 32), &photo);
        assert_eq!(alpha.dimensions(), (width, height));
        let mut coloured = photo.clone();
        estimate_foreground(&mut coloured, &alpha);
        assert_eq!(coloured.dimensions(), (width, height));
    }
}

/// A subject of colour `subject` left of an 8-px alpha ramp, `background` right of it, composited
/// as a camera would see it; the result is (photo, alpha).
fn ramp_scene(width: u32, subject: [u8; 3], background: [u8; 3]) -> (RgbaImage, GrayImage) {
    let height = 120u32;
    let alpha = GrayImage::from_fn(width, height, |x, _| {
        let a = (1.0 - (x as f32 - 96.0) / 8.0).clamp(0.0, 1.0);
        image::Luma([(a * 255.0).round() as u8])
    });
    let photo = RgbaImage::from_fn(width, height, |x, y| {
        let a = alpha.get_pixel(x, y)[0] as f32 / 255.0;
        let mix =
            |c: usize| (a * subject[c] as f32 + (1.0 - a) * background[c] as f32).round() as u8;
        Rgba([mix(0), mix(1), mix(2), 255])
    });
    (photo, alpha)
}

#[test]
fn semi_transparent_pixels_get_the_subjects_colour() {
    // 2200 px wide: averages on a grid of 3-pixel blocks, as for any photo over 1024 px.
    for width in [200, 2200] {
        semi_transparent_pixels_get_the_subjects_colour_at(width);
    }
}

fn semi_transparent_pixels_get_the_subjects_colour_at(width: u32) {
    let (subject, background) = ([200u8, 40, 40], [30u8, 200, 60]);
    let (photo, alpha) = ramp_scene(width, subject, background);
    let mut estimated = photo.clone();
    estimate_foreground(&mut estimated, &alpha);
    let (mut before, mut after, mut partial) = (0.0f64, 0.0f64, 0usize);
    for ((p, e), a) in photo.pixels().zip(estimated.pixels()).zip(alpha.pixels()) {
        assert_eq!(e[3], a[0], "the alpha channel is the mask");
        if a[0] == 0 || a[0] == 255 {
            continue;
        }
        partial += 1;
        for c in 0..3 {
            before += (p[c] as f64 - subject[c] as f64).abs();
            after += (e[c] as f64 - subject[c] as f64).abs();
        }
    }
    assert!(partial > 500);
    // Blur fusion is approximate: its local averages include some of the edge's own mixed pixels.
    assert!(
        after < 0.2 * before,
        "colour error in the edge of a {width}-px photo: {:.1} -> {:.1} per pixel",
        before / partial as f64,
        after / partial as f64
    );
}

#[test]
fn opaque_and_transparent_pixels_keep_their_colour() {
    let photo = textured(150, 100);
    let alpha = GrayImage::from_fn(150, 100, |x, y| {
        image::Luma([match noise(x, y, 9) % 3 {
            0 => 0,
            1 => 255,
            _ => noise(x, y, 7),
        }])
    });
    let mut estimated = photo.clone();
    estimate_foreground(&mut estimated, &alpha);
    for ((p, e), a) in photo.pixels().zip(estimated.pixels()).zip(alpha.pixels()) {
        assert_eq!(e[3], a[0]);
        if a[0] == 0 || a[0] == 255 {
            assert_eq!(p.0[..3], e.0[..3]);
        }
    }
}
