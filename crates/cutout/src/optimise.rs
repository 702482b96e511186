//! tract's declutter and codegen passes (what `TypedModel::declutter` and `optimize` run), driven
//! here so that each patch is applied without tract 0.23's duplicate-node scan.
//!
//! `ModelPatch::apply` compares every node a patch adds with every node of the model (`dyn_eq`,
//! which compares whole weight tensors between constants) and then adds the node anyway: the
//! match it records is overwritten two lines later, so the scan changes nothing. The quantized
//! IS-Net graph has ~4000 nodes and its codegen applies ~6000 patches, so the scan was most of
//! the start-up: on a second visit in Chromium the page waited 3.5 s in `optimize()`. tract's
//! declutter also checks the whole model's consistency before and after every patch.
//! [`apply`] does everything else `ModelPatch::apply` does, in the same order, so the
//! decluttered and optimised graphs are the same node for node (tested against tract's own).

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::{SpecialOps, STAGE_OPTIMIZED, TRACT_STAGE};
use tract_onnx::tract_core::optim::Optimizer;

/// What `TypedModel::declutter` does: tract's declutter passes, until none rewrites anything.
pub fn declutter(model: &mut TypedModel) -> TractResult<()> {
    run_passes(&Optimizer::declutter(), model)
}

/// What `TypedModel::optimize` does: tract's codegen passes, until none rewrites anything.
pub fn optimise(model: &mut TypedModel) -> TractResult<()> {
    run_passes(&Optimizer::codegen(), model)?;
    model.properties.insert(
        TRACT_STAGE.to_string(),
        rctensor0(STAGE_OPTIMIZED.to_string()),
    );
    Ok(())
}

/// Each of `optimizer`'s passes repeated until it finds nothing more to rewrite, all of them
/// until none does (tract's `OptimizerSession::optimize`).
fn run_passes(optimizer: &Optimizer, model: &mut TypedModel) -> TractResult<()> {
    let mut passes = optimizer.passes.clone();
    let mut session = optimizer.session();
    let _proofs = model.symbols.proof_cache_session();
    model.compact()?;
    // Patches a pass marks "don't apply twice" (rewrites that could undo each other).
    let mut seen = HashSet::new();
    let mut applied = 0usize;
    loop {
        let applied_before_round = applied;
        for pass in passes.iter_mut() {
            loop {
                let applied_before_pass = applied;
                pass.reset()?;
                while let Some(mut patch) = pass.next(&mut session, model)? {
                    if let Some(watchdog) = patch.dont_apply_twice.take() {
                        if !seen.insert(watchdog) {
                            continue;
                        }
                    }
                    apply(patch, model)?;
                    applied += 1;
                }
                pass.run_direct(model)?;
                if applied == applied_before_pass {
                    break;
                }
                model.compact()?;
            }
            model.compact()?;
        }
        if applied == applied_before_round {
            return Ok(());
        }
        model.compact()?;
    }
}

/// tract's `ModelPatch::apply` (tract-core 0.23.9, src/model/patch.rs) without the scan, which
/// 0.23.9 still has (see the module's comment), so tract's cannot be used here; and without the
/// `check_edges` it runs after each node it turns into a dummy (a check: it changes nothing).
/// Splices a patch into the model: adds its nodes (but the taps, which stand for model
/// outlets), reroutes the consumers of shunted outlets, wires the new nodes, turns obliterated
/// and now-unused nodes into dummies (removed by the next `compact`) and makes new names unique.
pub(crate) fn apply(patch: TypedModelPatch, model: &mut TypedModel) -> TractResult<()> {
    let TypedModelPatch {
        model: patch,
        taps,
        shunts,
        obliterate,
        inputs: replaced_inputs,
        ..
    } = patch;
    // Where each outlet of the patch lives in the model.
    let mut in_model: HashMap<OutletId, OutletId> = taps;
    let mut model_inputs = model.input_outlets()?.to_vec();
    let mut added: Vec<(usize, Vec<OutletId>)> = Vec::new();
    for node in patch.nodes {
        if TypedModel::is_source(&node.op) && in_model.contains_key(&OutletId::new(node.id, 0)) {
            continue;
        }
        let facts: TVec<TypedFact> = node.outputs.into_iter().map(|output| output.fact).collect();
        let outputs = facts.len();
        let id = model.add_node(node.name, node.op, facts)?;
        for slot in 0..outputs {
            in_model.insert(OutletId::new(node.id, slot), OutletId::new(id, slot));
        }
        if TypedModel::is_source(&model.node(id).op) {
            // A new source replaces one of the model's inputs.
            let replaced = replaced_inputs[&node.id];
            for input in model_inputs
                .iter_mut()
                .filter(|input| input.node == replaced)
            {
                input.node = id;
            }
        }
        added.push((id, node.inputs));
    }
    let mut shunted: Vec<(OutletId, OutletId)> = shunts.into_iter().collect();
    shunted.sort();
    for &(outlet, by) in &shunted {
        let replacement = in_model[&by];
        let consumers = model.nodes[outlet.node].outputs[outlet.slot]
            .successors
            .clone();
        for consumer in consumers {
            model.add_edge(replacement, consumer)?;
        }
        for output in model.outputs.iter_mut().filter(|output| **output == outlet) {
            *output = replacement;
        }
        if let Some(label) = model.outlet_labels.remove(&outlet) {
            model.set_outlet_label(replacement, label)?;
        }
    }
    for (id, inputs) in &added {
        for (slot, input) in inputs.iter().enumerate() {
            model.add_edge(in_model[input], InletId::new(*id, slot))?;
        }
    }
    for id in obliterate {
        model.node_mut(id).op = model.create_dummy();
    }
    model.set_input_outlets(&model_inputs)?;
    remove_unused(
        model,
        shunted.iter().map(|(outlet, _)| outlet.node).collect(),
    );
    for (id, _) in &added {
        let name = &model.nodes[*id].name;
        let unique = if let Some((prefix, _)) = name.split_once('#') {
            Some(model.unique_name(prefix).into_owned())
        } else if model
            .nodes
            .iter()
            .any(|node| node.id != *id && node.name == *name)
        {
            Some(model.unique_name(name.as_str()).into_owned())
        } else {
            None
        };
        if let Some(unique) = unique {
            model.nodes[*id].name = unique;
        }
    }
    Ok(())
}

/// Turns the shunted nodes that nothing reads any more, and then their inputs that nothing reads
/// any more, into dummies.
fn remove_unused(model: &mut TypedModel, mut candidates: HashSet<usize>) {
    while let Some(&id) = candidates.iter().next() {
        candidates.remove(&id);
        let unused = !model.outputs.iter().any(|output| output.node == id)
            && !model.inputs.iter().any(|input| input.node == id)
            && model
                .node(id)
                .outputs
                .iter()
                .all(|output| output.successors.is_empty());
        if !unused {
            continue;
        }
        let dummy = model.create_dummy();
        let node = model.node_mut(id);
        node.op = dummy;
        node.name = format!("Dummy-node-{id}");
        node.outputs.clear();
        let inputs = std::mem::take(&mut node.inputs);
        for input in inputs {
            model.node_mut(input.node).outputs[input.slot]
                .successors
                .retain(|successor| successor.node != id);
            candidates.insert(input.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutout_testkit::TinyModel;
    use std::path::PathBuf;

    fn decluttered(onnx: &[u8], side: usize) -> TypedModel {
        typed(onnx, side).into_decluttered().unwrap()
    }

    /// Every node's op, its parameters, inputs and output facts, in node order.
    fn describe(model: &TypedModel) -> Vec<String> {
        model
            .nodes
            .iter()
            .map(|node| {
                let facts: Vec<String> = node
                    .outputs
                    .iter()
                    .map(|o| format!("{:?} -> {:?}", o.fact, o.successors))
                    .collect();
                format!(
                    "{} {:?} {:?} {:?}",
                    node.op.name(),
                    node.op.info().unwrap(),
                    node.inputs,
                    facts
                )
            })
            .collect()
    }

    fn typed(onnx: &[u8], side: usize) -> TypedModel {
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).unwrap();
        model
            .set_input_fact(0, f32::fact([1, 3, side, side]).into())
            .unwrap();
        model.into_typed().unwrap()
    }

    fn assert_same_graph_as_tracts(onnx: &[u8], side: usize) {
        let mut ours = typed(onnx, side);
        declutter(&mut ours).unwrap();
        assert_eq!(
            describe(&ours),
            describe(&decluttered(onnx, side)),
            "decluttered"
        );
        let mut theirs = ours.clone();
        optimise(&mut ours).unwrap();
        theirs.optimize().unwrap();
        let (ours, theirs) = (describe(&ours), describe(&theirs));
        assert_eq!(ours.len(), theirs.len(), "node count");
        for (ix, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "node {ix}");
        }
    }

    #[test]
    fn the_tiny_model_optimises_to_tracts_graph() {
        let tiny = TinyModel::default();
        assert_same_graph_as_tracts(&tiny.onnx_bytes(), tiny.entry().input.height as usize);
    }

    /// The quantized IS-Net (quantize, im2col, packed int8 matmuls, requantisation), when
    /// ../shared/models or target/models has it.
    #[test]
    fn the_quantized_model_optimises_to_tracts_graph() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let shared =
            std::env::var_os("CUTOUT_SHARED_DIR").map_or(root.join("../shared"), PathBuf::from);
        let Some(path) = [shared.join("models"), root.join("target/models")]
            .iter()
            .map(|dir| dir.join("isnet_quint8.onnx"))
            .find(|path| path.is_file())
        else {
            eprintln!(
                "\n*** SKIPPING: isnet_quint8.onnx not in ../shared/models or target/models ***\n"
            );
            return;
        };
        assert_same_graph_as_tracts(&std::fs::read(path).unwrap(), 1024);
    }
}
