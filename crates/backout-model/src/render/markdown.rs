//! Markdown output of the rendered document (CommonMark with GitHub tables).
//!
//! Responsible only for how the [`Document`] looks as Markdown. Every plan string is untrusted, so
//! plain text is escaped until it can start no emphasis, link, raw HTML or heading, and code spans
//! and fences are sized to outlast any backticks inside them. The timeline chart is HTML-only: the
//! step tables carry each step's earliest start instead.

use super::document::{Block, Document, Section, Span, Table, Text, Tone};

/// Renders `doc` as Markdown text ending in one newline.
pub(crate) fn render(doc: &Document) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("# ");
    push_escaped(&mut out, &doc.title);
    out.push_str("\n\n");
    for b in &doc.blocks {
        block(&mut out, b, Some(doc));
    }
    out.push_str("---\n\n");
    push_escaped(&mut out, &doc.footer);
    out.push('\n');
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn block<'a>(out: &mut String, b: &Block<'a>, doc: Option<&Document<'a>>) {
    match b {
        Block::Section(s) => section(out, s, doc),
        Block::Paragraph(t) => {
            let start = out.len();
            inline(out, t, false);
            guard_line_start(out, start);
            out.push_str("\n\n");
        }
        Block::Fields(fields) => {
            for (label, value) in fields {
                out.push_str("- **");
                push_escaped(out, label);
                out.push_str(":** ");
                inline(out, value, false);
                out.push('\n');
            }
            out.push('\n');
        }
        Block::List(items) => {
            for item in items {
                out.push_str("- ");
                inline(out, item, false);
                out.push('\n');
            }
            out.push('\n');
        }
        Block::Table(t) => table(out, t),
        Block::Code(text) => {
            let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
            out.push_str(&fence);
            out.push('\n');
            out.push_str(&clean_controls(text.trim_end_matches(['\n', '\r'])));
            out.push('\n');
            out.push_str(&fence);
            out.push_str("\n\n");
        }
        Block::Prose(text) => {
            for line in text.trim().lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    out.push_str(">\n");
                    continue;
                }
                out.push_str("> ");
                let start = out.len();
                push_escaped(out, line);
                guard_line_start(out, start);
                out.push('\n');
            }
            out.push('\n');
        }
        Block::Note(tone, text) => {
            out.push_str("> ");
            if *tone == Tone::Warning {
                out.push_str("⚠ ");
            }
            inline(out, text, false);
            out.push_str("\n\n");
        }
        Block::StepCards(list) => {
            if let Some(doc) = doc {
                doc.each_card(list, |card| section(out, card, Some(doc)));
            }
        }
        Block::Timeline => {}
    }
}

fn section<'a>(out: &mut String, s: &Section<'a>, doc: Option<&Document<'a>>) {
    for _ in 0..s.level.clamp(1, 6) {
        out.push('#');
    }
    out.push(' ');
    inline(out, &s.title, false);
    out.push_str("\n\n");
    for b in &s.body {
        block(out, b, doc);
    }
}

fn table(out: &mut String, t: &Table) {
    out.push('|');
    for h in &t.head {
        out.push(' ');
        push_escaped(out, h);
        out.push_str(" |");
    }
    out.push_str("\n|");
    for _ in &t.head {
        out.push_str("---|");
    }
    out.push('\n');
    for row in &t.rows {
        out.push('|');
        for cell in &row.cells {
            out.push(' ');
            inline(out, cell, true);
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push('\n');
}

fn inline(out: &mut String, text: &Text, in_table: bool) {
    for span in &text.0 {
        match span {
            Span::Plain(s) | Span::Link { text: s, .. } => push_escaped(out, s),
            Span::Strong(s) => {
                out.push_str("**");
                push_escaped(out, s);
                out.push_str("**");
            }
            Span::Code(s) | Span::Ref { label: s, .. } => code_span(out, s, in_table),
        }
    }
}

/// A code span that survives any content: the fence is longer than any backtick run inside.
fn code_span(out: &mut String, s: &str, in_table: bool) {
    let mut content = clean_controls(&s.replace(['\n', '\r'], " "));
    if in_table {
        content = content.replace('|', "\\|");
    }
    if content.is_empty() {
        out.push_str("\"\"");
        return;
    }
    let fence = "`".repeat(longest_run(&content, '`') + 1);
    let pad = content.starts_with('`')
        || content.ends_with('`')
        || (content.starts_with(' ') && content.ends_with(' ') && !content.trim().is_empty());
    out.push_str(&fence);
    if pad {
        out.push(' ');
    }
    out.push_str(&content);
    if pad {
        out.push(' ');
    }
    out.push_str(&fence);
}

/// Escapes plain text so that it reads as itself: no emphasis, links, raw HTML, entities,
/// strikethrough or table cell breaks. Line breaks become spaces (inline text is one line).
#[cfg(test)]
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    out
}

fn push_escaped(out: &mut String, s: &str) {
    // Byte by byte: every character that needs care is ASCII, or a C1 control (0xC2 0x80..=0x9F).
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        let (replacement, len): (&str, usize) = match b {
            b'\n' | b'\r' => (" ", 1),
            b'\\' | b'`' | b'*' | b'[' | b']' | b'<' | b'>' | b'~' | b'|' => ("\\", 0),
            b'_' if !(s[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
                && s[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)) =>
            {
                ("\\", 0)
            }
            b'&' if bytes
                .get(at + 1)
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'#') =>
            {
                ("\\", 0)
            }
            b'\t' => {
                at += 1;
                continue;
            }
            0..=0x1f | 0x7f => ("\u{fffd}", 1),
            0xc2 if bytes.get(at + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => ("\u{fffd}", 2),
            _ => {
                at += 1;
                continue;
            }
        };
        // A zero length inserts the replacement (a backslash) before the character and keeps it.
        out.push_str(&s[from..at]);
        out.push_str(replacement);
        from = at + len;
        at += len.max(1);
    }
    out.push_str(&s[from..]);
}

/// Keeps a line of text from turning into a heading, setext underline or thematic break.
fn guard_line_start(out: &mut String, start: usize) {
    let line = &out[start..];
    let first = line.trim_start().chars().next();
    let risky = match first {
        Some('#' | '=' | '+') => true,
        Some('-') => line.trim().chars().all(|c| c == '-' || c == ' '),
        _ => false,
    };
    if risky {
        let at = start + (line.len() - line.trim_start().len());
        out.insert(at, '\\');
    }
}

fn clean_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\t') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn longest_run(s: &str, ch: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == ch { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>")]
    #[test_case("**bold** and [link](x)", r"\*\*bold\*\* and \[link\](x)")]
    #[test_case(
        "snake_case stays, _em_ does not",
        r"snake_case stays, \_em\_ does not"
    )]
    #[test_case("AT&T &amp; co", r"AT\&T \&amp; co")]
    #[test_case("a | b", r"a \| b")]
    #[test_case("a\nb\u{85}c\u{0}d\te", "a b\u{fffd}c\u{fffd}d\te")]
    #[test_case("déjà_vu_ ok", r"déjà_vu\_ ok")]
    fn plain_text_is_inert(input: &str, expected: &str) {
        assert_eq!(escape(input), expected);
    }

    #[test_case("plain", "`plain`")]
    #[test_case("a `b` c", "``a `b` c``")]
    #[test_case("`x", "`` `x ``")]
    fn code_spans_outlast_backticks(input: &str, expected: &str) {
        let mut out = String::new();
        code_span(&mut out, input, false);
        assert_eq!(out, expected);
    }

    #[test]
    fn code_spans_in_tables_escape_pipes() {
        let mut out = String::new();
        code_span(&mut out, "a | b", true);
        assert_eq!(out, r"`a \| b`");
    }

    #[test]
    fn fences_outlast_backticks() {
        let mut out = String::new();
        block(&mut out, &Block::Code("```\nrm -rf /\n```".into()), None);
        assert!(out.starts_with("````\n"), "{out}");
    }

    #[test]
    fn headings_cannot_be_injected() {
        let mut out = String::new();
        block(&mut out, &Block::Prose("# not a heading\n---".into()), None);
        assert_eq!(out, "> \\# not a heading\n> \\---\n\n");
    }
}
