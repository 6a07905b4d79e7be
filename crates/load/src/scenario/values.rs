//! The file's small value types: durations, rates, status ranges, vars,
//! and a map that keeps the file's order.
//!
//! Each parses while the YAML is read, so a bad value is reported by the
//! reader with its line and field path, like any other type mismatch; and
//! each has a hand-written schema, so an editor flags it before a run.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

pub use yamlspec::DurationText;

/// A rate as written: requests per second, or a DAU profile (`dau.peak`,
/// `25 * dau.viral`), resolved when the file is compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum RateText {
    PerSecond(f64),
    Expression(String),
}

impl<'de> Deserialize<'de> for RateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = RateText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a rate per second, or `dau.baseline`, `dau.peak`, `dau.viral`, `K * dau.X`",
                )
            }
            fn visit_f64<E>(self, v: f64) -> Result<RateText, E> {
                Ok(RateText::PerSecond(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RateText, E> {
                Ok(RateText::PerSecond(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RateText, E> {
                Ok(RateText::PerSecond(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<RateText, E> {
                Ok(match v.trim().parse::<f64>() {
                    Ok(number) => RateText::PerSecond(number),
                    Err(_) => RateText::Expression(v.trim().to_string()),
                })
            }
        }
        deserializer.deserialize_any(RateVisitor)
    }
}

impl JsonSchema for RateText {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "Requests per second (`21`, `0.5`), or a DAU profile: `dau.baseline`, `dau.peak`, `dau.viral`, `25 * dau.viral`.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*\\*\\s*)?dau\\.(baseline|peak|viral)(\\s*\\*\\s*[0-9]+(\\.[0-9]+)?)?\\s*$"}
            ]
        })
    }
}

/// An HTTP status (`201`) or an inclusive range (`"200-399"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange(pub u16, pub u16);

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code like 201 or a range like \"200-399\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusRange, E> {
                let code = status(&v.to_string()).map_err(E::custom)?;
                Ok(StatusRange(code, code))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusRange, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusRange, E> {
                parse_status_range(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(StatusVisitor)
    }
}

/// `201` or `200-399`, codes between 100 and 599.
pub fn parse_status_range(text: &str) -> Result<StatusRange, String> {
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (status(lo.trim())?, status(hi.trim())?);
            if lo > hi {
                return Err(format!("status range `{text}` runs backwards"));
            }
            Ok(StatusRange(lo, hi))
        }
        None => {
            let code = status(text.trim())?;
            Ok(StatusRange(code, code))
        }
    }
}

fn status(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!(
            "`{text}` is not an HTTP status between 100 and 599"
        )),
    }
}

impl JsonSchema for StatusRange {
    fn schema_name() -> Cow<'static, str> {
        "Status".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A status code (`201`) or an inclusive range (`\"200-399\"`).",
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^\\s*[1-5][0-9][0-9]\\s*(-\\s*[1-5][0-9][0-9]\\s*)?$"}
            ]
        })
    }
}

/// A `vars:` value: text, or a number or boolean used as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarText(pub String);

impl<'de> Deserialize<'de> for VarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VarVisitor;
        impl Visitor<'_> for VarVisitor {
            type Value = VarText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text, a number or a boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<VarText, E> {
                Ok(VarText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<VarText, E> {
                Ok(VarText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<VarText, E> {
                Ok(VarText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<VarText, E> {
                Ok(VarText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<VarText, E> {
                Ok(VarText(v.to_string()))
            }
        }
        deserializer.deserialize_any(VarVisitor)
    }
}

impl JsonSchema for VarText {
    fn schema_name() -> Cow<'static, str> {
        "Var".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A constant, substituted as text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// A YAML mapping whose entries keep the file's order (scenarios run in
/// that order; headers are sent in it).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("`{key}` appears twice")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": generator.subschema_for::<V>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_codes_or_ranges() {
        assert_eq!(parse_status_range("201"), Ok(StatusRange(201, 201)));
        assert_eq!(parse_status_range("200-399"), Ok(StatusRange(200, 399)));
        assert!(parse_status_range("399-200")
            .unwrap_err()
            .contains("backwards"));
        assert!(parse_status_range("700")
            .unwrap_err()
            .contains("between 100 and 599"));
        let parsed: Vec<StatusRange> = serde_json::from_str(r#"[201, "300-302"]"#).unwrap();
        assert_eq!(parsed, vec![StatusRange(201, 201), StatusRange(300, 302)]);
    }

    #[test]
    fn rates_are_numbers_or_expressions() {
        let parsed: Vec<RateText> =
            serde_json::from_str(r#"[21, 0.5, "7", "25 * dau.viral"]"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                RateText::PerSecond(21.0),
                RateText::PerSecond(0.5),
                RateText::PerSecond(7.0),
                RateText::Expression("25 * dau.viral".into())
            ]
        );
    }

    #[test]
    fn an_ordered_map_keeps_order_and_refuses_duplicates() {
        let map: OrderedMap<u32> = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        assert_eq!(map.0, vec![("b".into(), 1), ("a".into(), 2)]);
        let error = serde_json::from_str::<OrderedMap<u32>>(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");
    }
}
