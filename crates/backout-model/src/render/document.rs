//! The format-neutral shape of the rendered document: sections, paragraphs, fields, tables, code
//! and notes made of plain, code and strong text.
//!
//! [`content`](super::content) decides what the document says; [`markdown`](super::markdown) and
//! [`html`](super::html) decide only how it looks, so the two formats can never disagree about the
//! content. Nothing here escapes anything: every string is kept exactly as written and each output
//! format escapes it for itself.

/// A whole rendered document.
pub(crate) struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
    /// Where the document came from, closing the page.
    pub footer: String,
}

/// A block-level element.
pub(crate) enum Block {
    Section(Section),
    Paragraph(Text),
    /// Label → value pairs.
    Fields(Vec<(String, Text)>),
    List(Vec<Text>),
    Table(Table),
    /// A command, query or request, shown verbatim in a monospace block.
    Code(String),
    /// Text a plan author wrote over several lines; the line breaks are kept.
    Prose(String),
    Note(Tone, Text),
    /// The procedure's timeline chart (HTML only; Markdown has the start times in the step table).
    Timeline,
}

/// A titled part of the document; `level` 2 is a top-level section (one per question).
pub(crate) struct Section {
    pub level: u8,
    pub anchor: String,
    pub title: Text,
    /// `card` draws a framed box in HTML (steps, criteria, branches).
    pub card: bool,
    pub body: Vec<Block>,
}

/// How a note should stand out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    Info,
    Good,
    Warning,
    NotApplicable,
}

impl Tone {
    pub fn class(self) -> &'static str {
        match self {
            Tone::Info => "info",
            Tone::Good => "good",
            Tone::Warning => "warning",
            Tone::NotApplicable => "na",
        }
    }
}

pub(crate) struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Row>,
}

pub(crate) struct Row {
    pub cells: Vec<Text>,
    /// On the critical path: highlighted in HTML (the cell text carries a marker too).
    pub critical: bool,
}

/// A run of inline spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Text(pub Vec<Span>);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Span {
    Plain(String),
    /// Identifiers, commands, URLs, values: anything a reader may copy.
    Code(String),
    Strong(String),
    /// An identifier that points at another part of the document (a link in HTML).
    Ref {
        anchor: String,
        label: String,
    },
}

impl Text {
    pub fn new() -> Text {
        Text(Vec::new())
    }

    pub fn plain(mut self, s: impl Into<String>) -> Text {
        self.push_plain(s);
        self
    }

    pub fn code(mut self, s: impl Into<String>) -> Text {
        self.0.push(Span::Code(s.into()));
        self
    }

    pub fn strong(mut self, s: impl Into<String>) -> Text {
        self.0.push(Span::Strong(s.into()));
        self
    }

    pub fn reference(mut self, anchor: impl Into<String>, label: impl Into<String>) -> Text {
        self.0.push(Span::Ref {
            anchor: anchor.into(),
            label: label.into(),
        });
        self
    }

    pub fn append(mut self, other: Text) -> Text {
        for span in other.0 {
            match span {
                Span::Plain(s) => self.push_plain(s),
                span => self.0.push(span),
            }
        }
        self
    }

    /// Adds plain text, merging it with a preceding plain span so output stays compact.
    pub fn push_plain(&mut self, s: impl Into<String>) {
        let s = s.into();
        if s.is_empty() {
            return;
        }
        if let Some(Span::Plain(last)) = self.0.last_mut() {
            last.push_str(&s);
        } else {
            self.0.push(Span::Plain(s));
        }
    }

    /// `items` separated by `sep`, each made by `each`.
    pub fn join<T>(
        items: impl IntoIterator<Item = T>,
        sep: &str,
        mut each: impl FnMut(T) -> Text,
    ) -> Text {
        let mut out = Text::new();
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push_plain(sep);
            }
            out = out.append(each(item));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new().plain(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::new().plain(s)
    }
}
