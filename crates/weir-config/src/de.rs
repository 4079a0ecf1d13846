//! serde over the spanned YAML tree. Config structs stay plain `#[derive(Deserialize)]` types with doc comments and
//! defaults, while this deserializer adds what serde alone cannot: unknown keys are *collected* with a "did you mean"
//! (instead of stopping at the first), and every error carries the line of the node it is about.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::diag::{suggest, Diagnostic};
use crate::yaml::{Node, Value};

/// Deserializes `node` into `T`. `ignore` lists top-level keys the caller consumes itself (such as `type`).
/// All unknown keys and the first type error are returned together.
pub fn from_node<T: DeserializeOwned>(node: &Node, ignore: &[&str]) -> Result<T, Vec<Diagnostic>> {
    let diags = RefCell::new(Vec::new());
    let result = T::deserialize(NodeDe { node, diags: &diags, ignore });
    let mut diags = diags.into_inner();
    match result {
        Ok(v) if diags.is_empty() => Ok(v),
        Ok(_) => Err(diags),
        Err(e) => {
            let (line, column) = e.pos.unwrap_or((node.line, node.column));
            diags.push(Diagnostic::new(line, column, e.message));
            Err(diags)
        }
    }
}

#[derive(Debug)]
pub struct DeError {
    message: String,
    pos: Option<(usize, usize)>,
}

impl DeError {
    fn at(mut self, node: &Node) -> Self {
        if self.pos.is_none() {
            self.pos = Some((node.line, node.column));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { message: msg.to_string(), pos: None }
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    diags: &'a RefCell<Vec<Diagnostic>>,
    ignore: &'a [&'a str],
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node) -> NodeDe<'a> {
        NodeDe { node, diags: self.diags, ignore: &[] }
    }

    fn scalar(&self, expected: &str) -> Result<&'a str, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => Err(self.err(format!("expected {expected}, found {}", self.node.kind_name()))),
        }
    }

    fn err(&self, message: String) -> DeError {
        DeError { message, pos: Some((self.node.line, self.node.column)) }
    }

    fn parse<T: std::str::FromStr>(&self, expected: &str) -> Result<T, DeError> {
        let text = self.scalar(expected)?;
        text.replace('_', "").parse().map_err(|_| self.err(format!("expected {expected}, found `{text}`")))
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident, $ty:ty, $what:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v: $ty = self.parse($what)?;
            visitor.$visit::<DeError>(v).map_err(|e| e.at(self.node))
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let result = match &node.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar { text, quoted: true } => visitor.visit_str(text),
            Value::Scalar { text, quoted: false } => {
                if text == "true" || text == "false" {
                    visitor.visit_bool(text == "true")
                } else if let Ok(i) = text.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(f) = text.parse::<f64>() {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(text)
                }
            }
            Value::Seq(items) => visitor.visit_seq(SeqAccess { de: self, iter: items.iter() }),
            Value::Map(entries) => {
                visitor.visit_map(MapAccess { de: self, entries: entries.iter().collect(), next_value: None })
            }
        };
        result.map_err(|e| e.at(node))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar("true or false")? {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            other => Err(self.err(format!("expected true or false, found `{other}`"))),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i64, i64, "an integer";
        deserialize_i16 => visit_i64, i64, "an integer";
        deserialize_i32 => visit_i64, i64, "an integer";
        deserialize_i64 => visit_i64, i64, "an integer";
        deserialize_u8 => visit_u64, u64, "a positive integer";
        deserialize_u16 => visit_u64, u64, "a positive integer";
        deserialize_u32 => visit_u64, u64, "a positive integer";
        deserialize_u64 => visit_u64, u64, "a positive integer";
        deserialize_f32 => visit_f64, f64, "a number";
        deserialize_f64 => visit_f64, f64, "a number";
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.scalar("a single character")?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(self.err(format!("expected a single character, found `{text}`"))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.scalar("a string")?;
        visitor.visit_str::<DeError>(text).map_err(|e| e.at(self.node))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => {
                visitor.visit_seq(SeqAccess { de: self, iter: items.iter() }).map_err(|e| e.at(self.node))
            }
            _ => Err(self.err(format!("expected a list, found {}", self.node.kind_name()))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let entries =
                    entries.iter().filter(|(k, _)| !self.ignore.contains(&k.as_str().unwrap_or(""))).collect();
                visitor.visit_map(MapAccess { de: self, entries, next_value: None }).map_err(|e| e.at(self.node))
            }
            Value::Null => visitor.visit_map(MapAccess { de: self, entries: Vec::new(), next_value: None }),
            _ => Err(self.err(format!("expected a mapping (key: value), found {}", self.node.kind_name()))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries = match &self.node.value {
            Value::Map(entries) => entries,
            Value::Null => &Vec::new(),
            _ => {
                return Err(self.err(format!(
                    "expected a mapping for {}, found {}",
                    describe(name),
                    self.node.kind_name()
                )))
            }
        };
        let mut kept = Vec::with_capacity(entries.len());
        let mut seen: Vec<&str> = Vec::new();
        for entry in entries {
            let key = entry.0.as_str().unwrap_or("");
            if self.ignore.contains(&key) {
                continue;
            }
            if !fields.contains(&key) {
                self.diags.borrow_mut().push(
                    Diagnostic::at(&entry.0, format!("unknown key `{key}` in {}", describe(name)))
                        .with_hint(Some(suggest(key, fields))),
                );
                continue;
            }
            if seen.contains(&key) {
                self.diags.borrow_mut().push(Diagnostic::at(&entry.0, format!("key `{key}` is given twice")));
                continue;
            }
            seen.push(key);
            kept.push(entry);
        }
        visitor.visit_map(MapAccess { de: self, entries: kept, next_value: None }).map_err(|e| e.at(self.node))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (tag_node, content) = match &self.node.value {
            Value::Scalar { .. } => (self.node, None),
            Value::Map(entries) if entries.len() == 1 => (&entries[0].0, Some(&entries[0].1)),
            _ => {
                return Err(self.err(format!(
                    "expected one of {} for {}",
                    variants.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
                    describe(name)
                )))
            }
        };
        let tag = tag_node.as_str().unwrap_or("");
        if !variants.contains(&tag) {
            return Err(DeError {
                message: format!("unknown value `{tag}` for {}: {}", describe(name), suggest(tag, variants)),
                pos: Some((tag_node.line, tag_node.column)),
            });
        }
        visitor.visit_enum(EnumAccess { de: self, tag, content }).map_err(|e| e.at(self.node))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// "CsvSource" -> "csv source", for messages.
fn describe(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

struct SeqAccess<'a, I> {
    de: NodeDe<'a>,
    iter: I,
}

impl<'de, 'a, I: Iterator<Item = &'a Node>> de::SeqAccess<'de> for SeqAccess<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(node) => seed.deserialize(self.de.child(node)).map(Some).map_err(|e| e.at(node)),
            None => Ok(None),
        }
    }
}

struct MapAccess<'a> {
    de: NodeDe<'a>,
    entries: Vec<&'a (Node, Node)>,
    next_value: Option<&'a Node>,
}

impl<'de, 'a> de::MapAccess<'de> for MapAccess<'a> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let (key, value) = self.entries.remove(0);
        self.next_value = Some(value);
        seed.deserialize(self.de.child(key)).map(Some).map_err(|e| e.at(key))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self.next_value.take().ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(self.de.child(node)).map_err(|e| e.at(node))
    }
}

struct EnumAccess<'a> {
    de: NodeDe<'a>,
    tag: &'a str,
    content: Option<&'a Node>,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let tag: de::value::StringDeserializer<DeError> = self.tag.to_string().into_deserializer();
        let v = seed.deserialize(tag)?;
        Ok((v, self))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for EnumAccess<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None | Some(Node { value: Value::Null, .. }) => Ok(()),
            Some(n) => {
                Err(DeError { message: format!("`{}` takes no value", self.tag), pos: Some((n.line, n.column)) })
            }
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        match self.content {
            Some(n) => seed.deserialize(self.de.child(n)),
            None => Err(self.de.err(format!("`{}` needs a value", self.tag))),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.content {
            Some(n) => de::Deserializer::deserialize_seq(self.de.child(n), visitor),
            None => Err(self.de.err(format!("`{}` needs a list", self.tag))),
        }
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        match self.content {
            Some(n) => de::Deserializer::deserialize_struct(self.de.child(n), "settings", fields, visitor),
            None => Err(self.de.err(format!("`{}` needs a mapping", self.tag))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Csv {
        path: String,
        #[serde(default)]
        has_header: Option<bool>,
        delimiter: Option<char>,
        rows: Option<u64>,
    }

    #[test]
    fn reads_typed_values() {
        let node = parse("path: a.csv\nhas_header: false\ndelimiter: ';'\nrows: 1_000\n").unwrap();
        let csv: Csv = from_node(&node, &[]).unwrap();
        assert_eq!(csv, Csv { path: "a.csv".into(), has_header: Some(false), delimiter: Some(';'), rows: Some(1000) });
    }

    #[test]
    fn collects_every_unknown_key_with_hints() {
        let node = parse("pth: a.csv\nhas_headr: true\ntype: csv\n").unwrap();
        let diags = from_node::<Csv>(&node, &["type"]).unwrap_err();
        let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert!(
            text.iter().any(|t| t.contains("1:1: unknown key `pth`") && t.contains("did you mean `path`?")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("2:1: unknown key `has_headr`") && t.contains("`has_header`")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("missing field `path`")), "{text:?}");
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let node = parse("path: a.csv\nrows: lots\n").unwrap();
        let diags = from_node::<Csv>(&node, &[]).unwrap_err();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, 2);
        assert!(diags[0].message.contains("expected a positive integer, found `lots`"), "{:?}", diags[0]);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Compression {
        Snappy,
        Zstd,
    }

    #[test]
    fn enums_suggest_their_variants() {
        let node = parse("zstdd").unwrap();
        let diags = from_node::<Compression>(&node, &[]).unwrap_err();
        assert!(diags[0].message.contains("did you mean `zstd`?"), "{:?}", diags[0]);
        assert_eq!(from_node::<Compression>(&parse("snappy").unwrap(), &[]).unwrap(), Compression::Snappy);
    }
}
