//! Our own tract ops, swapped into the graph at load where tract's version is slower or sums in
//! a different order than the reference (onnxruntime). Each replacement computes the same values.

mod bilinear;
mod im2col;
mod maxpool;
mod parallel;
pub(crate) mod quantize;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm_kernels;
mod widen;
// Natively tract's int8 kernels (AVX2 / AVX-512, up to 32 products per instruction) beat
// Winograd on 8 per instruction; in wasm, where 8 is the most, Winograd wins. Natively it is
// only tested (the same code, the portable micro-kernel).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) mod winograd;
#[cfg(target_arch = "x86_64")]
mod x86_kernels;

use tract_onnx::prelude::*;

pub(crate) use parallel::overlap;
pub(crate) use widen::fold_f16_constant_casts;

/// A new `shape` tensor of `T`, filled by `fill`, with what `fill` returns. Not zeroed first:
/// for the large activations our ops write, that was a serial pass over up to 67 MB.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
unsafe fn filled_tensor<T: Datum, R>(
    shape: &[usize],
    fill: impl FnOnce(&mut [T]) -> R,
) -> TractResult<(Tensor, R)> {
    // SAFETY: the caller's `fill` writes every element before the tensor is read.
    let mut tensor = unsafe { Tensor::uninitialized::<T>(shape)? };
    let filled = fill(tensor.try_as_plain_ram_mut()?.as_slice_mut::<T>()?);
    Ok((tensor, filled))
}

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
