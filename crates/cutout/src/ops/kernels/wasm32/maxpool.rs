//! 2x2, stride-2 max-pooling four outputs at a time: both rows' maxima, then the even and odd
//! lanes' (`pmax`, as the generic kernel, so NaNs go the same way).

use core::arch::wasm32::*;

/// `out[i] = max(top[2i], top[2i+1], bottom[2i], bottom[2i+1])` for the largest multiple of 4
/// outputs; returns how many.
pub(crate) fn max_2x2_windows(top: &[f32], bottom: &[f32], out: &mut [f32]) -> usize {
    assert!(top.len() >= 2 * out.len() && bottom.len() >= 2 * out.len());
    let steps = out.len() / 4;
    for i in 0..steps {
        // SAFETY: 8 floats from 8*i in both rows and 4 from 4*i in out are in bounds
        // (top and bottom hold 2 * out.len()); unaligned v128 loads and stores are allowed.
        unsafe {
            let (t, b) = (top.as_ptr().add(8 * i), bottom.as_ptr().add(8 * i));
            let low = f32x4_pmax(v128_load(t as *const v128), v128_load(b as *const v128));
            let high = f32x4_pmax(
                v128_load(t.add(4) as *const v128),
                v128_load(b.add(4) as *const v128),
            );
            let even = i32x4_shuffle::<0, 2, 4, 6>(low, high);
            let odd = i32x4_shuffle::<1, 3, 5, 7>(low, high);
            v128_store(
                out.as_mut_ptr().add(4 * i) as *mut v128,
                f32x4_pmax(even, odd),
            );
        }
    }
    4 * steps
}
