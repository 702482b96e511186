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

use std::cell::RefCell;
use std::ops::{Add, Sub};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Transformed positions per tile (4x4) and tiles per kernel column panel.
const POSITIONS: usize = 16;
const PANEL: usize = 8;
/// Output channels per kernel row panel.
const ROWS: usize = 4;

/// What the transformed values are multiplied in: i16 summed in i32 (the quantised models), or
/// f32 (the float ones).
pub trait Element:
    Copy
    + Default
    + std::fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
{
    /// What products are summed in, and the op's output.
    type Sum: Datum + Copy + Default + PartialEq + Send + Sync;
    /// Channels multiplied per step (`pmaddwd` multiplies pairs).
    const GROUP: usize;
    /// Input channels summed before the outputs are transformed back (see the i16 impl).
    const MAX_CHANNELS_PER_BLOCK: usize;
    const OP_NAME: &'static str;
    /// A transformed kernel value, if it fits.
    fn from_sum(v: Self::Sum) -> Option<Self>;
    fn plus(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    fn minus(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    /// A sum of products with `2G`-transformed kernels, back to the convolution's scale.
    fn quarter(v: Self::Sum) -> Self::Sum;
    /// 4 output channels x 8 tiles of `Σ a·b` over `groups` steps, `a` as
    /// `[group][row][GROUP]`, `b` as `[group][tile][GROUP]`.
    fn micro_kernel(a: &[Self], b: &[Self], groups: usize) -> [[Self::Sum; PANEL]; ROWS];
    /// `f` with this thread's scratch buffers: kept from chunk to chunk and op to op, so they
    /// are allocated (and zeroed) once per thread, not once per piece of work rayon splits off.
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
    /// The convolution of the op's inputs (the image, and what else this element needs), as
    /// the op's `[1, c_out, height, width]` output.
    fn convolve_inputs(
        op: &WinogradConv<Self>,
        inputs: &[TValue],
        height: usize,
        width: usize,
    ) -> TractResult<Tensor>;
}

impl Element for i16 {
    type Sum = i32;
    const GROUP: usize = 2;
    /// Beyond this many input channels the i32 sums of `4 Σ (x - x0)(k - k0)` could overflow for
    /// adversarial inputs (|x - x0|, |k - k0| ≤ 255, 9 taps), so the channels are summed in
    /// blocks of at most this many and the blocks' exact results added.
    const MAX_CHANNELS_PER_BLOCK: usize = 512;
    const OP_NAME: &'static str = "WinogradConvU8";

    fn from_sum(v: i32) -> Option<i16> {
        i16::try_from(v).ok()
    }
    // Wrapping: intermediate sums may wrap, the exact final one fits.
    fn plus(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn minus(a: i32, b: i32) -> i32 {
        a.wrapping_sub(b)
    }
    fn quarter(v: i32) -> i32 {
        v >> 2
    }
    fn micro_kernel(a: &[i16], b: &[i16], pairs: usize) -> [[i32; PANEL]; ROWS] {
        micro_kernel_i16(a, b, pairs)
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<i16>) -> R) -> R {
        thread_local!(static SCRATCH: RefCell<Scratch<i16>> = RefCell::default());
        SCRATCH.with_borrow_mut(f)
    }
    fn convolve_inputs(
        op: &WinogradConv<i16>,
        inputs: &[TValue],
        height: usize,
        width: usize,
    ) -> TractResult<Tensor> {
        let x0 = inputs[1].cast_to_scalar::<i32>()?;
        ensure!(
            (0..=255).contains(&x0),
            "WinogradConvU8: zero point {x0} is not a u8"
        );
        let image = inputs[0].try_as_plain_ram()?;
        let image = image.as_slice::<u8>()?;
        let shape = [1, op.c_out, height, width];
        match &op.dequantize {
            None => {
                let sums = op.convolve_u8(image, x0, height, width);
                Ok(tract_ndarray::ArrayD::from_shape_vec(&shape[..], sums)?.into_tensor())
            }
            Some(dequantize) => {
                let scale = inputs[2].cast_to_scalar::<f32>()?;
                let finish =
                    |channel: usize, sums: &mut [i32]| dequantize.finish(channel, scale, sums);
                let sums = op.convolve_finished(image, centred(x0), height, width, finish);
                let values = Dequantize::into_f32(sums);
                Ok(tract_ndarray::ArrayD::from_shape_vec(&shape[..], values)?.into_tensor())
            }
        }
    }
}

/// What follows each convolution in dynamically quantised models, done in the op as each
/// output is stored (no pass over memory of its own): `(sum as f32) * scale + bias`, then
/// `max(_, 0)` for a ReLU: tract's Cast, Mul, Add and Max, in the same order, so the same bits.
#[derive(Clone, Debug, PartialEq)]
pub struct Dequantize {
    bias: Vec<f32>,
    relu: bool,
}

impl Dequantize {
    /// Replaces the final sums of output `channel` by their dequantised values' f32 bits.
    #[inline(always)]
    fn finish(&self, channel: usize, scale: f32, sums: &mut [i32]) {
        let bias = self.bias[channel];
        if self.relu {
            for sum in sums.iter_mut() {
                *sum = (*sum as f32 * scale + bias).max(0.0).to_bits() as i32;
            }
        } else {
            for sum in sums.iter_mut() {
                *sum = (*sum as f32 * scale + bias).to_bits() as i32;
            }
        }
    }

    /// The buffer [`Dequantize::finish`] filled with f32 bits, as f32 (no copy).
    fn into_f32(sums: Vec<i32>) -> Vec<f32> {
        let mut sums = std::mem::ManuallyDrop::new(sums);
        // Safety: every element holds f32 bits; i32 and f32 share size and alignment, so the
        // allocation is a valid f32 one.
        unsafe { Vec::from_raw_parts(sums.as_mut_ptr() as *mut f32, sums.len(), sums.capacity()) }
    }
}

impl Element for f32 {
    type Sum = f32;
    const GROUP: usize = 1;
    const MAX_CHANNELS_PER_BLOCK: usize = usize::MAX;
    const OP_NAME: &'static str = "WinogradConvF32";

    fn from_sum(v: f32) -> Option<f32> {
        Some(v)
    }
    fn plus(a: f32, b: f32) -> f32 {
        a + b
    }
    fn minus(a: f32, b: f32) -> f32 {
        a - b
    }
    fn quarter(v: f32) -> f32 {
        v * 0.25
    }
    fn micro_kernel(a: &[f32], b: &[f32], k: usize) -> [[f32; PANEL]; ROWS] {
        micro_kernel_f32(a, b, k)
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<f32>) -> R) -> R {
        thread_local!(static SCRATCH: RefCell<Scratch<f32>> = RefCell::default());
        SCRATCH.with_borrow_mut(f)
    }
    fn convolve_inputs(
        op: &WinogradConv<f32>,
        inputs: &[TValue],
        height: usize,
        width: usize,
    ) -> TractResult<Tensor> {
        let image = inputs[0].try_as_plain_ram()?;
        let values = op.convolve(image.as_slice::<f32>()?, |v| v, height, width);
        Ok(
            tract_ndarray::ArrayD::from_shape_vec(&[1, op.c_out, height, width][..], values)?
                .into_tensor(),
        )
    }
}

/// A 3x3 convolution, stride 1, "same" padding of `dilation`, of a `[1, C, H, W]` image with a
/// constant kernel. In i16 ([`WinogradConvU8`]): `Σ (x - x0)(k - k0)`, tract's quantised `Conv`
/// with an i32 output for a u8 image; in f32 ([`WinogradConvF32`]): a float `Conv` with bias.
#[derive(Clone, Debug, PartialEq)]
pub struct WinogradConv<T: Element> {
    c_in: usize,
    c_out: usize,
    dilation: usize,
    /// Per block of input channels, the transformed kernel `2G k 2Gᵀ`, laid out as the
    /// micro-kernel reads it: `[row panel][position][channel group][row 0..4][group member]`.
    blocks: Arc<Vec<KernelBlock<T>>>,
    bias: Option<Arc<Vec<T::Sum>>>,
    /// i16 only: the dequantisation the op applies to its sums (then it outputs f32 and reads
    /// the scale as a third input).
    dequantize: Option<Arc<Dequantize>>,
}

impl<T: Element> Eq for WinogradConv<T> {}

pub type WinogradConvU8 = WinogradConv<i16>;
pub type WinogradConvF32 = WinogradConv<f32>;

#[derive(Clone, Debug, PartialEq)]
struct KernelBlock<T> {
    /// First input channel, channels, and channel groups (the last padded with zero channels).
    first_channel: usize,
    channels: usize,
    groups: usize,
    packed: Vec<T>,
}

impl WinogradConv<i16> {
    /// The convolution of a `[c_in, height, width]` u8 image with zero point `x0`, as
    /// `[c_out, height, width]` i32.
    pub fn convolve_u8(&self, image: &[u8], x0: i32, height: usize, width: usize) -> Vec<i32> {
        self.convolve(image, centred(x0), height, width)
    }
}

/// A u8 input value minus its zero point: |v - x0| ≤ 255, and the input transform at most
/// quadruples it, so i16 holds it.
fn centred(x0: i32) -> impl Fn(u8) -> i16 + Sync + Send {
    move |v| (v as i32 - x0) as i16
}

impl<T: Element> WinogradConv<T> {
    /// From an `[O, I, 3, 3]` kernel (for i16, `k - k0`), and a bias per output channel. None
    /// when a transformed value does not fit `T` (for i16, |k - k0| > 255, which 8-bit weights
    /// cannot give).
    pub fn new(
        kernel: &[T::Sum],
        bias: Option<Vec<T::Sum>>,
        c_out: usize,
        c_in: usize,
        dilation: usize,
    ) -> Option<Self> {
        Self::from_kernel(kernel, |k| k, bias, c_out, c_in, dilation)
    }

    /// [`WinogradConv::new`] from the kernel as stored (e.g. u8), each value taken through
    /// `value`: no whole converted copy of the kernel (the models' kernels hold 44M values).
    pub fn from_kernel<K: Copy + Sync>(
        kernel: &[K],
        value: impl Fn(K) -> T::Sum + Sync + Send,
        bias: Option<Vec<T::Sum>>,
        c_out: usize,
        c_in: usize,
        dilation: usize,
    ) -> Option<Self> {
        assert_eq!(kernel.len(), c_out * c_in * 9);
        if c_in == 0 || c_out == 0 {
            return None;
        }
        let row_panels = c_out.div_ceil(ROWS);
        let mut blocks = vec![];
        for first_channel in (0..c_in).step_by(T::MAX_CHANNELS_PER_BLOCK.min(c_in.max(1))) {
            let channels = (c_in - first_channel).min(T::MAX_CHANNELS_PER_BLOCK);
            let groups = channels.div_ceil(T::GROUP);
            let panel_len = POSITIONS * groups * ROWS * T::GROUP;
            let mut packed = vec![T::default(); row_panels * panel_len];
            let fits = super::parallel::map_chunks_mut(&mut packed, panel_len, |rp, panel| {
                for o in rp * ROWS..c_out.min(rp * ROWS + ROWS) {
                    for c in 0..channels {
                        let taps = &kernel[(o * c_in + first_channel + c) * 9..][..9];
                        let taps: [T::Sum; 9] = std::array::from_fn(|i| value(taps[i]));
                        for (p, &value) in transform_kernel::<T>(&taps).iter().enumerate() {
                            let row = p * groups + c / T::GROUP;
                            let at = (row * ROWS + o % ROWS) * T::GROUP + c % T::GROUP;
                            panel[at] = T::from_sum(value)?;
                        }
                    }
                }
                Some(())
            });
            fits.into_iter().collect::<Option<Vec<()>>>()?;
            blocks.push(KernelBlock {
                first_channel,
                channels,
                groups,
                packed,
            });
        }
        Some(WinogradConv {
            c_in,
            c_out,
            dilation,
            blocks: Arc::new(blocks),
            bias: bias.map(Arc::new),
            dequantize: None,
        })
    }

    /// The convolution of a `[c_in, height, width]` image, each value taken through `convert`,
    /// as `[c_out, height, width]`.
    pub fn convolve<S: Copy + Sync>(
        &self,
        image: &[S],
        convert: impl Fn(S) -> T + Sync + Send,
        height: usize,
        width: usize,
    ) -> Vec<T::Sum> {
        self.convolve_finished(image, convert, height, width, |_, _| {})
    }

    /// [`WinogradConv::convolve`], with `finish(channel, values)` applied to each output
    /// channel's final values as they are stored (while they are in registers).
    pub fn convolve_finished<S: Copy + Sync>(
        &self,
        image: &[S],
        convert: impl Fn(S) -> T + Sync + Send,
        height: usize,
        width: usize,
        finish: impl Fn(usize, &mut [T::Sum]) + Sync + Send,
    ) -> Vec<T::Sum> {
        assert_eq!(image.len(), self.c_in * height * width);
        let d = self.dilation;
        let padded = Padded::new(image, convert, self.c_in, height, width, d);
        let tiles = tile_origins(height, width, d);
        // Not zeroed (a serial pass over memory): the first channel block writes every value.
        let len = self.c_out * height * width;
        let mut output: Vec<T::Sum> = Vec::with_capacity(len);
        let out = SharedOutput(output.as_mut_ptr());
        let block_channels = self.c_in.min(T::MAX_CHANNELS_PER_BLOCK);
        let chunk = chunk_tiles(tiles.len(), block_channels * std::mem::size_of::<T>());
        super::parallel::for_each_chunk(&tiles, chunk, |tiles| {
            // Safety: chunks hold disjoint tiles, which cover disjoint output pixels.
            T::with_scratch(|scratch| unsafe {
                self.convolve_chunk(&padded, tiles, (height, width), scratch, &finish, &out)
            })
        });
        // Safety: the tiles cover every pixel once and the first block stored each channel's.
        unsafe { output.set_len(len) };
        output
    }

    /// Every channel block of one chunk of `tiles`, stored into `out`.
    ///
    /// # Safety
    /// `out` holds `c_out * height * width` values and no other thread writes these tiles.
    unsafe fn convolve_chunk<F: Fn(usize, &mut [T::Sum])>(
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
struct SharedOutput<S>(*mut S);
unsafe impl<S> Sync for SharedOutput<S> {}
unsafe impl<S> Send for SharedOutput<S> {}

/// The converted input as planes with `dilation` zero pixels above and left and
/// `2 * dilation` below and right, so every tile's 4x4 window reads inside the plane. Each row
/// holds its even columns, then its odd ones: a row of undilated tiles (2 pixels apart) then
/// finds each of its 4 window columns as 8 consecutive values.
struct Padded<T> {
    data: Vec<T>,
    stride: usize,
    /// Where a row's odd columns start.
    odd: usize,
    plane_len: usize,
}

impl<T: Element> Padded<T> {
    fn new<S: Copy + Sync>(
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
        super::parallel::zip_chunks_indexed(planes.0, planes.1, |_, src, dst| {
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
/// enough that a chunk's transformed inputs (`bytes_per_tile_position` per tile and position)
/// stay in cache and threads get several chunks.
fn chunk_tiles(tiles: usize, bytes_per_tile_position: usize) -> usize {
    let cache_bound = (1 << 18) / (POSITIONS * bytes_per_tile_position.max(1));
    let spread = tiles.div_ceil(8);
    cache_bound.min(spread).clamp(2 * PANEL, 16 * PANEL) / PANEL * PANEL
}

/// `2G g 2Gᵀ` for a 3x3 kernel `g` (row-major), with `2G = [[2,0,0],[1,1,1],[1,-1,1],[0,0,2]]`.
fn transform_kernel<T: Element>(g: &[T::Sum]) -> [T::Sum; POSITIONS] {
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn micro_kernel_i16(a: &[i16], b: &[i16], pairs: usize) -> [[i32; PANEL]; ROWS] {
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn micro_kernel_f32(a: &[f32], b: &[f32], k: usize) -> [[f32; PANEL]; ROWS] {
    use core::arch::wasm32::*;
    assert!(a.len() >= k * ROWS && b.len() >= k * PANEL);
    let mut acc = [f32x4_splat(0.0); 2 * ROWS];
    // Safety: the reads stay inside `a` and `b` (asserted above); v128 loads are unaligned.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for step in 0..k {
            let b0 = v128_load(b.add(step * PANEL) as *const v128);
            let b1 = v128_load(b.add(step * PANEL + 4) as *const v128);
            for r in 0..ROWS {
                let ar = v128_load32_splat(a.add(step * ROWS + r) as *const u32);
                #[cfg(target_feature = "relaxed-simd")]
                {
                    acc[2 * r] = f32x4_relaxed_madd(ar, b0, acc[2 * r]);
                    acc[2 * r + 1] = f32x4_relaxed_madd(ar, b1, acc[2 * r + 1]);
                }
                #[cfg(not(target_feature = "relaxed-simd"))]
                {
                    acc[2 * r] = f32x4_add(acc[2 * r], f32x4_mul(ar, b0));
                    acc[2 * r + 1] = f32x4_add(acc[2 * r + 1], f32x4_mul(ar, b1));
                }
            }
        }
    }
    let mut out = [[0f32; PANEL]; ROWS];
    for (r, row) in out.iter_mut().enumerate() {
        // Safety: two v128 stores into an [f32; 8].
        unsafe {
            v128_store(row.as_mut_ptr() as *mut v128, acc[2 * r]);
            v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[2 * r + 1]);
        }
    }
    out
}

/// The micro-kernels' definition, for the native tests.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn micro_kernel_portable<T: Element>(
    a: &[T],
    b: &[T],
    groups: usize,
    product: impl Fn(T, T) -> T::Sum,
) -> [[T::Sum; PANEL]; ROWS] {
    let mut out = [[T::Sum::default(); PANEL]; ROWS];
    for g in 0..groups {
        for (r, row) in out.iter_mut().enumerate() {
            for (t, acc) in row.iter_mut().enumerate() {
                for e in 0..T::GROUP {
                    let p = product(
                        a[(g * ROWS + r) * T::GROUP + e],
                        b[(g * PANEL + t) * T::GROUP + e],
                    );
                    *acc = T::plus(*acc, p);
                }
            }
        }
    }
    out
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn micro_kernel_i16(a: &[i16], b: &[i16], pairs: usize) -> [[i32; PANEL]; ROWS] {
    micro_kernel_portable(a, b, pairs, |a, b| a as i32 * b as i32)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn micro_kernel_f32(a: &[f32], b: &[f32], k: usize) -> [[f32; PANEL]; ROWS] {
    micro_kernel_portable(a, b, k, |a, b| a * b)
}

impl<T: Element> Op for WinogradConv<T> {
    fn name(&self) -> StaticName {
        T::OP_NAME.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, dilation {}",
            self.c_in, self.c_out, self.dilation
        )])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl<T: Element> EvalOp for WinogradConv<T> {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape();
        ensure!(
            shape.len() == 4 && shape[0] == 1 && shape[1] == self.c_in,
            "{} expects [1, {}, H, W], got {shape:?}",
            T::OP_NAME,
            self.c_in
        );
        let (height, width) = (shape[2], shape[3]);
        Ok(tvec!(
            T::convolve_inputs(self, &inputs, height, width)?.into_tvalue()
        ))
    }
}

impl<T: Element> TypedOp for WinogradConv<T> {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "{} expects a rank-4 input", T::OP_NAME);
        let datum_type = match self.dequantize {
            Some(_) => f32::datum_type(),
            None => T::Sum::datum_type(),
        };
        Ok(tvec!(datum_type.fact([
            shape[0].clone(),
            self.c_out.to_dim(),
            shape[2].clone(),
            shape[3].clone()
        ])))
    }
}

/// The constant value of `outlet` as `D`s, if it is one (or a constant cast: the fp16 models'
/// largest kernels reach their convolution through a Cast to f32).
fn const_values<D: Datum + Copy>(model: &TypedModel, outlet: OutletId) -> Option<Vec<D>> {
    let values = const_tensor(model, outlet)?;
    let values = values.cast_to::<D>().ok()?;
    let values = values
        .try_as_plain_ram()
        .ok()?
        .as_slice::<D>()
        .ok()?
        .to_vec();
    Some(values)
}

/// The constant tensor at `outlet`, as stored (behind a Cast, see [`const_values`]).
fn const_tensor(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let node = model.node(outlet.node);
    if node.op_is::<Cast>() {
        return const_tensor(model, node.inputs[0]);
    }
    model.outlet_fact(outlet).ok()?.konst.clone()
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

/// The Winograd op for a quantised convolution with an i32 output of a u8 image (ConvInteger,
/// and the quantised Conv of dynamically quantised models), reading the image and its zero
/// point.
fn quantised_replacement(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    dilation: usize,
) -> Option<(WinogradConvU8, TVec<OutletId>)> {
    let (c_in, c_out) = (conv.input_channels(), conv.output_channels());
    let zero_point = model.outlet_fact(node.inputs[3]).ok()?;
    let bias_is_zero = const_values::<i32>(model, node.inputs[2])?
        .iter()
        .all(|&v| v == 0);
    let kernel = const_tensor(model, node.inputs[1])?;
    let k0 = const_values::<i32>(model, node.inputs[5])?;
    if node.inputs.len() != 9
        || model.outlet_fact(node.inputs[0]).ok()?.datum_type != u8::datum_type()
        || node.outputs[0].fact.datum_type != i32::datum_type()
        || zero_point.shape.volume() != 1.to_dim()
        || !bias_is_zero
        || k0.len() != 1
        || kernel.len() != c_out * c_in * 9
    {
        return None;
    }
    // The kernel read as stored, each value minus k0 (a converted copy of every kernel was
    // most of the load); types other than u8 / i8 (e.g. quantized ones) as tract casts them.
    fn centred<K: Datum + Copy + Into<i32>>(
        kernel: &Tensor,
        k0: i32,
        (c_out, c_in, dilation): (usize, usize, usize),
    ) -> Option<WinogradConvU8> {
        let kernel = kernel.try_as_plain_ram().ok()?;
        let kernel = kernel.as_slice::<K>().ok()?;
        WinogradConvU8::from_kernel(kernel, |k| k.into() - k0, None, c_out, c_in, dilation)
    }
    let shape = (c_out, c_in, dilation);
    let op = match kernel.datum_type() {
        DatumType::U8 => centred::<u8>(&kernel, k0[0], shape),
        DatumType::I8 => centred::<i8>(&kernel, k0[0], shape),
        _ => centred::<i32>(&*kernel.cast_to::<i32>().ok()?, k0[0], shape),
    }?;
    Some((op, tvec![node.inputs[0], node.inputs[3]]))
}

/// The Winograd op for a float convolution (with its bias), reading the image.
fn float_replacement(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    dilation: usize,
) -> Option<(WinogradConvF32, TVec<OutletId>)> {
    let (c_in, c_out) = (conv.input_channels(), conv.output_channels());
    let kernel = const_tensor(model, node.inputs[1])?;
    // No copy when it is f32 already (fp16 kernels are widened at load).
    let kernel = kernel.cast_to::<f32>().ok()?;
    let kernel = kernel.try_as_plain_ram().ok()?;
    let kernel = kernel.as_slice::<f32>().ok()?;
    let bias = const_values::<f32>(model, node.inputs[2])?;
    let bias = match bias.len() {
        1 => vec![bias[0]; c_out],
        n if n == c_out => bias,
        _ => return None,
    };
    if node.inputs.len() != 3
        || model.outlet_fact(node.inputs[0]).ok()?.datum_type != f32::datum_type()
        || node.outputs[0].fact.datum_type != f32::datum_type()
        || kernel.len() != c_out * c_in * 9
    {
        return None;
    }
    let op = WinogradConvF32::new(kernel, Some(bias), c_out, c_in, dilation)?;
    Some((op, tvec![node.inputs[0]]))
}

/// Replaces each 3x3 stride-1 convolution of a single `[1, C, H, W]` image that Winograd
/// computes exactly (quantised, i32 output) or as closely as f32 allows (float) by
/// [`WinogradConvU8`] or [`WinogradConvF32`]. Run on a decluttered model, before codegen.
/// Returns how many.
pub(super) fn use_winograd(model: &mut TypedModel) -> TractResult<usize> {
    let single_image = |model: &TypedModel, node: &TypedNode| {
        let fact = model.outlet_fact(node.inputs[0]).ok()?;
        let shape = fact.shape.as_concrete()?;
        (shape.len() == 4 && shape[0] == 1 && !shape[2..].contains(&0)).then_some(())
    };
    let quantised = super::replace_nodes_wired(model, |model, node| {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        if conv.q_params != Some(i32::datum_type()) || single_image(model, node).is_none() {
            return Ok(None);
        }
        Ok(same_3x3_dilation(conv).and_then(|d| quantised_replacement(model, node, conv, d)))
    })?;
    let float = super::replace_nodes_wired(model, |model, node| {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        if conv.q_params.is_some() || single_image(model, node).is_none() {
            return Ok(None);
        }
        Ok(same_3x3_dilation(conv).and_then(|d| float_replacement(model, node, conv, d)))
    })?;
    Ok(quantised + float)
}

/// The one node reading `node`'s only output, if there is exactly one.
fn only_successor<'m>(model: &'m TypedModel, node: &TypedNode) -> Option<&'m TypedNode> {
    match node.outputs.as_slice() {
        [output] if output.successors.len() == 1 => Some(model.node(output.successors[0].node)),
        _ => None,
    }
}

/// If `node` is the binary op `B` with `input` as one operand, the other operand.
fn other_operand<B: BinMiniOp>(node: &TypedNode, input: OutletId) -> Option<OutletId> {
    let bin = node.op_as::<TypedBinOp>()?;
    if !bin.0.is::<B>() || node.inputs.len() != 2 {
        return None;
    }
    match (node.inputs[0] == input, node.inputs[1] == input) {
        (true, false) => Some(node.inputs[1]),
        (false, true) => Some(node.inputs[0]),
        _ => None,
    }
}

/// Folds the dequantisation after each [`WinogradConvU8`] (Cast to f32, Mul by the scale,
/// Add the bias, and a ReLU's Max with 0 if there is one) into the op. Run after
/// [`use_winograd`]. Returns how many.
pub(super) fn fuse_dequantize(model: &mut TypedModel) -> TractResult<usize> {
    let mut fused = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some(conv) = node.op_as::<WinogradConvU8>() else {
            continue;
        };
        let Some((op, scale, last)) = dequantize_chain(model, node, conv) else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let inputs = [node.inputs[0], node.inputs[1], scale]
            .iter()
            .map(|&outlet| patch.tap_model(model, outlet))
            .collect::<TractResult<TVec<_>>>()?;
        let name = format!("{}.dequantized", model.node(last.node).name);
        let output = patch.wire_node(name, op, &inputs)?;
        patch.shunt_outside(model, last, output[0])?;
        crate::optimise::apply(patch, model)?;
        fused += 1;
    }
    Ok(fused)
}

/// The op with `conv`'s dequantisation folded in, the scale it reads, and the chain's output.
fn dequantize_chain(
    model: &TypedModel,
    node: &TypedNode,
    conv: &WinogradConvU8,
) -> Option<(WinogradConvU8, OutletId, OutletId)> {
    let output_fact = |n: &TypedNode| n.outputs[0].fact.clone();
    let cast = only_successor(model, node)?;
    if cast.op_as::<Cast>()?.to != f32::datum_type() {
        return None;
    }
    let mul = only_successor(model, cast)?;
    let scale = other_operand::<math::Mul>(mul, cast.id.into())?;
    let add = only_successor(model, mul)?;
    let bias_outlet = other_operand::<math::Add>(add, mul.id.into())?;
    let bias = const_values::<f32>(model, bias_outlet)?;
    let bias_fact = model.outlet_fact(bias_outlet).ok()?;
    let per_channel = bias_fact.shape.as_concrete()? == [1, conv.c_out, 1, 1];
    let bias = match bias.len() {
        1 => vec![bias[0]; conv.c_out],
        _ if per_channel => bias,
        _ => return None,
    };
    let scale_fact = model.outlet_fact(scale).ok()?;
    if scale_fact.datum_type != f32::datum_type()
        || scale_fact.shape.volume() != 1.to_dim()
        || output_fact(add).shape != node.outputs[0].fact.shape
    {
        return None;
    }
    // A ReLU: Max with a constant 0.
    let relu = only_successor(model, add).filter(|max| {
        other_operand::<math::Max>(max, add.id.into())
            .and_then(|zero| const_values::<f32>(model, zero))
            .is_some_and(|zero| zero == [0.0])
    });
    let last = relu.unwrap_or(add);
    let mut op = conv.clone();
    op.dequantize = Some(Arc::new(Dequantize {
        bias,
        relu: relu.is_some(),
    }));
    Some((op, scale, last.id.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    include!("winograd_reference.rs");

    fn check(shape: (usize, usize, usize, usize, usize), extreme: bool) {
        let (c_in, c_out, height, width, d) = shape;
        let (image, x0, kernel) = random_convolution(shape, extreme);
        let op = WinogradConvU8::new(&kernel, None, c_out, c_in, d).unwrap();
        let got = op.convolve_u8(&image, x0, height, width);
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
    fn float_convolution_is_the_direct_one_to_f32_rounding() {
        for shape in CASES {
            let (c_in, c_out, height, width, d) = shape;
            let (image, kernel, bias) = random_float_convolution(shape);
            let op = WinogradConvF32::new(&kernel, Some(bias.clone()), c_out, c_in, d).unwrap();
            let got = op.convolve(&image, |v| v, height, width);
            let want = direct_float_convolution(&image, &kernel, &bias, shape);
            let error = worst_float_error(&got, &want, c_in);
            assert!(error < 1e-6, "{shape:?}: error {error}");
        }
    }

    #[test]
    fn sums_wide_inputs_in_blocks_without_overflow() {
        // 1030 channels of the largest magnitudes: 4x the sum would overflow i32.
        check((1030, 4, 4, 4, 1), true);
        check((600, 6, 5, 3, 2), false);
    }

    /// tract's quantised `Conv` node (ConvInteger as decluttered) in a graph of its own.
    fn quantised_conv_graph(
        shape: (usize, usize, usize, usize, usize),
        dequantized: bool,
    ) -> TractResult<TypedModel> {
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
        let mut output = model.wire_node("conv", conv, &inputs)?;
        if dequantized {
            // As dynamically quantised ONNX files continue: Cast, Mul by the scales, Add the
            // bias, ReLU.
            use tract_onnx::tract_core::ops::{cast::cast, math};
            let scale = model.add_source("scale", f32::fact([1, 1, 1, 1]))?;
            let bias: Vec<f32> = (0..c_out).map(|o| o as f32 * 0.75 - 1.5).collect();
            let bias = tract_ndarray::ArrayD::from_shape_vec(&[1, c_out, 1, 1][..], bias)?;
            let bias = model.add_const("bias_f32", bias.into_tensor())?;
            let zero = model.add_const("zero", tensor4(&[[[[0f32]]]]))?;
            output = model.wire_node("cast", cast(f32::datum_type()), &output)?;
            output = model.wire_node("scaled", math::mul(), &[output[0], scale])?;
            output = model.wire_node("biased", math::add(), &[output[0], bias])?;
            output = model.wire_node("relu", math::max(), &[output[0], zero])?;
        }
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
        let tracts = quantised_conv_graph(shape, false)?
            .into_runnable()?
            .run(inputs()?)?;
        let mut model = quantised_conv_graph(shape, false)?;
        assert_eq!(use_winograd(&mut model)?, 1);
        assert!(model.nodes().iter().any(|n| n.op_is::<WinogradConvU8>()));
        let ours = model.into_runnable()?.run(inputs()?)?;
        assert_eq!(ours[0].shape(), &[1, 5, 9, 12]);
        assert_eq!(ours[0], tracts[0]);
        Ok(())
    }

    #[test]
    fn folds_the_dequantisation_into_the_op_with_the_same_bits() -> TractResult<()> {
        // The second has two channel blocks (the dequantisation applies to their sum).
        for shape in [(6, 5, 9, 12, 1), (600, 5, 6, 7, 2)] {
            folds_the_dequantisation(shape)?;
        }
        Ok(())
    }

    fn folds_the_dequantisation(shape: (usize, usize, usize, usize, usize)) -> TractResult<()> {
        let (c_in, _, height, width, _) = shape;
        let (image, x0, _) = random_convolution(shape, false);
        let inputs = || -> TractResult<TVec<TValue>> {
            let image = tract_ndarray::ArrayD::from_shape_vec(
                &[1, c_in, height, width][..],
                image.clone(),
            )?;
            let scale = tensor4(&[[[[0.0123f32]]]]);
            Ok(tvec![
                image.into_tvalue(),
                tensor0(x0).into_tvalue(),
                scale.into_tvalue()
            ])
        };
        let tracts = quantised_conv_graph(shape, true)?
            .into_runnable()?
            .run(inputs()?)?;
        let mut model = quantised_conv_graph(shape, true)?;
        assert_eq!(use_winograd(&mut model)?, 1);
        assert_eq!(fuse_dequantize(&mut model)?, 1);
        let plan = model.into_runnable()?;
        let ran: Vec<String> = plan
            .model()
            .eval_order()?
            .iter()
            .map(|&id| plan.model().node(id).op.name().to_string())
            .collect();
        assert_eq!(
            ran,
            ["Source", "Source", "Source", "WinogradConvU8"],
            "the chain is gone"
        );
        let ours = plan.run(inputs()?)?;
        assert_eq!(ours[0].datum_type(), f32::datum_type());
        assert!(
            ours[0]
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .contains(&0.0),
            "ReLU applied"
        );
        assert_eq!(ours[0], tracts[0]);
        Ok(())
    }

    #[test]
    fn replaces_tracts_float_convolution_with_the_same_results() -> TractResult<()> {
        use tract_onnx::tract_core::ops::cnn::PoolSpec;
        let shape = (7, 6, 10, 17, 1);
        let (c_in, c_out, height, width, d) = shape;
        let (image, kernel, bias) = random_float_convolution(shape);
        let graph = || -> TractResult<TypedModel> {
            let mut model = TypedModel::default();
            let image = model.add_source("image", f32::fact([1, c_in, height, width]))?;
            let kernel =
                tract_ndarray::ArrayD::from_shape_vec(&[c_out, c_in, 3, 3][..], kernel.clone())?;
            let kernel = model.add_const("kernel", kernel.into_tensor())?;
            let bias = model.add_const("bias", tract_ndarray::arr1(&bias).into_tensor())?;
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: tvec![3, 3],
                    padding: PaddingSpec::Explicit(tvec![d, d], tvec![d, d]),
                    dilations: None,
                    strides: None,
                    input_channels: c_in,
                    output_channels: c_out,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let output = model.wire_node("conv", conv, &[image, kernel, bias])?;
            model.select_output_outlets(&output)?;
            Ok(model)
        };
        let input = tract_ndarray::ArrayD::from_shape_vec(&[1, c_in, height, width][..], image)?;
        let tracts = graph()?
            .into_runnable()?
            .run(tvec![input.clone().into_tvalue()])?;
        let mut model = graph()?;
        assert_eq!(use_winograd(&mut model)?, 1);
        let ours = model.into_runnable()?.run(tvec![input.into_tvalue()])?;
        assert_eq!(ours[0].shape(), tracts[0].shape());
        let (ours, tracts) = (ours[0].try_as_plain_ram()?, tracts[0].try_as_plain_ram()?);
        let error = worst_float_error(ours.as_slice::<f32>()?, tracts.as_slice::<f32>()?, c_in);
        assert!(error < 1e-6, "error {error}");
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
