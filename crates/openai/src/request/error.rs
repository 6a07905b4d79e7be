//! Why a request body was refused, in OpenAI's terms: the parameter at
//! fault (`messages[3].role`) and a stable code, so that a client's SDK
//! reports it as OpenAI's own API would.

use serde_json::Value;

/// A refused request body. Every variant names the parameter at fault
/// (except a body that is not a JSON object at all) and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("We could not parse the JSON body of your request: {reason}")]
    InvalidJson { reason: String },
    #[error("The body of your request must be a JSON object, but got {found} instead.")]
    NotAnObject { found: &'static str },
    #[error("You must provide a model parameter.")]
    MissingModel,
    #[error("Missing required parameter: '{param}'.")]
    Missing { param: String },
    #[error("Invalid type for '{param}': expected {expected}, but got {found} instead.")]
    InvalidType {
        param: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("Invalid '{param}': {reason}.")]
    InvalidValue { param: String, reason: String },
    #[error("Invalid '{param}': integer below minimum value. Expected a value >= {min}, but got {got} instead.")]
    BelowMinimum {
        param: String,
        min: u64,
        got: String,
    },
    #[error("Invalid '{param}': integer above maximum value. Expected a value <= {max}, but got {got} instead.")]
    AboveMaximum {
        param: String,
        max: u64,
        got: String,
    },
    #[error("Invalid '{param}': empty array. Expected an array with minimum length 1.")]
    EmptyArray { param: String },
    #[error("Invalid '{param}': array too long. Expected an array with maximum length {max}, but got an array with length {got} instead.")]
    TooManyItems {
        param: String,
        max: usize,
        got: usize,
    },
    #[error("Invalid '{param}': string too long. Expected a string with maximum length {max}, but got a string with length {got} instead.")]
    TooLong {
        param: String,
        max: usize,
        got: usize,
    },
}

impl RequestError {
    /// The parameter at fault, as OpenAI names it (`messages[3].role`,
    /// `stream_options.include_usage`); `None` when the body as a whole is.
    pub fn param(&self) -> Option<String> {
        match self {
            RequestError::InvalidJson { .. } | RequestError::NotAnObject { .. } => None,
            RequestError::MissingModel => Some("model".to_string()),
            RequestError::Missing { param }
            | RequestError::InvalidType { param, .. }
            | RequestError::InvalidValue { param, .. }
            | RequestError::BelowMinimum { param, .. }
            | RequestError::AboveMaximum { param, .. }
            | RequestError::EmptyArray { param }
            | RequestError::TooManyItems { param, .. }
            | RequestError::TooLong { param, .. } => Some(param.clone()),
        }
    }

    /// A stable code for the error's `code` member (OpenAI's where it has
    /// one): `invalid_json`, `invalid_type`, `missing_model`,
    /// `missing_required_parameter`, `invalid_value`,
    /// `integer_below_min_value`, `integer_above_max_value`, `empty_array`,
    /// `array_above_max_length`, `string_above_max_length`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::InvalidJson { .. } => "invalid_json",
            RequestError::NotAnObject { .. } | RequestError::InvalidType { .. } => "invalid_type",
            RequestError::MissingModel => "missing_model",
            RequestError::Missing { .. } => "missing_required_parameter",
            RequestError::InvalidValue { .. } => "invalid_value",
            RequestError::BelowMinimum { .. } => "integer_below_min_value",
            RequestError::AboveMaximum { .. } => "integer_above_max_value",
            RequestError::EmptyArray { .. } => "empty_array",
            RequestError::TooManyItems { .. } => "array_above_max_length",
            RequestError::TooLong { .. } => "string_above_max_length",
        }
    }

    pub(crate) fn invalid_type(
        param: impl Into<String>,
        expected: &'static str,
        found: &Value,
    ) -> Self {
        RequestError::InvalidType {
            param: param.into(),
            expected,
            found: kind(found),
        }
    }

    pub(crate) fn invalid_value(param: impl Into<String>, reason: impl Into<String>) -> Self {
        RequestError::InvalidValue {
            param: param.into(),
            reason: reason.into(),
        }
    }
}

/// What a JSON value is, for messages ("expected a string, but got an
/// array instead").
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
