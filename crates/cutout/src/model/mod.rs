//! A segmentation model as a tract plan that computes only the mask output: loading it
//! ([`load`]'s named steps) and running it.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use web_time::Instant;

use crate::error::{catch_panics, Error, Result};
use crate::manifest::ModelEntry;

mod load;
pub use load::LoadPhases;

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
    /// Each node's share of an inference, by node id, for reporting progress: the seconds it
    /// took in the last run, or before any run its output's size (a proxy for its work).
    node_weights: Arc<Mutex<Vec<f64>>>,
}

/// A failure inside tract while running the graph, with its whole cause chain.
fn inference_error(e: TractError) -> Error {
    Error::Inference {
        detail: format!("{e:#}"),
    }
}

impl Model {
    /// Parses, verifies and optimises `onnx_bytes` as the model `entry` describes (the steps are
    /// in [`load`]). When the entry pins a sha256, the bytes must hash to it.
    pub fn load(onnx_bytes: &[u8], entry: &ModelEntry) -> Result<Model> {
        load::load(onnx_bytes, entry)
    }

    /// How long each phase of loading took.
    pub fn load_phases(&self) -> &LoadPhases {
        &self.phases
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

    /// Runs the plan on `tensor`, telling `on_node` each node and the seconds it took, as it
    /// finishes: what profiling and progress reporting both watch.
    fn run_timed(
        &self,
        tensor: Tensor,
        on_node: &mut dyn FnMut(&TypedNode, f64),
    ) -> Result<TVec<TValue>> {
        catch_panics("inference", || {
            let mut state = TypedSimpleState::new(&self.plan).map_err(inference_error)?;
            state
                .run_plan_with_eval(tvec!(tensor.into()), |session, op_state, node, inputs| {
                    let started = Instant::now();
                    let outputs =
                        tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
                    on_node(node, started.elapsed().as_secs_f64());
                    outputs
                })
                .map_err(inference_error)
        })
    }

    /// Runs the graph once and times every node: seconds per op type, longest first.
    pub fn profile(&self, planar_input: Vec<f32>) -> Result<Vec<OpProfile>> {
        let tensor = self.input_tensor(planar_input)?;
        let mut by_op: std::collections::HashMap<String, OpProfile> = Default::default();
        self.run_timed(tensor, &mut |node, seconds| {
            let name = node.op().name().to_string();
            let entry = by_op.entry(name.clone()).or_insert(OpProfile {
                op: name,
                calls: 0,
                seconds: 0.0,
            });
            entry.calls += 1;
            entry.seconds += seconds;
        })?;
        let mut ops: Vec<OpProfile> = by_op.into_values().collect();
        ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Ok(ops)
    }

    /// Runs the graph on a planar `[1, 3, h, w]` input and returns the raw mask, row-major.
    pub fn infer(&self, planar_input: Vec<f32>) -> Result<Vec<f32>> {
        self.infer_reporting(planar_input, &mut |_| {})
    }

    /// [`Model::infer`], telling `done` the fraction of the work finished after each node (by
    /// the nodes' times in the previous run, so the fraction tracks time from the second image).
    pub fn infer_reporting(
        &self,
        planar_input: Vec<f32>,
        done: &mut dyn FnMut(f32),
    ) -> Result<Vec<f32>> {
        let tensor = self.input_tensor(planar_input)?;
        let weights = self
            .node_weights
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut times = vec![0f64; weights.len()];
        let mut finished = 0f64;
        let outputs = self.run_timed(tensor, &mut |node, seconds| {
            if let Some(time) = times.get_mut(node.id) {
                *time = seconds;
            }
            finished += weights.get(node.id).copied().unwrap_or(0.0);
            done((finished / total).min(1.0) as f32);
        })?;
        if times.iter().sum::<f64>() > 0.0 {
            if let Ok(mut weights) = self.node_weights.lock() {
                *weights = times;
            }
        }
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
