//! ONNX DynamicQuantizeLinear (u8), tract's and onnxruntime's formula element by element: the
//! oracle of the quantizer's tests, natively and in the browser.

pub fn reference(xs: &[f32]) -> (Vec<u8>, f32, u8) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in xs {
        if v < lo {
            lo = v
        } else if v > hi {
            hi = v
        }
    }
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    let q = xs
        .iter()
        .map(|x| (((x / scale).round_ties_even() as i32) + zp as i32).clamp(0, 255) as u8)
        .collect();
    (q, scale, zp)
}
