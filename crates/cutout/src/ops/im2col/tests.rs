use super::*;
use tract_linalg::mmm::MatMatMul;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

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
            let format = tract_onnx::tract_core::dyn_clone::clone_box(&*mmm.packings()[packing].1);
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
