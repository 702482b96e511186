//! Winograd F(2x2, 3x3) for the quantised models' 3x3, stride-1 convolutions.
//!
//! A 3x3 convolution computed as im2col + matrix product spends 36 multiplies on each 2x2 block
//! of outputs (per input and output channel); Winograd's minimal filtering spends 16, on
//! transformed 4x4 input patches and transformed kernels, then turns the 16 products back into
//! the 4 outputs with additions only. In integers it is exact: the kernel transform `G` has
//! halves, so we use `2G` and divide the result by 4 at the end (an exact shift, since the sum is
//! a multiple of 4). Inputs minus their zero point transform into 11-bit values and kernels
//! into 12-bit ones, so both fit i16 and the products run on `i32x4.dot_i16x8_s` / `pmaddwd`,
//! 8 multiply-adds per instruction like the int8 im2col path. The results are the i32 sums
//! `Σ (x - x0)(k - k0)` tract's quantised convolution gives, bit for bit.
//!
//! Dilated convolutions split into independent undilated ones on every `dilation`-th pixel, so
//! a tile's 2x2 outputs and 4x4 inputs are simply `dilation` pixels apart.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Transformed positions per tile (4x4) and tiles per kernel column panel.
const POSITIONS: usize = 16;
const PANEL: usize = 8;
/// Output channels per kernel row panel.
const ROWS: usize = 4;
/// Beyond this many input channels the i32 sums of `4 Σ (x - x0)(k - k0)` could overflow for
/// adversarial inputs (|x - x0|, |k - k0| ≤ 255, 9 taps), so the channels are summed in blocks
/// of at most this many and the blocks' exact results added.
const MAX_CHANNELS_PER_BLOCK: usize = 512;

/// `Σ (x - x0)(k - k0)` over a 3x3 window, stride 1, "same" padding of `dilation`: tract's
/// quantised `Conv` with an i32 output, for a `[1, C, H, W]` u8 input and a constant kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WinogradConvU8 {
    c_in: usize,
    c_out: usize,
    dilation: usize,
    /// Per block of input channels, the transformed kernel `2G (k - k0) 2Gᵀ`, laid out as the
    /// micro-kernel reads it: `[position][row panel][channel pair][row 0..4][pair 0..2]`.
    blocks: Arc<Vec<KernelBlock>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KernelBlock {
    /// First input channel and number of channel pairs (odd counts padded with a zero channel).
    first_channel: usize,
    channels: usize,
    pairs: usize,
    packed: Vec<i16>,
}

impl WinogradConvU8 {
    /// From an `[O, I, 3, 3]` kernel (`k - k0` already applied). None when a transformed value
    /// does not fit i16 (|k - k0| > 255 cannot come from 8-bit weights).
    pub fn new(kernel: &[i32], c_out: usize, c_in: usize, dilation: usize) -> Option<Self> {
        assert_eq!(kernel.len(), c_out * c_in * 9);
        let row_panels = c_out.div_ceil(ROWS);
        let mut blocks = vec![];
        for first_channel in (0..c_in).step_by(MAX_CHANNELS_PER_BLOCK) {
            let channels = (c_in - first_channel).min(MAX_CHANNELS_PER_BLOCK);
            let pairs = channels.div_ceil(2);
            let mut packed = vec![0i16; POSITIONS * row_panels * pairs * ROWS * 2];
            for o in 0..c_out {
                for c in 0..channels {
                    let taps = &kernel[(o * c_in + first_channel + c) * 9..][..9];
                    let u = transform_kernel(taps);
                    for (p, &value) in u.iter().enumerate() {
                        let at = (((p * row_panels + o / ROWS) * pairs + c / 2) * ROWS + o % ROWS)
                            * 2
                            + c % 2;
                        packed[at] = i16::try_from(value).ok()?;
                    }
                }
            }
            blocks.push(KernelBlock {
                first_channel,
                channels,
                pairs,
                packed,
            });
        }
        Some(WinogradConvU8 {
            c_in,
            c_out,
            dilation,
            blocks: Arc::new(blocks),
        })
    }

    /// The convolution of a `[c_in, height, width]` u8 image with zero point `x0`, as
    /// `[c_out, height, width]` i32.
    pub fn convolve(&self, image: &[u8], x0: i32, height: usize, width: usize) -> Vec<i32> {
        assert_eq!(image.len(), self.c_in * height * width);
        let d = self.dilation;
        let padded = Padded::new(image, x0, self.c_in, height, width, d);
        let tiles = tile_origins(height, width, d);
        let mut output = vec![0i32; self.c_out * height * width];
        let out = SharedOutput(output.as_mut_ptr());
        let chunk = chunk_tiles(tiles.len(), self.c_in.min(MAX_CHANNELS_PER_BLOCK));
        super::parallel::for_each_chunk(&tiles, chunk, |tiles| {
            let mut scratch = Scratch::default();
            for (index, block) in self.blocks.iter().enumerate() {
                self.transform_inputs(&padded, block, tiles, &mut scratch.inputs);
                self.multiply(block, tiles.len(), &scratch.inputs, &mut scratch.products);
                // Safety: tiles cover disjoint output pixels, and chunks hold disjoint tiles.
                unsafe {
                    self.transform_outputs(
                        &scratch.products,
                        tiles,
                        (height, width),
                        index > 0,
                        &out,
                    )
                };
            }
        });
        output
    }

    /// The 16 transformed values of every (tile, channel) of `block`, packed in panels of 8
    /// tiles for the micro-kernel: `[position][tile panel][channel pair][tile 0..8][pair 0..2]`.
    fn transform_inputs(
        &self,
        padded: &Padded,
        block: &KernelBlock,
        tiles: &[(usize, usize)],
        inputs: &mut Vec<i16>,
    ) {
        let d = self.dilation;
        let panels = tiles.len().div_ceil(PANEL);
        let position_stride = panels * block.pairs * PANEL * 2;
        inputs.clear();
        inputs.resize(POSITIONS * position_stride, 0);
        for (panel, panel_tiles) in tiles.chunks(PANEL).enumerate() {
            let in_one_row = is_row_of_tiles(panel_tiles, d);
            for pair in 0..block.pairs {
                let mut transformed = [[[0i16; PANEL]; POSITIONS]; 2];
                for (e, out) in transformed.iter_mut().enumerate() {
                    let c = 2 * pair + e;
                    if c >= block.channels {
                        break;
                    }
                    let plane = padded.plane(block.first_channel + c);
                    // patch[r][s][tile]: the tile's 4x4 input window, one lane per tile.
                    let mut patch = [[[0i16; PANEL]; 4]; 4];
                    if in_one_row {
                        let (y0, x0) = panel_tiles[0];
                        // Window column s of tile t is padded column x0 + 2t + s.
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
                    *out = transform_patch(&patch);
                }
                // Channels 2·pair and 2·pair + 1 interleaved, as pmaddwd pairs them.
                let base = (panel * block.pairs + pair) * PANEL * 2;
                for p in 0..POSITIONS {
                    let at: &mut [i16; 2 * PANEL] = (&mut inputs[p * position_stride + base..]
                        [..2 * PANEL])
                        .try_into()
                        .unwrap();
                    for t in 0..PANEL {
                        at[2 * t] = transformed[0][p][t];
                        at[2 * t + 1] = transformed[1][p][t];
                    }
                }
            }
        }
    }

    /// Per position, transformed kernel x transformed inputs:
    /// `products[position][output channel (padded to 4)][tile]`.
    fn multiply(&self, block: &KernelBlock, tiles: usize, inputs: &[i16], products: &mut Vec<i32>) {
        let row_panels = self.c_out.div_ceil(ROWS);
        let panels = tiles.div_ceil(PANEL);
        let columns = panels * PANEL;
        products.clear();
        products.resize(POSITIONS * row_panels * ROWS * columns, 0);
        let kernel_panel = block.pairs * ROWS * 2;
        let input_panel = block.pairs * PANEL * 2;
        for p in 0..POSITIONS {
            let kernel = &block.packed[p * row_panels * kernel_panel..];
            let input = &inputs[p * panels * input_panel..];
            let out = &mut products[p * row_panels * ROWS * columns..];
            for rp in 0..row_panels {
                let a = &kernel[rp * kernel_panel..][..kernel_panel];
                for cp in 0..panels {
                    let b = &input[cp * input_panel..][..input_panel];
                    let tile = micro_kernel(a, b, block.pairs);
                    for (r, row) in tile.iter().enumerate() {
                        out[(rp * ROWS + r) * columns + cp * PANEL..][..PANEL].copy_from_slice(row);
                    }
                }
            }
        }
    }

    /// Turns each tile's 16 products per output channel into its 2x2 outputs (divided by 4)
    /// and stores (or, for later channel blocks, adds) them.
    ///
    /// # Safety
    /// `output` holds `c_out * height * width` i32 and no other thread writes these tiles.
    unsafe fn transform_outputs(
        &self,
        products: &[i32],
        tiles: &[(usize, usize)],
        (height, width): (usize, usize),
        accumulate: bool,
        output: &SharedOutput,
    ) {
        let d = self.dilation;
        let columns = tiles.len().div_ceil(PANEL) * PANEL;
        let position_stride = self.c_out.div_ceil(ROWS) * ROWS * columns;
        for o in 0..self.c_out {
            let plane = output.0.add(o * height * width);
            for (panel, panel_tiles) in tiles.chunks(PANEL).enumerate() {
                let mut m = [[0i32; PANEL]; POSITIONS];
                for (p, lanes) in m.iter_mut().enumerate() {
                    let at = p * position_stride + o * columns + panel * PANEL;
                    lanes.copy_from_slice(&products[at..][..PANEL]);
                }
                let y = transform_products(&m);
                let (y0, x0) = panel_tiles[0];
                if is_row_of_tiles(panel_tiles, d) && y0 + 1 < height && x0 + 2 * PANEL <= width {
                    for (a, row) in y.iter().enumerate() {
                        let out = std::slice::from_raw_parts_mut(
                            plane.add((y0 + a) * width + x0),
                            2 * PANEL,
                        );
                        for t in 0..PANEL {
                            for b in 0..2 {
                                let value = row[b][t] >> 2;
                                let at = &mut out[2 * t + b];
                                *at = if accumulate { *at + value } else { value };
                            }
                        }
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
                                let value = lanes[t] >> 2;
                                *at = if accumulate { *at + value } else { value };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether a panel is 8 side-by-side tiles of an undilated convolution.
fn is_row_of_tiles(tiles: &[(usize, usize)], d: usize) -> bool {
    let (y0, x0) = tiles[0];
    d == 1 && tiles.len() == PANEL && tiles[PANEL - 1] == (y0, x0 + 2 * (PANEL - 1))
}

#[derive(Default)]
struct Scratch {
    inputs: Vec<i16>,
    products: Vec<i32>,
}

/// The output buffer, written by several threads at disjoint tiles.
struct SharedOutput(*mut i32);
unsafe impl Sync for SharedOutput {}
unsafe impl Send for SharedOutput {}

/// The input minus its zero point, as i16 planes with `dilation` zero pixels above and left and
/// `2 * dilation` below and right, so every tile's 4x4 window reads inside the plane. Each row
/// holds its even columns, then its odd ones: a row of undilated tiles (2 pixels apart) then
/// finds each of its 4 window columns as 8 consecutive values.
struct Padded {
    data: Vec<i16>,
    stride: usize,
    /// Where a row's odd columns start.
    odd: usize,
    plane_len: usize,
}

impl Padded {
    fn new(image: &[u8], x0: i32, channels: usize, height: usize, width: usize, d: usize) -> Self {
        let stride = width + 3 * d;
        let odd = stride.div_ceil(2);
        let plane_len = (height + 3 * d) * stride;
        let mut data = vec![0i16; channels * plane_len];
        for c in 0..channels {
            let src = &image[c * height * width..][..height * width];
            let dst = &mut data[c * plane_len..][..plane_len];
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
                    to_even[width / 2] = (*last as i32 - x0) as i16;
                }
                for ((pair, e), o) in pairs.zip(to_even.iter_mut()).zip(to_odd.iter_mut()) {
                    *e = (pair[0] as i32 - x0) as i16;
                    *o = (pair[1] as i32 - x0) as i16;
                }
            }
        }
        Padded {
            data,
            stride,
            odd,
            plane_len,
        }
    }

    fn plane(&self, c: usize) -> &[i16] {
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
fn tile_origins(height: usize, width: usize, d: usize) -> Vec<(usize, usize)> {
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
/// enough that a chunk's transformed inputs stay in cache and threads get several chunks.
fn chunk_tiles(tiles: usize, channels: usize) -> usize {
    let cache_bound = (1 << 18) / (POSITIONS * 2 * channels.max(1));
    let spread = tiles.div_ceil(8);
    cache_bound.min(spread).clamp(2 * PANEL, 16 * PANEL) / PANEL * PANEL
}

/// `2G g 2Gᵀ` for a 3x3 kernel `g` (row-major), with `2G = [[2,0,0],[1,1,1],[1,-1,1],[0,0,2]]`.
fn transform_kernel(g: &[i32]) -> [i32; POSITIONS] {
    let column = |a: i32, b: i32, c: i32| [2 * a, a + b + c, a - b + c, 2 * c];
    let mut rows = [[0i32; 3]; 4]; // 2G g
    for s in 0..3 {
        let t = column(g[s], g[3 + s], g[6 + s]);
        for r in 0..4 {
            rows[r][s] = t[r];
        }
    }
    let mut u = [0i32; POSITIONS];
    for r in 0..4 {
        let t = column(rows[r][0], rows[r][1], rows[r][2]);
        u[r * 4..][..4].copy_from_slice(&t);
    }
    u
}

/// `Bᵀ d B` for each lane, `Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`.
fn transform_patch(d: &[[[i16; PANEL]; 4]; 4]) -> [[i16; PANEL]; POSITIONS] {
    fn bt(v: [[i16; PANEL]; 4]) -> [[i16; PANEL]; 4] {
        let mut t = [[0i16; PANEL]; 4];
        for l in 0..PANEL {
            t[0][l] = v[0][l] - v[2][l];
            t[1][l] = v[1][l] + v[2][l];
            t[2][l] = v[2][l] - v[1][l];
            t[3][l] = v[1][l] - v[3][l];
        }
        t
    }
    // Rows first (over r for each column s), then columns (over s for each row).
    let mut columns = [[[0i16; PANEL]; 4]; 4]; // [s][r']
    for s in 0..4 {
        columns[s] = bt([d[0][s], d[1][s], d[2][s], d[3][s]]);
    }
    let mut out = [[0i16; PANEL]; POSITIONS];
    for r in 0..4 {
        let t = bt([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
        out[r * 4..][..4].copy_from_slice(&t);
    }
    out
}

/// `Aᵀ m A` for each lane, `Aᵀ = [[1,1,1,0],[0,1,-1,-1]]`: the tile's 2x2 outputs (times 4).
fn transform_products(m: &[[i32; PANEL]; POSITIONS]) -> [[[i32; PANEL]; 2]; 2] {
    fn at(v: [[i32; PANEL]; 4]) -> [[i32; PANEL]; 2] {
        let mut t = [[0i32; PANEL]; 2];
        for l in 0..PANEL {
            t[0][l] = v[0][l].wrapping_add(v[1][l]).wrapping_add(v[2][l]);
            t[1][l] = v[1][l].wrapping_sub(v[2][l]).wrapping_sub(v[3][l]);
        }
        t
    }
    let mut rows = [[[0i32; PANEL]; 4]; 2]; // [a][s]
    for s in 0..4 {
        let t = at([m[s], m[4 + s], m[8 + s], m[12 + s]]);
        rows[0][s] = t[0];
        rows[1][s] = t[1];
    }
    [at(rows[0]), at(rows[1])]
}

/// 4 output channels x 8 tiles of `Σ_pairs a·b`, `a` as `[pair][row][2]`, `b` as
/// `[pair][tile][2]`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn micro_kernel(a: &[i16], b: &[i16], pairs: usize) -> [[i32; PANEL]; ROWS] {
    use core::arch::wasm32::*;
    assert!(a.len() >= pairs * ROWS * 2 && b.len() >= pairs * PANEL * 2);
    let mut acc = [i32x4_splat(0); 2 * ROWS];
    // Safety: the reads stay inside `a` and `b` (asserted above); v128 loads are unaligned.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for k in 0..pairs {
            let b0 = v128_load(b.add(k * 16) as *const v128);
            let b1 = v128_load(b.add(k * 16 + 8) as *const v128);
            for r in 0..ROWS {
                let ar = v128_load32_splat(a.add(k * 8 + 2 * r) as *const u32);
                acc[2 * r] = i32x4_add(acc[2 * r], i32x4_dot_i16x8(ar, b0));
                acc[2 * r + 1] = i32x4_add(acc[2 * r + 1], i32x4_dot_i16x8(ar, b1));
            }
        }
    }
    let mut out = [[0i32; PANEL]; ROWS];
    for (r, row) in out.iter_mut().enumerate() {
        // Safety: two v128 stores into an [i32; 8].
        unsafe {
            v128_store(row.as_mut_ptr() as *mut v128, acc[2 * r]);
            v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[2 * r + 1]);
        }
    }
    out
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn micro_kernel(a: &[i16], b: &[i16], pairs: usize) -> [[i32; PANEL]; ROWS] {
    let mut out = [[0i32; PANEL]; ROWS];
    for k in 0..pairs {
        for (r, row) in out.iter_mut().enumerate() {
            for (t, acc) in row.iter_mut().enumerate() {
                for e in 0..2 {
                    let product =
                        a[(k * ROWS + r) * 2 + e] as i32 * b[(k * PANEL + t) * 2 + e] as i32;
                    *acc = acc.wrapping_add(product);
                }
            }
        }
    }
    out
}

impl Op for WinogradConvU8 {
    fn name(&self) -> StaticName {
        "WinogradConvU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, dilation {}",
            self.c_in, self.c_out, self.dilation
        )])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for WinogradConvU8 {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (image, x0) = (&inputs[0], &inputs[1]);
        let shape = image.shape();
        ensure!(
            shape.len() == 4 && shape[0] == 1 && shape[1] == self.c_in,
            "WinogradConvU8 expects [1, {}, H, W], got {shape:?}",
            self.c_in
        );
        let x0 = x0.cast_to_scalar::<i32>()?;
        ensure!(
            (0..=255).contains(&x0),
            "WinogradConvU8: zero point {x0} is not a u8"
        );
        let data = image.try_as_plain_ram()?;
        let (height, width) = (shape[2], shape[3]);
        let output = self.convolve(data.as_slice::<u8>()?, x0, height, width);
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(
            &[1, self.c_out, height, width][..],
            output
        )?
        .into_tvalue()))
    }
}

impl TypedOp for WinogradConvU8 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "WinogradConvU8 expects a rank-4 input");
        Ok(tvec!(i32::fact([
            shape[0].clone(),
            self.c_out.to_dim(),
            shape[2].clone(),
            shape[3].clone()
        ])))
    }
}

/// The constant value of `outlet` as i32s, if it is one.
fn const_i32s(model: &TypedModel, outlet: OutletId) -> Option<Vec<i32>> {
    let konst = model.outlet_fact(outlet).ok()?.konst.clone()?;
    let values = konst.cast_to::<i32>().ok()?;
    let values = values
        .try_as_plain_ram()
        .ok()?
        .as_slice::<i32>()
        .ok()?
        .to_vec();
    Some(values)
}

/// The dilation of a 3x3, stride-1, ungrouped NCHW convolution padded to keep its size.
fn same_3x3_dilation(conv: &Conv) -> Option<usize> {
    let spec = &conv.pool_spec;
    let dilation = spec.dilations.as_ref().map_or(1, |d| d[0]);
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&s| s == 1));
    let same = |v: &TVec<usize>| v.len() == 2 && v.iter().all(|&p| p == dilation);
    let padded = match &spec.padding {
        PaddingSpec::Explicit(before, after) => same(before) && same(after),
        PaddingSpec::ExplicitOnnxPool(before, after, _) => same(before) && same(after),
        _ => false,
    };
    let uniform = spec
        .dilations
        .as_ref()
        .is_none_or(|d| d.iter().all(|&v| v == dilation));
    (conv.group == 1
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec.data_format == DataFormat::NCHW
        && spec.kernel_shape.as_slice() == [3, 3]
        && ones(&spec.strides)
        && uniform
        && padded)
        .then_some(dilation)
}

/// Replaces each quantised 3x3 stride-1 convolution of a u8 NCHW image with an i32 output
/// (ConvInteger, and the quantised Conv of dynamically quantised models) by
/// [`WinogradConvU8`]. Run on a decluttered model, before codegen. Returns how many.
pub(super) fn use_winograd(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_nodes_wired(model, |model, node| {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        let Some(dilation) = same_3x3_dilation(conv) else {
            return Ok(None);
        };
        if conv.q_params != Some(i32::datum_type())
            || node.inputs.len() != 9
            || node.outputs[0].fact.datum_type != i32::datum_type()
        {
            return Ok(None);
        }
        let image = model.outlet_fact(node.inputs[0])?;
        let zero_point = model.outlet_fact(node.inputs[3])?;
        let Some(shape) = image.shape.as_concrete() else {
            return Ok(None);
        };
        if image.datum_type != u8::datum_type()
            || shape.len() != 4
            || shape[0] != 1
            || shape[2..].contains(&0)
            || zero_point.shape.volume() != 1.to_dim()
        {
            return Ok(None);
        }
        let (c_in, c_out) = (conv.input_channels(), conv.output_channels());
        let bias_is_zero =
            const_i32s(model, node.inputs[2]).is_some_and(|b| b.iter().all(|&v| v == 0));
        let (Some(kernel), Some(k0)) = (
            const_i32s(model, node.inputs[1]),
            const_i32s(model, node.inputs[5]),
        ) else {
            return Ok(None);
        };
        if !bias_is_zero || k0.len() != 1 || kernel.len() != c_out * c_in * 9 || shape[1] != c_in {
            return Ok(None);
        }
        let centred: Vec<i32> = kernel.iter().map(|&k| k - k0[0]).collect();
        Ok(WinogradConvU8::new(&centred, c_out, c_in, dilation)
            .map(|op| (op, tvec![node.inputs[0], node.inputs[3]])))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    include!("winograd_reference.rs");

    fn check(shape: (usize, usize, usize, usize, usize), extreme: bool) {
        let (c_in, c_out, height, width, d) = shape;
        let (image, x0, kernel) = random_convolution(shape, extreme);
        let op = WinogradConvU8::new(&kernel, c_out, c_in, d).unwrap();
        let got = op.convolve(&image, x0, height, width);
        assert_eq!(
            got,
            direct_convolution(&image, x0, &kernel, shape),
            "{shape:?}"
        );
    }

    #[test]
    fn equals_the_direct_convolution() {
        for shape in CASES {
            check(shape, false);
        }
    }

    #[test]
    fn sums_wide_inputs_in_blocks_without_overflow() {
        // 1030 channels of the largest magnitudes: 4x the sum would overflow i32.
        check((1030, 4, 4, 4, 1), true);
        check((600, 6, 5, 3, 2), false);
    }

    /// tract's quantised `Conv` node (ConvInteger as decluttered) in a graph of its own.
    fn quantised_conv_graph(shape: (usize, usize, usize, usize, usize)) -> TractResult<TypedModel> {
        use tract_onnx::tract_core::ops::cnn::PoolSpec;
        let (c_in, c_out, height, width, d) = shape;
        let (_, _, kernel) = random_convolution(shape, false);
        // Kernel stored as u8 with zero point 128, as quantised ONNX files do.
        let kernel: Vec<u8> = kernel.iter().map(|&k| (k / 2 + 128) as u8).collect();
        let mut model = TypedModel::default();
        let image = model.add_source("image", u8::fact([1, c_in, height, width]))?;
        let x0 = model.add_source("x0", i32::scalar_fact())?;
        let kernel = tract_ndarray::ArrayD::from_shape_vec(&[c_out, c_in, 3, 3][..], kernel)?;
        let mut constant = |name: &str, t: Tensor| model.add_const(name, t);
        let inputs = [
            image,
            constant("kernel", kernel.into_tensor())?,
            constant("bias", tensor0(0i32))?,
            x0,
            constant("x_scale", tensor0(1f32))?,
            constant("k0", tensor0(128i32))?,
            constant("k_scale", tensor0(1f32))?,
            constant("y0", tensor0(0i32))?,
            constant("y_scale", tensor0(1f32))?,
        ];
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![3, 3],
                padding: PaddingSpec::Explicit(tvec![d, d], tvec![d, d]),
                dilations: Some(tvec![d, d]),
                strides: Some(tvec![1, 1]),
                input_channels: c_in,
                output_channels: c_out,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: Some(i32::datum_type()),
        };
        let output = model.wire_node("conv", conv, &inputs)?;
        model.select_output_outlets(&output)?;
        Ok(model)
    }

    #[test]
    fn replaces_tracts_quantised_convolution_with_the_same_results() -> TractResult<()> {
        let shape = (6, 5, 9, 12, 2);
        let (image, x0, _) = random_convolution(shape, false);
        let inputs = || -> TractResult<TVec<TValue>> {
            let image = tract_ndarray::ArrayD::from_shape_vec(&[1, 6, 9, 12][..], image.clone())?;
            Ok(tvec![image.into_tvalue(), tensor0(x0).into_tvalue()])
        };
        let tracts = quantised_conv_graph(shape)?
            .into_runnable()?
            .run(inputs()?)?;
        let mut model = quantised_conv_graph(shape)?;
        assert_eq!(use_winograd(&mut model)?, 1);
        assert!(model.nodes().iter().any(|n| n.op_is::<WinogradConvU8>()));
        let ours = model.into_runnable()?.run(inputs()?)?;
        assert_eq!(ours[0].shape(), &[1, 5, 9, 12]);
        assert_eq!(ours[0], tracts[0]);
        Ok(())
    }

    #[test]
    fn tiles_cover_every_output_once() {
        for &(h, w, d) in &[(7, 9, 1), (16, 16, 8), (5, 11, 3), (1, 1, 2)] {
            let mut seen = vec![0; h * w];
            for (y0, x0) in tile_origins(h, w, d) {
                for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (y, x) = (y0 + d * a, x0 + d * b);
                    if y < h && x < w {
                        seen[y * w + x] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{h}x{w} dilation {d}");
        }
    }
}
