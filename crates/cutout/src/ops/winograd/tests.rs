use super::reference::*;
use super::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn check(shape: (usize, usize, usize, usize, usize), extreme: bool) {
    let (c_in, c_out, height, width, d) = shape;
    let (image, x0, kernel) = random_convolution(shape, extreme);
    let op = WinogradConvU8::new(&kernel, None, (c_out, c_in), d, Tiling::F2).unwrap();
    let got = op.convolve_u8(&image, x0, height, width);
    assert_eq!(
        got,
        direct_convolution(&image, x0, &kernel, shape),
        "{shape:?}"
    );
}

#[test]
fn equals_the_direct_convolution() {
    for shape in CASES {
        check(shape, false);
    }
}

/// The worst error per product [`worst_float_error`] allows for each tiling (f32's epsilon is
/// 1.2e-7). On these cases F(2x2) measures at most 3.3e-8; F(4x4) 5.6e-7, ~17x more: its input
/// transform scales values by up to 10 per side (`Bᵀ`'s rows) and its output transform sums
/// products with weights up to 19 per side (`Aᵀ`'s last row). Its bound leaves 3.6x over that
/// for fused multiply-adds and other data; a wrong transform entry errs by ~0.1.
const FLOAT_BOUNDS: [(Tiling, f32); 2] = [(Tiling::F2, 1e-6), (Tiling::F4, 2e-6)];

#[test]
fn float_convolution_is_the_direct_one_to_f32_rounding() {
    for (tiling, bound) in FLOAT_BOUNDS {
        for shape in CASES {
            let (c_in, c_out, height, width, d) = shape;
            let (image, kernel, bias) = random_float_convolution(shape);
            let op = WinogradConvF32::new(&kernel, Some(bias.clone()), (c_out, c_in), d, tiling);
            let got = op.unwrap().convolve(&image, |v| v, height, width);
            let want = direct_float_convolution(&image, &kernel, &bias, shape);
            let error = worst_float_error(&got, &want, c_in);
            assert!(error < bound, "{tiling:?} {shape:?}: error {error}");
        }
    }
}

#[test]
fn a_kernel_transformed_per_run_gives_the_held_kernels_bits() {
    // Random f32 kernels, and the same rounded to f16 (held as f16 bits, as fp16 models' are).
    for half in [false, true] {
        for (tiling, _) in FLOAT_BOUNDS {
            for shape in CASES {
                per_run_equals_held(shape, tiling, half);
            }
        }
    }
}

fn per_run_equals_held(shape: (usize, usize, usize, usize, usize), tiling: Tiling, half: bool) {
    let (c_in, c_out, height, width, d) = shape;
    let (image, mut kernel, bias) = random_float_convolution(shape);
    if half {
        kernel
            .iter_mut()
            .for_each(|k| *k = f16::from_f32(*k).to_f32());
    }
    let held = WinogradConvF32::new(&kernel, Some(bias.clone()), (c_out, c_in), d, tiling);
    let per_run =
        WinogradConvF32::transforming_per_run(&kernel, Some(bias), (c_out, c_in), d, tiling);
    let held = held.unwrap();
    assert!(held.source.is_none());
    let as_half = matches!(per_run.source.as_deref(), Some(KernelSource::Half(_)));
    assert_eq!(as_half, half, "held as f16 bits exactly when all are f16");
    assert_eq!(
        per_run.convolve(&image, |v| v, height, width),
        held.convolve(&image, |v| v, height, width),
        "{tiling:?} {shape:?} half {half}"
    );
}

#[test]
fn half_precision_bits_round_trip_exactly() {
    for h in 0..=u16::MAX {
        let value = f16::from_bits(h);
        if !value.is_finite() {
            continue;
        }
        assert_eq!(
            half_to_f32(h).to_bits(),
            value.to_f32().to_bits(),
            "{h:#06x}"
        );
        assert_eq!(half_bits(value.to_f32()), Some(h), "{h:#06x}");
    }
    for v in [
        0.1f32,
        1e-9,
        -3e-8,
        65520.0,
        1.0 + f32::EPSILON,
        f32::INFINITY,
        f32::NAN,
    ] {
        assert_eq!(half_bits(v), None, "{v} is no f16");
    }
}

#[test]
fn kernels_are_transformed_per_run_at_layers_of_few_tiles_only() {
    let per_run = |height: usize, width: usize| {
        let (c_in, c_out) = (2, 3);
        let kernel = tract_ndarray::ArrayD::from_elem(&[c_out, c_in, 3, 3][..], 0.5f32);
        let kernel = kernel.into_tensor();
        let op = WinogradConvF32::for_image(&kernel, None, (c_out, c_in), 1, (height, width));
        op.unwrap().source.is_some()
    };
    // IS-Net's 16x16 to 64x64 layers hold nearly all its weights; 128x128 has 1024 tiles.
    assert!(per_run(16, 16) && per_run(32, 32) && per_run(64, 64));
    assert!(!per_run(128, 128) && !per_run(512, 512));
}

#[test]
fn the_quantised_op_has_no_4x4_tiles() {
    let shape = (2, 4, 8, 8, 1);
    let (_, _, kernel) = random_convolution(shape, false);
    assert!(WinogradConvU8::new(&kernel, None, (4, 2), 1, Tiling::F4).is_none());
    assert!(WinogradConvU8::new(&kernel, None, (4, 2), 1, Tiling::F2).is_some());
}

#[test]
fn float_layers_take_4x4_tiles_where_they_save_enough_products() {
    assert_eq!(Tiling::for_float(512, 512, 1), Tiling::F4);
    assert_eq!(Tiling::for_float(64, 64, 1), Tiling::F4);
    assert_eq!(Tiling::for_float(64, 64, 8), Tiling::F4);
    assert_eq!(Tiling::for_float(32, 32, 2), Tiling::F4);
    // Fewer products, but not enough of them for the kernel values F(4x4) adds.
    assert_eq!(Tiling::for_float(16, 16, 1), Tiling::F2);
    // Each dilation class 2x2 pixels: one F(4x4) tile (36 products) for one F(2x2) one (16).
    assert_eq!(Tiling::for_float(16, 16, 8), Tiling::F2);
    assert_eq!(Tiling::for_float(1, 1, 1), Tiling::F2);
}

#[test]
fn sums_wide_inputs_in_blocks_without_overflow() {
    // 1030 channels of the largest magnitudes: 4x the sum would overflow i32.
    check((1030, 4, 4, 4, 1), true);
    check((600, 6, 5, 3, 2), false);
}

/// tract's quantised `Conv` node (ConvInteger as decluttered) in a graph of its own.
fn quantised_conv_graph(
    shape: (usize, usize, usize, usize, usize),
    dequantized: bool,
) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    let (c_in, c_out, height, width, d) = shape;
    let (_, _, kernel) = random_convolution(shape, false);
    // Kernel stored as u8 with zero point 128, as quantised ONNX files do.
    let kernel: Vec<u8> = kernel.iter().map(|&k| (k / 2 + 128) as u8).collect();
    let mut model = TypedModel::default();
    let image = model.add_source("image", u8::fact([1, c_in, height, width]))?;
    let x0 = model.add_source("x0", i32::scalar_fact())?;
    let kernel = tract_ndarray::ArrayD::from_shape_vec(&[c_out, c_in, 3, 3][..], kernel)?;
    let mut constant = |name: &str, t: Tensor| model.add_const(name, t);
    let inputs = [
        image,
        constant("kernel", kernel.into_tensor())?,
        constant("bias", tensor0(0i32))?,
        x0,
        constant("x_scale", tensor0(1f32))?,
        constant("k0", tensor0(128i32))?,
        constant("k_scale", tensor0(1f32))?,
        constant("y0", tensor0(0i32))?,
        constant("y_scale", tensor0(1f32))?,
    ];
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![3, 3],
            padding: PaddingSpec::Explicit(tvec![d, d], tvec![d, d]),
            dilations: Some(tvec![d, d]),
            strides: Some(tvec![1, 1]),
            input_channels: c_in,
            output_channels: c_out,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: Some(i32::datum_type()),
    };
    let mut output = model.wire_node("conv", conv, &inputs)?;
    if dequantized {
        // As dynamically quantised ONNX files continue: Cast, Mul by the scales, Add the
        // bias, ReLU.
        use tract_onnx::tract_core::ops::{cast::cast, math};
        let scale = model.add_source("scale", f32::fact([1, 1, 1, 1]))?;
        let bias: Vec<f32> = (0..c_out).map(|o| o as f32 * 0.75 - 1.5).collect();
        let bias = tract_ndarray::ArrayD::from_shape_vec(&[1, c_out, 1, 1][..], bias)?;
        let bias = model.add_const("bias_f32", bias.into_tensor())?;
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]]))?;
        output = model.wire_node("cast", cast(f32::datum_type()), &output)?;
        output = model.wire_node("scaled", math::mul(), &[output[0], scale])?;
        output = model.wire_node("biased", math::add(), &[output[0], bias])?;
        output = model.wire_node("relu", math::max(), &[output[0], zero])?;
    }
    model.select_output_outlets(&output)?;
    Ok(model)
}

#[test]
fn replaces_tracts_quantised_convolution_with_the_same_results() -> TractResult<()> {
    let shape = (6, 5, 9, 12, 2);
    let (image, x0, _) = random_convolution(shape, false);
    let inputs = || -> TractResult<TVec<TValue>> {
        let image = tract_ndarray::ArrayD::from_shape_vec(&[1, 6, 9, 12][..], image.clone())?;
        Ok(tvec![image.into_tvalue(), tensor0(x0).into_tvalue()])
    };
    let tracts = quantised_conv_graph(shape, false)?
        .into_runnable()?
        .run(inputs()?)?;
    let mut model = quantised_conv_graph(shape, false)?;
    assert_eq!(use_winograd_for(&mut model, Kinds::ALL)?, 1);
    assert!(model.nodes().iter().any(|n| n.op_is::<WinogradConvU8>()));
    let ours = model.into_runnable()?.run(inputs()?)?;
    assert_eq!(ours[0].shape(), &[1, 5, 9, 12]);
    assert_eq!(ours[0], tracts[0]);
    Ok(())
}

#[test]
fn folds_the_dequantisation_into_the_op_with_the_same_bits() -> TractResult<()> {
    // The second has two channel blocks (the dequantisation applies to their sum).
    for shape in [(6, 5, 9, 12, 1), (600, 5, 6, 7, 2)] {
        folds_the_dequantisation(shape)?;
    }
    Ok(())
}

fn folds_the_dequantisation(shape: (usize, usize, usize, usize, usize)) -> TractResult<()> {
    let (c_in, _, height, width, _) = shape;
    let (image, x0, _) = random_convolution(shape, false);
    let inputs = || -> TractResult<TVec<TValue>> {
        let image =
            tract_ndarray::ArrayD::from_shape_vec(&[1, c_in, height, width][..], image.clone())?;
        let scale = tensor4(&[[[[0.0123f32]]]]);
        Ok(tvec![
            image.into_tvalue(),
            tensor0(x0).into_tvalue(),
            scale.into_tvalue()
        ])
    };
    let tracts = quantised_conv_graph(shape, true)?
        .into_runnable()?
        .run(inputs()?)?;
    let mut model = quantised_conv_graph(shape, true)?;
    assert_eq!(use_winograd_for(&mut model, Kinds::ALL)?, 1);
    assert_eq!(fuse_dequantize(&mut model)?, 1);
    let plan = model.into_runnable()?;
    let ran: Vec<String> = plan
        .model()
        .eval_order()?
        .iter()
        .map(|&id| plan.model().node(id).op.name().to_string())
        .collect();
    assert_eq!(
        ran,
        ["Source", "Source", "Source", "WinogradConvU8"],
        "the chain is gone"
    );
    let ours = plan.run(inputs()?)?;
    assert_eq!(ours[0].datum_type(), f32::datum_type());
    assert!(
        ours[0]
            .try_as_plain_ram()?
            .as_slice::<f32>()?
            .contains(&0.0),
        "ReLU applied"
    );
    assert_eq!(ours[0], tracts[0]);
    Ok(())
}

#[test]
fn replaces_tracts_float_convolution_with_the_same_results() -> TractResult<()> {
    replaces_tracts_float_convolution(false)
}

#[test]
fn folds_a_relu_after_the_float_convolution_into_the_op() -> TractResult<()> {
    replaces_tracts_float_convolution(true)
}

fn replaces_tracts_float_convolution(relu: bool) -> TractResult<()> {
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    let shape = (7, 6, 60, 71, 1);
    let (c_in, c_out, height, width, d) = shape;
    let (image, kernel, bias) = random_float_convolution(shape);
    let graph = || -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let image = model.add_source("image", f32::fact([1, c_in, height, width]))?;
        let kernel =
            tract_ndarray::ArrayD::from_shape_vec(&[c_out, c_in, 3, 3][..], kernel.clone())?;
        let kernel = model.add_const("kernel", kernel.into_tensor())?;
        let bias = model.add_const("bias", tract_ndarray::arr1(&bias).into_tensor())?;
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![3, 3],
                padding: PaddingSpec::Explicit(tvec![d, d], tvec![d, d]),
                dilations: None,
                strides: None,
                input_channels: c_in,
                output_channels: c_out,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let mut output = model.wire_node("conv", conv, &[image, kernel, bias])?;
        if relu {
            // ONNX's Relu as tract-onnx writes it.
            use tract_onnx::tract_core::ops::math;
            let zero = model.add_const("zero", tensor4(&[[[[0f32]]]]))?;
            output = model.wire_node("relu", math::max(), &[output[0], zero])?;
        }
        model.select_output_outlets(&output)?;
        Ok(model)
    };
    let input = tract_ndarray::ArrayD::from_shape_vec(&[1, c_in, height, width][..], image)?;
    let tracts = graph()?
        .into_runnable()?
        .run(tvec![input.clone().into_tvalue()])?;
    let mut model = graph()?;
    assert_eq!(use_winograd_for(&mut model, Kinds::ALL)?, 1);
    assert_eq!(fuse_relu(&mut model)?, relu as usize);
    let ops = model.nodes().iter().map(|n| n.op.name().to_string());
    assert_eq!(ops.filter(|op| op == "Max").count(), 0, "the ReLU is gone");
    let ours = model.into_runnable()?.run(tvec![input.into_tvalue()])?;
    assert_eq!(ours[0].shape(), tracts[0].shape());
    let (ours, tracts) = (ours[0].try_as_plain_ram()?, tracts[0].try_as_plain_ram()?);
    let (ours, tracts) = (ours.as_slice::<f32>()?, tracts.as_slice::<f32>()?);
    let error = worst_float_error(ours, tracts, c_in);
    // 60x71 takes F(4x4) tiles.
    assert_eq!(Tiling::for_float(height, width, d), Tiling::F4);
    assert!(error < FLOAT_BOUNDS[1].1, "error {error}");
    if relu {
        assert!(
            ours.contains(&0.0) && ours.iter().all(|&v| v >= 0.0),
            "ReLU applied"
        );
    }
    Ok(())
}

#[test]
fn tiles_cover_every_output_once() {
    for m in [2, 4] {
        for &(h, w, d) in &[(7, 9, 1), (16, 16, 8), (5, 11, 3), (1, 1, 2), (13, 6, 2)] {
            let mut seen = vec![0; h * w];
            for (y0, x0) in tile_origins(h, w, d, m) {
                for a in 0..m {
                    for b in 0..m {
                        let (y, x) = (y0 + d * a, x0 + d * b);
                        if y < h && x < w {
                            seen[y * w + x] += 1;
                        }
                    }
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{m}x{m} tiles, {h}x{w} dilation {d}"
            );
        }
    }
}
