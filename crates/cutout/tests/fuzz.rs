//! Fuzzing the engine: decode -> preprocess -> inference -> postprocess -> encode driven by
//! mutated real-format files, by pixels of arbitrary dimensions with arbitrary options, and the
//! model loader driven by mutated small ONNX files. Every case must end in a result that decodes
//! at the right size or in an error in plain words: no panic, no abort, no hang.
//!
//! Seeded and time-boxed: `CUTOUT_FUZZ_SECONDS` per target (default 20: `make test`; `make fuzz`
//! runs longer with a fresh seed) and `CUTOUT_FUZZ_SEED` (the run prints it). A failing case is
//! saved under target/fuzz-failures/ with the seed and case number that reproduce it; the case
//! in flight is kept there too, for a crash that takes the process down (an abort).

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cutout::{
    image_io::DEFAULT_MAX_PIXELS, Input, Model, Options, OutputFormat, OutputKind, Session,
};
use cutout_testkit::{encode, red_square_on_blue, workspace_root, Rng, TinyModel, IMAGE_FORMATS};
use image::{DynamicImage, ImageFormat, RgbaImage};
use tract_onnx::pb;

/// A case that takes longer than this is a hang (the longest honest case is a few hundred ms).
const HANG_LIMIT: Duration = Duration::from_secs(30);

struct Run {
    target: &'static str,
    seed: u64,
    budget: Duration,
}

impl Run {
    fn new(target: &'static str) -> Run {
        let seconds = std::env::var("CUTOUT_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        let seed = std::env::var("CUTOUT_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0xC0FFEE);
        eprintln!(
            "fuzz {target}: seed {seed}, {seconds} s (CUTOUT_FUZZ_SEED, CUTOUT_FUZZ_SECONDS)"
        );
        Run {
            target,
            seed,
            budget: Duration::from_secs(seconds),
        }
    }

    fn failures_dir() -> PathBuf {
        let dir = workspace_root().join("target/fuzz-failures");
        std::fs::create_dir_all(&dir).expect("create target/fuzz-failures");
        dir
    }

    /// Runs cases until the budget is spent: `case(rng)` builds a case from the generator and
    /// returns its input bytes and a description of the rest (both saved if it fails) and the
    /// check to run on it.
    fn cases<F>(&self, mut case: impl FnMut(&mut Rng) -> (Vec<u8>, String, F)) -> Tally
    where
        F: FnOnce() -> Outcome + Send + 'static,
    {
        let started = Instant::now();
        let mut rng = Rng::new(self.seed ^ fxhash(self.target.as_bytes()));
        let in_flight = Self::failures_dir().join(format!("{}-in-flight", self.target));
        let mut tally = Tally::default();
        let mut number = 0u64;
        while started.elapsed() < self.budget {
            number += 1;
            let (bytes, description, check) = case(&mut rng);
            let description = format!(
                "CUTOUT_FUZZ_SEED={} case {number}: {description}\n",
                self.seed
            );
            save(&in_flight, &bytes, &description);
            let (done, outcome) = mpsc::channel();
            let worker = std::thread::spawn(move || {
                let _ = done.send(check());
            });
            let failure = match outcome.recv_timeout(HANG_LIMIT) {
                Ok(Outcome::Result) => {
                    tally.results += 1;
                    None
                }
                Ok(Outcome::Refused(code)) => {
                    *tally.refusals.entry(code).or_default() += 1;
                    None
                }
                Ok(Outcome::Wrong(what)) => Some(what),
                Err(mpsc::RecvTimeoutError::Timeout) => Some(format!(
                    "no answer within {} s (a hang)",
                    HANG_LIMIT.as_secs()
                )),
                // The sender went away without a word: the check panicked.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let panic = worker.join().err().map(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    });
                    Some(format!("panicked: {}", panic.unwrap_or_default()))
                }
            };
            if let Some(what) = failure {
                let saved = Self::failures_dir()
                    .join(format!("{}-seed{}-case{number}", self.target, self.seed));
                save(&saved, &bytes, &description);
                panic!(
                    "fuzz {} case {number} (CUTOUT_FUZZ_SEED={}): {what}\n  saved as {}.bin / .txt",
                    self.target,
                    self.seed,
                    saved.display()
                );
            }
        }
        let _ = std::fs::remove_file(in_flight.with_extension("bin"));
        let _ = std::fs::remove_file(in_flight.with_extension("txt"));
        tally.cases = number;
        eprintln!("fuzz {}: {tally}", self.target);
        tally
    }
}

/// A case as `<path>.bin` (its input bytes) and `<path>.txt` (the seed, its number, the rest).
fn save(path: &std::path::Path, bytes: &[u8], description: &str) {
    std::fs::write(path.with_extension("bin"), bytes).expect("save a case");
    std::fs::write(path.with_extension("txt"), description).expect("save a case");
}

/// How one case ended.
enum Outcome {
    /// A result that checks out.
    Result,
    /// A clean refusal, by error code.
    Refused(&'static str),
    /// Anything else: a wrong result or an unreadable message.
    Wrong(String),
}

#[derive(Default)]
struct Tally {
    cases: u64,
    results: u64,
    refusals: std::collections::BTreeMap<&'static str, u64>,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let refusals = self
            .refusals
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "{} cases: {} results, refused: {}",
            self.cases,
            self.results,
            if refusals.is_empty() {
                "none"
            } else {
                &refusals
            }
        )
    }
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// An error must say what is wrong in words: not empty, no Rust value dumped into it.
fn refusal(error: &cutout::Error) -> Outcome {
    let message = error.to_string();
    if message.trim().is_empty() || message.contains(['{', '}']) || message.contains("Error") {
        return Outcome::Wrong(format!("unclear message: {message:?}"));
    }
    Outcome::Refused(error.code())
}

/// A result must be what the options asked for: a file that decodes, at the rendered size, and a
/// mask of the input's size.
fn check_result(
    cutout: &cutout::Cutout,
    options: &Options,
    input_size: Option<(u32, u32)>,
) -> Outcome {
    let (width, height) = cutout.image.dimensions();
    if width == 0 || height == 0 {
        return Outcome::Wrong(format!("an empty result ({width}x{height})"));
    }
    if let Some(size) = input_size {
        if cutout.alpha.dimensions() != size {
            return Outcome::Wrong(format!(
                "a {:?} mask for a {size:?} input",
                cutout.alpha.dimensions()
            ));
        }
    }
    // A max_side of 0 means no limit.
    if let Some(max_side) = options.max_side.filter(|&side| side > 0) {
        if width.max(height) > max_side {
            return Outcome::Wrong(format!("{width}x{height} is over max_side {max_side}"));
        }
    }
    let format = ImageFormat::from_extension(options.format.extension()).expect("an image format");
    match image::load_from_memory_with_format(&cutout.encoded, format) {
        Ok(decoded) if decoded.width() == width && decoded.height() == height => Outcome::Result,
        Ok(decoded) => Outcome::Wrong(format!(
            "the file is {}x{}, the result {width}x{height}",
            decoded.width(),
            decoded.height()
        )),
        Err(e) => Outcome::Wrong(format!("the encoded result does not decode: {e}")),
    }
}

/// Arbitrary options, the odd ones included (zero and enormous sizes and margins).
fn arbitrary_options(rng: &mut Rng) -> Options {
    let mut options = Options {
        kind: if rng.in_range(0, 3) == 0 {
            OutputKind::Mask
        } else {
            OutputKind::Cutout
        },
        refine: rng.in_range(0, 1) == 0,
        keep_view: rng.in_range(0, 3) == 0,
        format: match rng.in_range(0, 3) {
            0 => OutputFormat::WebpLossless,
            1 => OutputFormat::Jpeg {
                quality: rng.in_range(0, 120) as u8,
            },
            _ => OutputFormat::Png,
        },
        // Mostly a small limit, so that a header that claims a large image is cheap to refuse.
        max_pixels: if rng.in_range(0, 7) == 0 {
            DEFAULT_MAX_PIXELS
        } else {
            *rng.pick(&[1, 4096, 1 << 20, 4 << 20, 4 << 20, 16 << 20])
        },
        ..Options::default()
    };
    if rng.in_range(0, 2) == 0 {
        options.crop_margin = Some(*rng.pick(&[0, 1, 7, 300, u32::MAX / 2, u32::MAX]));
    }
    if rng.in_range(0, 3) == 0 {
        options.max_side = Some(*rng.pick(&[0, 1, 2, 17, 64, u32::MAX]));
    }
    if rng.in_range(0, 3) == 0 {
        options.background = Some([rng.byte(), rng.byte(), rng.byte(), rng.byte()]);
    }
    if rng.in_range(0, 5) == 0 {
        let (w, h) = (rng.in_range(0, 40) as u32, rng.in_range(0, 40) as u32);
        let picture = RgbaImage::from_raw(w, h, rng.bytes((w * h * 4) as usize)).unwrap();
        options.background_image = Some(Arc::new(picture));
    }
    options
}

fn tiny_session() -> Arc<Session> {
    let tiny = TinyModel::default();
    Arc::new(Session::new(
        Model::load(&tiny.onnx_bytes(), &tiny.entry()).expect("the tiny model loads"),
    ))
}

/// Small real files of every format and of the variants decoders treat differently.
fn image_seeds() -> Vec<Vec<u8>> {
    let subject = red_square_on_blue(40, 30);
    let mut seeds: Vec<Vec<u8>> = IMAGE_FORMATS
        .into_iter()
        .map(|format| encode(&subject, format))
        .collect();
    let encode_dynamic = |image: DynamicImage, format: ImageFormat| {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode a seed");
        out.into_inner()
    };
    let dynamic = DynamicImage::ImageRgba8(subject.clone());
    seeds.push(encode_dynamic(
        DynamicImage::ImageLuma8(dynamic.to_luma8()),
        ImageFormat::Png,
    ));
    seeds.push(encode_dynamic(
        DynamicImage::ImageRgba16(dynamic.to_rgba16()),
        ImageFormat::Png,
    ));
    seeds.push(encode_dynamic(
        DynamicImage::ImageLuma8(dynamic.to_luma8()),
        ImageFormat::Jpeg,
    ));
    let rgb = dynamic.to_rgb8();
    let jpeg_with = |progressive: bool, restart: u16| {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
        encoder.set_progressive(progressive);
        if restart > 0 {
            encoder.set_restart_interval(restart);
        }
        encoder
            .encode(rgb.as_raw(), 40, 30, jpeg_encoder::ColorType::Rgb)
            .expect("encode a seed");
        out
    };
    seeds.push(jpeg_with(true, 0));
    seeds.push(jpeg_with(false, 2));
    seeds.push(jpeg_with(true, 3));
    seeds.push(cutout_testkit::jpeg_with_orientation(&seeds[1], 6));
    seeds
}

const INTERESTING: [u32; 12] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    7000,
    16384,
    65535,
    0x7FFF_FFFF,
    u32::MAX,
];

/// One to four byte-level mutations: flips, interesting values (in the header, where sizes
/// live, more often), cuts, deletions, duplications and insertions.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.in_range(1, 4) {
        if bytes.is_empty() {
            let len = rng.in_range(1, 16) as usize;
            bytes.extend(rng.bytes(len));
        }
        let len = bytes.len() as i32;
        let at = |rng: &mut Rng| rng.in_range(0, len - 1) as usize;
        match rng.in_range(0, 7) {
            0 => {
                let i = at(rng);
                bytes[i] ^= 1 << rng.in_range(0, 7);
            }
            1 => {
                let i = at(rng);
                bytes[i] = INTERESTING[rng.in_range(0, 5) as usize] as u8;
            }
            2 => {
                let value = *rng.pick(&INTERESTING);
                let wide = rng.in_range(0, 1) == 0;
                let raw = match (wide, rng.in_range(0, 1) == 0) {
                    (true, true) => value.to_be_bytes().to_vec(),
                    (true, false) => value.to_le_bytes().to_vec(),
                    (false, true) => (value as u16).to_be_bytes().to_vec(),
                    (false, false) => (value as u16).to_le_bytes().to_vec(),
                };
                let i = rng.in_range(0, (len - 1).min(80)) as usize;
                for (k, b) in raw.into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i + k) {
                        *slot = b;
                    }
                }
            }
            3 => bytes.truncate(at(rng)),
            4 => {
                let start = at(rng);
                let end = (start + rng.in_range(1, 64) as usize).min(bytes.len());
                bytes.drain(start..end);
            }
            5 => {
                let start = at(rng);
                let end = (start + rng.in_range(1, 256) as usize).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                let to = at(rng);
                bytes.splice(to..to, copy);
            }
            6 => {
                let to = at(rng);
                let len = rng.in_range(1, 32) as usize;
                let noise = rng.bytes(len);
                bytes.splice(to..to, noise);
            }
            _ => {
                let start = at(rng);
                for slot in bytes
                    .iter_mut()
                    .skip(start)
                    .take(rng.in_range(1, 16) as usize)
                {
                    *slot = rng.byte();
                }
            }
        }
    }
}

#[test]
fn fuzz_mutated_image_files_through_the_whole_pipeline() {
    let run = Run::new("images");
    let session = tiny_session();
    let seeds = image_seeds();
    let tally = run.cases(|rng| {
        let mut bytes = rng.pick(&seeds).clone();
        mutate(rng, &mut bytes);
        let options = arbitrary_options(rng);
        let session = session.clone();
        let case = bytes.clone();
        let description = format!("{options:?}");
        (bytes, description, move || {
            let decoded_size = cutout::decode(&case, options.max_pixels)
                .ok()
                .map(|i| i.dimensions());
            match session.run(Input::Encoded(&case), &options, &mut |_| {}) {
                Ok(cutout) => check_result(&cutout, &options, decoded_size),
                Err(e) => refusal(&e),
            }
        })
    });
    assert!(tally.results > 0 && !tally.refusals.is_empty(), "{tally}");
}

#[test]
fn fuzz_pixels_of_arbitrary_dimensions_and_options() {
    let run = Run::new("pixels");
    let session = tiny_session();
    let tally = run.cases(|rng| {
        // Mostly small, sometimes one pixel wide or tall, sometimes long and thin.
        let side = |rng: &mut Rng| match rng.in_range(0, 9) {
            0 => 1,
            1 => rng.in_range(1000, 3000) as u32,
            _ => rng.in_range(1, 200) as u32,
        };
        let (width, height) = (side(rng), side(rng));
        let mut pixels = vec![0u8; (width * height * 4) as usize];
        // Noise in a corner, flat elsewhere: cheap to make, and the model sees both.
        for (slot, b) in pixels.iter_mut().zip(rng.bytes(4096)) {
            *slot = b;
        }
        let image = RgbaImage::from_raw(width, height, pixels).unwrap();
        let options = arbitrary_options(rng);
        let session = session.clone();
        let description = format!("{width}x{height} pixels, {options:?}");
        (
            image.as_raw()[..4096.min(image.as_raw().len())].to_vec(),
            description,
            move || match session.run(Input::Pixels(&image), &options, &mut |_| {}) {
                Ok(cutout) => check_result(&cutout, &options, Some((width, height))),
                Err(e) => refusal(&e),
            },
        )
    });
    assert!(tally.results > 0, "{tally}");
    // An image with no pixels is refused, whichever side is zero.
    for (width, height) in [(0, 0), (0, 7), (7, 0)] {
        let err = session
            .run(
                Input::Pixels(&RgbaImage::new(width, height)),
                &Options::default(),
                &mut |_| {},
            )
            .err()
            .map(|e| e.code());
        assert_eq!(err, Some("zero-size"), "{width}x{height}");
    }
}

fn tiny_description(tiny: &TinyModel) -> String {
    format!(
        "tiny model, {}x{}, {}, {} sigmoid",
        tiny.size,
        tiny.size,
        if tiny.fp16 { "fp16" } else { "fp32" },
        if tiny.sigmoid { "with" } else { "no" }
    )
}

/// The tiny models in their variants: fp32 and fp16, with and without a sigmoid, two sizes.
fn model_seeds() -> Vec<TinyModel> {
    let mut seeds = vec![];
    for fp16 in [false, true] {
        for sigmoid in [false, true] {
            for size in [8, 32] {
                seeds.push(TinyModel {
                    fp16,
                    sigmoid,
                    size,
                    ..TinyModel::default()
                });
            }
        }
    }
    seeds
}

/// A change a broken or hostile exporter might make: a dimension, an operator, an attribute, a
/// data type, a dropped node or initializer, a rewired input.
fn mutate_graph(rng: &mut Rng, model: &mut pb::ModelProto) {
    let graph = model.graph.as_mut().expect("a graph");
    let dims = [0i64, -1, 1, 2, 3, 4095, 4097, 1 << 20, 1 << 31, i64::MAX];
    let ops = [
        "Conv",
        "Sigmoid",
        "Identity",
        "Cast",
        "Relu",
        "Resize",
        "MaxPool",
        "Concat",
        "Add",
        "Mul",
        "Reshape",
        "Transpose",
        "Nope",
    ];
    match rng.in_range(0, 6) {
        0 => {
            let infos: Vec<&mut pb::ValueInfoProto> = graph
                .input
                .iter_mut()
                .chain(graph.output.iter_mut())
                .collect();
            let count = infos.len() as i32;
            let info = infos
                .into_iter()
                .nth(rng.in_range(0, count - 1) as usize)
                .unwrap();
            use pb::tensor_shape_proto::dimension::Value;
            if let Some(pb::type_proto::Value::TensorType(t)) =
                info.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                if let Some(shape) = t.shape.as_mut() {
                    if !shape.dim.is_empty() {
                        let i = rng.index(shape.dim.len());
                        shape.dim[i].value = Some(Value::DimValue(*rng.pick(&dims)));
                    }
                }
            }
        }
        1 if !graph.initializer.is_empty() => {
            let i = rng.index(graph.initializer.len());
            let t = &mut graph.initializer[i];
            if !t.dims.is_empty() {
                let d = rng.index(t.dims.len());
                t.dims[d] = *rng.pick(&dims);
            }
        }
        2 if !graph.node.is_empty() => {
            let i = rng.index(graph.node.len());
            graph.node[i].op_type = (*rng.pick(&ops)).into();
        }
        3 if !graph.node.is_empty() => {
            let i = rng.index(graph.node.len());
            graph.node.remove(i);
        }
        4 if !graph.initializer.is_empty() => {
            let i = rng.index(graph.initializer.len());
            graph.initializer[i].data_type = rng.in_range(0, 20);
        }
        5 if !graph.node.is_empty() => {
            let i = rng.index(graph.node.len());
            let names = ["input", "mask_w", "logits", "missing", ""];
            let node = &mut graph.node[i];
            if !node.input.is_empty() {
                let k = rng.index(node.input.len());
                node.input[k] = (*rng.pick(&names)).into();
            }
        }
        _ => {
            let i = rng.in_range(0, graph.node.len().max(1) as i32 - 1) as usize;
            if let Some(node) = graph.node.get_mut(i) {
                node.attribute.push(pb::AttributeProto {
                    name: ["to", "group", "kernel_shape", "strides", "pads", "axis"]
                        [rng.in_range(0, 5) as usize]
                        .into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i: *rng.pick(&dims),
                    ..Default::default()
                });
            }
        }
    }
}

#[test]
fn fuzz_mutated_models_through_the_loader_and_a_run() {
    use prost::Message;
    let run = Run::new("models");
    let seeds = model_seeds();
    let photo = red_square_on_blue(24, 18);
    let tally = run.cases(|rng| {
        let tiny = rng.pick(&seeds);
        let entry = tiny.entry();
        let mut bytes = tiny.onnx_bytes();
        // Half the cases change the graph's meaning, half its bytes (the parser's side).
        if rng.in_range(0, 1) == 0 {
            let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("a seed parses");
            for _ in 0..rng.in_range(1, 3) {
                mutate_graph(rng, &mut model);
            }
            bytes = model.encode_to_vec();
        } else {
            mutate(rng, &mut bytes);
        }
        let photo = photo.clone();
        let case = bytes.clone();
        let description = format!("a mutated {}", tiny_description(tiny));
        (bytes, description, move || {
            match Model::load(&case, &entry) {
                Err(e) => refusal(&e),
                Ok(model) => {
                    let options = Options::default();
                    match Session::new(model).run(Input::Pixels(&photo), &options, &mut |_| {}) {
                        Ok(cutout) => check_result(&cutout, &options, Some(photo.dimensions())),
                        Err(e) => refusal(&e),
                    }
                }
            }
        })
    });
    assert!(tally.results > 0 && !tally.refusals.is_empty(), "{tally}");
}
