//! The JSON bodies of the protocol's endpoints.

use crate::tensor::{RawData, TensorData};
use crate::Datatype;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// Free-form `parameters` of a request, an input or an output.
pub type Parameters = serde_json::Map<String, serde_json::Value>;

/// `GET /v2`: who serves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    /// Protocol extensions served (`model_repository`...).
    pub extensions: Vec<String>,
}

/// A tensor's name, datatype and shape (`-1`: any size, the batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}[/versions/{v}]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// The versions loaded (as strings, as the protocol has them).
    pub versions: Vec<String>,
    /// `onnx_onnxv1`, the format and runtime family.
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    /// Extensions: `sha256`, `loaded_at`, `max_batch_size`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
}

/// `POST .../infer`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InferRequest {
    /// Echoed in the response; the key for feedback on this prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
    pub inputs: Vec<RequestInput>,
    /// The outputs to return (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor of a request, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    /// Parsed after the body so that an unknown one is reported with the
    /// input's name.
    #[schema(value_type = Datatype)]
    pub datatype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
    /// The values, flat (row-major) or nested as the shape.
    #[schema(schema_with = data_schema)]
    pub data: RawData,
}

/// An output asked for by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
}

/// The answer of `POST .../infer`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
    pub outputs: Vec<ResponseOutput>,
}

/// One output tensor of a response: data flat, row-major.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseOutput {
    pub name: String,
    pub shape: Vec<u64>,
    pub datatype: Datatype,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Parameters>,
    #[schema(schema_with = data_schema)]
    pub data: TensorData,
}

/// `POST /v2/repository/index` (body optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RepositoryIndexRequest {
    /// Only models that are ready (true) or all (false, absent).
    #[serde(default)]
    pub ready: Option<bool>,
}

/// One model version of the repository index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryModel {
    pub name: String,
    pub version: String,
    /// `READY`, `UNAVAILABLE` (on disk, not loaded) or `FAILED`.
    pub state: String,
    /// Why it is not ready (the load error), empty when ready.
    pub reason: String,
}

/// The protocol's error body; Reliable sends it inside problem+json.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `data`: numbers, booleans or strings, flat or nested.
fn data_schema() -> impl Into<RefOr<Schema>> {
    let scalar = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ArrayBuilder::new());
    ArrayBuilder::new()
        .items(scalar)
        .description(Some("Values, flat (row-major) or nested as the shape."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kserve_request_parses() {
        let body = r#"{"id":"42","inputs":[{"name":"pixels","shape":[1,2],"datatype":"FP32","data":[[0,16]]}],"outputs":[{"name":"label"}]}"#;
        let request: InferRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.id.as_deref(), Some("42"));
        assert_eq!(request.inputs[0].data.elements.len(), 2);
        assert_eq!(request.outputs.unwrap()[0].name, "label");
    }

    #[test]
    fn responses_carry_flat_typed_data() {
        let response = InferResponse {
            model_name: "digits".into(),
            model_version: "2".into(),
            id: None,
            parameters: None,
            outputs: vec![ResponseOutput {
                name: "label".into(),
                shape: vec![1],
                datatype: Datatype::Int64,
                parameters: None,
                data: TensorData::Int64(vec![7]),
            }],
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"model_name":"digits","model_version":"2","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[7]}]}"#
        );
    }
}
