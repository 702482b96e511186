//! The convolution itself: the image padded and split into tiles, each chunk of tiles
//! transformed, multiplied by the transformed kernel and transformed back into outputs.

use super::*;

/// One chunk of tiles to convolve: the padded image, the tiles (their top-left input pixels),
/// the output's size, what finishes each channel's sums, and the output.
pub(super) struct Chunk<'a, T: Element, F> {
    pub padded: &'a Padded<T>,
    pub tiles: &'a [(usize, usize)],
    pub size: (usize, usize),
    pub finish: &'a F,
    pub out: &'a SharedOutput<T::Sum>,
}

impl<T: Element> WinogradConv<T> {
    /// Every channel block of one chunk of tiles, stored into its output. On x86_64 CPUs with
    /// AVX2 and FMA, in code compiled for them: the transforms' 8-lane arrays are then one
    /// vector each (the portable build's SSE2 takes two).
    ///
    /// # Safety
    /// The output holds `c_out * height * width` values and no other thread writes these tiles.
    pub(super) unsafe fn convolve_chunk<F>(&self, chunk: &Chunk<T, F>, scratch: &mut Scratch<T>)
    where
        F: Fn(usize, &mut [T::Sum]),
    {
        #[cfg(target_arch = "x86_64")]
        if kernels::has_avx2_fma() {
            // Safety: the CPU has AVX2 and FMA; the rest is the caller's promise.
            return unsafe { self.convolve_chunk_avx2(chunk, scratch) };
        }
        // Safety: the caller's promise.
        unsafe { self.convolve_chunk_inlined(chunk, scratch) }
    }

    /// [`WinogradConv::convolve_chunk`] compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, and as [`WinogradConv::convolve_chunk`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn convolve_chunk_avx2<F>(&self, chunk: &Chunk<T, F>, scratch: &mut Scratch<T>)
    where
        F: Fn(usize, &mut [T::Sum]),
    {
        // Safety: the caller's promise.
        unsafe { self.convolve_chunk_inlined(chunk, scratch) }
    }

    /// [`WinogradConv::convolve_chunk`]'s work, inlined (with the transforms and the multiply
    /// loop, which are `inline(always)` too) into its callers, so that each is compiled for its
    /// own target features.
    ///
    /// # Safety
    /// As [`WinogradConv::convolve_chunk`].
    #[inline(always)]
    unsafe fn convolve_chunk_inlined<F>(&self, chunk: &Chunk<T, F>, scratch: &mut Scratch<T>)
    where
        F: Fn(usize, &mut [T::Sum]),
    {
        let Chunk {
            padded,
            tiles,
            size,
            finish,
            out,
        } = *chunk;
        let blocks = self.blocks.len();
        for (index, block) in self.blocks.iter().enumerate() {
            self.transform_inputs(padded, block, tiles, &mut scratch.inputs);
            let stage = Stage {
                accumulate: index > 0,
                finish: (index + 1 == blocks).then_some(finish),
            };
            // Four output channels at a time: their products stay in L1 from the multiply to
            // the output transform (all channels' products at once spilled out of L2).
            let panel_len = block.panel_len(self.tiling);
            for (row_panel, kernel) in block.packed.chunks_exact(panel_len).enumerate() {
                let products = &mut scratch.products;
                self.multiply(kernel, block.groups, tiles.len(), &scratch.inputs, products);
                self.transform_outputs(row_panel, products, tiles, size, &stage, out);
            }
        }
    }

    /// The convolution with a kernel transformed as it goes (see `transforms_per_run`): for each
    /// channel block, the tiles' inputs transformed a chunk of tiles at a time, split over the
    /// threads; then the output channels a row panel at a time, split over the threads, each
    /// panel's kernel transformed once into the thread's scratch and multiplied by every chunk.
    pub(super) fn convolve_by_row_panels<F>(
        &self,
        kernel: &KernelSource<T>,
        padded: &Padded<T>,
        tiles: &[(usize, usize)],
        size: (usize, usize),
        finish: &F,
        out: &SharedOutput<T::Sum>,
    ) where
        F: Fn(usize, &mut [T::Sum]) + Sync,
    {
        let row_panels: Vec<usize> = (0..self.c_out.div_ceil(ROWS)).collect();
        let blocks = self.blocks.len();
        for (index, block) in self.blocks.iter().enumerate() {
            let bytes_per_tile_position = block.channels * std::mem::size_of::<T>();
            let chunk = chunk_tiles(
                tiles.len(),
                bytes_per_tile_position,
                self.tiling.positions(),
            );
            let inputs = parallel::map_chunks(tiles, chunk, |tiles| {
                let mut inputs = vec![];
                self.transform_all_inputs(padded, block, tiles, &mut inputs);
                inputs
            });
            let stage = Stage {
                accumulate: index > 0,
                finish: (index + 1 == blocks).then_some(finish),
            };
            let panel = RowPanel {
                kernel,
                block,
                inputs: &inputs,
                tiles,
                chunk,
                size,
                stage: &stage,
                out,
            };
            parallel::for_each_chunk(&row_panels, 1, |row_panels| {
                T::with_scratch(|scratch| {
                    for &rp in row_panels {
                        // Safety: each row panel writes its own output channels only.
                        unsafe { self.convolve_row_panel(&panel, rp, scratch) }
                    }
                })
            });
        }
    }

    /// [`WinogradConv::transform_inputs`], compiled for AVX2 and FMA where the CPU has them.
    fn transform_all_inputs(
        &self,
        padded: &Padded<T>,
        block: &KernelBlock<T>,
        tiles: &[(usize, usize)],
        inputs: &mut Vec<T>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if kernels::has_avx2_fma() {
            // Safety: the CPU has AVX2 and FMA.
            return unsafe { self.transform_all_inputs_avx2(padded, block, tiles, inputs) };
        }
        self.transform_inputs(padded, block, tiles, inputs)
    }

    /// [`WinogradConv::transform_all_inputs`] compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transform_all_inputs_avx2(
        &self,
        padded: &Padded<T>,
        block: &KernelBlock<T>,
        tiles: &[(usize, usize)],
        inputs: &mut Vec<T>,
    ) {
        self.transform_inputs(padded, block, tiles, inputs)
    }

    /// One row panel of [`WinogradConv::convolve_by_row_panels`]: its kernel transformed,
    /// multiplied by every tile and transformed into its outputs. Compiled for AVX2 and FMA where
    /// the CPU has them, as [`WinogradConv::convolve_chunk`] is.
    ///
    /// # Safety
    /// The output holds `c_out * height * width` values and no other thread writes this panel's.
    unsafe fn convolve_row_panel<F>(
        &self,
        panel: &RowPanel<T, F>,
        rp: usize,
        scratch: &mut Scratch<T>,
    ) where
        F: Fn(usize, &mut [T::Sum]),
    {
        #[cfg(target_arch = "x86_64")]
        if kernels::has_avx2_fma() {
            // Safety: the CPU has AVX2 and FMA; the rest is the caller's promise.
            return unsafe { self.convolve_row_panel_avx2(panel, rp, scratch) };
        }
        // Safety: the caller's promise.
        unsafe { self.convolve_row_panel_inlined(panel, rp, scratch) }
    }

    /// [`WinogradConv::convolve_row_panel`] compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, and as [`WinogradConv::convolve_row_panel`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn convolve_row_panel_avx2<F>(
        &self,
        panel: &RowPanel<T, F>,
        rp: usize,
        scratch: &mut Scratch<T>,
    ) where
        F: Fn(usize, &mut [T::Sum]),
    {
        // Safety: the caller's promise.
        unsafe { self.convolve_row_panel_inlined(panel, rp, scratch) }
    }

    /// [`WinogradConv::convolve_row_panel`]'s work, inlined into its callers.
    ///
    /// # Safety
    /// As [`WinogradConv::convolve_row_panel`].
    #[inline(always)]
    unsafe fn convolve_row_panel_inlined<F>(
        &self,
        panel: &RowPanel<T, F>,
        rp: usize,
        scratch: &mut Scratch<T>,
    ) where
        F: Fn(usize, &mut [T::Sum]),
    {
        let block = panel.block;
        let len = block.panel_len(self.tiling);
        if scratch.kernel.len() < len {
            scratch.kernel.resize(len, T::default());
        }
        let kernel = &mut scratch.kernel[..len];
        let first = rp * self.c_in + block.first_channel;
        pack_row_panel(|c| panel.kernel.taps(first + c), self.tiling, block, kernel)
            .expect("kernels transformed per run fit their type");
        let chunks = panel.tiles.chunks(panel.chunk).zip(panel.inputs);
        for (tiles, inputs) in chunks {
            self.multiply(
                kernel,
                block.groups,
                tiles.len(),
                inputs,
                &mut scratch.products,
            );
            let (products, out) = (&scratch.products, panel.out);
            // Safety: the caller's promise.
            unsafe { self.transform_outputs(rp, products, tiles, panel.size, panel.stage, out) };
        }
    }

    /// The transformed values of every (tile, channel) of `block`, packed in panels of 8 tiles
    /// for the micro-kernel: `[position][tile panel][channel group][tile 0..8][member]`.
    #[inline(always)]
    fn transform_inputs(
        &self,
        padded: &Padded<T>,
        block: &KernelBlock<T>,
        tiles: &[(usize, usize)],
        inputs: &mut Vec<T>,
    ) {
        match self.tiling {
            Tiling::F4 if T::WIDE_TILES => {
                self.transform_inputs_sized::<4, 6>(padded, block, tiles, inputs)
            }
            _ => self.transform_inputs_sized::<2, 4>(padded, block, tiles, inputs),
        }
    }

    /// [`WinogradConv::transform_inputs`] for `M`x`M` output tiles (`N = M + 2`).
    #[inline(always)]
    fn transform_inputs_sized<const M: usize, const N: usize>(
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
        if inputs.len() < N * N * position_stride {
            inputs.resize(N * N * position_stride, T::default());
        }
        for (panel, panel_tiles) in tiles.chunks(PANEL).enumerate() {
            let in_one_row = is_row_of_tiles(panel_tiles, d, M);
            for group in 0..block.groups {
                for e in 0..T::GROUP {
                    let c = T::GROUP * group + e;
                    // patch[r][s][tile]: the tile's NxN input window, one lane per tile (zero
                    // past the last tile, and for the channel padding an odd count to pairs).
                    let mut patch = [[[T::default(); PANEL]; N]; N];
                    let plane = padded.plane(block.first_channel + c.min(block.channels - 1));
                    if c >= block.channels {
                        // Stays zero.
                    } else if in_one_row {
                        // Window column s of tile t is padded column x0 + M t + s.
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
                    let transformed = transform_patch::<T, N>(&patch);
                    // Group members interleaved, as pmaddwd pairs them.
                    let base = (panel * block.groups + group) * group_len;
                    for (p, lanes) in transformed.iter().flatten().enumerate() {
                        let at = &mut inputs[p * position_stride + base..][..group_len];
                        for (t, &v) in lanes.iter().enumerate() {
                            at[t * T::GROUP + e] = v;
                        }
                    }
                }
            }
        }
    }

    /// Per position, a row panel of the transformed kernel (4 output channels, `kernel` as
    /// [`pack_row_panel`] lays it out) x transformed inputs:
    /// `products[position][output channel - 4 row_panel][tile]`.
    #[inline(always)]
    fn multiply(
        &self,
        kernel: &[T],
        groups: usize,
        tiles: usize,
        inputs: &[T],
        products: &mut Vec<T::Sum>,
    ) {
        let panels = tiles.div_ceil(PANEL);
        let columns = panels * PANEL;
        let positions = self.tiling.positions();
        // Every value is written below: no zeroing (scratch is reused from chunk to chunk).
        if products.len() < positions * ROWS * columns {
            products.resize(positions * ROWS * columns, T::Sum::default());
        }
        let kernel_panel = groups * ROWS * T::GROUP;
        let input_panel = groups * PANEL * T::GROUP;
        for p in 0..positions {
            let a = &kernel[p * kernel_panel..][..kernel_panel];
            let input = &inputs[p * panels * input_panel..];
            let out = &mut products[p * ROWS * columns..];
            for cp in 0..panels {
                let b = &input[cp * input_panel..][..input_panel];
                let tile = T::micro_kernel(a, b, groups);
                for (r, row) in tile.iter().enumerate() {
                    out[r * columns + cp * PANEL..][..PANEL].copy_from_slice(row);
                }
            }
        }
    }

    /// Turns each tile's products per output channel of `row_panel` into its outputs and
    /// stores them (plus the bias), or, for later channel blocks, adds them; the last block's
    /// are finished.
    ///
    /// # Safety
    /// `output` holds `c_out * height * width` values and no other thread writes these tiles.
    #[inline(always)]
    unsafe fn transform_outputs<F: Fn(usize, &mut [T::Sum])>(
        &self,
        row_panel: usize,
        products: &[T::Sum],
        tiles: &[(usize, usize)],
        size: (usize, usize),
        stage: &Stage<'_, F>,
        output: &SharedOutput<T::Sum>,
    ) {
        match self.tiling {
            Tiling::F4 if T::WIDE_TILES => self.transform_outputs_sized::<F, 4, 6>(
                row_panel, products, tiles, size, stage, output,
            ),
            _ => self.transform_outputs_sized::<F, 2, 4>(
                row_panel, products, tiles, size, stage, output,
            ),
        }
    }

    /// [`WinogradConv::transform_outputs`] for `M`x`M` output tiles (`N = M + 2`).
    ///
    /// # Safety
    /// As [`WinogradConv::transform_outputs`].
    #[inline(always)]
    unsafe fn transform_outputs_sized<
        F: Fn(usize, &mut [T::Sum]),
        const M: usize,
        const N: usize,
    >(
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
                // F(2x2)'s kernels are transformed with 2G (no halves, for i16): 4x the sum.
                let value = if M == 2 { T::quarter(sum) } else { sum };
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
                let mut m = [[[T::Sum::default(); PANEL]; N]; N];
                for (p, lanes) in m.iter_mut().flatten().enumerate() {
                    let at = p * position_stride + (o - first) * columns + panel * PANEL;
                    lanes.copy_from_slice(&products[at..][..PANEL]);
                }
                let y = transform_products::<T, M, N>(&m);
                let (y0, x0) = panel_tiles[0];
                let whole_rows = y0 + M <= height && x0 + M * PANEL <= width;
                if is_row_of_tiles(panel_tiles, d, M) && whole_rows {
                    for (a, row) in y.iter().enumerate() {
                        let out = plane.add((y0 + a) * width + x0);
                        // The row's M * 8 outputs, finished together (vectorised), then stored.
                        let mut values = [T::Sum::default(); 4 * PANEL];
                        let values = &mut values[..M * PANEL];
                        // Rows zipped, as the F(2x2)-only op stored its two.
                        if M == 2 {
                            let lanes = row[0].iter().zip(&row[1]);
                            for (t, (&y0, &y1)) in lanes.enumerate() {
                                values[2 * t] = value(out.add(2 * t), y0);
                                values[2 * t + 1] = value(out.add(2 * t + 1), y1);
                            }
                        } else {
                            let lanes = row[0].iter().zip(&row[1]).zip(&row[2]).zip(&row[3]);
                            for (t, (((&y0, &y1), &y2), &y3)) in lanes.enumerate() {
                                values[4 * t] = value(out.add(4 * t), y0);
                                values[4 * t + 1] = value(out.add(4 * t + 1), y1);
                                values[4 * t + 2] = value(out.add(4 * t + 2), y2);
                                values[4 * t + 3] = value(out.add(4 * t + 3), y3);
                            }
                        }
                        finish(values);
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

/// What every row panel of [`WinogradConv::convolve_by_row_panels`] reads: the kernel, its
/// channel block, the block's transformed inputs per chunk of `chunk` tiles, the tiles, the
/// output's size, the stage and the output.
struct RowPanel<'a, T: Element, F> {
    kernel: &'a KernelSource<T>,
    block: &'a KernelBlock<T>,
    inputs: &'a [Vec<T>],
    tiles: &'a [(usize, usize)],
    chunk: usize,
    size: (usize, usize),
    stage: &'a Stage<'a, F>,
    out: &'a SharedOutput<T::Sum>,
}

/// Which channel block [`WinogradConv::transform_outputs`] stores: from the second on, sums
/// are added to the output; the last one's values are finished.
struct Stage<'f, F> {
    accumulate: bool,
    finish: Option<&'f F>,
}

/// Whether a panel is 8 side-by-side `M`x`M` tiles of an undilated convolution.
fn is_row_of_tiles(tiles: &[(usize, usize)], d: usize, m: usize) -> bool {
    let (y0, x0) = tiles[0];
    d == 1 && tiles.len() == PANEL && tiles[PANEL - 1] == (y0, x0 + m * (PANEL - 1))
}

/// One thread's buffers for a chunk's transformed inputs and products.
pub struct Scratch<T: Element> {
    inputs: Vec<T>,
    products: Vec<T::Sum>,
    /// A row panel of a kernel transformed per run.
    kernel: Vec<T>,
}

impl<T: Element> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            inputs: vec![],
            products: vec![],
            kernel: vec![],
        }
    }
}

/// The output buffer, written by several threads at disjoint tiles.
pub(super) struct SharedOutput<S>(pub(super) *mut S);
unsafe impl<S> Sync for SharedOutput<S> {}
unsafe impl<S> Send for SharedOutput<S> {}

/// The converted input as planes with `dilation` zero pixels above and left and at least
/// `(m + 1) * dilation` below and right, so every tile's window (`m + 2` taps `dilation` apart)
/// reads inside the plane. Each row holds its columns by residue modulo `m` (`m` a power of
/// two, the tiles' output size): a row of undilated tiles (`m` pixels apart) then finds each of
/// its window columns as 8 consecutive values.
pub(super) struct Padded<T> {
    data: Vec<T>,
    stride: usize,
    /// Values per residue class of a row (`stride / m`), and log2 of `m`.
    phase: usize,
    shift: u32,
    plane_len: usize,
}

impl<T: Element> Padded<T> {
    pub(super) fn new<S: Copy + Sync>(
        image: &[S],
        convert: impl Fn(S) -> T + Sync + Send,
        (channels, height, width): (usize, usize, usize),
        d: usize,
        m: usize,
    ) -> Self {
        assert!(m.is_power_of_two());
        let shift = m.trailing_zeros();
        let stride = (width + (m + 1) * d).next_multiple_of(m);
        let phase = stride / m;
        let plane_len = (height + (m + 1) * d) * stride;
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
                match m {
                    4 if T::WIDE_TILES => split_row::<S, T, 4>(row, out, d, &convert),
                    _ => split_row::<S, T, 2>(row, out, d, &convert),
                }
            }
        });
        // Safety: every plane was initialised above.
        unsafe { data.set_len(channels * plane_len) };
        Padded {
            data,
            stride,
            phase,
            shift,
            plane_len,
        }
    }

    fn plane(&self, c: usize) -> &[T] {
        &self.data[c * self.plane_len..][..self.plane_len]
    }

    /// Index of padded pixel (y, x) in its plane.
    fn at(&self, y: usize, x: usize) -> usize {
        let m = 1 << self.shift;
        y * self.stride + (x & (m - 1)) * self.phase + (x >> self.shift)
    }
}

/// One image row into its padded row `out` (`M` classes of `out.len() / M` values): image
/// column x lands on padded column x + d, at `(x + d) % M` and `(x + d) / M`. Taken `M` columns
/// at a time into `M` streams, as the F(2x2)-only version took pairs.
#[inline(always)]
fn split_row<S: Copy, T: Copy, const M: usize>(
    row: &[S],
    out: &mut [T],
    d: usize,
    convert: &impl Fn(S) -> T,
) {
    let phase = out.len() / M;
    let mut put = |x: usize, v: S| out[((x + d) % M) * phase + (x + d) / M] = convert(v);
    // Columns before the first of class 0, one at a time.
    let lead = ((M - d % M) % M).min(row.len());
    for (x, &v) in row[..lead].iter().enumerate() {
        put(x, v);
    }
    let groups = row[lead..].chunks_exact(M);
    let tail = lead + groups.len() * M;
    for (x, &v) in row.iter().enumerate().skip(tail) {
        put(x, v);
    }
    let (first, n) = ((lead + d) / M, groups.len());
    // Zipped streams, as the F(2x2)-only op filled its two.
    if M == 2 {
        let (c0, c1) = out.split_at_mut(phase);
        let streams = c0[first..][..n].iter_mut().zip(&mut c1[first..][..n]);
        for (g, (y0, y1)) in groups.zip(streams) {
            (*y0, *y1) = (convert(g[0]), convert(g[1]));
        }
    } else {
        let (c01, c23) = out.split_at_mut(2 * phase);
        let ((c0, c1), (c2, c3)) = (c01.split_at_mut(phase), c23.split_at_mut(phase));
        let streams = (c0[first..][..n].iter_mut().zip(&mut c1[first..][..n]))
            .zip(c2[first..][..n].iter_mut().zip(&mut c3[first..][..n]));
        for (g, ((y0, y1), (y2, y3))) in groups.zip(streams) {
            (*y0, *y1) = (convert(g[0]), convert(g[1]));
            (*y2, *y3) = (convert(g[2]), convert(g[3]));
        }
    }
}

/// Top-left output pixel of every `m`x`m` tile: for each residue class of rows and columns
/// modulo the dilation, `m`x`m` blocks of that class's pixels. In padded coordinates it is also
/// the top-left of the tile's input window.
pub(super) fn tile_origins(height: usize, width: usize, d: usize, m: usize) -> Vec<(usize, usize)> {
    let mut tiles = vec![];
    for ry in 0..d.min(height) {
        for y0 in (ry..height).step_by(m * d) {
            for rx in 0..d.min(width) {
                for x0 in (rx..width).step_by(m * d) {
                    tiles.push((y0, x0));
                }
            }
        }
    }
    tiles
}

/// Tiles per chunk of work: whole panels, enough to amortise each kernel panel's load, few
/// enough that a chunk's transformed inputs (`bytes_per_tile_position` per tile and each of
/// `positions`) stay in cache and threads get several chunks.
pub(super) fn chunk_tiles(tiles: usize, bytes_per_tile_position: usize, positions: usize) -> usize {
    let cache_bound = (1 << 18) / (positions * bytes_per_tile_position.max(1));
    let spread = tiles.div_ceil(8);
    cache_bound.min(spread).clamp(2 * PANEL, 16 * PANEL) / PANEL * PANEL
}

/// The kernel transforms' values, lane by lane: whole lane arrays per operation compile to
/// straight-line vector code (a loop over the lanes around each column's values took ~3x the
/// time).
#[inline(always)]
fn lanes<S, const L: usize>(f: impl Fn(usize) -> S) -> [S; L] {
    std::array::from_fn(f)
}

/// `2G g 2Gᵀ` for each of the `ROWS` lanes of 3x3 kernels `g` (row-major), with
/// `2G = [[2,0,0],[1,1,1],[1,-1,1],[0,0,2]]`. Always fits `T::Sum` (Some).
#[inline(always)]
pub(super) fn transform_kernel_2x2<T: Element>(g: &Taps<T>) -> Option<[[T::Sum; ROWS]; 16]> {
    type Lanes<T> = [<T as Element>::Sum; ROWS];
    #[inline(always)]
    fn column<T: Element>(a: Lanes<T>, b: Lanes<T>, c: Lanes<T>) -> [Lanes<T>; 4] {
        [
            lanes(|l| T::plus(a[l], a[l])),
            lanes(|l| T::plus(T::plus(a[l], b[l]), c[l])),
            lanes(|l| T::plus(T::minus(a[l], b[l]), c[l])),
            lanes(|l| T::plus(c[l], c[l])),
        ]
    }
    // 2G g, a column of taps at a time: rows[s][r] is row r of column s.
    let rows = [
        column::<T>(g[0], g[3], g[6]),
        column::<T>(g[1], g[4], g[7]),
        column::<T>(g[2], g[5], g[8]),
    ];
    let mut u = [[T::Sum::default(); ROWS]; 16];
    for r in 0..4 {
        let t = column::<T>(rows[0][r], rows[1][r], rows[2][r]);
        u[r * 4..][..4].copy_from_slice(&t);
    }
    Some(u)
}

/// `G g Gᵀ` of F(4x4, 3x3) (points 0, ±1, ±2, ∞) for each lane of 3x3 kernels `g`
/// (row-major), in f32: kernels of layers of few tiles are transformed at every inference, and
/// f64 took ~1.4x the instructions (the convolution stays within the tests' f32 bounds).
/// `G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]]`,
/// sixths as products with 1/6.
#[inline(always)]
pub(super) fn transform_kernel_4x4_f32<const L: usize>(g: &[[f32; L]; 9]) -> [[f32; L]; 36] {
    const SIXTH: f32 = 1.0 / 6.0;
    #[inline(always)]
    fn column<const L: usize>(a: [f32; L], b: [f32; L], c: [f32; L]) -> [[f32; L]; 6] {
        let outer: [f32; L] = lanes(|l| a[l] + c[l]);
        let quarter_outer: [f32; L] = lanes(|l| 0.25 * a[l] + c[l]);
        let half_b: [f32; L] = lanes(|l| 0.5 * b[l]);
        [
            lanes(|l| 0.25 * a[l]),
            lanes(|l| -(outer[l] + b[l]) * SIXTH),
            lanes(|l| -(outer[l] - b[l]) * SIXTH),
            lanes(|l| (quarter_outer[l] + half_b[l]) * SIXTH),
            lanes(|l| (quarter_outer[l] - half_b[l]) * SIXTH),
            c,
        ]
    }
    // G g, a column of taps at a time: rows[s][r] is row r of column s.
    // (Not `[0, 1, 2].map(..)`: that stayed a call, outside the callers' target features.)
    let rows = [
        column(g[0], g[3], g[6]),
        column(g[1], g[4], g[7]),
        column(g[2], g[5], g[8]),
    ];
    let mut u = [[0f32; L]; 36];
    for r in 0..6 {
        let t = column(rows[0][r], rows[1][r], rows[2][r]);
        u[r * 6..][..6].copy_from_slice(&t);
    }
    u
}

/// `Bᵀ d B` for each lane: for F(2x2) (`N = 4`)
/// `Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`, for F(4x4) (`N = 6`)
/// `Bᵀ = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],[0,2,-1,-2,1,0],
/// [0,4,0,-5,0,1]]`. `out[r][s]` is position `r N + s`.
#[inline(always)]
fn transform_patch<T: Element, const N: usize>(d: &[[[T; PANEL]; N]; N]) -> [[[T; PANEL]; N]; N] {
    // Rows first (over r for each column s), then columns (over s for each row).
    let mut columns = [[[T::default(); PANEL]; N]; N]; // [s][r']
    for (s, column) in columns.iter_mut().enumerate() {
        *column = bt::<T, N>(&std::array::from_fn(|r| d[r][s]));
    }
    std::array::from_fn(|r| bt::<T, N>(&std::array::from_fn(|s| columns[s][r])))
}

/// `Bᵀ v` for each lane (see [`transform_patch`]), in additions only (exact in i16).
#[inline(always)]
fn bt<T: Element, const N: usize>(v: &[[T; PANEL]; N]) -> [[T; PANEL]; N] {
    let mut t = [[T::default(); PANEL]; N];
    if N == 4 {
        for l in 0..PANEL {
            t[0][l] = v[0][l] - v[2][l];
            t[1][l] = v[1][l] + v[2][l];
            t[2][l] = v[2][l] - v[1][l];
            t[3][l] = v[1][l] - v[3][l];
        }
    } else {
        let two = |x: T| x + x;
        let four = |x: T| two(two(x));
        for l in 0..PANEL {
            let (d0, d1, d2, d3, d4, d5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
            t[0][l] = four(d0 - d2) + (d4 - d2);
            t[1][l] = (d3 + d4) - four(d1 + d2);
            t[2][l] = (d4 - d3) + four(d1 - d2);
            t[3][l] = (d4 - d2) + two(d3 - d1);
            t[4][l] = (d4 - d2) - two(d3 - d1);
            t[5][l] = four(d1 - d3) + (d5 - d3);
        }
    }
    t
}

/// `Aᵀ m A` for each lane: the tile's `M`x`M` outputs (for F(2x2), times 4). For F(2x2)
/// `Aᵀ = [[1,1,1,0],[0,1,-1,-1]]`, for F(4x4)
/// `Aᵀ = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]]`.
#[inline(always)]
fn transform_products<T: Element, const M: usize, const N: usize>(
    m: &[[[T::Sum; PANEL]; N]; N],
) -> [[[T::Sum; PANEL]; M]; M] {
    let mut rows = [[[T::Sum::default(); PANEL]; N]; M]; // [a][s]
    for s in 0..N {
        let t = at::<T, M, N>(&std::array::from_fn(|r| m[r][s]));
        for a in 0..M {
            rows[a][s] = t[a];
        }
    }
    std::array::from_fn(|a| at::<T, M, N>(&rows[a]))
}

/// `Aᵀ v` for each lane (see [`transform_products`]).
#[inline(always)]
fn at<T: Element, const M: usize, const N: usize>(
    v: &[[T::Sum; PANEL]; N],
) -> [[T::Sum; PANEL]; M] {
    let (add, sub) = (T::plus, T::minus);
    let mut t = [[T::Sum::default(); PANEL]; M];
    if N == 4 {
        for l in 0..PANEL {
            t[0][l] = add(add(v[0][l], v[1][l]), v[2][l]);
            t[1][l] = sub(sub(v[1][l], v[2][l]), v[3][l]);
        }
    } else {
        let two = |x| add(x, x);
        for l in 0..PANEL {
            let (a, b) = (add(v[1][l], v[2][l]), sub(v[1][l], v[2][l]));
            let (c, e) = (add(v[3][l], v[4][l]), sub(v[3][l], v[4][l]));
            t[0][l] = add(add(v[0][l], a), c);
            t[1][l] = add(b, two(e));
            t[2][l] = add(a, two(two(c)));
            t[3][l] = add(add(b, two(two(two(e)))), v[5][l]);
        }
    }
    t
}
