//! Bilinear `Resize` (ONNX, `half_pixel`) computed exactly as onnxruntime computes it.
//!
//! tract resamples one axis at a time; onnxruntime sums the four taps in one expression,
//! `((w11 x11 + w21 x21) + w12 x12) + w22 x22`. The results differ by about one ulp, which is
//! harmless in a float graph but not in a dynamically quantised one (RMBG-1.4 / IS-Net quint8):
//! each `DynamicQuantizeLinear` turns a one-ulp difference at a rounding boundary into a whole
//! quantisation step, and 119 such layers amplify it into masks that differ by 4-8 levels on
//! average from the reference pipeline. Summing in onnxruntime's order makes the two agree
//! bit for bit up to the final sigmoid.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator, Resize};

/// Bilinear, half-pixel resize of the last two axes of an `[N, C, H, W]` f32 tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrtBilinearResize {
    out_h: usize,
    out_w: usize,
    /// Scale factors as f32 bit patterns (so the op can be `Eq + Hash`).
    scale_h_bits: u32,
    scale_w_bits: u32,
}

/// Per-output-coordinate source indices and distances, as onnxruntime's `SetupUpsampleBilinear`.
struct Taps {
    i1: Vec<usize>,
    i2: Vec<usize>,
    /// Weight of `i2` (distance to `i1`) and of `i1` (distance to `i2`).
    d1: Vec<f32>,
    d2: Vec<f32>,
}

fn taps(in_len: usize, out_len: usize, scale: f32) -> Taps {
    let mut t = Taps {
        i1: vec![],
        i2: vec![],
        d1: vec![],
        d2: vec![],
    };
    let last = (in_len - 1) as f32;
    for x in 0..out_len {
        let original = if scale == 1.0 {
            x as f32
        } else {
            (x as f32 + 0.5) / scale - 0.5
        };
        let in_x = original.min(last).max(0.0);
        let i1 = (in_x as usize).min(in_len - 1);
        let i2 = (i1 + 1).min(in_len - 1);
        let (d1, d2) = if i1 == i2 {
            (0.5, 0.5)
        } else {
            ((in_x - i1 as f32).abs(), (in_x - i2 as f32).abs())
        };
        t.i1.push(i1);
        t.i2.push(i2);
        t.d1.push(d1);
        t.d2.push(d2);
    }
    t
}

impl OrtBilinearResize {
    fn resize(&self, input: &[f32], shape: &[usize], output: &mut [f32]) {
        let (planes, in_h, in_w) = (shape[0] * shape[1], shape[2], shape[3]);
        let ty = taps(in_h, self.out_h, f32::from_bits(self.scale_h_bits));
        let tx = taps(in_w, self.out_w, f32::from_bits(self.scale_w_bits));
        let (out_h, out_w) = (self.out_h, self.out_w);
        let input = &input[..planes * in_h * in_w];
        let output = &mut output[..planes * out_h * out_w];
        super::parallel::zip_chunks_indexed(
            (input, in_h * in_w),
            (output, out_h * out_w),
            |_, src, dst| {
                for y in 0..out_h {
                    let row1 = &src[ty.i1[y] * in_w..][..in_w];
                    let row2 = &src[ty.i2[y] * in_w..][..in_w];
                    let (dy1, dy2) = (ty.d1[y], ty.d2[y]);
                    let out_row = &mut dst[y * out_w..][..out_w];
                    for (x, out) in out_row.iter_mut().enumerate() {
                        let (x1, x2, dx1, dx2) = (tx.i1[x], tx.i2[x], tx.d1[x], tx.d2[x]);
                        *out = dx2 * dy2 * row1[x1]
                            + dx1 * dy2 * row1[x2]
                            + dx2 * dy1 * row2[x1]
                            + dx1 * dy1 * row2[x2];
                    }
                }
            },
        );
    }
}

impl Op for OrtBilinearResize {
    fn name(&self) -> StaticName {
        "OrtBilinearResize".into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for OrtBilinearResize {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape();
        ensure!(
            shape.len() == 4,
            "OrtBilinearResize expects [N, C, H, W], got {shape:?}"
        );
        let data = input.try_as_plain_ram()?;
        let data = data.as_slice::<f32>()?;
        let out_shape = [shape[0], shape[1], self.out_h, self.out_w];
        // SAFETY: `resize` writes every output value.
        let (output, ()) =
            unsafe { super::filled_tensor(&out_shape, |out| self.resize(data, shape, out))? };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for OrtBilinearResize {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(
            shape.rank() == 4,
            "OrtBilinearResize expects a rank-4 input"
        );
        Ok(tvec!(f32::fact([
            shape[0].clone(),
            shape[1].clone(),
            self.out_h.to_dim(),
            self.out_w.to_dim()
        ])))
    }
}

/// Replaces every bilinear half-pixel resize of the spatial axes of an NCHW f32 tensor with
/// [`OrtBilinearResize`]. Run on a decluttered model, before codegen. Returns how many it replaced.
fn use_ort_bilinear(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_nodes(model, |model, node| {
        let Some(resize) = node.op_as::<Resize>() else {
            return Ok(None);
        };
        if resize.interpolator != Interpolator::Linear
            || resize.coord_transformer != CoordTransformer::HalfPixel
        {
            return Ok(None);
        }
        let input_fact = model.outlet_fact(node.inputs[0])?;
        let (Some(in_shape), Some(out_shape)) = (
            input_fact.shape.as_concrete(),
            node.outputs[0].fact.shape.as_concrete(),
        ) else {
            return Ok(None);
        };
        if input_fact.datum_type != f32::datum_type()
            || in_shape.len() != 4
            || in_shape[..2] != out_shape[..2]
            || in_shape[2..].contains(&0)
        {
            return Ok(None);
        }
        // onnxruntime uses the scales input when there is one, else output / input sizes.
        let const_scales = resize
            .optional_scales_input
            .and_then(|ix| model.outlet_fact(node.inputs[ix]).ok()?.konst.clone())
            .filter(|t| t.len() == 4)
            .and_then(|t| {
                t.cast_to::<f32>()
                    .ok()?
                    .try_as_plain_ram()
                    .ok()?
                    .as_slice::<f32>()
                    .ok()
                    .map(|s| s.to_vec())
            });
        let scale = |axis: usize| match &const_scales {
            Some(s) => s[axis],
            None => out_shape[axis] as f32 / in_shape[axis] as f32,
        };
        Ok(Some(OrtBilinearResize {
            out_h: out_shape[2],
            out_w: out_shape[3],
            scale_h_bits: scale(2).to_bits(),
            scale_w_bits: scale(3).to_bits(),
        }))
    })
}

rewrite_transform!(
    /// [`use_ort_bilinear`], a step of the load before codegen.
    UseOrtBilinear,
    "cutout-ort-bilinear",
    use_ort_bilinear
);

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn upsampling_by_two_matches_onnxruntime_values() {
        // onnxruntime, Resize(mode="linear", coordinate_transformation_mode="half_pixel"),
        // [[1, 2], [3, 4]] -> 4x4.
        let op = OrtBilinearResize {
            out_h: 4,
            out_w: 4,
            scale_h_bits: 2f32.to_bits(),
            scale_w_bits: 2f32.to_bits(),
        };
        let mut out = vec![0.0; 16];
        op.resize(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2], &mut out);
        let expected = [
            1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn downsampling_and_one_pixel_edges() {
        let op = OrtBilinearResize {
            out_h: 1,
            out_w: 2,
            scale_h_bits: 0.5f32.to_bits(),
            scale_w_bits: 0.5f32.to_bits(),
        };
        let input: Vec<f32> = (0..8).map(|v| v as f32).collect(); // 2x4
        let mut out = vec![0.0; 2];
        op.resize(&input, &[1, 1, 2, 4], &mut out);
        // Source centres: y = 0.5, x = 0.5 and 2.5.
        assert_eq!(out, vec![2.5, 4.5]);
    }
}
