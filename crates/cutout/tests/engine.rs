//! The engine end to end on tiny generated models: every option, format and failure mode, in
//! milliseconds. (The real model is exercised by the CLI's tests.)

use std::sync::Arc;

use cutout::edit::{BrushMode, Stroke};
use cutout::pipeline::rgba_image;
use cutout::{
    composite, decode, Error, Input, Model, Options, OutputFormat, OutputKind, Progress, Rendered,
    Session, Stage,
};
use cutout_testkit::{self as corpus, encode, red_square_on_blue, TinyModel};
use image::{GrayImage, ImageFormat, Rgba, RgbaImage};

/// The pipeline without progress reports: the rendered result, or the encoded file.
trait RunQuietly {
    fn render(&self, image: &RgbaImage, options: &Options) -> cutout::Result<Rendered>;
    fn process(&self, bytes: &[u8], options: &Options) -> cutout::Result<Vec<u8>>;
}

impl RunQuietly for Session {
    fn render(&self, image: &RgbaImage, options: &Options) -> cutout::Result<Rendered> {
        self.run(Input::Pixels(image), options, &mut |_| {})
            .map(|c| c.image)
    }

    fn process(&self, bytes: &[u8], options: &Options) -> cutout::Result<Vec<u8>> {
        self.run(Input::Encoded(bytes), options, &mut |_| {})
            .map(|c| c.encoded)
    }
}

/// The final alpha of `image` through the whole pipeline.
fn alpha(s: &Session, image: &RgbaImage) -> GrayImage {
    s.run(Input::Pixels(image), &Options::default(), &mut |_| {})
        .expect("the tiny model segments")
        .alpha
}

fn session(tiny: TinyModel) -> Session {
    Session::new(Model::load(&tiny.onnx_bytes(), &tiny.entry()).expect("tiny model loads"))
}

fn assert_cutout(png: &[u8], width: u32, height: u32) -> RgbaImage {
    let out = image::load_from_memory_with_format(png, ImageFormat::Png)
        .expect("a PNG")
        .to_rgba8();
    assert_eq!(out.dimensions(), (width, height));
    let centre = out.get_pixel(width / 2, height / 2);
    // JPEG input is lossy, so allow a few levels of drift in colour and in the stretched mask.
    assert!(centre[3] >= 250, "subject opaque, got {centre:?}");
    let drift = centre.0[..3]
        .iter()
        .zip([230u8, 20, 20])
        .map(|(a, b)| a.abs_diff(b))
        .max()
        .unwrap();
    assert!(drift <= 8, "subject colour kept, got {centre:?}");
    for (x, y) in [
        (0, 0),
        (width - 1, 0),
        (0, height - 1),
        (width - 1, height - 1),
    ] {
        assert!(
            out.get_pixel(x, y)[3] <= 5,
            "corner ({x},{y}) transparent: {:?}",
            out.get_pixel(x, y)
        );
    }
    out
}

#[test]
fn cutout_of_every_input_format_keeps_size_subject_and_transparency() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(80, 60);
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::Gif,
    ] {
        let out = s
            .process(&encode(&image, format), &Options::default())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_cutout(&out, 80, 60);
    }
}

#[test]
fn stages_are_reported_in_order() {
    let s = session(TinyModel::default());
    let mut seen = vec![];
    s.run(
        Input::Encoded(&encode(&red_square_on_blue(40, 40), ImageFormat::Png)),
        &Options::default(),
        &mut |st| seen.push(st),
    )
    .map(|c| c.encoded)
    .unwrap();
    assert_eq!(seen, Stage::ALL.to_vec());
}

#[test]
fn mask_only_is_an_8bit_grey_png() {
    let s = session(TinyModel::default());
    let options = Options {
        kind: OutputKind::Mask,
        ..Options::default()
    };
    let out = s
        .process(
            &encode(&red_square_on_blue(50, 30), ImageFormat::Png),
            &options,
        )
        .unwrap();
    let decoded = image::load_from_memory(&out).unwrap();
    assert_eq!(decoded.color(), image::ColorType::L8);
    let mask = decoded.to_luma8();
    assert_eq!(mask.dimensions(), (50, 30));
    // Opaque to within one level: on some CPUs tract's kernels leave the flat square's values a
    // few bits apart, so its centre can round to 254 (seen on an AVX2 machine without AVX-512).
    let centre = mask.get_pixel(25, 15)[0];
    assert!(
        centre >= 254,
        "the subject's centre is {centre}, not opaque"
    );
    assert_eq!(mask.get_pixel(0, 0)[0], 0);
}

#[test]
fn background_colour_fills_the_transparent_part() {
    let s = session(TinyModel::default());
    let options = Options {
        background: Some([255, 255, 255, 255]),
        ..Options::default()
    };
    let out = s
        .process(
            &encode(&red_square_on_blue(40, 40), ImageFormat::Png),
            &options,
        )
        .unwrap();
    let img = image::load_from_memory(&out).unwrap().to_rgba8();
    assert_eq!(img.get_pixel(0, 0), &Rgba([255, 255, 255, 255]));
    assert_eq!(img.get_pixel(20, 20), &Rgba([230, 20, 20, 255]));
    assert!(img.pixels().all(|p| p[3] == 255), "fully opaque");
}

#[test]
fn crop_keeps_the_subject_and_the_margin() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(100, 80); // subject: x 25..75, y 20..60
    let rendered = s
        .render(
            &image,
            &Options {
                crop_margin: Some(0),
                ..Options::default()
            },
        )
        .unwrap();
    let (w, h) = rendered.dimensions();
    assert!(
        (48..=54).contains(&w) && (38..=44).contains(&h),
        "cropped to {w}x{h}"
    );
    let with_margin = s
        .render(
            &image,
            &Options {
                crop_margin: Some(5),
                ..Options::default()
            },
        )
        .unwrap();
    assert_eq!(with_margin.dimensions(), (w + 10, h + 10));
    let huge_margin = s
        .render(
            &image,
            &Options {
                crop_margin: Some(1000),
                ..Options::default()
            },
        )
        .unwrap();
    assert_eq!(
        huge_margin.dimensions(),
        (100, 80),
        "margin clamps to the image"
    );
}

#[test]
fn crop_with_no_subject_says_so() {
    let s = session(TinyModel::default());
    // All blue but not flat (a flat mask is kept, not stretched): the mask stays near zero.
    let image = RgbaImage::from_fn(30, 30, |x, _| Rgba([0, 0, 200 + (x as u8 % 2), 255]));
    let err = s.render(
        &image,
        &Options {
            crop_margin: Some(0),
            ..Options::default()
        },
    );
    // min-max stretches even tiny differences; what matters is a clear error or a valid crop.
    if let Err(e) = err {
        assert!(e.to_string().contains("no subject"), "{e}");
    }
}

#[test]
fn existing_transparency_is_kept() {
    let s = session(TinyModel::default());
    let mut image = red_square_on_blue(40, 40);
    // Make the left half of the subject transparent in the input.
    for y in 10..30 {
        for x in 10..20 {
            image.get_pixel_mut(x, y)[3] = 0;
        }
    }
    let Rendered::Rgba(out) = s.render(&image, &Options::default()).unwrap() else {
        panic!("cutout is RGBA")
    };
    assert_eq!(
        out.get_pixel(15, 20)[3],
        0,
        "was transparent, stays transparent"
    );
    assert_eq!(out.get_pixel(25, 20)[3], 255);
}

#[test]
fn raw_rgba_pixels_are_accepted_and_checked() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(20, 10);
    let pixels = rgba_image(image.clone().into_raw(), 20, 10).unwrap();
    let out = s
        .run(Input::Pixels(&pixels), &Options::default(), &mut |_| {})
        .unwrap();
    assert_eq!(out.image.dimensions(), (20, 10));
    let err = rgba_image(vec![0; 17], 20, 10).unwrap_err();
    assert!(
        err.to_string()
            .contains("17 bytes but 20x10 RGBA needs 800"),
        "{err}"
    );
    let empty = rgba_image(vec![], 0, 0).unwrap();
    let err = s
        .run(Input::Pixels(&empty), &Options::default(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("no pixels"), "{err}");
}

#[test]
fn webp_output_is_lossless() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(40, 30);
    let png = s.render(&image, &Options::default()).unwrap();
    let webp = s
        .process(
            &encode(&image, ImageFormat::Png),
            &Options {
                format: OutputFormat::WebpLossless,
                ..Options::default()
            },
        )
        .unwrap();
    let Rendered::Rgba(expected) = png else {
        panic!()
    };
    assert_eq!(
        image::load_from_memory_with_format(&webp, ImageFormat::WebP)
            .unwrap()
            .to_rgba8(),
        expected
    );
}

#[test]
fn a_composite_without_strokes_is_the_run_and_strokes_erase_and_restore() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(80, 60);
    let run = s
        .run(Input::Pixels(&image), &Options::default(), &mut |_| {})
        .unwrap();
    let again = composite(&image, &run.alpha, &[], &Options::default()).unwrap();
    assert_eq!(again.encoded, run.encoded, "no inference, the same file");
    let strokes = [
        Stroke {
            mode: BrushMode::Erase,
            radius: 4.0,
            hardness: 1.0,
            points: vec![[20.0, 30.0], [60.0, 30.0]],
        },
        Stroke {
            mode: BrushMode::Restore,
            radius: 3.0,
            hardness: 1.0,
            points: vec![[5.0, 5.0]],
        },
    ];
    let edited = composite(&image, &run.alpha, &strokes, &Options::default()).unwrap();
    let png = assert_png(&edited.encoded, 80, 60);
    assert_eq!(png.get_pixel(40, 30)[3], 0, "erased across the subject");
    assert_eq!(
        png.get_pixel(40, 20)[3],
        255,
        "the rest of the subject kept"
    );
    assert_eq!(
        png.get_pixel(5, 5).0,
        [20, 40, 220, 255],
        "the background restored"
    );
    assert_eq!(
        png.get_pixel(75, 55)[3],
        0,
        "the rest of the background still clear"
    );
    assert_eq!(
        edited.alpha.get_pixel(40, 30)[0],
        0,
        "the edited alpha is returned"
    );
}

fn assert_png(bytes: &[u8], width: u32, height: u32) -> RgbaImage {
    let png = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .unwrap()
        .to_rgba8();
    assert_eq!(png.dimensions(), (width, height));
    png
}

#[test]
fn jpeg_is_flattened_onto_the_background_and_max_side_shrinks() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(80, 60);
    let run = s
        .run(Input::Pixels(&image), &Options::default(), &mut |_| {})
        .unwrap();
    let jpeg = |background| Options {
        format: OutputFormat::Jpeg { quality: 95 },
        background,
        max_side: Some(40),
        ..Options::default()
    };
    for (background, corner) in [
        (None, [255, 255, 255]),
        (Some([0, 160, 0, 255]), [0, 160, 0]),
    ] {
        let out = composite(&image, &run.alpha, &[], &jpeg(background)).unwrap();
        let decoded = image::load_from_memory_with_format(&out.encoded, ImageFormat::Jpeg).unwrap();
        assert_eq!(decoded.color(), image::ColorType::Rgb8, "no alpha channel");
        let rgb = decoded.to_rgb8();
        assert_eq!(rgb.dimensions(), (40, 30), "the longer side at most 40");
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6);
        assert!(
            near(rgb.get_pixel(1, 1).0, corner),
            "{:?}",
            rgb.get_pixel(1, 1)
        );
        assert!(
            near(rgb.get_pixel(20, 15).0, [230, 20, 20]),
            "{:?}",
            rgb.get_pixel(20, 15)
        );
    }
    // Shrinking weighs colour by alpha: the transparent background leaves no blue at the edge.
    let small = composite(
        &image,
        &run.alpha,
        &[],
        &Options {
            max_side: Some(20),
            ..Options::default()
        },
    )
    .unwrap();
    let png = assert_png(&small.encoded, 20, 15);
    for px in png.pixels().filter(|p| p[3] > 0) {
        assert!(
            px[0] > 150 && px[2] < 100,
            "an edge pixel keeps the subject's colour: {px:?}"
        );
    }
}

#[test]
fn a_background_picture_covers_the_output_and_follows_the_crop() {
    let s = session(TinyModel::default());
    let image = red_square_on_blue(80, 60);
    let run = s
        .run(Input::Pixels(&image), &Options::default(), &mut |_| {})
        .unwrap();
    // Left half yellow, right half green: scaled to cover, centred.
    let picture = RgbaImage::from_fn(10, 10, |x, _| {
        if x < 5 {
            Rgba([250, 220, 0, 255])
        } else {
            Rgba([0, 160, 0, 255])
        }
    });
    let options = Options {
        background_image: Some(Arc::new(picture)),
        crop_margin: Some(4),
        ..Options::default()
    };
    let out = composite(&image, &run.alpha, &[], &options).unwrap();
    let Rendered::Rgba(result) = out.image else {
        panic!()
    };
    let (w, h) = result.dimensions();
    assert!(w < 60 && h < 45, "cropped, got {w}x{h}");
    assert_eq!(result.get_pixel(0, h / 2).0, [250, 220, 0, 255]);
    assert_eq!(result.get_pixel(w - 1, h / 2).0, [0, 160, 0, 255]);
    assert_eq!(result.get_pixel(w / 2, h / 2).0, [230, 20, 20, 255]);

    // A thin picture behind a wide photo (found by the fuzzer: scaling the whole picture to
    // cover it asked for 47 GB). Only the part that shows is scaled.
    let wide = red_square_on_blue(20_000, 2);
    let thin = RgbaImage::from_pixel(1, 40, Rgba([0, 160, 0, 255]));
    let options = Options {
        background_image: Some(Arc::new(thin)),
        ..Options::default()
    };
    let out = composite(&wide, &GrayImage::new(20_000, 2), &[], &options).unwrap();
    assert_eq!(out.image.dimensions(), (20_000, 2));
    let Rendered::Rgba(result) = out.image else {
        panic!()
    };
    assert_eq!(result.get_pixel(0, 0).0, [0, 160, 0, 255]);
}

#[test]
fn a_mask_of_another_size_or_a_bad_stroke_is_refused() {
    let image = red_square_on_blue(8, 8);
    let mask = GrayImage::new(8, 7);
    let error = composite(&image, &mask, &[], &Options::default()).unwrap_err();
    assert!(error.to_string().contains("8x7"), "{error}");
    let bad = Stroke {
        mode: BrushMode::Erase,
        radius: -1.0,
        hardness: 1.0,
        points: vec![[1.0, 1.0]],
    };
    let error = composite(&image, &GrayImage::new(8, 8), &[bad], &Options::default()).unwrap_err();
    assert!(error.to_string().contains("radius"), "{error}");
}

#[test]
fn inference_reports_its_progress_up_to_the_whole() {
    struct Recorded(Vec<f32>, Vec<Stage>);
    impl Progress for Recorded {
        fn stage(&mut self, stage: Stage) {
            self.1.push(stage);
        }
        fn inference(&mut self, fraction_done: f32) {
            self.0.push(fraction_done);
        }
    }
    let s = session(TinyModel::default());
    let image = red_square_on_blue(40, 40);
    // Twice: the first run's weights are output sizes, the second's the first run's times.
    for _ in 0..2 {
        let mut seen = Recorded(vec![], vec![]);
        s.run_reporting(Input::Pixels(&image), &Options::default(), &mut seen)
            .unwrap();
        assert!(seen.0.len() > 3, "reported node by node: {:?}", seen.0);
        assert!(seen.0.windows(2).all(|w| w[0] <= w[1]), "{:?}", seen.0);
        assert!((seen.0.last().unwrap() - 1.0).abs() < 1e-4, "{:?}", seen.0);
        assert_eq!(seen.1, Stage::ALL[1..].to_vec());
    }
}

#[test]
fn exif_orientation_is_applied() {
    let image = red_square_on_blue(60, 20);
    let jpeg = encode(&image, ImageFormat::Jpeg);
    let rotated = corpus::jpeg_with_orientation(&jpeg, 6);
    let decoded = decode(&rotated, 1_000_000).unwrap();
    assert_eq!(
        decoded.dimensions(),
        (20, 60),
        "orientation 6 turns the image upright"
    );
    let s = session(TinyModel::default());
    let out = s.process(&rotated, &Options::default()).unwrap();
    assert_cutout(&out, 20, 60);
}

#[test]
fn one_pixel_image_works() {
    let s = session(TinyModel::default());
    let out = s
        .process(
            &encode(&red_square_on_blue(1, 1), ImageFormat::Png),
            &Options::default(),
        )
        .unwrap();
    assert_eq!(
        image::load_from_memory(&out)
            .unwrap()
            .to_rgba8()
            .dimensions(),
        (1, 1)
    );
}

#[test]
fn pixel_limit_applies_to_raw_pixels_too() {
    let s = session(TinyModel::default());
    let options = Options {
        max_pixels: 100,
        ..Options::default()
    };
    let err = s.render(&red_square_on_blue(20, 10), &options).unwrap_err();
    assert!(matches!(err, Error::TooManyPixels { .. }), "{err}");
}

#[test]
fn fp16_model_runs_in_f32_and_agrees_with_the_f32_model() {
    let half = TinyModel {
        fp16: true,
        ..TinyModel::default()
    };
    let model = Model::load(&half.onnx_bytes(), &half.entry()).unwrap();
    assert!(model.widened_fp16());
    let image = red_square_on_blue(64, 64);
    let a = alpha(&Session::new(model), &image);
    let b = alpha(&session(TinyModel::default()), &image);
    let max_diff = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| p[0].abs_diff(q[0]))
        .max()
        .unwrap();
    assert!(max_diff <= 2, "fp16 and f32 masks differ by {max_diff}");
}

#[test]
fn logit_models_get_a_sigmoid() {
    let logits = TinyModel {
        sigmoid: false,
        ..TinyModel::default()
    };
    let mut entry = logits.entry();
    entry.output.min_max_normalise = false; // RMBG-2.0 style: sigmoid only
    let s = Session::new(Model::load(&logits.onnx_bytes(), &entry).unwrap());
    let mask = alpha(&s, &red_square_on_blue(32, 32));
    assert!(mask.get_pixel(16, 16)[0] >= 250, "red -> sigmoid(~9) ~ 1");
    assert!(mask.get_pixel(0, 0)[0] <= 5, "blue -> sigmoid(~-5) ~ 0");
}

#[test]
fn model_with_a_wrong_hash_is_refused_naming_both_hashes() {
    let tiny = TinyModel::default();
    let mut entry = tiny.entry();
    entry.sha256 = Some("ab".repeat(32));
    let err = Model::load(&tiny.onnx_bytes(), &entry)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&"ab".repeat(32)) && err.contains(&cutout::sha256_hex(&tiny.onnx_bytes())),
        "{err}"
    );
    entry.sha256 = Some(cutout::sha256_hex(&tiny.onnx_bytes()));
    Model::load(&tiny.onnx_bytes(), &entry).expect("right hash loads");
}

#[test]
fn broken_models_are_refused_with_reasons() {
    let entry = TinyModel::default().entry();
    for broken in cutout_testkit::tiny_model::broken_models() {
        let err = Model::load(&broken.bytes, &entry).unwrap_err();
        assert!(
            matches!(err, Error::BadModel { .. }),
            "{}: {err}",
            broken.file_name
        );
        assert!(
            err.to_string().contains(broken.expected),
            "{}: {err}",
            broken.file_name
        );
    }
}

#[test]
fn only_the_mask_output_is_computed() {
    let tiny = TinyModel::default();
    let model = Model::load(&tiny.onnx_bytes(), &tiny.entry()).unwrap();
    let names = model.node_names();
    assert!(names.iter().any(|n| n.contains("mask_conv")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("side")),
        "side output still computed: {names:?}"
    );
}

#[test]
fn bad_input_corpus_fails_cleanly() {
    let s = session(TinyModel::default());
    for bad in corpus::bad_input_corpus() {
        let err = s
            .process(&bad.bytes, &Options::default())
            .expect_err(bad.file_name)
            .to_string();
        assert!(err.contains(bad.expected), "{}: {err}", bad.file_name);
        assert!(
            !err.contains(['{', '}']) && !err.contains("Error"),
            "{}: plain words, no debug dump: {err}",
            bad.file_name
        );
    }
}

/// tract's direct spatial convolution is slower than im2col + matrix product on our models
/// (docs/performance.md): loading turns it off for the model it loads, without touching the
/// process's settings.
#[test]
fn three_by_three_convolutions_skip_tracts_direct_spatial_kernel() {
    use cutout_testkit::tiny_model::{model_bytes, node, value_info, weights};
    use tract_onnx::pb;
    // tract takes its direct kernel for output rows of 128 and more.
    let size = 130;
    let graph = pb::GraphProto {
        name: "three_by_three".into(),
        node: vec![
            node("Conv", "features", &["input", "w3", "b3"], &["features"]),
            node("Conv", "mask_conv", &["features", "w1"], &["logits"]),
            node("Sigmoid", "mask", &["logits"], &["output"]),
        ],
        initializer: vec![
            weights("w3", &[4, 3, 3, 3], &[0.1; 4 * 3 * 9], false),
            weights("b3", &[4], &[0.0; 4], false),
            weights("w1", &[1, 4, 1, 1], &[1.0; 4], false),
        ],
        input: vec![value_info("input", &[1, 3, size, size])],
        output: vec![value_info("output", &[1, 1, size - 2, size - 2])],
        ..Default::default()
    };
    let tiny = TinyModel {
        size: size as usize,
        ..TinyModel::default()
    };
    let model = Model::load(&model_bytes(graph), &tiny.entry()).expect("the model loads");
    let ops = Session::new(model)
        .profile(&red_square_on_blue(64, 64))
        .expect("it runs");
    assert!(
        ops.iter()
            .any(|o| o.op.contains("Conv") || o.op.contains("Mat")),
        "{ops:?}"
    );
    assert!(
        ops.iter().all(|o| o.op != "DirectSpatialConv"),
        "direct spatial convolution is off: {ops:?}"
    );
}

/// Real camera and web JPEGs (the shared evaluation photos) all decode, and each one cut short
/// is refused: the check that keeps cut files from being filled in must not refuse whole ones.
#[test]
fn real_photos_decode_and_real_photos_cut_short_are_refused() {
    let Some(eval) = cutout_testkit::shared_dir().map(|d| d.join("eval")) else {
        eprintln!("\n*** SKIPPING real-photo decoding: ../shared/eval is absent ***\n");
        return;
    };
    fn jpegs_under(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                jpegs_under(&path, found);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
            {
                found.push(path);
            }
        }
    }
    let mut photos = vec![];
    jpegs_under(&eval, &mut photos);
    photos.sort();
    assert!(
        photos.len() > 100,
        "{} photos in {}",
        photos.len(),
        eval.display()
    );
    // Every photo decodes; every seventh is also cut short at two points.
    for (i, path) in photos.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        decode(&bytes, cutout::DEFAULT_MAX_PIXELS)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if i % 7 == 0 {
            for cut in [bytes.len() / 2, bytes.len() - 100] {
                let err = decode(&bytes[..cut], cutout::DEFAULT_MAX_PIXELS).err();
                assert!(
                    matches!(err, Some(Error::CorruptImage { .. })),
                    "{} cut to {cut}: {err:?}",
                    path.display()
                );
            }
        }
    }
}
