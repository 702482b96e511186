//! The convolution itself: the image padded and split into tiles, each chunk of tiles
//! transformed, multiplied by the transformed kernel and transformed back into outputs.

use super::*;

impl<T: Element> WinogradConv<T> {
    /// Every channel block of one chunk of `tiles`, stored into `out`.
    ///
    /// # Safety
    /// `out` holds `c_out * height * width` values and no other thread writes these tiles.
    pub(super) unsafe fn convolve_chunk<F: Fn(usize, &mut [T::Sum])>(
        &self,
        padded: &Padded<T>,
        tiles: &[(usize, usize)],
        (height, width): (usize, usize),
        scratch: &mut Scratch<T>,
        finish: &F,
        out: &SharedOutput<T::Sum>,
    ) {
        let blocks = self.blocks.len();
        for (index, block) in self.blocks.iter().enumerate() {
            self.transform_inputs(padded, block, tiles, &mut scratch.inputs);
            let stage = Stage {
                accumulate: index > 0,
                finish: (index + 1 == blocks).then_some(finish),
            };
            // Four output channels at a time: their products stay in L1 from the multiply to
            // the output transform (all channels' products at once spilled out of L2).
            for row_panel in 0..self.c_out.div_ceil(ROWS) {
                let products = &mut scratch.products;
                self.multiply(block, row_panel, tiles.len(), &scratch.inputs, products);
                self.transform_outputs(row_panel, products, tiles, (height, width), &stage, out);
            }
        }
    }

    /// The 16 transformed values of every (tile, channel) of `block`, packed in panels of 8
    /// tiles for the micro-kernel: `[position][tile panel][channel group][tile 0..8][member]`.
    fn transform_inputs(
        &self,
        padded: &Padded<T>,
        block: &KernelBlock<T>,
        tiles: &[(usize, usize)],
        inputs: &mut Vec<T>,
    ) {
        let d = self.dilation;
        let panels = tiles.len().div_ceil(PANEL);
        let group_len = PANEL * T::GROUP;
        let position_stride = panels * block.groups * group_len;
        // Every value is written below: no zeroing (scratch is reused from chunk to chunk).
        if inputs.len() < POSITIONS * position_stride {
            inputs.resize(POSITIONS * position_stride, T::default());
        }
        for (panel, panel_tiles) in tiles.chunks(PANEL).enumerate() {
            let in_one_row = is_row_of_tiles(panel_tiles, d);
            for group in 0..block.groups {
                for e in 0..T::GROUP {
                    let c = T::GROUP * group + e;
                    // patch[r][s][tile]: the tile's 4x4 input window, one lane per tile (zero
                    // past the last tile, and for the channel padding an odd count to pairs).
                    let mut patch = [[[T::default(); PANEL]; 4]; 4];
                    let plane = padded.plane(block.first_channel + c.min(block.channels - 1));
                    if c >= block.channels {
                        // Stays zero.
                    } else if in_one_row {
                        // Window column s of tile t is padded column x0 + 2t + s.
                        let (y0, x0) = panel_tiles[0];
                        for (r, row) in patch.iter_mut().enumerate() {
                            for (s, lanes) in row.iter_mut().enumerate() {
                                let first = padded.at(y0 + r, x0 + s);
                                lanes.copy_from_slice(&plane[first..][..PANEL]);
                            }
                        }
                    } else {
                        for (t, &(y0, x0)) in panel_tiles.iter().enumerate() {
                            for (r, row) in patch.iter_mut().enumerate() {
                                for (s, lanes) in row.iter_mut().enumerate() {
                                    lanes[t] = plane[padded.at(y0 + d * r, x0 + d * s)];
                                }
                            }
                        }
                    }
                    let transformed = transform_patch(&patch);
                    // Group members interleaved, as pmaddwd pairs them.
                    let base = (panel * block.groups + group) * group_len;
                    for (p, lanes) in transformed.iter().enumerate() {
                        let at = &mut inputs[p * position_stride + base..][..group_len];
                        for (t, &v) in lanes.iter().enumerate() {
                            at[t * T::GROUP + e] = v;
                        }
                    }
                }
            }
        }
    }

    /// Per position, the transformed kernel's `row_panel` (4 output channels) x transformed
    /// inputs: `products[position][output channel - 4 row_panel][tile]`.
    fn multiply(
        &self,
        block: &KernelBlock<T>,
        row_panel: usize,
        tiles: usize,
        inputs: &[T],
        products: &mut Vec<T::Sum>,
    ) {
        let panels = tiles.div_ceil(PANEL);
        let columns = panels * PANEL;
        // Every value is written below: no zeroing (scratch is reused from chunk to chunk).
        if products.len() < POSITIONS * ROWS * columns {
            products.resize(POSITIONS * ROWS * columns, T::Sum::default());
        }
        let kernel_panel = block.groups * ROWS * T::GROUP;
        let input_panel = block.groups * PANEL * T::GROUP;
        for p in 0..POSITIONS {
            let a = &block.packed[(row_panel * POSITIONS + p) * kernel_panel..][..kernel_panel];
            let input = &inputs[p * panels * input_panel..];
            let out = &mut products[p * ROWS * columns..];
            for cp in 0..panels {
                let b = &input[cp * input_panel..][..input_panel];
                let tile = T::micro_kernel(a, b, block.groups);
                for (r, row) in tile.iter().enumerate() {
                    out[r * columns + cp * PANEL..][..PANEL].copy_from_slice(row);
                }
            }
        }
    }

    /// Turns each tile's 16 products per output channel of `row_panel` into its 2x2 outputs and
    /// stores them (plus the bias), or, for later channel blocks, adds them; the last block's
    /// are finished.
    ///
    /// # Safety
    /// `output` holds `c_out * height * width` values and no other thread writes these tiles.
    unsafe fn transform_outputs<F: Fn(usize, &mut [T::Sum])>(
        &self,
        row_panel: usize,
        products: &[T::Sum],
        tiles: &[(usize, usize)],
        (height, width): (usize, usize),
        stage: &Stage<'_, F>,
        output: &SharedOutput<T::Sum>,
    ) {
        let d = self.dilation;
        let columns = tiles.len().div_ceil(PANEL) * PANEL;
        let position_stride = ROWS * columns;
        let first = row_panel * ROWS;
        for o in first..self.c_out.min(first + ROWS) {
            let plane = output.0.add(o * height * width);
            let bias = self.bias.as_ref().map_or(T::Sum::default(), |b| b[o]);
            // What to store at `at` for this block's `sum`: plus the bias, or the earlier blocks'.
            let value = |at: *mut T::Sum, sum: T::Sum| {
                let value = T::quarter(sum);
                if stage.accumulate {
                    T::plus(*at, value)
                } else {
                    T::plus(value, bias)
                }
            };
            let finish = |values: &mut [T::Sum]| {
                if let Some(finish) = stage.finish {
                    finish(o, values)
                }
            };
            for (panel, panel_tiles) in tiles.chunks(PANEL).enumerate() {
                let mut m = [[T::Sum::default(); PANEL]; POSITIONS];
                for (p, lanes) in m.iter_mut().enumerate() {
                    let at = p * position_stride + (o - first) * columns + panel * PANEL;
                    lanes.copy_from_slice(&products[at..][..PANEL]);
                }
                let y = transform_products::<T>(&m);
                let (y0, x0) = panel_tiles[0];
                if is_row_of_tiles(panel_tiles, d) && y0 + 1 < height && x0 + 2 * PANEL <= width {
                    for (a, row) in y.iter().enumerate() {
                        let out = plane.add((y0 + a) * width + x0);
                        // The row's 16 outputs, finished together (vectorised), then stored.
                        let mut values = [T::Sum::default(); 2 * PANEL];
                        for (t, (&left, &right)) in row[0].iter().zip(&row[1]).enumerate() {
                            values[2 * t] = value(out.add(2 * t), left);
                            values[2 * t + 1] = value(out.add(2 * t + 1), right);
                        }
                        finish(&mut values);
                        std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len());
                    }
                    continue;
                }
                for (t, &(y0, x0)) in panel_tiles.iter().enumerate() {
                    for (a, row) in y.iter().enumerate() {
                        let yy = y0 + d * a;
                        if yy >= height {
                            continue;
                        }
                        for (b, lanes) in row.iter().enumerate() {
                            let xx = x0 + d * b;
                            if xx < width {
                                let at = plane.add(yy * width + xx);
                                let mut one = [value(at, lanes[t])];
                                finish(&mut one);
                                *at = one[0];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Which channel block [`WinogradConv::transform_outputs`] stores: from the second on, sums
/// are added to the output; the last one's values are finished.
struct Stage<'f, F> {
    accumulate: bool,
    finish: Option<&'f F>,
}

/// Whether a panel is 8 side-by-side tiles of an undilated convolution.
fn is_row_of_tiles(tiles: &[(usize, usize)], d: usize) -> bool {
    let (y0, x0) = tiles[0];
    d == 1 && tiles.len() == PANEL && tiles[PANEL - 1] == (y0, x0 + 2 * (PANEL - 1))
}

/// One thread's buffers for a chunk's transformed inputs and products.
pub struct Scratch<T: Element> {
    inputs: Vec<T>,
    products: Vec<T::Sum>,
}

impl<T: Element> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            inputs: vec![],
            products: vec![],
        }
    }
}

/// The output buffer, written by several threads at disjoint tiles.
pub(super) struct SharedOutput<S>(pub(super) *mut S);
unsafe impl<S> Sync for SharedOutput<S> {}
unsafe impl<S> Send for SharedOutput<S> {}

/// The converted input as planes with `dilation` zero pixels above and left and
/// `2 * dilation` below and right, so every tile's 4x4 window reads inside the plane. Each row
/// holds its even columns, then its odd ones: a row of undilated tiles (2 pixels apart) then
/// finds each of its 4 window columns as 8 consecutive values.
pub(super) struct Padded<T> {
    data: Vec<T>,
    stride: usize,
    /// Where a row's odd columns start.
    odd: usize,
    plane_len: usize,
}

impl<T: Element> Padded<T> {
    pub(super) fn new<S: Copy + Sync>(
        image: &[S],
        convert: impl Fn(S) -> T + Sync + Send,
        channels: usize,
        height: usize,
        width: usize,
        d: usize,
    ) -> Self {
        let stride = width + 3 * d;
        let odd = stride.div_ceil(2);
        let plane_len = (height + 3 * d) * stride;
        // Each plane is zeroed and filled by the thread that owns it.
        let mut data: Vec<T> = Vec::with_capacity(channels * plane_len);
        let image = &image[..channels * height * width];
        let planes = (
            (image, height * width),
            (
                &mut data.spare_capacity_mut()[..channels * plane_len],
                plane_len,
            ),
        );
        parallel::zip_chunks_indexed(planes.0, planes.1, |_, src, dst| {
            for value in dst.iter_mut() {
                value.write(T::default());
            }
            // Safety: just initialised.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut T, dst.len()) };
            for (y, row) in src.chunks_exact(width).enumerate() {
                let out = &mut dst[(y + d) * stride..][..stride];
                let (evens, odds) = out.split_at_mut(odd);
                // Image column x lands on padded column x + d.
                let (to_even, to_odd) = if d % 2 == 0 {
                    (&mut evens[d / 2..], &mut odds[d / 2..])
                } else {
                    (&mut odds[d / 2..], &mut evens[d / 2 + 1..])
                };
                let pairs = row.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    to_even[width / 2] = convert(*last);
                }
                for ((pair, e), o) in pairs.zip(to_even.iter_mut()).zip(to_odd.iter_mut()) {
                    *e = convert(pair[0]);
                    *o = convert(pair[1]);
                }
            }
        });
        // Safety: every plane was initialised above.
        unsafe { data.set_len(channels * plane_len) };
        Padded {
            data,
            stride,
            odd,
            plane_len,
        }
    }

    fn plane(&self, c: usize) -> &[T] {
        &self.data[c * self.plane_len..][..self.plane_len]
    }

    /// Index of padded pixel (y, x) in its plane.
    fn at(&self, y: usize, x: usize) -> usize {
        y * self.stride + (x % 2) * self.odd + x / 2
    }
}

/// Top-left output pixel of every tile: for each residue class of rows and columns modulo the
/// dilation, 2x2 blocks of that class's pixels. In padded coordinates it is also the top-left
/// of the tile's input window.
pub(super) fn tile_origins(height: usize, width: usize, d: usize) -> Vec<(usize, usize)> {
    let mut tiles = vec![];
    for ry in 0..d.min(height) {
        for y0 in (ry..height).step_by(2 * d) {
            for rx in 0..d.min(width) {
                for x0 in (rx..width).step_by(2 * d) {
                    tiles.push((y0, x0));
                }
            }
        }
    }
    tiles
}

/// Tiles per chunk of work: whole panels, enough to amortise each kernel panel's load, few
/// enough that a chunk's transformed inputs (`bytes_per_tile_position` per tile and position)
/// stay in cache and threads get several chunks.
pub(super) fn chunk_tiles(tiles: usize, bytes_per_tile_position: usize) -> usize {
    let cache_bound = (1 << 18) / (POSITIONS * bytes_per_tile_position.max(1));
    let spread = tiles.div_ceil(8);
    cache_bound.min(spread).clamp(2 * PANEL, 16 * PANEL) / PANEL * PANEL
}

/// `2G g 2Gᵀ` for a 3x3 kernel `g` (row-major), with `2G = [[2,0,0],[1,1,1],[1,-1,1],[0,0,2]]`.
pub(super) fn transform_kernel<T: Element>(g: &[T::Sum]) -> [T::Sum; POSITIONS] {
    let column = |a: T::Sum, b: T::Sum, c: T::Sum| {
        [
            T::plus(a, a),
            T::plus(T::plus(a, b), c),
            T::plus(T::minus(a, b), c),
            T::plus(c, c),
        ]
    };
    let mut rows = [[T::Sum::default(); 3]; 4]; // 2G g
    for s in 0..3 {
        let t = column(g[s], g[3 + s], g[6 + s]);
        for r in 0..4 {
            rows[r][s] = t[r];
        }
    }
    let mut u = [T::Sum::default(); POSITIONS];
    for r in 0..4 {
        let t = column(rows[r][0], rows[r][1], rows[r][2]);
        u[r * 4..][..4].copy_from_slice(&t);
    }
    u
}

/// `Bᵀ d B` for each lane, `Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`.
fn transform_patch<T: Element>(d: &[[[T; PANEL]; 4]; 4]) -> [[T; PANEL]; POSITIONS] {
    fn bt<T: Element>(v: [[T; PANEL]; 4]) -> [[T; PANEL]; 4] {
        let mut t = [[T::default(); PANEL]; 4];
        for l in 0..PANEL {
            t[0][l] = v[0][l] - v[2][l];
            t[1][l] = v[1][l] + v[2][l];
            t[2][l] = v[2][l] - v[1][l];
            t[3][l] = v[1][l] - v[3][l];
        }
        t
    }
    // Rows first (over r for each column s), then columns (over s for each row).
    let mut columns = [[[T::default(); PANEL]; 4]; 4]; // [s][r']
    for s in 0..4 {
        columns[s] = bt([d[0][s], d[1][s], d[2][s], d[3][s]]);
    }
    let mut out = [[T::default(); PANEL]; POSITIONS];
    for r in 0..4 {
        let t = bt([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
        out[r * 4..][..4].copy_from_slice(&t);
    }
    out
}

/// `Aᵀ m A` for each lane, `Aᵀ = [[1,1,1,0],[0,1,-1,-1]]`: the tile's 2x2 outputs (times 4).
fn transform_products<T: Element>(m: &[[T::Sum; PANEL]; POSITIONS]) -> [[[T::Sum; PANEL]; 2]; 2] {
    let at = |v: [[T::Sum; PANEL]; 4]| {
        let mut t = [[T::Sum::default(); PANEL]; 2];
        for l in 0..PANEL {
            t[0][l] = T::plus(T::plus(v[0][l], v[1][l]), v[2][l]);
            t[1][l] = T::minus(T::minus(v[1][l], v[2][l]), v[3][l]);
        }
        t
    };
    let mut rows = [[[T::Sum::default(); PANEL]; 4]; 2]; // [a][s]
    for s in 0..4 {
        let t = at([m[s], m[4 + s], m[8 + s], m[12 + s]]);
        rows[0][s] = t[0];
        rows[1][s] = t[1];
    }
    [at(rows[0]), at(rows[1])]
}
