//! What more than one command needs besides the [`Context`](super::context::Context): reading
//! plans, rehearsal evidence, how runs end, the progress printer, notifications delivered beside
//! a command's work, and listings several commands print. Command modules import from here and
//! from `context`, never from one another, so a command can be read (and changed) on its own.

pub mod bars;
pub mod evidence;
pub mod execution;
pub mod listing;
pub mod notifying;
pub mod plan;
pub mod progress;
