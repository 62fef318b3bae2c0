//! The format-neutral shape of the rendered document: sections, paragraphs, fields, tables, code
//! and notes made of plain, code and strong text.
//!
//! [`content`](super::content) decides what the document says; [`markdown`](super::markdown) and
//! [`html`](super::html) decide only how it looks, so the two formats can never disagree about the
//! content. Nothing here escapes anything: every string is kept exactly as written and each output
//! format escapes it for itself. Strings borrow from the plan where they can ([`Str`]), so a
//! 5,000-step document is not thousands of copies of ids and commands.

use std::borrow::Cow;

/// Text borrowed from the plan, or made for the document.
pub(crate) type Str<'a> = Cow<'a, str>;

/// A whole rendered document.
pub(crate) struct Document<'a> {
    pub title: String,
    pub blocks: Vec<Block<'a>>,
    /// Where the document came from, closing the page.
    pub footer: String,
    /// Builds the step cards of [`Block::StepCards`] on demand.
    pub cards: Box<dyn CardSource<'a> + 'a>,
}

/// Makes one step's card at a time, so the writer can drop it before asking for the next one.
pub(crate) trait CardSource<'a> {
    fn card(&self, list: &StepCards<'a>, i: usize) -> Option<Section<'a>>;
}

/// The cards of a list of steps, built while writing (see [`CardSource`]).
pub(crate) struct StepCards<'a> {
    pub steps: &'a [crate::plan::Step],
    /// Earliest start of each step, when scheduled.
    pub starts: Vec<Option<crate::duration::Duration>>,
    pub critical: Vec<bool>,
    /// Step id → position, for links between steps.
    pub index: std::collections::HashMap<&'a str, usize>,
    pub prefix: String,
    pub level: u8,
}

impl<'a> Document<'a> {
    /// Each step card of `list`, one at a time.
    pub fn each_card(&self, list: &StepCards<'a>, mut f: impl FnMut(&Section<'a>)) {
        for i in 0..list.steps.len() {
            if let Some(card) = self.cards.card(list, i) {
                f(&card);
            }
        }
    }
}

/// A block-level element.
pub(crate) enum Block<'a> {
    Section(Section<'a>),
    Paragraph(Text<'a>),
    /// Label → value pairs.
    Fields(Vec<(Str<'a>, Text<'a>)>),
    List(Vec<Text<'a>>),
    Table(Table<'a>),
    /// A command, query or request, shown verbatim in a monospace block.
    Code(Str<'a>),
    /// Text a plan author wrote over several lines; the line breaks are kept.
    Prose(Str<'a>),
    Note(Tone, Text<'a>),
    /// One card per step, made while writing.
    StepCards(StepCards<'a>),
    /// The procedure's timeline chart (HTML only; Markdown has the start times in the step table).
    Timeline,
}

/// A titled part of the document; `level` 2 is a top-level section (one per question).
pub(crate) struct Section<'a> {
    pub level: u8,
    pub anchor: String,
    pub title: Text<'a>,
    /// `card` draws a framed box in HTML (steps, criteria, branches).
    pub card: bool,
    /// A step on the critical path: marked in HTML (the title carries a ★ too).
    pub critical: bool,
    pub body: Vec<Block<'a>>,
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

pub(crate) struct Table<'a> {
    pub head: Vec<Str<'a>>,
    pub rows: Vec<Row<'a>>,
}

pub(crate) struct Row<'a> {
    pub cells: Vec<Text<'a>>,
    /// On the critical path: highlighted in HTML (the cell text carries a marker too).
    pub critical: bool,
}

/// A run of inline spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Text<'a>(pub Vec<Span<'a>>);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Span<'a> {
    Plain(Str<'a>),
    /// Identifiers, commands, URLs, values: anything a reader may copy.
    Code(Str<'a>),
    Strong(Str<'a>),
    /// An identifier that points at another part of the document (a link in HTML).
    Ref {
        anchor: Str<'a>,
        label: Str<'a>,
    },
    /// Words that point at another part of the document (a link in HTML, plain in Markdown).
    Link {
        anchor: Str<'a>,
        text: Str<'a>,
    },
}

impl<'a> Text<'a> {
    pub fn new() -> Text<'a> {
        Text(Vec::new())
    }

    pub fn plain(mut self, s: impl Into<Str<'a>>) -> Text<'a> {
        self.push_plain(s);
        self
    }

    pub fn code(mut self, s: impl Into<Str<'a>>) -> Text<'a> {
        self.0.push(Span::Code(s.into()));
        self
    }

    pub fn strong(mut self, s: impl Into<Str<'a>>) -> Text<'a> {
        self.0.push(Span::Strong(s.into()));
        self
    }

    pub fn reference(mut self, anchor: impl Into<Str<'a>>, label: impl Into<Str<'a>>) -> Text<'a> {
        self.0.push(Span::Ref {
            anchor: anchor.into(),
            label: label.into(),
        });
        self
    }

    pub fn link(mut self, anchor: impl Into<Str<'a>>, text: impl Into<Str<'a>>) -> Text<'a> {
        self.0.push(Span::Link {
            anchor: anchor.into(),
            text: text.into(),
        });
        self
    }

    pub fn append(mut self, other: Text<'a>) -> Text<'a> {
        self.0.extend(other.0);
        self
    }

    /// Adds plain text; empty text adds nothing.
    pub fn push_plain(&mut self, s: impl Into<Str<'a>>) {
        let s = s.into();
        if !s.is_empty() {
            self.0.push(Span::Plain(s));
        }
    }

    /// `items` separated by `sep`, each made by `each`.
    pub fn join<T>(
        items: impl IntoIterator<Item = T>,
        sep: &'static str,
        mut each: impl FnMut(T) -> Text<'a>,
    ) -> Text<'a> {
        let mut out = Text::new();
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push_plain(sep);
            }
            out.0.extend(each(item).0);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Text<'a> {
        Text::new().plain(s)
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text::new().plain(s)
    }
}
