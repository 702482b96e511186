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
    let mut alpha = vec![0u8; width * height];
    if width == 0 || height == 0 {
        return GrayImage::from_raw(width as u32, height as u32, alpha).expect("empty");
    }
    let guide = Guide::new(&photo_on_grid(image, (grid_w, grid_h)), mask, grid_w);
    let flat = flat_cells(mask, (grid_w, grid_h));
    let levels: Vec<u8> = mask.iter().map(|&v| unit_to_level(v)).collect();
    let (columns, rows) = (Taps::new(width, grid_w), Taps::new(height, grid_h));
    // Per grid column, the photo columns whose nearest cell it is (a run, maybe empty).
    let mut spans = vec![0..0; grid_w];
    for (x, tap) in columns.0.iter().enumerate() {
        let span = &mut spans[tap.cell];
        if span.start == span.end {
            *span = x..x;
        }
        span.end = x + 1;
    }
    // Per grid row, the cells whose pixels need weights.
    let uneven: Vec<Vec<usize>> = flat
        .chunks_exact(grid_w)
        .map(|row| {
            (0..grid_w)
                .filter(|&i| !row[i] && spans[i].start < spans[i].end)
                .collect()
        })
        .collect();
    let range = RangeWeights::new();
    let raw = image.as_raw();
    for (y, row_tap) in rows.0.iter().enumerate() {
        let (done, rest) = alpha.split_at_mut(y * width);
        let out = &mut rest[..width];
        // Flat cells give every pixel of a row the same levels: those of the row above when it
        // reads the same grid row.
        if y > 0 && rows.0[y - 1].cell == row_tap.cell {
            out.copy_from_slice(&done[(y - 1) * width..]);
        } else {
            let levels = &levels[row_tap.cell * grid_w..][..grid_w];
            for (span, &level) in spans.iter().zip(levels) {
                out[span.clone()].fill(level);
            }
        }
        let pixels = &raw[y * width * 4..][..width * 4];
        for &i in &uneven[row_tap.cell] {
            for x in spans[i].clone() {
                let px = &pixels[x * 4..][..3];
                let colour = [px[0], px[1], px[2]].map(|v| v as f32 / 255.0);
                let column_tap = &columns.0[x];
                let (sum, weight) = guide.weighted(&range, row_tap, column_tap, colour);
                // The nearest cell alone when no cell's colour is close to the pixel's.
                out[x] = if weight > 0.0 {
                    unit_to_level(sum / weight)
                } else {
                    levels[row_tap.cell * grid_w + i]
                };
            }
        }
    }
    GrayImage::from_raw(width as u32, height as u32, alpha).expect("sized from the image")
}

/// A unit value as a level, rounded to nearest.
fn unit_to_level(value: f32) -> u8 {
    nearest_level(value.clamp(0.0, 1.0) * 255.0)
}

/// The photo's colour on the grid and the mask's value, as four planes (red, green, blue, mask)
/// per grid row, each padded with one cell before and two after: a pixel's 4x4 taps are then four
/// runs of four adjacent values, which SIMD reads whole. Taps in the padding weigh 0.
struct Guide {
    /// Per padded grid row: `[plane][column]`, `stride` values per plane.
    rows: Vec<f32>,
    stride: usize,
}

/// Cells of padding before and after a row (and rows before and after the grid): the taps
/// reach one cell before a pixel's cell and two after.
const PAD_BEFORE: usize = 1;
const PAD_AFTER: usize = 2;

impl Guide {
    fn new(colours: &[[f32; 3]], mask: &[f32], grid_w: usize) -> Guide {
        let stride = PAD_BEFORE + grid_w + PAD_AFTER;
        let grid_h = mask.len() / grid_w;
        let mut rows = vec![0.0f32; (PAD_BEFORE + grid_h + PAD_AFTER) * 4 * stride];
        for (gy, (colours, mask)) in colours
            .chunks_exact(grid_w)
            .zip(mask.chunks_exact(grid_w))
            .enumerate()
        {
            let row = &mut rows[(PAD_BEFORE + gy) * 4 * stride..][..4 * stride];
            for (gx, (colour, &m)) in colours.iter().zip(mask).enumerate() {
                for (plane, value) in [colour[0], colour[1], colour[2], m].into_iter().enumerate() {
                    row[plane * stride + PAD_BEFORE + gx] = value;
                }
            }
        }
        Guide { rows, stride }
    }

    /// Σ w·m and Σ w over a pixel's 16 taps, w the spatial weights times the colour weight.
    fn weighted(
        &self,
        range: &RangeWeights,
        row: &Tap,
        column: &Tap,
        colour: [f32; 3],
    ) -> (f32, f32) {
        // Padded index of the first tap (`cell - 1`) on either axis.
        let first = |cell: usize| cell + PAD_BEFORE - 1;
        let stride = self.stride;
        let (mut sums, mut weights) = ([0.0f32; 4], [0.0f32; 4]);
        for (k, &wy) in row.weights.iter().enumerate() {
            let planes = &self.rows[(first(row.cell) + k) * 4 * stride..][..4 * stride];
            let run = |plane: usize| -> [f32; 4] {
                planes[plane * stride + first(column.cell)..][..4]
                    .try_into()
                    .expect("four taps")
            };
            let m = run(3);
            let colour_weights = range.between(colour, [run(0), run(1), run(2)]);
            let mut w = [0.0f32; 4];
            for j in 0..4 {
                w[j] = wy * column.weights[j] * colour_weights[j];
            }
            for j in 0..4 {
                sums[j] += w[j] * m[j];
                weights[j] += w[j];
            }
        }
        (
            (sums[0] + sums[1]) + (sums[2] + sums[3]),
            (weights[0] + weights[1]) + (weights[2] + weights[3]),
        )
    }
}

/// Per output coordinate: the grid cell it falls in, and the spatial weights of the cells from
/// one before it to two after it (0 for a tap beyond the grid).
struct Taps(Vec<Tap>);

struct Tap {
    cell: usize,
    weights: [f32; 4],
}

impl Taps {
    fn new(out_len: usize, grid_len: usize) -> Taps {
        let scale = grid_len as f32 / out_len as f32;
        let space = -0.5 / (SIGMA_SPACE * SIGMA_SPACE);
        Taps(
            (0..out_len)
                .map(|i| {
                    let source = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                    let cell = (source as usize).min(grid_len - 1);
                    let tap = |d: usize| (cell + d).checked_sub(1).filter(|&t| t < grid_len);
                    Tap {
                        cell,
                        weights: std::array::from_fn(|d| match tap(d) {
                            Some(t) => ((t as f32 - source).powi(2) * space).exp(),
                            None => 0.0,
                        }),
                    }
                })
                .collect(),
        )
    }
}

/// `exp(-d / (2 sigma²))` of a squared colour distance, from a table: the weight is below 1e-6
/// past [`RANGE_END`], and counts as 0 there. The table is padded to a power of two so that
/// masking an index, not a bounds check, keeps it in range.
struct RangeWeights(Box<[f32; RANGE_TABLE]>);

const RANGE_STEPS: usize = 1024;
const RANGE_TABLE: usize = 2048;
const _: () = assert!(RANGE_TABLE.is_power_of_two() && RANGE_TABLE > RANGE_STEPS);
/// Squared distances the table covers: where the weight falls to 1e-6.
const RANGE_END: f32 = 27.6 * SIGMA_RANGE * SIGMA_RANGE;

impl RangeWeights {
    fn new() -> RangeWeights {
        let range = -0.5 / (SIGMA_RANGE * SIGMA_RANGE);
        let mut table = Box::new([0.0f32; RANGE_TABLE]);
        for (i, weight) in table[..RANGE_STEPS].iter_mut().enumerate() {
            *weight = ((i as f32 + 0.5) * RANGE_END / RANGE_STEPS as f32 * range).exp();
        }
        RangeWeights(table)
    }

    /// The weights of four cells' colours (`cells[channel][cell]`) against `colour`.
    fn between(&self, colour: [f32; 3], [r, g, b]: [[f32; 4]; 3]) -> [f32; 4] {
        let scale = RANGE_STEPS as f32 / RANGE_END;
        let mut indices = [0i32; 4];
        for (j, index) in indices.iter_mut().enumerate() {
            let (dr, dg, db) = (colour[0] - r[j], colour[1] - g[j], colour[2] - b[j]);
            // A sum of squares is at least +0; `min` takes NaN and infinity to the end.
            let position = ((dr * dr + dg * dg + db * db) * scale).min(RANGE_STEPS as f32);
            // SAFETY: `position` is in [0, RANGE_STEPS], which i32 holds. (Rust's saturating
            // `as` costs branches per lane here.)
            *index = unsafe { position.to_int_unchecked::<i32>() };
        }
        indices.map(|i| self.0[i as usize & (RANGE_TABLE - 1)])
    }
}

/// Per cell: does the mask vary less than [`FLAT`] over the 4x4 cells a pixel there reads? The
/// range of each row's 4 cells, then of 4 rows of those.
fn flat_cells(mask: &[f32], (grid_w, grid_h): (usize, usize)) -> Vec<bool> {
    let reach = |i: usize, len: usize| i.saturating_sub(1)..(i + 3).min(len);
    let widen = |(lo, hi): (f32, f32), (l, h): (f32, f32)| (lo.min(l), hi.max(h));
    let empty = (f32::INFINITY, f32::NEG_INFINITY);
    let mut across = vec![empty; mask.len()];
    for (row, out) in mask
        .chunks_exact(grid_w)
        .zip(across.chunks_exact_mut(grid_w))
    {
        for (gx, range) in out.iter_mut().enumerate() {
            *range = row[reach(gx, grid_w)]
                .iter()
                .fold(empty, |r, &v| widen(r, (v, v)));
        }
    }
    let mut flat = vec![false; mask.len()];
    for (gy, out) in flat.chunks_exact_mut(grid_w).enumerate() {
        let mut ranges = vec![empty; grid_w];
        for j in reach(gy, grid_h) {
            for (range, &row) in ranges.iter_mut().zip(&across[j * grid_w..][..grid_w]) {
                *range = widen(*range, row);
            }
        }
        for (f, (lo, hi)) in out.iter_mut().zip(ranges) {
            *f = hi - lo < FLAT;
        }
    }
    flat
}

/// The photo's colours in [0, 1] on the grid: where the grid is coarser (both axes), each cell
/// the average of the pixels it covers, partly covered ones by their share (a bilinear resize
/// would alias fine detail into it); else a bilinear resize. Down the rows first, into the two
/// grid rows a photo row can share, then across each finished grid row.
fn photo_on_grid(image: &RgbaImage, (grid_w, grid_h): (usize, usize)) -> Vec<[f32; 3]> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    if grid_w > width || grid_h > height {
        let planes = bilinear_planar(3, (width, height), (grid_w, grid_h), |c, i| {
            raw[i * 4 + c] as f32 / 255.0
        });
        let plane = grid_w * grid_h;
        return (0..plane)
            .map(|k| [planes[k], planes[plane + k], planes[2 * plane + k]])
            .collect();
    }
    let columns = cell_spans(width, grid_w);
    let mut out = Vec::with_capacity(grid_w * grid_h);
    let mut finish_row = |down: &[f32]| {
        let pixel = |x: usize| &down[x * 4..][..3];
        for span in &columns {
            let whole = down[span.whole.start * 4..span.whole.end * 4]
                .chunks_exact(4)
                .fold([0.0f32; 3], |t, d| std::array::from_fn(|c| t[c] + d[c]));
            let (lead, trail) = (pixel(span.lead_pixel), pixel(span.trail_pixel));
            out.push(std::array::from_fn(|c| {
                (whole[c] + span.lead * lead[c] + span.trail * trail[c]) * span.scale
            }));
        }
    };
    // Per photo pixel and channel (RGBA, as flat slices are what SIMD loops are made of), the
    // weighted sums down the rows of grid row `row` and of the next one.
    let (mut down, mut next) = (vec![0.0f32; width * 4], vec![0.0f32; width * 4]);
    let mut values = vec![0.0f32; width * 4];
    let mut row = 0;
    // Finishes the grid rows before `until`; the next one's sums become the current ones.
    let mut finish_rows_to = |until: usize, down: &mut Vec<f32>, next: &mut Vec<f32>| {
        while row < until {
            finish_row(down);
            std::mem::swap(down, next);
            next.fill(0.0);
            row += 1;
        }
    };
    for (source, share) in raw.chunks_exact(width * 4).zip(shares(height, grid_h)) {
        finish_rows_to(share.cell, &mut down, &mut next);
        for (v, &byte) in values.iter_mut().zip(source) {
            *v = byte as f32;
        }
        for (sums, w) in [(&mut down, share.first), (&mut next, share.second)] {
            if w != 0.0 {
                for (sum, &v) in sums.iter_mut().zip(&values) {
                    *sum += w * v;
                }
            }
        }
    }
    finish_rows_to(grid_h, &mut down, &mut next);
    out
}

/// The samples one of `out_len` cells covers in an area average of `in_len >= out_len` samples:
/// the whole ones, and the covered parts of the partly covered ones before and after them (a part
/// of 0 where there is none); `scale` makes the weighted sum a mean in [0, 1] of 8-bit values.
struct CellSpan {
    whole: std::ops::Range<usize>,
    lead_pixel: usize,
    lead: f32,
    trail_pixel: usize,
    trail: f32,
    scale: f32,
}

fn cell_spans(in_len: usize, out_len: usize) -> Vec<CellSpan> {
    let size = in_len as f64 / out_len as f64;
    (0..out_len)
        .map(|i| {
            let (start, end) = (i as f64 * size, ((i + 1) as f64 * size).min(in_len as f64));
            let (first, last) = (
                start.ceil() as usize,
                (end.floor() as usize).max(start.ceil() as usize),
            );
            CellSpan {
                whole: first..last,
                lead_pixel: first.saturating_sub(1),
                lead: (first as f64 - start) as f32,
                trail_pixel: last.min(in_len - 1),
                trail: (end - last as f64).max(0.0) as f32,
                scale: (1.0 / (size * 255.0)) as f32,
            }
        })
        .collect()
}

/// How one of `in_len` samples is shared between the `out_len` cells of an area average, each
/// cell covering `in_len / out_len >= 1` samples: the first cell it falls in, its weight there
/// and in the next cell (0 where it lies in one cell), as shares of the cell's own coverage.
struct Share {
    cell: usize,
    first: f32,
    second: f32,
}

fn shares(in_len: usize, out_len: usize) -> Vec<Share> {
    let scale = in_len as f64 / out_len as f64;
    (0..in_len)
        .map(|s| {
            let start = s as f64;
            let cell = ((start / scale) as usize).min(out_len - 1);
            let boundary = (cell + 1) as f64 * scale;
            let inside = (boundary.min(start + 1.0) - start) / scale;
            let beyond = if cell + 1 < out_len {
                ((start + 1.0 - boundary) / scale).max(0.0)
            } else {
                0.0
            };
            Share {
                cell,
                first: inside as f32,
                second: beyond as f32,
            }
        })
        .collect()
}
