//! Leases: how several `backout serve` replicas on one database share the work (watching a
//! release, executing a run) so that exactly one works on each thing at a time.
//!
//! A lease is a named row with an owner, a fencing token and an expiry. Its holder renews it
//! well before it expires (a heartbeat); a holder that dies stops renewing, and once the lease
//! expired any replica may take it. Each new holder gets a token strictly greater than every
//! token issued for that name before, and every write made under a lease carries a [`Fence`]
//! (the name and the token): the store refuses it when the token is no longer the lease's
//! current one ([`crate::StoreError::Fenced`]), so a replica that was paused past the expiry
//! and wakes up cannot write over the work of the one that took over.

use serde::{Deserialize, Serialize};

/// A lease as stored. Times are milliseconds since the Unix epoch, from the caller's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// What the lease is for, e.g. `run:<id>` or `release:<id>`.
    pub name: String,
    /// Who holds it (a replica's id, e.g. `host:pid:random`); empty once released.
    pub owner: String,
    /// The fencing token: strictly greater for each new holder of this name.
    pub token: u64,
    /// When the lease expires unless renewed.
    pub expires_at_ms: i64,
}

impl Lease {
    /// The fence that writes made under this lease carry.
    pub fn fence(&self) -> Fence {
        Fence {
            lease: self.name.clone(),
            token: self.token,
        }
    }

    /// Whether the lease is held by someone at `now_ms` (not released, not expired).
    pub fn is_held(&self, now_ms: i64) -> bool {
        !self.owner.is_empty() && self.expires_at_ms > now_ms
    }
}

/// What a write made under a lease carries: the store writes it only while `token` is the
/// lease's current token, checked in the write's own transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// The lease's name.
    pub lease: String,
    /// The token the writer was given when it took the lease.
    pub token: u64,
}

/// Refuses a lease request a backend could not honour: an empty name or owner, or a
/// time-to-live that is not positive. Every backend calls this before writing.
pub fn check_lease_request(name: &str, owner: &str, ttl_ms: i64) -> Result<(), crate::StoreError> {
    if name.is_empty() || owner.is_empty() {
        return Err(crate::StoreError::invalid(
            "a lease needs a name and an owner",
        ));
    }
    if ttl_ms <= 0 {
        return Err(crate::StoreError::invalid(format!(
            "lease `{name}`: the time to live must be positive, not {ttl_ms} ms"
        )));
    }
    Ok(())
}
