//! Im2col for tract's convolutions, written panel by panel, with the quantized path's column
//! sums computed in the same pass.
//!
//! tract's `Im2col` feeds its packing writer one k row at a time across all n columns, so every
//! row touches every panel of a buffer that is often 100+ MB, a byte at a time wherever a row
//! crosses a panel; `QSumB` then reads the whole buffer again to sum its columns. Together they
//! were ~47% of RMBG-1.4 quantized inference. Here each panel (r output pixels x all of k) is
//! filled while it sits in L1: r contiguous input bytes per k where the panel lies on one output
//! row, and the sums come from the same registers. The packed bytes are identical to tract's,
//! including the zeroes in K and lane padding, so tract's matmul consumes them unchanged.

use tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::nn::DataFormat;

use fill::fill_dispatch;

mod fill;
mod rewrite;
#[cfg(test)]
mod tests;

pub(super) use rewrite::UsePanelIm2Col;

/// How the matmul kernel wants its B operand laid out, panel by panel (`r` columns each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    /// `PackedFormat`: element (k, lane) at `k * r + lane`; `panel_len` includes tract's end
    /// padding record and alignment.
    KMajor,
    /// `PackedI8K4`: element (k, lane) at `(k / 4) * 4r + lane * 4 + k % 4`, k padded to 4.
    K4,
}

/// Everything the fill needs, resolved from the node's concrete input shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Geometry {
    batch: usize,
    groups: usize,
    channels_per_group: usize,
    input_h: usize,
    input_w: usize,
    output_h: usize,
    output_w: usize,
    stride_y: usize,
    stride_x: usize,
    pad_top: usize,
    pad_left: usize,
    /// Per k row: (input channel within the group, y offset, x offset) of the kernel tap.
    taps: Vec<(usize, usize, usize)>,
    layout: Layout,
    r: usize,
    panel_len: usize,
    alignment: usize,
}

impl Geometry {
    fn k(&self) -> usize {
        self.taps.len()
    }

    fn n(&self) -> usize {
        self.output_h * self.output_w
    }
}

/// Replaces a tract `Im2col` (and the `QSumB` reading it, when there is one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PanelIm2Col {
    geometry: Geometry,
    format: Box<dyn MMMInputFormat>,
    with_sums: bool,
}

/// Values the packing handles: the quantized path's i8 and the float path's f32.
trait Element: Copy + Default + Datum + Send + Sync {
    fn widen(self) -> i32;
}

impl Element for i8 {
    fn widen(self) -> i32 {
        self as i32
    }
}

impl Element for f32 {
    fn widen(self) -> i32 {
        0 // column sums exist only on the quantized path
    }
}

impl PanelIm2Col {
    /// The geometry of `node` (a tract `Im2col`), or None where this op does not apply.
    fn for_node(
        model: &TypedModel,
        node: &TypedNode,
        im2col: &Im2Col,
    ) -> TractResult<Option<Self>> {
        let spec = &im2col.pool_spec;
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = input.shape.as_concrete() else {
            return Ok(None);
        };
        let Some(pof) = node.outputs[0]
            .fact
            .exotic_fact()
            .and_then(|f| f.downcast_ref::<PackedExoticFact>())
        else {
            return Ok(None);
        };
        let (layout, r, panel_len, alignment) =
            if let Some(pf) = pof.format.downcast_ref::<PackedFormat>() {
                (
                    Layout::KMajor,
                    pf.r,
                    pf.single_panel_len(pof.k),
                    pf.alignment(),
                )
            } else if let Some(p4) = pof.format.downcast_ref::<PackedI8K4>() {
                (Layout::K4, p4.r, p4.single_panel_len(pof.k), p4.alignment())
            } else {
                return Ok(None);
            };
        let dt = input.datum_type.unquantized();
        let element_ok = match layout {
            Layout::KMajor => dt == i8::datum_type() || dt == f32::datum_type(),
            Layout::K4 => dt == i8::datum_type(),
        };
        let rank = spec.kernel_shape.len();
        if !element_ok
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || !(1..=2).contains(&rank)
            || !SUPPORTED_R.contains(&r)
            || node.inputs.len() > 2
        {
            return Ok(None);
        }
        let has_n = spec.data_format == DataFormat::NCHW;
        let batch = if has_n { shape[0] } else { 1 };
        let channels = shape[has_n as usize];
        let spatial = &shape[has_n as usize + 1..];
        let padding = spec.computed_padding(spatial);
        let (kernel, dilations, strides) = (&spec.kernel_shape, spec.dilations(), spec.strides());
        // 1-D convolutions are 2-D ones with a height of one.
        let pick = |v: &[usize], axis: usize, one: usize| {
            if rank == 2 {
                v[axis]
            } else if axis == 0 {
                one
            } else {
                v[0]
            }
        };
        let input_dims: Vec<usize> = spatial.to_vec();
        let output_dims: Vec<usize> = padding.iter().map(|p| p.convoluted).collect();
        let pads: Vec<usize> = padding.iter().map(|p| p.pad_before).collect();
        let (kernel_h, kernel_w) = (pick(kernel, 0, 1), pick(kernel, 1, 1));
        let (dilation_y, dilation_x) = (pick(&dilations, 0, 1), pick(&dilations, 1, 1));
        let channels_per_group = channels / im2col.group;
        let mut taps = Vec::with_capacity(channels_per_group * kernel_h * kernel_w);
        for c in 0..channels_per_group {
            for ky in 0..kernel_h {
                for kx in 0..kernel_w {
                    taps.push((c, ky * dilation_y, kx * dilation_x));
                }
            }
        }
        if taps.len() != pof.k || channels % im2col.group != 0 {
            return Ok(None);
        }
        let geometry = Geometry {
            batch,
            groups: im2col.group,
            channels_per_group,
            input_h: pick(&input_dims, 0, 1),
            input_w: pick(&input_dims, 1, 1),
            output_h: pick(&output_dims, 0, 1),
            output_w: pick(&output_dims, 1, 1),
            stride_y: pick(&strides, 0, 1),
            stride_x: pick(&strides, 1, 1),
            pad_top: pick(&pads, 0, 0),
            pad_left: pick(&pads, 1, 0),
            taps,
            layout,
            r,
            panel_len,
            alignment,
        };
        Ok(Some(PanelIm2Col {
            geometry,
            format: pof.format.clone(),
            with_sums: false,
        }))
    }

    /// What each (batch, group) packed matrix is: the kernel's format, k rows, n columns.
    fn exotic_fact(&self) -> PackedExoticFact {
        PackedExoticFact {
            format: self.format.clone(),
            k: self.geometry.k(),
            mn: self.geometry.n().to_dim(),
        }
    }

    /// QSumB's output: i32 `[batch, groups, n]`.
    fn sums_fact(&self) -> TypedFact {
        let g = &self.geometry;
        i32::fact([g.batch, g.groups, g.n()])
    }

    fn run<T: Element>(&self, input: &Tensor, pad: T) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        let n = g.n();
        let dt = input.datum_type();
        let x: &[T] = unsafe { input.as_slice_unchecked::<T>() };
        let plane = g.input_h * g.input_w;
        let image_len = g.groups * g.channels_per_group * plane;
        ensure!(
            x.len() == g.batch * image_len,
            "PanelIm2Col: unexpected input size"
        );
        let panels = n.div_ceil(g.r);
        let mut sums = if self.with_sums {
            vec![0i32; g.batch * g.groups * n]
        } else {
            vec![]
        };
        let mut values: TVec<Box<dyn MMMInputValue>> = tvec![];
        for b in 0..g.batch {
            for group in 0..g.groups {
                let mut data = unsafe {
                    Tensor::uninitialized_aligned_dt(dt, &[panels * g.panel_len], g.alignment)?
                };
                let packed: &mut [T] = unsafe { data.as_slice_mut_unchecked::<T>() };
                let start = b * image_len + group * g.channels_per_group * plane;
                let source = &x[start..start + g.channels_per_group * plane];
                let sums = if self.with_sums {
                    Some(&mut sums[(b * g.groups + group) * n..][..n])
                } else {
                    None
                };
                fill_dispatch(g, source, pad, packed, sums);
                values.push(Box::new(EagerPackedInput {
                    fact: self.exotic_fact(),
                    packed: data.into_blob()?.into(),
                    panel_bytes: if n > 0 {
                        g.panel_len * T::datum_type().size_of()
                    } else {
                        0
                    },
                    mn: n,
                }));
            }
        }
        let packed = PackedMatrixStorage::new_batched(&[g.batch, g.groups], values).into_tensor(dt);
        let mut outputs = tvec![packed.into_tvalue()];
        if self.with_sums {
            outputs.push(Tensor::from_shape(&[g.batch, g.groups, n], &sums)?.into_tvalue());
        }
        Ok(outputs)
    }
}

/// Panel widths with a monomorphised fill (every kernel tract ships for x86, ARM and wasm).
const SUPPORTED_R: [usize; 7] = [4, 8, 12, 16, 24, 32, 64];

impl Op for PanelIm2Col {
    fn name(&self) -> StaticName {
        "PanelIm2Col".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{:?} r={} k={} n={} sums={}",
            g.layout,
            g.r,
            g.k(),
            g.n(),
            self.with_sums
        )])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for PanelIm2Col {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        // Like tract: the padding value is the first element's bytes of the second input.
        let pad_bytes = inputs.get(1).map(|t| t.as_bytes());
        match input.datum_type().unquantized() {
            DatumType::I8 => {
                let pad = pad_bytes.map(|b| b[0] as i8).unwrap_or(0);
                self.run::<i8>(input, pad)
            }
            DatumType::F32 => {
                let pad = pad_bytes
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0.0);
                self.run::<f32>(input, pad)
            }
            dt => bail!("PanelIm2Col: unsupported input type {dt:?}"),
        }
    }
}

impl TypedOp for PanelIm2Col {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geometry;
        let packed = inputs[0]
            .datum_type
            .fact([g.batch, g.groups])
            .with_exotic_fact(self.exotic_fact());
        let mut facts = tvec![packed];
        if self.with_sums {
            facts.push(self.sums_fact());
        }
        Ok(facts)
    }
}
