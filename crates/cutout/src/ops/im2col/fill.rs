//! Filling the panels: whole blocks of neighbours on one output row where it can, else one
//! panel at a time.

use super::{Element, Geometry, Layout};

type FillFn<T> = fn(&Geometry, &[T], T, &mut [T], usize, Option<&mut [i32]>);
/// Fills panels `first_panel..` (the slice given) and their columns' sums.
type PanelWork<'a, T> = dyn Fn(&mut [T], usize, Option<&mut [i32]>) + Sync + 'a;

/// Writes every panel of one (batch, group) image: all of `packed`, padding included.
pub(super) fn fill_dispatch<T: Element>(
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
    if crate::ops::parallel::in_pool(parallel).is_none() {
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
