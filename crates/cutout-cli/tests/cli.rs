//! The `cutout` CLI as a user runs it, on generated images and a tiny generated model: outputs,
//! naming, overwrite protection, batches, URLs, model downloads and every failure path.

use std::fs;
use std::path::Path;

use cutout_testkit::*;

/// Cargo builds the binary for its own integration tests.
const CLI: &str = env!("CARGO_BIN_EXE_cutout");
/// The exit code when the model cannot be found, downloaded, verified or loaded.
const MODEL_FAILED: i32 = 3;
use image::ImageFormat;

fn write_tiny_model(dir: &Path) -> String {
    let path = dir.join("tiny.onnx");
    fs::write(&path, TinyModel::default().onnx_bytes()).unwrap();
    path.display().to_string()
}

fn write_image(dir: &Path, name: &str, format: ImageFormat) -> String {
    let path = dir.join(name);
    fs::write(&path, encode(&red_square_on_blue(120, 90), format)).unwrap();
    path.display().to_string()
}

fn assert_cutout_png(path: &Path, width: u32, height: u32) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_cutout_png_bytes(&bytes, width, height, &path.display().to_string());
}

fn assert_cutout_png_bytes(bytes: &[u8], width: u32, height: u32, what: &str) {
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .unwrap_or_else(|e| panic!("{what}: not a PNG: {e}"))
        .to_rgba8();
    assert_eq!(img.dimensions(), (width, height), "{what}");
    assert!(
        img.get_pixel(width / 2, height / 2)[3] >= 250,
        "subject opaque"
    );
    for (x, y) in [(0, 0), (width - 1, height - 1)] {
        assert!(img.get_pixel(x, y)[3] <= 5, "background transparent");
    }
}

#[test]
fn single_image_to_named_output() {
    let dir = temp_dir("cli-single");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.jpg", ImageFormat::Jpeg);
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "-o", "out.png", "--model", &model],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));
    assert_cutout_png(&dir.join("out.png"), 120, 90);
}

#[test]
fn without_output_a_random_hex_name_is_printed() {
    let dir = temp_dir("cli-random-name");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let out = run_cli(CLI, &dir, &["-i", &input, "--model", &model]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let name = text.trim().rsplit(' ').next().unwrap();
    assert!(
        name.len() == 12
            && name.ends_with(".png")
            && name[..8].bytes().all(|b| b.is_ascii_hexdigit()),
        "expected an 8-hex-digit name, got {text}"
    );
    assert_cutout_png(&dir.join(name), 120, 90);
}

#[test]
fn existing_files_are_never_overwritten_without_force() {
    let dir = temp_dir("cli-no-clobber");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    fs::write(dir.join("out.png"), b"precious").unwrap();
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "-o", "out.png", "--model", &model],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("already exists (use --force"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(dir.join("out.png")).unwrap(), b"precious");
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "-o", "out.png", "--model", &model, "--force"],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert_cutout_png(&dir.join("out.png"), 120, 90);
    // Writing over the input itself is refused even with --force.
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "-o", &input, "--model", &model, "--force"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("over its own input"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn output_options_mask_background_crop_webp() {
    let dir = temp_dir("cli-options");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let run = |extra: &[&str]| {
        let mut args = vec!["-i", input.as_str(), "--model", model.as_str(), "--force"];
        args.extend_from_slice(extra);
        let out = run_cli(CLI, &dir, &args);
        assert!(
            out.status.success(),
            "{extra:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    };
    run(&["-o", "mask.png", "--mask-only"]);
    let mask = image::open(dir.join("mask.png")).unwrap();
    assert_eq!(mask.color(), image::ColorType::L8);
    run(&["-o", "white.png", "--bg", "white"]);
    let white = image::open(dir.join("white.png")).unwrap().to_rgba8();
    assert_eq!(white.get_pixel(0, 0).0, [255, 255, 255, 255]);
    run(&["-o", "crop.png", "--crop", "--crop-margin", "2"]);
    let (w, h) = image::open(dir.join("crop.png"))
        .unwrap()
        .to_rgba8()
        .dimensions();
    assert!(
        w < 70 && h < 55,
        "cropped to the 60x45 subject plus margin, got {w}x{h}"
    );
    run(&["-o", "out.webp"]);
    assert_eq!(
        image::ImageFormat::from_path(dir.join("out.webp")).unwrap(),
        ImageFormat::WebP
    );
    assert_eq!(&fs::read(dir.join("out.webp")).unwrap()[8..12], b"WEBP");
    // JPEG has no alpha: the background is white unless one is chosen.
    run(&["-o", "out.jpg"]);
    let jpeg = image::open(dir.join("out.jpg")).unwrap();
    assert_eq!(jpeg.color(), image::ColorType::Rgb8);
    assert!(jpeg.to_rgb8().get_pixel(0, 0).0.iter().all(|&c| c > 245));
    let out = run_cli(CLI, &dir, &["-i", &input, "--model", &model, "-o", "x.gif"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("name the output .png, .webp or .jpg"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(
        CLI,
        &dir,
        &["-i", &input, "--model", &model, "--bg", "not-a-colour"],
    );
    assert!(stderr(&out).contains("is not a colour"), "{}", stderr(&out));
}

#[test]
fn batch_of_directory_glob_and_broken_files_reports_each() {
    let dir = temp_dir("cli-batch");
    let model = write_tiny_model(&dir);
    let inputs = dir.join("in");
    fs::create_dir_all(&inputs).unwrap();
    write_image(&inputs, "a.png", ImageFormat::Png);
    write_image(&inputs, "b.jpg", ImageFormat::Jpeg);
    write_image(&inputs, "c.webp", ImageFormat::WebP);
    fs::write(inputs.join("broken.png"), b"not an image").unwrap();
    let glob = format!("{}/*.jpg", inputs.display());
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            inputs.to_str().unwrap(),
            &glob,
            "missing.png",
            "-o",
            "out/",
            "--model",
            &model,
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("COMPLETED").count(), 4, "{text}"); // a, b, c and b again via the glob
    assert!(text.contains("FAILED missing.png: no such file"), "{text}");
    assert!(text.contains("broken.png: not a supported image"), "{text}");
    assert!(text.contains("4 completed, 2 failed"), "{text}");
    for name in ["a.png", "b.png", "c.png", "b-2.png"] {
        assert_cutout_png(&dir.join("out").join(name), 120, 90);
    }
}

#[test]
fn every_broken_input_fails_with_a_clear_reason() {
    let dir = temp_dir("cli-bad-inputs");
    let model = write_tiny_model(&dir);
    let corpus = bad_input_corpus();
    assert!(corpus.len() >= 15);
    let mut args = vec![
        "-o".to_string(),
        "out/".into(),
        "--model".into(),
        model.clone(),
        "-i".into(),
    ];
    for bad in &corpus {
        let path = dir.join(bad.file_name);
        fs::write(&path, &bad.bytes).unwrap();
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cli(CLI, &dir, &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for bad in &corpus {
        let line = text
            .lines()
            .find(|l| l.contains(bad.file_name))
            .unwrap_or_else(|| panic!("no status line for {}:\n{text}", bad.file_name));
        assert!(
            line.starts_with("FAILED") && line.contains(bad.expected),
            "{}: {line}",
            bad.file_name
        );
        if line.contains("pixels, the limit is") {
            assert!(
                line.contains("--max-pixels"),
                "the CLI names its flag: {line}"
            );
        }
    }
    assert!(!dir.join("out").exists() || fs::read_dir(dir.join("out")).unwrap().next().is_none());
}

#[test]
fn broken_models_are_refused_with_reasons() {
    let dir = temp_dir("cli-bad-models");
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    for broken in tiny_model::broken_models() {
        let (name, expected) = (broken.file_name, broken.expected);
        fs::write(dir.join(name), broken.bytes).unwrap();
        let out = run_cli(CLI, &dir, &["-i", &input, "--model", name]);
        assert_eq!(out.status.code(), Some(MODEL_FAILED), "{name}");
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(name),
            "the message names the model file: {}",
            stderr(&out)
        );
    }
    fs::write(dir.join("tiny.onnx"), TinyModel::default().onnx_bytes()).unwrap();
    let wrong = "0".repeat(64);
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            &input,
            "--model",
            "tiny.onnx",
            "--model-sha256",
            &wrong,
        ],
    );
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    assert!(
        stderr(&out).contains("hash mismatch") && stderr(&out).contains(&wrong),
        "{}",
        stderr(&out)
    );
    let out = run_cli(CLI, &dir, &["-i", &input, "--model", "nope.onnx"]);
    assert!(
        stderr(&out).contains("model file not found: nope.onnx"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(CLI, &dir, &["-i", &input, "--model", "no-such-id"]);
    assert!(
        stderr(&out).contains("unknown model 'no-such-id'") && stderr(&out).contains("rmbg-1.4")
    );
}

#[test]
fn a_model_without_download_says_where_to_put_it() {
    let dir = temp_dir("cli-missing-model");
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let mut manifest = cutout::Manifest::builtin();
    let entry = manifest
        .models
        .iter_mut()
        .find(|m| m.id == "isnet")
        .unwrap();
    entry.parts.clear();
    entry.parts_base_url = None;
    let manifest_path = write_manifest(&dir, &manifest);
    let out = run_cli_with_env(
        CLI,
        &dir,
        &["-i", &input, "--model", "isnet"],
        &[("CUTOUT_MANIFEST", manifest_path.as_str())],
    );
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains("Put the file at") && err.contains(".cache/models/isnet_quint8.onnx"),
        "{err}"
    );
    assert!(err.contains("CUTOUT_MODEL_BASE_URL"), "{err}");
}

#[test]
fn url_inputs_download_with_limits_and_clear_errors() {
    let dir = temp_dir("cli-urls");
    let model = write_tiny_model(&dir);
    let server = TestServer::start();
    server.add(
        "/photo.png",
        Route::File(encode(&red_square_on_blue(120, 90), ImageFormat::Png)),
    );
    server.add(
        "/cut.jpg",
        Route::Cut {
            body: encode(&red_square_on_blue(120, 90), ImageFormat::Jpeg),
            sent: 100,
        },
    );
    let ok = server.url("/photo.png?size=large");
    let missing = server.url("/missing.jpg");
    let cut = server.url("/cut.jpg");
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            &ok,
            &missing,
            &cut,
            "ftp://example.com/x.png",
            "-o",
            "out/",
            "--model",
            &model,
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("COMPLETED {ok}")), "{text}");
    assert_cutout_png(&dir.join("out/photo.png"), 120, 90);
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains(&format!("FAILED {cut}")), "{text}");
    assert!(text.contains("'ftp' URLs are not supported"), "{text}");
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            &ok,
            "-o",
            "small.png",
            "--model",
            &model,
            "--max-download-bytes",
            "100",
        ],
    );
    assert!(
        stdout(&out).contains("over the 100-byte download limit"),
        "{}",
        stdout(&out)
    );
    assert!(!dir.join("small.png").exists());
}

#[test]
fn models_from_urls_are_downloaded_once_verified_and_never_kept_broken() {
    let dir = temp_dir("cli-model-download");
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let tiny = TinyModel::default().onnx_bytes();
    let hash = cutout::sha256_hex(&tiny);
    let server = TestServer::start();
    server.add("/m/tiny.onnx", Route::File(tiny.clone()));
    server.add(
        "/m/cut.onnx",
        Route::Cut {
            body: tiny.clone(),
            sent: tiny.len() / 3,
        },
    );
    let url = server.url("/m/tiny.onnx");
    for round in 0..2 {
        let out = run_cli(
            CLI,
            &dir,
            &[
                "-i",
                &input,
                "-o",
                "out.png",
                "--force",
                "--model",
                &url,
                "--model-sha256",
                &hash,
            ],
        );
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
    }
    assert_eq!(
        server.hits("/m/tiny.onnx"),
        1,
        "the second run uses the cache"
    );
    assert_cutout_png(&dir.join("out.png"), 120, 90);

    let wrong = "1".repeat(64);
    let other = temp_dir("cli-model-download-mismatch");
    let out = run_cli(
        CLI,
        &other,
        &["-i", &input, "--model", &url, "--model-sha256", &wrong],
    );
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    assert!(
        stderr(&out).contains(&hash) && stderr(&out).contains(&wrong),
        "{}",
        stderr(&out)
    );
    assert!(
        files_under(&other.join(".cache")).is_empty(),
        "nothing unverified is kept"
    );

    let cut = server.url("/m/cut.onnx");
    let out = run_cli(CLI, &other, &["-i", &input, "--model", &cut]);
    assert_eq!(out.status.code(), Some(MODEL_FAILED));
    assert!(stderr(&out).contains("was cut after"), "{}", stderr(&out));
    assert!(
        files_under(&other.join(".cache")).is_empty(),
        "no partial file is kept"
    );
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn inputs_are_sized_up_before_they_are_read() {
    let dir = temp_dir("cli-input-limits");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let run = |input: &str, extra: &[&str]| {
        let mut args = vec!["-i", input, "-o", "out.png", "--model", model.as_str()];
        args.extend_from_slice(extra);
        let out = run_cli(CLI, &dir, &args);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        stdout(&out)
    };
    let text = run(&input, &["--max-input-bytes", "100"]);
    assert!(
        text.contains("bytes, over the 100-byte input limit (raise it with --max-input-bytes)"),
        "{text}"
    );
    // 2 GB files (sparse: they cost no disk). Neither is read whole: one is refused by its
    // first bytes, the other by its size.
    let sparse = |name: &str, start: &[u8]| {
        let path = dir.join(name);
        let file = fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &file, start).unwrap();
        file.set_len(2 << 30).unwrap();
        path.display().to_string()
    };
    let text = run(&sparse("huge-text.jpg", b"this is no picture"), &[]);
    assert!(
        text.contains("huge-text.jpg: not a supported image"),
        "{text}"
    );
    let png = encode(&red_square_on_blue(120, 90), ImageFormat::Png);
    let text = run(&sparse("huge.png", &png), &[]);
    assert!(
        text.contains("the file is 2147483648 bytes, over the 300000000-byte input limit"),
        "{text}"
    );
    assert!(!dir.join("out.png").exists());
}

#[test]
fn standard_input_and_output_make_a_pipeline() {
    let dir = temp_dir("cli-stdio");
    let model = write_tiny_model(&dir);
    let png = encode(&red_square_on_blue(120, 90), ImageFormat::Png);
    for output in ["-", "/dev/stdout"] {
        let out = run_cli_with_stdin(
            CLI,
            &dir,
            &["-i", "-", "-o", output, "--model", &model],
            &png,
        );
        assert!(out.status.success(), "-o {output}: {}", stderr(&out));
        assert_cutout_png_bytes(&out.stdout, 120, 90, &format!("-o {output}"));
        assert!(
            stderr(&out).contains("COMPLETED stdin -> stdout"),
            "status lines go to standard error: {}",
            stderr(&out)
        );
    }
    // Piped in, written to a file.
    let out = run_cli_with_stdin(
        CLI,
        &dir,
        &["-i", "-", "-o", "piped.png", "--model", &model],
        &png,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_cutout_png(&dir.join("piped.png"), 120, 90);
    let refused = |args: &[&str], input: &[u8], code: i32, expected: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--model", &model]);
        let out = run_cli_with_stdin(CLI, &dir, &all, input);
        let text = stdout(&out) + &stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    };
    refused(
        &["-i", "-", "-o", "-"],
        b"",
        1,
        "FAILED stdin: the input is empty",
    );
    refused(
        &["-i", "-", "-o", "-"],
        b"GIF89a",
        1,
        "FAILED stdin: the image is corrupt",
    );
    refused(
        &["-i", "-", "-o", "-", "--max-input-bytes", "100"],
        &png,
        1,
        "the input is over the 100-byte input limit",
    );
    refused(
        &["-i", "-", "-", "-o", "out/"],
        &png,
        1,
        "standard input can be read only once",
    );
    let photo = write_image(&dir, "photo.png", ImageFormat::Png);
    refused(
        &["-i", &photo, "-", "-o", "-"],
        &png,
        2,
        "-o - writes one image to standard output: give one input",
    );
}

#[test]
fn outputs_are_checked_before_any_work_and_never_replace_links_or_devices() {
    use std::os::unix::fs::FileTypeExt;
    let dir = temp_dir("cli-output-targets");
    let model = write_tiny_model(&dir);
    let input = write_image(&dir, "photo.png", ImageFormat::Png);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--model", &model]);
        run_cli(CLI, &dir, &all)
    };
    // A batch into a finished folder: every output is refused before its input is even read
    // (the unreadable input would otherwise fail first).
    let done = dir.join("done");
    fs::create_dir_all(&done).unwrap();
    fs::write(done.join("photo.png"), b"finished").unwrap();
    fs::write(done.join("broken.png"), b"finished").unwrap();
    fs::write(dir.join("broken.png"), b"not an image").unwrap();
    let broken = dir.join("broken.png").display().to_string();
    let out = run(&["-i", &input, &broken, "-o", "done/"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("already exists (use --force").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("not a supported image"), "{text}");
    assert_eq!(fs::read(done.join("photo.png")).unwrap(), b"finished");
    // An output below a file.
    fs::write(dir.join("notes.txt"), b"keep").unwrap();
    let out = run(&["-i", &input, "-o", "notes.txt/out.png"]);
    assert!(
        stdout(&out).contains("cannot write notes.txt/out.png: notes.txt is a file, not a folder"),
        "{}",
        stdout(&out)
    );
    // A device is written into, not replaced, and needs no --force.
    let out = run(&["-i", &input, "-o", "/dev/null"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A symbolic link: refused without --force; with it, the link stays and its file changes.
    fs::write(dir.join("real.png"), b"old").unwrap();
    std::os::unix::fs::symlink("real.png", dir.join("link.png")).unwrap();
    let out = run(&["-i", &input, "-o", "link.png"]);
    assert!(
        stdout(&out).contains("link.png already exists"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(dir.join("real.png")).unwrap(), b"old");
    let out = run(&["-i", &input, "-o", "link.png", "--force"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(fs::symlink_metadata(dir.join("link.png"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_cutout_png(&dir.join("real.png"), 120, 90);
    std::os::unix::fs::symlink("gone.png", dir.join("dangling.png")).unwrap();
    let out = run(&["-i", &input, "-o", "dangling.png", "--force"]);
    assert!(
        stdout(&out).contains("dangling.png is a symbolic link to gone.png, which does not exist"),
        "{}",
        stdout(&out)
    );
    assert!(!dir.join("gone.png").exists());
}

#[test]
fn silent_and_slow_image_servers_are_given_up_on_naming_the_limit() {
    let dir = temp_dir("cli-stalls");
    let model = write_tiny_model(&dir);
    let server = TestServer::start();
    server.add("/silent.png", Route::Silent);
    server.add(
        "/slow.png",
        Route::Trickle {
            body: vec![0; 40_000],
            interval: std::time::Duration::from_micros(250),
        },
    );
    let silent = server.url("/silent.png");
    let started = std::time::Instant::now();
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            &silent,
            "-o",
            "out.png",
            "--model",
            &model,
            "--stall-timeout",
            "2",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{silent} did not answer within 2 s"))
            && text.contains("--stall-timeout"),
        "{text}"
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "gave up after {:?}",
        started.elapsed()
    );
    let slow = server.url("/slow.png");
    let out = run_cli(
        CLI,
        &dir,
        &[
            "-i",
            &slow,
            "-o",
            "out.png",
            "--model",
            &model,
            "--download-timeout",
            "2",
        ],
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "download of {slow} stopped: not finished within the 2 s limit (--download-timeout)"
        )),
        "{text}"
    );
    assert!(!dir.join("out.png").exists());
}
