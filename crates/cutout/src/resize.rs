//! Bilinear resampling with exactly PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
//! semantics (no antialiasing), which is what BRIA's reference pipeline uses for both the input
//! image and the output mask. Matching it is what keeps Cutout within 1/255 of the reference.

/// Source taps for one output coordinate: `out = w0 * in[i0] + w1 * in[i1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

/// PyTorch's `area_pixel_compute_source_index` + `compute_indices_weights_linear`, in f32 as
/// PyTorch computes them for float tensors.
fn taps(in_len: usize, out_len: usize) -> Vec<Tap> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|dst| {
            let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_len - 1);
            let lambda = (src - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
            Tap {
                i0,
                i1,
                w0: 1.0 - lambda,
                w1: lambda,
            }
        })
        .collect()
}

/// Resizes one channel-planar f32 image (`planes` planes of `in_w * in_h`, row-major) to
/// `out_w * out_h`. `read(plane, index)` fetches an input sample so callers can resample straight
/// from interleaved pixels without a copy.
pub fn bilinear_planar(
    planes: usize,
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
    read: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    assert!(
        in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0,
        "resize of an empty image"
    );
    let x_taps = taps(in_w, out_w);
    let y_taps = taps(in_h, out_h);
    let mut out = vec![0.0f32; planes * out_w * out_h];
    // One horizontally resampled input row, reused: each output row needs two of them.
    let mut row_cache: [(usize, Vec<f32>); 2] = [
        (usize::MAX, vec![0.0; out_w]),
        (usize::MAX, vec![0.0; out_w]),
    ];
    for plane in 0..planes {
        row_cache[0].0 = usize::MAX;
        row_cache[1].0 = usize::MAX;
        let resample_row = |y: usize, dst: &mut Vec<f32>| {
            let base = y * in_w;
            for (x, t) in x_taps.iter().enumerate() {
                dst[x] = t.w0 * read(plane, base + t.i0) + t.w1 * read(plane, base + t.i1);
            }
        };
        for (oy, ty) in y_taps.iter().enumerate() {
            for (slot, y) in [(0usize, ty.i0), (1usize, ty.i1)] {
                if row_cache[slot].0 != y {
                    let other = 1 - slot;
                    if row_cache[other].0 == y {
                        let copy = row_cache[other].1.clone();
                        row_cache[slot] = (y, copy);
                    } else {
                        resample_row(y, &mut row_cache[slot].1);
                        row_cache[slot].0 = y;
                    }
                }
            }
            let out_row = &mut out[plane * out_w * out_h + oy * out_w..][..out_w];
            let (r0, r1) = (&row_cache[0].1, &row_cache[1].1);
            for x in 0..out_w {
                out_row[x] = ty.w0 * r0[x] + ty.w1 * r1[x];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize1(input: &[f32], (w, h): (usize, usize), out: (usize, usize)) -> Vec<f32> {
        bilinear_planar(1, (w, h), out, |_, i| input[i])
    }

    #[test]
    fn identity_size_is_a_copy() {
        let input: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(resize1(&input, (4, 3), (4, 3)), input);
    }

    #[test]
    fn matches_pytorch_upsampling_values() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0.,1.,2.,3.]]]]), size=(1,8),
        //                                 mode="bilinear", align_corners=False)
        let out = resize1(&[0.0, 1.0, 2.0, 3.0], (4, 1), (8, 1));
        let expected = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn matches_pytorch_downsampling_values() {
        // Downscaling 8 -> 3 without antialias: scale 8/3, sources 0.8333, 3.5, 6.1667.
        let input: Vec<f32> = (0..8).map(|v| (v * v) as f32).collect();
        let out = resize1(&input, (8, 1), (3, 1));
        let lerp = |s: f32| {
            let i = s as usize;
            let l = s - i as f32;
            input[i] * (1.0 - l) + input[(i + 1).min(7)] * l
        };
        let expected = [
            lerp(8.0 / 3.0 * 0.5 - 0.5),
            lerp(8.0 / 3.0 * 1.5 - 0.5),
            lerp(8.0 / 3.0 * 2.5 - 0.5),
        ];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{out:?} vs {expected:?}");
        }
    }

    #[test]
    fn two_dimensional_and_multi_plane() {
        // Plane 0 is constant 7, plane 1 a vertical ramp: both survive a 2x3 -> 5x4 resize.
        let w = 2;
        let h = 3;
        let data: Vec<f32> = (0..2 * w * h)
            .map(|i| {
                if i < w * h {
                    7.0
                } else {
                    ((i - w * h) / w) as f32
                }
            })
            .collect();
        let out = bilinear_planar(2, (w, h), (5, 4), |p, i| data[p * w * h + i]);
        assert!(out[..20].iter().all(|v| (*v - 7.0).abs() < 1e-6));
        let ramp = &out[20..];
        for x in 0..5 {
            assert!(
                ramp[x] < ramp[5 + x] && ramp[5 + x] < ramp[10 + x] && ramp[10 + x] < ramp[15 + x]
            );
        }
        assert!((ramp[0] - 0.0).abs() < 1e-6 && (ramp[15] - 2.0).abs() < 1e-6);
    }
}
