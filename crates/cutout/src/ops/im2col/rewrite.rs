//! The graph patch that swaps `PanelIm2Col` in for tract's `Im2col` (and `QSumB`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;

use super::PanelIm2Col;

/// Swaps every tract `Im2col` this op handles for a `PanelIm2Col`; an `Im2col` read by a `QSumB`
/// (the quantized path; that op is private to tract, so matched by name) gets the sums too.
fn use_panel_im2col(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes()[id];
        let Some(im2col) = node.op_as::<Im2Col>() else {
            continue;
        };
        let Some(mut op) = PanelIm2Col::for_node(model, node, im2col)? else {
            continue;
        };
        let successors = model.outlet_successors(OutletId::new(id, 0));
        let sum_nodes: Vec<usize> = successors
            .iter()
            .map(|inlet| inlet.node)
            .filter(|&s| model.nodes()[s].op().name() == "QSumB")
            .collect();
        if sum_nodes.len() > 1 {
            continue;
        }
        if let Some(&sum_node) = sum_nodes.first() {
            let sum = &model.nodes()[sum_node];
            let expected = op.sums_fact();
            if sum.inputs.len() != 1
                || sum.outputs[0].fact.datum_type != expected.datum_type
                || sum.outputs[0].fact.shape != expected.shape
            {
                continue;
            }
            op.with_sums = true;
        }
        let mut patch = TypedModelPatch::default();
        let taps = patch.taps(model, &node.inputs)?;
        let outputs = patch.wire_node(&node.name, op, &taps)?;
        patch.shunt_outside(model, OutletId::new(id, 0), outputs[0])?;
        if let Some(&sum_node) = sum_nodes.first() {
            patch.shunt_outside(model, OutletId::new(sum_node, 0), outputs[1])?;
        }
        crate::optimise::apply(patch, model)?;
        replaced += 1;
    }
    Ok(replaced)
}

rewrite_transform!(
    /// [`use_panel_im2col`], a step of the load after codegen.
    UsePanelIm2Col,
    "cutout-panel-im2col",
    use_panel_im2col
);
