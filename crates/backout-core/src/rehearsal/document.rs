//! What the rendered document says about rehearsals (Q9) and measured reversion time (Q7),
//! from the evidence on record. Shared by `backout render` and the server's plan pages.

use backout_model::lint::evidence::median_and_worst;
use backout_model::plan::Answer;
use backout_model::render::{DocumentInfo, Measured, Rehearsal};
use backout_model::{Duration, Plan};
use backout_store::Evidence;

use crate::time::utc;

/// The Q9 and Q7 answers of the document: the newest successful rehearsal of this content hash
/// in `testing.rehearse_in` still within `max_age` at `now_ms` (any environment when testing
/// does not apply), and the reversion time measured by the rehearsals of this hash.
/// `evidence` is newest first, as the store lists it.
pub fn for_document(
    plan: &Plan,
    hash: &str,
    evidence: &[Evidence],
    now_ms: i64,
) -> (Option<Rehearsal>, Option<Measured>) {
    let relevant: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| e.plan_hash == hash)
        .filter(|e| match &plan.testing {
            Answer::Given(t) => e.environment == t.rehearse_in,
            Answer::NotApplicable(_) => true,
        })
        .collect();
    let fresh = relevant.iter().copied().find(|e| match &plan.testing {
        Answer::Given(t) => {
            u64::try_from(now_ms - e.finished_at_ms).unwrap_or(0) <= t.max_age.as_millis()
        }
        Answer::NotApplicable(_) => true,
    });
    let rehearsal = fresh.map(|e| Rehearsal {
        environment: e.environment.clone(),
        at: utc(e.finished_at_ms),
        by: e.actor.clone(),
        took: Duration::from_millis(u64::try_from(e.took_ms()).unwrap_or(0)),
    });
    let took: Vec<u64> = relevant
        .iter()
        .map(|e| u64::try_from(e.took_ms()).unwrap_or(0))
        .collect();
    let measured = median_and_worst(&took).map(|(median, worst)| Measured {
        rehearsals: took.len(),
        median: Duration::from_millis(median),
        worst: Duration::from_millis(worst),
    });
    (rehearsal, measured)
}

/// The document's header facts for `plan` (named `source_name`, content `hash`) with the
/// rehearsal answers filled in from `evidence`.
pub fn document_info(
    plan: &Plan,
    source_name: &str,
    hash: &str,
    evidence: &[Evidence],
    now_ms: i64,
) -> DocumentInfo {
    let mut info = DocumentInfo::new(source_name, hash);
    (info.rehearsal, info.measured) = for_document(plan, hash, evidence, now_ms);
    info
}
