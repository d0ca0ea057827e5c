//! The last-writer-wins map.

use std::cmp::Ordering;
use std::collections::HashMap;

use xxhash_rust::xxh3::Xxh3;

use crate::hlc::Timestamp;
use crate::merkle::{self, LeafDigest, MerkleError, MerklePath, MerkleTree};
use crate::record::LwwRecord;
use crate::value::{ByteSink, Value, put_str};

/// What [`LwwMap::merge`] did with an incoming record.
#[derive(Clone, Debug, PartialEq)]
pub enum MergeOutcome {
    /// The key was absent; the record was stored.
    Inserted,
    /// The record won over the stored one, which is returned.
    Replaced(LwwRecord),
    /// The stored record wins (a greater timestamp, or the same timestamp
    /// and the tie-break, see [`LwwMap::merge`]) or is the same record, or
    /// the key is absent and the record predates the pruning frontier (it
    /// was superseded by a pruned tombstone); nothing changed.
    Ignored,
}

impl MergeOutcome {
    /// Whether the map changed.
    pub fn changed(&self) -> bool {
        !matches!(self, MergeOutcome::Ignored)
    }
}

/// A map from string keys to [`LwwRecord`]s in which, per key, the record
/// with the greatest timestamp wins; on equal timestamps, the record with
/// the greater [`entry_hash`] (see [`LwwMap::merge`]).
///
/// Removals are tombstones, kept so that they replicate and sync; they can be
/// pruned with [`LwwMap::prune_tombstones`] once every replica has seen them.
/// The map maintains its [`MerkleTree`] on every change.
#[derive(Clone, Debug, Default)]
pub struct LwwMap {
    records: HashMap<String, Entry>,
    tree: MerkleTree,
    pruned_before: Timestamp,
}

#[derive(Clone, Debug)]
struct Entry {
    record: LwwRecord,
    hash: u64,
}

impl LwwMap {
    /// An empty map with the default Merkle depth.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map whose Merkle tree has `depth` levels.
    pub fn with_merkle_depth(depth: u8) -> Result<Self, MerkleError> {
        Ok(LwwMap {
            records: HashMap::new(),
            tree: MerkleTree::new(depth)?,
            pruned_before: Timestamp::ZERO,
        })
    }

    /// Number of keys with a record, tombstones included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the map holds no records at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The stored record for `key`, tombstone or not.
    pub fn get(&self, key: &str) -> Option<&LwwRecord> {
        self.records.get(key).map(|e| &e.record)
    }

    /// The value visible for `key` at physical time `now_millis`.
    pub fn get_live(&self, key: &str, now_millis: u64) -> Option<&Value> {
        self.get(key).and_then(|r| r.live_value(now_millis))
    }

    /// Merges one record: it is kept if its timestamp is greater than the
    /// stored record's. Merging the same record twice is a no-op.
    ///
    /// Two different records with the same timestamp should not exist (a
    /// timestamp names one write of one node), but a buggy or spoofed node
    /// id can make them. They still converge: the one with the greater
    /// [`entry_hash`] wins, and in the (astronomically rare, but
    /// constructible: xxh3 is not collision resistant) case of equal hashes,
    /// the one whose hashed bytes compare greater. The winner is thus the
    /// maximum of a total order over records, so merging stays commutative,
    /// associative and idempotent whatever the records.
    pub fn merge(
        &mut self,
        key: impl Into<String> + AsRef<str>,
        record: LwwRecord,
    ) -> MergeOutcome {
        if let Some(entry) = self.records.get_mut(key.as_ref()) {
            let hash = match record.timestamp.cmp(&entry.record.timestamp) {
                Ordering::Less => return MergeOutcome::Ignored,
                Ordering::Greater => entry_hash(key.as_ref(), &record),
                Ordering::Equal => {
                    let hash = entry_hash(key.as_ref(), &record);
                    if !wins_tie(key.as_ref(), (&record, hash), (&entry.record, entry.hash)) {
                        return MergeOutcome::Ignored;
                    }
                    hash
                }
            };
            self.tree.update(key.as_ref(), Some(entry.hash), Some(hash));
            entry.hash = hash;
            let old = std::mem::replace(&mut entry.record, record);
            return MergeOutcome::Replaced(old);
        }
        if record.timestamp < self.pruned_before {
            // Every replica saw every write older than the frontier, this one
            // included, so a key absent here lost that write to a tombstone
            // that has since been pruned. Storing the record would resurrect
            // the key (for a put) or garbage (for a tombstone).
            return MergeOutcome::Ignored;
        }
        let hash = entry_hash(key.as_ref(), &record);
        self.tree.update(key.as_ref(), None, Some(hash));
        self.records.insert(key.into(), Entry { record, hash });
        MergeOutcome::Inserted
    }

    /// Merges every record of `other` into this map; returns how many changed
    /// it.
    pub fn merge_map(&mut self, other: &LwwMap) -> usize {
        other
            .iter()
            .filter(|(k, r)| self.merge(*k, (*r).clone()).changed())
            .count()
    }

    /// All records, tombstones included, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &LwwRecord)> {
        self.records.iter().map(|(k, e)| (k.as_str(), &e.record))
    }

    /// The visible (non-tombstone, unexpired) values at `now_millis`.
    pub fn iter_live(&self, now_millis: u64) -> impl Iterator<Item = (&str, &Value)> {
        self.records
            .iter()
            .filter_map(move |(k, e)| e.record.live_value(now_millis).map(|v| (k.as_str(), v)))
    }

    /// The Merkle tree over this map's records.
    pub fn merkle(&self) -> &MerkleTree {
        &self.tree
    }

    /// The digests of the requested leaf buckets, for a Merkle diff.
    pub fn leaf_digests(&self, buckets: &[MerklePath]) -> Vec<LeafDigest> {
        merkle::leaf_digests(
            &self.tree,
            buckets,
            self.records.iter().map(|(k, e)| (k.as_str(), e.hash)),
        )
    }

    /// Removes tombstones older than `frontier`, and remembers the frontier
    /// so that records older than it are not stored again for an absent key
    /// when a lagging peer or a late duplicate message carries them.
    /// Returns how many were removed.
    ///
    /// `frontier` must be a timestamp below which every replica has seen
    /// every write, and below which no replica will issue new ones (at most
    /// the smallest [`crate::Hlc::last`] of all replicas). A frontier that
    /// is too high makes this replica drop writes it never saw.
    pub fn prune_tombstones(&mut self, frontier: Timestamp) -> usize {
        let before = self.records.len();
        let tree = &mut self.tree;
        self.records.retain(|k, e| {
            let prune = e.record.is_tombstone() && e.record.timestamp < frontier;
            if prune {
                tree.update(k, Some(e.hash), None);
            }
            !prune
        });
        self.pruned_before = self.pruned_before.max(frontier);
        before - self.records.len()
    }

    /// The pruning frontier set by [`LwwMap::prune_tombstones`].
    pub fn pruned_before(&self) -> Timestamp {
        self.pruned_before
    }
}

impl PartialEq for LwwMap {
    /// Two maps are equal when they hold the same records (the pruning
    /// frontier is bookkeeping, not state).
    fn eq(&self, other: &Self) -> bool {
        self.records.len() == other.records.len()
            && self
                .records
                .iter()
                .all(|(k, e)| other.records.get(k).is_some_and(|o| o.record == e.record))
    }
}

/// The Merkle entry hash of one last-writer-wins record: covers the key, the
/// timestamp, the TTL and the value (or the tombstone). One definition, used
/// by every replica, and the tie-break of [`LwwMap::merge`] between two
/// records with the same timestamp.
pub fn entry_hash(key: &str, record: &LwwRecord) -> u64 {
    let mut h = Xxh3::new();
    write_entry(&mut h, key, record);
    h.digest()
}

/// Whether `incoming` beats `stored` (both with their entry hashes), two
/// records of one key with the same timestamp: the greater hash wins, and
/// on equal hashes the greater canonical bytes. The same record (the usual
/// case of equal hashes: a duplicate delivery) does not win.
fn wins_tie(key: &str, incoming: (&LwwRecord, u64), stored: (&LwwRecord, u64)) -> bool {
    match incoming.1.cmp(&stored.1) {
        Ordering::Greater => true,
        Ordering::Less => false,
        // Comparing the records first spares the buffers for duplicates.
        Ordering::Equal => {
            incoming.0 != stored.0 && entry_bytes(key, incoming.0) > entry_bytes(key, stored.0)
        }
    }
}

/// The bytes [`entry_hash`] hashes.
fn entry_bytes(key: &str, record: &LwwRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_entry(&mut out, key, record);
    out
}

/// Writes `"L" | key | timestamp | ttl | 0, or 1 + canonical value`.
fn write_entry<S: ByteSink + ?Sized>(out: &mut S, key: &str, record: &LwwRecord) {
    out.put(b"L");
    put_str(out, key);
    put_timestamp(out, &record.timestamp);
    put_ttl(out, record.ttl_ms);
    match &record.value {
        None => out.put(&[0]),
        Some(v) => {
            out.put(&[1]);
            v.write_canonical(out);
        }
    }
}

pub(crate) fn put_timestamp<S: ByteSink + ?Sized>(out: &mut S, t: &Timestamp) {
    out.put(&t.millis.to_le_bytes());
    out.put(&t.counter.to_le_bytes());
    out.put(&t.node.0.to_le_bytes());
}

pub(crate) fn put_ttl<S: ByteSink + ?Sized>(out: &mut S, ttl: Option<u64>) {
    match ttl {
        None => out.put(&[0]),
        Some(t) => {
            out.put(&[1]);
            out.put(&t.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests;
