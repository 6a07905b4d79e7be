//! An infer request checked against a model version's signature.
//!
//! Everything a client can get wrong is found here, before the request
//! queues, and named: the input, what was expected, what came. The result
//! is typed tensors in the signature's order, ready to join a batch.

use crate::manifest::TensorSpec;
use oip::{Datatype, DecodeError, InferRequest, TensorData};

/// A request ready for the batcher.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Rows it holds (its batch dimension; 1 for an unbatched model).
    pub rows: usize,
    /// One tensor per signature input, in signature order.
    pub inputs: Vec<TensorData>,
    /// Indices of the signature outputs to return, in the order asked.
    pub outputs: Vec<usize>,
}

/// What is wrong with a request; the message names the input or output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("inputs is empty; the model takes {0}")]
    NoInputs(String),
    #[error("input {0:?} is not an input of the model (it takes {1})")]
    UnknownInput(String, String),
    #[error("input {0:?} is given twice")]
    DuplicateInput(String),
    #[error("input {0:?} is missing")]
    MissingInput(String),
    #[error("input {input:?}: {error}")]
    Datatype { input: String, error: String },
    #[error("input {input:?}: datatype is {got}, the model takes {expected}")]
    WrongDatatype {
        input: String,
        expected: Datatype,
        got: Datatype,
    },
    #[error("input {input:?}: shape {got:?} does not fit the model's {expected:?} (-1 is any batch size)")]
    WrongShape {
        input: String,
        expected: Vec<i64>,
        got: Vec<i64>,
    },
    #[error("input {input:?}: {error}")]
    Data { input: String, error: DecodeError },
    #[error("inputs disagree on the batch size ({0})")]
    BatchMismatch(String),
    #[error("batch of {rows} rows is over this model's limit of {max}")]
    BatchTooLarge { rows: usize, max: usize },
    #[error("batch of 0 rows")]
    EmptyBatch,
    #[error("output {0:?} is not an output of the model (it gives {1})")]
    UnknownOutput(String, String),
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `request` against the signature and decodes its data.
pub fn prepare(
    request: InferRequest,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    batched: bool,
    max_batch_size: usize,
) -> Result<Prepared, RequestError> {
    if request.inputs.is_empty() {
        return Err(RequestError::NoInputs(names(inputs)));
    }
    let mut slots: Vec<Option<TensorData>> = vec![None; inputs.len()];
    let mut rows: Option<(usize, String)> = None;
    for input in request.inputs {
        let index = inputs
            .iter()
            .position(|s| s.name == input.name)
            .ok_or_else(|| RequestError::UnknownInput(input.name.clone(), names(inputs)))?;
        if slots[index].is_some() {
            return Err(RequestError::DuplicateInput(input.name));
        }
        let spec = &inputs[index];
        let datatype: Datatype =
            input
                .datatype
                .parse()
                .map_err(|e: oip::UnknownDatatype| RequestError::Datatype {
                    input: input.name.clone(),
                    error: e.to_string(),
                })?;
        if datatype != spec.datatype {
            return Err(RequestError::WrongDatatype {
                input: input.name,
                expected: spec.datatype,
                got: datatype,
            });
        }
        let fits = input.shape.len() == spec.shape.len()
            && input.shape.iter().zip(&spec.shape).all(|(&got, &want)| {
                if want < 0 {
                    got >= 0
                } else {
                    got == want
                }
            });
        if !fits {
            return Err(RequestError::WrongShape {
                input: input.name,
                expected: spec.shape.clone(),
                got: input.shape,
            });
        }
        let data = oip::decode(datatype, &input.shape, input.data).map_err(|error| {
            RequestError::Data {
                input: input.name.clone(),
                error,
            }
        })?;
        let input_rows = if batched {
            // `fits` checked the rank and the sign.
            input.shape.first().map(|&d| d as usize).unwrap_or(1)
        } else {
            1
        };
        match &rows {
            None => rows = Some((input_rows, input.name.clone())),
            Some((n, first)) if *n != input_rows => {
                return Err(RequestError::BatchMismatch(format!(
                    "{first:?} has {n} rows, {:?} has {input_rows}",
                    input.name
                )))
            }
            Some(_) => {}
        }
        slots[index] = Some(data);
    }
    let mut decoded = Vec::with_capacity(inputs.len());
    for (spec, slot) in inputs.iter().zip(slots) {
        decoded.push(slot.ok_or_else(|| RequestError::MissingInput(spec.name.clone()))?);
    }
    let rows = rows.map(|(n, _)| n).unwrap_or(1);
    if rows == 0 {
        return Err(RequestError::EmptyBatch);
    }
    if rows > max_batch_size {
        return Err(RequestError::BatchTooLarge {
            rows,
            max: max_batch_size,
        });
    }
    let wanted = match request.outputs {
        None => (0..outputs.len()).collect(),
        Some(asked) => asked
            .iter()
            .map(|o| {
                outputs
                    .iter()
                    .position(|s| s.name == o.name)
                    .ok_or_else(|| RequestError::UnknownOutput(o.name.clone(), names(outputs)))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Prepared {
        rows,
        inputs: decoded,
        outputs: wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
        (
            vec![TensorSpec {
                name: "pixels".into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, 4],
            }],
            vec![
                TensorSpec {
                    name: "label".into(),
                    datatype: Datatype::Int64,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: "probabilities".into(),
                    datatype: Datatype::Fp32,
                    shape: vec![-1, 2],
                },
            ],
        )
    }

    fn check(body: &str) -> Result<Prepared, RequestError> {
        let (inputs, outputs) = signature();
        let request: InferRequest = serde_json::from_str(body).expect("parses");
        prepare(request, &inputs, &outputs, true, 8)
    }

    #[test]
    fn a_good_request_is_typed_in_signature_order() {
        let p = check(r#"{"inputs":[{"name":"pixels","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}],"outputs":[{"name":"probabilities"}]}"#).unwrap();
        assert_eq!(p.rows, 2);
        assert_eq!(p.outputs, vec![1]);
        assert_eq!(p.inputs[0].len(), 8);
    }

    #[test]
    fn every_mistake_names_the_input() {
        let cases = [
            (r#"{"inputs":[]}"#, "inputs is empty"),
            (
                r#"{"inputs":[{"name":"pixel","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "\"pixel\" is not an input",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}"#,
                "datatype is INT64",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP33","data":[1,2,3,4]}]}"#,
                "unknown datatype",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "shape [4]",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}"#,
                "needs 4 elements",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":["a","b","c","d"]}]}"#,
                "is a string",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[9,4],"datatype":"FP32","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}"#,
                "over this model's limit of 8",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[0,4],"datatype":"FP32","data":[]}]}"#,
                "0 rows",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"logits"}]}"#,
                "\"logits\" is not an output",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "given twice",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "shape [-1, 4]",
            ),
        ];
        for (body, expected) in cases {
            let err = check(body).expect_err(body).to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn a_missing_input_is_named() {
        let inputs = vec![
            TensorSpec {
                name: "a".into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, 1],
            },
            TensorSpec {
                name: "b".into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, 1],
            },
        ];
        let request: InferRequest = serde_json::from_str(
            r#"{"inputs":[{"name":"a","shape":[1,1],"datatype":"FP32","data":[1]}]}"#,
        )
        .unwrap();
        let err = prepare(request, &inputs, &[], true, 8).unwrap_err();
        assert_eq!(err, RequestError::MissingInput("b".into()));
    }
}
