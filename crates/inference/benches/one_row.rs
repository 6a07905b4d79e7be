//! Benchmarks (`cargo bench -p reliable-inference --bench one_row`): what
//! one infer request of the digits MLP (models/digits/2) costs inside the
//! process, piece by piece, without HTTP or batching:
//!
//! - tract running one row (`Runtime::run`, the Vec of the row cloned in:
//!   `run` takes it by value, as the batcher hands it over), to set beside
//!   onnxruntime's Python `session.run` (scripts/models/ort_microbench.py);
//! - tract running a batch of 64 rows, per row: what batching saves;
//! - decoding a one-row request body (`serde_json` into `oip::InferRequest`)
//!   and checking it against the signature (`request::prepare`);
//! - encoding the one-row response (`serde_json` of `oip::InferResponse`).
//!
//! Each figure is the median over REPEATS samples of NUMBER calls each, in
//! ns per call (min and max beside it). No harness, so no extra
//! dependencies; the `name_ns=` lines at the end are for scripts
//! (scripts/bench-inference reads `tract_one_row_ns`).

use inference::manifest::Manifest;
use inference::request::prepare;
use inference::runtime::Runtime;
use oip::{InferRequest, InferResponse, ResponseOutput, TensorData};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

const REPEATS: usize = 7;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Times `number` calls of `f`, `REPEATS` times; prints and returns the
/// median ns per call.
fn measure(name: &str, number: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..number / 10 {
        f(); // warm caches and the allocator
    }
    let mut per_call: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..number {
                f();
            }
            start.elapsed().as_nanos() as f64 / number as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    let median = per_call[REPEATS / 2];
    println!(
        "{name:<58} median {median:>9.0} ns  (min {:.0}, max {:.0}; {REPEATS} x {number} calls)",
        per_call[0],
        per_call[REPEATS - 1]
    );
    median
}

#[derive(serde::Deserialize)]
struct Reference {
    inputs: Vec<Vec<f32>>,
}

fn main() {
    let dir = repository().join("digits/2");
    let onnx = std::fs::read(dir.join("model.onnx")).expect("models/digits/2/model.onnx");
    let manifest =
        Manifest::parse(&std::fs::read_to_string(dir.join("model.toml")).expect("model.toml"))
            .expect("valid model.toml");
    let runtime = Runtime::load(&onnx, &manifest).expect("the model loads");
    let text =
        std::fs::read_to_string(repository().join("reference/digits.json")).expect("reference set");
    let reference: Reference = serde_json::from_str(&text).expect("valid reference set");
    let row = reference.inputs[0].clone();
    assert_eq!(row.len(), 64, "a digits row has 64 pixels");

    // The body the HTTP benchmarks send (scripts/bench-inference-peer
    // writes the same one with Python's json.dump).
    let body = serde_json::json!({
        "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]
    })
    .to_string();
    let max_batch_size = manifest.max_batch_size.unwrap_or(64);

    println!(
        "# models/digits/2 (MLP 64-64-10) in tract, one thread, {} byte request body",
        body.len()
    );
    let one_row = measure("tract Runtime::run, one row", 20_000, || {
        black_box(
            runtime
                .run(vec![TensorData::Fp32(black_box(&row).clone())], 1)
                .expect("runs"),
        );
    });

    let batch: Vec<f32> = reference
        .inputs
        .iter()
        .cycle()
        .take(64)
        .flatten()
        .copied()
        .collect();
    let batch_call = measure(
        "tract Runtime::run, batch of 64 rows (per call)",
        2_000,
        || {
            black_box(
                runtime
                    .run(vec![TensorData::Fp32(black_box(&batch).clone())], 64)
                    .expect("runs"),
            );
        },
    );
    println!(
        "{:<58} {:>16.0} ns per row",
        "  (the batch of 64, per row)",
        batch_call / 64.0
    );

    let decode = measure(
        "decode a one-row request (serde_json -> InferRequest)",
        20_000,
        || {
            black_box(serde_json::from_str::<InferRequest>(black_box(&body)).expect("parses"));
        },
    );
    let parsed: InferRequest = serde_json::from_str(&body).expect("parses");
    let check = measure("check and type it (request::prepare)", 20_000, || {
        let request = black_box(&parsed).clone();
        black_box(
            prepare(
                request,
                &runtime.inputs,
                &runtime.outputs,
                runtime.batched(),
                max_batch_size,
            )
            .expect("a valid request"),
        );
    });
    let clone = measure("  (of which: cloning the parsed request)", 20_000, || {
        black_box(black_box(&parsed).clone());
    });

    let outputs = runtime
        .run(vec![TensorData::Fp32(row.clone())], 1)
        .expect("runs");
    let response = InferResponse {
        model_name: "digits".into(),
        model_version: "2".into(),
        id: Some("0123456789abcdef01234567".into()),
        parameters: None,
        outputs: outputs
            .into_iter()
            .zip(&runtime.outputs)
            .map(|((shape, data), spec)| ResponseOutput {
                name: spec.name.clone(),
                shape: shape.iter().map(|&d| d as u64).collect(),
                datatype: data.datatype(),
                parameters: None,
                data,
            })
            .collect(),
    };
    let encode = measure("encode the one-row response (serde_json)", 20_000, || {
        black_box(serde_json::to_vec(black_box(&response)).expect("serializes"));
    });

    println!("tract_one_row_ns={one_row:.0}");
    println!("tract_batch64_per_row_ns={:.0}", batch_call / 64.0);
    println!("decode_request_ns={decode:.0}");
    println!("prepare_request_ns={:.0}", (check - clone).max(0.0));
    println!("encode_response_ns={encode:.0}");
}
