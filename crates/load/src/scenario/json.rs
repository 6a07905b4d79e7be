//! A `json:` body as the file wrote it, keys in the file's order.
//!
//! `serde_json::Value` sorts object keys (the workspace does not enable its
//! `preserve_order`), and a body whose keys come out in another order than
//! written is confusing to read in a server's logs; this keeps the order
//! and nothing else.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum JsonBody {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<JsonBody>),
    /// Entries in the file's order.
    Object(Vec<(String, JsonBody)>),
}

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonBodyVisitor)
    }
}

struct JsonBodyVisitor;

impl<'de> Visitor<'de> for JsonBodyVisitor {
    type Value = JsonBody;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<JsonBody, E> {
        Ok(JsonBody::Null)
    }

    fn visit_none<E>(self) -> Result<JsonBody, E> {
        Ok(JsonBody::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonBody, D::Error> {
        JsonBody::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<JsonBody, E> {
        Ok(JsonBody::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<JsonBody, E> {
        Ok(JsonBody::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<JsonBody, E> {
        Ok(JsonBody::Number(value.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<JsonBody, E> {
        serde_json::Number::from_f64(value)
            .map(JsonBody::Number)
            .ok_or_else(|| E::custom(format!("{value} is not a JSON number")))
    }

    fn visit_str<E>(self, value: &str) -> Result<JsonBody, E> {
        Ok(JsonBody::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<JsonBody, E> {
        Ok(JsonBody::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonBody, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonBody::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonBody, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, JsonBody>()? {
            entries.push((key, value));
        }
        Ok(JsonBody::Object(entries))
    }
}

impl JsonSchema for JsonBody {
    fn schema_name() -> Cow<'static, str> {
        "JsonBody".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "Any JSON value, written as YAML; strings may hold placeholders."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order() {
        let body: JsonBody =
            serde_json::from_str(r#"{"z": 1, "a": [true, null, "x", 1.5]}"#).unwrap();
        assert_eq!(
            body,
            JsonBody::Object(vec![
                ("z".into(), JsonBody::Number(1.into())),
                (
                    "a".into(),
                    JsonBody::Array(vec![
                        JsonBody::Bool(true),
                        JsonBody::Null,
                        JsonBody::String("x".into()),
                        JsonBody::Number(serde_json::Number::from_f64(1.5).unwrap()),
                    ])
                ),
            ])
        );
    }
}
