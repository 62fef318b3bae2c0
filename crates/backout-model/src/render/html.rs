//! HTML output of the rendered document: one self-contained page (inline CSS, inline SVG, no
//! scripts, no external assets) that reads on a phone and prints cleanly.
//!
//! Responsible only for how the [`Document`] looks as HTML. Every string from the plan is
//! untrusted and goes through [`escape`]; the only markup written unescaped is this module's own.
//! A Content-Security-Policy forbids scripts and remote loads as a second line of defence.

use std::fmt::Write as _;

use super::document::{Block, Document, Section, Span, Table, Text};

/// What every block may need besides itself.
struct Page<'p, 'a> {
    doc: &'p Document<'a>,
    timeline: &'p str,
}

/// Escapes text for HTML and SVG content and attribute values. Control characters that XML
/// forbids become U+FFFD, so the inline SVG stays well-formed whatever the plan contains.
/// Also what the server's own pages and charts escape with (`render::escape`).
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// Text escaped while it is written, so no intermediate string is built.
pub struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut result = Ok(());
        escape_chunks(self.0, |chunk| {
            if result.is_ok() {
                result = f.write_str(chunk);
            }
        });
        result
    }
}

/// Appends `s` escaped.
fn push_escaped(out: &mut String, s: &str) {
    escape_chunks(s, |chunk| out.push_str(chunk));
}

/// Feeds `s` to `emit` in chunks, with markup characters replaced by entities and control
/// characters (C0 except tab and line breaks, DEL, C1) by U+FFFD. Works on bytes: every character
/// that needs care is ASCII, or a C1 control (0xC2 0x80..=0x9F in UTF-8).
fn escape_chunks(s: &str, mut emit: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut at = 0;
    while at < bytes.len() {
        let (replacement, len) = match bytes[at] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&#39;", 1),
            b'\n' | b'\t' | b'\r' => {
                at += 1;
                continue;
            }
            0..=0x1f | 0x7f => ("\u{fffd}", 1),
            0xc2 if bytes.get(at + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => ("\u{fffd}", 2),
            _ => {
                at += 1;
                continue;
            }
        };
        emit(&s[from..at]);
        emit(replacement);
        at += len;
        from = at;
    }
    emit(&s[from..]);
}

/// Renders `doc` as a complete HTML page, with `timeline` (an inline SVG) where the document
/// places its timeline.
pub(crate) fn render(doc: &Document, timeline: &str) -> String {
    // The page grows with the steps, like the chart, which takes about a fifth of it: reserving
    // that much up front spares a 5,000-step page a dozen reallocations and copies.
    let mut out = String::with_capacity(64 * 1024 + timeline.len() * 5);
    let page = Page { doc, timeline };
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&doc.title));
    out.push_str("<style>\n");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<header>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&doc.title));
    let first_section = doc
        .blocks
        .iter()
        .position(|b| matches!(b, Block::Section(_)))
        .unwrap_or(doc.blocks.len());
    let (preamble, sections) = doc.blocks.split_at(first_section);
    for b in preamble {
        block(&mut out, b, &page);
    }
    out.push_str("</header>\n<nav aria-label=\"Contents\"><ol>\n");
    for b in sections {
        if let Block::Section(s) = b {
            let _ = write!(out, "<li><a href=\"#{}\">", escape(&s.anchor));
            inline(&mut out, &s.title, false);
            out.push_str("</a></li>\n");
        }
    }
    out.push_str("</ol></nav>\n<main>\n");
    for b in sections {
        block(&mut out, b, &page);
    }
    out.push_str("</main>\n<footer>");
    push_escaped(&mut out, &doc.footer);
    out.push_str("</footer>\n</body>\n</html>\n");
    out
}

fn block<'a>(out: &mut String, b: &Block<'a>, page: &Page<'_, 'a>) {
    match b {
        Block::Section(s) => section(out, s, page),
        Block::StepCards(list) => page.doc.each_card(list, |card| section(out, card, page)),
        Block::Paragraph(t) => {
            out.push_str("<p>");
            inline(out, t, true);
            out.push_str("</p>\n");
        }
        Block::Fields(fields) => {
            out.push_str("<dl class=\"fields\">\n");
            for (label, value) in fields {
                wrap(out, "<dt>", label, "</dt><dd>");
                inline(out, value, true);
                out.push_str("</dd>\n");
            }
            out.push_str("</dl>\n");
        }
        Block::List(items) => {
            out.push_str("<ul>\n");
            for item in items {
                out.push_str("<li>");
                inline(out, item, true);
                out.push_str("</li>\n");
            }
            out.push_str("</ul>\n");
        }
        Block::Table(t) => table(out, t),
        Block::Code(text) => {
            let _ = writeln!(
                out,
                "<pre><code>{}</code></pre>",
                escape(text.trim_end_matches(['\n', '\r']))
            );
        }
        Block::Prose(text) => {
            let _ = writeln!(
                out,
                "<blockquote class=\"prose\">{}</blockquote>",
                escape(text.trim())
            );
        }
        Block::Note(tone, text) => {
            let _ = write!(out, "<div class=\"note {}\">", tone.class());
            inline(out, text, true);
            out.push_str("</div>\n");
        }
        Block::Timeline => {
            out.push_str("<figure class=\"timeline\">\n<div class=\"chart\">");
            out.push_str(page.timeline);
            out.push_str("</div>\n<figcaption>Each bar is a step from its earliest start for its expected time, if every step takes exactly that long. Hover a bar for its details.</figcaption>\n</figure>\n");
        }
    }
}

fn section<'a>(out: &mut String, s: &Section<'a>, page: &Page<'_, 'a>) {
    let level = s.level.clamp(2, 6);
    let _ = write!(
        out,
        "<section id=\"{}\"{}>\n<h{level}>",
        escape(&s.anchor),
        match (s.card, s.critical) {
            (true, true) => " class=\"card critical\"",
            (true, false) => " class=\"card\"",
            (false, _) => "",
        }
    );
    inline(out, &s.title, false);
    let _ = writeln!(out, "</h{level}>");
    for b in &s.body {
        block(out, b, page);
    }
    out.push_str("</section>\n");
}

fn table(out: &mut String, t: &Table) {
    out.push_str("<div class=\"table\"><table>\n<thead><tr>");
    for h in &t.head {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str(if row.critical {
            "<tr class=\"critical\">"
        } else {
            "<tr>"
        });
        for (i, cell) in row.cells.iter().enumerate() {
            let label = t.head.get(i).map_or("", |h| h.as_ref());
            wrap(out, "<td data-label=\"", label, "\">");
            inline(out, cell, true);
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
}

/// Inline spans; `links` is false inside headings and the table of contents, where a nested
/// link would be invalid.
fn inline(out: &mut String, text: &Text, links: bool) {
    for span in &text.0 {
        match span {
            Span::Plain(s) => push_escaped(out, s),
            Span::Strong(s) => wrap(out, "<strong>", s, "</strong>"),
            Span::Code(s) => wrap(out, "<code>", s, "</code>"),
            Span::Ref { anchor, label } if links => {
                wrap(out, "<a href=\"#", anchor, "\">");
                wrap(out, "<code>", label, "</code></a>");
            }
            Span::Ref { label, .. } => wrap(out, "<code>", label, "</code>"),
            Span::Link { anchor, text } if links => {
                wrap(out, "<a href=\"#", anchor, "\">");
                wrap(out, "", text, "</a>");
            }
            Span::Link { text, .. } => push_escaped(out, text),
        }
    }
}

/// `open`, `s` escaped, `close`: the hot path of inline text, without the formatting machinery.
fn wrap(out: &mut String, open: &str, s: &str, close: &str) {
    out.push_str(open);
    push_escaped(out, s);
    out.push_str(close);
}

const CSS: &str = r#":root {
  --ink: #1d232b; --muted: #5b6470; --line: #d5dae0; --soft: #f3f5f7; --accent: #1f5fa8;
  --critical: #c0392b; --critical-bg: #fdeeec;
  --warning: #8a5a00; --warning-bg: #fff5d9; --good: #1e6b34; --good-bg: #e7f5ec; --na-bg: #eef0f3;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, nav, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 12px; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: .4em 0 .6em; }
h2 { font-size: 1.35rem; margin: 2em 0 .6em; padding-bottom: .2em; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.12rem; margin: 1.4em 0 .4em; }
h4, h5, h6 { font-size: 1rem; margin: 1em 0 .4em; }
section.card > h3, section.card > h4, section.card > h5 { margin-top: .5em; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: .9em; }
code { background: var(--soft); padding: .05em .3em; border-radius: 3px; overflow-wrap: break-word; }
a code { color: var(--accent); }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .6em .8em;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: .5em 0; }
pre code { background: none; padding: 0; font-size: 1em; }
blockquote.prose { white-space: pre-line; margin: .5em 0; padding: .4em .9em; border-left: 4px solid var(--line);
  background: #fafbfc; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .25em 1em; margin: .6em 0; }
dl.fields dt { font-weight: 600; color: var(--muted); }
dl.fields dd { margin: 0; min-width: 0; }
.note { margin: .8em 0; padding: .55em .9em; border-left: 5px solid var(--line); border-radius: 3px; background: var(--soft); }
.note.good { background: var(--good-bg); border-color: var(--good); }
.note.warning { background: var(--warning-bg); border-color: #e0a800; }
.note.na { background: var(--na-bg); border-color: var(--muted); }
.note.info { border-color: var(--accent); }
section.card { border: 1px solid var(--line); border-radius: 6px; padding: .1em 1em .5em; margin: 1em 0; }
section.card.critical { border-left: 5px solid var(--critical); }
nav ol { columns: 2; margin: 0; padding: .6em 1em .6em 2em; background: var(--soft); border-radius: 6px; }
nav li { break-inside: avoid; }
.table { overflow-x: auto; margin: .8em 0; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: .35em .55em; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
tr.critical td { background: var(--critical-bg); }
tr.critical td:first-child { box-shadow: inset 4px 0 0 var(--critical); }
figure.timeline { margin: 1em 0; }
figure.timeline .chart { overflow: auto; max-height: 85vh; border: 1px solid var(--line); border-radius: 6px; }
figure.timeline svg { display: block; min-width: 720px; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .9em; margin-top: .3em; }
footer { margin: 3em auto 2em; color: var(--muted); font-size: .85em; border-top: 1px solid var(--line); padding-top: .8em; }
@media (max-width: 720px) {
  body { font-size: 15px; }
  h1 { font-size: 1.35rem; }
  nav ol { columns: 1; }
  dl.fields { display: block; }
  dl.fields dt { display: inline; }
  dl.fields dt::after { content: ":"; }
  dl.fields dd { display: inline; margin-left: .35em; }
  dl.fields dd::after { content: ""; display: block; margin-bottom: .3em; }
  .table { overflow: visible; }
  table, thead, tbody { display: block; width: 100%; }
  thead { position: absolute; left: -9999px; }
  tr { display: flex; flex-wrap: wrap; column-gap: 1.1em; border: 1px solid var(--line); border-radius: 6px;
    margin: 0 0 .6em; padding: .3em .6em; }
  td { display: block; border: none; padding: .1em 0; max-width: 100%; }
  td:empty { display: none; }
  td::before { content: attr(data-label) ": "; font-weight: 600; color: var(--muted); }
  tr.critical { background: var(--critical-bg); border-left: 5px solid var(--critical); }
  tr.critical td { background: none; }
  tr.critical td:first-child { box-shadow: none; }
section.card { padding: .1em .7em .4em; }
}
@media print {
  body { font-size: 10.5pt; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  h2, h3, h4 { break-after: avoid; }
  section.card, tr, .note, pre { break-inside: avoid; }
  figure.timeline .chart { overflow: visible; max-height: none; border: none; }
  .note, tr.critical td, th, code, pre { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn non_ascii_text_passes_and_c1_controls_do_not() {
        let mut out = String::new();
        push_escaped(&mut out, "café → \u{85}ok\u{9f}");
        assert_eq!(out, "café → \u{fffd}ok\u{fffd}");
    }

    #[test]
    fn control_characters_cannot_break_the_svg() {
        assert_eq!(
            escape("a\u{0}b\u{1b}c\nd").to_string(),
            "a\u{fffd}b\u{fffd}c\nd"
        );
    }
}
