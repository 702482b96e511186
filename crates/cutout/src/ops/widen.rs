//! fp16 weights widened to f32 at load, split over the threads and vectorisable.
//!
//! tract's `FloatPrecisionTranslator` leaves each fp16 constant behind a `Cast` to f32, which
//! declutter then evaluates a value at a time on one thread (the `half` crate converts in
//! software where the CPU has no f16 instructions, as in wasm): 0.37 s of the fp16 IS-Net's
//! second visit in Chromium. Here the casts of constants are folded first, with the same bits.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::konst::Const;

/// The f32 with the value of the f16 with bits `h` (NaNs quieted, payload kept, as `half` does).
#[inline(always)]
fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7fff) << 13;
    let bits = if h & 0x7c00 == 0x7c00 {
        // Infinity (no mantissa) or NaN.
        let mantissa = magnitude & 0x007f_e000;
        0x7f80_0000 | mantissa | if mantissa != 0 { 0x0040_0000 } else { 0 }
    } else {
        // The f16's exponent and mantissa bits as an f32 are its value times 2^-112, for
        // normal and subnormal halves alike; the product is exact.
        (f32::from_bits(magnitude) * f32::from_bits(0x7780_0000)).to_bits()
    };
    f32::from_bits(sign | bits)
}

/// Elements per piece when the work is split over threads.
const CHUNK: usize = 1 << 16;

/// The f16 tensor `halves` as f32.
fn widen(halves: &Tensor) -> TractResult<Tensor> {
    let values = halves.try_as_plain_ram()?;
    let values = values.as_slice::<f16>()?;
    // SAFETY: the pieces of `out` cover it, and each is written in full.
    let (wide, ()) = unsafe {
        super::filled_tensor(halves.shape(), |out: &mut [f32]| {
            super::parallel::zip_chunks(values, out, CHUNK, |halves, out| {
                for (o, h) in out.iter_mut().zip(halves) {
                    *o = f16_bits_to_f32(h.to_bits());
                }
            })
        })?
    };
    Ok(wide)
}

/// Replaces every `Cast` to f32 of an f16 constant by the widened constant. Run after
/// `FloatPrecisionTranslator`, before declutter. Returns how many it replaced.
pub fn fold_f16_constant_casts(model: &mut TypedModel) -> TractResult<usize> {
    let mut folded = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some(cast) = node.op_as::<Cast>() else {
            continue;
        };
        let Some(konst) = model.node(node.inputs[0].node).op_as::<Const>() else {
            continue;
        };
        let tensor = konst.val();
        if cast.to != f32::datum_type()
            || tensor.datum_type() != f16::datum_type()
            || !tensor.is_plain_ram()
        {
            continue;
        }
        let wide = widen(tensor)?;
        let mut patch = TypedModelPatch::default();
        let wire = patch.add_const(format!("{}.f32", node.name), wide)?;
        patch.shunt_outside(model, node.id.into(), wire)?;
        crate::optimise::apply(patch, model)?;
        folded += 1;
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_half_widens_to_the_same_bits_as_the_half_crate() {
        for bits in 0..=u16::MAX {
            let half = f16::from_bits(bits);
            assert_eq!(
                f16_bits_to_f32(bits).to_bits(),
                half.to_f32().to_bits(),
                "f16 bits {bits:#06x}"
            );
        }
    }

    #[test]
    fn casts_of_f16_constants_become_f32_constants() {
        let mut model = TypedModel::default();
        // 16 values or more: tract folds smaller constants as it wires them.
        let source = model.add_source("input", f32::fact([32])).unwrap();
        let halves: Vec<f16> = [1.5f32, -0.0, 65504.0, 6e-8]
            .iter()
            .cycle()
            .take(32)
            .map(|&v| f16::from_f32(v))
            .collect();
        let weights = model.add_const("weights", tensor1(&halves)).unwrap();
        let wide = model
            .wire_node(
                "widen",
                Cast {
                    to: f32::datum_type(),
                },
                &[weights],
            )
            .unwrap();
        let sum = model
            .wire_node(
                "sum",
                tract_onnx::tract_core::ops::math::add(),
                &[source, wide[0]],
            )
            .unwrap();
        model.select_output_outlets(&sum).unwrap();
        let input = tensor1(&(0..32).map(|v| v as f32).collect::<Vec<_>>());
        let before = model
            .clone()
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into_tvalue()))
            .unwrap();

        assert_eq!(fold_f16_constant_casts(&mut model).unwrap(), 1);
        model.compact().unwrap();
        assert!(!model.nodes().iter().any(|n| n.op_is::<Cast>()));
        let after = model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(*before[0], *after[0]);
    }
}
