//! The Winograd micro-kernels: 4 output channels x 8 tiles, one broadcast kernel value per
//! row against two vectors of transformed inputs.

use core::arch::wasm32::*;

use super::super::{WinogradTile, WINOGRAD_PANEL as PANEL, WINOGRAD_ROWS as ROWS};

/// [`generic::winograd_i16`](super::super::generic::winograd_i16) with `i32x4.dot_i16x8_s`.
pub(crate) fn micro_kernel_i16(a: &[i16], b: &[i16], pairs: usize) -> WinogradTile<i32> {
    // Divided, not multiplied: a product could wrap.
    assert!(a.len() / (ROWS * 2) >= pairs && b.len() / (PANEL * 2) >= pairs);
    let mut acc = [i32x4_splat(0); 2 * ROWS];
    // Safety: the reads stay inside `a` and `b` (asserted above); v128 loads are unaligned.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for k in 0..pairs {
            let b0 = v128_load(b.add(k * 16) as *const v128);
            let b1 = v128_load(b.add(k * 16 + 8) as *const v128);
            for r in 0..ROWS {
                let ar = v128_load32_splat(a.add(k * 8 + 2 * r) as *const u32);
                acc[2 * r] = i32x4_add(acc[2 * r], i32x4_dot_i16x8(ar, b0));
                acc[2 * r + 1] = i32x4_add(acc[2 * r + 1], i32x4_dot_i16x8(ar, b1));
            }
        }
    }
    let mut out = [[0i32; PANEL]; ROWS];
    for (r, row) in out.iter_mut().enumerate() {
        // Safety: two v128 stores into an [i32; 8].
        unsafe {
            v128_store(row.as_mut_ptr() as *mut v128, acc[2 * r]);
            v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[2 * r + 1]);
        }
    }
    out
}

/// [`generic::winograd_f32`](super::super::generic::winograd_f32), fused under relaxed SIMD.
pub(crate) fn micro_kernel_f32(a: &[f32], b: &[f32], k: usize) -> WinogradTile<f32> {
    // Divided, not multiplied: a product could wrap.
    assert!(a.len() / ROWS >= k && b.len() / PANEL >= k);
    let mut acc = [f32x4_splat(0.0); 2 * ROWS];
    // Safety: the reads stay inside `a` and `b` (asserted above); v128 loads are unaligned.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for step in 0..k {
            let b0 = v128_load(b.add(step * PANEL) as *const v128);
            let b1 = v128_load(b.add(step * PANEL + 4) as *const v128);
            for r in 0..ROWS {
                let ar = v128_load32_splat(a.add(step * ROWS + r) as *const u32);
                #[cfg(target_feature = "relaxed-simd")]
                {
                    acc[2 * r] = f32x4_relaxed_madd(ar, b0, acc[2 * r]);
                    acc[2 * r + 1] = f32x4_relaxed_madd(ar, b1, acc[2 * r + 1]);
                }
                #[cfg(not(target_feature = "relaxed-simd"))]
                {
                    acc[2 * r] = f32x4_add(acc[2 * r], f32x4_mul(ar, b0));
                    acc[2 * r + 1] = f32x4_add(acc[2 * r + 1], f32x4_mul(ar, b1));
                }
            }
        }
    }
    let mut out = [[0f32; PANEL]; ROWS];
    for (r, row) in out.iter_mut().enumerate() {
        // Safety: two v128 stores into an [f32; 8].
        unsafe {
            v128_store(row.as_mut_ptr() as *mut v128, acc[2 * r]);
            v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[2 * r + 1]);
        }
    }
    out
}
