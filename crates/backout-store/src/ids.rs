//! Run ids: `run-` followed by 10 characters of millisecond timestamp and 8 random characters, in
//! lowercase Crockford base32, so ids sort by creation time, are short enough to type, and do not
//! collide across processes starting runs in the same millisecond.
//!
//! The store does not generate ids; callers call [`new_run_id`] with their clock's time (so an id
//! can be printed before the run is stored, and tests can choose their own).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new sortable run id for a run created at `now_ms` (milliseconds since the Unix epoch).
pub fn new_run_id(now_ms: i64) -> String {
    new_id("run-", now_ms)
}

/// A new release id, `rel-` and the same time-sortable scheme as run ids.
pub fn new_release_id(now_ms: i64) -> String {
    new_id("rel-", now_ms)
}

/// A new evidence id, `evd-` and the same time-sortable scheme as run ids.
pub fn new_evidence_id(now_ms: i64) -> String {
    new_id("evd-", now_ms)
}

/// A new API token id, `tok-` and the same time-sortable scheme as run ids.
pub fn new_token_id(now_ms: i64) -> String {
    new_id("tok-", now_ms)
}

fn new_id(prefix: &str, now_ms: i64) -> String {
    let mut id = String::with_capacity(22);
    id.push_str(prefix);
    // 48 bits of time in 10 characters (50 bits), most significant first.
    let time = u64::try_from(now_ms).unwrap_or(0) & ((1 << 48) - 1);
    push_base32(time, 10, &mut id);
    push_base32(random_bits(), 8, &mut id);
    id
}

fn push_base32(value: u64, chars: u32, out: &mut String) {
    for index in (0..chars).rev() {
        let digit = (value >> (5 * index)) & 0x1f;
        out.push(char::from(ALPHABET[digit as usize]));
    }
}

/// 40 unpredictable-enough bits without a random-number crate: std's `RandomState` is seeded from
/// the OS once per thread and changes on every call; the counter and pid separate calls and
/// processes further.
fn random_bits() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish() & ((1 << 40) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_a_fixed_shape() {
        let id = new_run_id(1_732_000_000_000);
        assert_eq!(id.len(), 22, "{id}");
        assert!(id.starts_with("run-"));
        assert!(id[4..].bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        assert!(new_run_id(-5).starts_with("run-0000000000"));
    }

    #[test]
    fn ids_sort_by_time() {
        let earlier = new_run_id(1_732_000_000_000);
        let later = new_run_id(1_732_000_000_001);
        assert!(earlier < later, "{earlier} {later}");
        let much_later = new_run_id(4_102_444_800_000);
        assert!(later < much_later);
    }

    #[test]
    fn ids_in_one_millisecond_differ() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_run_id(42)).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
