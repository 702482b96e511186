//! `cutout`: remove image backgrounds on this machine. A thin shell over the `cutout` engine.

mod cleanup;
mod error;
mod inputs;
mod models;
mod net;
mod output;

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use cutout::{Manifest, Options, OutputFormat, OutputKind, Session, Stage};
use indicatif::{ProgressBar, ProgressStyle};

use error::{exit, CliError};
use inputs::Input;
use output::{Destination, Namer};

// Every op's output is a fresh, often 100+ MB, allocation; glibc maps each from (and returns it
// to) the kernel, which zeroes the pages again on first touch. mimalloc keeps and reuses them
// (docs/performance.md), once told not to purge what is freed (see `keep_freed_memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`, which libmimalloc-sys names no constant for: in
/// mimalloc.h (v2 and v3) the option just before `mi_option_use_numa_nodes`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// By default mimalloc (v3, the one libmimalloc-sys builds) hands freed memory back to the
/// kernel about once a second, all that was freed since the last time; a photo's ops run for
/// seconds, so their outputs were faulted in and zeroed by the kernel again and again. Memory is
/// still returned when the process ends. This overrides `MIMALLOC_PURGE_DELAY`.
fn keep_freed_memory() {
    // Safety: sets an option, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser, Debug)]
#[command(
    name = "cutout",
    version,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 every input done, 1 some inputs failed (each has a FAILED line), \
                  2 bad usage or options, 3 the model could not be found, downloaded, verified \
                  or loaded.",
    args_conflicts_with_subcommands = true,
    about = "Remove image backgrounds on this machine: nothing is uploaded.",
    after_help = "Examples:\n  cutout -i photo.jpg                    writes a1b2c3d4.png here\n  \
                  cutout -i photo.jpg -o photo.png\n  cutout -i 'shots/*.jpg' -o cutouts/\n  \
                  cutout -i https://example.com/cat.jpg --bg white --crop\n  \
                  cutout -i photo.jpg --model ./isnet_quint8.onnx --mask-only -o mask.png\n  \
                  cutout models list                     the models, their sizes and licences\n  \
                  cutout models fetch isnet --dir site/models   for self-hosting"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Image file, directory, glob pattern, http(s) URL or - for standard input (repeatable)
    #[arg(short, long = "input", value_name = "PATH|DIR|GLOB|URL|-", num_args = 1.., required_unless_present = "list_models")]
    inputs: Vec<String>,

    /// Output file (one input), directory (several) or - for standard output; default: a random
    /// name in the current directory
    #[arg(short, long, value_name = "FILE|DIR|-")]
    output: Option<PathBuf>,

    /// Model: a manifest id (see --list-models), a local .onnx file or an http(s) URL
    #[arg(short, long, value_name = "ID|PATH|URL")]
    model: Option<String>,

    /// sha256 the model file or URL must have
    #[arg(long, value_name = "HEX")]
    model_sha256: Option<String>,

    /// Manifest id whose input size, normalisation and output a model file follows
    #[arg(long, value_name = "ID")]
    preset: Option<String>,

    /// Write the 8-bit grey mask instead of the cutout
    #[arg(long, conflicts_with = "bg")]
    mask_only: bool,

    /// Fill the background with a colour (#rrggbb, #rrggbbaa, white, ...) instead of transparency
    #[arg(long, value_name = "COLOUR")]
    bg: Option<String>,

    /// Crop to the subject's bounding box
    #[arg(long)]
    crop: bool,

    /// Margin in pixels kept around the subject with --crop
    #[arg(long, value_name = "PX", default_value_t = 0, requires = "crop")]
    crop_margin: u32,

    /// No edge refinement: the mask resized as the reference does, and semi-transparent pixels
    /// keep the photo's colours (the old background's mixed in)
    #[arg(long)]
    no_refine: bool,

    /// Output format: png, webp (lossless) or jpg (flattened onto --bg, white by default);
    /// default from the -o extension, else png
    #[arg(long, value_name = "png|webp|jpg")]
    format: Option<String>,

    /// Threads for inference (default: all cores)
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Largest image accepted, in pixels
    #[arg(long, value_name = "N", default_value_t = cutout::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,

    /// Largest image download accepted, in bytes
    #[arg(long, value_name = "N", default_value_t = 50_000_000)]
    max_download_bytes: u64,

    /// Largest image file (or standard input) accepted, in bytes
    #[arg(long, value_name = "N", default_value_t = 300_000_000)]
    max_input_bytes: u64,

    /// Longest a download may take, in seconds [default: 120 for an image, 3600 for a model]
    #[arg(long, value_name = "SECS")]
    download_timeout: Option<u64>,

    /// A download that sends nothing (or under 1 KiB) for this many seconds is stopped
    #[arg(long, value_name = "SECS", default_value_t = net::DEFAULT_STALL_TIMEOUT.as_secs())]
    stall_timeout: u64,

    /// Overwrite existing output files
    #[arg(long)]
    force: bool,

    /// Print the time each stage takes
    #[arg(long)]
    timings: bool,

    /// No progress bars or notes; status lines only
    #[arg(short, long)]
    quiet: bool,

    /// Download a model without asking first (a non-interactive run never asks)
    #[arg(short, long)]
    yes: bool,

    /// List the models in the manifest and exit (same as `cutout models list`)
    #[arg(long)]
    list_models: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The models: list them, or download one ahead of time
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Every model with its size, licence, whether it is pinned and whether it is cached
    List,
    /// Download and verify a model into the cache, or into DIR for your own server
    /// (then point CUTOUT_MODEL_BASE_URL or the web app's modelBaseUrl at it)
    Fetch {
        /// Manifest id (see `cutout models list`)
        id: String,
        /// Write DIR/<file> (what a mirror serves) instead of only caching it
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Download without asking first
        #[arg(short, long)]
        yes: bool,
        /// No progress bar
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    cleanup::remove_pending_on_interrupt();
    let args = Args::parse();
    net::set_timeouts(net::Timeouts {
        image: args
            .download_timeout
            .map_or(net::DEFAULT_IMAGE_TIMEOUT, Duration::from_secs),
        model: args
            .download_timeout
            .map_or(net::DEFAULT_MODEL_TIMEOUT, Duration::from_secs),
        stall: Duration::from_secs(args.stall_timeout.max(1)),
    });
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn output_format(args: &Args) -> Result<OutputFormat, CliError> {
    let from_flag = match &args.format {
        Some(name) => Some(OutputFormat::from_name(name).ok_or_else(|| {
            CliError::Usage(format!(
                "--format '{name}' is not supported: use png, webp or jpg"
            ))
        })?),
        None => None,
    };
    let from_extension = args
        .output
        .as_deref()
        .filter(|p| {
            !p.is_dir() && !p.to_string_lossy().ends_with('/') && !output::is_device_path(p)
        })
        .and_then(|p| p.extension())
        .map(|e| e.to_string_lossy().into_owned());
    match (from_flag, from_extension) {
        (Some(f), Some(ext)) if OutputFormat::from_name(&ext) != Some(f) => Err(CliError::Usage(
            format!("-o has extension .{ext} but --format is {}", f.extension()),
        )),
        (Some(f), _) => Ok(f),
        (None, Some(ext)) => OutputFormat::from_name(&ext).map(Ok).unwrap_or_else(|| {
            // A single output named without a known extension: refuse rather than guess.
            Err(CliError::Usage(format!(
                "cannot write .{ext} files: name the output .png, .webp or .jpg"
            )))
        }),
        (None, None) => Ok(OutputFormat::Png),
    }
}

fn list_models(manifest: &Manifest) {
    let dir = models::models_dir().ok();
    println!(
        "{:<14} {:>9}  {:<7} {:<8} NAME / LICENCE / SOURCE",
        "ID", "SIZE", "CACHED", "HASH"
    );
    for m in &manifest.models {
        let size = m.size.map_or("?".to_string(), models::megabytes);
        let cached = dir.as_ref().is_some_and(|d| d.join(&m.file).is_file());
        let default = if m.id == manifest.default {
            " (default)"
        } else {
            ""
        };
        let pinned = if m.is_pinned() { "pinned" } else { "TOFU" };
        let gated = if m.gated {
            " (gated: self-host it)"
        } else {
            ""
        };
        let link = m.licence_url.as_deref().unwrap_or("");
        println!(
            "{:<14} {:>9}  {:<7} {pinned:<8} {}{default}\n{:<43}{} {link}\n{:<43}{}{gated}",
            m.id,
            size,
            if cached { "yes" } else { "no" },
            m.name,
            "",
            m.licence,
            "",
            m.source.as_deref().unwrap_or("no public download"),
        );
    }
    if let Some(d) = dir {
        println!("\nmodel cache: {}", d.display());
    }
    println!(
        "pinned: verified against the manifest's sha256; TOFU: trusted on first download (its \
         hash is recorded and a different file is refused later)"
    );
}

fn run_models_command(manifest: &Manifest, command: ModelsCommand) -> Result<ExitCode, CliError> {
    match command {
        ModelsCommand::List => list_models(manifest),
        ModelsCommand::Fetch {
            id,
            dir,
            yes,
            quiet,
        } => {
            let path = models::fetch_command(manifest, &id, dir.as_deref(), quiet, yes)?;
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(mut args: Args) -> Result<ExitCode, CliError> {
    let manifest = models::load_manifest()?;
    if let Some(Command::Models(command)) = args.command.take() {
        return run_models_command(&manifest, command);
    }
    if args.list_models {
        list_models(&manifest);
        return Ok(ExitCode::SUCCESS);
    }
    let format = output_format(&args)?;
    let background = args
        .bg
        .as_deref()
        .map(cutout::parse_colour)
        .transpose()
        .map_err(|e| CliError::engine("--bg: ", e))?;
    let options = Options {
        kind: if args.mask_only {
            OutputKind::Mask
        } else {
            OutputKind::Cutout
        },
        background,
        crop_margin: args.crop.then_some(args.crop_margin),
        format,
        max_pixels: args.max_pixels,
        refine: !args.no_refine,
        ..Options::default()
    };

    let expanded = inputs::expand(&args.inputs);
    let many = expanded.had_collection || expanded.inputs.len() + expanded.bad.len() > 1;
    let destination = match &args.output {
        // `-o /dev/stdout` is `-o -`: the status lines must not end up inside the image.
        Some(o) if o.as_os_str() == inputs::STDIO || o == Path::new("/dev/stdout") => {
            if many {
                return Err(CliError::Usage(
                    "-o - writes one image to standard output: give one input".into(),
                ));
            }
            if std::io::stdout().is_terminal() {
                return Err(CliError::Usage(
                    "-o - would print image data on the terminal: redirect it (> out.png) or \
                     pipe it"
                        .into(),
                ));
            }
            Destination::Stdout
        }
        None => Destination::RandomInCwd,
        Some(o) if many || o.is_dir() || o.to_string_lossy().ends_with('/') => {
            Destination::Directory(o.clone())
        }
        Some(o) => Destination::File(o.clone()),
    };
    if expanded.inputs.is_empty() {
        for bad in &expanded.bad {
            println!("FAILED {}: {}", bad.arg, bad.reason);
        }
        return Err(CliError::Usage("no input images".into()));
    }

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cutout::set_threads(threads.max(1));

    let started = Instant::now();
    let resolved = models::resolve(
        &manifest,
        &models::ModelRequest {
            model: args.model.as_deref(),
            sha256: args.model_sha256.as_deref(),
            preset: args.preset.as_deref(),
            quiet: args.quiet,
            yes: args.yes,
        },
    )?;
    if !args.quiet {
        for note in &resolved.notes {
            eprintln!("note: {note}");
        }
    }
    let model = cutout::Model::load(&resolved.bytes, &resolved.entry)
        .map_err(|e| CliError::engine(format!("model {}: ", resolved.origin), e))?;
    drop(resolved.bytes);
    let load_time = started.elapsed();
    if args.timings {
        let p = model.load_phases();
        eprintln!(
            "model: {} loaded in {:.2} s ({} threads): verify {:.2}, parse {:.2}, typing {:.2}, \
             declutter {:.2}, rewrite {:.2}, optimise {:.2}, plan {:.2} s",
            model.entry().id,
            load_time.as_secs_f64(),
            threads,
            p.verify,
            p.parse,
            p.typing,
            p.declutter,
            p.rewrite,
            p.optimise,
            p.plan
        );
    }
    let session = Session::new(model);

    let total = expanded.inputs.len() + expanded.bad.len();
    let bar = if args.quiet || total < 2 {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    // With the image on standard output, the status lines go to standard error.
    let image_on_stdout = matches!(destination, Destination::Stdout);
    let status = |line: String| {
        if image_on_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let mut failed = expanded.bad.len();
    for bad in &expanded.bad {
        bar.suspend(|| status(format!("FAILED {}: {}", bad.arg, bad.reason)));
        bar.inc(1);
    }
    let mut namer = Namer::new(destination, format);
    let mut completed = 0;
    for input in &expanded.inputs {
        bar.set_message(input.label());
        let outcome = process_one(&session, input, &options, &mut namer, &args);
        bar.suspend(|| match &outcome {
            Ok((path, timings)) => {
                let shown = if image_on_stdout {
                    "stdout".to_string()
                } else {
                    path.display().to_string()
                };
                status(format!("COMPLETED {} -> {shown}", input.label()));
                if args.timings {
                    eprintln!("  {}", format_timings(timings));
                }
            }
            Err(reason) => status(format!("FAILED {}: {reason}", input.label())),
        });
        match outcome {
            Ok(_) => completed += 1,
            Err(_) => failed += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if total > 1 {
        status(format!(
            "{completed} completed, {failed} failed in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(ExitCode::from(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::SOME_INPUTS_FAILED
    }))
}

type Timings = Vec<(Stage, Duration)>;

fn format_timings(timings: &Timings) -> String {
    timings
        .iter()
        .map(|(stage, d)| format!("{} {:.3} s", stage.name(), d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How much of a file is read first: enough for every format's header, so that a file that is
/// no image, or whose header declares too many pixels, is refused without reading the rest.
const HEADER_BYTES: usize = 64 << 10;

fn read_input(input: &Input, args: &Args) -> Result<Vec<u8>, CliError> {
    match input {
        Input::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::File(format!("cannot read: {e}")))?;
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            read_limited(file, size, args)
        }
        Input::Stdin => read_limited(std::io::stdin().lock(), None, args),
        Input::Url(url) => net::fetch_image(url, args.max_download_bytes),
    }
}

/// Reads an image of at most `--max-input-bytes`, its header first (see [`HEADER_BYTES`]).
fn read_limited(source: impl Read, size: Option<u64>, args: &Args) -> Result<Vec<u8>, CliError> {
    let cannot_read = |e: std::io::Error| CliError::File(format!("cannot read: {e}"));
    let limit = args.max_input_bytes;
    let mut source = source.take(limit.saturating_add(1));
    let mut bytes = Vec::new();
    (&mut source)
        .take(HEADER_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    cutout::image_io::check_prefix(&bytes, args.max_pixels)?;
    let too_large = |size: u64| {
        CliError::File(format!(
            "the file is {size} bytes, over the {limit}-byte input limit (raise it with \
             --max-input-bytes)"
        ))
    };
    if let Some(size) = size.filter(|&s| s > limit) {
        return Err(too_large(size));
    }
    if let Some(size) = size {
        bytes.reserve_exact((size as usize).saturating_sub(bytes.len()));
    }
    source.read_to_end(&mut bytes).map_err(cannot_read)?;
    if bytes.len() as u64 > limit {
        return Err(CliError::File(format!(
            "the input is over the {limit}-byte input limit (raise it with --max-input-bytes)"
        )));
    }
    Ok(bytes)
}

fn process_one(
    session: &Session,
    input: &Input,
    options: &Options,
    namer: &mut Namer,
    args: &Args,
) -> Result<(PathBuf, Timings), CliError> {
    // Where the result goes is settled before any work is spent on it.
    let path = namer.name_for(input);
    if let Input::File(source) = input {
        if same_file(source, &path) {
            return Err(CliError::File(format!(
                "refusing to write the result over its own input {}",
                path.display()
            )));
        }
    }
    output::check_target(&path, args.force)?;
    let bytes = read_input(input, args)?;
    let mut timings: Timings = vec![];
    let mut current: Option<(Stage, Instant)> = None;
    let mut on_stage = |stage: Stage| {
        if let Some((prev, t)) = current.take() {
            timings.push((prev, t.elapsed()));
        }
        current = Some((stage, Instant::now()));
    };
    let encoded = session
        .run(cutout::Input::Encoded(&bytes), options, &mut on_stage)?
        .encoded;
    if let Some((prev, t)) = current.take() {
        timings.push((prev, t.elapsed()));
    }
    output::write_output(&path, &encoded, args.force)?;
    Ok((path, timings))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
