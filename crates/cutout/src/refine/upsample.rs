//! The model's mask at the photo's size along the photo's own edges: joint bilateral upsampling
//! (Kopf et al., 2007). Each pixel's alpha is a weighted mean of the nearby cells of the model's
//! grid, weighted by distance and by how close the cell's colour (the photo averaged over it) is
//! to the pixel's own; so across an edge of the photo, the cells on the pixel's side count. Unlike
//! a guided filter it never leaves the range of nearby mask values, so it cannot paint the
//! photo's texture into flat parts of the mask (measured: docs/performance.md, "Edge refinement").

use image::{GrayImage, RgbaImage};

use super::nearest_level;
use crate::resize::bilinear_planar;

/// Spatial reach of a cell's weight, in cells of the model's grid.
const SIGMA_SPACE: f32 = 0.5;
/// How different a colour (channels in [0, 1]) may be before a cell stops counting.
const SIGMA_RANGE: f32 = 0.05;
/// A neighbourhood whose mask varies less than one level is flat: any mean of it rounds alike
/// within a level, so no weights are needed there.
const FLAT: f32 = 1.0 / 255.0;

/// The mask (unit values on the model's `grid_w x grid_h` grid) at the size of `image`: 255 is
/// subject.
pub fn upsample(mask: &[f32], (grid_w, grid_h): (usize, usize), image: &RgbaImage) -> GrayImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let guide = photo_on_grid(image, (grid_w, grid_h));
    let flat = flat_cells(mask, (grid_w, grid_h));
    let levels: Vec<u8> = mask.iter().map(|&v| unit_to_level(v)).collect();
    let cells = grid_w * grid_h;
    let (columns, rows) = (Taps::new(width, grid_w), Taps::new(height, grid_h));
    let range = RangeWeights::new();
    let raw = image.as_raw();
    let mut alpha = vec![0u8; width * height];
    for (y, (j0, y_weights)) in rows.iter().enumerate() {
        let pixels = &raw[y * width * 4..][..width * 4];
        let out = &mut alpha[y * width..][..width];
        for (x, (i0, x_weights)) in columns.iter().enumerate() {
            let nearest = j0 * grid_w + i0;
            // Most of a photo: one table read, no weights.
            if flat[nearest] {
                out[x] = levels[nearest];
                continue;
            }
            let px = &pixels[x * 4..][..3];
            let colour = [px[0], px[1], px[2]].map(|v| v as f32 / 255.0);
            let (mut sum, mut weight) = (0.0f32, 0.0f32);
            for (dj, wy) in y_weights.iter().enumerate().filter(|(_, w)| **w > 0.0) {
                let row = (j0 + dj - 1) * grid_w;
                for (di, wx) in x_weights.iter().enumerate().filter(|(_, w)| **w > 0.0) {
                    let k = row + i0 + di - 1;
                    let distance = (colour[0] - guide[k]).powi(2)
                        + (colour[1] - guide[cells + k]).powi(2)
                        + (colour[2] - guide[2 * cells + k]).powi(2);
                    let w = wy * wx * range.of(distance);
                    sum += w * mask[k];
                    weight += w;
                }
            }
            // The nearest cell alone when no cell's colour is close to the pixel's.
            out[x] = if weight > 0.0 {
                unit_to_level(sum / weight)
            } else {
                levels[nearest]
            };
        }
    }
    GrayImage::from_raw(width as u32, height as u32, alpha).expect("sized from the image")
}

/// A unit value as a level, rounded to nearest.
fn unit_to_level(value: f32) -> u8 {
    nearest_level(value.clamp(0.0, 1.0) * 255.0)
}

/// Per output coordinate: the grid cell it falls in, and the spatial weights of the cells from
/// one before it to two after it (0 beyond the grid).
struct Taps(Vec<(usize, [f32; 4])>);

impl Taps {
    fn new(out_len: usize, grid_len: usize) -> Taps {
        let scale = grid_len as f32 / out_len as f32;
        let space = -0.5 / (SIGMA_SPACE * SIGMA_SPACE);
        Taps(
            (0..out_len)
                .map(|i| {
                    let source = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                    let cell = (source as usize).min(grid_len - 1);
                    let weights = std::array::from_fn(|d| {
                        let tap = cell as isize + d as isize - 1;
                        if tap < 0 || tap >= grid_len as isize {
                            0.0
                        } else {
                            ((tap as f32 - source).powi(2) * space).exp()
                        }
                    });
                    (cell, weights)
                })
                .collect(),
        )
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &[f32; 4])> {
        self.0.iter().map(|(cell, weights)| (*cell, weights))
    }
}

/// `exp(-d / (2 sigma²))` of a squared colour distance, from a table: the weight is below 1e-6
/// past the table's end, and counts as 0 there.
struct RangeWeights(Vec<f32>);

const RANGE_STEPS: usize = 1024;
/// Squared distances the table covers: where the weight falls to 1e-6.
const RANGE_END: f32 = 27.6 * SIGMA_RANGE * SIGMA_RANGE;

impl RangeWeights {
    fn new() -> RangeWeights {
        let range = -0.5 / (SIGMA_RANGE * SIGMA_RANGE);
        RangeWeights(
            (0..RANGE_STEPS)
                .map(|i| ((i as f32 + 0.5) * RANGE_END / RANGE_STEPS as f32 * range).exp())
                .collect(),
        )
    }

    fn of(&self, distance: f32) -> f32 {
        let index = (distance * (RANGE_STEPS as f32 / RANGE_END)) as usize;
        self.0.get(index).copied().unwrap_or(0.0)
    }
}

/// Per cell: does the mask vary less than [`FLAT`] over the 4x4 cells a pixel there reads?
fn flat_cells(mask: &[f32], (grid_w, grid_h): (usize, usize)) -> Vec<bool> {
    let mut flat = vec![false; mask.len()];
    for gy in 0..grid_h {
        for gx in 0..grid_w {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for j in gy.saturating_sub(1)..(gy + 3).min(grid_h) {
                for &v in &mask[j * grid_w..][gx.saturating_sub(1)..(gx + 3).min(grid_w)] {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            flat[gy * grid_w + gx] = hi - lo < FLAT;
        }
    }
    flat
}

/// The photo's colours in [0, 1] as three planes on the grid: where the grid is coarser (both
/// axes), each cell the average of the pixels it covers (a bilinear resize would alias fine
/// detail into it); else a bilinear resize.
fn photo_on_grid(image: &RgbaImage, (grid_w, grid_h): (usize, usize)) -> Vec<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    if grid_w > width || grid_h > height {
        return bilinear_planar(3, (width, height), (grid_w, grid_h), |c, i| {
            raw[i * 4 + c] as f32 / 255.0
        });
    }
    let x_spans = area_spans(width, grid_w);
    let y_spans = area_spans(height, grid_h);
    let plane = grid_w * grid_h;
    let mut out = vec![0.0f32; 3 * plane];
    let mut across = vec![0.0f32; 3 * grid_w];
    for (gy, (y0, y_weights)) in y_spans.iter().enumerate() {
        for (dy, wy) in y_weights.iter().enumerate() {
            let source = &raw[(y0 + dy) * width * 4..][..width * 4];
            across.fill(0.0);
            for (gx, (x0, x_weights)) in x_spans.iter().enumerate() {
                for (dx, wx) in x_weights.iter().enumerate() {
                    let px = &source[(x0 + dx) * 4..][..3];
                    for c in 0..3 {
                        across[c * grid_w + gx] += wx * px[c] as f32;
                    }
                }
            }
            for c in 0..3 {
                let row = &mut out[c * plane + gy * grid_w..][..grid_w];
                for (o, v) in row.iter_mut().zip(&across[c * grid_w..][..grid_w]) {
                    *o += wy * v / 255.0;
                }
            }
        }
    }
    out
}

/// For each of `out_len` cells over `in_len` samples: the first sample it covers and the
/// weights (summing to 1) of the samples it covers, partly covered ones by their share.
fn area_spans(in_len: usize, out_len: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len as f64 / out_len as f64;
    (0..out_len)
        .map(|i| {
            let (start, end) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).min(in_len).max(first + 1);
            let weights = (first..last)
                .map(|s| {
                    let covered = (end.min(s as f64 + 1.0) - start.max(s as f64)).max(0.0);
                    (covered / scale) as f32
                })
                .collect();
            (first, weights)
        })
        .collect()
}
