//! Bounded YAML reading into a small tree that remembers line numbers.
//! Every spec file people write (SLOs, load scenarios, ...) is read here.
//!
//! Specs come from people and from other tools, so the reader refuses what
//! could exhaust memory before any of it is interpreted: files over
//! [`MAX_SPEC_BYTES`], nesting deeper than [`MAX_DEPTH`], and documents
//! that expand to more than [`MAX_NODES`] nodes (the "billion laughs"
//! anchor bomb expands aliases exponentially; every alias is charged the
//! full size of what it copies, so the bomb stops at the budget instead of
//! at the allocator). Every node keeps its line, so errors about a field
//! point at the line a person has to edit.
//!
//! Modules:
//! - this file: the reader and its tree ([`parse_documents`], [`Node`]);
//! - `de`: serde over that tree ([`from_str`], [`from_node`]), so spec
//!   types are plain `Deserialize` structs whose errors ([`SpecError`])
//!   name the line and the field path;
//! - `duration`: [`DurationText`], durations as every spec writes them;
//! - `located`: [`Located<T>`], a deserialized value that keeps its line,
//!   for checks made after deserializing.
#![forbid(unsafe_code)]

mod de;
mod duration;
mod located;
mod schema_file;

pub use de::{from_node, from_str, SpecError};
pub use duration::{parse_duration, DurationText};
pub use located::Located;
pub use schema_file::check_schema_file;

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Largest spec file read (1 MiB): an SLO spec is a few KiB.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// Largest number of nodes a file may expand to, aliases included.
pub const MAX_NODES: usize = 100_000;
/// Deepest nesting of maps and sequences.
pub const MAX_DEPTH: usize = 64;

/// A YAML node and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar; `quoted` tells `"30"` (a string) from `30`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Node,
}

impl Node {
    /// `~`, `null` or nothing at all.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }
}

/// What went wrong while reading YAML, and on which line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl YamlError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Parses every document of `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(YamlError::new(
            0,
            format!(
                "file is {} bytes, more than the {} bytes a spec may have",
                text.len(),
                MAX_SPEC_BYTES
            ),
        ));
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| YamlError::new(e.marker().line(), e.info().to_string()))?;
        let line = mark.line();
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let start = builder.count;
                builder.charge(1, line)?;
                let node = Node {
                    line,
                    value: Value::Scalar { text, quoted },
                };
                builder.complete(node, anchor, start)?;
            }
            Event::Alias(id) => {
                let Some((node, size)) = builder.anchors.get(&id).cloned() else {
                    return Err(YamlError::new(line, "alias of an unknown anchor"));
                };
                builder.charge(size, line)?;
                let start = builder.count;
                builder.complete(Node { line, ..node }, 0, start)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if builder.stack.len() >= MAX_DEPTH {
                    return Err(YamlError::new(
                        line,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let start = builder.count;
                builder.charge(1, line)?;
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(Vec::new())
                } else {
                    Open::Map(Vec::new(), None)
                };
                builder.stack.push(Frame {
                    line,
                    anchor,
                    start,
                    kind,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = builder.stack.pop() else {
                    return Err(YamlError::new(line, "unbalanced collection end"));
                };
                let value = match frame.kind {
                    Open::Seq(items) => Value::Seq(items),
                    Open::Map(entries, _) => Value::Map(entries),
                };
                let node = Node {
                    line: frame.line,
                    value,
                };
                builder.complete(node, frame.anchor, frame.start)?;
            }
        }
    }
    Ok(builder.documents)
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    documents: Vec<Node>,
    /// Anchored nodes and their expanded size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    count: usize,
}

struct Frame {
    line: usize,
    anchor: usize,
    start: usize,
    kind: Open,
}

enum Open {
    Seq(Vec<Node>),
    /// Entries so far and the key waiting for its value.
    Map(Vec<Entry>, Option<(String, usize)>),
}

impl Builder {
    fn charge(&mut self, nodes: usize, line: usize) -> Result<(), YamlError> {
        self.count = self.count.saturating_add(nodes);
        if self.count > MAX_NODES {
            return Err(YamlError::new(
                line,
                format!("document expands to more than {MAX_NODES} nodes (an alias bomb?)"),
            ));
        }
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize, start: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            let size = self.count - start;
            self.anchors.insert(anchor, (node.clone(), size.max(1)));
        }
        let Some(top) = self.stack.last_mut() else {
            self.documents.push(node);
            return Ok(());
        };
        match &mut top.kind {
            Open::Seq(items) => items.push(node),
            Open::Map(entries, pending) => match pending.take() {
                None => match node.value {
                    Value::Scalar { text, .. } => {
                        if entries.iter().any(|e| e.key == text) {
                            return Err(YamlError::new(
                                node.line,
                                format!("duplicate key `{text}`"),
                            ));
                        }
                        *pending = Some((text, node.line));
                    }
                    _ => return Err(YamlError::new(node.line, "a key must be a plain string")),
                },
                Some((key, line)) => entries.push(Entry {
                    key,
                    line,
                    value: node,
                }),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn keeps_lines_of_keys_and_values() {
        let node = one("a: 1\nb:\n  c: \"x\"\n  d: [1, 2]\n");
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        assert_eq!(entries[0].key, "a");
        assert_eq!(entries[0].line, 1);
        assert_eq!(entries[1].line, 2);
        let Value::Map(inner) = &entries[1].value.value else {
            panic!("map")
        };
        assert_eq!(inner[0].line, 3);
        assert_eq!(
            inner[0].value.value,
            Value::Scalar {
                text: "x".into(),
                quoted: true
            }
        );
        assert_eq!(inner[1].line, 4);
    }

    #[test]
    fn reads_several_documents() {
        let docs = parse_documents("a: 1\n---\nb: 2\n").expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 3);
    }

    #[test]
    fn expands_small_aliases() {
        let node = one("base: &b {x: 1}\ncopy: *b\n");
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        assert_eq!(entries[0].value.value, entries[1].value.value);
        assert_eq!(entries[1].value.line, 2);
    }

    #[test]
    fn refuses_an_anchor_bomb() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_documents(&text).expect_err("bomb");
        assert!(err.message.contains("alias bomb"), "{err}");
        assert!(err.line >= 4, "line {}", err.line);
    }

    #[test]
    fn refuses_huge_input_before_parsing() {
        let text = "a: b\n".repeat(MAX_SPEC_BYTES / 4);
        let err = parse_documents(&text).expect_err("too big");
        assert!(err.message.contains("bytes"), "{err}");
    }

    #[test]
    fn refuses_deep_nesting() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = parse_documents(&text).expect_err("deep");
        assert!(err.message.contains("nesting"), "{err}");
    }

    #[test]
    fn refuses_duplicate_keys() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").expect_err("dup");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").expect_err("syntax");
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn null_forms() {
        let node = one("a: ~\nb:\nc: null\nd: \"null\"\n");
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        let nulls: Vec<bool> = entries.iter().map(|e| e.value.is_null()).collect();
        assert_eq!(nulls, vec![true, true, true, false]);
    }
}
