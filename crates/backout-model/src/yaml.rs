//! The YAML layer: source text → a tree of [`Node`]s that remember where they were written.
//!
//! serde-saphyr does the YAML work (syntax, anchors, duplicate keys, resource budgets) and hands
//! every value over with its location. Typed decoding happens later, in `decode`, so that all
//! problems in a document can be reported at once instead of stopping at the first one.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::codes;
use crate::diagnostic::{Diagnostic, Span};

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A mapping key with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// The shape of a YAML value. Scalars keep the text as written so a plain `1.30` can still be
/// read as the string "1.30" where a string is expected.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// How the value is described in a "found …" message.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => {
                let short: String = s.chars().take(40).collect();
                if short.len() < s.len() {
                    format!("\"{short}…\"")
                } else {
                    format!("\"{s}\"")
                }
            }
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

impl Node {
    /// The entries of a mapping, or `None` when the node is not one.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Looks up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }
}

/// The deepest nesting a plan may have.
pub const MAX_DEPTH: usize = 24;

/// A parsed document and the duplicate keys found in it (reported, not fatal: the first
/// occurrence wins so the rest of the document can still be checked).
#[derive(Debug)]
pub struct Document {
    pub root: Node,
    pub duplicates: Vec<Diagnostic>,
}

/// Parses one YAML document. A syntax error is returned as a single diagnostic (YAML cannot be
/// parsed past it); an empty document is `Value::Null`.
pub fn parse(source: &str) -> Result<Document, Diagnostic> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        budget: serde_saphyr::budget! {
            // Plans nest about eight levels deep; the parser recurses per level, so a low limit
            // keeps hostile input from overflowing a small (2 MiB) thread stack.
            max_depth: MAX_DEPTH,
        },
    };
    match serde_saphyr::from_str_with_options::<Spanned<RawNode>>(source, options) {
        Ok(spanned) => {
            let mut duplicates = Vec::new();
            let root = RawNode::into_node(spanned, source, &mut duplicates);
            Ok(Document { root, duplicates })
        }
        Err(error) => Err(syntax_diagnostic(&error, source)),
    }
}

fn duplicate_key(key: &Key, first: &Key) -> Diagnostic {
    Diagnostic::error(codes::DUPLICATE_KEY, key.span, format!("duplicate key `{}`", key.name)).with_help(format!(
        "`{}` is already given at line {}; each key may appear once in a mapping (the first one is used)",
        key.name, first.span.line
    ))
}

fn syntax_diagnostic(error: &serde_saphyr::Error, source: &str) -> Diagnostic {
    let span = match error.location() {
        Some(loc) => span_of(&loc, source),
        None => Span::at(source, source.len(), 0),
    };
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let message = strip_location_prefix(first.trim_start_matches("error: "));
    if message.starts_with("duplicate mapping key") {
        let key = message.trim_start_matches("duplicate mapping key: ");
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        Diagnostic::error(codes::DUPLICATE_KEY, span, format!("duplicate key `{key}`"))
            .with_help("each key may appear once in a mapping; remove or merge the repeated one")
    } else if message.contains("Depth") {
        Diagnostic::error(
            codes::YAML_SYNTAX,
            span,
            format!("the document nests deeper than {MAX_DEPTH} levels"),
        )
        .with_help("a plan needs about eight levels; look for runaway indentation or brackets")
    } else if message.contains("budget") {
        Diagnostic::error(
            codes::YAML_SYNTAX,
            span,
            format!("the document is too large: {message}"),
        )
        .with_help(
            "a plan should be a few hundred lines; split generated content or remove repetition",
        )
    } else {
        Diagnostic::error(codes::YAML_SYNTAX, span, format!("invalid YAML: {message}"))
            .with_help("check indentation, quotes and brackets around this position")
    }
}

/// serde-saphyr prefixes messages with "line N column M: "; the span already says that.
fn strip_location_prefix(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].to_string();
    }
    message.to_string()
}

fn span_of(loc: &serde_saphyr::Location, source: &str) -> Span {
    // Line and column come from the parser: recomputing them from the offset would scan the
    // text from the start for every node, quadratic in the size of the plan.
    let line = usize::try_from(loc.line()).unwrap_or(1).max(1);
    let column = usize::try_from(loc.column()).unwrap_or(1).max(1);
    let span = loc.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(offset), Some(len)) => {
            let offset = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(source.len());
            let len = usize::try_from(len).unwrap_or(0).min(source.len() - offset);
            Span {
                offset,
                len,
                line,
                column,
            }
        }
        _ => {
            // No byte information: find the offset from the line and column.
            let line_start: usize = source
                .split_inclusive('\n')
                .take(line - 1)
                .map(str::len)
                .sum();
            let offset = source
                .get(line_start..)
                .and_then(|l| {
                    l.char_indices()
                        .nth(column - 1)
                        .map(|(i, _)| line_start + i)
                })
                .unwrap_or(line_start)
                .min(source.len());
            Span {
                offset,
                len: 0,
                line,
                column,
            }
        }
    }
}

/// The tree as serde-saphyr delivers it; converted to [`Node`] with the source at hand.
enum RawNode {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

impl RawNode {
    fn into_node(
        spanned: Spanned<RawNode>,
        source: &str,
        duplicates: &mut Vec<Diagnostic>,
    ) -> Node {
        let span = span_of(&spanned.referenced, source);
        let value = match spanned.value {
            RawNode::Null => Value::Null,
            RawNode::Bool(b) => Value::Bool(b),
            RawNode::Int(i) => Value::Int(i),
            RawNode::Float(f) => Value::Float(f),
            RawNode::Str(s) => Value::Str(s),
            RawNode::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .map(|n| RawNode::into_node(n, source, duplicates))
                    .collect(),
            ),
            RawNode::Map(entries) => {
                let mut out: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
                let mut seen: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                for (k, v) in entries {
                    let key = Key {
                        span: span_of(&k.referenced, source),
                        name: k.value,
                    };
                    let value = RawNode::into_node(v, source, duplicates);
                    match seen.get(&key.name) {
                        Some(first) => duplicates.push(duplicate_key(&key, &out[*first].0)),
                        None => {
                            seen.insert(key.name.clone(), out.len());
                            out.push((key, value));
                        }
                    }
                }
                Value::Map(out)
            }
        };
        Node { value, span }
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawNode;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_none<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
                Ok(RawNode::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
                Ok(RawNode::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
                Ok(i64::try_from(v).map_or(RawNode::Float(v as f64), RawNode::Int))
            }
            fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
                Ok(i64::try_from(v).map_or(RawNode::Float(v as f64), RawNode::Int))
            }
            fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
                Ok(i64::try_from(v).map_or(RawNode::Float(v as f64), RawNode::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
                Ok(RawNode::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
                Ok(RawNode::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
                Ok(RawNode::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<RawNode, E> {
                Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawNode::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawNode::Map(entries))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let node = parse("a: 1\nb:\n  - x\n").unwrap().root;
        let Value::Map(entries) = &node.value else {
            panic!("expected a map")
        };
        assert_eq!((entries[1].0.span.line, entries[1].0.span.column), (2, 1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("expected a list")
        };
        assert_eq!((items[0].span.line, items[0].span.column), (3, 5));
    }

    #[test]
    fn duplicate_keys_are_all_reported_with_their_locations() {
        let doc = parse("a: 1\na: 2\nb: {c: 1, c: 2}\n").unwrap();
        let found: Vec<_> = doc
            .duplicates
            .iter()
            .map(|d| (d.code, d.span.line, d.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (codes::DUPLICATE_KEY, 2, "duplicate key `a`"),
                (codes::DUPLICATE_KEY, 3, "duplicate key `c`")
            ]
        );
        assert_eq!(
            doc.root.get("a").map(|n| &n.value),
            Some(&Value::Int(1)),
            "the first occurrence wins"
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let d = parse("a: [1,\n").unwrap_err();
        assert_eq!(d.code, codes::YAML_SYNTAX);
        assert_eq!(d.span.line, 1);
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().root.value, Value::Null);
    }
}
