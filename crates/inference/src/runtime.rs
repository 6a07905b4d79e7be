//! ONNX models run in-process with tract: pure Rust, nothing downloaded.
//!
//! Loading fixes the serving signature: the `model.toml` inputs (when
//! given) set each input's datatype and shape, with `-1` as a symbolic
//! batch dimension, so a file whose dimensions are unnamed or unknown still
//! optimizes into one plan for every batch size. Without a `model.toml`
//! signature, the file's own is used, and any unknown dimension other than
//! the first is an error that says to declare it. The plan is shared
//! (`Arc`) and immutable; running it is a pure function of the inputs, done
//! on the compute pool, never on the async workers.

use crate::manifest::{Manifest, TensorSpec};
use oip::{Datatype, TensorData};
use std::io::Cursor;
use std::sync::Arc;
use tract_onnx::prelude::*;

/// A loaded, optimized model with its serving signature.
pub struct Runtime {
    plan: Arc<TypedSimplePlan>,
    /// Inputs in the order the plan takes them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs in the order the plan gives them.
    pub outputs: Vec<TensorSpec>,
    /// Bytes of the typed model's constant tensors (the decoded ONNX
    /// initializers), before tract repacks them for its kernels.
    weight_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a loadable ONNX model: {0}")]
    Onnx(String),
    #[error("signature: {0}")]
    Signature(String),
}

#[derive(Debug, thiserror::Error)]
#[error("model execution failed: {0}")]
pub struct RunError(String);

fn tract_error(e: &TractError) -> String {
    // The whole chain, on one line.
    format!("{e:#}").replace('\n', " ")
}

fn to_datum(datatype: Datatype) -> DatumType {
    match datatype {
        Datatype::Bool => DatumType::Bool,
        Datatype::Int8 => DatumType::I8,
        Datatype::Int16 => DatumType::I16,
        Datatype::Int32 => DatumType::I32,
        Datatype::Int64 => DatumType::I64,
        Datatype::Uint8 => DatumType::U8,
        Datatype::Uint16 => DatumType::U16,
        Datatype::Uint32 => DatumType::U32,
        Datatype::Uint64 => DatumType::U64,
        Datatype::Fp16 => DatumType::F16,
        Datatype::Fp32 => DatumType::F32,
        Datatype::Fp64 => DatumType::F64,
        Datatype::Bytes => DatumType::String,
    }
}

fn from_datum(datum: DatumType) -> Option<Datatype> {
    Some(match datum {
        DatumType::Bool => Datatype::Bool,
        DatumType::I8 => Datatype::Int8,
        DatumType::I16 => Datatype::Int16,
        DatumType::I32 => Datatype::Int32,
        DatumType::I64 => Datatype::Int64,
        DatumType::U8 => Datatype::Uint8,
        DatumType::U16 => Datatype::Uint16,
        DatumType::U32 => Datatype::Uint32,
        DatumType::U64 => Datatype::Uint64,
        DatumType::F16 => Datatype::Fp16,
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        DatumType::String => Datatype::Bytes,
        _ => return None,
    })
}

/// The signature tract sees for one outlet: datatype and shape with `-1`
/// for the symbolic (batch) dimension.
fn spec_of(name: String, fact: &TypedFact, what: &str) -> Result<TensorSpec, LoadError> {
    let datatype = from_datum(fact.datum_type).ok_or_else(|| {
        LoadError::Signature(format!(
            "{what} {name:?} has datatype {:?}, which the protocol cannot carry",
            fact.datum_type
        ))
    })?;
    let mut shape = Vec::with_capacity(fact.shape.rank());
    for (i, dim) in fact.shape.iter().enumerate() {
        match dim.to_i64() {
            Ok(n) => shape.push(n),
            Err(_) if i == 0 => shape.push(-1),
            Err(_) => {
                return Err(LoadError::Signature(format!(
                    "{what} {name:?}: dimension {i} is not known ({dim}); declare the signature in model.toml"
                )))
            }
        }
    }
    Ok(TensorSpec {
        name,
        datatype,
        shape,
    })
}

impl Runtime {
    /// Loads and optimizes `onnx` with the signature of `manifest`.
    pub fn load(onnx: &[u8], manifest: &Manifest) -> Result<Self, LoadError> {
        let onnx_err = |e: TractError| LoadError::Onnx(tract_error(&e));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(onnx))
            .map_err(onnx_err)?;
        let input_names: Vec<String> = model
            .input_outlets()
            .map_err(onnx_err)?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        if !manifest.inputs.is_empty() {
            if manifest.inputs.len() != input_names.len() {
                return Err(LoadError::Signature(format!(
                    "model.toml declares {} inputs, the ONNX file has {} ({})",
                    manifest.inputs.len(),
                    input_names.len(),
                    input_names.join(", ")
                )));
            }
            let batch = model.symbols.sym("batch");
            for spec in &manifest.inputs {
                let index = input_names
                    .iter()
                    .position(|n| *n == spec.name)
                    .ok_or_else(|| {
                        LoadError::Signature(format!(
                            "model.toml input {:?} is not an input of the ONNX file ({})",
                            spec.name,
                            input_names.join(", ")
                        ))
                    })?;
                let dims: TVec<TDim> = spec
                    .shape
                    .iter()
                    .map(|&d| {
                        if d < 0 {
                            batch.to_dim()
                        } else {
                            (d as usize).to_dim()
                        }
                    })
                    .collect();
                model
                    .set_input_fact(
                        index,
                        InferenceFact::dt_shape(to_datum(spec.datatype), dims),
                    )
                    .map_err(onnx_err)?;
            }
        }
        let typed = model.into_typed().map_err(onnx_err)?;
        let mut inputs = Vec::new();
        for (i, outlet) in typed.input_outlets().map_err(onnx_err)?.iter().enumerate() {
            let fact = typed.input_fact(i).map_err(onnx_err)?;
            inputs.push(spec_of(
                typed.node(outlet.node).name.clone(),
                fact,
                "input",
            )?);
        }
        let mut outputs = Vec::new();
        for (i, outlet) in typed.output_outlets().map_err(onnx_err)?.iter().enumerate() {
            let fact = typed.output_fact(i).map_err(onnx_err)?;
            let name = typed
                .outlet_label(*outlet)
                .map(str::to_string)
                .unwrap_or_else(|| typed.node(outlet.node).name.clone());
            let spec = spec_of(name, fact, "output")?;
            outputs.push(spec);
        }
        for declared in &manifest.outputs {
            let found = outputs
                .iter()
                .find(|o| o.name == declared.name)
                .ok_or_else(|| {
                    LoadError::Signature(format!(
                        "model.toml output {:?} is not an output of the ONNX file ({})",
                        declared.name,
                        outputs
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if found.datatype != declared.datatype {
                return Err(LoadError::Signature(format!(
                    "model.toml output {:?} is {}, the ONNX file gives {}",
                    declared.name, declared.datatype, found.datatype
                )));
            }
        }
        let weight_bytes = constant_bytes(&typed);
        let plan = typed
            .into_optimized()
            .map_err(onnx_err)?
            .into_runnable()
            .map_err(onnx_err)?;
        Ok(Self {
            plan,
            inputs,
            outputs,
            weight_bytes,
        })
    }

    /// Bytes of the model's weights: its constant tensors as loaded.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Whether every input's first dimension is the batch, so requests can
    /// be concatenated along it.
    pub fn batched(&self) -> bool {
        self.inputs.iter().all(|i| i.shape.first() == Some(&-1))
            && self.outputs.iter().all(|o| o.shape.first() == Some(&-1))
    }

    /// Runs one batch: `inputs` in signature order, each holding `rows`
    /// rows (or exactly the signature's shape when not batched). Outputs in
    /// signature order, with their shapes.
    pub fn run(
        &self,
        inputs: Vec<TensorData>,
        rows: usize,
    ) -> Result<Vec<(Vec<usize>, TensorData)>, RunError> {
        let mut values: TVec<TValue> = TVec::new();
        for (spec, data) in self.inputs.iter().zip(inputs) {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|&d| if d < 0 { rows } else { d as usize })
                .collect();
            let tensor = to_tensor(&shape, data).map_err(|e| RunError(tract_error(&e)))?;
            values.push(tensor.into_tvalue());
        }
        let outputs = self
            .plan
            .run(values)
            .map_err(|e| RunError(tract_error(&e)))?;
        outputs
            .iter()
            .map(|value| {
                let tensor: &Tensor = value;
                let data = from_tensor(tensor).map_err(|e| RunError(tract_error(&e)))?;
                Ok((tensor.shape().to_vec(), data))
            })
            .collect()
    }
}

/// The bytes of a model's plain constant tensors.
fn constant_bytes(model: &TypedModel) -> u64 {
    model
        .nodes()
        .iter()
        .filter_map(|node| node.op_as::<tract_onnx::tract_core::ops::konst::Const>())
        .map(|konst| konst.val())
        .filter(|tensor| tensor.is_plain())
        .map(|tensor| tensor.len() as u64 * tensor.datum_type().size_of() as u64)
        .sum()
}

fn to_tensor(shape: &[usize], data: TensorData) -> TractResult<Tensor> {
    Ok(match data {
        TensorData::Bool(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Int8(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Int16(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Int32(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Int64(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Uint8(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Uint16(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Uint32(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Uint64(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Fp16(v) => {
            let halves: Vec<f16> = v.into_iter().map(f16::from_f32).collect();
            Tensor::from_shape(shape, &halves)?
        }
        TensorData::Fp32(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Fp64(v) => Tensor::from_shape(shape, &v)?,
        TensorData::Bytes(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor(),
    })
}

fn values<T: Datum + Clone>(tensor: &Tensor) -> TractResult<Vec<T>> {
    Ok(tensor.to_plain_array_view::<T>()?.iter().cloned().collect())
}

fn from_tensor(tensor: &Tensor) -> TractResult<TensorData> {
    Ok(match tensor.datum_type() {
        DatumType::Bool => TensorData::Bool(values(tensor)?),
        DatumType::I8 => TensorData::Int8(values(tensor)?),
        DatumType::I16 => TensorData::Int16(values(tensor)?),
        DatumType::I32 => TensorData::Int32(values(tensor)?),
        DatumType::I64 => TensorData::Int64(values(tensor)?),
        DatumType::U8 => TensorData::Uint8(values(tensor)?),
        DatumType::U16 => TensorData::Uint16(values(tensor)?),
        DatumType::U32 => TensorData::Uint32(values(tensor)?),
        DatumType::U64 => TensorData::Uint64(values(tensor)?),
        DatumType::F16 => TensorData::Fp16(
            values::<f16>(tensor)?
                .into_iter()
                .map(f16::to_f32)
                .collect(),
        ),
        DatumType::F32 => TensorData::Fp32(values(tensor)?),
        DatumType::F64 => TensorData::Fp64(values(tensor)?),
        DatumType::String => TensorData::Bytes(values(tensor)?),
        other => {
            return Err(TractError::msg(format!(
                "output datatype {other:?} cannot be sent"
            )))
        }
    })
}
