//! Reading typed fields out of a YAML map, strictly.
//!
//! A [`Fields`] hands out each key once and, at [`Fields::finish`], turns any
//! key nobody asked for into an "unknown field" error with its line: a typo
//! such as `objetive: 99.9` must not silently fall back to a default.

use crate::error::SpecError;
use crate::yaml::{Entry, Node, Value};
use std::collections::BTreeMap;

/// Where errors go: the file name and the path of the map being read.
#[derive(Debug, Clone)]
pub struct At<'a> {
    pub file: &'a str,
    pub path: String,
}

impl<'a> At<'a> {
    pub fn root(file: &'a str) -> Self {
        Self {
            file,
            path: String::new(),
        }
    }

    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn child(&self, key: &str) -> At<'a> {
        At {
            file: self.file,
            path: self.field(key),
        }
    }

    pub fn index(&self, i: usize) -> At<'a> {
        At {
            file: self.file,
            path: format!("{}[{i}]", self.path),
        }
    }

    pub fn error(&self, line: usize, field: String, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.to_string(),
            line,
            field,
            message: message.into(),
        }
    }

    /// An error about the node at this path itself.
    pub fn here(&self, line: usize, message: impl Into<String>) -> SpecError {
        self.error(line, self.path.clone(), message)
    }
}

/// The keys of one YAML map, each taken at most once.
pub struct Fields<'a, 'n> {
    pub at: At<'a>,
    pub line: usize,
    entries: &'n [Entry],
    used: Vec<bool>,
}

impl<'a, 'n> Fields<'a, 'n> {
    pub fn new(at: At<'a>, node: &'n Node) -> Result<Self, SpecError> {
        match &node.value {
            Value::Map(entries) => Ok(Self {
                at,
                line: node.line,
                used: vec![false; entries.len()],
                entries,
            }),
            _ => Err(at.here(node.line, "expected a map")),
        }
    }

    /// The value of `key`, if present and not null.
    pub fn take(&mut self, key: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        let node = &self.entries[i].value;
        (!node.is_null()).then_some(node)
    }

    /// The line of `key` itself (a block map's value starts a line later).
    pub fn key_line(&self, key: &str) -> usize {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map_or(self.line, |e| e.line)
    }

    pub fn required(&mut self, key: &str) -> Result<&'n Node, SpecError> {
        let line = self.line;
        self.take(key)
            .ok_or_else(|| self.at.error(line, self.at.field(key), "is required"))
    }

    pub fn string(&mut self, key: &str) -> Result<Option<(String, usize)>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(node) => scalar(&self.at.child(key), node).map(|s| Some((s, node.line))),
        }
    }

    pub fn required_string(&mut self, key: &str) -> Result<(String, usize), SpecError> {
        let node = self.required(key)?;
        let text = scalar(&self.at.child(key), node)?;
        if text.trim().is_empty() {
            return Err(self
                .at
                .error(node.line, self.at.field(key), "must not be empty"));
        }
        Ok((text, node.line))
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, SpecError> {
        let Some(node) = self.take(key) else {
            return Ok(None);
        };
        match scalar(&self.at.child(key), node)?.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(self.at.error(
                node.line,
                self.at.field(key),
                format!("expected true or false, found `{other}`"),
            )),
        }
    }

    /// A map of plain strings (labels, annotations).
    pub fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>, SpecError> {
        let mut map = BTreeMap::new();
        let Some(node) = self.take(key) else {
            return Ok(map);
        };
        let at = self.at.child(key);
        let Value::Map(entries) = &node.value else {
            return Err(at.here(node.line, "expected a map of strings"));
        };
        for e in entries {
            map.insert(e.key.clone(), scalar(&at.child(&e.key), &e.value)?);
        }
        Ok(map)
    }

    /// Fails on the first key nobody took.
    pub fn finish(&self) -> Result<(), SpecError> {
        match self
            .entries
            .iter()
            .zip(&self.used)
            .find(|(_, used)| !**used)
        {
            None => Ok(()),
            Some((e, _)) => Err(self
                .at
                .error(e.line, self.at.field(&e.key), "unknown field")),
        }
    }
}

/// A scalar's text; maps and sequences are an error.
pub fn scalar(at: &At<'_>, node: &Node) -> Result<String, SpecError> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(at.here(node.line, "expected a single value")),
    }
}

/// The items of a sequence.
pub fn seq<'n>(at: &At<'_>, node: &'n Node) -> Result<&'n [Node], SpecError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ => Err(at.here(node.line, "expected a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[test]
    fn unknown_field_names_its_line() {
        let docs = parse_documents("name: a\nobjetive: 99\n").expect("yaml");
        let mut f = Fields::new(At::root("x.yaml"), &docs[0]).expect("map");
        assert_eq!(f.required_string("name").expect("name").0, "a");
        let err = f.finish().expect_err("unknown");
        assert_eq!(err.to_string(), "x.yaml:2: field `objetive`: unknown field");
    }

    #[test]
    fn required_and_empty() {
        let docs = parse_documents("a: \"\"\n").expect("yaml");
        let mut f = Fields::new(At::root("x.yaml").child("slos"), &docs[0]).expect("map");
        let err = f.required_string("a").expect_err("empty");
        assert_eq!(err.field, "slos.a");
        let err = f.required("b").expect_err("missing");
        assert!(err.message.contains("required"));
    }
}
