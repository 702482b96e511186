//! Edge refinement's time and memory on a large photo (native, one thread): the photo is scaled to
//! MEGAPIXELS, its mask comes from MODEL.onnx (run once, on the photo as given) or from a
//! grayscale MASK.png read as the model's grid; then the reference's bilinear resize (model only),
//! the edge-aware upsampler and the foreground estimate are each timed, medians of RUNS.
//!
//!     cargo run --release --example refine_timing -- PHOTO (MODEL.onnx | MASK.png) [MEGAPIXELS] [RUNS]
//!
//! Times are the thread's CPU time (wall time off Unix). A MASK.png makes the run cheap enough for
//! `valgrind --tool=callgrind`.

use cutout::image::{imageops, GrayImage, RgbaImage};

mod common;

/// One way of bringing the mask to the large photo's size.
type AlphaStage = dyn Fn(&RgbaImage) -> GrayImage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [photo, mask_source, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: refine_timing PHOTO (MODEL.onnx | MASK.png) [MEGAPIXELS] [RUNS]".into(),
        );
    };
    let megapixels: f64 = rest.first().map(|m| m.parse()).transpose()?.unwrap_or(12.0);
    let runs: usize = rest.get(1).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let image = cutout::decode(&std::fs::read(photo)?, cutout::DEFAULT_MAX_PIXELS)?;
    let scale = (megapixels * 1e6 / (image.width() as f64 * image.height() as f64)).sqrt();
    let (width, height) = (
        (image.width() as f64 * scale).round() as u32,
        (image.height() as f64 * scale).round() as u32,
    );

    let mut stages: Vec<(&str, Box<AlphaStage>)> = vec![];
    if mask_source.ends_with(".onnx") {
        let session = common::session_for(mask_source)?;
        let mask = std::sync::Arc::new(session.model_mask(&image, &mut |_| {})?);
        let reference = mask.clone();
        stages.push((
            "bilinear (reference)",
            Box::new(move |big| reference.alpha(big, false)),
        ));
        stages.push((
            "edge-aware upsampler",
            Box::new(move |big| mask.alpha(big, true)),
        ));
    } else {
        let grid = cutout::image::open(mask_source)?.into_luma8();
        let dims = (grid.width() as usize, grid.height() as usize);
        let unit: Vec<f32> = grid.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
        stages.push((
            "edge-aware upsampler",
            Box::new(move |big| cutout::refine::upsample(&unit, dims, big)),
        ));
    }
    let big = imageops::resize(&image, width, height, imageops::FilterType::Triangle);
    drop(image);
    println!(
        "{width}x{height} ({:.1} MP), median of {runs}",
        width as f64 * height as f64 / 1e6
    );

    let mut alpha = None;
    for (name, stage) in &stages {
        let seconds = median(runs, || {
            alpha = Some(stage(&big));
        });
        println!("  {name:<22} {seconds:.3} s");
    }
    let alpha = alpha.expect("one stage ran");
    // In place, as the pipeline does on the photo it decoded: each run on a fresh copy, made
    // (and its memory touched) before the clock starts.
    let seconds = median_with(
        runs,
        || big.clone(),
        |mut photo| cutout::refine::estimate_foreground(&mut photo, &alpha),
    );
    println!("  {:<22} {seconds:.3} s", "foreground estimate");
    if let Some(peak) = peak_memory_mb() {
        println!(
            "  peak memory (VmHWM)    {peak:.0} MB (the photo alone: {:.0} MB)",
            big.len() as f64 / 1e6
        );
    }
    Ok(())
}

fn median(runs: usize, mut run: impl FnMut()) -> f64 {
    median_with(runs, || (), |()| run())
}

/// The median time of `run`, each time on what `prepare` made before the clock started.
fn median_with<T>(runs: usize, mut prepare: impl FnMut() -> T, mut run: impl FnMut(T)) -> f64 {
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let input = prepare();
            let started = thread_cpu_seconds();
            run(input);
            thread_cpu_seconds() - started
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// This thread's CPU time: time the machine's other work took from it does not count.
#[cfg(unix)]
fn thread_cpu_seconds() -> f64 {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: clock_gettime fills the timespec it is given, and says whether it did.
    let now = unsafe {
        let status = libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, now.as_mut_ptr());
        assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        now.assume_init()
    };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Wall time where there is no thread clock.
#[cfg(not(unix))]
fn thread_cpu_seconds() -> f64 {
    static START: std::sync::OnceLock<web_time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(web_time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// The process's peak resident memory, where /proc tells it.
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}
