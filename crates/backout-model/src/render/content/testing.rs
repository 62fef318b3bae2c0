//! Q9, whether the plan has been successfully tested: the "Tested" line (also shown in the
//! header), the rehearsal settings and how to rehearse.

use super::{Context, not_applicable, section};
use crate::plan::Answer;
use crate::render::document::{Block, Section, Text, Tone};

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
                let mut fields = vec![
                    ("Rehearse in".into(), Text::from(t.rehearse_in.as_str())),
                    (
                        "Evidence counts for".into(),
                        Text::from(format!("{} after the rehearsal (max_age)", t.max_age)),
                    ),
                ];
                for (env, o) in &t.overrides {
                    fields.push((
                        format!("Overrides in {env}").into(),
                        Text::join(&o.env, ", ", |(k, v)| Text::new().code(format!("{k}={v}"))),
                    ));
                }
                body.push(Block::Note(tone, tested));
                body.push(Block::Fields(fields));
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
            }
        }
        section(2, "q9", title, body)
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
