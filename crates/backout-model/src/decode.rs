//! Typed decoding of the YAML tree into the plan's spec types, collecting every problem.
//!
//! serde stops at the first error; a plan author wants to see all of them. So each spec type
//! implements [`Decode`], which reads a [`Node`], records diagnostics in the [`Decoder`] and carries
//! on. Structs are declared once with [`spec!`](crate::spec), which generates the type (with its
//! JSON Schema) and its decoder from the same field list, so the schema and the parser cannot drift.

use std::fmt;

use schemars::JsonSchema;

use crate::codes;
use crate::diagnostic::{Diagnostic, Span, did_you_mean};
use crate::yaml::{Key, Node, Value};

/// Collects diagnostics while decoding one document.
pub struct Decoder<'a> {
    source: &'a str,
    pub diagnostics: Vec<Diagnostic>,
    /// Set when a value had to be dropped; reference checks would then report false problems.
    pub incomplete: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(source: &'a str) -> Decoder<'a> {
        Decoder {
            source,
            diagnostics: Vec::new(),
            incomplete: false,
        }
    }

    /// The node's text exactly as written (for scalars).
    pub fn text_of(&self, node: &Node) -> &'a str {
        self.source
            .get(node.span.offset..node.span.offset + node.span.len)
            .unwrap_or("")
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records "expected X, found Y" at the node.
    pub fn wrong_type(&mut self, node: &Node, expected: &str) {
        self.push(Diagnostic::error(
            codes::WRONG_TYPE,
            node.span,
            format!("expected {expected}, found {}", node.value.describe()),
        ));
    }

    /// Records an invalid value of the right type (a malformed duration, say).
    pub fn invalid(&mut self, node: &Node, message: String, help: &str) {
        self.push(Diagnostic::error(codes::INVALID_VALUE, node.span, message).with_help(help));
    }

    /// Decodes the field `key` of a mapping; absent fields take [`Decode::absent`] and are
    /// otherwise reported as missing.
    pub fn field<T: Decode>(&mut self, parent: &Node, what: &str, key: &str) -> Option<T> {
        match parent.get(key) {
            Some(node) => T::decode(node, self),
            None => T::absent().or_else(|| {
                self.push(
                    Diagnostic::error(
                        codes::MISSING_FIELD,
                        parent.span,
                        format!("missing field `{key}` in {what}"),
                    )
                    .with_help(format!("add `{key}:` here ({})", T::expected())),
                );
                None
            }),
        }
    }

    /// Reports keys of a mapping that are not among `fields`.
    pub fn unknown_fields(&mut self, entries: &[(Key, Node)], what: &str, fields: &[&str]) {
        for (key, _) in entries {
            if !fields.contains(&key.name.as_str()) {
                let known = fields.join(", ");
                let help = match did_you_mean(&key.name, fields.iter().copied()) {
                    Some(hint) => format!("{hint} ({what} fields: {known})"),
                    None => format!("{what} fields are: {known}"),
                };
                self.push(
                    Diagnostic::error(
                        codes::UNKNOWN_FIELD,
                        key.span,
                        format!("unknown field `{}` in {what}", key.name),
                    )
                    .with_help(help),
                );
            }
        }
    }
}

/// A type that can be read from a YAML node, reporting problems to the decoder.
pub trait Decode: Sized {
    /// The expected shape, as in "expected a duration like 5m or 1h30m".
    fn expected() -> String;

    /// Reads the node. `None` means the value was unusable and a diagnostic was recorded.
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self>;

    /// The value of an absent key; `None` makes the key required.
    fn absent() -> Option<Self> {
        None
    }

    /// True for values that declare no names (durations, numbers, strings): dropping a broken
    /// one cannot make a reference elsewhere look unknown.
    const LEAF: bool = false;
}

/// A value with the place it was written, for semantic checks that point at it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Display> fmt::Display for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Decode> Decode for Spanned<T> {
    fn expected() -> String {
        T::expected()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        T::decode(node, decoder).map(|value| Spanned {
            value,
            span: node.span,
        })
    }
    const LEAF: bool = T::LEAF;
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl Decode for String {
    const LEAF: bool = true;
    fn expected() -> String {
        "a string".into()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            // A plain `1.30` or `true` is kept exactly as written: versions are strings.
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                Some(decoder.text_of(node).to_string())
            }
            _ => {
                decoder.wrong_type(node, "a string");
                None
            }
        }
    }
}

impl Decode for bool {
    const LEAF: bool = true;
    fn expected() -> String {
        "true or false".into()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                decoder.wrong_type(node, "true or false");
                None
            }
        }
    }
}

macro_rules! decode_unsigned {
    ($($ty:ty),*) => {$(
        impl Decode for $ty {
            const LEAF: bool = true;
            fn expected() -> String {
                "a whole number (0 or more)".into()
            }
            fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
                match node.value {
                    Value::Int(i) => match <$ty>::try_from(i) {
                        Ok(v) => Some(v),
                        Err(_) => {
                            decoder.invalid(
                                node,
                                format!("{i} is out of range"),
                                concat!("use a whole number between 0 and ", stringify!($ty), "::MAX"),
                            );
                            None
                        }
                    },
                    _ => {
                        decoder.wrong_type(node, &Self::expected());
                        None
                    }
                }
            }
        }
    )*};
}
decode_unsigned!(u16, u32, u64);

impl<T: Decode> Decode for Option<T> {
    fn expected() -> String {
        T::expected()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        if node.value == Value::Null {
            return Some(None);
        }
        // A present but broken optional value is reported and then treated as absent, so the
        // rest of the plan can still be checked.
        let value = T::decode(node, decoder);
        if value.is_none() && !T::LEAF {
            decoder.incomplete = true;
        }
        Some(value)
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn expected() -> String {
        format!("a list of {}", T::expected())
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            decoder.wrong_type(node, &Self::expected());
            return None;
        };
        // Broken items are reported and dropped; the list itself stays usable.
        let decoded: Vec<T> = items
            .iter()
            .filter_map(|item| T::decode(item, decoder))
            .collect();
        if decoded.len() < items.len() {
            decoder.incomplete = true;
        }
        Some(decoded)
    }
}

/// A mapping from user-chosen names (groups, channels, contingencies) to values, in written order.
#[derive(Clone, Debug, PartialEq)]
pub struct Map<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Map<V> {
    fn default() -> Self {
        Map(Vec::new())
    }
}

impl<V> Map<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.value.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<V: Decode> Decode for Map<V> {
    fn expected() -> String {
        format!("a mapping of names to {}", V::expected())
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            decoder.wrong_type(node, &Self::expected());
            return None;
        };
        let decoded: Vec<(Spanned<String>, V)> = entries
            .iter()
            .filter_map(|(k, v)| {
                V::decode(v, decoder).map(|v| (Spanned::new(k.name.clone(), k.span), v))
            })
            .collect();
        if decoded.len() < entries.len() {
            decoder.incomplete = true;
        }
        Some(Map(decoded))
    }
}

impl<V: JsonSchema> JsonSchema for Map<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let values = generator.subschema_for::<V>();
        schemars::json_schema!({ "type": "object", "additionalProperties": values })
    }
}

/// A section that is either answered or explicitly declared not to apply, with a reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Section<T> {
    Given(T),
    NotApplicable(Spanned<String>),
}

impl<T> Section<T> {
    pub fn given(&self) -> Option<&T> {
        match self {
            Section::Given(t) => Some(t),
            Section::NotApplicable(_) => None,
        }
    }
}

impl<T: Decode> Decode for Section<T> {
    const LEAF: bool = T::LEAF;
    fn expected() -> String {
        format!("{} or `not_applicable: \"<reason>\"`", T::expected())
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        let Some(entries) = node.as_map() else {
            return T::decode(node, decoder).map(Section::Given);
        };
        let Some(reason_node) = node.get("not_applicable") else {
            return T::decode(node, decoder).map(Section::Given);
        };
        for (key, _) in entries.iter().filter(|(k, _)| k.name != "not_applicable") {
            decoder.push(
                Diagnostic::error(
                    codes::NOT_APPLICABLE_MIXED,
                    key.span,
                    format!("`{}` given in a section marked `not_applicable`", key.name),
                )
                .with_help("either answer the section or say why it does not apply, not both"),
            );
        }
        let reason = Spanned::<String>::decode(reason_node, decoder)?;
        if reason.value.trim().is_empty() {
            decoder.push(
                Diagnostic::error(
                    codes::NOT_APPLICABLE_MIXED,
                    reason.span,
                    "`not_applicable` needs a reason",
                )
                .with_help("say in a sentence why this question has no answer for this release"),
            );
        }
        Some(Section::NotApplicable(reason))
    }
}

impl<T: JsonSchema> JsonSchema for Section<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Section_of_{}", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let given = generator.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [
                given,
                {
                    "type": "object",
                    "description": "The question does not apply to this release; say why.",
                    "properties": { "not_applicable": { "type": "string", "minLength": 1 } },
                    "required": ["not_applicable"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// Declares a spec struct: the type, its JSON Schema and its collecting decoder, from one list.
///
/// `("what", leaf)` marks a struct that declares no names other parts of the plan refer to, so
/// dropping a broken one leaves reference checks reliable. Optional keys are `Option<T>` fields; defaults are applied when the validated plan is built, so
/// the spec stays what the author wrote. YAML keys are the field names (a raw identifier such as
/// `r#for` is the key `for`).
#[macro_export]
macro_rules! spec {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident ($what:literal $(, $leaf:ident)?) {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, schemars::JsonSchema)]
        #[schemars(deny_unknown_fields)]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::decode::Decode for $name {
            const LEAF: bool = $crate::spec!(@leaf $($leaf)?);

            fn expected() -> String {
                concat!("a mapping (", $what, ")").into()
            }

            fn decode(node: &$crate::yaml::Node, decoder: &mut $crate::decode::Decoder) -> Option<Self> {
                let Some(entries) = node.as_map() else {
                    decoder.wrong_type(node, &Self::expected());
                    return None;
                };
                const FIELDS: &[&str] = &[$( $crate::spec!(@key $field) ),*];
                decoder.unknown_fields(entries, $what, FIELDS);
                $(
                    let $field: Option<$ty> =
                        decoder.field(node, $what, $crate::spec!(@key $field));
                )*
                Some($name { $( $field: $field?, )* })
            }
        }
    };
    (@leaf leaf) => { true };
    (@leaf) => { false };
    (@key $field:ident) => {
        $crate::decode::strip_raw(stringify!($field))
    };
}

/// `r#for` → `for`, usable in constants.
pub const fn strip_raw(s: &'static str) -> &'static str {
    match s.as_bytes() {
        [b'r', b'#', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(rest) => rest,
            Err(_) => s,
        },
        _ => s,
    }
}
