//! Winograd F(2x2, 3x3) and F(4x4, 3x3) for the models' 3x3, stride-1 convolutions.
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
//! F(4x4, 3x3) spends 36 multiplies on 4x4 outputs (2.25 per output instead of 4) on 6x6
//! patches, but its transforms grow values ~100x, which i16 cannot hold: it is for f32 only
//! (the fp16 models), where it rounds a little more than F(2x2) (see the tests' bound).
//!
//! Dilated convolutions split into independent undilated ones on every `dilation`-th pixel, so
//! a tile's outputs and inputs are simply `dilation` pixels apart.

use std::cell::RefCell;
use std::ops::{Add, Sub};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::kernels::{self, WinogradTile};
use super::parallel;
pub use tiles::Scratch;
use tiles::{chunk_tiles, tile_origins, transform_kernel_2x2, Chunk, Padded, SharedOutput};

#[cfg(test)]
mod reference;
mod rewrite;
#[cfg(test)]
mod tests;
mod tiles;

#[cfg(test)]
use rewrite::{fuse_dequantize, fuse_relu, use_winograd_for, Kinds};
pub(super) use rewrite::{FuseDequantize, FuseRelu, UseWinograd};

/// The output tile: F(2x2, 3x3) on 4x4 patches or F(4x4, 3x3) on 6x6 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiling {
    F2,
    F4,
}

impl Tiling {
    /// Outputs per tile side.
    fn outputs(self) -> usize {
        match self {
            Tiling::F2 => 2,
            Tiling::F4 => 4,
        }
    }

    /// Transformed values per tile (and per channel): the patch's.
    fn positions(self) -> usize {
        (self.outputs() + 2).pow(2)
    }

    /// The float convolution's tiling for an image of `height` x `width` and `dilation`:
    /// F(4x4) where it saves enough products, counting those of tiles that overhang the image,
    /// for the kernel memory it adds (F(2x2) where a dilation class is 1, 2, 5 or 6 pixels
    /// across, as at IS-Net's deepest dilated layers, and on small images, where the kernels
    /// are most of a layer's bytes and few of its products).
    pub fn for_float(height: usize, width: usize, dilation: usize) -> Tiling {
        // Products and transformed kernel values per input and output channel; products over
        // the `dilation²` classes of pixels.
        let products = |tiling: Tiling| {
            let m = tiling.outputs();
            let per_class = |n: usize| n.div_ceil(dilation).div_ceil(m);
            tiling.positions() * per_class(height) * per_class(width) * dilation * dilation
        };
        let saved = products(Tiling::F2).saturating_sub(products(Tiling::F4));
        let added = Tiling::F4.positions() - Tiling::F2.positions();
        if saved >= MIN_PRODUCTS_SAVED_PER_KERNEL_VALUE * added {
            Tiling::F4
        } else {
            Tiling::F2
        }
    }
}

/// F(4x4) kernels hold 36 values per 3x3 kernel, F(2x2) ones 16: 4x and 1.8x the model's
/// weights. F(4x4) is taken only where each added value saves at least this many products per
/// image: at IS-Net's 32x32 layers and larger, not at its 16x16 ones, which hold many of its
/// weights and do few of its products (docs/performance.md).
const MIN_PRODUCTS_SAVED_PER_KERNEL_VALUE: usize = 30;

/// Tiles per kernel column panel, and output channels per kernel row panel: the micro-kernel's.
const PANEL: usize = kernels::WINOGRAD_PANEL;
const ROWS: usize = kernels::WINOGRAD_ROWS;

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
    /// Whether F(4x4) tiles can hold this type's values; where not, its code is not even
    /// compiled for the type (two tilings' loops in one op changed the quantised op's inlining).
    const WIDE_TILES: bool;
    /// Input channels summed before the outputs are transformed back (see the i16 impl).
    const MAX_CHANNELS_PER_BLOCK: usize;
    const OP_NAME: &'static str;
    /// A transformed kernel value, if it fits.
    fn from_sum(v: Self::Sum) -> Option<Self>;
    fn plus(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    fn minus(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    /// A sum of products with `2G`-transformed kernels, back to the convolution's scale.
    fn quarter(v: Self::Sum) -> Self::Sum;
    /// F(4x4)'s transformed kernels of `ROWS` 3x3 kernels side by side (`g[tap][row]`), if
    /// `Self` holds their values.
    fn transform_kernel_4x4(g: &[[Self::Sum; ROWS]; 9]) -> Option<[[Self::Sum; ROWS]; 36]>;
    /// A kernel value from half-precision bits (only f32 kernels are ever held so).
    fn from_half(bits: u16) -> Self::Sum;
    /// 4 output channels x 8 tiles of `Σ a·b` over `groups` steps, `a` as
    /// `[group][row][GROUP]`, `b` as `[group][tile][GROUP]`.
    fn micro_kernel(a: &[Self], b: &[Self], groups: usize) -> WinogradTile<Self::Sum>;
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
    const WIDE_TILES: bool = false;
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
    /// None: F(4x4)'s transforms grow values ~100x, past i16.
    fn transform_kernel_4x4(_: &[[i32; ROWS]; 9]) -> Option<[[i32; ROWS]; 36]> {
        None
    }
    fn from_half(_: u16) -> i32 {
        unreachable!("quantised kernels are held as i16, never as half floats")
    }
    fn micro_kernel(a: &[i16], b: &[i16], pairs: usize) -> WinogradTile<i32> {
        kernels::winograd_i16(a, b, pairs)
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
    const WIDE_TILES: bool = true;
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
    #[inline(always)]
    fn transform_kernel_4x4(g: &[[f32; ROWS]; 9]) -> Option<[[f32; ROWS]; 36]> {
        Some(tiles::transform_kernel_4x4_f32(g))
    }
    #[inline(always)]
    fn from_half(bits: u16) -> f32 {
        half_to_f32(bits)
    }
    fn micro_kernel(a: &[f32], b: &[f32], k: usize) -> WinogradTile<f32> {
        kernels::winograd_f32(a, b, k)
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
        let image = image.as_slice::<f32>()?;
        let values = if op.relu {
            // tract's Max with 0 (`f32::max`), as the outputs are stored.
            let relu = |_: usize, values: &mut [f32]| {
                for v in values.iter_mut() {
                    *v = v.max(0.0);
                }
            };
            op.convolve_finished(image, |v| v, height, width, relu)
        } else {
            op.convolve(image, |v| v, height, width)
        };
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
    tiling: Tiling,
    /// Per block of input channels, the transformed kernel (`2G k 2Gᵀ` for F(2x2), `G k Gᵀ`
    /// for F(4x4)), laid out as the micro-kernel reads it:
    /// `[row panel][position][channel group][row 0..4][group member]`.
    /// Empty (`packed` holds nothing) when the kernel is transformed as each inference needs it.
    blocks: Arc<Vec<KernelBlock<T>>>,
    /// The kernel, when it is transformed as each inference needs it (at layers of few tiles,
    /// where the transformed kernels would be most of the model's memory for few products: see
    /// [`transforms_per_run`]): per row panel and input channel, the panel's `ROWS` kernels side
    /// by side (`[tap][row]`, zero past the last output channel), as they are transformed.
    source: Option<Arc<KernelSource<T>>>,
    bias: Option<Arc<Vec<T::Sum>>>,
    /// i16 only: the dequantisation the op applies to its sums (then it outputs f32 and reads
    /// the scale as a third input).
    dequantize: Option<Arc<Dequantize>>,
    /// f32 only: a ReLU after the bias (the following `Max(_, 0)` folded in).
    relu: bool,
}

impl<T: Element> Eq for WinogradConv<T> {}

/// One input channel's 3x3 kernels for a row panel's `ROWS` output channels: `[tap][row]`.
type Taps<T> = [[<T as Element>::Sum; ROWS]; 9];

/// [`Taps`] as half-precision floats' bits.
type HalfTaps = [[u16; ROWS]; 9];

/// A kernel transformed at each inference, as the op holds it (see [`WinogradConv::source`]):
/// its values, or, where every value is exactly a half-precision float (the fp16 models'
/// weights, widened at load), their f16 bits, in half the memory.
#[derive(Clone, Debug, PartialEq)]
enum KernelSource<T: Element> {
    Full(Vec<Taps<T>>),
    Half(Vec<HalfTaps>),
}

impl<T: Element> KernelSource<T> {
    #[inline(always)]
    fn taps(&self, index: usize) -> Taps<T> {
        match self {
            KernelSource::Full(taps) => taps[index],
            KernelSource::Half(taps) => taps[index].map(|rows| rows.map(T::from_half)),
        }
    }
}

/// The f32 value of half-precision bits `h` (finite ones: [`half_bits`] makes no others).
/// Branch-free, so lanes of it vectorise: the 15 magnitude bits moved to f32's places, then
/// rescaled by 2^112, the difference of the two formats' exponent biases (f16 subnormals come out
/// right too: they are f32 subnormals before the product).
#[inline(always)]
fn half_to_f32(h: u16) -> f32 {
    const TWO_TO_112: f32 = f32::from_bits(0x7780_0000);
    let magnitude = f32::from_bits(((h & 0x7fff) as u32) << 13) * TWO_TO_112;
    f32::from_bits(magnitude.to_bits() | (((h & 0x8000) as u32) << 16))
}

/// `v`'s half-precision bits if it is exactly a (finite) half-precision float.
fn half_bits(v: f32) -> Option<u16> {
    const TWO_TO_MINUS_112: f32 = f32::from_bits(0x0780_0000);
    let bits = v.to_bits();
    let scaled = (f32::from_bits(bits & 0x7fff_ffff) * TWO_TO_MINUS_112).to_bits() >> 13;
    let h = u16::try_from(scaled).ok().filter(|&h| h < 0x7c00)? | ((bits >> 16) & 0x8000) as u16;
    (half_to_f32(h).to_bits() == bits).then_some(h)
}

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

impl<T: Element> KernelBlock<T> {
    /// The blocks `c_in` input channels are summed in, with nothing packed yet.
    fn layout(c_in: usize) -> Vec<KernelBlock<T>> {
        (0..c_in)
            .step_by(T::MAX_CHANNELS_PER_BLOCK.min(c_in.max(1)))
            .map(|first_channel| {
                let channels = (c_in - first_channel).min(T::MAX_CHANNELS_PER_BLOCK);
                KernelBlock {
                    first_channel,
                    channels,
                    groups: channels.div_ceil(T::GROUP),
                    packed: vec![],
                }
            })
            .collect()
    }

    /// Values in one row panel of this block's transformed kernel.
    fn panel_len(&self, tiling: Tiling) -> usize {
        tiling.positions() * self.groups * ROWS * T::GROUP
    }
}

/// Input channel `channel`'s kernels for row panel `rp` of an `[O, I, 3, 3]` `kernel`, each
/// value taken through `value`, zero past the last output channel.
#[inline(always)]
fn gathered_taps<T: Element, K: Copy>(
    kernel: &[K],
    value: &impl Fn(K) -> T::Sum,
    (c_out, c_in): (usize, usize),
    rp: usize,
    channel: usize,
) -> Taps<T> {
    let mut taps = [[T::Sum::default(); ROWS]; 9];
    let rows = c_out.saturating_sub(rp * ROWS).min(ROWS);
    for (row, o) in (rp * ROWS..).take(rows).enumerate() {
        let g = &kernel[(o * c_in + channel) * 9..][..9];
        for (tap, &k) in taps.iter_mut().zip(g) {
            tap[row] = value(k);
        }
    }
    taps
}

/// A row panel of `block`'s transformed kernel, from `taps(c)`, the kernels of the block's
/// `c`-th channel, as the micro-kernel reads it: `[position][channel group][row][group member]`
/// (zero for the channel padding of the last group). Every value of `panel` is written. None
/// when a transformed value does not fit `T`.
#[inline(always)]
fn pack_row_panel<T: Element>(
    taps: impl Fn(usize) -> Taps<T>,
    tiling: Tiling,
    block: &KernelBlock<T>,
    panel: &mut [T],
) -> Option<()> {
    match tiling {
        Tiling::F2 => pack_row_panel_with(taps, transform_kernel_2x2::<T>, block, panel),
        Tiling::F4 => pack_row_panel_with(taps, T::transform_kernel_4x4, block, panel),
    }
}

/// [`pack_row_panel`] with `transform` giving the `P` positions of each channel's kernels.
/// [`GATHERED_GROUPS`] channel groups at a time are gathered as the panel lays them out, then
/// copied a position at a time: one channel's positions are a whole panel row apart, and
/// storing them straight there (`P` stores into the same cache set) took ~3x as long.
#[inline(always)]
fn pack_row_panel_with<T: Element, const P: usize>(
    taps: impl Fn(usize) -> Taps<T>,
    transform: impl Fn(&Taps<T>) -> Option<[[T::Sum; ROWS]; P]>,
    block: &KernelBlock<T>,
    panel: &mut [T],
) -> Option<()> {
    let run = ROWS * T::GROUP;
    let mut gathered = [[T::default(); GATHERED_GROUPS * ROWS * MAX_GROUP]; P];
    for first_group in (0..block.groups).step_by(GATHERED_GROUPS) {
        let groups = GATHERED_GROUPS.min(block.groups - first_group);
        for c in first_group * T::GROUP..(first_group + groups) * T::GROUP {
            let taps = match c < block.channels {
                true => taps(c),
                false => [[T::Sum::default(); ROWS]; 9],
            };
            let transformed = transform(&taps)?;
            let (group, member) = (c / T::GROUP - first_group, c % T::GROUP);
            for (values, runs) in transformed.iter().zip(gathered.iter_mut()) {
                let at = &mut runs[group * run..][..run];
                for (row, &v) in values.iter().enumerate() {
                    at[row * T::GROUP + member] = T::from_sum(v)?;
                }
            }
        }
        for (p, runs) in gathered.iter().enumerate() {
            let width = groups * run;
            panel[(p * block.groups + first_group) * run..][..width]
                .copy_from_slice(&runs[..width]);
        }
    }
    Some(())
}

/// Channel groups whose transformed kernels [`pack_row_panel_with`] gathers before it stores
/// them, and the most members a group has (i16's pairs).
const GATHERED_GROUPS: usize = 16;
const MAX_GROUP: usize = 2;

/// Whether a layer of `tiles` tiles transforms its kernel as each inference needs it instead of
/// holding it transformed: where the transformed kernel (`positions` values per 3x3 kernel)
/// takes more memory than the kernel itself and each kernel value is used by few tiles, so that
/// transforming it again costs little beside its products (docs/performance.md).
fn transforms_per_run<T: Element>(tiles: usize, tiling: Tiling) -> bool {
    let transformed = tiling.positions() * std::mem::size_of::<T>();
    let kernel = 9 * std::mem::size_of::<T::Sum>();
    transformed > kernel && tiles <= MAX_TILES_TRANSFORMING_PER_RUN
}

/// See [`transforms_per_run`]: IS-Net's 64x64 layers and smaller (256 F(4x4) tiles), which hold
/// 95% of its weights.
const MAX_TILES_TRANSFORMING_PER_RUN: usize = 256;

impl WinogradConv<f32> {
    /// [`WinogradConv::new`] for a layer of a `height` x `width` image: with its kernel
    /// transformed as each inference needs it where [`transforms_per_run`] says so (then the op
    /// holds `kernel` laid out as it is transformed, not transformed).
    pub fn for_image(
        kernel: &Tensor,
        bias: Option<Vec<f32>>,
        (c_out, c_in): (usize, usize),
        dilation: usize,
        (height, width): (usize, usize),
    ) -> Option<Self> {
        let tiling = Tiling::for_float(height, width, dilation);
        let values = kernel.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?;
        if values.len() != c_out * c_in * 9 || c_in == 0 || c_out == 0 {
            return None;
        }
        let tiles = tile_origins(height, width, dilation, tiling.outputs()).len();
        if !transforms_per_run::<f32>(tiles, tiling) {
            return Self::new(values, bias, (c_out, c_in), dilation, tiling);
        }
        Some(Self::transforming_per_run(
            values,
            bias,
            (c_out, c_in),
            dilation,
            tiling,
        ))
    }

    /// The op transforming the `[O, I, 3, 3]` kernel `values` (`c_in`, `c_out` > 0) at each
    /// inference.
    fn transforming_per_run(
        values: &[f32],
        bias: Option<Vec<f32>>,
        (c_out, c_in): (usize, usize),
        dilation: usize,
        tiling: Tiling,
    ) -> Self {
        assert_eq!(values.len(), c_out * c_in * 9);
        let shape = (c_out, c_in);
        let len = c_out.div_ceil(ROWS) * c_in;
        let mut half = vec![[[0u16; ROWS]; 9]; len];
        let exact = parallel::map_chunks_mut(&mut half, c_in, |rp, panel| {
            panel.iter_mut().enumerate().all(|(c, taps)| {
                let wide = gathered_taps::<f32, f32>(values, &|k| k, shape, rp, c);
                wide.iter().zip(taps.iter_mut()).all(|(wide, taps)| {
                    wide.iter()
                        .zip(taps)
                        .all(|(&v, h)| half_bits(v).map(|bits| *h = bits).is_some())
                })
            })
        });
        let source = if exact.into_iter().all(|exact| exact) {
            KernelSource::Half(half)
        } else {
            drop(half);
            let mut full = vec![[[0f32; ROWS]; 9]; len];
            parallel::map_chunks_mut(&mut full, c_in, |rp, panel| {
                for (c, taps) in panel.iter_mut().enumerate() {
                    *taps = gathered_taps::<f32, f32>(values, &|k| k, shape, rp, c);
                }
            });
            KernelSource::Full(full)
        };
        WinogradConv {
            c_in,
            c_out,
            dilation,
            tiling,
            blocks: Arc::new(KernelBlock::layout(c_in)),
            source: Some(Arc::new(source)),
            bias: bias.map(Arc::new),
            dequantize: None,
            relu: false,
        }
    }
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
    /// cannot give, or F(4x4)).
    pub fn new(
        kernel: &[T::Sum],
        bias: Option<Vec<T::Sum>>,
        (c_out, c_in): (usize, usize),
        dilation: usize,
        tiling: Tiling,
    ) -> Option<Self> {
        Self::from_kernel(kernel, |k| k, bias, (c_out, c_in), dilation, tiling)
    }

    /// [`WinogradConv::new`] from the kernel as stored (e.g. u8), each value taken through
    /// `value`: no whole converted copy of the kernel (the models' kernels hold 44M values).
    pub fn from_kernel<K: Copy + Sync>(
        kernel: &[K],
        value: impl Fn(K) -> T::Sum + Sync + Send,
        bias: Option<Vec<T::Sum>>,
        (c_out, c_in): (usize, usize),
        dilation: usize,
        tiling: Tiling,
    ) -> Option<Self> {
        assert_eq!(kernel.len(), c_out * c_in * 9);
        if c_in == 0 || c_out == 0 {
            return None;
        }
        let shape = (c_out, c_in);
        let row_panels = c_out.div_ceil(ROWS);
        let blocks = KernelBlock::<T>::layout(c_in)
            .into_iter()
            .map(|mut block| {
                let panel_len = block.panel_len(tiling);
                let mut packed = vec![T::default(); row_panels * panel_len];
                let layout = &block;
                let fits = parallel::map_chunks_mut(&mut packed, panel_len, |rp, panel| {
                    let first = layout.first_channel;
                    let taps = |c| gathered_taps::<T, K>(kernel, &value, shape, rp, first + c);
                    pack_row_panel(taps, tiling, layout, panel)
                });
                fits.into_iter().collect::<Option<Vec<()>>>()?;
                block.packed = packed;
                Some(block)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(WinogradConv {
            c_in,
            c_out,
            dilation,
            tiling,
            blocks: Arc::new(blocks),
            source: None,
            bias: bias.map(Arc::new),
            dequantize: None,
            relu: false,
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
        let m = self.tiling.outputs();
        let padded = Padded::new(image, convert, (self.c_in, height, width), d, m);
        let tiles = tile_origins(height, width, d, m);
        // Not zeroed (a serial pass over memory): the first channel block writes every value.
        let len = self.c_out * height * width;
        let mut output: Vec<T::Sum> = Vec::with_capacity(len);
        let out = SharedOutput(output.as_mut_ptr());
        if let Some(source) = &self.source {
            let size = (height, width);
            self.convolve_by_row_panels(source, &padded, &tiles, size, &finish, &out);
            // Safety: every output channel's row panel stored each of its pixels.
            unsafe { output.set_len(len) };
            return output;
        }
        let block_channels = self.c_in.min(T::MAX_CHANNELS_PER_BLOCK);
        let bytes_per_tile_position = block_channels * std::mem::size_of::<T>();
        let chunk = chunk_tiles(
            tiles.len(),
            bytes_per_tile_position,
            self.tiling.positions(),
        );
        parallel::for_each_chunk(&tiles, chunk, |tiles| {
            // Safety: chunks hold disjoint tiles, which cover disjoint output pixels.
            let chunk = Chunk {
                padded: &padded,
                tiles,
                size: (height, width),
                finish: &finish,
                out: &out,
            };
            T::with_scratch(|scratch| unsafe { self.convolve_chunk(&chunk, scratch) })
        });
        // Safety: the tiles cover every pixel once and the first block stored each channel's.
        unsafe { output.set_len(len) };
        output
    }
}

impl<T: Element> Op for WinogradConv<T> {
    fn name(&self) -> StaticName {
        T::OP_NAME.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, dilation {}, {:?}",
            self.c_in, self.c_out, self.dilation, self.tiling
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
