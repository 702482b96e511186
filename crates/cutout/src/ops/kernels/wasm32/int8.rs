//! i8 x i8 -> i32 matrix products (the quantized models), bit-exact.
//!
//! tract's wasm kernel multiplies with `i32x4.relaxed_dot_i8x16_i7x16_add`, splitting one
//! operand into two 7-bit halves so the result is the same on every engine: two dots per 16
//! products. Without a VNNI instruction the engine lowers each of those dots to five x86
//! instructions. This kernel widens both operands to i16 while loading (`v128.load8x8_s`) and
//! multiplies with `i32x4.dot_i16x8_s` (one `pmaddwd`), exact for any i8 inputs: two
//! instructions per 8 products, in the plain SIMD128 build as well as the relaxed one.
//!
//! The tile is 4x4, from tract's own K=4-inner packing (`PackedI8K4`, which PanelIm2Col fills)
//! on both sides. For 4 consecutive k, one load gives rows (or columns) `2p, 2p+1` as eight
//! i16 lanes `[x0 k0..k3, x1 k0..k3]`; `dot(a, b)` then sums `a_r0·b_c0` and `a_r1·b_c1` in pairs
//! of k, and `dot(a, swap(b))` the two crossed products, so 8 dots cover the 4x4 tile with 8
//! accumulators. Lanes are summed in pairs once per tile.

use std::arch::wasm32::*;
use std::sync::LazyLock;

use tract_linalg::isa::Arch;
use tract_linalg::mmm::{DynKernel, MatMatMul};
use tract_linalg::pack::{PackedI8K4, Packing};

use super::{run_spec, Tile};

const MR: usize = 4;
const NR: usize = 4;
/// What tract's selection and profiles call it.
pub const KERNEL_NAME: &str = "cutout_wasm_i8_dot16_4x4";
/// Index of the PackedI8K4 pair in the kernel's packings (0 is tract's default i32 pair).
const PACKING_I8: usize = 1;

static KERNEL: LazyLock<DynKernel<MR, NR, i32>> = LazyLock::new(|| {
    let mut kernel =
        DynKernel::<MR, NR, i32>::new(KERNEL_NAME, kernel, i32::packing(MR), i32::packing(NR))
            .with_packing(PackedI8K4::new(MR), PackedI8K4::new(NR))
            .with_store::<i8>();
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

pub(super) fn make_kernel() -> Box<dyn MatMatMul> {
    KERNEL.mmm()
}

/// # Safety
/// Called by tract's matmul driver with a spec it built for this kernel.
unsafe fn kernel(spec: &[tract_linalg::mmm::FusedKerSpec<i32>]) -> isize {
    // SAFETY: the driver's spec, as `run_spec` requires.
    unsafe { run_spec::<i32, MR, NR>(spec, product) }
}

unsafe fn product(
    tile: &mut Tile<i32, MR, NR>,
    k: usize,
    a: *const u8,
    b: *const u8,
    packing: usize,
) -> bool {
    // SAFETY: panels packed for this kernel's packing `packing`.
    unsafe {
        match packing {
            PACKING_I8 => add_i8_product(tile, k, a as *const i8, b as *const i8),
            0 => add_i32_product(tile, k, a as *const i32, b as *const i32),
            _ => return false,
        }
    }
    true
}

/// tile += A·B for PackedI8K4 panels: per block of 4 k, A holds `[r0 k0..k3, r1 .., r2 .., r3 ..]`
/// and B `[c0 k0..k3, c1 .., c2 .., c3 ..]`; the packer zero-pads k to a multiple of 4.
#[inline(never)]
unsafe fn add_i8_product(tile: &mut Tile<i32, MR, NR>, k: usize, a: *const i8, b: *const i8) {
    // straight[i][j]: lanes [r(2i)·c(2j), same, r(2i+1)·c(2j+1), same], k summed in pairs;
    // crossed[i][j]: [r(2i)·c(2j+1), same, r(2i+1)·c(2j), same].
    let zero = i32x4_splat(0);
    let mut straight = [[zero; 2]; 2];
    let mut crossed = [[zero; 2]; 2];
    for block in 0..k.div_ceil(4) {
        // SAFETY: each packed panel holds 16 bytes per block of 4 k.
        let (a_rows, b_cols) = unsafe {
            let a = a.add(block * 16);
            let b = b.add(block * 16);
            (
                [i16x8_load_extend_i8x8(a), i16x8_load_extend_i8x8(a.add(8))],
                [i16x8_load_extend_i8x8(b), i16x8_load_extend_i8x8(b.add(8))],
            )
        };
        let b_swapped = b_cols.map(|b| i32x4_shuffle::<2, 3, 0, 1>(b, b));
        for i in 0..2 {
            for j in 0..2 {
                straight[i][j] = i32x4_add(straight[i][j], i32x4_dot_i16x8(a_rows[i], b_cols[j]));
                crossed[i][j] = i32x4_add(crossed[i][j], i32x4_dot_i16x8(a_rows[i], b_swapped[j]));
            }
        }
    }
    for i in 0..2 {
        for j in 0..2 {
            let s = lanes(straight[i][j]);
            let x = lanes(crossed[i][j]);
            let (r0, r1, c0, c1) = (2 * i, 2 * i + 1, 2 * j, 2 * j + 1);
            tile[r0][c0] = tile[r0][c0].wrapping_add(s[0].wrapping_add(s[1]));
            tile[r1][c1] = tile[r1][c1].wrapping_add(s[2].wrapping_add(s[3]));
            tile[r0][c1] = tile[r0][c1].wrapping_add(x[0].wrapping_add(x[1]));
            tile[r1][c0] = tile[r1][c0].wrapping_add(x[2].wrapping_add(x[3]));
        }
    }
}

fn lanes(v: v128) -> [i32; 4] {
    [
        i32x4_extract_lane::<0>(v),
        i32x4_extract_lane::<1>(v),
        i32x4_extract_lane::<2>(v),
        i32x4_extract_lane::<3>(v),
    ]
}

/// tile += A·B for tract's default i32 packing (k-major, MR / NR values per k); rare.
unsafe fn add_i32_product(tile: &mut Tile<i32, MR, NR>, k: usize, a: *const i32, b: *const i32) {
    for kk in 0..k {
        // SAFETY: k-major panels hold MR (A) and NR (B) values per k.
        let (a_col, b_row) = unsafe {
            (
                std::slice::from_raw_parts(a.add(kk * MR), MR),
                std::slice::from_raw_parts(b.add(kk * NR), NR),
            )
        };
        for (row, values) in tile.iter_mut().enumerate() {
            for (col, value) in values.iter_mut().enumerate() {
                *value = value.wrapping_add(a_col[row].wrapping_mul(b_row[col]));
            }
        }
    }
}
