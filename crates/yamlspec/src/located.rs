//! A value and the line it was written on, for checks that run after
//! deserializing (a duplicate name, a pool nobody fills) and still have to
//! point a person at a line.
//!
//! Serde has no notion of position, so `Located<T>` asks the deserializer
//! for a struct with a private name; [`crate::from_str`]'s deserializer
//! recognizes it and answers with the node's line, then the node (toml's
//! `Spanned` does the same). Other deserializers refuse it.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

pub(crate) const LOCATED_STRUCT: &str = "$__yamlspec_private_Located";
pub(crate) const LOCATED_LINE: &str = "$__yamlspec_private_line";
pub(crate) const LOCATED_VALUE: &str = "$__yamlspec_private_value";
pub(crate) const LOCATED_FIELDS: &[&str] = &[LOCATED_LINE, LOCATED_VALUE];

/// `T` and the 1-based line it starts on (for a map or list under a key,
/// the key's line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Located<T> {
    pub line: usize,
    pub value: T,
}

impl<T> Located<T> {
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Located<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(LOCATED_STRUCT, LOCATED_FIELDS, LocatedVisitor(PhantomData))
    }
}

struct LocatedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value read by yamlspec (only it knows lines)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located<T>, A::Error> {
        let not_yamlspec = || de::Error::custom("Located<T> can only be read by yamlspec");
        if map.next_key::<String>()?.as_deref() != Some(LOCATED_LINE) {
            return Err(not_yamlspec());
        }
        let line: usize = map.next_value()?;
        if map.next_key::<String>()?.as_deref() != Some(LOCATED_VALUE) {
            return Err(not_yamlspec());
        }
        let value: T = map.next_value()?;
        Ok(Located { line, value })
    }
}

/// Writes `T` alone: the line is where it was read from, not data.
impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// `T`'s schema: in the file, a `Located<T>` is written as a `T`.
impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
