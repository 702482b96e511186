//! Foreground colour estimation by blur fusion (Forte & Pitié, "Approximate Fast Foreground
//! Colour Estimation", ICIP 2021). A semi-transparent pixel shows `I = αF + (1-α)B`, of which
//! `I` and `α` are known. Local averages give the subject's colour `F̂` (nearby pixels weighted
//! by `α`) and the background's `B̂` (weighted by `1-α`); `F = F̂ + α(I - αF̂ - (1-α)B̂)` puts
//! back into the subject the part of `I` those averages do not explain. A wide pass, then a
//! narrow one that starts from the wide pass's estimates, as the paper does.
//!
//! The window sums are running integer sums down the columns (exact, so the same on every
//! target) and prefix sums across each row: the cost does not depend on the radius, and memory
//! is a few rows besides the result.

use image::{GrayImage, RgbaImage};

use super::nearest_level;

/// Radii of the two passes, in pixels of an image whose long side is 1024 (they scale with it).
const WIDE_RADIUS: f32 = 90.0;
const NARROW_RADIUS: f32 = 6.0;
/// Keeps a window's sums within u32 per column (65025 x (2 x this + 1) < 2^32).
const MAX_RADIUS: usize = 16_000;

fn scaled_radius(base: f32, (width, height): (usize, usize)) -> usize {
    ((base * width.max(height) as f32 / 1024.0).round() as usize).clamp(1, MAX_RADIUS)
}

/// `image` with each semi-transparent pixel's colour replaced by the estimate of the subject's
/// own colour there, and `alpha` as its alpha channel. Opaque and transparent pixels keep their
/// colour.
pub fn estimate_foreground(image: &RgbaImage, alpha: &GrayImage) -> RgbaImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut out = image.clone();
    for (px, a) in out.pixels_mut().zip(alpha.pixels()) {
        px[3] = a[0];
    }
    if width == 0 || height == 0 {
        return out;
    }
    let wide = scaled_radius(WIDE_RADIUS, (width, height));
    let narrow = scaled_radius(NARROW_RADIUS, (width, height));
    let alphas = alpha.as_raw();
    let pixels = image.as_raw();
    let alpha_row = |y: usize| &alphas[y * width..][..width];
    let pixel_row = |y: usize| &pixels[y * width * 4..][..width * 4];
    let partial_rows: Vec<bool> = (0..height)
        .map(|y| alpha_row(y).iter().any(|&a| a != 0 && a != 255))
        .collect();
    // The narrow pass reads the wide pass's estimates up to `narrow` rows away.
    let mut rows_read = vec![false; height];
    for y in (0..height).filter(|&y| partial_rows[y]) {
        rows_read[y.saturating_sub(narrow)..(y + narrow + 1).min(height)].fill(true);
    }

    // Per row, the columns within `narrow` of a partial pixel; summed over the narrow window's
    // rows, the columns whose wide estimates the narrow pass reads.
    let near_partial_rows: Vec<Vec<bool>> = (0..height)
        .map(|y| {
            let mut near = vec![false; width];
            if partial_rows[y] {
                for (x, &a) in alpha_row(y).iter().enumerate() {
                    if a != 0 && a != 255 {
                        near[x.saturating_sub(narrow)..(x + narrow + 1).min(width)].fill(true);
                    }
                }
            }
            near
        })
        .collect();
    let near_partial = |y: usize, x: usize| near_partial_rows[y][x] as u32;
    let mut columns_read = WindowSums::<1>::new(width);

    // Wide pass, per column: Σα, ΣαI (3), ΣI (3); Σ(1-α)I and Σ(1-α) follow from them.
    let wide_terms = |y: usize, x: usize| {
        let (a, px) = (
            alphas[y * width + x] as u32,
            &pixels[(y * width + x) * 4..][..3],
        );
        let [r, g, b] = [px[0], px[1], px[2]].map(u32::from);
        [a, a * r, a * g, a * b, r, g, b]
    };
    let mut wide_sums = WindowSums::<7>::new(width);
    // The wide pass's estimates (F, then B̂, as u8) for the last `2 * narrow + 2` rows: what the
    // narrow pass's window needs, and the row it drops next.
    let ring_rows = 2 * narrow + 2;
    let mut ring = vec![0u8; ring_rows * width * 6];
    let narrow_terms = |y: usize, ring: &[u8], x: usize| {
        let e = &ring[((y % ring_rows) * width + x) * 6..][..6];
        let (a, ia) = (
            alphas[y * width + x] as u32,
            255 - alphas[y * width + x] as u32,
        );
        let e: [u32; 6] = std::array::from_fn(|i| e[i] as u32);
        [
            a,
            a * e[0],
            a * e[1],
            a * e[2],
            ia * e[3],
            ia * e[4],
            ia * e[5],
        ]
    };
    let mut narrow_sums = WindowSums::<7>::new(width);
    let mut estimates = vec![[0.0f32; 3]; width];

    for y in 0..height + narrow {
        if y < height {
            wide_sums.slide_to(y, wide, height, wide_terms);
            columns_read.slide_to(y, narrow, height, |row, x| [near_partial(row, x)]);
            let slot = &mut ring[(y % ring_rows) * width * 6..][..width * 6];
            if rows_read[y] {
                wide_sums.prepare();
                let (alpha_y, pixels_y) = (alpha_row(y), pixel_row(y));
                for (x, e) in slot.chunks_exact_mut(6).enumerate() {
                    if columns_read.columns[x][0] == 0 {
                        e.fill(0);
                        continue;
                    }
                    let (s, count) = wide_sums.window(x, wide);
                    let colour = rgb(pixels_y, x);
                    let subject = weighted_mean(&s[1..4], s[0], colour);
                    let background_sum: [u64; 3] =
                        std::array::from_fn(|c| 255 * s[4 + c] - s[1 + c]);
                    let background = weighted_mean(&background_sum, 255 * count - s[0], colour);
                    let f = blend(subject, background, colour, alpha_y[x]);
                    e[..3].copy_from_slice(&f.map(nearest_level));
                    e[3..].copy_from_slice(&background.map(nearest_level));
                }
            } else {
                slot.fill(0);
            }
            // Rows no partial row's window reaches are left out (and so never dropped).
            if rows_read[y] {
                narrow_sums.update(true, |x| narrow_terms(y, &ring, x));
            }
        }
        let Some(t) = y.checked_sub(narrow) else {
            continue;
        };
        if let Some(dropped) = t.checked_sub(narrow + 1).filter(|&row| rows_read[row]) {
            narrow_sums.update(false, |x| narrow_terms(dropped, &ring, x));
        }
        if !partial_rows[t] {
            continue;
        }
        narrow_sums.prepare();
        let (alpha_t, pixels_t) = (alpha_row(t), pixel_row(t));
        for (x, e) in estimates.iter_mut().enumerate() {
            let a = alpha_t[x];
            if a == 0 || a == 255 {
                continue;
            }
            let (s, count) = narrow_sums.window(x, narrow);
            let colour = rgb(pixels_t, x);
            let subject = weighted_mean(&s[1..4], s[0], colour);
            let background = weighted_mean(&s[4..7], 255 * count - s[0], colour);
            *e = blend(subject, background, colour, a);
        }
        let out_row = &mut out.as_mut()[t * width * 4..][..width * 4];
        for ((px, e), &a) in out_row.chunks_exact_mut(4).zip(&estimates).zip(alpha_t) {
            if a != 0 && a != 255 {
                px[..3].copy_from_slice(&e.map(nearest_level));
            }
        }
    }
    out
}

fn rgb(row: &[u8], x: usize) -> [f32; 3] {
    [
        row[x * 4] as f32,
        row[x * 4 + 1] as f32,
        row[x * 4 + 2] as f32,
    ]
}

/// `sums / weight`, or `fallback` where nothing in the window had weight.
fn weighted_mean(sums: &[u64], weight: u64, fallback: [f32; 3]) -> [f32; 3] {
    if weight == 0 {
        return fallback;
    }
    let scale = 1.0 / weight as f32;
    [
        sums[0] as f32 * scale,
        sums[1] as f32 * scale,
        sums[2] as f32 * scale,
    ]
}

/// `F̂ + α(I - αF̂ - (1-α)B̂)`, clamped to the colour range.
fn blend(subject: [f32; 3], background: [f32; 3], colour: [f32; 3], alpha: u8) -> [f32; 3] {
    let a = alpha as f32 / 255.0;
    std::array::from_fn(|c| {
        let f = subject[c] + a * (colour[c] - a * subject[c] - (1.0 - a) * background[c]);
        f.clamp(0.0, 255.0)
    })
}

/// Per column, the sums of `K` terms over a window of rows; across a row, prefix sums of those,
/// so that any horizontal window's total is one subtraction.
struct WindowSums<const K: usize> {
    columns: Vec<[u32; K]>,
    prefix: Vec<[u64; K]>,
    /// Rows in the window now, and the window's first and one-past-last row.
    rows: u64,
    top: usize,
    bottom: usize,
}

impl<const K: usize> WindowSums<K> {
    fn new(width: usize) -> Self {
        WindowSums {
            columns: vec![[0; K]; width],
            prefix: vec![[0; K]; width + 1],
            rows: 0,
            top: 0,
            bottom: 0,
        }
    }

    /// Adds (or, with `add` false, removes) a row whose terms at column `x` are `terms(x)`.
    fn update(&mut self, add: bool, terms: impl Fn(usize) -> [u32; K]) {
        for (x, sum) in self.columns.iter_mut().enumerate() {
            let t = terms(x);
            for k in 0..K {
                sum[k] = if add { sum[k] + t[k] } else { sum[k] - t[k] };
            }
        }
        if add {
            self.rows += 1;
        } else {
            self.rows -= 1;
        }
    }

    /// Moves the window to rows `[y - radius, y + radius]` (clipped to `height`), adding and
    /// dropping rows whose terms are `terms(row, x)`; `y` only grows from call to call.
    fn slide_to(
        &mut self,
        y: usize,
        radius: usize,
        height: usize,
        terms: impl Fn(usize, usize) -> [u32; K],
    ) {
        let (top, bottom) = (y.saturating_sub(radius), (y + radius + 1).min(height));
        while self.bottom < bottom {
            let row = self.bottom;
            self.update(true, |x| terms(row, x));
            self.bottom += 1;
        }
        while self.top < top {
            let row = self.top;
            self.update(false, |x| terms(row, x));
            self.top += 1;
        }
    }

    /// Prefix sums of the current column sums across the row.
    fn prepare(&mut self) {
        for x in 0..self.columns.len() {
            let (column, before) = (self.columns[x], self.prefix[x]);
            self.prefix[x + 1] = std::array::from_fn(|k| before[k] + column[k] as u64);
        }
    }

    /// The sums over columns `[x - radius, x + radius]` (clipped) of the window's rows, and the
    /// number of pixels in that window.
    fn window(&self, x: usize, radius: usize) -> ([u64; K], u64) {
        let (lo, hi) = (
            x.saturating_sub(radius),
            (x + radius + 1).min(self.columns.len()),
        );
        let (a, b) = (&self.prefix[lo], &self.prefix[hi]);
        (
            std::array::from_fn(|k| b[k] - a[k]),
            (hi - lo) as u64 * self.rows,
        )
    }
}
