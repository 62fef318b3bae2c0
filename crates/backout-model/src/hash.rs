//! The plan's content hash: SHA-256 over a canonical form of the parsed YAML.
//!
//! Comments, formatting, quoting style and the order of keys in a mapping do not change it; any
//! change of a value, and the order of list items (steps run in order of needs, but lists are
//! content), does. Evidence of rehearsals and running releases are bound to this hash.

use sha2::{Digest, Sha256};

use crate::yaml::{Node, Value};

/// Hex SHA-256 of the canonical form of the document.
pub fn content_hash(root: &Node) -> String {
    let mut canonical = String::new();
    write_canonical(root, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Canonical JSON: keys sorted, no whitespace, numbers in their shortest form.
fn write_canonical(node: &Node, out: &mut String) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(
            &serde_json::Number::from_f64(*f).map_or_else(|| format!("\"{f}\""), |n| n.to_string()),
        ),
        Value::Str(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<_> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.name.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn hash(src: &str) -> String {
        content_hash(&parse(src).unwrap().root)
    }

    #[test]
    fn formatting_comments_and_key_order_do_not_matter() {
        let a = hash("a: 1\nb: [x, y]\nc: {d: 'e'}\n");
        let b = hash("# comment\nc:\n  d: \"e\"\nb:\n  - x\n  - y\na: 1   # trailing\n");
        assert_eq!(a, b);
    }

    #[test]
    fn values_and_list_order_matter() {
        let a = hash("a: 1\nb: [x, y]\n");
        assert_ne!(a, hash("a: 2\nb: [x, y]\n"));
        assert_ne!(a, hash("a: 1\nb: [y, x]\n"));
        assert_ne!(hash("a: '1'"), hash("a: 1"));
    }
}
