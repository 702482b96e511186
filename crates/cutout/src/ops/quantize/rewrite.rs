//! The graph patches that swap our quantizer and offset in for tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;

use super::{FastDynamicQuantizeU8, OffsetU8ToI8};

/// Replaces tract's `DynamicQuantizeLinearU8` nodes (the op type is private to tract-onnx, so it
/// is recognised by name and by its f32 -> (u8, f32, u8) signature); where the quantizer is the
/// only reader of a Concat of f32 tensors laid one after another, it reads the Concat's inputs.
pub(super) fn use_fast_dynamic_quantize(model: &mut TypedModel) -> TractResult<usize> {
    let concats_read = std::cell::Cell::new(0);
    let replaced = crate::ops::replace_nodes_wired(model, |model, node| {
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

/// Replaces tract's `OffsetU8asI8` on plain u8 tensors (ours feed the int8 matrix products).
pub(super) fn use_fast_offset(model: &mut TypedModel) -> TractResult<usize> {
    crate::ops::replace_nodes(model, |model, node| {
        let matches = node.op().name() == "OffsetU8asI8"
            && node.inputs.len() == 1
            && model.outlet_fact(node.inputs[0])?.datum_type == u8::datum_type()
            && node.outputs[0].fact.datum_type == i8::datum_type();
        Ok(matches.then_some(OffsetU8ToI8))
    })
}

rewrite_transform!(
    /// [`use_fast_dynamic_quantize`], a step of the load after codegen.
    UseFastDynamicQuantize,
    "cutout-fast-dynamic-quantize",
    use_fast_dynamic_quantize
);

rewrite_transform!(
    /// [`use_fast_offset`], a step of the load after codegen.
    UseFastOffset,
    "cutout-fast-offset",
    use_fast_offset
);
