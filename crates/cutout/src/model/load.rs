//! Loading a model, step by step: read → verify → parse → type → declutter → our rewrites →
//! optimise → plan. Each step is one function; [`load`] runs them in order and times each.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::internal::tract_data::knobs::KnobScope;
use tract_onnx::tract_hir::infer::Factoid;
use web_time::Instant;

use super::Model;
use crate::error::{catch_panics, Error, Result};
use crate::hash::sha256_hex;
use crate::manifest::ModelEntry;

/// Seconds each step of [`Model::load`] took: hash check (what it added: it runs beside the
/// other steps when there are threads), ONNX parse, type inference (with fp16 widening),
/// declutter, rewrite (our ops swapped in before codegen: Winograd's kernel transforms, in wasm
/// and, for float models, natively on CPUs with AVX2 and FMA), optimise (codegen, weight
/// packing, our ops), plan.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadPhases {
    pub verify: f64,
    pub parse: f64,
    pub typing: f64,
    pub declutter: f64,
    pub rewrite: f64,
    pub optimise: f64,
    pub plan: f64,
}

impl LoadPhases {
    fn loading(&self) -> f64 {
        self.parse + self.typing + self.declutter + self.rewrite + self.optimise + self.plan
    }
}

/// Times consecutive steps: each [`Laps::lap`] returns the seconds since the previous one.
struct Laps(Instant);

impl Laps {
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let seconds = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        seconds
    }
}

/// tract's settings for our models, for this load only (a scope, not a process-wide knob):
/// tract's direct spatial convolution (x86 FMA / aarch64 only) is slower than im2col + matrix
/// product on these models' convolutions (docs/performance.md).
fn tract_settings() -> TractResult<KnobScope> {
    KnobScope::new([("TRACT_DISABLE_DIRECT_SPATIAL", "true")])
}

/// The largest model input accepted, per side (RMBG-2.0 takes 1024).
const MAX_INPUT_SIDE: usize = 4096;
const MAX_INPUT_PIXELS: usize = MAX_INPUT_SIDE * MAX_INPUT_SIDE;

pub(super) fn load(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<Model> {
    let started = Instant::now();
    read(onnx_bytes)?;
    // The hash runs beside parsing and optimising when there are threads (the model is only
    // returned once it matched).
    let (verified, loaded) = crate::ops::overlap(
        || verify(onnx_bytes, entry),
        || {
            // tract panics on some malformed graphs instead of returning an error: for the user
            // that is still a model that cannot be used.
            catch_panics("reading the graph", || build(onnx_bytes, entry)).map_err(|e| match e {
                Error::Internal { detail } => bad_model("not a usable ONNX model", detail),
                other => other,
            })
        },
    );
    verified?;
    let mut model = loaded?;
    model.phases.verify = (started.elapsed().as_secs_f64() - model.phases.loading()).max(0.0);
    Ok(model)
}

/// Step 1: there must be bytes to read.
fn read(onnx_bytes: &[u8]) -> Result<()> {
    if onnx_bytes.is_empty() {
        return Err(bad_model("the model file", "is empty"));
    }
    Ok(())
}

/// Step 2: when the entry pins a sha256, the bytes must hash to it.
fn verify(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<()> {
    let Some(expected) = &entry.sha256 else {
        return Ok(());
    };
    let actual = sha256_hex(onnx_bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(Error::HashMismatch {
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// Steps 3-8, timed one by one.
fn build(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<Model> {
    let mut phases = LoadPhases::default();
    let mut laps = Laps(Instant::now());
    let (model, (width, height)) = parse(onnx_bytes, entry)?;
    phases.parse = laps.lap();
    let (mut typed, widened_fp16) = into_typed(model)?;
    phases.typing = laps.lap();
    let settings = tract_settings().map_err(|e| bad_model("tract settings", tract_words(&e)))?;
    let (plan, mask_size) = settings.enter(|| -> Result<_> {
        crate::optimise::declutter(&mut typed).map_err(|e| failed("decluttering", e))?;
        phases.declutter = laps.lap();
        crate::ops::before_codegen(&mut typed).map_err(|e| failed("rewriting", e))?;
        phases.rewrite = laps.lap();
        optimise(&mut typed).map_err(|e| failed("optimising", e))?;
        phases.optimise = laps.lap();
        let planned = plan(typed)?;
        phases.plan = laps.lap();
        Ok(planned)
    })?;
    let mut entry = entry.clone();
    entry.input.width = width as u32;
    entry.input.height = height as u32;
    let node_weights = output_sizes(plan.model());
    Ok(Model {
        mask_size,
        plan,
        entry,
        input_size: (width, height),
        widened_fp16,
        phases,
        node_weights: Arc::new(std::sync::Mutex::new(node_weights)),
    })
}

/// Each node's output size in values, by node id: the first inference's progress weights.
fn output_sizes(model: &TypedModel) -> Vec<f64> {
    model
        .nodes()
        .iter()
        .map(|node| {
            node.outputs
                .iter()
                .filter_map(|output| output.fact.shape.as_concrete())
                .map(|shape| shape.iter().product::<usize>() as f64)
                .sum()
        })
        .collect()
}

/// Step 3: the ONNX graph, cut down to one `[1, 3, height, width]` f32 input and the mask
/// output (so the side outputs are never computed), and that input's (width, height).
fn parse(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<(InferenceModel, (usize, usize))> {
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &onnx_bytes[..])
        .map_err(|e| bad_model("not a readable ONNX model", tract_words(&e)))?;
    let inputs = model
        .input_outlets()
        .map_err(|e| bad_model("inputs", e))?
        .to_vec();
    let input_index = match inputs.len() {
        0 => return Err(bad_model("the graph", "has no inputs")),
        1 => 0,
        _ => inputs
            .iter()
            .position(|o| model.node(o.node).name == entry.input.name)
            .ok_or_else(|| {
                bad_model(
                    "the graph",
                    format!(
                        "has {} inputs and none is named '{}'",
                        inputs.len(),
                        entry.input.name
                    ),
                )
            })?,
    };
    let declared = model
        .input_fact(input_index)
        .map_err(|e| bad_model("input", e))?
        .clone();
    if let Some(rank) = declared.shape.rank().concretize() {
        if rank != 4 {
            return Err(bad_model(
                "wrong input shape",
                format!(
                    "the input has rank {rank}, expected an image tensor [1, 3, height, width]"
                ),
            ));
        }
    }
    if let Some(channels) = fixed_dim(&declared, 1) {
        if channels != 3 {
            return Err(bad_model(
                "wrong input shape",
                format!("the input has {channels} channels, expected 3 (RGB)"),
            ));
        }
    }
    // The graph is the truth about its own size; the manifest fills in what it leaves open.
    let height = fixed_dim(&declared, 2).unwrap_or(entry.input.height as usize);
    let width = fixed_dim(&declared, 3).unwrap_or(entry.input.width as usize);
    // Checked before anything is sized from it: a graph can declare any input, and a tensor that
    // cannot be allocated aborts the process instead of failing.
    if width == 0 || height == 0 || width.saturating_mul(height) > MAX_INPUT_PIXELS {
        return Err(bad_model(
            "wrong input shape",
            format!(
                "the input is {width}x{height}: segmentation models take a fixed size between \
                 1x1 and {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} pixels"
            ),
        ));
    }
    model
        .set_input_fact(input_index, f32::fact([1, 3, height, width]).into())
        .map_err(|e| bad_model("input", e))?;
    if inputs.len() > 1 {
        model
            .set_input_outlets(&[inputs[input_index]])
            .map_err(|e| bad_model("input", e))?;
    }

    let outputs = model
        .output_outlets()
        .map_err(|e| bad_model("outputs", e))?
        .to_vec();
    let mask_outlet = outputs
        .iter()
        .find(|o| {
            model.outlet_label(**o) == Some(entry.output.name.as_str())
                || model.node(o.node).name == entry.output.name
        })
        .or_else(|| outputs.get(entry.output.index))
        .copied()
        .ok_or_else(|| {
            bad_model(
                "the graph",
                format!(
                    "has no output named '{}' and only {} outputs",
                    entry.output.name,
                    outputs.len()
                ),
            )
        })?;
    model
        .select_output_outlets(&[mask_outlet])
        .map_err(|e| bad_model("outputs", e))?;
    Ok((model, (width, height)))
}

/// Step 4: type inference, then fp16 widened to f32 (tract computes f16 slowly on CPUs
/// without native half arithmetic). Returns whether there was fp16 to widen.
fn into_typed(model: InferenceModel) -> Result<(TypedModel, bool)> {
    let mut typed = model.into_typed().map_err(|e| {
        bad_model(
            "the graph does not fit a [1, 3, H, W] image input",
            tract_words(&e),
        )
    })?;
    let has_fp16 = typed.nodes().iter().any(|n| {
        n.outputs
            .iter()
            .any(|o| o.fact.datum_type == f16::datum_type())
    });
    if has_fp16 {
        typed
            .transform(&FloatPrecisionTranslator::new(
                f16::datum_type(),
                f32::datum_type(),
            ))
            .and_then(|()| crate::ops::fold_f16_constant_casts(&mut typed))
            .map_err(|e| bad_model("converting fp16 to f32", tract_words(&e)))?;
    }
    Ok((typed, has_fp16))
}

/// Step 7: tract's codegen, then our ops where codegen's are slow.
fn optimise(typed: &mut TypedModel) -> TractResult<()> {
    crate::optimise::optimise(typed)?;
    crate::ops::after_codegen(typed)
}

/// Step 8: the runnable plan, once its single output is known to be an f32 mask, and that
/// mask's (width, height).
fn plan(optimised: TypedModel) -> Result<(Arc<TypedRunnableModel>, (usize, usize))> {
    let out_fact = optimised
        .output_fact(0)
        .map_err(|e| bad_model("output", e))?;
    if out_fact.datum_type != f32::datum_type() {
        return Err(bad_model(
            "wrong output type",
            format!("the mask is {:?}, expected f32", out_fact.datum_type),
        ));
    }
    let mask_size = mask_dims(out_fact)?;
    let plan = optimised
        .into_runnable()
        .map_err(|e| bad_model("preparing the plan", tract_words(&e)))?;
    Ok((plan, mask_size))
}

/// (width, height) of a mask output shaped `[h, w]`, `[1, h, w]` or `[1, 1, h, w]`.
fn mask_dims(fact: &TypedFact) -> Result<(usize, usize)> {
    let Some(dims) = fact.shape.as_concrete() else {
        return Err(bad_model("the mask output", "has no fixed shape"));
    };
    let (h, w) = match dims {
        [h, w] | [1, h, w] | [1, 1, h, w] => (*h, *w),
        other => {
            return Err(bad_model(
                "wrong output shape",
                format!("the mask output is {other:?}, expected [1, 1, height, width]"),
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(bad_model("wrong output shape", "the mask output is empty"));
    }
    Ok((w, h))
}

fn bad_model(context: &str, e: impl std::fmt::Display) -> Error {
    Error::BadModel {
        detail: format!("{context}: {e}"),
    }
}

/// tract's error chain in words: without the Rust type names some links are
/// ("ShapeError/OutOfBounds"), and up to the first link that is a dump of its internal state
/// (inference rules, debug-printed values).
fn tract_words(e: &TractError) -> String {
    let chain = format!("{e:#}");
    let is_type_name = |link: &str| {
        !link.contains(' ')
            && link.chars().skip(1).any(|c| c.is_ascii_uppercase())
            && link.chars().all(|c| c.is_ascii_alphanumeric() || c == '/')
    };
    let is_dump = |link: &str| link.contains(['{', '}', '=', '[', '"']);
    let words: Vec<&str> = chain
        .split(": ")
        .take_while(|link| !is_dump(link))
        .filter(|link| !is_type_name(link))
        .collect();
    if words.is_empty() {
        "tract cannot read it".into()
    } else {
        words.join(": ")
    }
}

fn failed(step: &str, e: TractError) -> Error {
    bad_model(&format!("{step} the graph"), tract_words(&e))
}

/// Concrete value of an input dimension, if the model fixes it.
fn fixed_dim(fact: &InferenceFact, axis: usize) -> Option<usize> {
    fact.shape
        .dim(axis)?
        .concretize()?
        .to_i64()
        .ok()
        .and_then(|d| usize::try_from(d).ok())
}
