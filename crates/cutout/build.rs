//! cfg aliases, so each predicate is written once: `wasm_simd` is a wasm build with SIMD128,
//! where our SIMD kernels and Winograd run.

fn main() {
    cfg_aliases::cfg_aliases! {
        wasm_simd: { all(target_arch = "wasm32", target_feature = "simd128") },
    }
}
