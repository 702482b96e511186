//! The quantizer's arithmetic 16 values at a time. LLVM vectorises the generic loop for wasm
//! but converts each float to u8 one lane at a time; here `i32x4.trunc_sat_f32x4` and two
//! saturating narrows do it, with the clamps as `pmax`/`pmin` (NaN, from a zero scale, goes to
//! 0 as `clamp(..) as u8` sends it).

use std::arch::wasm32::*;

use super::super::generic::ROUNDING_MAGIC;

/// min and max (with 0) of the largest multiple of 16 values; returns how many and them.
pub(crate) fn min_max(xs: &[f32]) -> (usize, (f32, f32)) {
    let mut lo = [f32x4_splat(0.0); 4];
    let mut hi = [f32x4_splat(0.0); 4];
    let chunks = xs.chunks_exact(16);
    let done = xs.len() - chunks.remainder().len();
    for chunk in chunks {
        for (i, (lo, hi)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            // Safety: 4 floats at 4i inside the 16-float chunk; v128 loads are unaligned.
            let v = unsafe { v128_load(chunk.as_ptr().add(4 * i) as *const v128) };
            // pmin(a, b) = b < a ? b : a: a NaN in b is ignored, like f32::min.
            *lo = f32x4_pmin(*lo, v);
            *hi = f32x4_pmax(*hi, v);
        }
    }
    let mut range = (0f32, 0f32);
    for (lo, hi) in lo.iter().zip(&hi) {
        for lane in 0..4 {
            let (l, h) = match lane {
                0 => (f32x4_extract_lane::<0>(*lo), f32x4_extract_lane::<0>(*hi)),
                1 => (f32x4_extract_lane::<1>(*lo), f32x4_extract_lane::<1>(*hi)),
                2 => (f32x4_extract_lane::<2>(*lo), f32x4_extract_lane::<2>(*hi)),
                _ => (f32x4_extract_lane::<3>(*lo), f32x4_extract_lane::<3>(*hi)),
            };
            range = (range.0.min(l), range.1.max(h));
        }
    }
    (done, range)
}

/// Quantizes the largest multiple of 16 values; returns how many.
pub(crate) fn quantize(xs: &[f32], out: &mut [u8], scale: f32, zp: f32) -> usize {
    let (scale, zp, magic) = (
        f32x4_splat(scale),
        f32x4_splat(zp),
        f32x4_splat(ROUNDING_MAGIC),
    );
    let (zero, top) = (f32x4_splat(0.0), f32x4_splat(255.0));
    let one = |x: v128| {
        let q = f32x4_add(f32x4_sub(f32x4_add(f32x4_div(x, scale), magic), magic), zp);
        i32x4_trunc_sat_f32x4(f32x4_pmin(f32x4_pmax(zero, q), top))
    };
    let mut done = 0;
    for (xs, out) in xs.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        // SAFETY: 16 f32 in, 16 bytes out; unaligned v128 loads and stores are allowed.
        unsafe {
            let x = xs.as_ptr() as *const v128;
            let lanes = [0, 1, 2, 3].map(|i| one(v128_load(x.add(i))));
            let low = u16x8_narrow_i32x4(lanes[0], lanes[1]);
            let high = u16x8_narrow_i32x4(lanes[2], lanes[3]);
            v128_store(out.as_mut_ptr() as *mut v128, u8x16_narrow_i16x8(low, high));
        }
        done += 16;
    }
    done
}
