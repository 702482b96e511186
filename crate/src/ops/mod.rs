//! Our own tract ops, swapped into the graph at load where tract's version is slower or sums in
//! a different order than the reference (onnxruntime). Each replacement computes the same values.

mod bilinear;
mod im2col;
mod maxpool;
mod parallel;
pub(crate) mod quantize;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm_kernels;
// Natively tract's int8 kernels (AVX2 / AVX-512, up to 32 products per instruction) beat
// Winograd on 8 per instruction; in wasm, where 8 is the most, Winograd wins. Natively it is
// only tested (the same code, the portable micro-kernel).
mod widen;
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) mod winograd;
#[cfg(target_arch = "x86_64")]
mod x86_kernels;

use tract_onnx::prelude::*;

pub(crate) use parallel::overlap;
pub(crate) use widen::fold_f16_constant_casts;

/// Rewrites a decluttered model before codegen (ops codegen would otherwise lower).
pub fn before_codegen(model: &mut TypedModel) -> TractResult<()> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    wasm_kernels::ensure_registered();
    bilinear::use_ort_bilinear(model)?;
    maxpool::use_maxpool_2x2(model)?;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        winograd::use_winograd(model)?;
        winograd::fuse_dequantize(model)?;
    }
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
    replace_nodes_wired(model, |model, node| {
        Ok(replacement(model, node)?.map(|op| (op, node.inputs[..1].into())))
    })
}

/// [`replace_nodes`] where `replacement` also picks which of the node's inputs the op reads.
fn replace_nodes_wired<O: TypedOp>(
    model: &mut TypedModel,
    replacement: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<(O, TVec<OutletId>)>>,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some((op, inputs)) = replacement(model, node)? else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &inputs, op)?;
        crate::optimise::apply(patch, model)?;
        replaced += 1;
    }
    Ok(replaced)
}
