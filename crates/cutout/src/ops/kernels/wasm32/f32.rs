//! f32 matrix products (the fp16 models run in f32), 4x8.
//!
//! tract's wasm GEMM kernel is 8x8: 16 accumulator vectors, plus the A and B vectors and eight
//! lane broadcasts, which do not fit the 16 vector registers V8 allocates on x86, so the loop
//! spills. Here 4 rows x 8 columns keep 8 accumulators, the two B vectors of a k step and one
//! broadcast A value (`v128.load32_splat`, a single instruction) in registers. Each output sums
//! its k products in order with the same multiply-add as tract's kernels (fused under relaxed
//! SIMD, a multiply then an add without), so the results are tract's.
//!
//! Packing: tract's k-major f32 panels, 4 rows of A and 8 columns of B per k.

use std::arch::wasm32::*;
use std::sync::LazyLock;

use tract_linalg::isa::Arch;
use tract_linalg::mmm::{DynKernel, FusedKerSpec, MatMatMul};
use tract_linalg::pack::Packing;

use super::{run_spec, Tile};

const MR: usize = 4;
const NR: usize = 8;
/// What tract's selection and profiles call it.
pub const KERNEL_NAME: &str = "cutout_wasm_f32_4x8";

static KERNEL: LazyLock<DynKernel<MR, NR, f32>> = LazyLock::new(|| {
    let mut kernel =
        DynKernel::<MR, NR, f32>::new(KERNEL_NAME, kernel, f32::packing(MR), f32::packing(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

pub(super) fn make_kernel() -> Box<dyn MatMatMul> {
    KERNEL.mmm()
}

/// # Safety
/// Called by tract's matmul driver with a spec it built for this kernel.
unsafe fn kernel(spec: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: the driver's spec, as `run_spec` requires.
    unsafe { run_spec::<f32, MR, NR>(spec, product) }
}

/// `acc + a * b`, as tract's wasm kernels compute it.
#[inline(always)]
fn madd(acc: v128, a: v128, b: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}

/// tile += A·B over k-major panels: A holds 4 values per k, B 8.
unsafe fn product(
    tile: &mut Tile<f32, MR, NR>,
    k: usize,
    a: *const u8,
    b: *const u8,
    packing: usize,
) -> bool {
    if packing != 0 {
        return false;
    }
    let (a, b) = (a as *const f32, b as *const f32);
    // SAFETY: the tile rows are 8 f32 (two v128, unaligned access is fine); each panel holds
    // MR (A) and NR (B) f32 per k.
    unsafe {
        let mut acc: [[v128; 2]; MR] = [[f32x4_splat(0.0); 2]; MR];
        for (row, values) in acc.iter_mut().enumerate() {
            let p = tile[row].as_ptr() as *const v128;
            *values = [v128_load(p), v128_load(p.add(1))];
        }
        for step in 0..k {
            let b_step = b.add(step * NR) as *const v128;
            let (b_low, b_high) = (v128_load(b_step), v128_load(b_step.add(1)));
            let a_step = a.add(step * MR);
            for (row, values) in acc.iter_mut().enumerate() {
                let a_value = v128_load32_splat(a_step.add(row) as *const u32);
                values[0] = madd(values[0], a_value, b_low);
                values[1] = madd(values[1], a_value, b_high);
            }
        }
        for (row, values) in acc.iter().enumerate() {
            let p = tile[row].as_mut_ptr() as *mut v128;
            v128_store(p, values[0]);
            v128_store(p.add(1), values[1]);
        }
    }
    true
}
