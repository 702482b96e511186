//! 2x2, stride-2 max-pooling of f32 planes (every MaxPool of IS-Net and RMBG-1.4), split over
//! the threads, four outputs per SIMD step in wasm.
//!
//! tract 0.23's 2x2 path vectorises stride 1 only; at stride 2 it takes each output through a
//! scalar loop with four bounds checks: 7% of quantized IS-Net in Chromium (0.27 s). The
//! result is the same: the largest tap of each window (`f32::MIN` where a window has none),
//! padding taps skipped.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::kernels::{self, generic::pmax};

/// Max over 2x2 windows at stride 2 of the last two axes of an f32 tensor (channels first).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2x2 {
    /// Padding before the first row and column (ceil mode pads only after).
    pad_top: usize,
    pad_left: usize,
    out_h: usize,
    out_w: usize,
}

impl MaxPool2x2 {
    /// Pools one `h` x `w` plane into `out` (`out_h` x `out_w`).
    fn pool_plane(&self, plane: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
        let input_row = |oy: usize, dy: usize| {
            (2 * oy + dy)
                .checked_sub(self.pad_top)
                .filter(|&iy| iy < h)
                .map(|iy| &plane[iy * w..][..w])
        };
        for (oy, out_row) in out.chunks_exact_mut(self.out_w).enumerate() {
            match (input_row(oy, 0), input_row(oy, 1)) {
                (Some(top), Some(bottom)) => self.pool_rows(top, bottom, out_row),
                (Some(row), None) | (None, Some(row)) => self.pool_rows(row, row, out_row),
                (None, None) => out_row.fill(f32::MIN),
            }
        }
    }

    /// One output row from the (one or two) input rows under it.
    fn pool_rows(&self, top: &[f32], bottom: &[f32], out: &mut [f32]) {
        let w = top.len();
        // Outputs whose two columns are both inside the row: 2*ox - pad_left >= 0 and
        // 2*ox + 1 - pad_left < w.
        let first_full = self.pad_left.div_ceil(2).min(out.len());
        let end_full = ((w + self.pad_left) / 2).clamp(first_full, out.len());
        let column =
            |ox: usize, dx: usize| (2 * ox + dx).checked_sub(self.pad_left).filter(|&x| x < w);
        let window = |ox: usize| {
            [column(ox, 0), column(ox, 1)]
                .into_iter()
                .flatten()
                .fold(f32::MIN, |m, x| pmax(pmax(m, top[x]), bottom[x]))
        };
        for ox in (0..first_full).chain(end_full..out.len()) {
            out[ox] = window(ox);
        }
        let start = 2 * first_full - self.pad_left;
        let full = &mut out[first_full..end_full];
        let (top, bottom) = (
            &top[start..][..2 * full.len()],
            &bottom[start..][..2 * full.len()],
        );
        kernels::max_2x2_windows(top, bottom, full);
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape();
        ensure!(
            shape.len() >= 2,
            "MaxPool2x2 expects [.., H, W], got {shape:?}"
        );
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let mut out_shape: TVec<usize> = shape.into();
        let rank = out_shape.len();
        out_shape[rank - 2] = self.out_h;
        out_shape[rank - 1] = self.out_w;
        let data = input.try_as_plain_ram()?;
        let planes = data.as_slice::<f32>()?;
        let plane_out = self.out_h * self.out_w;
        // SAFETY: every output value is written: each plane's rows in full, or the fill.
        let (output, ()) = unsafe {
            super::filled_tensor(&out_shape, |out: &mut [f32]| {
                if h * w == 0 || plane_out == 0 {
                    out.fill(f32::MIN);
                } else {
                    super::parallel::zip_chunks_indexed(
                        (planes, h * w),
                        (out, plane_out),
                        |_, plane, out| self.pool_plane(plane, (h, w), out),
                    );
                }
            })?
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        let rank = shape.len();
        ensure!(rank >= 2, "MaxPool2x2 expects [.., H, W]");
        shape[rank - 2] = self.out_h.to_dim();
        shape[rank - 1] = self.out_w.to_dim();
        Ok(tvec!(f32::fact(shape)))
    }
}

/// Replaces every 2x2, stride-2, undilated channels-first f32 MaxPool of fixed shape (without
/// the index output) with [`MaxPool2x2`]. Run on a decluttered model, before codegen.
fn use_maxpool_2x2(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_nodes(model, |model, node| {
        let Some(pool) = node.op_as::<MaxPool>() else {
            return Ok(None);
        };
        let spec = &pool.pool_spec;
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = input.shape.as_concrete() else {
            return Ok(None);
        };
        if pool.with_index_outputs.is_some()
            || input.datum_type != f32::datum_type()
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || spec.kernel_shape[..] != [2, 2]
            || spec.strides()[..] != [2, 2]
            || spec.dilations()[..] != [1, 1]
            || spec.input_channels != spec.output_channels
            || shape.len() < 2
        {
            return Ok(None);
        }
        let hw = &shape[shape.len() - 2..];
        let padding = spec.computed_padding(hw);
        Ok(Some(MaxPool2x2 {
            pad_top: padding[0].pad_before,
            pad_left: padding[1].pad_before,
            out_h: padding[0].convoluted,
            out_w: padding[1].convoluted,
        }))
    })
}

rewrite_transform!(
    /// [`use_maxpool_2x2`], a step of the load before codegen.
    UseMaxPool2x2,
    "cutout-maxpool-2x2",
    use_maxpool_2x2
);

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// tract's MaxPool (with the index output, which takes its generic, reference walk) and ours
    /// on the same input.
    fn assert_same_as_tracts(shape: [usize; 4], padding: PaddingSpec) {
        let channels = shape[1];
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec![2, 2],
            padding,
            None,
            Some(tvec![2, 2]),
            channels,
            channels,
        );
        let input = tract_ndarray::Array4::from_shape_fn(shape, |(n, c, y, x)| {
            ((n * 31 + c * 7 + y * 13 + x * 3) % 97) as f32 * 0.25 - 12.0
        })
        .into_tensor();
        let reference = MaxPool::new(spec.clone(), Some(DatumType::I32))
            .eval(
                &EvalContext::out_of_plan(),
                tvec!(input.clone().into_tvalue()),
            )
            .unwrap();

        let mut model = TypedModel::default();
        let source = model.add_source("input", f32::fact(shape)).unwrap();
        let pooled = model
            .wire_node("pool", MaxPool::new(spec, None), &[source])
            .unwrap();
        model.select_output_outlets(&pooled).unwrap();
        assert_eq!(use_maxpool_2x2(&mut model).unwrap(), 1, "{shape:?}");
        let ours = model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(ours[0].shape(), reference[0].shape(), "{shape:?}");
        assert_eq!(*ours[0], *reference[0], "{shape:?}");
    }

    #[test]
    fn matches_tract_on_even_and_odd_sizes_with_ceil_mode_padding() {
        for shape in [
            [1, 3, 8, 8],
            [1, 2, 9, 17],
            [2, 5, 33, 31],
            [1, 1, 1, 1],
            [1, 4, 2, 40],
        ] {
            assert_same_as_tracts(shape, PaddingSpec::Valid);
            // ONNX ceil_mode = 1 (IS-Net): the odd last row / column is a window of its own.
            assert_same_as_tracts(
                shape,
                PaddingSpec::ExplicitOnnxPool(tvec![0, 0], tvec![0, 0], true),
            );
        }
    }

    #[test]
    fn padding_before_is_skipped() {
        assert_same_as_tracts(
            [1, 2, 7, 10],
            PaddingSpec::ExplicitOnnxPool(tvec![1, 1], tvec![1, 0], false),
        );
    }
}
