//! The serde access types that walk into a node's children: list items,
//! map entries and keys, the two fields of a `Located`, enum variants. Each
//! hands its child the child's line and path.

use super::error::{DeError, Path};
use super::scalar::{resolve, Scalar};
use super::{unexpected_node, value_line, NodeDeserializer};
use crate::located::{LOCATED_FIELDS, LOCATED_LINE, LOCATED_VALUE};
use crate::{Entry, Node};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

pub(super) struct SeqReader<'de, 'p> {
    pub(super) items: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    pub(super) path: Path<'p>,
}

impl<'de> de::SeqAccess<'de> for SeqReader<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        NodeDeserializer {
            node,
            line: node.line,
            path: Path::Index(&self.path, index),
        }
        .feed(seed)
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

pub(super) struct MapReader<'de, 'p> {
    pub(super) entries: std::slice::Iter<'de, Entry>,
    /// The entry whose key was just read.
    pub(super) pending: Option<&'de Entry>,
    pub(super) path: Path<'p>,
}

impl<'de> de::MapAccess<'de> for MapReader<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        let path = Path::Key(&self.path, &entry.key);
        seed.deserialize(KeyDeserializer {
            key: &entry.key,
            line: entry.line,
            path,
        })
        .map_err(|e| e.locate(entry.line, &path))
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.pending.take() else {
            return Err(de::Error::custom("a map value was read before its key"));
        };
        NodeDeserializer {
            node: &entry.value,
            line: value_line(entry),
            path: Path::Key(&self.path, &entry.key),
        }
        .feed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Hands [`crate::Located`] the node's line, then the node itself.
pub(super) struct LocatedReader<'de, 'p> {
    pub(super) node: NodeDeserializer<'de, 'p>,
    /// 0: the line's key, 1: the line, 2: the value's key, 3: the value.
    pub(super) next: u8,
}

impl<'de> de::MapAccess<'de> for LocatedReader<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let key = match self.next {
            0 => LOCATED_LINE,
            2 => LOCATED_VALUE,
            _ => return Ok(None),
        };
        self.next += 1;
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        self.next += 1;
        match self.next {
            2 => seed.deserialize(self.node.line.into_deserializer()),
            4 => self.node.feed(seed),
            _ => Err(de::Error::custom(format_args!(
                "Located is read as the fields {LOCATED_FIELDS:?}, in order"
            ))),
        }
    }
}

/// A map key: always a string in the tree, but a target may ask for a
/// number or bool (`HashMap<u16, _>`), a newtype or a unit variant.
struct KeyDeserializer<'de, 'p> {
    key: &'de str,
    line: usize,
    path: Path<'p>,
}

impl<'de> KeyDeserializer<'de, '_> {
    fn typed<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match resolve(self.key, false) {
            Scalar::Bool(b) => visitor.visit_bool(b),
            Scalar::Unsigned(n) => visitor.visit_u64(n),
            Scalar::Signed(n) => visitor.visit_i64(n),
            Scalar::BigUnsigned(n) => visitor.visit_u128(n),
            Scalar::BigSigned(n) => visitor.visit_i128(n),
            Scalar::Float(f) => visitor.visit_f64(f),
            Scalar::Null | Scalar::Str(_) => visitor.visit_borrowed_str(self.key),
        }
    }
}

macro_rules! typed_key {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            located!(self, self.typed(visitor))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(self, visitor.visit_borrowed_str(self.key))
    }

    typed_key! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        located!(self, visitor.visit_some(self))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        located!(self, visitor.visit_newtype_struct(self))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        located!(
            self,
            visitor.visit_enum(BorrowedStrDeserializer::new(self.key))
        )
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// An externally tagged enum: `variant` or `{variant: content}`.
pub(super) struct EnumReader<'de, 'p> {
    pub(super) variant: &'de str,
    pub(super) variant_line: usize,
    pub(super) variant_path: Path<'p>,
    /// The content node and the line it reports.
    pub(super) content: Option<(&'de Node, usize)>,
    /// The enum's own path; content sits under `parent.variant`.
    pub(super) parent: Path<'p>,
}

impl<'de, 'p> de::EnumAccess<'de> for EnumReader<'de, 'p> {
    type Error = DeError;
    type Variant = VariantReader<'de, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), DeError> {
        let variant = seed
            .deserialize(KeyDeserializer {
                key: self.variant,
                line: self.variant_line,
                path: self.variant_path,
            })
            .map_err(|e| e.locate(self.variant_line, &self.variant_path))?;
        Ok((
            variant,
            VariantReader {
                variant: self.variant,
                content: self.content,
                parent: self.parent,
            },
        ))
    }
}

pub(super) struct VariantReader<'de, 'p> {
    variant: &'de str,
    content: Option<(&'de Node, usize)>,
    parent: Path<'p>,
}

impl<'de> VariantReader<'de, '_> {
    /// The content, or an error saying the variant needs one.
    fn content(&self, expected: &str) -> Result<(&'de Node, usize), DeError> {
        self.content
            .ok_or_else(|| de::Error::invalid_type(Unexpected::UnitVariant, &expected))
    }
}

impl<'de> de::VariantAccess<'de> for VariantReader<'de, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some((node, _)) if node.is_null() => Ok(()),
            Some((node, line)) => Err(<DeError as de::Error>::invalid_type(
                unexpected_node(node),
                &"unit variant",
            )
            .locate(line, &Path::Key(&self.parent, self.variant))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let (node, line) = self.content("newtype variant")?;
        NodeDeserializer {
            node,
            line,
            path: Path::Key(&self.parent, self.variant),
        }
        .feed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        let (node, line) = self.content("tuple variant")?;
        de::Deserializer::deserialize_tuple(
            NodeDeserializer {
                node,
                line,
                path: Path::Key(&self.parent, self.variant),
            },
            len,
            visitor,
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, line) = self.content("struct variant")?;
        de::Deserializer::deserialize_struct(
            NodeDeserializer {
                node,
                line,
                path: Path::Key(&self.parent, self.variant),
            },
            "",
            fields,
            visitor,
        )
    }
}
