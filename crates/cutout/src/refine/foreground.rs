//! Foreground colour estimation by blur fusion (Forte & Pitié, "Approximate Fast Foreground
//! Colour Estimation", ICIP 2021). A semi-transparent pixel shows `I = αF + (1-α)B`, of which
//! `I` and `α` are known. Local averages give the subject's colour `F̂` (nearby pixels weighted
//! by `α`) and the background's `B̂` (weighted by `1-α`); `F = F̂ + α(I - αF̂ - (1-α)B̂)` puts
//! back into the subject the part of `I` those averages do not explain. A wide pass, then a
//! narrow one that averages the wide pass's `F` and `B̂`, as the paper does.
//!
//! Both passes' averages are smooth at the scale of their radius, which the paper sets for a
//! 1024-px image; so they are taken on a grid of pixel blocks whose long side is at most
//! [`GRID_SIDE`] (one pixel per block for a photo that size or smaller), and read back at each
//! semi-transparent pixel by bilinear interpolation. Only `F` itself is computed per pixel, so
//! the cost beyond one pass over the photo is in proportion to its semi-transparent pixels, and
//! memory beyond the result is the grid's. Box sums slide down the grid's rows and are prefix
//! sums across them, so the radius does not change the cost either.

use image::{GrayImage, RgbaImage};

use super::nearest_level;

/// Radii of the two passes, in pixels of an image whose long side is 1024 (they scale with it).
const WIDE_RADIUS: f32 = 90.0;
const NARROW_RADIUS: f32 = 6.0;
/// The grid has at most this many cells along the photo's long side.
const GRID_SIDE: usize = 1024;
/// Keeps a block's integer sums within u32 (65025 x this² < 2^32); only a photo whose long side
/// is over 256 x [`GRID_SIDE`] gets a longer grid.
const MAX_BLOCK: usize = 256;

fn is_partial(alpha: u8) -> bool {
    alpha != 0 && alpha != 255
}

/// Gives `image` (of `alpha`'s size) `alpha` as its alpha channel, and each semi-transparent
/// pixel the estimate of the subject's own colour there. Opaque and transparent pixels keep their
/// colour. In place, as a 12 MP photo is 48 MB: every pixel's colour is read before it is written.
pub fn estimate_foreground(image: &mut RgbaImage, alpha: &GrayImage) {
    assert_eq!(
        image.dimensions(),
        alpha.dimensions(),
        "a mask of the photo's size"
    );
    let (width, height) = (image.width() as usize, image.height() as usize);
    let alphas = alpha.as_raw();
    for (px, &a) in image.chunks_exact_mut(4).zip(alphas) {
        px[3] = a;
    }
    // A fold rather than `any`, as it has no early exit to keep it from vectorising.
    let partial_rows: Vec<usize> = (0..height)
        .filter(|&y| {
            alphas[y * width..][..width]
                .iter()
                .fold(false, |any, &a| any | is_partial(a))
        })
        .collect();
    if partial_rows.is_empty() {
        return;
    }
    let pixels = image.as_raw();
    let grid = Grid::new(width, height);
    let blocks = BlockSums::of(image, alpha, &grid);

    let wide = grid.box_means(
        grid.radius(WIDE_RADIUS),
        |cell| blocks.wide_terms(cell),
        |_, s| {
            let colour = [s[4], s[5], s[6]].map(|c| (c / s[7]) as f32);
            let subject = mean([s[1], s[2], s[3]], s[0], colour);
            let background_sums = std::array::from_fn(|c| 255.0 * s[4 + c] - s[1 + c]);
            let background = mean(background_sums, 255.0 * s[7] - s[0], colour);
            [subject, background]
        },
    );

    // Per cell, Σ αF of the wide pass's `F`: `I` where α is 1, computed where it is partial.
    let mut subject_sums: Vec<[f64; 3]> = blocks
        .opaque
        .iter()
        .map(|sums| sums.map(|s| 255.0 * s as f64))
        .collect();
    let mut means_row = vec![[[0.0f32; 3]; 2]; grid.width];
    for &y in &partial_rows {
        wide.interpolate_row(&grid, y, &mut means_row);
        let cells = &mut subject_sums[y / grid.block * grid.width..][..grid.width];
        for (x, &a) in alphas[y * width..][..width].iter().enumerate() {
            if is_partial(a) {
                let [subject, background] = grid.at(&means_row, x);
                let f = blend(subject, background, rgb(pixels, y * width + x), a);
                let sums = &mut cells[grid.cell_column[x]];
                *sums = std::array::from_fn(|c| sums[c] + (a as f32 * f[c]) as f64);
            }
        }
    }
    let narrow = grid.box_means(
        grid.radius(NARROW_RADIUS),
        |cell| {
            let [alpha_sum, pixels] = blocks.alpha_and_pixels(cell);
            let background_weight = 255.0 * pixels - alpha_sum;
            let f = subject_sums[cell];
            let b = wide.cells[cell][1].map(|c| background_weight * c as f64);
            [alpha_sum, f[0], f[1], f[2], b[0], b[1], b[2], pixels]
        },
        |cell, s| {
            let [wide_subject, wide_background] = wide.cells[cell];
            [
                mean([s[1], s[2], s[3]], s[0], wide_subject),
                mean([s[4], s[5], s[6]], 255.0 * s[7] - s[0], wide_background),
            ]
        },
    );

    for &y in &partial_rows {
        narrow.interpolate_row(&grid, y, &mut means_row);
        let row = &mut image.as_mut()[y * width * 4..][..width * 4];
        for (x, &a) in alphas[y * width..][..width].iter().enumerate() {
            if is_partial(a) {
                let [subject, background] = grid.at(&means_row, x);
                let f = blend(subject, background, rgb(row, x), a);
                row[x * 4..][..3].copy_from_slice(&f.map(nearest_level));
            }
        }
    }
}

/// The blocks the averages are taken over, and how a photo pixel reads between their centres.
struct Grid {
    long_side: usize,
    block: usize,
    width: usize,
    height: usize,
    /// Per photo column: its block's grid column.
    cell_column: Vec<usize>,
    /// Per photo column: the two grid columns either side of it and the second one's weight.
    neighbours: Vec<(usize, usize, f32)>,
}

impl Grid {
    fn new(width: usize, height: usize) -> Grid {
        let block = width.max(height).div_ceil(GRID_SIDE).min(MAX_BLOCK);
        let grid_width = width.div_ceil(block);
        Grid {
            long_side: width.max(height),
            block,
            width: grid_width,
            height: height.div_ceil(block),
            cell_column: (0..width).map(|x| x / block).collect(),
            neighbours: (0..width)
                .map(|x| grid_neighbours(x, block, grid_width))
                .collect(),
        }
    }

    /// A radius given for a 1024-px image, in cells of this grid.
    fn radius(&self, base: f32) -> usize {
        let pixels = base * self.long_side as f32 / 1024.0;
        ((pixels / self.block as f32).round() as usize).max(1)
    }

    /// Per cell, `means(cell, sums)` of the sums of `terms` over the cells within `radius` of it.
    fn box_means(
        &self,
        radius: usize,
        terms: impl Fn(usize) -> [f64; 8],
        means: impl Fn(usize, [f64; 8]) -> [[f32; 3]; 2],
    ) -> Means {
        let mut cells = Vec::with_capacity(self.width * self.height);
        let mut sums = ColumnSums::new(self.width);
        let mut row_terms = vec![[0.0; 8]; self.width];
        let row_of = |row: usize, out: &mut [[f64; 8]]| {
            for (x, t) in out.iter_mut().enumerate() {
                *t = terms(row * self.width + x);
            }
        };
        let (mut top, mut bottom) = (0, 0);
        for y in 0..self.height {
            while bottom < (y + radius + 1).min(self.height) {
                row_of(bottom, &mut row_terms);
                sums.add(&row_terms);
                bottom += 1;
            }
            while top < y.saturating_sub(radius) {
                row_of(top, &mut row_terms);
                sums.remove(&row_terms);
                top += 1;
            }
            sums.prepare();
            for x in 0..self.width {
                let window =
                    sums.window(x.saturating_sub(radius), (x + radius + 1).min(self.width));
                cells.push(means(y * self.width + x, window));
            }
        }
        Means { cells }
    }

    /// `F̂` and `B̂` at photo column `x` of a row from [`Means::interpolate_row`].
    fn at(&self, row: &[[[f32; 3]; 2]], x: usize) -> [[f32; 3]; 2] {
        let (left, right, weight) = self.neighbours[x];
        let (left, right) = (&row[left], &row[right]);
        std::array::from_fn(|m| std::array::from_fn(|c| lerp(left[m][c], right[m][c], weight)))
    }
}

/// Per grid cell: `F̂` and `B̂`, as RGB.
struct Means {
    cells: Vec<[[f32; 3]; 2]>,
}

impl Means {
    /// The averages at photo row `y`, per grid column, into `row`.
    fn interpolate_row(&self, grid: &Grid, y: usize, row: &mut [[[f32; 3]; 2]]) {
        let (top, bottom, weight) = grid_neighbours(y, grid.block, grid.height);
        let grid_row = |r: usize| &self.cells[r * grid.width..][..grid.width];
        for ((out, top), bottom) in row.iter_mut().zip(grid_row(top)).zip(grid_row(bottom)) {
            *out = std::array::from_fn(|m| {
                std::array::from_fn(|c| lerp(top[m][c], bottom[m][c], weight))
            });
        }
    }
}

/// Per block of the photo, exact integer sums: Σα, ΣαI (3), ΣI (3), the pixel count (for the
/// wide pass; Σ(1-α)I and Σ(1-α) follow), and ΣI over the opaque pixels (for the narrow one).
struct BlockSums {
    wide: Vec<[u32; 8]>,
    opaque: Vec<[u32; 3]>,
}

impl BlockSums {
    fn of(image: &RgbaImage, alpha: &GrayImage, grid: &Grid) -> BlockSums {
        let width = image.width() as usize;
        let cells = grid.width * grid.height;
        let (mut wide, mut opaque) = (vec![[0u32; 8]; cells], vec![[0u32; 3]; cells]);
        // Per photo column, sums down the rows of the current row of blocks, in flat slices of
        // RGBA lanes (the A lane unused) for SIMD: ΣI, ΣαI and ΣI where α is 1; and Σα.
        let mut colour = vec![0u32; width * 4];
        let mut weighted = vec![0u32; width * 4];
        let mut solid = vec![0u32; width * 4];
        let mut alpha_sums = vec![0u32; width];
        let mut alpha_lanes = vec![0u8; width * 4];
        let rows = image
            .as_raw()
            .chunks_exact(width * 4)
            .zip(alpha.as_raw().chunks_exact(width));
        for (y, (pixel_row, alpha_row)) in rows.enumerate() {
            for (lanes, &a) in alpha_lanes.chunks_exact_mut(4).zip(alpha_row) {
                lanes.fill(a);
            }
            for (sum, &a) in alpha_sums.iter_mut().zip(alpha_row) {
                *sum += a as u32;
            }
            // Indexed, over slices of one length, so that the loop compiles to SIMD.
            let n = width * 4;
            let (c, w, s) = (&mut colour[..n], &mut weighted[..n], &mut solid[..n]);
            let (values, alpha_lanes) = (&pixel_row[..n], &alpha_lanes[..n]);
            for i in 0..n {
                let (v, a) = (values[i], alpha_lanes[i]);
                c[i] += v as u32;
                // α x I fits in 16 bits, which SIMD multiplies in one step.
                w[i] += (v as u16 * a as u16) as u32;
                s[i] += if a == 255 { v as u32 } else { 0 };
            }
            let last_of_block_row = (y + 1) % grid.block == 0 || y + 1 == alpha.height() as usize;
            if !last_of_block_row {
                continue;
            }
            let row = y / grid.block * grid.width..(y / grid.block + 1) * grid.width;
            for (x, (wide, opaque)) in wide[row.clone()]
                .iter_mut()
                .zip(&mut opaque[row])
                .enumerate()
            {
                let columns = x * grid.block..((x + 1) * grid.block).min(width);
                let lanes = columns.start * 4..columns.end * 4;
                let total = |sums: &[u32]| {
                    sums.chunks_exact(4)
                        .fold([0u32; 3], |t, s| [t[0] + s[0], t[1] + s[1], t[2] + s[2]])
                };
                let ([r, g, b], [ar, ag, ab]) = (
                    total(&colour[lanes.clone()]),
                    total(&weighted[lanes.clone()]),
                );
                let a = alpha_sums[columns.clone()].iter().sum();
                let pixels = (columns.len() * (y % grid.block + 1)) as u32;
                *wide = [a, ar, ag, ab, r, g, b, pixels];
                *opaque = total(&solid[lanes]);
            }
            for sums in [&mut colour, &mut weighted, &mut solid] {
                sums.fill(0);
            }
            alpha_sums.fill(0);
        }
        BlockSums { wide, opaque }
    }

    fn wide_terms(&self, cell: usize) -> [f64; 8] {
        self.wide[cell].map(f64::from)
    }

    fn alpha_and_pixels(&self, cell: usize) -> [f64; 2] {
        [self.wide[cell][0] as f64, self.wide[cell][7] as f64]
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

/// The colour of pixel `index` of an RGBA buffer.
fn rgb(pixels: &[u8], index: usize) -> [f32; 3] {
    let px = &pixels[index * 4..][..3];
    [px[0] as f32, px[1] as f32, px[2] as f32]
}

/// `sums / weight`, or `fallback` where nothing in the window had weight.
fn mean(sums: [f64; 3], weight: f64, fallback: [f32; 3]) -> [f32; 3] {
    if weight <= 0.0 {
        return fallback;
    }
    sums.map(|s| (s / weight) as f32)
}

/// `F̂ + α(I - αF̂ - (1-α)B̂)`, clamped to the colour range.
fn blend(subject: [f32; 3], background: [f32; 3], colour: [f32; 3], alpha: u8) -> [f32; 3] {
    let a = alpha as f32 / 255.0;
    std::array::from_fn(|c| {
        let f = subject[c] + a * (colour[c] - a * subject[c] - (1.0 - a) * background[c]);
        f.clamp(0.0, 255.0)
    })
}

/// Per column, the sums of 8 terms over the rows added and not yet removed; across a row, prefix
/// sums of those, so that any horizontal window's total is one subtraction. In f64, which holds
/// the integer sums exactly.
struct ColumnSums {
    sums: Vec<[f64; 8]>,
    prefix: Vec<[f64; 8]>,
}

impl ColumnSums {
    fn new(width: usize) -> Self {
        ColumnSums {
            sums: vec![[0.0; 8]; width],
            prefix: vec![[0.0; 8]; width + 1],
        }
    }

    fn add(&mut self, row: &[[f64; 8]]) {
        for (sum, terms) in self.sums.iter_mut().zip(row) {
            *sum = std::array::from_fn(|k| sum[k] + terms[k]);
        }
    }

    fn remove(&mut self, row: &[[f64; 8]]) {
        for (sum, terms) in self.sums.iter_mut().zip(row) {
            *sum = std::array::from_fn(|k| sum[k] - terms[k]);
        }
    }

    /// Prefix sums of the current column sums across the row.
    fn prepare(&mut self) {
        let mut running = [0.0; 8];
        for (prefix, sum) in self.prefix[1..].iter_mut().zip(&self.sums) {
            running = std::array::from_fn(|k| running[k] + sum[k]);
            *prefix = running;
        }
    }

    /// The sums over columns `[lo, hi)` of the rows in the window.
    fn window(&self, lo: usize, hi: usize) -> [f64; 8] {
        let (a, b) = (&self.prefix[lo], &self.prefix[hi]);
        std::array::from_fn(|k| b[k] - a[k])
    }
}
