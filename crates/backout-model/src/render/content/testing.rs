//! Q9, whether the plan has been successfully tested: the "Tested" line (also shown in the
//! header), the rehearsal settings, what each rehearsal environment overrides (variable names,
//! never values; URL rewrites) and how to rehearse.

use super::{Context, not_applicable, plural, section};
use crate::plan::{Answer, Override};
use crate::render::document::{Block, Row, Section, Table, Text, Tone};

impl<'a> Context<'a> {
    pub(super) fn tested_line(&self) -> (Tone, Text<'a>) {
        let hash = short_hash(&self.info.content_hash);
        match &self.info.rehearsal {
            Some(r) => (
                Tone::Good,
                Text::new().strong("Tested: yes").plain(format!(
                    " — rehearsed in {} on {} by {}, took {} (plan hash ",
                    r.environment, r.at, r.by, r.took
                ))
                .code(hash)
                .plain(")."),
            ),
            None => (
                Tone::Warning,
                Text::new()
                    .strong("Tested: no")
                    .plain(" — no successful rehearsal of this version of the plan is on record (plan hash ")
                    .code(hash)
                    .plain(")."),
            ),
        }
    }

    pub(super) fn q9_testing(&self) -> Section<'a> {
        let title = "Q9. Has the plan been successfully tested?";
        let (tone, tested) = self.tested_line();
        let mut body = Vec::new();
        match &self.plan.testing {
            Answer::Given(t) => {
                let fields = vec![
                    ("Rehearse in".into(), Text::from(t.rehearse_in.as_str())),
                    (
                        "Evidence counts for".into(),
                        Text::from(format!("{} after the rehearsal (max_age)", t.max_age)),
                    ),
                ];
                body.push(Block::Note(tone, tested));
                if let Some(failed) = &self.info.rehearsal_failed {
                    body.push(Block::Note(Tone::Warning, Text::from(failed.as_str())));
                }
                if let Some(gameday) = &self.info.gameday {
                    body.push(Block::Paragraph(Text::from(gameday.as_str())));
                }
                body.push(Block::Fields(fields));
                for (i, (env, o)) in t.overrides.iter().enumerate() {
                    body.push(Block::Section(self.overrides(i, env, o)));
                }
                body.push(Block::Paragraph(
                    Text::from("Rehearse with ")
                        .code(format!("backout rehearse PLAN --env {}", t.rehearse_in))
                        .plain("; dry runs are never evidence. Evidence is bound to the plan's content hash: any change to the plan needs a new rehearsal."),
                ));
            }
            Answer::NotApplicable(r) => {
                body.push(not_applicable(r));
                body.push(Block::Note(
                    if tone == Tone::Good { tone } else { Tone::Info },
                    tested,
                ));
                if let Some(failed) = &self.info.rehearsal_failed {
                    body.push(Block::Note(Tone::Warning, Text::from(failed.as_str())));
                }
                if let Some(gameday) = &self.info.gameday {
                    body.push(Block::Paragraph(Text::from(gameday.as_str())));
                }
            }
        }
        section(2, "q9", title, body)
    }
}

impl<'a> Context<'a> {
    /// What a rehearsal in `env` changes, so the reader sees that staging was really staging:
    /// the names of the variables it sets (never their values, which may be secrets), and each
    /// URL prefix it rewrites.
    fn overrides(&self, i: usize, env: &'a str, o: &'a Override) -> Section<'a> {
        let mut body = Vec::new();
        body.push(Block::Paragraph(if o.env.is_empty() {
            Text::from("Sets no environment variables.")
        } else {
            Text::from(format!(
                "Sets {} (values not shown): ",
                plural(o.env.len(), "environment variable", "environment variables")
            ))
            .append(Text::join(&o.env, ", ", |(k, _)| {
                Text::new().code(k.as_str())
            }))
            .plain(".")
        }));
        if o.urls.is_empty() {
            body.push(Block::Note(
                Tone::Warning,
                Text::from(format!(
                    "Rewrites no URLs: a rehearsal in {env} reaches the URLs exactly as the plan writes them."
                )),
            ));
        } else {
            body.push(Block::Paragraph(Text::from(
                "Rewrites every URL the run reaches (steps, verifies, criteria) that starts with:",
            )));
            body.push(Block::Table(Table {
                head: vec!["URL as written".into(), format!("in {env}").into()],
                rows: o
                    .urls
                    .iter()
                    .map(|(from, to)| Row {
                        cells: vec![
                            Text::new().code(from.as_str()),
                            Text::new().code(to.as_str()),
                        ],
                        critical: false,
                    })
                    .collect(),
            }));
        }
        let mut s = section(3, "q9-overrides", "", body);
        s.anchor = format!("q9-overrides-{}", i + 1);
        s.title = Text::from("What a rehearsal in ")
            .code(env)
            .plain(" overrides");
        s
    }
}

/// The first 12 hex digits of a content hash, for sentences.
fn short_hash(hash: &str) -> String {
    match hash.char_indices().nth(12) {
        Some((at, _)) => format!("{}…", &hash[..at]),
        None => hash.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hash_is_twelve_digits() {
        assert_eq!(short_hash("0123456789abcdef"), "0123456789ab…");
        assert_eq!(short_hash("abc"), "abc");
    }
}
