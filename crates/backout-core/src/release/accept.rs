//! Plans accepted before they can act. A plan is its own root of trust only once its deployment
//! engineer (`owners.deployment_engineer`, the seed's "responsible for its contents") or an
//! admin accepted its exact content hash (`plan_accepted`, journaled). Until then a server opens
//! and watches its releases, but runs none of its `command` criteria, honours no
//! `authorize: automatic`, and executes nothing: whoever uploads a plan does not thereby get
//! to run commands on the server or name the deciders.

use backout_model::Plan;
use backout_store::{NewEvent, Store};
use serde_json::json;

use crate::errors::ExecError;

/// The journal event of an acceptance.
pub const ACCEPTED: &str = "plan_accepted";

/// Who accepted a plan's content hash, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    pub plan_hash: String,
    pub actor: String,
    pub at_ms: i64,
}

/// Accepts the plan `source` as `actor`: its deployment engineer, or an admin (`admin`, the
/// server's token role; the CLI on a local store has no admins). Accepting again is harmless.
pub async fn accept(
    store: &dyn Store,
    source: &str,
    actor: &str,
    admin: bool,
    now_ms: i64,
) -> Result<Acceptance, ExecError> {
    let linted = backout_model::lint(source);
    let errors = linted.errors();
    let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
        return Err(ExecError::Refused(format!(
            "the plan has {errors} error(s); run `backout lint` on it first"
        )));
    };
    let engineer = &plan.owners.deployment_engineer;
    if !admin && !engineer.trim().eq_ignore_ascii_case(actor.trim()) {
        return Err(ExecError::Refused(format!(
            "`{actor}` may not accept this plan: only its deployment engineer ({engineer}, \
             owners.deployment_engineer) or an admin may"
        )));
    }
    if let Some(done) = acceptance(store, &hash).await? {
        return Ok(done);
    }
    let event = NewEvent::new(ACCEPTED, actor, now_ms).payload(json!({
        "plan_hash": hash,
        "service": plan.release.service,
        "as": if admin { "admin" } else { "deployment_engineer" },
    }));
    store.append_event(&event).await?;
    Ok(Acceptance {
        plan_hash: hash,
        actor: actor.to_string(),
        at_ms: now_ms,
    })
}

/// The acceptance of a content hash, if any.
pub async fn acceptance(
    store: &dyn Store,
    plan_hash: &str,
) -> Result<Option<Acceptance>, ExecError> {
    let mut after = 0;
    loop {
        let page = store.events_of_kinds(after, &[ACCEPTED], 1000).await?;
        if let Some(found) = page
            .iter()
            .find(|e| e.payload.get("plan_hash").and_then(|h| h.as_str()) == Some(plan_hash))
        {
            return Ok(Some(Acceptance {
                plan_hash: plan_hash.to_string(),
                actor: found.actor.clone(),
                at_ms: found.at_ms,
            }));
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => return Ok(None),
        }
    }
}

/// Why something waits for acceptance, and who may give it.
pub fn not_accepted(plan: &Plan, what: &str) -> String {
    format!(
        "{what}: the plan is not accepted yet; its deployment engineer ({}) or an admin runs \
         `backout accept PLAN` for this exact content",
        plan.owners.deployment_engineer
    )
}
