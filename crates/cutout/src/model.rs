//! Loading an ONNX segmentation model into a tract plan that computes only the mask output.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{catch_panics, Error, Result};
use crate::manifest::ModelEntry;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(Sha256::new_with_prefix(bytes))
}

/// Finishes a streaming sha256 (for downloads hashed as they arrive) as lower-case hex.
pub fn hex_digest(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Time one op type took over a profiled inference.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpProfile {
    pub op: String,
    pub calls: usize,
    pub seconds: f64,
}

/// A loaded model, ready to run on normalised `[1, 3, height, width]` tensors.
#[derive(Debug, Clone)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
    entry: ModelEntry,
    input_size: (usize, usize),
    mask_size: (usize, usize),
    /// Whether the file held fp16 tensors that were widened to f32 at load.
    widened_fp16: bool,
    phases: LoadPhases,
}

/// Seconds each phase of [`Model::load`] took: hash check (what it added: it runs beside the
/// other phases when there are threads), ONNX parse, type inference (with fp16 widening),
/// declutter, rewrite (our ops swapped in before codegen: Winograd's kernel transforms in
/// wasm), optimise (codegen, weight packing, our ops), plan.
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

/// A failure inside tract while running the graph, with its whole cause chain.
fn inference_error(e: TractError) -> Error {
    Error::Inference {
        detail: format!("{e:#}"),
    }
}

fn bad_model(context: &str, e: impl std::fmt::Display) -> Error {
    Error::BadModel {
        detail: format!("{context}: {e}"),
    }
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

impl Model {
    /// Parses, verifies and optimises `onnx_bytes` as the model `entry` describes. When the entry
    /// pins a sha256, the bytes must hash to it.
    pub fn load(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<Model> {
        #[cfg(not(target_family = "wasm"))]
        let clock = {
            let epoch = std::time::Instant::now();
            move || epoch.elapsed().as_secs_f64()
        };
        #[cfg(target_family = "wasm")]
        let clock = || 0.0;
        Model::load_with_clock(onnx_bytes, entry, &clock)
    }

    /// [`Model::load`], timing its phases with `clock` (seconds; see [`Model::load_phases`]).
    pub fn load_with_clock(
        onnx_bytes: &[u8],
        entry: &ModelEntry,
        clock: &dyn Fn() -> f64,
    ) -> Result<Model> {
        let started = clock();
        // The hash runs beside parsing and optimising when there are threads (the model is
        // only returned once it matched).
        let (actual, loaded) = crate::ops::overlap(
            || entry.sha256.as_ref().map(|_| sha256_hex(onnx_bytes)),
            || {
                catch_panics("model loading", || {
                    Model::load_unverified(onnx_bytes, entry, clock)
                })
            },
        );
        if let (Some(expected), Some(actual)) = (&entry.sha256, actual) {
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(Error::HashMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let mut model = loaded?;
        let phases = &model.phases;
        let loading = phases.parse
            + phases.typing
            + phases.declutter
            + phases.rewrite
            + phases.optimise
            + phases.plan;
        model.phases.verify = (clock() - started - loading).max(0.0);
        Ok(model)
    }

    /// How long each phase of loading took.
    pub fn load_phases(&self) -> &LoadPhases {
        &self.phases
    }

    fn load_unverified(
        onnx_bytes: &[u8],
        entry: &ModelEntry,
        clock: &dyn Fn() -> f64,
    ) -> Result<Model> {
        let mut phases = LoadPhases::default();
        let mut mark = clock();
        let mut lap = |phase: &mut f64| {
            let now = clock();
            *phase = now - mark;
            mark = now;
        };
        if onnx_bytes.is_empty() {
            return Err(bad_model("the model file", "is empty"));
        }
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx_bytes[..])
            .map_err(|e| bad_model("not a readable ONNX model", format!("{e:#}")))?;
        lap(&mut phases.parse);

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
        model
            .set_input_fact(input_index, f32::fact([1, 3, height, width]).into())
            .map_err(|e| bad_model("input", e))?;
        if inputs.len() > 1 {
            model
                .set_input_outlets(&[inputs[input_index]])
                .map_err(|e| bad_model("input", e))?;
        }

        // Keep only the mask output, so the side outputs are never computed.
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

        let mut typed = model.into_typed().map_err(|e| {
            bad_model(
                "the graph does not fit a [1, 3, H, W] image input",
                format!("{e:#}"),
            )
        })?;
        let widened_fp16 = typed.nodes().iter().any(|n| {
            n.outputs
                .iter()
                .any(|o| o.fact.datum_type == f16::datum_type())
        });
        if widened_fp16 {
            // tract computes f16 slowly on CPUs without native half arithmetic: compute in f32.
            typed
                .transform(&FloatPrecisionTranslator::new(
                    f16::datum_type(),
                    f32::datum_type(),
                ))
                .and_then(|()| crate::ops::fold_f16_constant_casts(&mut typed))
                .map_err(|e| bad_model("converting fp16 to f32", format!("{e:#}")))?;
        }
        lap(&mut phases.typing);
        let mut optimise = |mut typed: TypedModel| -> TractResult<TypedModel> {
            // tract's direct spatial convolution (x86 FMA / aarch64 only, never on wasm) is
            // slower than im2col + matrix product on these models' convolutions: fp16 IS-Net
            // 10.1 -> 7.1 s on one thread.
            #[cfg(not(target_family = "wasm"))]
            tract_onnx::tract_core::internal::tract_data::knobs::set_str(
                "TRACT_DISABLE_DIRECT_SPATIAL",
                "true",
            );
            crate::optimise::declutter(&mut typed)?;
            lap(&mut phases.declutter);
            crate::ops::before_codegen(&mut typed)?;
            lap(&mut phases.rewrite);
            crate::optimise::optimise(&mut typed)?;
            crate::ops::after_codegen(&mut typed)?;
            lap(&mut phases.optimise);
            Ok(typed)
        };
        let optimised =
            optimise(typed).map_err(|e| bad_model("optimising the graph", format!("{e:#}")))?;
        let out_fact = optimised
            .output_fact(0)
            .map_err(|e| bad_model("output", e))?
            .clone();
        let dims: Vec<usize> = match out_fact.shape.as_concrete() {
            Some(d) => d.to_vec(),
            None => return Err(bad_model("the mask output", "has no fixed shape")),
        };
        let (mask_h, mask_w) = match dims.as_slice() {
            [h, w] | [1, h, w] | [1, 1, h, w] => (*h, *w),
            other => {
                return Err(bad_model(
                    "wrong output shape",
                    format!("the mask output is {other:?}, expected [1, 1, height, width]"),
                ))
            }
        };
        if mask_h == 0 || mask_w == 0 {
            return Err(bad_model("wrong output shape", "the mask output is empty"));
        }
        if out_fact.datum_type != f32::datum_type() {
            return Err(bad_model(
                "wrong output type",
                format!("the mask is {:?}, expected f32", out_fact.datum_type),
            ));
        }
        let plan = optimised
            .into_runnable()
            .map_err(|e| bad_model("preparing the plan", format!("{e:#}")))?;
        lap(&mut phases.plan);
        let mut entry = entry.clone();
        entry.input.width = width as u32;
        entry.input.height = height as u32;
        Ok(Model {
            plan,
            entry,
            input_size: (width, height),
            mask_size: (mask_w, mask_h),
            widened_fp16,
            phases,
        })
    }

    /// The manifest entry this model was loaded as (input size updated to the graph's own).
    pub fn entry(&self) -> &ModelEntry {
        &self.entry
    }

    /// (width, height) the model takes.
    pub fn input_size(&self) -> (usize, usize) {
        self.input_size
    }

    /// (width, height) of the mask it returns.
    pub fn mask_size(&self) -> (usize, usize) {
        self.mask_size
    }

    pub fn widened_fp16(&self) -> bool {
        self.widened_fp16
    }

    /// Names of the nodes the optimised plan runs (to check what is, and is not, computed).
    pub fn node_names(&self) -> Vec<String> {
        self.plan
            .model()
            .nodes()
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    fn input_tensor(&self, planar_input: Vec<f32>) -> Result<Tensor> {
        let (w, h) = self.input_size;
        let tensor =
            tract_ndarray::Array4::from_shape_vec((1, 3, h, w), planar_input).map_err(|e| {
                Error::Inference {
                    detail: format!("input tensor: {e}"),
                }
            })?;
        Ok(tensor.into())
    }

    /// Runs the graph once and times every node: seconds per op type, longest first. `clock`
    /// returns seconds (std's `Instant` does not exist on wasm32-unknown-unknown).
    pub fn profile(
        &self,
        planar_input: Vec<f32>,
        clock: &dyn Fn() -> f64,
    ) -> Result<Vec<OpProfile>> {
        let tensor = self.input_tensor(planar_input)?;
        let mut by_op: std::collections::HashMap<String, OpProfile> = Default::default();
        catch_panics("inference", || {
            let mut state = TypedSimpleState::new(&self.plan).map_err(inference_error)?;
            state
                .run_plan_with_eval(tvec!(tensor.into()), |session, op_state, node, inputs| {
                    let started = clock();
                    let outputs =
                        tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
                    let name = node.op().name().to_string();
                    let entry = by_op.entry(name.clone()).or_insert(OpProfile {
                        op: name,
                        calls: 0,
                        seconds: 0.0,
                    });
                    entry.calls += 1;
                    entry.seconds += clock() - started;
                    outputs
                })
                .map_err(inference_error)
        })?;
        let mut ops: Vec<OpProfile> = by_op.into_values().collect();
        ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Ok(ops)
    }

    /// Runs the graph on a planar `[1, 3, h, w]` input and returns the raw mask, row-major.
    pub fn infer(&self, planar_input: Vec<f32>) -> Result<Vec<f32>> {
        let tensor = self.input_tensor(planar_input)?;
        let outputs = catch_panics("inference", || {
            self.plan.run(tvec!(tensor.into())).map_err(inference_error)
        })?;
        let mask = outputs[0]
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>())
            .map_err(|e| Error::Inference {
                detail: format!("mask output: {e:#}"),
            })?;
        Ok(mask.to_vec())
    }
}

/// Sets how many threads tract's matrix products use in this process (native builds).
#[cfg(feature = "multithread")]
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else if cfg!(target_family = "wasm") {
        // Web Workers cannot be spawned from Rust: the pool is the one
        // wasm-bindgen-rayon's initThreadPool set up as rayon's global pool.
        set_default_executor(Executor::RayonGlobal);
    } else {
        set_default_executor(Executor::multithread(threads));
    }
}
