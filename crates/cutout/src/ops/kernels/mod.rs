//! The inner loops of our ops, by target: [`generic`] (portable Rust, the definition every SIMD
//! kernel is tested against, always compiled), [`wasm32`] (SIMD128: the matrix-product kernels
//! tract selects, and the ops' inner loops) and `x86_64` (the f32 Winograd micro-kernel, and
//! which of tract's int8 kernels runs). The functions here pick the fastest one the build and
//! CPU have; the ops call only these (and [`has_avx2_fma`] to pick their own code's build).

pub(crate) mod generic;
#[cfg(wasm_simd)]
pub(crate) mod wasm32;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// The Winograd micro-kernel's tile: 4 output channels x 8 tiles of sums.
pub(crate) const WINOGRAD_ROWS: usize = 4;
pub(crate) const WINOGRAD_PANEL: usize = 8;
/// One micro-kernel result, `[output channel][tile]`.
pub(crate) type WinogradTile<S> = [[S; WINOGRAD_PANEL]; WINOGRAD_ROWS];

/// Registers our matrix-product kernels with tract's selection, before it selects any.
pub(crate) fn ensure_registered() {
    #[cfg(wasm_simd)]
    wasm32::ensure_registered();
}

/// `Σ a·b` of i16 pairs into i32, `a` as `[pair][row][2]`, `b` as `[pair][tile][2]`.
pub(crate) fn winograd_i16(a: &[i16], b: &[i16], pairs: usize) -> WinogradTile<i32> {
    #[cfg(wasm_simd)]
    {
        wasm32::winograd::micro_kernel_i16(a, b, pairs)
    }
    #[cfg(not(wasm_simd))]
    generic::winograd_i16(a, b, pairs)
}

/// Whether this build and CPU have a SIMD f32 Winograd micro-kernel (natively AVX2 with FMA).
/// With it Winograd beat tract's own float convolution natively (docs/performance.md; measured
/// on an AVX-512 CPU only, not on an AVX2-only one).
pub(crate) fn fast_float_winograd() -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return true;
    }
    cfg!(wasm_simd)
}

/// Whether this is an x86_64 CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    x86_64::winograd::available()
}

/// `Σ a·b` in f32, `a` as `[k][row]`, `b` as `[k][tile]`.
pub(crate) fn winograd_f32(a: &[f32], b: &[f32], k: usize) -> WinogradTile<f32> {
    #[cfg(wasm_simd)]
    {
        wasm32::winograd::micro_kernel_f32(a, b, k)
    }
    #[cfg(not(wasm_simd))]
    {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // Safety: the CPU has AVX2 and FMA (just checked).
            return unsafe { x86_64::winograd::micro_kernel_f32(a, b, k) };
        }
        generic::winograd_f32(a, b, k)
    }
}

/// The smallest and largest of `xs` and 0.
pub(crate) fn min_max_with_zero(xs: &[f32]) -> (f32, f32) {
    // Without relaxed SIMD LLVM keeps Rust's NaN-ignoring min/max scalar (f32x4.min propagates
    // NaN); pmin/pmax ignore it the same way.
    #[cfg(wasm_simd)]
    {
        let (done, (lo, hi)) = wasm32::quantize::min_max(xs);
        let (rest_lo, rest_hi) = generic::min_max_with_zero(&xs[done..]);
        (lo.min(rest_lo), hi.max(rest_hi))
    }
    #[cfg(not(wasm_simd))]
    generic::min_max_with_zero(xs)
}

/// `xs` quantized with `scale` and zero point `zp` into `out` (as long).
pub(crate) fn quantize_u8(xs: &[f32], out: &mut [u8], scale: f32, zp: f32) {
    #[cfg(wasm_simd)]
    let (xs, out) = {
        let done = wasm32::quantize::quantize(xs, out, scale, zp);
        (&xs[done..], &mut out[done..])
    };
    generic::quantize_u8(xs, out, scale, zp)
}

/// `out[i] = max(top[2i], top[2i+1], bottom[2i], bottom[2i+1])`, by [`generic::pmax`].
pub(crate) fn max_2x2_windows(top: &[f32], bottom: &[f32], out: &mut [f32]) {
    #[cfg(wasm_simd)]
    let done = wasm32::maxpool::max_2x2_windows(top, bottom, out);
    #[cfg(not(wasm_simd))]
    let done = 0;
    generic::max_2x2_windows(top, bottom, out, done)
}
