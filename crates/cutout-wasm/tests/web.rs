//! The wasm API in headless Chromium (wasm-bindgen-test), on the tiny generated model.
#![cfg(target_arch = "wasm32")]

use cutout::image::{self, ImageFormat, RgbaImage};
use cutout_testkit::{self as corpus, TinyModel};
use cutout_wasm::{manifest_json, probe_dimensions_js, Engine};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn engine() -> Engine {
    let tiny = TinyModel::default();
    let entry = serde_json::to_string(&tiny.entry()).unwrap();
    Engine::new(&tiny.onnx_bytes(), &entry)
        .map_err(JsValue::from)
        .expect("tiny model loads")
}

fn red_square(width: u32, height: u32) -> RgbaImage {
    corpus::red_square_on_blue(width, height)
}

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

/// The JS error a call threw.
fn js_error<T, E: Into<JsValue>>(result: Result<T, E>) -> js_sys::Error {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => js_sys::Error::from(e.into()),
    }
}

fn message<T, E: Into<JsValue>>(result: Result<T, E>) -> String {
    js_error(result).message().into()
}

/// A kernel from tract-linalg's registry (ours are registered by the engine).
fn registered_kernel(name: &str) -> Box<dyn tract_linalg::mmm::MatMatMul> {
    cutout::wasm_kernels::ensure_registered();
    tract_linalg::mmm_routines::declared()
        .map(|routine| (routine.make)())
        .find(|kernel| kernel.name() == name)
        .unwrap_or_else(|| panic!("kernel {name} is not registered"))
}

/// A small deterministic generator: the same test data on every run.
fn xorshift(mut state: u32) -> impl FnMut() -> u32 {
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    }
}

/// ONNX DynamicQuantizeLinear's formula, shared with the engine's native test.
mod quantize_reference {
    include!("../../cutout/src/ops/quantize_reference.rs");
}

#[wasm_bindgen_test]
fn rgba_pixels_become_a_transparent_png_with_progress() {
    let engine = engine();
    assert_eq!(engine.input_size(), vec![32, 32]);
    let image = red_square(60, 40);
    let stages = js_sys::Array::new();
    let record = Closure::<dyn Fn(JsValue)>::new({
        let stages = stages.clone();
        move |stage: JsValue| {
            stages.push(&stage);
        }
    });
    let mut out = engine
        .process_rgba(
            image.into_raw(),
            60,
            40,
            options("{}"),
            Some(record.as_ref().unchecked_ref::<js_sys::Function>().clone()),
        )
        .map_err(JsValue::from)
        .unwrap();
    assert_eq!((out.width(), out.height()), (60, 40));
    assert_eq!(out.mime(), "image/png");
    let png = image::load_from_memory_with_format(&out.take_bytes(), ImageFormat::Png)
        .unwrap()
        .to_rgba8();
    assert_eq!(png.get_pixel(30, 20)[3], 255);
    assert_eq!(png.get_pixel(0, 0)[3], 0);
    let names: Vec<String> = stages.iter().map(|s| s.as_string().unwrap()).collect();
    assert_eq!(names, ["preprocess", "inference", "postprocess", "encode"]);
}

#[wasm_bindgen_test]
fn options_mask_background_crop_and_webp() {
    let engine = engine();
    let pixels = || red_square(40, 40).into_raw();
    let mut out = engine
        .process_rgba(
            pixels(),
            40,
            40,
            options(r#"{"output":"mask","withMask":true}"#),
            None,
        )
        .map_err(JsValue::from)
        .unwrap();
    let mask = image::load_from_memory(&out.take_bytes()).unwrap();
    assert_eq!(mask.color(), image::ColorType::L8);
    assert!(out.take_mask_png().is_some());
    let mut out = engine
        .process_rgba(
            pixels(),
            40,
            40,
            options(r##"{"background":"#ffffff","crop":2}"##),
            None,
        )
        .map_err(JsValue::from)
        .unwrap();
    let img = image::load_from_memory(&out.take_bytes())
        .unwrap()
        .to_rgba8();
    assert!(
        img.width() < 40 && img.pixels().all(|p| p[3] == 255),
        "cropped and opaque"
    );
    let out = engine
        .process_rgba(pixels(), 40, 40, options(r#"{"output":"webp"}"#), None)
        .map_err(JsValue::from)
        .unwrap();
    assert_eq!(out.mime(), "image/webp");
}

#[wasm_bindgen_test]
fn encoded_tiff_is_decoded_by_the_engine() {
    let mut tiff = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(red_square(30, 20))
        .write_to(&mut tiff, ImageFormat::Tiff)
        .unwrap();
    let engine = engine();
    let out = engine
        .process_encoded(tiff.get_ref(), options("{}"), None)
        .map_err(JsValue::from)
        .unwrap();
    assert_eq!((out.width(), out.height()), (30, 20));
    assert_eq!(
        probe_dimensions_js(tiff.get_ref(), 1e6)
            .map_err(JsValue::from)
            .unwrap(),
        vec![30, 20]
    );
}

#[wasm_bindgen_test]
fn errors_are_js_errors_with_clear_messages() {
    let engine = engine();
    let name = |e: js_sys::Error| String::from(e.name());
    assert_eq!(
        name(js_error(engine.process_encoded(
            b"plain text",
            options("{}"),
            None
        ))),
        "not-an-image"
    );
    assert_eq!(
        name(js_error(Engine::new(b"not a model", "rmbg-1.4"))),
        "hash-mismatch"
    );
    assert_eq!(
        name(js_error(engine.process_rgba(
            vec![0; 10],
            4,
            4,
            options("{}"),
            None
        ))),
        "bad-pixel-buffer"
    );
    let err = message(engine.process_encoded(b"plain text", options("{}"), None));
    assert!(err.contains("not a supported image"), "{err}");
    let err = message(engine.process_rgba(vec![0; 10], 4, 4, options("{}"), None));
    assert!(err.contains("10 bytes but 4x4 RGBA needs 64"), "{err}");
    let err = message(engine.process_rgba(
        red_square(4, 4).into_raw(),
        4,
        4,
        options(r#"{"output":"jpeg"}"#),
        None,
    ));
    assert!(err.contains("unknown output 'jpeg'"), "{err}");
    let err = message(engine.process_rgba(
        red_square(4, 4).into_raw(),
        4,
        4,
        options(r#"{"background":"nope"}"#),
        None,
    ));
    assert!(err.contains("is not a colour"), "{err}");
    let err = message(engine.process_rgba(
        red_square(20, 20).into_raw(),
        20,
        20,
        options(r#"{"maxPixels":100}"#),
        None,
    ));
    assert!(err.contains("too large"), "{err}");
    let err = message(Engine::new(b"not a model", "rmbg-1.4"));
    assert!(
        err.contains("hash mismatch"),
        "the manifest entry's sha256 is checked: {err}"
    );
    let tiny = TinyModel::default();
    let err = message(Engine::new(
        &tiny.onnx_bytes()[..100],
        &serde_json::to_string(&tiny.entry()).unwrap(),
    ));
    assert!(err.contains("unusable model"), "{err}");
    let err = message(Engine::new(&tiny.onnx_bytes(), "no-such-model"));
    assert!(
        err.contains("neither a manifest entry nor a model id"),
        "{err}"
    );
}

#[wasm_bindgen_test]
fn the_manifest_is_available_to_js() {
    let manifest: serde_json::Value = serde_json::from_str(&manifest_json()).unwrap();
    assert_eq!(manifest["default"], "isnet-fp16");
    assert_eq!(
        manifest["models"][0]["parts"].as_array().map(Vec::len),
        Some(22)
    );
}

#[wasm_bindgen_test]
fn profile_and_load_phases_report_real_work() {
    let engine = engine();
    let phases: serde_json::Value =
        serde_wasm_bindgen::from_value(engine.load_phases().map_err(JsValue::from).unwrap())
            .unwrap();
    for phase in ["verify", "parse", "typing", "declutter", "optimise", "plan"] {
        let seconds = phases[phase].as_f64().unwrap_or(-1.0);
        assert!(seconds >= 0.0, "phase {phase}: {phases}");
    }
    let image = red_square(40, 30);
    let ops: serde_json::Value = serde_wasm_bindgen::from_value(
        engine
            .profile(image.into_raw(), 40, 30)
            .map_err(JsValue::from)
            .unwrap(),
    )
    .unwrap();
    let ops = ops.as_array().expect("a list of ops");
    assert!(
        ops.iter()
            .any(|op| op["op"].as_str().unwrap_or("").contains("Sigmoid")),
        "{ops:?}"
    );
    assert!(ops.iter().all(|op| op["calls"].as_u64().unwrap_or(0) >= 1));
}

#[wasm_bindgen_test]
fn a_build_without_threads_says_so() {
    assert!(!cutout_wasm::threads_supported());
    assert_eq!(cutout_wasm::use_threads(4), 1);
}

/// Our int8 kernel (crates/cutout/src/ops/wasm_kernels/int8.rs) against tract's own wasm kernel and a
/// plain triple loop: random i8 matrices of awkward sizes (partial tiles, k not a multiple of 4),
/// with the epilogue a quantized convolution uses (per-row bias, row x column offsets,
/// requantisation, i8 and i32 stores). Every value must be equal.
#[wasm_bindgen_test]
fn our_int8_kernel_computes_what_tracts_does() {
    use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul, RoundingPolicy};
    use tract_linalg::BinOp;
    use tract_onnx::prelude::*;

    let ours = registered_kernel(cutout::wasm_kernels::INT8_KERNEL);
    let theirs = registered_kernel("wasm_i32_4x4");
    let mut next = xorshift(0x2545_f491);
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

/// The quantizer's SIMD path (crates/cutout/src/ops/quantize.rs) against ONNX DynamicQuantizeLinear's
/// formula, element by element: random ranges, lengths that leave a scalar tail, exact ties and
/// an all-zero input (scale 0).
#[wasm_bindgen_test]
fn simd_quantizer_matches_the_onnx_formula() {
    let mut bits = xorshift(0x9e37_79b9);
    let mut next = move || (bits() >> 8) as f32 / (1u32 << 24) as f32;
    let mut inputs: Vec<Vec<f32>> = [(-0.7, 6.0, 100_003), (0.0, 1.0, 17), (-3.0, 2.0, 4096)]
        .iter()
        .map(|&(offset, span, len)| (0..len).map(|_| offset + next() * span).collect())
        .collect();
    inputs.push((-40..40).map(|k| k as f32 * 0.5).collect());
    inputs.push(vec![0.0; 40]);
    for xs in inputs {
        let mut ours = vec![7u8; xs.len()];
        let (scale, zero_point) = cutout::wasm_kernels::dynamic_quantize_u8(&xs, &mut ours);
        let (expected, expected_scale, expected_zp) = quantize_reference::reference(&xs);
        assert_eq!(
            (scale.to_bits(), zero_point),
            (expected_scale.to_bits(), expected_zp)
        );
        assert_eq!(ours, expected, "{} values", xs.len());
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

    let ours = registered_kernel(cutout::wasm_kernels::F32_KERNEL);
    let theirs = registered_kernel("wasm_f32_8x8");
    let mut bits = xorshift(0x1234_5678);
    let mut next = move || (bits() >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
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

/// The Winograd convolution's oracle and cases, shared with the engine's native test.
mod winograd_reference {
    include!("../../cutout/src/ops/winograd_reference.rs");
}

#[wasm_bindgen_test]
fn winograd_convolution_equals_the_direct_one() {
    use cutout::wasm_kernels::WinogradConvU8;
    use winograd_reference::*;
    let extreme = [((1030, 4, 4, 4, 1), true), ((600, 6, 5, 3, 2), false)];
    for (shape, extreme) in CASES.iter().map(|&s| (s, false)).chain(extreme) {
        let (c_in, c_out, height, width, d) = shape;
        let (image, x0, kernel) = random_convolution(shape, extreme);
        let op = WinogradConvU8::new(&kernel, None, c_out, c_in, d).unwrap();
        let got = op.convolve_u8(&image, x0, height, width);
        assert_eq!(
            got,
            direct_convolution(&image, x0, &kernel, shape),
            "{shape:?}"
        );
    }
}

#[wasm_bindgen_test]
fn float_winograd_convolution_is_the_direct_one_to_f32_rounding() {
    use cutout::wasm_kernels::WinogradConvF32;
    use winograd_reference::*;
    for shape in CASES {
        let (c_in, c_out, height, width, d) = shape;
        let (image, kernel, bias) = random_float_convolution(shape);
        let op = WinogradConvF32::new(&kernel, Some(bias.clone()), c_out, c_in, d).unwrap();
        let got = op.convolve(&image, |v| v, height, width);
        let want = direct_float_convolution(&image, &kernel, &bias, shape);
        let error = worst_float_error(&got, &want, c_in);
        assert!(error < 1e-6, "{shape:?}: error {error}");
    }
}
