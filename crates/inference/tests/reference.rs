//! The committed example models, run by tract, give the outputs
//! onnxruntime gave for the reference inputs (models/reference/digits.json,
//! made by scripts/models/make_models.py), within 1e-5.

use inference::manifest::Manifest;
use inference::runtime::Runtime;
use oip::TensorData;
use std::path::PathBuf;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn load(name: &str, version: u64) -> Runtime {
    let dir = repository().join(name).join(version.to_string());
    let onnx = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
    let manifest =
        Manifest::parse(&std::fs::read_to_string(dir.join("model.toml")).expect("model.toml"))
            .expect("valid model.toml");
    Runtime::load(&onnx, &manifest).expect("loads")
}

#[derive(serde::Deserialize)]
struct Expected {
    label: Vec<i64>,
    probabilities: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct Reference {
    inputs: Vec<Vec<f32>>,
    expected: std::collections::BTreeMap<String, Expected>,
}

fn reference() -> Reference {
    let text =
        std::fs::read_to_string(repository().join("reference/digits.json")).expect("reference set");
    serde_json::from_str(&text).expect("valid reference set")
}

#[test]
fn every_example_model_matches_onnxruntime() {
    let reference = reference();
    assert_eq!(reference.expected.len(), 3);
    for (key, expected) in &reference.expected {
        let (name, version) = key.split_once('/').expect("name/version");
        let runtime = load(name, version.parse().expect("number"));
        assert!(runtime.batched(), "{key} takes a batch");
        let rows = reference.inputs.len();
        let flat: Vec<f32> = reference.inputs.iter().flatten().copied().collect();
        let outputs = runtime
            .run(vec![TensorData::Fp32(flat)], rows)
            .expect("runs");
        let names: Vec<&str> = runtime.outputs.iter().map(|o| o.name.as_str()).collect();
        let label = names
            .iter()
            .position(|n| *n == "label")
            .expect("label output");
        let probabilities = names
            .iter()
            .position(|n| *n == "probabilities")
            .expect("probabilities output");
        assert_eq!(outputs[label].0, vec![rows]);
        assert_eq!(
            outputs[label].1,
            TensorData::Int64(expected.label.clone()),
            "{key} labels"
        );
        assert_eq!(outputs[probabilities].0, vec![rows, 10]);
        let TensorData::Fp32(got) = &outputs[probabilities].1 else {
            panic!("{key}: probabilities are not FP32");
        };
        let want: Vec<f32> = expected.probabilities.iter().flatten().copied().collect();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{key}: probabilities differ by {worst}");
    }
}

#[test]
fn one_row_and_a_batch_agree() {
    let reference = reference();
    let runtime = load("digits", 2);
    let all: Vec<f32> = reference.inputs.iter().take(4).flatten().copied().collect();
    let batch = runtime.run(vec![TensorData::Fp32(all)], 4).expect("runs");
    for (i, row) in reference.inputs.iter().take(4).enumerate() {
        let one = runtime
            .run(vec![TensorData::Fp32(row.clone())], 1)
            .expect("runs");
        let TensorData::Int64(labels) = &batch[0].1 else {
            panic!("label is INT64")
        };
        assert_eq!(one[0].1, TensorData::Int64(vec![labels[i]]));
    }
}

#[test]
fn a_corrupt_file_is_a_clear_error() {
    let err = match Runtime::load(b"not an onnx file", &Manifest::default()) {
        Ok(_) => panic!("garbage loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("not a loadable ONNX model"), "{err}");
    // A signature that names an input the file does not have.
    let onnx = std::fs::read(repository().join("digits/1/model.onnx")).unwrap();
    let manifest =
        Manifest::parse("[[inputs]]\nname = 'image'\ndatatype = 'FP32'\nshape = [-1, 64]").unwrap();
    let err = match Runtime::load(&onnx, &manifest) {
        Ok(_) => panic!("wrong signature loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("\"image\" is not an input"), "{err}");
}
