//! Our own tract ops, swapped into the graph at load where tract's version is slower or sums in
//! a different order than the reference (onnxruntime). Each replacement computes the same values.

/// A named tract [`ModelTransform`] that runs `$rewrite` (which counts what it replaced).
macro_rules! rewrite_transform {
    ($(#[$doc:meta])* $transform:ident, $name:literal, $rewrite:path) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $transform;

        impl tract_onnx::tract_core::transform::ModelTransform for $transform {
            fn name(&self) -> tract_onnx::tract_core::internal::StaticName {
                $name.into()
            }

            fn transform(&self, model: &mut TypedModel) -> TractResult<()> {
                $rewrite(model).map(drop)
            }
        }
    };
}

mod bilinear;
mod im2col;
mod kernels;
mod maxpool;
mod parallel;
mod quantize;
mod widen;
mod winograd;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::transform::ModelTransform;

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

/// Our rewrites of a decluttered model, in order (ops codegen would otherwise lower).
const BEFORE_CODEGEN: &[&dyn ModelTransform] = &[
    &bilinear::UseOrtBilinear,
    &maxpool::UseMaxPool2x2,
    &winograd::UseWinograd,
    // After UseWinograd: it folds what follows the convolutions that one swapped in.
    &winograd::FuseDequantize,
    &winograd::FuseRelu,
];

/// Our rewrites of an optimised model, in order (ops codegen leaves alone but runs slowly).
const AFTER_CODEGEN: &[&dyn ModelTransform] = &[
    &quantize::UseFastDynamicQuantize,
    &quantize::UseFastOffset,
    &im2col::UsePanelIm2Col,
];

/// Rewrites a decluttered model before codegen: [`BEFORE_CODEGEN`].
pub fn before_codegen(model: &mut TypedModel) -> TractResult<()> {
    kernels::ensure_registered();
    apply(BEFORE_CODEGEN, model)
}

/// Rewrites an optimised model: [`AFTER_CODEGEN`].
pub fn after_codegen(model: &mut TypedModel) -> TractResult<()> {
    apply(AFTER_CODEGEN, model)
}

fn apply(transforms: &[&dyn ModelTransform], model: &mut TypedModel) -> TractResult<()> {
    for transform in transforms {
        transform.transform(model)?;
    }
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
