//! The observed-remove map: many values per key, add wins over a concurrent
//! remove.

use std::cmp::Ordering;
use std::collections::HashMap;

use xxhash_rust::xxh3::Xxh3;

use crate::hlc::Timestamp;
use crate::lww::{put_timestamp, put_ttl};
use crate::merkle::{self, LeafDigest, MerkleError, MerklePath, MerkleTree};
use crate::record::{OrItem, OrTombstone};
use crate::value::{ByteSink, Value, put_str};

/// Everything one replica knows about one key of an [`OrMap`]: the items it
/// holds and the tags it has seen removed, with when they were removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrEntry {
    /// Sorted by tag, tags unique. Entries are small (a few items), so a
    /// sorted vector beats a tree on allocation and cache.
    items: Vec<OrItem>,
    /// Removed tag -> the latest removal's timestamp.
    tombstones: Vec<(Timestamp, Timestamp)>,
}

impl OrEntry {
    /// Rebuilds an entry from its parts (as received from a peer), merging
    /// them as [`OrMap::merge_entry`] would: items whose tag is among the
    /// tombstones are dropped, a tag listed twice among the items keeps the
    /// winning item (see [`item_hash`]), and among the tombstones its
    /// latest removal time.
    pub fn from_parts(
        items: impl IntoIterator<Item = OrItem>,
        tombstones: impl IntoIterator<Item = OrTombstone>,
    ) -> Self {
        let mut entry = OrEntry::default();
        for t in tombstones {
            entry.remove(t.tag, t.removed_at, Timestamp::ZERO);
        }
        for item in items {
            entry.add(item, Timestamp::ZERO);
        }
        entry
    }

    /// The items, ordered by tag.
    pub fn items(&self) -> impl ExactSizeIterator<Item = &OrItem> {
        self.items.iter()
    }

    /// The tombstones, ordered by tag.
    pub fn tombstones(&self) -> impl ExactSizeIterator<Item = OrTombstone> + '_ {
        self.tombstones.iter().map(|(tag, removed_at)| OrTombstone {
            tag: *tag,
            removed_at: *removed_at,
        })
    }

    /// The values visible at physical time `now_millis`, ordered by tag.
    pub fn live_values(&self, now_millis: u64) -> impl Iterator<Item = &Value> {
        self.items
            .iter()
            .filter(move |i| i.is_live(now_millis))
            .map(|i| &i.value)
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.tombstones.is_empty()
    }

    /// Adds an item unless its tag is removed, or it is older than
    /// `frontier` (then every replica already saw it, so its absence here
    /// means it was removed). An item whose tag is present replaces the
    /// present one only when it wins the tie-break ([`item_wins`]). Returns
    /// whether the entry changed.
    fn add(&mut self, item: OrItem, frontier: Timestamp) -> bool {
        if self.tombstone_pos(item.tag).is_ok() || item.tag < frontier {
            return false;
        }
        match self.item_pos(item.tag) {
            Err(at) => {
                self.items.insert(at, item);
                true
            }
            Ok(at) => {
                let wins = item_wins(&item, &self.items[at]);
                if wins {
                    self.items[at] = item;
                }
                wins
            }
        }
    }

    /// Removes the item tagged `tag` (present or not yet seen) and records
    /// the removal, keeping the latest removal time per tag, unless the
    /// removal predates `frontier` (then every replica has already seen it).
    /// Returns whether the entry changed, and the removed item.
    fn remove(
        &mut self,
        tag: Timestamp,
        removed_at: Timestamp,
        frontier: Timestamp,
    ) -> (bool, Option<OrItem>) {
        // A removal follows the add it observed. Clamping keeps a bogus
        // removal time from getting the tombstone pruned while the add it
        // blocks is still newer than the frontier.
        let removed_at = removed_at.max(tag);
        let removed = self.item_pos(tag).ok().map(|at| self.items.remove(at));
        let recorded = removed_at >= frontier
            && match self.tombstone_pos(tag) {
                Err(at) => {
                    self.tombstones.insert(at, (tag, removed_at));
                    true
                }
                Ok(at) if self.tombstones[at].1 < removed_at => {
                    self.tombstones[at].1 = removed_at;
                    true
                }
                Ok(_) => false,
            };
        (recorded || removed.is_some(), removed)
    }

    fn item_pos(&self, tag: Timestamp) -> Result<usize, usize> {
        self.items.binary_search_by(|i| i.tag.cmp(&tag))
    }

    fn tombstone_pos(&self, tag: Timestamp) -> Result<usize, usize> {
        self.tombstones.binary_search_by(|(t, _)| t.cmp(&tag))
    }

    fn hash(&self, key: &str) -> u64 {
        let mut h = Xxh3::new();
        h.update(b"O");
        put_str(&mut h, key);
        h.update(&(self.items.len() as u64).to_le_bytes());
        for item in &self.items {
            write_item(&mut h, item);
        }
        h.update(&(self.tombstones.len() as u64).to_le_bytes());
        for (tag, removed_at) in &self.tombstones {
            put_timestamp(&mut h, tag);
            put_timestamp(&mut h, removed_at);
        }
        h.digest()
    }
}

/// The hash of one observed-remove item: xxh3-64 over its tag, TTL and
/// canonical value, the same bytes [`entry_hash`] covers for the item
/// (`millis u64 LE | counter u32 LE | node u64 LE | ttl (0, or 1 + u64 LE)
/// | canonical value`).
///
/// It breaks the tie between two different items with the same tag, which
/// should not exist (a tag names one add of one node) but a buggy or
/// spoofed node id can make: the item with the greater hash wins, so every
/// replica keeps the same one whatever order they arrive in.
pub fn item_hash(item: &OrItem) -> u64 {
    let mut h = Xxh3::new();
    write_item(&mut h, item);
    h.digest()
}

/// Whether `incoming` replaces `stored`, an item with the same tag: never
/// when they are equal (a duplicate delivery); otherwise the greater
/// [`item_hash`] wins, and on equal hashes (constructible, as xxh3 is not
/// collision resistant) the greater hashed bytes. The winner is the maximum
/// of a total order over items, which keeps merging commutative,
/// associative and idempotent.
fn item_wins(incoming: &OrItem, stored: &OrItem) -> bool {
    incoming != stored && beats((incoming, item_hash(incoming)), (stored, item_hash(stored)))
}

/// The order of [`item_wins`] over items with their hashes.
fn beats(a: (&OrItem, u64), b: (&OrItem, u64)) -> bool {
    match a.1.cmp(&b.1) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => item_bytes(a.0) > item_bytes(b.0),
    }
}

fn item_bytes(item: &OrItem) -> Vec<u8> {
    let mut out = Vec::new();
    write_item(&mut out, item);
    out
}

fn write_item<S: ByteSink + ?Sized>(out: &mut S, item: &OrItem) {
    put_timestamp(out, &item.tag);
    put_ttl(out, item.ttl_ms);
    item.value.write_canonical(out);
}

/// The Merkle entry hash of one observed-remove key: covers the key, every
/// item (tag, TTL, value) and every tombstone (tag, removal time), in tag
/// order. One definition, used by every replica.
pub fn entry_hash(key: &str, entry: &OrEntry) -> u64 {
    entry.hash(key)
}

/// A map from string keys to sets of values. Each added value carries a
/// unique tag (the timestamp of its add); a remove deletes only the tags its
/// issuer observed, so an add concurrent with a remove survives it. Two
/// different items under one tag (against the clock's guarantee) converge
/// to the one with the greater [`item_hash`].
#[derive(Clone, Debug, Default)]
pub struct OrMap {
    entries: HashMap<String, (OrEntry, u64)>,
    tree: MerkleTree,
    pruned_before: Timestamp,
}

impl OrMap {
    /// An empty map with the default Merkle depth.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map whose Merkle tree has `depth` levels.
    pub fn with_merkle_depth(depth: u8) -> Result<Self, MerkleError> {
        Ok(OrMap {
            entries: HashMap::new(),
            tree: MerkleTree::new(depth)?,
            pruned_before: Timestamp::ZERO,
        })
    }

    /// Number of keys with items or tombstones.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&OrEntry> {
        self.entries.get(key).map(|(e, _)| e)
    }

    /// Adds `item` under `key`. Returns whether the map changed.
    pub fn add(&mut self, key: impl Into<String> + AsRef<str>, item: OrItem) -> bool {
        let frontier = self.pruned_before;
        self.update_entry(key, |e| e.add(item, frontier))
    }

    /// Removes the items with the given tags from `key`, recording the tags
    /// as tombstones (even for items not seen yet, which may still arrive).
    /// `removed_at` is the removal's own timestamp, issued by the remover's
    /// clock: tombstones are pruned by it, since an item may be removed long
    /// after it was added. Returns the items that were present.
    pub fn remove(&mut self, key: &str, tags: &[Timestamp], removed_at: Timestamp) -> Vec<OrItem> {
        let frontier = self.pruned_before;
        let mut removed = Vec::new();
        self.update_entry(key, |e| {
            let mut changed = false;
            for tag in tags {
                let (c, item) = e.remove(*tag, removed_at, frontier);
                changed |= c;
                removed.extend(item);
            }
            changed
        });
        removed
    }

    /// Merges a peer's entry for `key`: the union of items minus the union of
    /// tombstones, keeping the latest removal time per tag (and, for two
    /// different items with one tag, the one [`item_hash`] picks). Returns
    /// whether the map changed.
    pub fn merge_entry(&mut self, key: &str, remote: &OrEntry) -> bool {
        let frontier = self.pruned_before;
        self.update_entry(key, |e| {
            let mut changed = false;
            for (tag, removed_at) in &remote.tombstones {
                changed |= e.remove(*tag, *removed_at, frontier).0;
            }
            for item in &remote.items {
                changed |= e.add(item.clone(), frontier);
            }
            changed
        })
    }

    /// Merges every entry of `other`; returns how many keys changed.
    pub fn merge_map(&mut self, other: &OrMap) -> usize {
        other.iter().filter(|(k, e)| self.merge_entry(k, e)).count()
    }

    /// Applies `f` to the entry for `key` (a new, empty one if absent) and
    /// keeps the Merkle tree in step; `f` returns whether it changed the
    /// entry, and so does this. Entries left empty are dropped, so that an
    /// absent key and an empty entry are one state with one hash.
    /// Applies `f` to the entry of `key` (created empty if absent), keeps
    /// the Merkle tree in step, and drops entries left empty. The key is
    /// only turned into an owned `String` when a new entry is stored.
    fn update_entry(
        &mut self,
        key: impl Into<String> + AsRef<str>,
        f: impl FnOnce(&mut OrEntry) -> bool,
    ) -> bool {
        let k = key.as_ref();
        if let Some((entry, hash)) = self.entries.get_mut(k) {
            if !f(entry) {
                return false;
            }
            let old = *hash;
            if entry.is_empty() {
                self.entries.remove(k);
                self.tree.update(k, Some(old), None);
            } else {
                *hash = entry.hash(k);
                self.tree.update(k, Some(old), Some(*hash));
            }
            return true;
        }
        let mut entry = OrEntry::default();
        let changed = f(&mut entry);
        if !entry.is_empty() {
            let hash = entry.hash(k);
            self.tree.update(k, None, Some(hash));
            self.entries.insert(key.into(), (entry, hash));
        }
        changed
    }

    /// All entries in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OrEntry)> {
        self.entries.iter().map(|(k, (e, _))| (k.as_str(), e))
    }

    /// The Merkle tree over this map's entries.
    pub fn merkle(&self) -> &MerkleTree {
        &self.tree
    }

    /// The digests of the requested leaf buckets, for a Merkle diff.
    pub fn leaf_digests(&self, buckets: &[MerklePath]) -> Vec<LeafDigest> {
        merkle::leaf_digests(
            &self.tree,
            buckets,
            self.entries.iter().map(|(k, (_, h))| (k.as_str(), *h)),
        )
    }

    /// Drops the tombstones of removals older than `frontier` and from then
    /// on ignores items added, and removals made, before it. Returns how
    /// many tombstones were dropped.
    ///
    /// `frontier` must be a timestamp below which every replica has seen
    /// every write (adds and removals), and below which no replica will
    /// issue new ones (at most the smallest [`crate::Hlc::last`] of all
    /// replicas). Tombstones go by their removal time, not their tag: a
    /// removal every replica has seen has removed the item everywhere, while
    /// an old item removed recently may still be held by a replica that
    /// must learn of the removal through sync. A frontier that is too high
    /// makes this replica drop writes it never saw.
    pub fn prune_tombstones(&mut self, frontier: Timestamp) -> usize {
        self.pruned_before = self.pruned_before.max(frontier);
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, (e, _))| e.tombstones.iter().any(|(_, at)| *at < frontier))
            .map(|(k, _)| k.clone())
            .collect();
        let mut dropped = 0;
        for key in keys {
            self.update_entry(&key, |e| {
                let before = e.tombstones.len();
                e.tombstones.retain(|(_, at)| *at >= frontier);
                dropped += before - e.tombstones.len();
                true
            });
        }
        dropped
    }
}

impl PartialEq for OrMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .all(|(k, (e, _))| other.get(k) == Some(e))
    }
}

#[cfg(test)]
mod tests;
