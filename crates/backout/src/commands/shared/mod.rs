//! What more than one command needs besides the [`Context`](super::context::Context): reading
//! plans, rehearsal evidence, how runs end, the progress printer, and listings several commands
//! print. Command modules import from here and from `context`, never from one another, so a
//! command can be read (and changed) on its own; this module depends on `context` only.

pub mod bars;
pub mod evidence;
pub mod execution;
pub mod listing;
pub mod plan;
pub mod progress;
