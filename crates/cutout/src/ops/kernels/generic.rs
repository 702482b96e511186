//! The portable kernels: what each SIMD kernel computes, written plainly. They run wherever no
//! SIMD kernel does (natively, and the tails SIMD leaves), and the SIMD kernels are tested
//! against them in the same build.

use super::{WinogradTile, WINOGRAD_PANEL as PANEL, WINOGRAD_ROWS as ROWS};

/// Adding then subtracting 1.5 * 2^23 rounds an f32 to the nearest integer, ties to even,
/// exactly, for |v| < 2^22. Quantized values are within [-255, 255].
pub(crate) const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// `a` or `b`, whichever is larger (`b` when `a` is NaN): wasm's `f32x4.pmax`, lane by lane.
#[inline(always)]
pub(crate) fn pmax(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// The Winograd micro-kernel's definition: 4 output channels x 8 tiles of `Σ a·b` over
/// `groups` steps of `group` products, `a` as `[group][row][member]`, `b` as
/// `[group][tile][member]`.
// In wasm the SIMD kernels run and only the tests call these.
#[cfg_attr(all(wasm_simd, not(test)), allow(dead_code))]
fn winograd<T: Copy, S: Copy + Default>(
    (a, b): (&[T], &[T]),
    groups: usize,
    group: usize,
    multiply_add: impl Fn(S, T, T) -> S,
) -> WinogradTile<S> {
    let mut out = [[S::default(); PANEL]; ROWS];
    for g in 0..groups {
        for (r, row) in out.iter_mut().enumerate() {
            for (t, acc) in row.iter_mut().enumerate() {
                for e in 0..group {
                    let (x, y) = (
                        a[(g * ROWS + r) * group + e],
                        b[(g * PANEL + t) * group + e],
                    );
                    *acc = multiply_add(*acc, x, y);
                }
            }
        }
    }
    out
}

/// i16 pairs summed in i32 (`pmaddwd`'s products; the sums may wrap, the exact final one fits).
#[cfg_attr(all(wasm_simd, not(test)), allow(dead_code))]
pub(crate) fn winograd_i16(a: &[i16], b: &[i16], pairs: usize) -> WinogradTile<i32> {
    winograd((a, b), pairs, 2, |acc: i32, x, y| {
        acc.wrapping_add(x as i32 * y as i32)
    })
}

/// f32 products, each added in order (a multiply then an add).
#[cfg_attr(all(wasm_simd, not(test)), allow(dead_code))]
pub(crate) fn winograd_f32(a: &[f32], b: &[f32], k: usize) -> WinogradTile<f32> {
    winograd((a, b), k, 1, |acc: f32, x, y| acc + x * y)
}

const LANES: usize = 16;

/// The range of `xs` including zero, as ONNX's DynamicQuantizeLinear takes it; the lanes let the
/// compiler vectorise.
pub(crate) fn min_max_with_zero(xs: &[f32]) -> (f32, f32) {
    let mut lo = [0f32; LANES];
    let mut hi = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(chunk[i]);
            hi[i] = hi[i].max(chunk[i]);
        }
    }
    let mut lo = lo.iter().fold(0f32, |a, &b| a.min(b));
    let mut hi = hi.iter().fold(0f32, |a, &b| a.max(b));
    for &v in rest {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

/// `round_ties_even(x / scale) + zp`, clamped to u8, of each of `xs` into `out`.
pub(crate) fn quantize_u8(xs: &[f32], out: &mut [u8], scale: f32, zp: f32) {
    for (x, y) in xs.iter().zip(out.iter_mut()) {
        // Integer-valued sums are exact, so this equals round_ties_even(x / scale) + zp.
        let q = ((x / scale) + ROUNDING_MAGIC) - ROUNDING_MAGIC + zp;
        *y = q.clamp(0.0, 255.0) as u8;
    }
}

/// `out[i] = max(top[2i], top[2i+1], bottom[2i], bottom[2i+1])` for `i` from `first` on.
pub(crate) fn max_2x2_windows(top: &[f32], bottom: &[f32], out: &mut [f32], first: usize) {
    for (i, o) in out.iter_mut().enumerate().skip(first) {
        let (t, b) = (&top[2 * i..][..2], &bottom[2 * i..][..2]);
        *o = pmax(pmax(pmax(pmax(f32::MIN, t[0]), b[0]), t[1]), b[1]);
    }
}
