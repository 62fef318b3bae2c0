//! The one document production support reads at 3 a.m.: a plan rendered as Markdown or as a
//! self-contained HTML page with an SVG timeline, answering the nine questions in plain words.
//!
//! Rendering is a pure function of the validated [`Plan`] and a little [`DocumentInfo`]: no
//! clock, no environment, no I/O, no hash-map iteration order, so the same input always gives the
//! same bytes. Secrets stay as the `${NAME}` references the author wrote. This module must not
//! judge the plan (that is lint's job): it states what the plan says, and shows computed facts
//! (the critical path, what fits in the window) next to it.
//!
//! - [`content`] decides what the document says, as a format-neutral [`document::Document`];
//! - [`markdown`] and [`html`] lay it out and escape every plan string for their format;
//! - [`timeline`] draws the procedure's ideal schedule as SVG;
//! - [`gantt`] draws a run's steps, expected against actual, as SVG and as a report page.

mod content;
mod document;
mod gantt;
mod html;

pub use gantt::{ActualStep, RunFacts, run_gantt, run_html};
pub use html::{Escaped, escape};
mod markdown;
mod timeline;

use crate::duration::Duration;
use crate::plan::Plan;
use crate::schedule::{Schedule, WorstCase};

/// What the document says about itself besides the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentInfo {
    /// How the plan file is named to readers, e.g. `checkout.yaml`.
    pub source_name: String,
    /// The plan's canonical content hash (hex).
    pub content_hash: String,
    /// The latest successful rehearsal of exactly this content hash still within `max_age`, if any.
    /// The caller looks it up; rendering has no clock to judge its age.
    pub rehearsal: Option<Rehearsal>,
    /// Reversion time measured by the successful rehearsals of this content hash, if any were
    /// looked up and found.
    pub measured: Option<Measured>,
    /// The last game day of the plan's service, as one line ("last game day (…): detection
    /// 48 s, decision 6 m (fallback reached), …"), shown in Q9 beside the rehearsal.
    pub gameday: Option<String>,
    /// The newest scheduled rehearsal of this content hash, when it failed after the newest
    /// evidence: "last scheduled rehearsal failed on …: …".
    pub rehearsal_failed: Option<String>,
}

impl DocumentInfo {
    /// What a caller without a store knows: the file's name and hash, no evidence.
    pub fn new(source_name: impl Into<String>, content_hash: impl Into<String>) -> DocumentInfo {
        DocumentInfo {
            source_name: source_name.into(),
            content_hash: content_hash.into(),
            rehearsal: None,
            measured: None,
            gameday: None,
            rehearsal_failed: None,
        }
    }
}

/// How long the procedure took in the successful rehearsals of this version of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    pub rehearsals: usize,
    pub median: Duration,
    pub worst: Duration,
}

/// Evidence of a successful rehearsal, as the Q9 answer states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rehearsal {
    pub environment: String,
    /// RFC 3339, shown as given.
    pub at: String,
    pub by: String,
    pub took: Duration,
}

/// The document as Markdown (CommonMark with GitHub tables).
pub fn markdown(plan: &Plan, info: &DocumentInfo) -> String {
    let schedule = Schedule::of_steps(plan.steps());
    let worst = WorstCase::of_plan(plan);
    markdown::render(&content::document(plan, info, &schedule, worst.as_ref()))
}

/// The document as one self-contained HTML page (inline CSS and SVG, no scripts, no remote assets).
pub fn html(plan: &Plan, info: &DocumentInfo) -> String {
    let schedule = Schedule::of_steps(plan.steps());
    let worst = WorstCase::of_plan(plan);
    let timeline = timeline::chart(plan, &schedule, false);
    html::render(
        &content::document(plan, info, &schedule, worst.as_ref()),
        &timeline,
    )
}

/// The procedure's timeline as a standalone SVG document. When the procedure does not apply or
/// has no steps, the SVG says so in words.
pub fn timeline_svg(plan: &Plan) -> String {
    let schedule = Schedule::of_steps(plan.steps());
    timeline::chart(plan, &schedule, true)
}
