//! The graph patches that swap Winograd in for tract's 3x3 convolutions, and fold the
//! dequantisation after each quantised one into it.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::{Dequantize, Tiling, WinogradConvF32, WinogradConvU8};

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
        let shape = (c_out, c_in);
        WinogradConvU8::from_kernel(kernel, |k| k.into() - k0, None, shape, dilation, Tiling::F2)
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
    let shape = model
        .outlet_fact(node.inputs[0])
        .ok()?
        .shape
        .as_concrete()?
        .to_vec();
    let image = (shape[2], shape[3]);
    let op = WinogradConvF32::for_image(&kernel, Some(bias), (c_out, c_in), dilation, image)?;
    Some((op, tvec![node.inputs[0]]))
}

/// Replaces each 3x3 stride-1 convolution of a single `[1, C, H, W]` image that Winograd
/// computes exactly (quantised, i32 output) or as closely as f32 allows (float) by
/// [`WinogradConvU8`] or [`WinogradConvF32`]. Run on a decluttered model, before codegen.
/// Returns how many.
pub(super) fn use_winograd(model: &mut TypedModel) -> TractResult<usize> {
    use_winograd_for(model, Kinds::faster_than_tracts())
}

/// Which convolutions [`use_winograd_for`] replaces.
#[derive(Clone, Copy)]
pub(super) struct Kinds {
    pub quantised: bool,
    pub float: bool,
}

impl Kinds {
    /// Natively tract's int8 kernels (AVX2 / AVX-512, up to 32 products per instruction) beat
    /// Winograd on 8 per instruction; in wasm, where 8 is the most, Winograd wins. Float
    /// Winograd wins wherever there is a SIMD micro-kernel for it (see docs/performance.md).
    fn faster_than_tracts() -> Kinds {
        Kinds {
            quantised: cfg!(wasm_simd),
            float: super::kernels::fast_float_winograd(),
        }
    }

    #[cfg(test)]
    pub const ALL: Kinds = Kinds {
        quantised: true,
        float: true,
    };
}

/// [`use_winograd`] for the `kinds` of convolution given.
pub(super) fn use_winograd_for(model: &mut TypedModel, kinds: Kinds) -> TractResult<usize> {
    let single_image = |model: &TypedModel, node: &TypedNode| {
        let fact = model.outlet_fact(node.inputs[0]).ok()?;
        let shape = fact.shape.as_concrete()?;
        (shape.len() == 4 && shape[0] == 1 && !shape[2..].contains(&0)).then_some(())
    };
    let quantised = crate::ops::replace_nodes_wired(model, |model, node| {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        if !kinds.quantised
            || conv.q_params != Some(i32::datum_type())
            || single_image(model, node).is_none()
        {
            return Ok(None);
        }
        Ok(same_3x3_dilation(conv).and_then(|d| quantised_replacement(model, node, conv, d)))
    })?;
    let floats = crate::ops::replace_nodes_wired(model, |model, node| {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        if !kinds.float || conv.q_params.is_some() || single_image(model, node).is_none() {
            return Ok(None);
        }
        Ok(same_3x3_dilation(conv).and_then(|d| float_replacement(model, node, conv, d)))
    })?;
    Ok(quantised + floats)
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
    let relu = relu_after(model, add);
    let last = relu.unwrap_or(add);
    let mut op = conv.clone();
    op.dequantize = Some(Arc::new(Dequantize {
        bias,
        relu: relu.is_some(),
    }));
    Some((op, scale, last.id.into()))
}

/// The ReLU (tract's Max with a constant 0) that alone reads `node`'s output, if there is one.
fn relu_after<'m>(model: &'m TypedModel, node: &TypedNode) -> Option<&'m TypedNode> {
    only_successor(model, node).filter(|max| {
        other_operand::<math::Max>(max, node.id.into())
            .and_then(|zero| const_values::<f32>(model, zero))
            .is_some_and(|zero| zero == [0.0])
    })
}

/// Folds the ReLU after each [`WinogradConvF32`] into the op (applied as its outputs are
/// stored, not in a pass over memory of its own). Run after [`use_winograd`]. Returns how many.
pub(super) fn fuse_relu(model: &mut TypedModel) -> TractResult<usize> {
    let mut fused = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some(conv) = node.op_as::<WinogradConvF32>() else {
            continue;
        };
        let Some(relu) = relu_after(model, node) else {
            continue;
        };
        if conv.relu || relu.outputs[0].fact != node.outputs[0].fact {
            continue;
        }
        let mut op = conv.clone();
        op.relu = true;
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let output = patch.wire_node(format!("{}.relu", relu.name), op, &[input])?;
        patch.shunt_outside(model, relu.id.into(), output[0])?;
        crate::optimise::apply(patch, model)?;
        fused += 1;
    }
    Ok(fused)
}

rewrite_transform!(
    /// [`use_winograd`], a step of the load before codegen.
    UseWinograd,
    "cutout-winograd",
    use_winograd
);

rewrite_transform!(
    /// [`fuse_dequantize`], a step of the load before codegen (after [`UseWinograd`]).
    FuseDequantize,
    "cutout-winograd-fuse-dequantize",
    fuse_dequantize
);

rewrite_transform!(
    /// [`fuse_relu`], a step of the load before codegen (after [`UseWinograd`]).
    FuseRelu,
    "cutout-winograd-fuse-relu",
    fuse_relu
);
