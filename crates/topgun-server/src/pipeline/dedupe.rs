//! Resend detection: the acknowledged ops the server remembers by
//! (principal, client replica, op id), so a client that resends after a
//! lost ack gets the same answer instead of a second write with a newer
//! timestamp.
//!
//! The memory is bounded and split into shards by client replica, so
//! concurrent batches from different clients do not contend on one lock.
//! Each shard keeps two generations: inserts go to the current one, and
//! when it is full it becomes the previous one and the old previous one is
//! dropped whole. A shard therefore remembers at least its last
//! `generation` inserts and at most twice that, with no per-insert eviction
//! work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use topgun_protocol::WireTimestamp;

/// Identifies an op for resend detection: (principal, client replica, op id).
pub(crate) type DedupeKey = (Arc<str>, u64, u64);

/// Shards of the memory (a power of two).
const SHARDS: usize = 16;

/// The acknowledged ops a server remembers for resends.
#[derive(Debug)]
pub(crate) struct Dedupe {
    shards: Box<[Mutex<Shard>]>,
    generation: usize,
}

#[derive(Debug, Default)]
struct Shard {
    current: HashMap<DedupeKey, WireTimestamp>,
    previous: HashMap<DedupeKey, WireTimestamp>,
}

impl Dedupe {
    /// A memory that keeps at least the last `capacity / 2` acknowledged ops
    /// of every shard's clients and never more than `capacity` in all.
    pub(crate) fn new(capacity: usize) -> Self {
        Dedupe {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation: (capacity / (2 * SHARDS)).max(1),
        }
    }

    fn shard(&self, replica: u64) -> MutexGuard<'_, Shard> {
        // Replica ids are random per client; fold the high bits in so a
        // client choosing ids cannot make them all land in one shard by
        // accident (by intent it only slows itself down).
        let index = (replica ^ (replica >> 32)) as usize & (SHARDS - 1);
        // A shard is consistent after every step below, even if a thread
        // panicked while holding it.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The timestamp `key` was acknowledged with, if it is remembered.
    pub(crate) fn get(&self, key: &DedupeKey) -> Option<WireTimestamp> {
        let shard = self.shard(key.1);
        shard
            .current
            .get(key)
            .or_else(|| shard.previous.get(key))
            .copied()
    }

    /// Remembers that `key` was acknowledged with `ts`.
    pub(crate) fn insert(&self, key: DedupeKey, ts: WireTimestamp) {
        let mut shard = self.shard(key.1);
        if shard.current.len() >= self.generation && !shard.current.contains_key(&key) {
            let full = std::mem::take(&mut shard.current);
            shard.previous = full;
        }
        shard.current.insert(key, ts);
    }

    /// Ops remembered in all.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.current.len() + s.previous.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> WireTimestamp {
        WireTimestamp {
            millis: n,
            counter: 0,
            node: topgun_protocol::WireNodeId(1),
        }
    }

    fn key(sub: &str, replica: u64, op: u64) -> DedupeKey {
        (Arc::from(sub), replica, op)
    }

    #[test]
    fn remembers_the_ack_per_principal_replica_and_op() {
        let d = Dedupe::new(1024);
        d.insert(key("alice", 7, 1), ts(10));
        assert_eq!(d.get(&key("alice", 7, 1)), Some(ts(10)));
        assert_eq!(d.get(&key("bob", 7, 1)), None, "another principal");
        assert_eq!(d.get(&key("alice", 8, 1)), None, "another replica");
        assert_eq!(d.get(&key("alice", 7, 2)), None, "another op");
    }

    #[test]
    fn memory_is_bounded_and_keeps_the_latest_generation() {
        let capacity = 2 * SHARDS * 8; // 8 per generation and shard
        let d = Dedupe::new(capacity);
        // One replica: every insert lands in the same shard.
        for op in 0..1_000 {
            d.insert(key("alice", 42, op), ts(op));
            assert!(d.len() <= capacity, "{} remembered", d.len());
        }
        // The last generation's worth is always remembered.
        for op in 1_000 - 8..1_000 {
            assert_eq!(d.get(&key("alice", 42, op)), Some(ts(op)));
        }
        assert_eq!(d.get(&key("alice", 42, 0)), None, "the oldest are gone");
        // A shard never holds more than two generations.
        assert!(d.len() <= 16, "{} remembered", d.len());
    }

    #[test]
    fn reinserting_a_remembered_key_does_not_rotate() {
        let d = Dedupe::new(2 * SHARDS * 2);
        d.insert(key("a", 1, 1), ts(1));
        d.insert(key("a", 1, 2), ts(2));
        // The generation is full, but the key is already in it.
        d.insert(key("a", 1, 2), ts(2));
        assert_eq!(d.get(&key("a", 1, 1)), Some(ts(1)));
        assert_eq!(d.get(&key("a", 1, 2)), Some(ts(2)));
    }

    #[test]
    fn replicas_spread_over_shards() {
        let d = Dedupe::new(2 * SHARDS * 4);
        // 4 per generation and shard: 16 replicas with 4 ops each fit
        // without losing any if they spread over the shards.
        for replica in 0..SHARDS as u64 {
            for op in 0..4 {
                d.insert(key("a", replica, op), ts(op));
            }
        }
        for replica in 0..SHARDS as u64 {
            for op in 0..4 {
                assert_eq!(d.get(&key("a", replica, op)), Some(ts(op)));
            }
        }
    }
}
