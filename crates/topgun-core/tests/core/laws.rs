//! The CRDT laws as property tests: whole-map merge is commutative,
//! associative and idempotent, equals a brute-force specification, and its
//! Merkle tree depends only on the final contents. Pruning at a valid
//! frontier commutes with merging, and stale writes below the frontier are
//! no-ops afterwards. Different writes with colliding timestamps (LWW) or
//! tags (OR) still converge, on the greater entry or item hash.
//!
//! Writes are stamped like HLC readings (unique per node, millisecond and
//! counter) over a small key space and a few nodes, so that concurrent
//! writes to one key are common.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use topgun_core::lww::entry_hash;
use topgun_core::or::item_hash;
use topgun_core::{
    LwwMap, LwwRecord, NodeId, OrEntry, OrItem, OrMap, OrTombstone, Timestamp, Value,
};

use crate::support::Stamper;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];
/// The three maps the laws combine; a write goes to any subset of them.
const MAPS: usize = 3;
/// Small, so that many keys share a bucket.
const DEPTH: u8 = 1;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    }
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    v
}

// ---------------------------------------------------------------------------
// Last-writer-wins

/// One write to a last-writer-wins map, and the maps (bit set) it reached.
#[derive(Clone, Debug)]
struct LwwWrite {
    key: &'static str,
    record: LwwRecord,
    maps: u8,
}

fn lww_writes() -> impl Strategy<Value = Vec<LwwWrite>> {
    let raw = (0..KEYS.len(), 0u64..3, 0u64..6, 0u8..3, 0i64..3, 0u8..8);
    prop::collection::vec(raw, 0..24).prop_map(|raw| {
        let mut stamper = Stamper::default();
        raw.into_iter()
            .map(|(key, node, millis, kind, v, maps)| {
                let t = stamper.stamp(node, millis);
                let record = match kind {
                    0 => LwwRecord::put(Value::Int(v), t),
                    1 => LwwRecord::tombstone(t),
                    _ => LwwRecord::put_with_ttl(Value::Int(v), t, 10 * v.unsigned_abs()),
                };
                LwwWrite {
                    key: KEYS[key],
                    record,
                    maps,
                }
            })
            .collect()
    })
}

fn lww_map<'a>(writes: impl IntoIterator<Item = &'a LwwWrite>) -> LwwMap {
    let mut m = LwwMap::with_merkle_depth(DEPTH).unwrap();
    for w in writes {
        m.merge(w.key, w.record.clone());
    }
    m
}

fn lww_maps(writes: &[LwwWrite]) -> Vec<LwwMap> {
    (0..MAPS)
        .map(|i| lww_map(writes.iter().filter(|w| w.maps & (1 << i) != 0)))
        .collect()
}

fn lww_join(a: &LwwMap, b: &LwwMap) -> LwwMap {
    let mut m = a.clone();
    m.merge_map(b);
    m
}

fn lww_same(x: &LwwMap, y: &LwwMap, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(x, y, "{}: maps differ", what);
    prop_assert_eq!(x.merkle(), y.merkle(), "{}: Merkle trees differ", what);
    Ok(())
}

/// The specification: per key, the record with the greatest timestamp.
fn lww_spec<'a>(
    writes: impl IntoIterator<Item = &'a LwwWrite>,
) -> BTreeMap<&'a str, &'a LwwRecord> {
    let mut spec: BTreeMap<&str, &LwwRecord> = BTreeMap::new();
    for w in writes {
        let slot = spec.entry(w.key).or_insert(&w.record);
        if w.record.timestamp > slot.timestamp {
            *slot = &w.record;
        }
    }
    spec
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lww_merge_is_commutative_associative_idempotent(writes in lww_writes()) {
        let m = lww_maps(&writes);
        let (a, b, c) = (&m[0], &m[1], &m[2]);
        lww_same(&lww_join(a, b), &lww_join(b, a), "a+b = b+a")?;
        lww_same(
            &lww_join(&lww_join(a, b), c),
            &lww_join(a, &lww_join(b, c)),
            "(a+b)+c = a+(b+c)",
        )?;
        lww_same(&lww_join(a, a), a, "a+a = a")?;
        let mut again = lww_join(a, b);
        prop_assert_eq!(again.merge_map(b), 0, "merging b twice changes nothing");
    }

    #[test]
    fn lww_merge_matches_the_spec_and_counts_changes(writes in lww_writes()) {
        let m = lww_maps(&writes);
        let mut all = m[0].clone();
        for other in &m[1..] {
            let before = all.clone();
            let changed = all.merge_map(other);
            let differing = all.iter().filter(|(k, r)| before.get(k) != Some(*r)).count();
            prop_assert_eq!(changed, differing, "merge_map counts the keys it changed");
        }
        let spec = lww_spec(writes.iter().filter(|w| w.maps != 0));
        prop_assert_eq!(all.len(), spec.len());
        for (k, r) in &spec {
            prop_assert_eq!(all.get(k), Some(*r), "key {}", k);
        }
    }

    /// The tree of a merged map is the tree of its contents: the wrapping
    /// sum of the entry hashes at the root, and the same tree whatever
    /// order the writes or the final records arrive in.
    #[test]
    fn lww_root_depends_only_on_contents(writes in lww_writes(), seed in any::<u64>()) {
        let m = lww_maps(&writes);
        let merged = lww_join(&lww_join(&m[0], &m[1]), &m[2]);
        let sum = merged
            .iter()
            .fold(0u64, |acc, (k, r)| acc.wrapping_add(topgun_core::lww::entry_hash(k, r)));
        prop_assert_eq!(merged.merkle().root(), sum);

        let delivered: Vec<LwwWrite> = writes.iter().filter(|w| w.maps != 0).cloned().collect();
        lww_same(&lww_map(&shuffled(&delivered, seed)), &merged, "writes in another order")?;

        let mut contents: Vec<(String, LwwRecord)> =
            merged.iter().map(|(k, r)| (k.to_owned(), r.clone())).collect();
        contents.sort_by(|x, y| x.0.cmp(&y.0));
        let mut rebuilt = LwwMap::with_merkle_depth(DEPTH).unwrap();
        for (k, r) in shuffled(&contents, seed ^ 1) {
            rebuilt.merge(k, r);
        }
        lww_same(&rebuilt, &merged, "final records in another order")?;
    }

    /// Pruning at a frontier every map has seen all writes below (here:
    /// writes below it reached every map) commutes with merging, and a
    /// stale write below the frontier merged afterwards changes nothing.
    #[test]
    fn lww_pruning_commutes_with_merge(writes in lww_writes(), frontier_ms in 0u64..7) {
        let frontier = Timestamp::new(frontier_ms, 0, topgun_core::NodeId(0));
        let writes: Vec<LwwWrite> = writes
            .into_iter()
            .map(|w| LwwWrite { maps: if w.record.timestamp < frontier { 0b111 } else { w.maps }, ..w })
            .collect();
        let m = lww_maps(&writes);
        let prune = |map: &LwwMap| { let mut p = map.clone(); p.prune_tombstones(frontier); p };
        let (a, b) = (prune(&m[0]), prune(&m[1]));
        let pruned_join = prune(&lww_join(&m[0], &m[1]));
        lww_same(&lww_join(&a, &b), &pruned_join, "prune(a)+prune(b) = prune(a+b)")?;
        lww_same(&lww_join(&b, &a), &pruned_join, "prune(b)+prune(a) = prune(a+b)")?;
        for w in writes.iter().filter(|w| w.record.timestamp < frontier) {
            let mut late = a.clone();
            prop_assert!(!late.merge(w.key, w.record.clone()).changed(), "stale {:?}", w);
        }
    }
}

// ---------------------------------------------------------------------------
// Observed-remove

#[derive(Clone, Debug)]
enum OrOp {
    Add(OrItem),
    /// Remove these tags at this time.
    Remove(Vec<Timestamp>, Timestamp),
}

/// One operation on an observed-remove key, and the maps (bit set) it
/// reached.
#[derive(Clone, Debug)]
struct OrWrite {
    key: &'static str,
    op: OrOp,
    maps: u8,
}

impl OrWrite {
    /// The operation's own timestamp: the tag of an add, the removal time
    /// of a removal.
    fn time(&self) -> Timestamp {
        match &self.op {
            OrOp::Add(item) => item.tag,
            OrOp::Remove(_, at) => *at,
        }
    }
}

fn or_writes() -> impl Strategy<Value = Vec<OrWrite>> {
    // (key, node, millis, value, ttl?, removal targets, maps); a write with
    // targets is a removal of earlier adds to the same key.
    let raw = (
        0..KEYS.len(),
        0u64..3,
        0u64..6,
        0i64..3,
        any::<bool>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        0u8..8,
    );
    prop::collection::vec(raw, 0..24).prop_map(|raw| {
        let mut stamper = Stamper::default();
        let mut adds: Vec<(&'static str, Timestamp)> = Vec::new();
        let mut out = Vec::new();
        for (key, node, millis, v, ttl, targets, maps) in raw {
            let key = KEYS[key];
            let candidates: Vec<Timestamp> = adds
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, t)| *t)
                .collect();
            let op = if targets.is_empty() || candidates.is_empty() {
                let tag = stamper.stamp(node, millis);
                adds.push((key, tag));
                OrOp::Add(OrItem {
                    value: Value::Int(v),
                    tag,
                    ttl_ms: ttl.then_some(50),
                })
            } else {
                let tags: Vec<Timestamp> = targets.iter().map(|i| *i.get(&candidates)).collect();
                // A removal follows the adds it observed.
                let after = tags.iter().map(|t| t.millis).max().unwrap_or(0) + 1;
                OrOp::Remove(tags, stamper.stamp(node, after.max(millis)))
            };
            out.push(OrWrite { key, op, maps });
        }
        out
    })
}

fn apply(m: &mut OrMap, w: &OrWrite) {
    match &w.op {
        OrOp::Add(item) => {
            m.add(w.key, item.clone());
        }
        OrOp::Remove(tags, at) => {
            m.remove(w.key, tags, *at);
        }
    }
}

fn or_map<'a>(writes: impl IntoIterator<Item = &'a OrWrite>) -> OrMap {
    let mut m = OrMap::with_merkle_depth(DEPTH).unwrap();
    for w in writes {
        apply(&mut m, w);
    }
    m
}

fn or_maps(writes: &[OrWrite]) -> Vec<OrMap> {
    (0..MAPS)
        .map(|i| or_map(writes.iter().filter(|w| w.maps & (1 << i) != 0)))
        .collect()
}

fn or_join(a: &OrMap, b: &OrMap) -> OrMap {
    let mut m = a.clone();
    m.merge_map(b);
    m
}

fn or_same(x: &OrMap, y: &OrMap, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(x, y, "{}: maps differ", what);
    prop_assert_eq!(x.merkle(), y.merkle(), "{}: Merkle trees differ", what);
    Ok(())
}

/// The specification, per key: every removed tag with its latest removal
/// time, and the added items whose tags were never removed.
fn or_spec<'a>(
    writes: impl IntoIterator<Item = &'a OrWrite> + Clone,
) -> BTreeMap<&'a str, (Vec<&'a OrItem>, Vec<OrTombstone>)> {
    let mut removed: BTreeMap<(&str, Timestamp), Timestamp> = BTreeMap::new();
    for w in writes.clone() {
        if let OrOp::Remove(tags, at) = &w.op {
            for tag in tags {
                let slot = removed.entry((w.key, *tag)).or_insert(*at);
                *slot = (*slot).max(*at);
            }
        }
    }
    let mut spec: BTreeMap<&str, (Vec<&OrItem>, Vec<OrTombstone>)> = BTreeMap::new();
    for ((key, tag), removed_at) in &removed {
        spec.entry(*key).or_default().1.push(OrTombstone {
            tag: *tag,
            removed_at: *removed_at,
        });
    }
    for w in writes {
        if let OrOp::Add(item) = &w.op {
            if !removed.contains_key(&(w.key, item.tag)) {
                spec.entry(w.key).or_default().0.push(item);
            }
        }
    }
    for (items, _) in spec.values_mut() {
        items.sort_by_key(|i| i.tag);
        items.dedup_by_key(|i| i.tag);
    }
    spec
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn or_merge_is_commutative_associative_idempotent(writes in or_writes()) {
        let m = or_maps(&writes);
        let (a, b, c) = (&m[0], &m[1], &m[2]);
        or_same(&or_join(a, b), &or_join(b, a), "a+b = b+a")?;
        or_same(
            &or_join(&or_join(a, b), c),
            &or_join(a, &or_join(b, c)),
            "(a+b)+c = a+(b+c)",
        )?;
        or_same(&or_join(a, a), a, "a+a = a")?;
        let mut again = or_join(a, b);
        prop_assert_eq!(again.merge_map(b), 0, "merging b twice changes nothing");
    }

    #[test]
    fn or_merge_matches_the_spec(writes in or_writes()) {
        let m = or_maps(&writes);
        let all = or_join(&or_join(&m[0], &m[1]), &m[2]);
        let spec = or_spec(writes.iter().filter(|w| w.maps != 0));
        prop_assert_eq!(all.len(), spec.len());
        for (k, (items, tombstones)) in &spec {
            let entry = all.get(k);
            prop_assert!(entry.is_some(), "key {} missing", k);
            let entry = entry.unwrap();
            prop_assert_eq!(entry.items().collect::<Vec<_>>(), items.clone(), "items of {}", k);
            prop_assert_eq!(&entry.tombstones().collect::<Vec<_>>(), tombstones, "tombstones of {}", k);
        }
    }

    /// Any interleaving of the operations gives the same map (removals
    /// arriving before their adds included), and the tree depends only on
    /// the final contents.
    #[test]
    fn or_root_depends_only_on_contents(writes in or_writes(), seed in any::<u64>()) {
        let m = or_maps(&writes);
        let merged = or_join(&or_join(&m[0], &m[1]), &m[2]);
        let sum = merged
            .iter()
            .fold(0u64, |acc, (k, e)| acc.wrapping_add(topgun_core::or::entry_hash(k, e)));
        prop_assert_eq!(merged.merkle().root(), sum);

        let delivered: Vec<OrWrite> = writes.iter().filter(|w| w.maps != 0).cloned().collect();
        or_same(&or_map(&shuffled(&delivered, seed)), &merged, "ops in another order")?;

        let mut contents: Vec<(String, OrEntry)> =
            merged.iter().map(|(k, e)| (k.to_owned(), e.clone())).collect();
        contents.sort_by(|x, y| x.0.cmp(&y.0));
        let mut rebuilt = OrMap::with_merkle_depth(DEPTH).unwrap();
        for (k, e) in shuffled(&contents, seed ^ 1) {
            // Through the parts, as a peer's entry arrives off the wire.
            let parts = OrEntry::from_parts(e.items().cloned(), e.tombstones());
            rebuilt.merge_entry(&k, &parts);
        }
        or_same(&rebuilt, &merged, "final entries in another order")?;
    }

    /// As for the LWW map: pruning at a valid frontier commutes with
    /// merging, and stale operations below it change nothing afterwards.
    /// Validity is about each operation's own time: an old item removed
    /// after the frontier is a write the frontier does not cover.
    #[test]
    fn or_pruning_commutes_with_merge(writes in or_writes(), frontier_ms in 0u64..8) {
        let frontier = Timestamp::new(frontier_ms, 0, topgun_core::NodeId(0));
        let writes: Vec<OrWrite> = writes
            .into_iter()
            .map(|w| OrWrite { maps: if w.time() < frontier { 0b111 } else { w.maps }, ..w })
            .collect();
        let m = or_maps(&writes);
        let prune = |map: &OrMap| { let mut p = map.clone(); p.prune_tombstones(frontier); p };
        let (a, b) = (prune(&m[0]), prune(&m[1]));
        let pruned_join = prune(&or_join(&m[0], &m[1]));
        or_same(&or_join(&a, &b), &pruned_join, "prune(a)+prune(b) = prune(a+b)")?;
        or_same(&or_join(&b, &a), &pruned_join, "prune(b)+prune(a) = prune(a+b)")?;
        for w in writes.iter().filter(|w| w.time() < frontier) {
            let mut late = a.clone();
            apply(&mut late, w);
            or_same(&late, &a, &format!("stale {w:?}"))?;
        }
    }
}

// ---------------------------------------------------------------------------
// Colliding timestamps

/// Timestamps drawn from a set of four, so that different writes share one
/// (what a buggy or spoofed node id makes; the HLC never does).
fn colliding_stamp() -> impl Strategy<Value = Timestamp> {
    (0u64..2, 0u64..2).prop_map(|(millis, node)| Timestamp::new(millis, 0, NodeId(node)))
}

fn lww_colliding_writes() -> impl Strategy<Value = Vec<LwwWrite>> {
    let raw = (0..2usize, colliding_stamp(), 0u8..3, 0i64..3, 0u8..8);
    prop::collection::vec(raw, 0..16).prop_map(|raw| {
        raw.into_iter()
            .map(|(key, t, kind, v, maps)| LwwWrite {
                key: KEYS[key],
                record: match kind {
                    0 => LwwRecord::put(Value::Int(v), t),
                    1 => LwwRecord::tombstone(t),
                    _ => LwwRecord::put_with_ttl(Value::Int(v), t, 10),
                },
                maps,
            })
            .collect()
    })
}

fn or_colliding_writes() -> impl Strategy<Value = Vec<OrWrite>> {
    // (key, tag, value, ttl?, removal?, removal node, maps). Removals come
    // after every add (millis 5), so their times are never clamped.
    let raw = (
        0..2usize,
        colliding_stamp(),
        0i64..3,
        any::<bool>(),
        prop::bool::weighted(0.2),
        0u64..2,
        0u8..8,
    );
    prop::collection::vec(raw, 0..16).prop_map(|raw| {
        raw.into_iter()
            .map(|(key, tag, v, ttl, remove, node, maps)| OrWrite {
                key: KEYS[key],
                op: if remove {
                    OrOp::Remove(vec![tag], Timestamp::new(5, 0, NodeId(node)))
                } else {
                    OrOp::Add(OrItem {
                        value: Value::Int(v),
                        tag,
                        ttl_ms: ttl.then_some(50),
                    })
                },
                maps,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Different records with one timestamp: the merge laws still hold,
    /// every delivery order gives the same map, and per key the winner is
    /// the record with the greatest (timestamp, entry hash).
    #[test]
    fn lww_colliding_timestamps_converge(writes in lww_colliding_writes(), seed in any::<u64>()) {
        let m = lww_maps(&writes);
        let (a, b, c) = (&m[0], &m[1], &m[2]);
        lww_same(&lww_join(a, b), &lww_join(b, a), "a+b = b+a")?;
        lww_same(
            &lww_join(&lww_join(a, b), c),
            &lww_join(a, &lww_join(b, c)),
            "(a+b)+c = a+(b+c)",
        )?;
        lww_same(&lww_join(a, a), a, "a+a = a")?;
        let all = lww_join(&lww_join(a, b), c);

        let delivered: Vec<LwwWrite> = writes.iter().filter(|w| w.maps != 0).cloned().collect();
        lww_same(&lww_map(&shuffled(&delivered, seed)), &all, "writes in another order")?;
        let mut reversed = delivered.clone();
        reversed.reverse();
        lww_same(&lww_map(&reversed), &all, "writes in reverse order")?;

        let mut spec: BTreeMap<&str, &LwwRecord> = BTreeMap::new();
        for w in &delivered {
            let rank = |r: &LwwRecord| (r.timestamp, entry_hash(w.key, r));
            let slot = spec.entry(w.key).or_insert(&w.record);
            if rank(&w.record) > rank(slot) {
                *slot = &w.record;
            }
        }
        prop_assert_eq!(all.len(), spec.len());
        for (k, r) in &spec {
            prop_assert_eq!(all.get(k), Some(*r), "key {}", k);
        }
    }

    /// Different items with one tag: the laws hold, every delivery order
    /// gives the same map, and per tag the survivor is the item with the
    /// greatest item hash, unless a removal of the tag removed it.
    #[test]
    fn or_colliding_tags_converge(writes in or_colliding_writes(), seed in any::<u64>()) {
        let m = or_maps(&writes);
        let (a, b, c) = (&m[0], &m[1], &m[2]);
        or_same(&or_join(a, b), &or_join(b, a), "a+b = b+a")?;
        or_same(
            &or_join(&or_join(a, b), c),
            &or_join(a, &or_join(b, c)),
            "(a+b)+c = a+(b+c)",
        )?;
        or_same(&or_join(a, a), a, "a+a = a")?;
        let all = or_join(&or_join(a, b), c);

        let delivered: Vec<OrWrite> = writes.iter().filter(|w| w.maps != 0).cloned().collect();
        or_same(&or_map(&shuffled(&delivered, seed)), &all, "ops in another order")?;
        let mut reversed = delivered.clone();
        reversed.reverse();
        or_same(&or_map(&reversed), &all, "ops in reverse order")?;

        let mut removed: BTreeMap<(&str, Timestamp), Timestamp> = BTreeMap::new();
        let mut items: BTreeMap<(&str, Timestamp), &OrItem> = BTreeMap::new();
        for w in &delivered {
            match &w.op {
                OrOp::Remove(tags, at) => {
                    for tag in tags {
                        let slot = removed.entry((w.key, *tag)).or_insert(*at);
                        *slot = (*slot).max(*at);
                    }
                }
                OrOp::Add(item) => {
                    let slot = items.entry((w.key, item.tag)).or_insert(item);
                    if item_hash(item) > item_hash(slot) {
                        *slot = item;
                    }
                }
            }
        }
        for key in KEYS {
            let want_items: Vec<&OrItem> = items
                .iter()
                .filter(|((k, tag), _)| *k == key && !removed.contains_key(&(key, *tag)))
                .map(|(_, i)| *i)
                .collect();
            let want_tombstones: Vec<OrTombstone> = removed
                .iter()
                .filter(|((k, _), _)| *k == key)
                .map(|((_, tag), at)| OrTombstone { tag: *tag, removed_at: *at })
                .collect();
            let (got_items, got_tombstones) = all.get(key).map_or_else(Default::default, |e| {
                (e.items().collect::<Vec<_>>(), e.tombstones().collect::<Vec<_>>())
            });
            prop_assert_eq!(got_items, want_items, "items of {}", key);
            prop_assert_eq!(got_tombstones, want_tombstones, "tombstones of {}", key);
        }
    }
}
