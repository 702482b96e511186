//! Touch-up strokes on a result's mask: erase what the model kept, restore what it dropped.
//! A stroke is a brush dragged along a polyline; it covers each pixel by the brush's profile at
//! that pixel's distance from the line, so a stroke is the same whatever the pointer's event
//! rate, and overlapping parts of one stroke do not add up.

use image::{GrayImage, RgbaImage};
use serde::Deserialize;

use crate::error::{Error, Result};

/// What a stroke does to the alpha it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrushMode {
    /// Towards transparent.
    Erase,
    /// Towards the photo's own alpha (opaque for a photo without transparency).
    Restore,
}

/// One drag of the brush, in the image's pixel coordinates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Stroke {
    pub mode: BrushMode,
    /// Half the brush's width, in pixels.
    pub radius: f32,
    /// 1 for a hard edge; lower values fade out over the outer part of the radius.
    pub hardness: f32,
    /// The path's points, `[x, y]`; one point is a dab.
    pub points: Vec<[f32; 2]>,
}

/// Strokes beyond this many points are refused (a pointer sends about a hundred per second).
const MAX_POINTS: usize = 100_000;

impl Stroke {
    fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::InvalidOption { detail });
        if !(self.radius.is_finite() && self.radius > 0.0) {
            return bad(format!(
                "a brush radius must be a positive number, got {}",
                self.radius
            ));
        }
        if !(0.0..=1.0).contains(&self.hardness) {
            return bad(format!(
                "brush hardness must be between 0 and 1, got {}",
                self.hardness
            ));
        }
        if self.points.is_empty() || self.points.len() > MAX_POINTS {
            return bad(format!(
                "a stroke needs 1 to {MAX_POINTS} points, got {}",
                self.points.len()
            ));
        }
        if self.points.iter().flatten().any(|v| !v.is_finite()) {
            return bad("a stroke's points must be finite numbers".into());
        }
        Ok(())
    }

    /// How much the brush covers a pixel centre at `distance` from the path, in [0, 1]: full
    /// inside the hard core, then a smooth fall to nothing at the radius (at least one pixel wide,
    /// so a hard brush's edge is antialiased).
    fn coverage(&self, distance: f32) -> f32 {
        let core = self.radius * self.hardness;
        let fade = (self.radius - core).max(1.0);
        let t = ((self.radius - distance) / fade).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    }
}

/// Distance from `p` to the segment `a`-`b`.
fn distance_to_segment(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    (cx * cx + cy * cy).sqrt()
}

/// Applies `strokes` in order to `alpha` (the model's mask at `image`'s size); restoring goes
/// back to `image`'s own alpha. Refuses a malformed stroke before changing anything.
pub fn apply_strokes(alpha: &mut GrayImage, image: &RgbaImage, strokes: &[Stroke]) -> Result<()> {
    assert_eq!(
        alpha.dimensions(),
        image.dimensions(),
        "a mask of the photo's size"
    );
    for stroke in strokes {
        stroke.validate()?;
    }
    let (width, height) = alpha.dimensions();
    for stroke in strokes {
        let Some((x0, y0, x1, y1)) = bounds(stroke, width, height) else {
            continue;
        };
        // The stroke's coverage over its bounding box, the largest of its segments' at each pixel.
        let box_width = (x1 - x0) as usize;
        let mut covered = vec![0f32; box_width * (y1 - y0) as usize];
        let segments: Vec<([f32; 2], [f32; 2])> = if stroke.points.len() == 1 {
            vec![(stroke.points[0], stroke.points[0])]
        } else {
            stroke.points.windows(2).map(|w| (w[0], w[1])).collect()
        };
        for &(a, b) in &segments {
            let reach = stroke.radius + 1.0;
            let sx0 = (a[0].min(b[0]) - reach).floor().max(x0 as f32) as u32;
            let sy0 = (a[1].min(b[1]) - reach).floor().max(y0 as f32) as u32;
            let sx1 = ((a[0].max(b[0]) + reach).ceil() as u32).min(x1);
            let sy1 = ((a[1].max(b[1]) + reach).ceil() as u32).min(y1);
            for y in sy0..sy1 {
                let row = (y - y0) as usize * box_width;
                for x in sx0..sx1 {
                    let centre = [x as f32 + 0.5, y as f32 + 0.5];
                    let c = stroke.coverage(distance_to_segment(centre, a, b));
                    let cell = &mut covered[row + (x - x0) as usize];
                    *cell = cell.max(c);
                }
            }
        }
        for y in y0..y1 {
            let row = (y - y0) as usize * box_width;
            for x in x0..x1 {
                let c = covered[row + (x - x0) as usize];
                if c == 0.0 {
                    continue;
                }
                let a = alpha.get_pixel(x, y)[0] as f32;
                let target = match stroke.mode {
                    BrushMode::Erase => 0.0,
                    BrushMode::Restore => image.get_pixel(x, y)[3] as f32,
                };
                alpha.get_pixel_mut(x, y)[0] = (a + (target - a) * c).round() as u8;
            }
        }
    }
    Ok(())
}

/// The pixels a stroke can touch, clamped to the image: `(x0, y0, x1, y1)`, end exclusive, or
/// None when it lies wholly outside.
fn bounds(stroke: &Stroke, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let reach = stroke.radius + 1.0;
    let (mut lo_x, mut lo_y, mut hi_x, mut hi_y) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &[x, y] in &stroke.points {
        lo_x = lo_x.min(x - reach);
        lo_y = lo_y.min(y - reach);
        hi_x = hi_x.max(x + reach);
        hi_y = hi_y.max(y + reach);
    }
    let x0 = lo_x.floor().clamp(0.0, width as f32) as u32;
    let y0 = lo_y.floor().clamp(0.0, height as f32) as u32;
    let x1 = hi_x.ceil().clamp(0.0, width as f32) as u32;
    let y1 = hi_y.ceil().clamp(0.0, height as f32) as u32;
    (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    fn stroke(mode: BrushMode, radius: f32, hardness: f32, points: &[[f32; 2]]) -> Stroke {
        Stroke {
            mode,
            radius,
            hardness,
            points: points.to_vec(),
        }
    }

    fn opaque_photo(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_pixel(width, height, Rgba([10, 20, 30, 255]))
    }

    #[test]
    fn a_hard_erase_clears_the_line_and_leaves_the_rest() {
        let image = opaque_photo(40, 20);
        let mut alpha = GrayImage::from_pixel(40, 20, Luma([255]));
        let line = stroke(BrushMode::Erase, 3.0, 1.0, &[[5.0, 10.0], [35.0, 10.0]]);
        apply_strokes(&mut alpha, &image, &[line]).unwrap();
        for x in 5..35 {
            assert_eq!(alpha.get_pixel(x, 10)[0], 0, "on the line at x={x}");
            assert_eq!(alpha.get_pixel(x, 1)[0], 255, "far from it at x={x}");
        }
        // The edge is antialiased: one partly covered pixel between cleared and kept.
        let column: Vec<u8> = (0..20).map(|y| alpha.get_pixel(20, y)[0]).collect();
        assert!(column.iter().any(|&v| v > 0 && v < 255), "{column:?}");
    }

    #[test]
    fn restore_brings_back_the_photos_own_alpha_and_soft_brushes_fade() {
        let mut image = opaque_photo(30, 30);
        image.put_pixel(15, 15, Rgba([0, 0, 0, 100]));
        let mut alpha = GrayImage::new(30, 30);
        let dab = stroke(BrushMode::Restore, 10.0, 0.2, &[[15.5, 15.5]]);
        apply_strokes(&mut alpha, &image, &[dab]).unwrap();
        assert_eq!(
            alpha.get_pixel(15, 15)[0],
            100,
            "no more than the photo had"
        );
        assert_eq!(alpha.get_pixel(16, 15)[0], 255);
        let fading = alpha.get_pixel(22, 15)[0];
        assert!(fading > 0 && fading < 255, "{fading}");
        assert_eq!(alpha.get_pixel(0, 0)[0], 0);
    }

    #[test]
    fn overlapping_segments_of_one_stroke_do_not_add_up() {
        let image = opaque_photo(30, 30);
        let mut once = GrayImage::from_pixel(30, 30, Luma([255]));
        let mut back_and_forth = once.clone();
        let soft = |points: &[[f32; 2]]| stroke(BrushMode::Erase, 6.0, 0.0, points);
        apply_strokes(&mut once, &image, &[soft(&[[5.0, 15.0], [25.0, 15.0]])]).unwrap();
        let path = [[5.0, 15.0], [25.0, 15.0], [5.0, 15.0], [25.0, 15.0]];
        apply_strokes(&mut back_and_forth, &image, &[soft(&path)]).unwrap();
        assert_eq!(once, back_and_forth);
    }

    #[test]
    fn strokes_outside_the_image_change_nothing_and_bad_ones_are_refused() {
        let image = opaque_photo(10, 10);
        let mut alpha = GrayImage::from_pixel(10, 10, Luma([200]));
        let before = alpha.clone();
        let outside = stroke(
            BrushMode::Erase,
            2.0,
            1.0,
            &[[-50.0, -50.0], [-40.0, -45.0]],
        );
        apply_strokes(&mut alpha, &image, &[outside]).unwrap();
        assert_eq!(alpha, before);
        for bad in [
            stroke(BrushMode::Erase, 0.0, 1.0, &[[1.0, 1.0]]),
            stroke(BrushMode::Erase, 2.0, 1.5, &[[1.0, 1.0]]),
            stroke(BrushMode::Erase, 2.0, 1.0, &[]),
            stroke(BrushMode::Erase, 2.0, 1.0, &[[f32::NAN, 1.0]]),
        ] {
            let good = stroke(BrushMode::Erase, 2.0, 1.0, &[[5.0, 5.0]]);
            let error = apply_strokes(&mut alpha, &image, &[good, bad]).unwrap_err();
            assert!(matches!(error, Error::InvalidOption { .. }), "{error}");
            assert_eq!(
                alpha, before,
                "nothing applied before the bad stroke was found"
            );
        }
    }
}
