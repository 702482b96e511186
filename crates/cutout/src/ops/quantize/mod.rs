//! `DynamicQuantizeLinear` (u8), byte-identical to tract's and onnxruntime's, about ten times
//! faster: tract's folds min/max through ndarray and rounds element by element with
//! `round_ties_even`, which made it 19% of RMBG-1.4 quantized inference.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::{kernels, parallel};

/// `x -> (u8 quantized, f32 scale, u8 zero point)` with ONNX DynamicQuantizeLinear semantics,
/// of one input, or of several concatenated along `axis` where only 1s precede it (so the
/// concatenation is the inputs one after another in memory). The second form replaces a
/// Concat whose only reader is the quantizer: tract would copy up to 134 MB first, serially.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FastDynamicQuantizeU8 {
    axis: usize,
}

/// Elements per piece when the work is split over threads.
const CHUNK: usize = 1 << 16;

/// Returns (scale, zero point) and writes the quantized values. min/max and the per-element
/// rounding are exact, so splitting the work over threads changes no byte.
#[cfg(test)]
fn quantize(xs: &[f32], out: &mut [u8]) -> (f32, u8) {
    quantize_parts(&[xs], out)
}

/// [`quantize`] of the concatenation of `parts` (into `out`, as long as all of them).
fn quantize_parts(parts: &[&[f32]], out: &mut [u8]) -> (f32, u8) {
    assert_eq!(parts.iter().map(|xs| xs.len()).sum::<usize>(), out.len());
    let (lo, hi) = parts
        .iter()
        .flat_map(|xs| parallel::map_chunks(xs, CHUNK, kernels::min_max_with_zero))
        .fold((0f32, 0f32), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
    let scale = (hi - lo) / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    let zp = zero_point as f32;
    let mut rest = out;
    for xs in parts {
        let (out, tail) = std::mem::take(&mut rest).split_at_mut(xs.len());
        rest = tail;
        parallel::zip_chunks(xs, out, CHUNK, |xs, out| {
            kernels::quantize_u8(xs, out, scale, zp)
        });
    }
    (scale, zero_point)
}

impl Op for FastDynamicQuantizeU8 {
    fn name(&self) -> StaticName {
        "FastDynamicQuantizeU8".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for FastDynamicQuantizeU8 {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let inputs = inputs
            .iter()
            .map(|input| input.cast_to::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        let views = inputs
            .iter()
            .map(|input| input.try_as_plain_ram())
            .collect::<TractResult<Vec<_>>>()?;
        let parts = views
            .iter()
            .map(|view| view.as_slice::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        let mut shape: TVec<usize> = inputs[0].shape().into();
        for input in &inputs[1..] {
            let other = input.shape();
            ensure!(
                other.len() == shape.len()
                    && (0..shape.len()).all(|a| a == self.axis || other[a] == shape[a]),
                "FastDynamicQuantizeU8: cannot concatenate {other:?} to {:?} on axis {}",
                inputs[0].shape(),
                self.axis
            );
            shape[self.axis] += other[self.axis];
        }
        ensure!(
            inputs.len() == 1 || shape[..self.axis].iter().all(|&d| d == 1),
            "FastDynamicQuantizeU8: inputs {shape:?} are not laid one after another on axis {}",
            self.axis
        );
        // SAFETY: `quantize_parts` writes every output value.
        let (quantized, (scale, zero_point)) =
            unsafe { super::filled_tensor(&shape, |out| quantize_parts(&parts, out))? };
        Ok(tvec!(
            quantized.into_tvalue(),
            tensor0(scale).into_tvalue(),
            tensor0(zero_point).into_tvalue()
        ))
    }
}

impl TypedOp for FastDynamicQuantizeU8 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut quantized = inputs[0].without_value();
        quantized.datum_type = u8::datum_type();
        for input in &inputs[1..] {
            let length = quantized.shape[self.axis].clone() + &input.shape[self.axis];
            quantized.shape.set(self.axis, length);
        }
        Ok(tvec!(quantized, f32::scalar_fact(), u8::scalar_fact()))
    }
}

/// tract's `OffsetU8asI8` (u8 -> i8 by subtracting 128, which the int8 kernels take), as a plain
/// loop the compiler vectorises: tract's version lives in tract-core, which the wasm builds
/// optimise for size.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct OffsetU8ToI8;

impl Op for OffsetU8ToI8 {
    fn name(&self) -> StaticName {
        "OffsetU8ToI8".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for OffsetU8ToI8 {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].try_as_plain_ram()?;
        let xs = input.as_slice::<u8>()?;
        let offset: Vec<i8> = xs.iter().map(|&x| (x ^ 0x80) as i8).collect();
        let offset = tract_ndarray::ArrayD::from_shape_vec(inputs[0].shape(), offset)?;
        Ok(tvec!(offset.into_tvalue()))
    }
}

impl TypedOp for OffsetU8ToI8 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut offset = inputs[0].without_value();
        offset.datum_type = i8::datum_type();
        Ok(tvec!(offset))
    }
}

#[cfg(test)]
mod reference;
mod rewrite;
#[cfg(test)]
mod tests;

#[cfg(test)]
use rewrite::use_fast_dynamic_quantize;
pub(super) use rewrite::{UseFastDynamicQuantize, UseFastOffset};
