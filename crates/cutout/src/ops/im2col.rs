//! Im2col for tract's convolutions, written panel by panel, with the quantized path's column
//! sums computed in the same pass.
//!
//! tract's `Im2col` feeds its packing writer one k row at a time across all n columns, so every
//! row touches every panel of a buffer that is often 100+ MB, a byte at a time wherever a row
//! crosses a panel; `QSumB` then reads the whole buffer again to sum its columns. Together they
//! were ~47% of RMBG-1.4 quantized inference. Here each panel (r output pixels x all of k) is
//! filled while it sits in L1: r contiguous input bytes per k where the panel lies on one output
//! row, and the sums come from the same registers. The packed bytes are identical to tract's,
//! including the zeroes in K and lane padding, so tract's matmul consumes them unchanged.

use tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// How the matmul kernel wants its B operand laid out, panel by panel (`r` columns each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    /// `PackedFormat`: element (k, lane) at `k * r + lane`; `panel_len` includes tract's end
    /// padding record and alignment.
    KMajor,
    /// `PackedI8K4`: element (k, lane) at `(k / 4) * 4r + lane * 4 + k % 4`, k padded to 4.
    K4,
}

/// Everything the fill needs, resolved from the node's concrete input shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Geometry {
    batch: usize,
    groups: usize,
    channels_per_group: usize,
    input_h: usize,
    input_w: usize,
    output_h: usize,
    output_w: usize,
    stride_y: usize,
    stride_x: usize,
    pad_top: usize,
    pad_left: usize,
    /// Per k row: (input channel within the group, y offset, x offset) of the kernel tap.
    taps: Vec<(usize, usize, usize)>,
    layout: Layout,
    r: usize,
    panel_len: usize,
    alignment: usize,
}

impl Geometry {
    fn k(&self) -> usize {
        self.taps.len()
    }

    fn n(&self) -> usize {
        self.output_h * self.output_w
    }
}

/// Replaces a tract `Im2col` (and the `QSumB` reading it, when there is one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PanelIm2Col {
    geometry: Geometry,
    format: Box<dyn MMMInputFormat>,
    with_sums: bool,
}

/// Values the packing handles: the quantized path's i8 and the float path's f32.
trait Element: Copy + Default + Datum + Send + Sync {
    fn widen(self) -> i32;
}

impl Element for i8 {
    fn widen(self) -> i32 {
        self as i32
    }
}

impl Element for f32 {
    fn widen(self) -> i32 {
        0 // column sums exist only on the quantized path
    }
}

impl PanelIm2Col {
    /// The geometry of `node` (a tract `Im2col`), or None where this op does not apply.
    fn for_node(
        model: &TypedModel,
        node: &TypedNode,
        im2col: &Im2Col,
    ) -> TractResult<Option<Self>> {
        let spec = &im2col.pool_spec;
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = input.shape.as_concrete() else {
            return Ok(None);
        };
        let Some(pof) = node.outputs[0]
            .fact
            .exotic_fact()
            .and_then(|f| f.downcast_ref::<PackedExoticFact>())
        else {
            return Ok(None);
        };
        let (layout, r, panel_len, alignment) =
            if let Some(pf) = pof.format.downcast_ref::<PackedFormat>() {
                (
                    Layout::KMajor,
                    pf.r,
                    pf.single_panel_len(pof.k),
                    pf.alignment(),
                )
            } else if let Some(p4) = pof.format.downcast_ref::<PackedI8K4>() {
                (Layout::K4, p4.r, p4.single_panel_len(pof.k), p4.alignment())
            } else {
                return Ok(None);
            };
        let dt = input.datum_type.unquantized();
        let element_ok = match layout {
            Layout::KMajor => dt == i8::datum_type() || dt == f32::datum_type(),
            Layout::K4 => dt == i8::datum_type(),
        };
        let rank = spec.kernel_shape.len();
        if !element_ok
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || !(1..=2).contains(&rank)
            || !SUPPORTED_R.contains(&r)
            || node.inputs.len() > 2
        {
            return Ok(None);
        }
        let has_n = spec.data_format == DataFormat::NCHW;
        let batch = if has_n { shape[0] } else { 1 };
        let channels = shape[has_n as usize];
        let spatial = &shape[has_n as usize + 1..];
        let padding = spec.computed_padding(spatial);
        let (kernel, dilations, strides) = (&spec.kernel_shape, spec.dilations(), spec.strides());
        // 1-D convolutions are 2-D ones with a height of one.
        let pick = |v: &[usize], axis: usize, one: usize| {
            if rank == 2 {
                v[axis]
            } else if axis == 0 {
                one
            } else {
                v[0]
            }
        };
        let input_dims: Vec<usize> = spatial.to_vec();
        let output_dims: Vec<usize> = padding.iter().map(|p| p.convoluted).collect();
        let pads: Vec<usize> = padding.iter().map(|p| p.pad_before).collect();
        let (kernel_h, kernel_w) = (pick(kernel, 0, 1), pick(kernel, 1, 1));
        let (dilation_y, dilation_x) = (pick(&dilations, 0, 1), pick(&dilations, 1, 1));
        let channels_per_group = channels / im2col.group;
        let mut taps = Vec::with_capacity(channels_per_group * kernel_h * kernel_w);
        for c in 0..channels_per_group {
            for ky in 0..kernel_h {
                for kx in 0..kernel_w {
                    taps.push((c, ky * dilation_y, kx * dilation_x));
                }
            }
        }
        if taps.len() != pof.k || channels % im2col.group != 0 {
            return Ok(None);
        }
        let geometry = Geometry {
            batch,
            groups: im2col.group,
            channels_per_group,
            input_h: pick(&input_dims, 0, 1),
            input_w: pick(&input_dims, 1, 1),
            output_h: pick(&output_dims, 0, 1),
            output_w: pick(&output_dims, 1, 1),
            stride_y: pick(&strides, 0, 1),
            stride_x: pick(&strides, 1, 1),
            pad_top: pick(&pads, 0, 0),
            pad_left: pick(&pads, 1, 0),
            taps,
            layout,
            r,
            panel_len,
            alignment,
        };
        Ok(Some(PanelIm2Col {
            geometry,
            format: pof.format.clone(),
            with_sums: false,
        }))
    }

    /// What each (batch, group) packed matrix is: the kernel's format, k rows, n columns.
    fn exotic_fact(&self) -> PackedExoticFact {
        PackedExoticFact {
            format: self.format.clone(),
            k: self.geometry.k(),
            mn: self.geometry.n().to_dim(),
        }
    }

    /// QSumB's output: i32 `[batch, groups, n]`.
    fn sums_fact(&self) -> TypedFact {
        let g = &self.geometry;
        i32::fact([g.batch, g.groups, g.n()])
    }

    fn run<T: Element>(&self, input: &Tensor, pad: T) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        let n = g.n();
        let dt = input.datum_type();
        let x: &[T] = unsafe { input.as_slice_unchecked::<T>() };
        let plane = g.input_h * g.input_w;
        let image_len = g.groups * g.channels_per_group * plane;
        ensure!(
            x.len() == g.batch * image_len,
            "PanelIm2Col: unexpected input size"
        );
        let panels = n.div_ceil(g.r);
        let mut sums = if self.with_sums {
            vec![0i32; g.batch * g.groups * n]
        } else {
            vec![]
        };
        let mut values: TVec<Box<dyn MMMInputValue>> = tvec![];
        for b in 0..g.batch {
            for group in 0..g.groups {
                let mut data = unsafe {
                    Tensor::uninitialized_aligned_dt(dt, &[panels * g.panel_len], g.alignment)?
                };
                let packed: &mut [T] = unsafe { data.as_slice_mut_unchecked::<T>() };
                let start = b * image_len + group * g.channels_per_group * plane;
                let source = &x[start..start + g.channels_per_group * plane];
                let sums = if self.with_sums {
                    Some(&mut sums[(b * g.groups + group) * n..][..n])
                } else {
                    None
                };
                fill_dispatch(g, source, pad, packed, sums);
                values.push(Box::new(EagerPackedInput {
                    fact: self.exotic_fact(),
                    packed: data.into_blob()?.into(),
                    panel_bytes: if n > 0 {
                        g.panel_len * T::datum_type().size_of()
                    } else {
                        0
                    },
                    mn: n,
                }));
            }
        }
        let packed = PackedMatrixStorage::new_batched(&[g.batch, g.groups], values).into_tensor(dt);
        let mut outputs = tvec![packed.into_tvalue()];
        if self.with_sums {
            outputs.push(Tensor::from_shape(&[g.batch, g.groups, n], &sums)?.into_tvalue());
        }
        Ok(outputs)
    }
}

/// Panel widths with a monomorphised fill (every kernel tract ships for x86, ARM and wasm).
const SUPPORTED_R: [usize; 7] = [4, 8, 12, 16, 24, 32, 64];

type FillFn<T> = fn(&Geometry, &[T], T, &mut [T], usize, Option<&mut [i32]>);
/// Fills panels `first_panel..` (the slice given) and their columns' sums.
type PanelWork<'a, T> = dyn Fn(&mut [T], usize, Option<&mut [i32]>) + Sync + 'a;

/// Writes every panel of one (batch, group) image: all of `packed`, padding included.
fn fill_dispatch<T: Element>(
    g: &Geometry,
    x: &[T],
    pad: T,
    packed: &mut [T],
    sums: Option<&mut [i32]>,
) {
    let fill: FillFn<T> = match g.r {
        4 => fill::<T, 4>,
        8 => fill::<T, 8>,
        12 => fill::<T, 12>,
        16 => fill::<T, 16>,
        24 => fill::<T, 24>,
        32 => fill::<T, 32>,
        64 => fill::<T, 64>,
        r => unreachable!("panel width {r} was checked at load"),
    };
    for_panel_ranges(g, packed, sums, &|packed, first_panel, sums| {
        fill(g, x, pad, packed, first_panel, sums)
    });
}

/// Single-threaded builds: all panels in one go.
#[cfg(not(feature = "multithread"))]
fn for_panel_ranges<T: Element>(
    _g: &Geometry,
    packed: &mut [T],
    sums: Option<&mut [i32]>,
    work: &PanelWork<T>,
) {
    work(packed, 0, sums)
}

/// Panels are independent: split them over tract's executor, as its matmul does.
#[cfg(feature = "multithread")]
fn for_panel_ranges<T: Element>(
    g: &Geometry,
    packed: &mut [T],
    sums: Option<&mut [i32]>,
    work: &PanelWork<T>,
) {
    use rayon::prelude::*;
    let panels = packed.len() / g.panel_len.max(1);
    if panels < 64 {
        return work(packed, 0, sums);
    }
    let per_task = panels.div_ceil(32);
    let mut sum_chunks: Vec<Option<&mut [i32]>> = match sums {
        Some(sums) => sums.chunks_mut(per_task * g.r).map(Some).collect(),
        None => (0..panels.div_ceil(per_task)).map(|_| None).collect(),
    };
    let parallel = || {
        packed
            .par_chunks_mut(per_task * g.panel_len)
            .zip(sum_chunks.par_iter_mut())
            .enumerate()
            .for_each(|(task, (packed, sums))| work(packed, task * per_task, sums.as_deref_mut()))
    };
    if super::parallel::in_pool(parallel).is_none() {
        // One thread: one pass, sums still in their pieces.
        let mut first_panel = 0;
        for (packed, sums) in packed
            .chunks_mut(per_task * g.panel_len)
            .zip(sum_chunks.iter_mut())
        {
            work(packed, first_panel, sums.as_deref_mut());
            first_panel += per_task;
        }
    }
}

/// Output pixels gathered per k row at once: up to this many neighbours on one output row, so
/// the per-tap bookkeeping is paid once for several panels.
const BLOCK: usize = 64;

/// `packed` holds panels `first_panel..`, `sums` their columns.
fn fill<T: Element, const R: usize>(
    g: &Geometry,
    x: &[T],
    pad: T,
    packed: &mut [T],
    first_panel: usize,
    mut sums: Option<&mut [i32]>,
) {
    let panel_count = packed.len() / g.panel_len;
    let mut done = 0;
    while done < panel_count {
        let first = (first_panel + done) * R;
        let ox = first % g.output_w;
        // Whole panels of R neighbours on this output row (the usual case), else one panel
        // that wraps a row or ends the image.
        let whole = ((g.output_w - ox) / R)
            .min(BLOCK / R)
            .min(panel_count - done);
        let count = whole.max(1);
        let panels = &mut packed[done * g.panel_len..(done + count) * g.panel_len];
        let sums = sums.as_deref_mut().map(|s| {
            let end = s.len().min((done + count) * R);
            &mut s[done * R..end]
        });
        if whole > 0 {
            fill_block::<T, R>(g, x, pad, panels, first, whole * R, sums);
        } else {
            fill_wrapping_panel::<T, R>(g, x, pad, panels, first, sums);
        }
        done += count;
    }
}

/// `width` output pixels from `first` on, all on one output row, into `width / R` panels.
fn fill_block<T: Element, const R: usize>(
    g: &Geometry,
    x: &[T],
    pad: T,
    panels: &mut [T],
    first: usize,
    width: usize,
    sums: Option<&mut [i32]>,
) {
    let plane = g.input_h * g.input_w;
    let (oy, ox) = (first / g.output_w, first % g.output_w);
    let mut rows = [[T::default(); BLOCK]; 4];
    let mut column_sums = [0i32; BLOCK];
    for (kk, &(c, dy, dx)) in g.taps.iter().enumerate() {
        let row = &mut rows[kk % 4][..width];
        let iy = (oy * g.stride_y + dy).wrapping_sub(g.pad_top);
        if iy >= g.input_h {
            row.fill(pad);
        } else {
            let line = &x[c * plane + iy * g.input_w..][..g.input_w];
            let ix = (ox * g.stride_x + dx).wrapping_sub(g.pad_left);
            if g.stride_x == 1 && ix < g.input_w && ix + width <= g.input_w {
                row.copy_from_slice(&line[ix..ix + width]);
            } else {
                for (lane, value) in row.iter_mut().enumerate() {
                    let ix = ((ox + lane) * g.stride_x + dx).wrapping_sub(g.pad_left);
                    *value = if ix < g.input_w { line[ix] } else { pad };
                }
            }
        }
        if sums.is_some() {
            for (sum, value) in column_sums[..width].iter_mut().zip(row.iter()) {
                *sum += value.widen();
            }
        }
        write_row::<T, R>(g, &rows, kk, width, panels);
    }
    finish_panels::<T, R>(g, &mut rows, width, panels);
    if let Some(sums) = sums {
        sums.copy_from_slice(&column_sums[..width]);
    }
}

/// One panel whose pixels wrap onto the next output row or run past the last one.
fn fill_wrapping_panel<T: Element, const R: usize>(
    g: &Geometry,
    x: &[T],
    pad: T,
    panel: &mut [T],
    first: usize,
    sums: Option<&mut [i32]>,
) {
    let plane = g.input_h * g.input_w;
    let lanes = R.min(g.n() - first);
    let pixels: Vec<(usize, usize)> = (first..first + lanes)
        .map(|p| (p / g.output_w, p % g.output_w))
        .collect();
    let mut rows = [[T::default(); BLOCK]; 4];
    let mut column_sums = [0i32; R];
    for (kk, &(c, dy, dx)) in g.taps.iter().enumerate() {
        let channel = &x[c * plane..][..plane];
        let row = &mut rows[kk % 4];
        for (lane, value) in row[..R].iter_mut().enumerate() {
            *value = match pixels.get(lane) {
                Some(&(y, x)) => {
                    let iy = (y * g.stride_y + dy).wrapping_sub(g.pad_top);
                    let ix = (x * g.stride_x + dx).wrapping_sub(g.pad_left);
                    if iy < g.input_h && ix < g.input_w {
                        channel[iy * g.input_w + ix]
                    } else {
                        pad
                    }
                }
                None => T::default(), // lanes past n are zero in tract's buffers
            };
            column_sums[lane] += value.widen();
        }
        write_row::<T, R>(g, &rows, kk, R, panel);
    }
    finish_panels::<T, R>(g, &mut rows, R, panel);
    if let Some(sums) = sums {
        sums.copy_from_slice(&column_sums[..lanes]);
    }
}

/// Stores k row `kk` (just gathered into `rows[kk % 4]`) into each of the `width / R` panels.
#[inline(always)]
fn write_row<T: Element, const R: usize>(
    g: &Geometry,
    rows: &[[T; BLOCK]; 4],
    kk: usize,
    width: usize,
    panels: &mut [T],
) {
    match g.layout {
        Layout::KMajor => {
            let row = &rows[kk % 4];
            for (j, panel) in panels
                .chunks_exact_mut(g.panel_len)
                .take(width / R)
                .enumerate()
            {
                panel[kk * R..][..R].copy_from_slice(&row[j * R..][..R]);
            }
        }
        Layout::K4 if kk % 4 == 3 => {
            for (j, panel) in panels
                .chunks_exact_mut(g.panel_len)
                .take(width / R)
                .enumerate()
            {
                interleave4::<T, R>(rows, j * R, &mut panel[(kk / 4) * 4 * R..][..4 * R]);
            }
        }
        Layout::K4 => {}
    }
}

/// Padding after the last k row: tract's end-padding record (K-major) or the zero rows that
/// complete the last group of four (K=4-inner).
#[inline(always)]
fn finish_panels<T: Element, const R: usize>(
    g: &Geometry,
    rows: &mut [[T; BLOCK]; 4],
    width: usize,
    panels: &mut [T],
) {
    let k = g.k();
    match g.layout {
        Layout::KMajor => {
            for panel in panels.chunks_exact_mut(g.panel_len).take(width / R) {
                panel[k * R..].fill(T::default());
            }
        }
        Layout::K4 if k % 4 != 0 => {
            for row in &mut rows[k % 4..] {
                *row = [T::default(); BLOCK];
            }
            write_row::<T, R>(g, rows, k | 3, width, panels);
        }
        Layout::K4 => {}
    }
}

/// Four k rows into the K=4-inner layout: for each lane, its four k values side by side.
#[inline(always)]
fn interleave4<T: Element, const R: usize>(rows: &[[T; BLOCK]; 4], offset: usize, out: &mut [T]) {
    let [a, b, c, d] = rows;
    let (a, b, c, d) = (
        &a[offset..][..R],
        &b[offset..][..R],
        &c[offset..][..R],
        &d[offset..][..R],
    );
    for (lane, quad) in out.chunks_exact_mut(4).enumerate().take(R) {
        quad.copy_from_slice(&[a[lane], b[lane], c[lane], d[lane]]);
    }
}

impl Op for PanelIm2Col {
    fn name(&self) -> StaticName {
        "PanelIm2Col".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{:?} r={} k={} n={} sums={}",
            g.layout,
            g.r,
            g.k(),
            g.n(),
            self.with_sums
        )])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for PanelIm2Col {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        // Like tract: the padding value is the first element's bytes of the second input.
        let pad_bytes = inputs.get(1).map(|t| t.as_bytes());
        match input.datum_type().unquantized() {
            DatumType::I8 => {
                let pad = pad_bytes.map(|b| b[0] as i8).unwrap_or(0);
                self.run::<i8>(input, pad)
            }
            DatumType::F32 => {
                let pad = pad_bytes
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0.0);
                self.run::<f32>(input, pad)
            }
            dt => bail!("PanelIm2Col: unsupported input type {dt:?}"),
        }
    }
}

impl TypedOp for PanelIm2Col {
    tract_onnx::tract_core::as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geometry;
        let packed = inputs[0]
            .datum_type
            .fact([g.batch, g.groups])
            .with_exotic_fact(self.exotic_fact());
        let mut facts = tvec![packed];
        if self.with_sums {
            facts.push(self.sums_fact());
        }
        Ok(facts)
    }
}

/// Swaps every tract `Im2col` this op handles for a `PanelIm2Col`; an `Im2col` read by a `QSumB`
/// (the quantized path; that op is private to tract, so matched by name) gets the sums too.
pub(super) fn use_panel_im2col(model: &mut TypedModel) -> TractResult<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::mmm::MatMatMul;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    /// Every B-side packing of every kernel this machine runs, once per format.
    fn packings() -> Vec<(Box<dyn MatMatMul>, usize, DatumType)> {
        let mut seen = std::collections::HashSet::new();
        let mut found = vec![];
        for mmm in tract_linalg::mmm_routines::runnable_for(&tract_linalg::isa::native()) {
            for (index, (_, b)) in mmm.packings().iter().enumerate() {
                let dt = if b.downcast_ref::<PackedI8K4>().is_some() {
                    i8::datum_type()
                } else if let Some(pf) = b.downcast_ref::<PackedFormat>() {
                    pf.dt
                } else {
                    continue;
                };
                let r = b.r();
                if (dt == i8::datum_type() || dt == f32::datum_type())
                    && SUPPORTED_R.contains(&r)
                    && seen.insert(format!("{b:?}"))
                {
                    found.push((
                        tract_onnx::tract_core::dyn_clone::clone_box(&*mmm),
                        index,
                        dt,
                    ));
                }
            }
        }
        found
    }

    struct Case {
        channels: usize,
        spatial: &'static [usize],
        kernel: &'static [usize],
        strides: &'static [usize],
        dilations: &'static [usize],
        pad_before: &'static [usize],
        pad_after: &'static [usize],
        groups: usize,
    }

    const CASES: &[Case] = &[
        Case {
            channels: 3,
            spatial: &[9, 13],
            kernel: &[3, 3],
            strides: &[1, 1],
            dilations: &[1, 1],
            pad_before: &[1, 1],
            pad_after: &[1, 1],
            groups: 1,
        },
        Case {
            channels: 5,
            spatial: &[17, 11],
            kernel: &[3, 3],
            strides: &[1, 1],
            dilations: &[2, 2],
            pad_before: &[2, 2],
            pad_after: &[2, 2],
            groups: 1,
        },
        Case {
            channels: 4,
            spatial: &[10, 10],
            kernel: &[3, 3],
            strides: &[2, 2],
            dilations: &[1, 1],
            pad_before: &[1, 1],
            pad_after: &[0, 0],
            groups: 1,
        },
        Case {
            channels: 6,
            spatial: &[7, 9],
            kernel: &[1, 1],
            strides: &[1, 1],
            dilations: &[1, 1],
            pad_before: &[0, 0],
            pad_after: &[0, 0],
            groups: 2,
        },
        Case {
            channels: 2,
            spatial: &[5, 70],
            kernel: &[3, 3],
            strides: &[1, 1],
            dilations: &[1, 1],
            pad_before: &[1, 1],
            pad_after: &[1, 1],
            groups: 1,
        },
        Case {
            channels: 3,
            spatial: &[19, 23],
            kernel: &[7, 7],
            strides: &[2, 2],
            dilations: &[1, 1],
            pad_before: &[3, 3],
            pad_after: &[3, 3],
            groups: 1,
        },
        Case {
            channels: 2,
            spatial: &[37],
            kernel: &[3],
            strides: &[1],
            dilations: &[1],
            pad_before: &[1],
            pad_after: &[1],
            groups: 1,
        },
        Case {
            channels: 1,
            spatial: &[40, 40],
            kernel: &[3, 3],
            strides: &[1, 1],
            dilations: &[8, 8],
            pad_before: &[8, 8],
            pad_after: &[8, 8],
            groups: 1,
        },
    ];

    fn input(dt: DatumType, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        let bytes: Vec<i8> = (0..len).map(|i| ((i * 7919 + 13) % 251) as i8).collect();
        if dt == i8::datum_type() {
            Tensor::from_shape(shape, &bytes).unwrap()
        } else {
            let floats: Vec<f32> = bytes.iter().map(|&b| b as f32 * 0.25).collect();
            Tensor::from_shape(shape, &floats).unwrap()
        }
    }

    /// Each panel's elements as stored, laid out in k order per lane: (k, lane) -> value bytes.
    fn panels(value: &dyn MMMInputValue, panel_len: usize, size: usize) -> Vec<Vec<u8>> {
        let count = value.mn().div_ceil(value.format().r());
        (0..count)
            .map(|p| {
                let ptr = value.panel_bytes(p, None).unwrap();
                unsafe { std::slice::from_raw_parts(ptr, panel_len * size) }.to_vec()
            })
            .collect()
    }

    #[test]
    fn packs_exactly_like_tract_im2col_for_every_kernel_format() {
        let formats = packings();
        eprintln!(
            "formats: {:?}",
            formats
                .iter()
                .map(|(m, p, _)| format!("{:?}", m.packings()[*p].1))
                .collect::<Vec<_>>()
        );
        assert!(
            formats.iter().any(|f| f.2 == i8::datum_type()),
            "no i8 packing found"
        );
        for (mmm, packing, dt) in formats {
            for (index, case) in CASES.iter().enumerate() {
                let format =
                    tract_onnx::tract_core::dyn_clone::clone_box(&*mmm.packings()[packing].1);
                let mut shape = vec![1, case.channels];
                shape.extend_from_slice(case.spatial);
                let pool_spec = PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: case.kernel.into(),
                    padding: PaddingSpec::Explicit(case.pad_before.into(), case.pad_after.into()),
                    dilations: Some(case.dilations.into()),
                    strides: Some(case.strides.into()),
                    input_channels: case.channels,
                    output_channels: 4,
                };
                let k = case.channels / case.groups * case.kernel.iter().product::<usize>();
                let fact = dt.fact(&shape);
                let tract_op = Im2Col::new(
                    pool_spec,
                    case.groups,
                    k,
                    &fact.shape,
                    tract_onnx::tract_core::dyn_clone::clone_box(&*mmm),
                    packing,
                )
                .unwrap();
                let pad_value: Tensor = if dt == i8::datum_type() {
                    tensor0(-5i8)
                } else {
                    tensor0(1.5f32)
                };
                let mut model = TypedModel::default();
                let source = model.add_source("x", fact.clone()).unwrap();
                let pad = model.add_const("pad", pad_value).unwrap();
                let out = model
                    .wire_node("im2col", tract_op.clone(), &[source, pad])
                    .unwrap();
                model.select_output_outlets(&out).unwrap();
                let x = input(dt, &shape);
                let expected = model
                    .clone()
                    .into_runnable()
                    .unwrap()
                    .run(tvec![x.clone().into()])
                    .unwrap();

                let node = &model.nodes()[out[0].node];
                let mut ours = PanelIm2Col::for_node(&model, node, &tract_op)
                    .unwrap()
                    .unwrap_or_else(|| panic!("case {index}: not handled for {format:?}"));
                ours.with_sums = dt == i8::datum_type();
                let mut model = TypedModel::default();
                let source = model.add_source("x", fact).unwrap();
                let pad = model
                    .add_const(
                        "pad",
                        tensor0(if dt == i8::datum_type() { -5i32 } else { 0 }),
                    )
                    .unwrap();
                let pad = if dt == i8::datum_type() {
                    pad
                } else {
                    model.add_const("padf", tensor0(1.5f32)).unwrap()
                };
                let out = model
                    .wire_node("ours", ours.clone(), &[source, pad])
                    .unwrap();
                model.select_output_outlets(&out).unwrap();
                let got = model.into_runnable().unwrap().run(tvec![x.into()]).unwrap();

                let (expected, got_packed) = (
                    expected[0].try_storage_as::<PackedMatrixStorage>().unwrap(),
                    got[0].try_storage_as::<PackedMatrixStorage>().unwrap(),
                );
                let g = &ours.geometry;
                let size = dt.size_of();
                for group in 0..case.groups {
                    let (e, o) = (
                        expected.value_at(&[0, group]),
                        got_packed.value_at(&[0, group]),
                    );
                    assert_eq!((e.k(), e.mn()), (o.k(), o.mn()), "case {index} {format:?}");
                    let (e, o) = (panels(e, g.panel_len, size), panels(o, g.panel_len, size));
                    // tract leaves PackedFormat's end padding record uninitialised: compare k rows.
                    let compared = match g.layout {
                        Layout::K4 => g.panel_len,
                        Layout::KMajor => g.k() * g.r,
                    } * size;
                    for (p, (e, o)) in e.iter().zip(&o).enumerate() {
                        assert_eq!(
                            e[..compared],
                            o[..compared],
                            "case {index} {format:?} panel {p}"
                        );
                        assert!(
                            o[compared..].iter().all(|&b| b == 0),
                            "case {index}: padding not zero"
                        );
                    }
                    if dt == i8::datum_type() {
                        // QSumB's definition: per column, the sum over k of the packed values.
                        let sums = got[1].try_as_plain_ram().unwrap();
                        let sums = sums.as_slice::<i32>().unwrap();
                        let n = g.n();
                        let value = expected.value_at(&[0, group]);
                        let e = panels(value, g.panel_len, 1);
                        for column in 0..n {
                            let (panel, lane) = (column / g.r, column % g.r);
                            let total: i32 = (0..g.k())
                                .map(|kk| {
                                    let at = match g.layout {
                                        Layout::K4 => (kk / 4) * 4 * g.r + lane * 4 + kk % 4,
                                        Layout::KMajor => kk * g.r + lane,
                                    };
                                    e[panel][at] as i8 as i32
                                })
                                .sum();
                            assert_eq!(
                                sums[group * n + column],
                                total,
                                "case {index} sums col {column}"
                            );
                        }
                    }
                }
            }
        }
    }
}
