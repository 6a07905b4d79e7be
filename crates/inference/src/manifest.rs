//! `model.toml`: what the repository says about one model version beside
//! its ONNX file.
//!
//! It carries what the ONNX file cannot: the serving signature when the
//! file's is vague (unnamed or symbolic dimensions are fixed from here; `-1`
//! marks the batch dimension), batching limits, class labels, and the
//! training run as MLflow records it (params, metrics, dataset), which the
//! model-info endpoint serves.

use oip::{Datatype, TensorMetadata};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One version's `model.toml`. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Manifest {
    /// What the model is, for people.
    pub description: String,
    /// Most rows one batch (and one request) may hold; the module's
    /// `default_max_batch_size` when absent.
    pub max_batch_size: Option<usize>,
    /// Longest time the first request of a batch waits for others;
    /// the module's `default_max_batch_delay` when absent.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = Option<String>)]
    pub max_batch_delay: Option<Duration>,
    /// Class labels by class index, for the class output.
    pub labels: Vec<String>,
    /// The serving signature's inputs (overrides the ONNX file's).
    pub inputs: Vec<TensorSpec>,
    /// The serving signature's outputs (overrides the ONNX file's).
    pub outputs: Vec<TensorSpec>,
    /// The training run, as MLflow records it.
    pub training: Option<Training>,
}

/// A tensor of the signature; `-1` in `shape` is the batch dimension
/// (first only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

impl From<&TensorSpec> for TensorMetadata {
    fn from(spec: &TensorSpec) -> Self {
        TensorMetadata {
            name: spec.name.clone(),
            datatype: spec.datatype,
            shape: spec.shape.clone(),
        }
    }
}

/// An MLflow run: params as strings, metrics as numbers, the dataset input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    pub run_id: String,
    pub started_at: String,
    pub params: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub dataset: Option<Dataset>,
}

/// The data a run trained on, as MLflow's dataset input records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source: String,
    pub split: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("model.toml: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("model.toml: {0}")]
    Invalid(String),
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.max_batch_size == Some(0) {
            return Err(ManifestError::Invalid(
                "max_batch_size must be above zero".into(),
            ));
        }
        for (kind, specs) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let mut seen = std::collections::HashSet::new();
            for spec in specs {
                if spec.name.is_empty() || !seen.insert(spec.name.as_str()) {
                    return Err(ManifestError::Invalid(format!(
                        "{kind}: names must be non-empty and unique ({:?})",
                        spec.name
                    )));
                }
                for (i, &dim) in spec.shape.iter().enumerate() {
                    if dim < -1 || dim == 0 || (dim == -1 && i != 0) {
                        return Err(ManifestError::Invalid(format!(
                            "{kind}.{}: shape {:?}: dimensions are positive, -1 only first (the batch)",
                            spec.name, spec.shape
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_parses() {
        let m = Manifest::parse(
            r#"
description = "MLP"
max_batch_size = 64
max_batch_delay = "2ms"
labels = ["0", "1"]
[[inputs]]
name = "pixels"
datatype = "FP32"
shape = [-1, 64]
[[outputs]]
name = "label"
datatype = "INT64"
shape = [-1]
[training]
run_id = "abc"
started_at = "2026-11-30T00:00:00Z"
[training.params]
hidden = "32"
[training.metrics]
accuracy = 0.97
[training.dataset]
name = "digits"
digest = "00"
source = "sklearn"
split = "train"
"#,
        )
        .unwrap();
        assert_eq!(m.max_batch_delay, Some(Duration::from_millis(2)));
        assert_eq!(m.inputs[0].datatype, Datatype::Fp32);
        assert_eq!(m.training.unwrap().metrics["accuracy"], 0.97);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(Manifest::parse("max_batch_size = 0").is_err());
        assert!(Manifest::parse("unknown = 1").is_err());
        assert!(Manifest::parse("[[inputs]]\nname='x'\ndatatype='FP32'\nshape=[64, -1]").is_err());
        assert!(Manifest::parse("[[inputs]]\nname='x'\ndatatype='FP99'\nshape=[1]").is_err());
        assert_eq!(Manifest::parse("").unwrap(), Manifest::default());
    }
}
