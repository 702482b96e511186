//! The f32 Winograd micro-kernel with AVX2 and FMA: 4 output channels x 8 tiles, one
//! broadcast kernel value per row against one vector of transformed inputs. Even and odd steps
//! go to separate accumulators, so that eight fused multiply-adds are in flight rather than four
//! (each waits for the previous one on its accumulator).

use std::arch::x86_64::*;

use super::super::{WinogradTile, WINOGRAD_PANEL as PANEL, WINOGRAD_ROWS as ROWS};

/// Whether this CPU runs [`micro_kernel_f32`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// [`generic::winograd_f32`](super::super::generic::winograd_f32), fused, in two interleaved
/// sets of accumulators (even and odd steps) added at the end.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn micro_kernel_f32(a: &[f32], b: &[f32], k: usize) -> WinogradTile<f32> {
    // Divided, not multiplied: a product could wrap.
    assert!(a.len() / ROWS >= k && b.len() / PANEL >= k);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut even = [_mm256_setzero_ps(); ROWS];
    let mut odd = [_mm256_setzero_ps(); ROWS];
    // Safety: every read is inside `a` and `b` (asserted above); the loads are unaligned.
    unsafe {
        let mut step = 0;
        while step + 2 <= k {
            let b0 = _mm256_loadu_ps(b.add(step * PANEL));
            let b1 = _mm256_loadu_ps(b.add((step + 1) * PANEL));
            for r in 0..ROWS {
                let a0 = _mm256_broadcast_ss(&*a.add(step * ROWS + r));
                let a1 = _mm256_broadcast_ss(&*a.add((step + 1) * ROWS + r));
                even[r] = _mm256_fmadd_ps(a0, b0, even[r]);
                odd[r] = _mm256_fmadd_ps(a1, b1, odd[r]);
            }
            step += 2;
        }
        if step < k {
            let b0 = _mm256_loadu_ps(b.add(step * PANEL));
            for (r, sum) in even.iter_mut().enumerate() {
                *sum = _mm256_fmadd_ps(_mm256_broadcast_ss(&*a.add(step * ROWS + r)), b0, *sum);
            }
        }
    }
    let mut out = [[0f32; PANEL]; ROWS];
    for (r, row) in out.iter_mut().enumerate() {
        // Safety: one 8-lane store into an [f32; 8].
        unsafe { _mm256_storeu_ps(row.as_mut_ptr(), _mm256_add_ps(even[r], odd[r])) };
    }
    out
}

#[cfg(test)]
mod tests {
    use cutout_testkit::Rng;

    use super::super::super::generic;
    use super::*;

    /// Against the generic kernel for every step count up to 40 (odd counts end on one step),
    /// to rounding: fused multiply-adds, in two sets of accumulators.
    #[test]
    fn computes_what_the_generic_kernel_does() {
        if !available() {
            eprintln!("SKIPPED: this CPU has no AVX2 and FMA");
            return;
        }
        let mut rng = Rng::new(0x5eed_0002);
        for steps in 0..=40 {
            let a: Vec<f32> = (0..steps * ROWS).map(|_| rng.unit()).collect();
            let b: Vec<f32> = (0..steps * PANEL).map(|_| rng.unit()).collect();
            // Safety: `available` said the CPU has AVX2 and FMA.
            let ours = unsafe { micro_kernel_f32(&a, &b, steps) };
            let expected = generic::winograd_f32(&a, &b, steps);
            for (ours, expected) in ours.iter().flatten().zip(expected.iter().flatten()) {
                assert!(
                    (ours - expected).abs() <= 1e-5 * steps as f32,
                    "{steps} steps: {ours} vs {expected}"
                );
            }
        }
    }
}
