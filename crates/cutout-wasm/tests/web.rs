//! The wasm API in headless Chromium (wasm-bindgen-test), on the tiny generated model. The
//! engine's own kernels, quantizer and Winograd are tested by its unit tests, in the browser too.
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

#[wasm_bindgen_test]
fn rgba_pixels_become_a_transparent_png_with_progress() {
    let engine = engine();
    assert_eq!(engine.input_size(), vec![32, 32]);
    let image = red_square(60, 40);
    let stages = js_sys::Array::new();
    let fractions = js_sys::Array::new();
    let record = Closure::<dyn Fn(JsValue, JsValue)>::new({
        let (stages, fractions) = (stages.clone(), fractions.clone());
        move |stage: JsValue, fraction: JsValue| {
            if fraction.is_undefined() {
                stages.push(&stage);
            } else {
                fractions.push(&fraction);
            }
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
    let fractions: Vec<f64> = fractions.iter().map(|f| f.as_f64().unwrap()).collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(
        (fractions.last().unwrap() - 1.0).abs() < 1e-4,
        "{fractions:?}"
    );
}

#[wasm_bindgen_test]
fn a_result_is_made_again_from_its_alpha_with_strokes_and_other_settings() {
    let engine = engine();
    let mut out = engine
        .process_rgba(
            red_square(40, 40).into_raw(),
            40,
            40,
            options(r#"{"withAlpha":true,"withView":true}"#),
            None,
        )
        .map_err(JsValue::from)
        .unwrap();
    let alpha = out.take_alpha().expect("asked for");
    assert_eq!(alpha.len(), 40 * 40);
    let view = out.take_view().expect("asked for");
    assert_eq!(view.len(), 40 * 40 * 4);
    assert_eq!(
        view[(20 * 40 + 20) * 4 + 3],
        255,
        "the subject opaque in the view"
    );
    assert_eq!(view[3], 0, "the background transparent in the view");
    let erase = r#"[{"mode":"erase","radius":3,"hardness":1,"points":[[10,20],[30,20]]}]"#;
    let mut again = cutout_wasm::composite(
        red_square(40, 40).into_raw(),
        40,
        40,
        alpha.clone(),
        erase,
        options(r##"{"output":"jpeg","quality":80,"background":"#000000","maxSide":20}"##),
        None,
        0,
        0,
    )
    .map_err(JsValue::from)
    .unwrap();
    assert_eq!(again.mime(), "image/jpeg");
    let jpeg = image::load_from_memory_with_format(&again.take_bytes(), ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8();
    assert_eq!(jpeg.dimensions(), (20, 20));
    assert!(
        jpeg.get_pixel(10, 10).0.iter().all(|&c| c < 40),
        "erased onto black"
    );
    assert!(
        jpeg.get_pixel(10, 7)[0] > 150,
        "the rest of the subject kept"
    );
    let refused = cutout_wasm::composite(
        red_square(40, 40).into_raw(),
        40,
        40,
        alpha,
        r#"[{"mode":"smudge"}]"#,
        options("{}"),
        None,
        0,
        0,
    );
    assert!(message(refused).contains("invalid brush strokes"));
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
        options(r#"{"output":"gif"}"#),
        None,
    ));
    assert!(err.contains("unknown output 'gif'"), "{err}");
    let err = message(engine.process_rgba(
        red_square(4, 4).into_raw(),
        4,
        4,
        options(r#"{"output":"jpeg","quality":0}"#),
        None,
    ));
    assert!(
        err.contains("JPEG quality must be between 1 and 100"),
        "{err}"
    );
    let err = message(engine.process_rgba(
        red_square(4, 4).into_raw(),
        4,
        4,
        options(r#"{"background":"nope"}"#),
        None,
    ));
    assert!(err.contains("is not a colour"), "{err}");
    let err = message(engine.process_rgba(
        red_square(4, 4).into_raw(),
        4,
        4,
        options(r#"{"refine":"yes"}"#),
        None,
    ));
    assert!(
        err.contains("invalid options") && err.contains("boolean"),
        "{err}"
    );
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
