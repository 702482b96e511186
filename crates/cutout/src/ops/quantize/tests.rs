use super::reference::reference;
use super::*;
use cutout_testkit::Rng;
use tract_onnx::tract_core::ops::array::TypedConcat;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The quantizer (in wasm its SIMD path, with the scalar tail) against ONNX
/// DynamicQuantizeLinear's formula, element by element: random ranges, lengths that leave a
/// scalar tail, exact ties and all-zero inputs (scale 0).
#[test]
fn byte_identical_to_the_reference_formula() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
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
    for ties in [-20..20, -40..40] {
        let xs: Vec<f32> = ties.map(|k| k as f32 * 0.5).collect();
        let mut ours = vec![0u8; xs.len()];
        let (scale, zp) = quantize(&xs, &mut ours);
        let (theirs, ref_scale, ref_zp) = reference(&xs);
        assert_eq!((scale.to_bits(), zp), (ref_scale.to_bits(), ref_zp));
        assert_eq!(ours, theirs, "{} ties", xs.len());
    }
    // All zeros: scale 0, everything 0, no panic.
    for (len, stale) in [(8, 9u8), (40, 7)] {
        let zeros = vec![0.0; len];
        let mut ours = vec![stale; len];
        let (scale, zp) = quantize(&zeros, &mut ours);
        let (theirs, ref_scale, ref_zp) = reference(&zeros);
        assert_eq!((scale.to_bits(), zp), (ref_scale.to_bits(), ref_zp));
        assert_eq!(ours, theirs, "{len} zeros");
    }
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
fn concat_then_quantize(a: &[i64], b: &[i64], axis: i64, extra: bool) -> TractResult<TypedModel> {
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
