//! The checks of each field the gateway reads, in the order `parse` runs
//! them; the first thing wrong is the error. `null` counts as absent for
//! every optional field, as OpenAI's schema has them nullable.

use super::error::RequestError;
use super::PromptSize;
use serde_json::{Map, Value};

/// The longest model name accepted (bytes).
pub const MAX_MODEL_BYTES: usize = 256;
/// The most messages in one chat request.
pub const MAX_MESSAGES: usize = 4096;
/// The most prompts (completions) or inputs (embeddings) in one batch.
pub const MAX_PROMPTS: usize = 2048;
/// The largest token limit and token id accepted.
pub const MAX_TOKENS_LIMIT: u64 = u32::MAX as u64;
/// The most choices per prompt (`n`).
pub const MAX_N: u64 = 128;

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

pub(super) fn model(body: &Map<String, Value>) -> Result<String, RequestError> {
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(RequestError::MissingModel),
        Some(Value::String(s)) if s.is_empty() => return Err(RequestError::MissingModel),
        Some(Value::String(s)) => s,
        Some(other) => return Err(RequestError::invalid_type("model", "a string", other)),
    };
    if model.len() > MAX_MODEL_BYTES {
        return Err(RequestError::TooLong {
            param: "model".into(),
            max: MAX_MODEL_BYTES,
            got: model.len(),
        });
    }
    if model.chars().any(char::is_control) {
        return Err(RequestError::invalid_value(
            "model",
            "a model name must not contain control characters",
        ));
    }
    Ok(model.clone())
}

pub(super) fn optional_bool(
    object: &Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<bool>, RequestError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::invalid_type(param, "a boolean", other)),
    }
}

/// `stream_options.include_usage` (false when absent).
pub(super) fn include_usage(body: &Map<String, Value>) -> Result<bool, RequestError> {
    match body.get("stream_options") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(options)) => {
            Ok(
                optional_bool(options, "include_usage", "stream_options.include_usage")?
                    .unwrap_or(false),
            )
        }
        Some(other) => Err(RequestError::invalid_type(
            "stream_options",
            "an object",
            other,
        )),
    }
}

/// An optional integer in `min..=max`.
pub(super) fn optional_integer(
    body: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, RequestError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => integer(value, key, min, max).map(Some),
    }
}

/// A JSON integer in `min..=max`; a decimal number (even `5.0`) is not one.
fn integer(value: &Value, param: &str, min: u64, max: u64) -> Result<u64, RequestError> {
    let Value::Number(number) = value else {
        return Err(RequestError::invalid_type(param, "an integer", value));
    };
    let below = || RequestError::BelowMinimum {
        param: param.into(),
        min,
        got: number.to_string(),
    };
    let above = || RequestError::AboveMaximum {
        param: param.into(),
        max,
        got: number.to_string(),
    };
    if let Some(u) = number.as_u64() {
        if u < min {
            return Err(below());
        }
        if u > max {
            return Err(above());
        }
        return Ok(u);
    }
    if number.as_i64().is_some() {
        return Err(below());
    }
    // A float: an integer past u64 written without a point parses as one.
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f > u64::MAX as f64 => Err(above()),
        Some(f) if f.fract() == 0.0 && f < i64::MIN as f64 => Err(below()),
        _ => Err(RequestError::invalid_type(param, "an integer", value)),
    }
}

/// The completion limit of a chat request: `max_completion_tokens` (the
/// current name) or `max_tokens` (the deprecated one). When both are given
/// they must agree: vLLM honours the first, llama.cpp's server and TGI only
/// know the second, so two different limits have no single meaning and
/// the gateway could not account for the one the backend applies.
pub(super) fn chat_max_tokens(body: &Map<String, Value>) -> Result<Option<u64>, RequestError> {
    let current = optional_integer(body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)?;
    let legacy = optional_integer(body, "max_tokens", 1, MAX_TOKENS_LIMIT)?;
    match (current, legacy) {
        (Some(a), Some(b)) if a != b => Err(RequestError::invalid_value(
            "max_tokens",
            format!("max_tokens ({b}) and max_completion_tokens ({a}) disagree; give one of them"),
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// `messages`: their count and the size of their text.
pub(super) fn messages(
    body: &Map<String, Value>,
    size: &mut PromptSize,
) -> Result<(), RequestError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(RequestError::Missing {
                param: "messages".into(),
            })
        }
        Some(Value::Array(messages)) => messages,
        Some(other) => return Err(RequestError::invalid_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(RequestError::EmptyArray {
            param: "messages".into(),
        });
    }
    if messages.len() > MAX_MESSAGES {
        return Err(RequestError::TooManyItems {
            param: "messages".into(),
            max: MAX_MESSAGES,
            got: messages.len(),
        });
    }
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(message) = message else {
            return Err(RequestError::invalid_type(param, "an object", message));
        };
        let role = match message.get("role") {
            None | Some(Value::Null) => {
                return Err(RequestError::Missing {
                    param: format!("{param}.role"),
                })
            }
            Some(Value::String(role)) => role.as_str(),
            Some(other) => {
                return Err(RequestError::invalid_type(
                    format!("{param}.role"),
                    "a string",
                    other,
                ))
            }
        };
        if !ROLES.contains(&role) {
            return Err(RequestError::invalid_value(
                format!("{param}.role"),
                format!("'{}' is not one of {}", shown(role), ROLES.join(", ")),
            ));
        }
        content(message, role, &param, size)?;
        if let Some(Value::String(name)) = message.get("name") {
            size.text_bytes += name.len() as u64;
        }
        // Tool calls are written into the prompt by the chat template.
        for key in ["tool_calls", "function_call"] {
            if let Some(calls) = message.get(key).filter(|v| !v.is_null()) {
                size.text_bytes += json_len(calls);
            }
        }
        size.messages += 1;
    }
    // So are the tools on offer.
    for key in ["tools", "functions"] {
        if let Some(tools) = body.get(key).filter(|v| !v.is_null()) {
            size.text_bytes += json_len(tools);
        }
    }
    size.prompts = 1;
    Ok(())
}

/// A message's `content`: absent or null (an assistant's message that
/// carries tool calls), a string, or an array of typed parts.
fn content(
    message: &Map<String, Value>,
    role: &str,
    param: &str,
    size: &mut PromptSize,
) -> Result<(), RequestError> {
    let parts = match message.get("content") {
        None | Some(Value::Null) if role == "assistant" => return Ok(()),
        None | Some(Value::Null) => {
            return Err(RequestError::Missing {
                param: format!("{param}.content"),
            })
        }
        Some(Value::String(text)) => {
            size.text_bytes += text.len() as u64;
            return Ok(());
        }
        Some(Value::Array(parts)) => parts,
        Some(other) => {
            return Err(RequestError::invalid_type(
                format!("{param}.content"),
                "a string or an array of content parts",
                other,
            ))
        }
    };
    for (j, part) in parts.iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        let Value::Object(part) = part else {
            return Err(RequestError::invalid_type(param, "an object", part));
        };
        let kind = match part.get("type") {
            None | Some(Value::Null) => {
                return Err(RequestError::Missing {
                    param: format!("{param}.type"),
                })
            }
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => {
                return Err(RequestError::invalid_type(
                    format!("{param}.type"),
                    "a string",
                    other,
                ))
            }
        };
        // Text and refusal parts carry their text under their type's name.
        if kind == "text" || kind == "refusal" {
            match part.get(kind) {
                Some(Value::String(text)) => size.text_bytes += text.len() as u64,
                None | Some(Value::Null) => {
                    return Err(RequestError::Missing {
                        param: format!("{param}.{kind}"),
                    })
                }
                Some(other) => {
                    return Err(RequestError::invalid_type(
                        format!("{param}.{kind}"),
                        "a string",
                        other,
                    ))
                }
            }
        } else {
            // Images, audio, files: their size in bytes says nothing of
            // their tokens (a base64 URL), so each counts a flat amount.
            size.media_parts += 1;
        }
    }
    Ok(())
}

/// A completions `prompt` or an embeddings `input`: a string, an array of
/// strings, an array of token ids or an array of arrays of token ids.
pub(super) fn prompt(
    body: &Map<String, Value>,
    key: &str,
    size: &mut PromptSize,
) -> Result<(), RequestError> {
    const SHAPES: &str =
        "a string, an array of strings, an array of integers or an array of arrays of integers";
    let items = match body.get(key) {
        None | Some(Value::Null) => return Err(RequestError::Missing { param: key.into() }),
        Some(Value::String(text)) => {
            size.text_bytes += text.len() as u64;
            size.prompts = 1;
            return Ok(());
        }
        Some(Value::Array(items)) => items,
        Some(other) => return Err(RequestError::invalid_type(key, SHAPES, other)),
    };
    let Some(first) = items.first() else {
        return Err(RequestError::EmptyArray { param: key.into() });
    };
    if let Value::Number(_) = first {
        // One prompt, as token ids.
        for (i, id) in items.iter().enumerate() {
            integer(id, &format!("{key}[{i}]"), 0, MAX_TOKENS_LIMIT)?;
        }
        size.token_ids += items.len() as u64;
        size.prompts = 1;
        return Ok(());
    }
    if items.len() > MAX_PROMPTS {
        return Err(RequestError::TooManyItems {
            param: key.into(),
            max: MAX_PROMPTS,
            got: items.len(),
        });
    }
    match first {
        Value::String(_) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => size.text_bytes += text.len() as u64,
                    other => {
                        return Err(RequestError::invalid_type(
                            format!("{key}[{i}]"),
                            "a string",
                            other,
                        ))
                    }
                }
            }
        }
        Value::Array(_) => {
            for (i, item) in items.iter().enumerate() {
                let Value::Array(ids) = item else {
                    return Err(RequestError::invalid_type(
                        format!("{key}[{i}]"),
                        "an array of integers",
                        item,
                    ));
                };
                for (j, id) in ids.iter().enumerate() {
                    integer(id, &format!("{key}[{i}][{j}]"), 0, MAX_TOKENS_LIMIT)?;
                }
                size.token_ids += ids.len() as u64;
            }
        }
        other => {
            return Err(RequestError::invalid_type(
                format!("{key}[0]"),
                SHAPES,
                other,
            ))
        }
    }
    size.prompts = items.len() as u64;
    Ok(())
}

/// A client's string as an error message quotes it: at most 64 chars.
fn shown(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

/// The length of a value written as compact JSON, without writing it.
fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
