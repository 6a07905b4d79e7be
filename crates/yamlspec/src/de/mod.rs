//! Serde over the line-numbered tree, so spec types are plain
//! `#[derive(Deserialize)]` structs and every error still names the line
//! and the field a person has to edit: `line 7: scenarios.tight.rate:
//! invalid type: string "fast", expected f64`.
//!
//! The deserializer walks [`Node`]s carrying the path that led to each one
//! (a chain of borrowed keys and indices, rendered only when something
//! fails). An error gets the line and path of the innermost node that
//! produced it; outer nodes leave a located error alone.
//!
//! Typing follows the YAML 1.2 core schema for unquoted scalars (see
//! `scalar`); a quoted scalar is a string. A string target accepts any
//! scalar's text, so `30` reads as `"30"` where a string is expected and a
//! duration like `5s` reaches `humantime_serde` intact.
//!
//! Limits: types that serde buffers (`#[serde(untagged)]`, internally
//! tagged enums, `flatten`) see the core-schema types, not the text, so a
//! `String` field inside them needs a quoted `"30"`; and [`Located`] inside
//! them records no line (serde's buffer does not know it), which fails.
//!
//! [`Located`]: crate::Located

/// Runs `$body` (which consumes `$self`) and locates its error at `$self`.
macro_rules! located {
    ($self:ident, $body:expr) => {{
        let line = $self.line;
        let path = $self.path;
        ($body).map_err(|e: DeError| e.locate(line, &path))
    }};
}

mod access;
mod error;
mod scalar;
#[cfg(test)]
mod tests;

pub use error::SpecError;

use crate::located::LOCATED_STRUCT;
use crate::{parse_documents, Entry, Node, Value};
use access::{EnumReader, LocatedReader, MapReader, SeqReader};
use error::{DeError, Path};
use scalar::{resolve, unexpected, Scalar};
use serde::de::{self, DeserializeSeed, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

/// Reads `text`, which must hold exactly one YAML document, into `T`.
pub fn from_str<T: de::DeserializeOwned>(text: &str) -> Result<T, SpecError> {
    let mut documents = parse_documents(text)?;
    match documents.len() {
        1 => from_node(&documents.remove(0)),
        0 => Err(SpecError {
            line: 1,
            path: String::new(),
            message: "the file holds no YAML document".into(),
        }),
        n => Err(SpecError {
            line: documents[1].line,
            path: String::new(),
            message: format!("expected one YAML document, found {n} (separated by `---`)"),
        }),
    }
}

/// Reads an already parsed node into `T`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, SpecError> {
    let root = NodeDeserializer {
        node,
        line: node.line,
        path: Path::Root,
    };
    T::deserialize(root).map_err(|e| {
        let (line, path) = e.location.unwrap_or((node.line, String::new()));
        SpecError {
            line,
            path,
            message: e.message,
        }
    })
}

/// The line errors about an entry's value point at: the key's for a map or
/// list (`tight:` rather than its first field) and for an empty value,
/// else the value's own.
fn value_line(entry: &Entry) -> usize {
    match &entry.value.value {
        Value::Scalar { text, quoted } if *quoted || !text.is_empty() => entry.value.line,
        _ => entry.line,
    }
}

fn unexpected_node(node: &Node) -> Unexpected<'_> {
    match &node.value {
        Value::Scalar { text, quoted } => unexpected(resolve(text, *quoted)),
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

#[derive(Clone, Copy)]
struct NodeDeserializer<'de, 'p> {
    node: &'de Node,
    /// The line errors and [`crate::Located`] report (see [`value_line`]).
    line: usize,
    path: Path<'p>,
}

impl<'de, 'p> NodeDeserializer<'de, 'p> {
    /// Deserializes `seed` from this node. Errors a `Deserialize` impl
    /// makes after reading (a `deserialize_with` that parses a string, an
    /// untagged enum that matched nothing) are located here.
    fn feed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DeError> {
        located!(self, seed.deserialize(self))
    }

    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar { text, quoted } => match resolve(text, *quoted) {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(b) => visitor.visit_bool(b),
                Scalar::Unsigned(n) => visitor.visit_u64(n),
                Scalar::Signed(n) => visitor.visit_i64(n),
                Scalar::BigUnsigned(n) => visitor.visit_u128(n),
                Scalar::BigSigned(n) => visitor.visit_i128(n),
                Scalar::Float(f) => visitor.visit_f64(f),
                Scalar::Str(s) => visitor.visit_borrowed_str(s),
            },
            Value::Seq(items) => self.seq(items, visitor),
            Value::Map(entries) => self.map(entries, visitor),
        }
    }

    fn seq<V: Visitor<'de>>(&self, items: &'de [Node], visitor: V) -> Result<V::Value, DeError> {
        let mut reader = SeqReader {
            items: items.iter().enumerate(),
            path: self.path,
        };
        let value = visitor.visit_seq(&mut reader)?;
        let rest = reader.items.len();
        if rest > 0 {
            return Err(de::Error::invalid_length(
                items.len(),
                &format!("{} items", items.len() - rest).as_str(),
            ));
        }
        Ok(value)
    }

    fn map<V: Visitor<'de>>(&self, entries: &'de [Entry], visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(MapReader {
            entries: entries.iter(),
            pending: None,
            path: self.path,
        })
    }

    fn text(&self) -> Option<&'de str> {
        match &self.node.value {
            Value::Scalar { text, .. } if !self.node.is_null() => Some(text),
            _ => None,
        }
    }

    fn enumeration<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } => visitor.visit_enum(EnumReader {
                variant: text,
                variant_line: self.line,
                variant_path: self.path,
                content: None,
                parent: self.path,
            }),
            Value::Map(entries) => match entries.as_slice() {
                [entry] => visitor.visit_enum(EnumReader {
                    variant: &entry.key,
                    variant_line: entry.line,
                    variant_path: Path::Key(&self.path, &entry.key),
                    content: Some((&entry.value, value_line(entry))),
                    parent: self.path,
                }),
                _ => Err(de::Error::custom(format_args!(
                    "expected a variant name, or a map with one key (the variant), found a map with {} keys",
                    entries.len()
                ))),
            },
            Value::Seq(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(self, self.any(visitor))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(
            self,
            match self.text() {
                Some(text) => visitor.visit_borrowed_str(text),
                None => Err(de::Error::invalid_type(
                    unexpected_node(self.node),
                    &visitor
                )),
            }
        )
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(
            self,
            match &self.node.value {
                Value::Seq(items) => self.seq(items, visitor),
                _ => match self.text() {
                    Some(text) => visitor.visit_borrowed_bytes(text.as_bytes()),
                    None => Err(de::Error::invalid_type(
                        unexpected_node(self.node),
                        &visitor
                    )),
                },
            }
        )
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            located!(self, visitor.visit_none())
        } else {
            located!(self, visitor.visit_some(self))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(
            self,
            if self.node.is_null() {
                visitor.visit_unit()
            } else {
                Err(de::Error::invalid_type(
                    unexpected_node(self.node),
                    &visitor,
                ))
            }
        )
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        located!(self, visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(
            self,
            match &self.node.value {
                Value::Seq(items) => self.seq(items, visitor),
                _ => Err(de::Error::invalid_type(
                    unexpected_node(self.node),
                    &visitor
                )),
            }
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(
            self,
            match &self.node.value {
                Value::Map(entries) => self.map(entries, visitor),
                _ => Err(de::Error::invalid_type(
                    unexpected_node(self.node),
                    &visitor
                )),
            }
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == LOCATED_STRUCT {
            return located!(
                self,
                visitor.visit_map(LocatedReader {
                    node: self,
                    next: 0,
                })
            );
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        located!(self, self.enumeration(visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64
    }
}
