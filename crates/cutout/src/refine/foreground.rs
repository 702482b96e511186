//! Foreground colour estimation by blur fusion (Forte & Pitié, "Approximate Fast Foreground
//! Colour Estimation", ICIP 2021). A semi-transparent pixel shows `I = αF + (1-α)B`, of which
//! `I` and `α` are known. Local averages give the subject's colour `F̂` (nearby pixels weighted
//! by `α`) and the background's `B̂` (weighted by `1-α`); `F = F̂ + α(I - αF̂ - (1-α)B̂)` puts
//! back into the subject the part of `I` those averages do not explain. A wide pass, then a
//! narrow one that starts from the wide pass's estimates, as the paper does.
//!
//! Window sums are integer sums down the columns, then prefix sums across the row, so the cost
//! does not depend on the radius; they wrap, which keeps a window's total exact whenever the
//! total itself fits. The wide pass's averages are smooth at the scale of its radius, so they are
//! taken on a grid of pixel blocks (long side at most [`WIDE_GRID_SIDE`]) and interpolated; only
//! the narrow pass sums full-resolution rows, and only near semi-transparent pixels. Memory is
//! that grid and a few rows besides the result.

use image::{GrayImage, RgbaImage};

use super::nearest_level;

/// Radii of the two passes, in pixels of an image whose long side is 1024 (they scale with it).
const WIDE_RADIUS: f32 = 90.0;
const NARROW_RADIUS: f32 = 6.0;
/// The wide pass's grid has at most this many cells along the photo's long side.
const WIDE_GRID_SIDE: usize = 1024;
/// Keeps a block's sums within u32 (65025 x this² < 2^32); only a photo whose long side is over
/// 256 x [`WIDE_GRID_SIDE`] needs a longer grid.
const MAX_WIDE_BLOCK: usize = 256;
/// Keeps a narrow window's sums within u32 (65025 x (2 x this + 1)² < 2^32).
const MAX_NARROW_RADIUS: usize = 128;

fn scaled_radius(base: f32, long_side: usize) -> usize {
    ((base * long_side as f32 / 1024.0).round() as usize).max(1)
}

fn is_partial(alpha: u8) -> bool {
    alpha != 0 && alpha != 255
}

/// `image` with each semi-transparent pixel's colour replaced by the estimate of the subject's
/// own colour there, and `alpha` as its alpha channel. Opaque and transparent pixels keep their
/// colour.
pub fn estimate_foreground(image: &RgbaImage, alpha: &GrayImage) -> RgbaImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (pixels, alphas) = (image.as_raw(), alpha.as_raw());
    let mut out = image.clone();
    for (px, &a) in out.as_mut().chunks_exact_mut(4).zip(alphas) {
        px[3] = a;
    }
    let alpha_row = |y: usize| &alphas[y * width..][..width];
    let pixel_row = |y: usize| &pixels[y * width * 4..][..width * 4];
    // A fold rather than `any`, as it has no early exit to keep it from vectorising.
    let partial_rows: Vec<bool> = (0..height)
        .map(|y| {
            alpha_row(y)
                .iter()
                .fold(false, |any, &a| any | is_partial(a))
        })
        .collect();
    if !partial_rows.contains(&true) {
        return out;
    }
    let long_side = width.max(height);
    let narrow = scaled_radius(NARROW_RADIUS, long_side).min(MAX_NARROW_RADIUS);
    let wide = WideMeans::new(image, alpha, scaled_radius(WIDE_RADIUS, long_side));
    // The rows whose wide estimates the narrow pass reads: those within `narrow` of a partial row.
    let mut rows_read = vec![false; height];
    for y in (0..height).filter(|&y| partial_rows[y]) {
        rows_read[y.saturating_sub(narrow)..(y + narrow + 1).min(height)].fill(true);
    }

    // Per column, the partial pixels in the rows `[y - narrow, y + narrow]`; across the row,
    // their prefix sums, which say which columns are within `narrow` of one: the columns whose
    // wide estimates the narrow pass reads.
    let mut partial_counts = vec![0u32; width];
    let mut partial_prefix = vec![0u32; width + 1];
    let count_partial = |counts: &mut [u32], row: usize, add: bool| {
        for (count, &a) in counts.iter_mut().zip(alpha_row(row)) {
            let partial = is_partial(a) as u32;
            *count = if add {
                *count + partial
            } else {
                *count - partial
            };
        }
    };
    // The narrow pass's terms for the last `2 * narrow + 2` rows: what its window of rows
    // holds, and the row it drops next.
    let ring_rows = 2 * narrow + 2;
    let mut terms_ring = vec![[0u32; NARROW_TERMS]; ring_rows * width];
    let mut narrow_sums = ColumnSums::<NARROW_TERMS, u32>::new(width);
    let mut wide_row = vec![[0.0f32; 6]; wide.grid_width];
    let slot = |y: usize| (y % ring_rows) * width..(y % ring_rows + 1) * width;

    for row in 0..narrow.min(height) {
        count_partial(&mut partial_counts, row, true);
    }
    for y in 0..height + narrow {
        if y < height {
            if y + narrow < height {
                count_partial(&mut partial_counts, y + narrow, true);
            }
            if let Some(row) = y.checked_sub(narrow + 1) {
                count_partial(&mut partial_counts, row, false);
            }
            // Rows no partial row's window reaches are left out of the narrow sums.
            if rows_read[y] {
                let mut running = 0;
                for (prefix, &count) in partial_prefix[1..].iter_mut().zip(&partial_counts) {
                    running += (count != 0) as u32;
                    *prefix = running;
                }
                let terms = &mut terms_ring[slot(y)];
                wide.interpolate_row(y, &mut wide_row);
                let (alpha_y, pixels_y) = (alpha_row(y), pixel_row(y));
                for (x, term) in terms.iter_mut().enumerate() {
                    let (lo, hi) = (x.saturating_sub(narrow), (x + narrow + 1).min(width));
                    *term = if partial_prefix[hi] == partial_prefix[lo] {
                        [0; NARROW_TERMS]
                    } else {
                        narrow_terms(&wide, &wide_row, x, rgb(pixels_y, x), alpha_y[x])
                    };
                }
                narrow_sums.add(terms);
            }
        }
        let Some(t) = y.checked_sub(narrow) else {
            continue;
        };
        if let Some(dropped) = t.checked_sub(narrow + 1).filter(|&row| rows_read[row]) {
            narrow_sums.remove(&terms_ring[slot(dropped)]);
        }
        if !partial_rows[t] {
            continue;
        }
        narrow_sums.prepare();
        let rows = ((t + narrow + 1).min(height) - t.saturating_sub(narrow)) as u32;
        let (alpha_t, pixels_t) = (alpha_row(t), pixel_row(t));
        let out_row = &mut out.as_mut()[t * width * 4..][..width * 4];
        for (x, (px, &a)) in out_row.chunks_exact_mut(4).zip(alpha_t).enumerate() {
            if !is_partial(a) {
                continue;
            }
            let (lo, hi) = (x.saturating_sub(narrow), (x + narrow + 1).min(width));
            let s = narrow_sums.window(lo, hi);
            let count = (hi - lo) as u32 * rows;
            let colour = rgb(pixels_t, x);
            let subject = weighted_mean([s[1], s[2], s[3]], s[0], colour);
            let background = weighted_mean([s[4], s[5], s[6]], 255 * count - s[0], colour);
            px[..3].copy_from_slice(&blend(subject, background, colour, a).map(nearest_level));
        }
    }
    out
}

/// The narrow pass's terms at pixel `x` of a row whose wide averages are `wide_row`.
fn narrow_terms(
    wide: &WideMeans,
    wide_row: &[[f32; 6]],
    x: usize,
    colour: [f32; 3],
    alpha: u8,
) -> [u32; NARROW_TERMS] {
    let level = |v: f32| nearest_level(v) as u32;
    match alpha {
        // Where α is 1, `F` is `I`, and `B̂` is not used; where it is 0, `F` is not used.
        255 => {
            let [r, g, b] = colour.map(level);
            [255, 255 * r, 255 * g, 255 * b, 0, 0, 0, 0]
        }
        0 => {
            let [r, g, b] = wide.background_at(wide_row, x).map(level);
            [0, 0, 0, 0, 255 * r, 255 * g, 255 * b, 0]
        }
        _ => {
            let [subject, background] = wide.at(wide_row, x);
            let f = blend(subject, background, colour, alpha).map(level);
            let b = background.map(level);
            let (a, ia) = (alpha as u32, 255 - alpha as u32);
            [
                a,
                a * f[0],
                a * f[1],
                a * f[2],
                ia * b[0],
                ia * b[1],
                ia * b[2],
                0,
            ]
        }
    }
}

/// The narrow pass's terms per pixel: α, αF (3), (1-α)B̂ (3), with `α` in levels and the wide
/// pass's `F` and `B̂` rounded to levels; then one lane that keeps each row's terms 32 bytes.
const NARROW_TERMS: usize = 8;

/// The wide pass's local averages of the subject's colour `F̂` and the background's `B̂`, on a
/// grid of `block`-pixel squares, read back at any pixel by bilinear interpolation between the
/// cells' centres.
struct WideMeans {
    block: usize,
    grid_width: usize,
    grid_height: usize,
    /// Per cell: `F̂`, then `B̂`, as RGB.
    cells: Vec<[f32; 6]>,
    /// Per photo column: the two grid columns either side of it and the second one's weight.
    columns: Vec<(usize, usize, f32)>,
}

impl WideMeans {
    fn new(image: &RgbaImage, alpha: &GrayImage, radius: usize) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let block = width
            .max(height)
            .div_ceil(WIDE_GRID_SIDE)
            .min(MAX_WIDE_BLOCK);
        let (grid_width, grid_height) = (width.div_ceil(block), height.div_ceil(block));
        let grid_radius = (radius as f32 / block as f32).round().max(1.0) as usize;

        // Per block: Σα, ΣαI (3), ΣI (3) and its pixel count; Σ(1-α)I and Σ(1-α) follow.
        let mut blocks = vec![[0u32; 8]; grid_width * grid_height];
        for (y, (pixel_row, alpha_row)) in image
            .as_raw()
            .chunks_exact(width * 4)
            .zip(alpha.as_raw().chunks_exact(width))
            .enumerate()
        {
            let block_row = &mut blocks[y / block * grid_width..][..grid_width];
            for ((sums, pixels), alphas) in block_row
                .iter_mut()
                .zip(pixel_row.chunks(block * 4))
                .zip(alpha_row.chunks(block))
            {
                // ΣI and Σα, then ΣαI (and Σα², unused): four lanes each, for SIMD.
                let (mut plain, mut weighted) = ([0u32; 4], [0u32; 4]);
                for (px, &a) in pixels.chunks_exact(4).zip(alphas) {
                    let terms = [px[0], px[1], px[2], a].map(u32::from);
                    for k in 0..4 {
                        plain[k] += terms[k];
                        weighted[k] += terms[k] * a as u32;
                    }
                }
                let [r, g, b, a] = plain;
                let [ar, ag, ab, _] = weighted;
                let added = [a, ar, ag, ab, r, g, b, alphas.len() as u32];
                for (sum, block_sum) in sums.iter_mut().zip(added) {
                    *sum += block_sum;
                }
            }
        }

        let mut cells = vec![[0.0; 6]; grid_width * grid_height];
        let mut sums = ColumnSums::<8, u64>::new(grid_width);
        let mut widened = vec![[0u64; 8]; grid_width];
        let widen = |row: usize, widened: &mut [[u64; 8]]| {
            for (wide, block) in widened.iter_mut().zip(&blocks[row * grid_width..]) {
                *wide = block.map(u64::from);
            }
        };
        let (mut top, mut bottom) = (0, 0);
        for y in 0..grid_height {
            while bottom < (y + grid_radius + 1).min(grid_height) {
                widen(bottom, &mut widened);
                sums.add(&widened);
                bottom += 1;
            }
            while top < y.saturating_sub(grid_radius) {
                widen(top, &mut widened);
                sums.remove(&widened);
                top += 1;
            }
            sums.prepare();
            for (x, cell) in cells[y * grid_width..][..grid_width].iter_mut().enumerate() {
                let s = sums.window(
                    x.saturating_sub(grid_radius),
                    (x + grid_radius + 1).min(grid_width),
                );
                let pixels = s[7] as f32;
                let colour = [s[4], s[5], s[6]].map(|c| c as f32 / pixels);
                let weight = |w: u64| w as f32;
                let subject = mean([s[1], s[2], s[3]].map(weight), weight(s[0]), colour);
                let background = mean(
                    std::array::from_fn(|c| weight(255 * s[4 + c] - s[1 + c])),
                    weight(255 * s[7] - s[0]),
                    colour,
                );
                *cell = [
                    subject[0],
                    subject[1],
                    subject[2],
                    background[0],
                    background[1],
                    background[2],
                ];
            }
        }
        let columns = (0..width)
            .map(|x| grid_neighbours(x, block, grid_width))
            .collect();
        WideMeans {
            block,
            grid_width,
            grid_height,
            cells,
            columns,
        }
    }

    /// The grid's averages at photo row `y`, per grid column, into `row`.
    fn interpolate_row(&self, y: usize, row: &mut [[f32; 6]]) {
        let (top, bottom, weight) = grid_neighbours(y, self.block, self.grid_height);
        let grid_row = |r: usize| &self.cells[r * self.grid_width..][..self.grid_width];
        for ((out, top), bottom) in row.iter_mut().zip(grid_row(top)).zip(grid_row(bottom)) {
            *out = std::array::from_fn(|m| lerp(top[m], bottom[m], weight));
        }
    }

    /// `F̂` and `B̂` at photo column `x` of a row from [`Self::interpolate_row`].
    fn at(&self, row: &[[f32; 6]], x: usize) -> [[f32; 3]; 2] {
        let (left, right, weight) = self.columns[x];
        let (left, right) = (&row[left], &row[right]);
        std::array::from_fn(|m| {
            std::array::from_fn(|c| lerp(left[3 * m + c], right[3 * m + c], weight))
        })
    }
}

impl WideMeans {
    /// `B̂` alone at photo column `x`, as [`Self::at`] gives it.
    fn background_at(&self, row: &[[f32; 6]], x: usize) -> [f32; 3] {
        let (left, right, weight) = self.columns[x];
        let (left, right) = (&row[left], &row[right]);
        std::array::from_fn(|c| lerp(left[3 + c], right[3 + c], weight))
    }
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// The grid cells either side of photo pixel `x` (whose centre is at `(x + 0.5) / block` in cell
/// units) and the second one's weight, clamped at the grid's ends.
fn grid_neighbours(x: usize, block: usize, cells: usize) -> (usize, usize, f32) {
    let position = ((x as f32 + 0.5) / block as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
    let first = position as usize;
    (first, (first + 1).min(cells - 1), position - first as f32)
}

fn rgb(row: &[u8], x: usize) -> [f32; 3] {
    [
        row[x * 4] as f32,
        row[x * 4 + 1] as f32,
        row[x * 4 + 2] as f32,
    ]
}

/// `sums / weight`, or `fallback` where nothing in the window had weight.
fn mean(sums: [f32; 3], weight: f32, fallback: [f32; 3]) -> [f32; 3] {
    if weight == 0.0 {
        return fallback;
    }
    let scale = 1.0 / weight;
    sums.map(|s| s * scale)
}

/// [`mean`] of integer sums that fit in u32.
fn weighted_mean(sums: [u32; 3], weight: u32, fallback: [f32; 3]) -> [f32; 3] {
    mean(sums.map(|s| s as f32), weight as f32, fallback)
}

/// `F̂ + α(I - αF̂ - (1-α)B̂)`, clamped to the colour range.
fn blend(subject: [f32; 3], background: [f32; 3], colour: [f32; 3], alpha: u8) -> [f32; 3] {
    let a = alpha as f32 / 255.0;
    std::array::from_fn(|c| {
        let f = subject[c] + a * (colour[c] - a * subject[c] - (1.0 - a) * background[c]);
        f.clamp(0.0, 255.0)
    })
}

/// An integer that window sums add and subtract with wrap-around.
trait Lane: Copy + Default {
    fn plus(self, other: Self) -> Self;
    fn minus(self, other: Self) -> Self;
}

impl Lane for u32 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
}

impl Lane for u64 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
}

/// Per column, the sums of `K` terms over the rows added and not yet removed; across a row,
/// prefix sums of those, so that any horizontal window's total is one subtraction.
struct ColumnSums<const K: usize, T> {
    sums: Vec<[T; K]>,
    prefix: Vec<[T; K]>,
}

impl<const K: usize, T: Lane> ColumnSums<K, T> {
    fn new(width: usize) -> Self {
        ColumnSums {
            sums: vec![[T::default(); K]; width],
            prefix: vec![[T::default(); K]; width + 1],
        }
    }

    fn add(&mut self, row: &[[T; K]]) {
        for (sum, terms) in self.sums.iter_mut().zip(row) {
            *sum = std::array::from_fn(|k| sum[k].plus(terms[k]));
        }
    }

    fn remove(&mut self, row: &[[T; K]]) {
        for (sum, terms) in self.sums.iter_mut().zip(row) {
            *sum = std::array::from_fn(|k| sum[k].minus(terms[k]));
        }
    }

    /// Prefix sums of the current column sums across the row.
    fn prepare(&mut self) {
        let mut running = [T::default(); K];
        for (prefix, sum) in self.prefix[1..].iter_mut().zip(&self.sums) {
            running = std::array::from_fn(|k| running[k].plus(sum[k]));
            *prefix = running;
        }
    }

    /// The sums over columns `[lo, hi)` of the rows in the window.
    fn window(&self, lo: usize, hi: usize) -> [T; K] {
        let (a, b) = (&self.prefix[lo], &self.prefix[hi]);
        std::array::from_fn(|k| b[k].minus(a[k]))
    }
}
