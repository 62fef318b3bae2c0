//! Notifications of a release's lifecycle (plan section `communication`, Q8), delivered through
//! a transactional outbox.
//!
//! - [`route`] says which channels hear of a journal event; the places that build events call
//!   [`routed`], so the deliveries are written in the same store transaction as the event.
//! - [`Dispatcher`] sends due deliveries with retries and exponential backoff, gives the
//!   journal event's id as idempotency key, and records every attempt; [`dispatch_until`] runs
//!   one inside a long-running command.
//! - `notice` builds what a delivery says from the journal and the records it refers to.
//!
//! Rendering and the channels themselves live in `backout-notify`; this module decides who is
//! told what and when, and never talks HTTP or SMTP itself.

mod dispatcher;
mod notice;
mod route;

pub use dispatcher::{Backoff, DispatchOptions, Dispatcher, dispatch_until, public_url};
pub use notice::{event_id, links};
pub use route::{MESSAGE, delivery_kind, lifecycle_event, route, routed};
