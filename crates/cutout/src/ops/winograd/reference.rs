//! Winograd's oracle: quantised and float 3x3 convolutions summed straight from their
//! definition, and the random cases they are checked on, natively and in the browser.

use cutout_testkit::Rng;

/// A random `[c_in, height, width]` u8 image, its zero point and an `[c_out, c_in, 3, 3]`
/// kernel minus its zero point; `extreme` takes the largest magnitudes instead.
pub fn random_convolution(
    (c_in, c_out, height, width, d): (usize, usize, usize, usize, usize),
    extreme: bool,
) -> (Vec<u8>, i32, Vec<i32>) {
    let mut rng =
        Rng::new(0x9e3779b97f4a7c15 ^ (c_in * 131 + c_out * 17 + height * 7 + width + d) as u64);
    let image: Vec<u8> = (0..c_in * height * width)
        .map(|_| if extreme { 255 } else { rng.next_u64() as u8 })
        .collect();
    let kernel: Vec<i32> = (0..c_out * c_in * 9)
        .map(|_| {
            if extreme {
                -255
            } else {
                (rng.next_u64() % 511) as i32 - 255
            }
        })
        .collect();
    let x0 = if extreme {
        0
    } else {
        (rng.next_u64() % 256) as i32
    };
    (image, x0, kernel)
}

/// `Σ (x - x0)(k - k0)` over each 3x3 window (dilation `d`, zero padding `d`).
pub fn direct_convolution(
    image: &[u8],
    x0: i32,
    kernel: &[i32],
    (c_in, c_out, height, width, d): (usize, usize, usize, usize, usize),
) -> Vec<i32> {
    let mut out = vec![0i32; c_out * height * width];
    for o in 0..c_out {
        for y in 0..height {
            for x in 0..width {
                let mut sum = 0i32;
                for c in 0..c_in {
                    for r in 0..3 {
                        for s in 0..3 {
                            let (Some(yy), Some(xx)) =
                                ((y + d * r).checked_sub(d), (x + d * s).checked_sub(d))
                            else {
                                continue;
                            };
                            if yy >= height || xx >= width {
                                continue;
                            }
                            let v = image[(c * height + yy) * width + xx] as i32 - x0;
                            sum += v * kernel[((o * c_in + c) * 3 + r) * 3 + s];
                        }
                    }
                }
                out[(o * height + y) * width + x] = sum;
            }
        }
    }
    out
}

/// Shapes `(c_in, c_out, height, width, dilation)` covering partial panels and tiles, odd
/// channel counts, dilations and rows of 8 tiles.
pub const CASES: [(usize, usize, usize, usize, usize); 9] = [
    (2, 4, 8, 8, 1),
    (3, 5, 7, 9, 1),
    (16, 8, 16, 16, 2),
    (5, 3, 11, 6, 3),
    (8, 4, 16, 16, 8),
    (4, 4, 1, 1, 1),
    (1, 1, 2, 3, 1),
    (6, 9, 5, 4, 4),
    (64, 16, 32, 32, 1),
];

/// A random `[c_in, height, width]` f32 image in [-1, 1], an `[c_out, c_in, 3, 3]` kernel in
/// [-1, 1] and a bias per output channel.
pub fn random_float_convolution(
    (c_in, c_out, height, width, d): (usize, usize, usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng =
        Rng::new(0x2545f4914f6cdd1d ^ (c_in * 131 + c_out * 17 + height * 7 + width + d) as u64);
    let mut unit = move || (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0;
    let image = (0..c_in * height * width).map(|_| unit()).collect();
    let kernel = (0..c_out * c_in * 9).map(|_| unit()).collect();
    let bias = (0..c_out).map(|_| unit()).collect();
    (image, kernel, bias)
}

/// `bias + Σ x·k` over each 3x3 window (dilation `d`, zero padding `d`), summed in f64.
pub fn direct_float_convolution(
    image: &[f32],
    kernel: &[f32],
    bias: &[f32],
    (c_in, c_out, height, width, d): (usize, usize, usize, usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; c_out * height * width];
    for o in 0..c_out {
        for y in 0..height {
            for x in 0..width {
                let mut sum = bias[o] as f64;
                for c in 0..c_in {
                    for r in 0..3 {
                        for s in 0..3 {
                            let (Some(yy), Some(xx)) =
                                ((y + d * r).checked_sub(d), (x + d * s).checked_sub(d))
                            else {
                                continue;
                            };
                            if yy >= height || xx >= width {
                                continue;
                            }
                            let v = image[(c * height + yy) * width + xx] as f64;
                            sum += v * kernel[((o * c_in + c) * 3 + r) * 3 + s] as f64;
                        }
                    }
                }
                out[(o * height + y) * width + x] = sum as f32;
            }
        }
    }
    out
}

/// The largest difference between `got` and `want`, relative to the number of products summed
/// (each in [-1, 1]): f32 rounding grows with it.
pub fn worst_float_error(got: &[f32], want: &[f32], c_in: usize) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = (9 * c_in) as f32;
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f32::max)
}
