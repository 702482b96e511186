//! x86_64: the f32 Winograd micro-kernel with AVX2 and FMA ([`winograd`]), and which of
//! tract's int8 matrix kernels runs on CPUs without VNNI (AVX2 only).
//!
//! On those tract picks `avx2_mmm_i32_8x8`, which on an AMD EPYC (Zen 3, AVX2, no AVX-512) ran the
//! quantized model's products at ~0.5 GMAC/s: 18.7 s for one 64x576x262144 product. Its
//! 128-bit sibling `avx_mmm_i32_8x4` (same i8 packing and epilogue, exact integer sums) took
//! 1.3 s for the same product. This tier prefers it wherever tract would otherwise fall back
//! to the AVX2 kernel; CPUs with AVX-512 VNNI, AVX-VNNI or AMX keep tract's choice.

pub(crate) mod winograd;

use tract_linalg::isa::{Arch, Isa, IsaSet};
use tract_linalg::mmm::{Query, Suitable};
use tract_linalg::mmm_tiers::MmmTier;
use tract_onnx::prelude::DatumType;

const KERNEL_NAME: &str = "avx_mmm_i32_8x4";

fn without_vnni(isa: &IsaSet) -> bool {
    isa.has(Isa::X86_64Avx)
        && !isa.has(Isa::X86_64Avx512Vnni)
        && !isa.has(Isa::X86_64AvxVnni)
        && !isa.has(Isa::X86_64AmxInt8)
}

/// The 128-bit int8 kernel for every int8 product but the matrix-vector ones (n = 1).
fn prefer_avx_int8(
    _isa: &IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    (accumulator == DatumType::I32 && query.n != Some(1)).then_some(KERNEL_NAME)
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::X86_64),
        // Above every tier of tract's, but it only speaks where none of the VNNI ones apply.
        precedence: 100,
        name: "cutout-avx-int8",
        applies: without_vnni,
        preferred: prefer_avx_int8,
    }
}
