//! Tiny RMBG-shaped ONNX models built in code, so tests of the whole pipeline run in milliseconds
//! and need no downloaded weights. The mask they compute is predictable: "how red is the pixel".
//!
//! Graph: `input` [1,3,S,S] -> Conv 1x1 (weights [k, -k/2, -k/2], bias) -> Sigmoid -> `output`
//! [1,1,S,S], plus a side output `d1` (like IS-Net's) that a correct loader never computes.
//! With RMBG normalisation (pixel/255 - 0.5), pure red gives logit k, pure blue -k/2.

use prost::Message;
use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::f16;

/// Shapes of tiny model the tests need.
#[derive(Debug, Clone, Copy)]
pub struct TinyModel {
    /// Input and mask side length.
    pub size: usize,
    /// Store weights as fp16 and compute in fp16 between Casts, like RMBG's fp16 export.
    pub fp16: bool,
    /// End in a Sigmoid (RMBG-1.4) or return logits (RMBG-2.0 style).
    pub sigmoid: bool,
    /// Gain of the redness detector.
    pub gain: f32,
    /// Input channels; anything but 3 makes a deliberately wrong-shaped model.
    pub channels: usize,
}

impl Default for TinyModel {
    fn default() -> Self {
        TinyModel {
            size: 32,
            fp16: false,
            sigmoid: true,
            gain: 10.0,
            channels: 3,
        }
    }
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn weights(name: &str, dims: &[i64], values: &[f32], fp16: bool) -> pb::TensorProto {
    let mut t = pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        ..Default::default()
    };
    if fp16 {
        t.data_type = DataType::Float16 as i32;
        t.raw_data = values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
    } else {
        t.data_type = DataType::Float as i32;
        t.float_data = values.to_vec();
    }
    t
}

/// `graph` as a serialised ONNX model (opset 15).
pub fn model_bytes(graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        producer_name: "cutout-tests".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 15,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

impl TinyModel {
    /// The serialised ONNX model.
    pub fn onnx_bytes(&self) -> Vec<u8> {
        let s = self.size as i64;
        let c = self.channels as i64;
        let k = self.gain;
        // Red minus the mean of the other channels (extra channels of a wrong-shaped model get 0).
        let mut mask_weights = vec![0.0; self.channels];
        for (i, w) in [k, -k / 2.0, -k / 2.0]
            .into_iter()
            .enumerate()
            .take(self.channels)
        {
            mask_weights[i] = w;
        }
        let mut nodes = vec![];
        let mut x = "input";
        if self.fp16 {
            let mut cast = node("Cast", "to_half", &["input"], &["input_half"]);
            cast.attribute
                .push(int_attr("to", DataType::Float16 as i64));
            nodes.push(cast);
            x = "input_half";
        }
        nodes.push(node(
            "Conv",
            "mask_conv",
            &[x, "mask_w", "mask_b"],
            &["logits"],
        ));
        let mask = if self.sigmoid {
            nodes.push(node("Sigmoid", "mask_sigmoid", &["logits"], &["mask"]));
            "mask"
        } else {
            "logits"
        };
        if self.fp16 {
            let mut cast = node("Cast", "to_float", &[mask], &["output"]);
            cast.attribute.push(int_attr("to", DataType::Float as i64));
            nodes.push(cast);
        } else {
            nodes.push(node("Identity", "output_identity", &[mask], &["output"]));
        }
        // A side output, like IS-Net's d1..d6: correct loading drops it.
        nodes.push(node("Conv", "side_conv", &[x, "side_w"], &["side_logits"]));
        nodes.push(node("Sigmoid", "side_sigmoid", &["side_logits"], &["side"]));
        if self.fp16 {
            let mut cast = node("Cast", "side_to_float", &["side"], &["d1"]);
            cast.attribute.push(int_attr("to", DataType::Float as i64));
            nodes.push(cast);
        } else {
            nodes.push(node("Identity", "side_identity", &["side"], &["d1"]));
        }
        let graph = pb::GraphProto {
            name: "tiny_rmbg".into(),
            node: nodes,
            initializer: vec![
                weights("mask_w", &[1, c, 1, 1], &mask_weights, self.fp16),
                weights("mask_b", &[1], &[0.0], self.fp16),
                weights(
                    "side_w",
                    &[1, c, 1, 1],
                    &vec![1.0; self.channels],
                    self.fp16,
                ),
            ],
            input: vec![value_info("input", &[1, c, s, s])],
            output: vec![
                value_info("output", &[1, 1, s, s]),
                value_info("d1", &[1, 1, s, s]),
            ],
            ..Default::default()
        };
        model_bytes(graph)
    }

    /// A manifest entry describing this model (RMBG-1.4 conventions; logits if `sigmoid` is off).
    pub fn entry(&self) -> cutout::ModelEntry {
        let mut entry = cutout::Manifest::builtin().default_entry().clone();
        entry.id = "tiny".into();
        entry.name = "tiny test model".into();
        entry.url = None;
        entry.file = "tiny.onnx".into();
        entry.size = None;
        entry.sha256 = None;
        entry.input.width = self.size as u32;
        entry.input.height = self.size as u32;
        entry.output.sigmoid_applied = self.sigmoid;
        entry
    }
}

/// A model file that must be refused, and a phrase the refusal must contain.
pub struct BrokenModel {
    pub file_name: &'static str,
    pub bytes: Vec<u8>,
    pub expected: &'static str,
}

/// Empty, garbage, cut and wrong-shaped model files: every shell refuses each with a reason.
pub fn broken_models() -> Vec<BrokenModel> {
    let good = TinyModel::default().onnx_bytes();
    let with_channels = |channels| {
        TinyModel {
            channels,
            ..TinyModel::default()
        }
        .onnx_bytes()
    };
    vec![
        BrokenModel {
            file_name: "empty.onnx",
            bytes: vec![],
            expected: "is empty",
        },
        BrokenModel {
            file_name: "text.onnx",
            bytes: b"definitely not protobuf".to_vec(),
            expected: "not a readable ONNX model",
        },
        BrokenModel {
            file_name: "truncated.onnx",
            bytes: good[..good.len() / 2].to_vec(),
            expected: "not a readable ONNX model",
        },
        BrokenModel {
            file_name: "one-channel.onnx",
            bytes: with_channels(1),
            expected: "1 channels, expected 3 (RGB)",
        },
        BrokenModel {
            // Small on disk; its declared input alone would need 12 GB.
            file_name: "huge-input.onnx",
            bytes: TinyModel {
                size: 32768,
                ..TinyModel::default()
            }
            .onnx_bytes(),
            expected: "the input is 32768x32768",
        },
        BrokenModel {
            file_name: "four-channels.onnx",
            bytes: with_channels(4),
            expected: "4 channels, expected 3 (RGB)",
        },
    ]
}
