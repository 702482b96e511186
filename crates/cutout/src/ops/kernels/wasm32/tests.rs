//! Our SIMD128 kernels against what they stand for, in the browser: the matrix-product kernels
//! against tract's own wasm kernels (and a plain triple loop), the ops' inner loops against
//! the generic kernels, on random data.

use cutout_testkit::Rng;
use tract_linalg::mmm::MatMatMul;
use wasm_bindgen_test::wasm_bindgen_test;

use super::super::{generic, WinogradTile, WINOGRAD_PANEL, WINOGRAD_ROWS};

/// A kernel from tract-linalg's registry (ours are registered by the engine).
fn registered_kernel(name: &str) -> Box<dyn MatMatMul> {
    super::ensure_registered();
    tract_linalg::mmm_routines::declared()
        .map(|routine| (routine.make)())
        .find(|kernel| kernel.name() == name)
        .unwrap_or_else(|| panic!("kernel {name} is not registered"))
}

/// Our int8 kernel ([`super::int8`]) against tract's own wasm kernel and a plain triple loop: random i8 matrices of awkward sizes (partial tiles, k not a multiple of 4),
/// with the epilogue a quantized convolution uses (per-row bias, row x column offsets,
/// requantisation, i8 and i32 stores). Every value must be equal.
#[wasm_bindgen_test]
fn our_int8_kernel_computes_what_tracts_does() {
    use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul, RoundingPolicy};
    use tract_linalg::BinOp;
    use tract_onnx::prelude::*;

    let ours = registered_kernel(super::int8::KERNEL_NAME);
    let theirs = registered_kernel("wasm_i32_4x4");
    let mut rng = Rng::new(0x2545_f491);
    let mut next = || rng.next_u32();
    for (m, k, n) in [
        (1, 1, 1),
        (4, 4, 4),
        (5, 27, 9),
        (3, 7, 130),
        (64, 576, 37),
        (17, 1152, 8),
    ] {
        let a_values: Vec<i8> = (0..m * k).map(|_| next() as i8).collect();
        let b_values: Vec<i8> = (0..k * n).map(|_| next() as i8).collect();
        let a = Tensor::from_shape(&[m, k], &a_values).unwrap();
        let b = Tensor::from_shape(&[k, n], &b_values).unwrap();
        let bias = tensor1(
            &(0..m)
                .map(|_| (next() % 20_000) as i32 - 10_000)
                .collect::<Vec<_>>(),
        );
        let row_offsets = tensor1(
            &(0..m)
                .map(|_| (next() % 256) as i32 - 128)
                .collect::<Vec<_>>(),
        );
        let col_offsets = tensor1(
            &(0..n)
                .map(|_| (next() % 256) as i32 - 128)
                .collect::<Vec<_>>(),
        );
        let expected: Vec<i32> = (0..m * n)
            .map(|ix| {
                let (row, col) = (ix / n, ix % n);
                (0..k)
                    .map(|kk| a_values[row * k + kk] as i32 * b_values[kk * n + col] as i32)
                    .sum()
            })
            .collect();
        let run = |kernel: &dyn MatMatMul, store: DatumType, requantise: bool| -> Tensor {
            let (pack_a, pack_b) = &kernel.packings()[1];
            let packed_a = pack_a.prepare_one(&a, 1, 0).unwrap();
            let packed_b = pack_b.prepare_one(&b, 0, 1).unwrap();
            let mut c = Tensor::zero_dt(store, &[m, n]).unwrap();
            unsafe {
                let c_store = kernel.c_view(Some(0), Some(1)).wrap(&c.view_mut());
                let mut ops = vec![FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*packed_a),
                    b: AsInputValue::Borrowed(&*packed_b),
                    packing: 1,
                }];
                if requantise {
                    ops.push(FusedSpec::BinPerRow(bias.view(), BinOp::Add));
                    ops.push(FusedSpec::AddRowColProducts(&row_offsets, &col_offsets));
                    ops.push(FusedSpec::QScale(9, RoundingPolicy::Even, 1 << 29));
                }
                ops.push(FusedSpec::Store(c_store));
                kernel.run(m, n, &ops).unwrap();
            }
            c
        };
        let plain = run(&*ours, DatumType::I32, false);
        let expected = Tensor::from_shape(&[m, n], &expected).unwrap();
        assert_eq!(plain, expected, "A·B, m={m} k={k} n={n}");
        for store in [DatumType::I32, DatumType::I8] {
            assert_eq!(
                run(&*ours, store, true),
                run(&*theirs, store, true),
                "requantised {store:?}, m={m} k={k} n={n}"
            );
        }
    }
}

/// Our f32 kernel against tract's wasm GEMM kernel (every value bit for bit: the same
/// multiply-adds in the same order) and a plain triple loop (to rounding), with the epilogue a
/// convolution with folded batch norm and ReLU uses.
#[wasm_bindgen_test]
fn our_f32_kernel_computes_what_tracts_does() {
    use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};
    use tract_linalg::BinOp;
    use tract_onnx::prelude::*;

    let ours = registered_kernel(super::f32::KERNEL_NAME);
    let theirs = registered_kernel("wasm_f32_8x8");
    let mut rng = Rng::new(0x1234_5678);
    let mut next = move || (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
    for (m, k, n) in [
        (1, 1, 1),
        (4, 8, 8),
        (5, 27, 9),
        (3, 7, 130),
        (64, 576, 37),
        (17, 300, 8),
    ] {
        let a_values: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let b_values: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let a = Tensor::from_shape(&[m, k], &a_values).unwrap();
        let b = Tensor::from_shape(&[k, n], &b_values).unwrap();
        let scale = tensor1(&(0..m).map(|_| next()).collect::<Vec<_>>());
        let bias = tensor1(&(0..m).map(|_| next()).collect::<Vec<_>>());
        let zero = tensor0(0f32);
        let run = |kernel: &dyn MatMatMul, epilogue: bool| -> Vec<f32> {
            let (pack_a, pack_b) = &kernel.packings()[0];
            let packed_a = pack_a.prepare_one(&a, 1, 0).unwrap();
            let packed_b = pack_b.prepare_one(&b, 0, 1).unwrap();
            let mut c = Tensor::zero::<f32>(&[m, n]).unwrap();
            unsafe {
                let c_store = kernel.c_view(Some(0), Some(1)).wrap(&c.view_mut());
                let mut ops = vec![FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*packed_a),
                    b: AsInputValue::Borrowed(&*packed_b),
                    packing: 0,
                }];
                if epilogue {
                    ops.push(FusedSpec::BinPerRow(scale.view(), BinOp::Mul));
                    ops.push(FusedSpec::BinPerRow(bias.view(), BinOp::Add));
                    ops.push(FusedSpec::BinScalar(&zero, BinOp::Max));
                }
                ops.push(FusedSpec::Store(c_store));
                kernel.run(m, n, &ops).unwrap();
            }
            c.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let plain = run(&*ours, false);
        for (ix, value) in plain.iter().enumerate() {
            let (row, col) = (ix / n, ix % n);
            let expected: f32 = (0..k)
                .map(|kk| a_values[row * k + kk] * b_values[kk * n + col])
                .sum();
            assert!(
                (value - expected).abs() <= 1e-4 * k as f32,
                "A·B m={m} k={k} n={n} at {ix}: {value} vs {expected}"
            );
        }
        for epilogue in [false, true] {
            let (ours, theirs) = (run(&*ours, epilogue), run(&*theirs, epilogue));
            let same = ours
                .iter()
                .zip(&theirs)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "m={m} k={k} n={n} epilogue={epilogue}: {ours:?} vs {theirs:?}"
            );
        }
    }
}

/// The Winograd micro-kernels against the generic ones, for every step count up to 40: the
/// i16 one bit for bit (exact integer sums), the f32 one too without relaxed SIMD (the same
/// multiply, then add, in the same order) and to rounding with it (fused multiply-adds).
#[wasm_bindgen_test]
fn winograd_micro_kernels_compute_what_the_generic_ones_do() {
    let mut rng = Rng::new(0x5eed_0001);
    for steps in 0..=40 {
        let a: Vec<i16> = (0..steps * WINOGRAD_ROWS * 2)
            .map(|_| rng.in_range(-4080, 4080) as i16)
            .collect();
        let b: Vec<i16> = (0..steps * WINOGRAD_PANEL * 2)
            .map(|_| rng.in_range(-1020, 1020) as i16)
            .collect();
        let ours = super::winograd::micro_kernel_i16(&a, &b, steps);
        assert_eq!(ours, generic::winograd_i16(&a, &b, steps), "{steps} pairs");

        let a: Vec<f32> = (0..steps * WINOGRAD_ROWS).map(|_| rng.unit()).collect();
        let b: Vec<f32> = (0..steps * WINOGRAD_PANEL).map(|_| rng.unit()).collect();
        let ours = super::winograd::micro_kernel_f32(&a, &b, steps);
        let expected: WinogradTile<f32> = generic::winograd_f32(&a, &b, steps);
        for (ours, expected) in ours.iter().flatten().zip(expected.iter().flatten()) {
            if cfg!(target_feature = "relaxed-simd") {
                assert!(
                    (ours - expected).abs() <= 1e-5 * steps as f32,
                    "{steps} steps"
                );
            } else {
                assert_eq!(ours.to_bits(), expected.to_bits(), "{steps} steps");
            }
        }
    }
}

/// The quantizer's SIMD min/max and rounding against the generic loops on the multiple of 16
/// values they take: the same range, the same bytes (ties, NaN from a zero scale and clamping
/// included).
#[wasm_bindgen_test]
fn quantizer_kernels_compute_what_the_generic_ones_do() {
    let mut rng = Rng::new(0x5eed_0002);
    for len in [0, 15, 16, 17, 64, 1000, 4099] {
        let xs: Vec<f32> = (0..len).map(|_| rng.unit() * 7.0 - 2.0).collect();
        let (done, range) = super::quantize::min_max(&xs);
        assert_eq!(done, len / 16 * 16);
        let (lo, hi) = generic::min_max_with_zero(&xs[..done]);
        assert_eq!(
            (range.0.to_bits(), range.1.to_bits()),
            (lo.to_bits(), hi.to_bits())
        );
        for (scale, zp) in [
            ((hi - lo) / 255.0, 77.0),
            (0.5, 3.0),
            (0.0, 0.0),
            (0.01, 250.0),
        ] {
            let (mut ours, mut expected) = (vec![1u8; len], vec![2u8; len]);
            let done = super::quantize::quantize(&xs, &mut ours, scale, zp);
            assert_eq!(done, len / 16 * 16);
            generic::quantize_u8(&xs[..done], &mut expected[..done], scale, zp);
            assert_eq!(
                ours[..done],
                expected[..done],
                "{len} values, scale {scale}"
            );
        }
    }
}

/// The SIMD 2x2 max-pool against the generic one. (Not with NaNs or windows of -inf: the
/// generic one starts from `f32::MIN` and lets NaNs lose, the SIMD one pairs taps first.)
#[wasm_bindgen_test]
fn maxpool_kernel_computes_what_the_generic_one_does() {
    let mut rng = Rng::new(0x5eed_0003);
    let mut value = || match rng.in_range(0, 20) {
        0 => f32::INFINITY,
        _ => rng.unit(),
    };
    for outputs in [0, 1, 3, 4, 5, 8, 31, 64] {
        let top: Vec<f32> = (0..2 * outputs).map(|_| value()).collect();
        let bottom: Vec<f32> = (0..2 * outputs).map(|_| value()).collect();
        let (mut ours, mut expected) = (vec![0f32; outputs], vec![1f32; outputs]);
        let done = super::maxpool::max_2x2_windows(&top, &bottom, &mut ours);
        assert_eq!(done, outputs / 4 * 4);
        generic::max_2x2_windows(&top, &bottom, &mut expected, 0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&ours[..done]),
            bits(&expected[..done]),
            "{outputs} outputs"
        );
    }
}
