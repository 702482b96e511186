//! Our own tract ops, swapped into the graph at load where tract's version is slower or sums in
//! a different order than the reference (onnxruntime). Each replacement computes the same values.

mod bilinear;
mod im2col;
mod parallel;
pub(crate) mod quantize;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm_kernels;

use tract_onnx::prelude::*;

/// Rewrites a decluttered model before codegen (ops codegen would otherwise lower).
pub fn before_codegen(model: &mut TypedModel) -> TractResult<()> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    wasm_kernels::ensure_registered();
    bilinear::use_ort_bilinear(model)?;
    Ok(())
}

/// Rewrites an optimised model (ops codegen leaves alone but runs slowly).
pub fn after_codegen(model: &mut TypedModel) -> TractResult<()> {
    quantize::use_fast_dynamic_quantize(model)?;
    quantize::use_fast_offset(model)?;
    im2col::use_panel_im2col(model)?;
    Ok(())
}

/// Swaps, in evaluation order, each node `replacement` has an op for: the new op reads the
/// node's first input (the others, like Resize's constant sizes, are folded into it).
fn replace_nodes<O: TypedOp>(
    model: &mut TypedModel,
    replacement: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<O>>,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some(op) = replacement(model, node)? else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
        crate::optimise::apply(patch, model)?;
        replaced += 1;
    }
    Ok(replaced)
}
