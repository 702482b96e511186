//! `DynamicQuantizeLinear` (u8), byte-identical to tract's and onnxruntime's, about ten times
//! faster: tract's folds min/max through ndarray and rounds element by element with
//! `round_ties_even`, which made it 19% of RMBG-1.4 quantized inference.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::TypedConcat;

/// `x -> (u8 quantized, f32 scale, u8 zero point)` with ONNX DynamicQuantizeLinear semantics,
/// of one input, or of several concatenated along `axis` where only 1s precede it (so the
/// concatenation is the inputs one after another in memory). The second form replaces a
/// Concat whose only reader is the quantizer: tract would copy up to 134 MB first, serially.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FastDynamicQuantizeU8 {
    axis: usize,
}

/// Adding then subtracting 1.5 * 2^23 rounds an f32 to the nearest integer, ties to even,
/// exactly, for |v| < 2^22. Quantized values are within [-255, 255].
const ROUNDING_MAGIC: f32 = 12_582_912.0;
const LANES: usize = 16;

/// The range including zero, as ONNX specifies; the lanes let the compiler vectorise.
fn min_max_with_zero(xs: &[f32]) -> (f32, f32) {
    // Without relaxed SIMD LLVM keeps Rust's NaN-ignoring min/max scalar (f32x4.min propagates
    // NaN); pmin/pmax ignore it the same way.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let (done, (lo, hi)) = wasm_simd::min_max(xs);
        let (rest_lo, rest_hi) = min_max_scalar_lanes(&xs[done..]);
        (lo.min(rest_lo), hi.max(rest_hi))
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    min_max_scalar_lanes(xs)
}

fn min_max_scalar_lanes(xs: &[f32]) -> (f32, f32) {
    let mut lo = [0f32; LANES];
    let mut hi = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(chunk[i]);
            hi[i] = hi[i].max(chunk[i]);
        }
    }
    let mut lo = lo.iter().fold(0f32, |a, &b| a.min(b));
    let mut hi = hi.iter().fold(0f32, |a, &b| a.max(b));
    for &v in rest {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

/// Elements per piece when the work is split over threads.
const CHUNK: usize = 1 << 16;

/// Returns (scale, zero point) and writes the quantized values. min/max and the per-element
/// rounding are exact, so splitting the work over threads changes no byte.
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub fn quantize(xs: &[f32], out: &mut [u8]) -> (f32, u8) {
    quantize_parts(&[xs], out)
}

/// [`quantize`] of the concatenation of `parts` (into `out`, as long as all of them).
fn quantize_parts(parts: &[&[f32]], out: &mut [u8]) -> (f32, u8) {
    assert_eq!(parts.iter().map(|xs| xs.len()).sum::<usize>(), out.len());
    let (lo, hi) = parts
        .iter()
        .flat_map(|xs| super::parallel::map_chunks(xs, CHUNK, min_max_with_zero))
        .fold((0f32, 0f32), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
    let scale = (hi - lo) / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    let zp = zero_point as f32;
    let mut rest = out;
    for xs in parts {
        let (out, tail) = std::mem::take(&mut rest).split_at_mut(xs.len());
        rest = tail;
        super::parallel::zip_chunks(xs, out, CHUNK, |xs, out| {
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            let (xs, out) = {
                let done = wasm_simd::quantize(xs, out, scale, zp);
                (&xs[done..], &mut out[done..])
            };
            for (x, y) in xs.iter().zip(out.iter_mut()) {
                // Integer-valued sums are exact, so this equals round_ties_even(x / scale) + zp.
                let q = ((x / scale) + ROUNDING_MAGIC) - ROUNDING_MAGIC + zp;
                *y = q.clamp(0.0, 255.0) as u8;
            }
        });
    }
    (scale, zero_point)
}

/// The same arithmetic 16 values at a time. LLVM vectorises the loop above for wasm but
/// converts each float to u8 one lane at a time; here `i32x4.trunc_sat_f32x4` and two
/// saturating narrows do it, with the clamps as `pmax`/`pmin` (NaN, from a zero scale, goes to
/// 0 as `clamp(..) as u8` sends it).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_simd {
    use super::ROUNDING_MAGIC;
    use std::arch::wasm32::*;

    /// min and max (with 0) of the largest multiple of 16 values; returns how many and them.
    pub fn min_max(xs: &[f32]) -> (usize, (f32, f32)) {
        let mut lo = [f32x4_splat(0.0); 4];
        let mut hi = [f32x4_splat(0.0); 4];
        let chunks = xs.chunks_exact(16);
        let done = xs.len() - chunks.remainder().len();
        for chunk in chunks {
            for (i, (lo, hi)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                // Safety: 4 floats at 4i inside the 16-float chunk; v128 loads are unaligned.
                let v = unsafe { v128_load(chunk.as_ptr().add(4 * i) as *const v128) };
                // pmin(a, b) = b < a ? b : a: a NaN in b is ignored, like f32::min.
                *lo = f32x4_pmin(*lo, v);
                *hi = f32x4_pmax(*hi, v);
            }
        }
        let mut range = (0f32, 0f32);
        for (lo, hi) in lo.iter().zip(&hi) {
            for lane in 0..4 {
                let (l, h) = match lane {
                    0 => (f32x4_extract_lane::<0>(*lo), f32x4_extract_lane::<0>(*hi)),
                    1 => (f32x4_extract_lane::<1>(*lo), f32x4_extract_lane::<1>(*hi)),
                    2 => (f32x4_extract_lane::<2>(*lo), f32x4_extract_lane::<2>(*hi)),
                    _ => (f32x4_extract_lane::<3>(*lo), f32x4_extract_lane::<3>(*hi)),
                };
                range = (range.0.min(l), range.1.max(h));
            }
        }
        (done, range)
    }

    /// Quantizes the largest multiple of 16 values; returns how many.
    pub fn quantize(xs: &[f32], out: &mut [u8], scale: f32, zp: f32) -> usize {
        let (scale, zp, magic) = (
            f32x4_splat(scale),
            f32x4_splat(zp),
            f32x4_splat(ROUNDING_MAGIC),
        );
        let (zero, top) = (f32x4_splat(0.0), f32x4_splat(255.0));
        let one = |x: v128| {
            let q = f32x4_add(f32x4_sub(f32x4_add(f32x4_div(x, scale), magic), magic), zp);
            i32x4_trunc_sat_f32x4(f32x4_pmin(f32x4_pmax(zero, q), top))
        };
        let mut done = 0;
        for (xs, out) in xs.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            // SAFETY: 16 f32 in, 16 bytes out; unaligned v128 loads and stores are allowed.
            unsafe {
                let x = xs.as_ptr() as *const v128;
                let lanes = [0, 1, 2, 3].map(|i| one(v128_load(x.add(i))));
                let low = u16x8_narrow_i32x4(lanes[0], lanes[1]);
                let high = u16x8_narrow_i32x4(lanes[2], lanes[3]);
                v128_store(out.as_mut_ptr() as *mut v128, u8x16_narrow_i16x8(low, high));
            }
            done += 16;
        }
        done
    }
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

/// Replaces tract's `DynamicQuantizeLinearU8` nodes (the op type is private to tract-onnx, so it
/// is recognised by name and by its f32 -> (u8, f32, u8) signature); where the quantizer is the
/// only reader of a Concat of f32 tensors laid one after another, it reads the Concat's inputs.
pub(super) fn use_fast_dynamic_quantize(model: &mut TypedModel) -> TractResult<usize> {
    let concats_read = std::cell::Cell::new(0);
    let replaced = super::replace_nodes_wired(model, |model, node| {
        let outputs: Vec<DatumType> = node.outputs.iter().map(|o| o.fact.datum_type).collect();
        let matches = node.op().name() == "DynamicQuantizeLinearU8"
            && node.inputs.len() == 1
            && model.outlet_fact(node.inputs[0])?.datum_type == f32::datum_type()
            && outputs == [u8::datum_type(), f32::datum_type(), u8::datum_type()];
        if !matches {
            return Ok(None);
        }
        let input = node.inputs[0];
        if let Some(axis) = contiguous_concat(model, input)? {
            let concat = model.node(input.node);
            concats_read.set(concats_read.get() + 1);
            return Ok(Some((
                FastDynamicQuantizeU8 { axis },
                concat.inputs.iter().copied().collect(),
            )));
        }
        Ok(Some((FastDynamicQuantizeU8::default(), tvec!(input))))
    })?;
    if concats_read.get() > 0 {
        // Drops the Concats nothing reads any more (a rebuild of the graph, so only then).
        model.compact()?;
    }
    Ok(replaced)
}

/// The axis of the Concat producing `outlet`, if its output has no other reader, its inputs are
/// f32, and only 1s precede the axis (each input is then one block of the output).
fn contiguous_concat(model: &TypedModel, outlet: OutletId) -> TractResult<Option<usize>> {
    let node = model.node(outlet.node);
    let Some(concat) = node.op_as::<TypedConcat>() else {
        return Ok(None);
    };
    let fact = model.outlet_fact(outlet)?;
    let leading_ones = fact.shape.iter().take(concat.axis).all(|d| d.is_one());
    let f32_inputs = node.inputs.iter().all(|&input| {
        model
            .outlet_fact(input)
            .is_ok_and(|fact| fact.datum_type == f32::datum_type())
    });
    let only_reader =
        model.outlet_successors(outlet).len() == 1 && !model.outputs.contains(&outlet);
    Ok((leading_ones && f32_inputs && only_reader).then_some(concat.axis))
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

/// Replaces tract's `OffsetU8asI8` on plain u8 tensors (ours feed the int8 matrix products).
pub(super) fn use_fast_offset(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_nodes(model, |model, node| {
        let matches = node.op().name() == "OffsetU8asI8"
            && node.inputs.len() == 1
            && model.outlet_fact(node.inputs[0])?.datum_type == u8::datum_type()
            && node.outputs[0].fact.datum_type == i8::datum_type();
        Ok(matches.then_some(OffsetU8ToI8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("quantize_reference.rs");

    #[test]
    fn byte_identical_to_the_reference_formula() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for (offset, span, len) in [
            (-0.7, 6.0, 100_003),
            (0.0, 1.0, 17),
            (-3.0, 2.0, 4096),
            (0.5, 0.0, 33),
        ] {
            let xs: Vec<f32> = (0..len).map(|_| offset + next() * span).collect();
            let mut ours = vec![0u8; xs.len()];
            let (scale, zp) = quantize(&xs, &mut ours);
            let (theirs, ref_scale, ref_zp) = reference(&xs);
            assert_eq!((scale.to_bits(), zp), (ref_scale.to_bits(), ref_zp));
            assert_eq!(ours, theirs, "offset {offset} span {span}");
            // And the i8 view the int8 kernels take, as tract computes it.
            let offset: Vec<i8> = ours.iter().map(|&x| (x ^ 0x80) as i8).collect();
            let tracts: Vec<i8> = ours.iter().map(|&x| x.wrapping_sub(128) as i8).collect();
            assert_eq!(offset, tracts);
        }
        // Exact ties: values at k + 0.5 quantization steps round to even.
        let xs: Vec<f32> = (-20..20).map(|k| k as f32 * 0.5).collect();
        let mut ours = vec![0u8; xs.len()];
        quantize(&xs, &mut ours);
        assert_eq!(ours, reference(&xs).0);
        // All zeros: scale 0, everything 0, no panic.
        let mut ours = vec![9u8; 8];
        quantize(&[0.0; 8], &mut ours);
        assert_eq!(ours, reference(&[0.0; 8]).0);
    }

    #[test]
    fn parts_quantize_as_their_concatenation() {
        let xs: Vec<f32> = (0..70_001)
            .map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 3.0)
            .collect();
        let mut whole = vec![0u8; xs.len()];
        let expected = quantize(&xs, &mut whole);
        let (a, rest) = xs.split_at(17);
        let (b, c) = rest.split_at(66_000);
        let mut parts = vec![0u8; xs.len()];
        assert_eq!(quantize_parts(&[a, b, c], &mut parts), expected);
        assert_eq!(parts, whole);
    }

    /// ONNX `Concat(a, b)` on `axis` into `DynamicQuantizeLinear`, with `extra` a second reader
    /// of the concatenation, optimised by tract.
    fn concat_then_quantize(
        a: &[i64],
        b: &[i64],
        axis: i64,
        extra: bool,
    ) -> TractResult<TypedModel> {
        use cutout_testkit::tiny_model::{int_attr, model_bytes, node, value_info};
        use tract_onnx::pb;
        let untyped = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            ..Default::default()
        };
        let mut concat = node("Concat", "concat", &["a", "b"], &["ab"]);
        concat.attribute.push(int_attr("axis", axis));
        let outputs = ["q", "scale", "zero_point"];
        let mut nodes = vec![
            concat,
            node("DynamicQuantizeLinear", "quantize", &["ab"], &outputs),
        ];
        let mut output: Vec<pb::ValueInfoProto> = outputs.into_iter().map(untyped).collect();
        if extra {
            nodes.push(node("Relu", "relu", &["ab"], &["r"]));
            output.push(untyped("r"));
        }
        let bytes = model_bytes(pb::GraphProto {
            node: nodes,
            input: vec![value_info("a", a), value_info("b", b)],
            output,
            ..Default::default()
        });
        tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .into_typed()?
            .into_decluttered()?
            .into_optimized()
    }

    #[test]
    fn reads_the_inputs_of_a_concat_only_it_reads_with_the_same_bytes() -> TractResult<()> {
        let ramp = |shape: &[usize], step: f32| -> TractResult<TValue> {
            let len = shape.iter().product::<usize>();
            let values = (0..len)
                .map(|i| (i as f32 * step).sin() * 4.0 - 1.0)
                .collect();
            Ok(tract_ndarray::ArrayD::from_shape_vec(shape, values)?.into_tvalue())
        };
        // (a, b, axis, a second reader of the concatenation, fused)
        for (a, b, axis, extra, fused) in [
            ([1, 2, 3, 5], [1, 3, 3, 5], 1, false, true),
            ([1, 2, 3, 5], [1, 2, 4, 5], 2, false, false),
            ([1, 2, 3, 5], [1, 3, 3, 5], 1, true, false),
        ] {
            let inputs = || -> TractResult<TVec<TValue>> {
                let (a, b) = (a.map(|d| d as usize), b.map(|d| d as usize));
                Ok(tvec![ramp(&a, 0.37)?, ramp(&b, 0.11)?])
            };
            let tracts = concat_then_quantize(&a, &b, axis, extra)?
                .into_runnable()?
                .run(inputs()?)?;
            let mut model = concat_then_quantize(&a, &b, axis, extra)?;
            assert_eq!(use_fast_dynamic_quantize(&mut model)?, 1);
            let concats = model
                .nodes()
                .iter()
                .filter(|n| n.op_is::<TypedConcat>())
                .count();
            assert_eq!(concats, usize::from(!fused), "{a:?} + {b:?} on axis {axis}");
            let ours = model.into_runnable()?.run(inputs()?)?;
            assert_eq!(ours.len(), tracts.len());
            for (ours, tracts) in ours.iter().zip(&tracts) {
                assert_eq!(ours, tracts, "{a:?} + {b:?} on axis {axis}");
            }
        }
        Ok(())
    }
}
