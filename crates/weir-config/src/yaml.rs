//! A YAML tree that remembers where every node came from, so that every configuration problem can name its line.
//!
//! serde_yaml-style parsers stop at the first problem and forget positions once parsed; `weir validate` must report
//! all problems at once with a line each, so we build our own small tree from yaml-rust2's marked events.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::Diagnostic;

/// A YAML value with the 1-based line and column where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar as written. `quoted` scalars are always strings; plain ones may read as numbers or booleans.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys keep their own position so an unknown key can be pointed at.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A mapping node holding `entries`, at this node's position (used to expand shorthand forms).
    pub fn synthetic_map(&self, entries: Vec<(&str, Node)>) -> Node {
        let entries = entries
            .into_iter()
            .map(|(k, v)| {
                let key = Node {
                    value: Value::Scalar { text: k.to_string(), quoted: false },
                    line: self.line,
                    column: self.column,
                };
                (key, v)
            })
            .collect();
        Node { value: Value::Map(entries), line: self.line, column: self.column }
    }
}

/// Parses one YAML document. An empty document is a `Null` node.
pub fn parse(text: &str) -> Result<Node, Diagnostic> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| {
        let m = e.marker();
        Diagnostic::new(m.line(), m.col() + 1, format!("this is not valid YAML: {}", e.info()))
    })?;
    if let Some(d) = builder.error {
        return Err(d);
    }
    Ok(builder.root.unwrap_or(Node { value: Value::Null, line: 1, column: 1 }))
}

enum Frame {
    Seq(Node),
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    /// Anchor of each open collection, to register it when it closes.
    open_anchors: Vec<usize>,
    error: Option<Diagnostic>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(seq)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, pending_key)) => match pending_key.take() {
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) && self.error.is_none() {
                        self.error = Some(Diagnostic::new(
                            node.line,
                            node.column,
                            "mapping keys must be plain names, not lists or mappings",
                        ));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        // A repeated key would silently shadow (or be shadowed by) the first one.
                        let name = key.as_str().map(str::to_string);
                        if let Some((first, _)) =
                            entries.iter().find(|(k, _)| name.is_some() && k.as_str() == name.as_deref())
                        {
                            if self.error.is_none() {
                                self.error = Some(Diagnostic::new(
                                    key.line,
                                    key.column,
                                    format!(
                                        "`{}` appears twice in this mapping (first on line {}); keep one",
                                        name.unwrap_or_default(),
                                        first.line
                                    ),
                                ));
                            }
                        }
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (line, column) = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let value = if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar { text, quoted }
                };
                self.push_value(Node { value, line, column }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Seq(Node { value: Value::Seq(Vec::new()), line, column }));
            }
            Event::MappingStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Map(Node { value: Value::Map(Vec::new()), line, column }, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let anchor = self.open_anchors.pop().unwrap_or(0);
                if let Some(Frame::Seq(node) | Frame::Map(node, _)) = self.stack.pop() {
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => Node { line, column, ..n.clone() },
                    None => Node { value: Value::Null, line, column },
                };
                self.push_value(node, 0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_an_error_naming_both_lines() {
        let err =
            parse("version: 1\nconnections: {}\nlake: {root: x}\nconnections:\n  a: {type: postgres}\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(
            err.message.contains("`connections` appears twice") && err.message.contains("line 2"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nodes_know_their_lines() {
        let doc = parse("version: 1\ntasks:\n  - name: a\n    path: 'x.csv'\n").unwrap();
        let tasks = doc.get("tasks").unwrap().as_seq().unwrap();
        let path = tasks[0].get("path").unwrap();
        assert_eq!(path.as_str(), Some("x.csv"));
        assert_eq!(path.line, 4);
        assert_eq!(doc.get("version").unwrap().line, 1);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.message.contains("not valid YAML"));
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let doc = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(doc.get("other").unwrap().get("x").unwrap().as_str(), Some("1"));
    }
}
