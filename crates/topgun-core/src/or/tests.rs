//! Unit tests for the observed-remove map.

use super::*;
use crate::hlc::NodeId;
use crate::merkle::MAX_DEPTH;

fn ts(millis: u64, counter: u32, node: u64) -> Timestamp {
    Timestamp::new(millis, counter, NodeId(node))
}

fn item(v: &str, tag: Timestamp) -> OrItem {
    OrItem {
        value: Value::from(v),
        tag,
        ttl_ms: None,
    }
}

fn tomb(tag: Timestamp, removed_at: Timestamp) -> OrTombstone {
    OrTombstone { tag, removed_at }
}

fn values(map: &OrMap, key: &str) -> Vec<String> {
    map.get(key)
        .map(|e| {
            e.live_values(0)
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The item tags and the tombstones of an entry.
fn parts(entry: Option<&OrEntry>) -> (Vec<Timestamp>, Vec<OrTombstone>) {
    entry.map_or_else(Default::default, |e| {
        (e.items().map(|i| i.tag).collect(), e.tombstones().collect())
    })
}

/// Checks that the incrementally maintained tree equals one rebuilt from
/// the entries, and that no empty entry is kept.
fn assert_tree_consistent(map: &OrMap) {
    let mut tree = MerkleTree::new(map.merkle().depth()).unwrap();
    for (k, e) in map.iter() {
        assert!(
            e.items().len() + e.tombstones().len() > 0,
            "empty entry kept for {k}"
        );
        tree.update(k, None, Some(entry_hash(k, e)));
    }
    assert_eq!(map.merkle(), &tree, "tree differs from the rebuilt one");
}

/// One step of a scenario: an operation on a map and its expected result.
enum Step<'a> {
    /// Add an item; whether the map changed.
    Add(&'a str, OrItem, bool),
    /// Remove tags at a time; the tags of the items that were present.
    Remove(&'a str, &'a [Timestamp], Timestamp, &'a [Timestamp]),
    /// Prune at a frontier; how many tombstones were dropped.
    Prune(Timestamp, usize),
}

/// Runs `steps` on `map`, checking each result, that the Merkle root moves
/// exactly when the map changes, and the tree after every step.
fn check(map: &mut OrMap, steps: &[Step<'_>]) {
    for (i, step) in steps.iter().enumerate() {
        let before = map.clone();
        let root_before = map.merkle().root();
        match step {
            Step::Add(key, item, expected) => {
                assert_eq!(map.add(*key, item.clone()), *expected, "step {i}: add");
            }
            Step::Remove(key, remove, at, expected) => {
                let removed: Vec<Timestamp> = map
                    .remove(key, remove, *at)
                    .into_iter()
                    .map(|i| i.tag)
                    .collect();
                assert_eq!(&removed, expected, "step {i}: removed items");
            }
            Step::Prune(frontier, expected) => {
                assert_eq!(
                    map.prune_tombstones(*frontier),
                    *expected,
                    "step {i}: prune"
                );
            }
        }
        assert_eq!(
            map.merkle().root() != root_before,
            *map != before,
            "step {i}: root must change exactly when the map does"
        );
        assert_tree_consistent(map);
    }
}

/// Syncs two replicas both ways, entry by entry, as anti-entropy would.
fn sync(a: &mut OrMap, b: &mut OrMap) {
    let from_a = a.clone();
    a.merge_map(b);
    b.merge_map(&from_a);
}

#[test]
fn add_and_duplicate_add() {
    let mut m = OrMap::new();
    let (t1, t2) = (ts(1, 0, 1), ts(2, 0, 1));
    check(
        &mut m,
        &[
            Step::Add("k", item("milk", t1), true),
            Step::Add("k", item("milk", t1), false),
            // The same value under a new tag is a second item.
            Step::Add("k", item("milk", t2), true),
            Step::Add("j", item("eggs", t1), true),
        ],
    );
    assert_eq!(values(&m, "k"), ["milk", "milk"]);
    assert_eq!(values(&m, "j"), ["eggs"]);
    assert_eq!(m.len(), 2);
}

#[test]
fn two_items_with_one_tag_converge_on_the_greater_item_hash() {
    // A tag should name one add, but a spoofed node id can make different
    // items with one tag. Every replica keeps the one with the greatest
    // item hash, whatever order they arrive in; equal items change nothing.
    let t = ts(1, 0, 1);
    let mut items = [
        item("a", t),
        item("b", t),
        OrItem {
            ttl_ms: Some(50),
            ..item("a", t)
        },
    ];
    items.sort_by_key(item_hash);
    let (low, mid, high) = (items[0].clone(), items[1].clone(), items[2].clone());

    let mut up = OrMap::new();
    check(
        &mut up,
        &[
            Step::Add("k", low.clone(), true),
            Step::Add("k", mid.clone(), true),
            Step::Add("k", high.clone(), true),
            Step::Add("k", high.clone(), false),
            Step::Add("k", low.clone(), false),
        ],
    );
    let mut down = OrMap::new();
    check(
        &mut down,
        &[
            Step::Add("k", high.clone(), true),
            Step::Add("k", mid.clone(), false),
            Step::Add("k", low.clone(), false),
        ],
    );
    assert_eq!(up, down);
    assert_eq!(up.get("k").unwrap().items().collect::<Vec<_>>(), [&high]);

    // Through merges and the wire parts, in both directions.
    let (mut a, mut b) = (OrMap::new(), OrMap::new());
    a.add("k", low.clone());
    b.add("k", high.clone());
    sync(&mut a, &mut b);
    assert_eq!(a, b);
    assert_eq!(a, up);
    let rebuilt = OrEntry::from_parts([high.clone(), low.clone(), mid], []);
    assert_eq!(rebuilt.items().collect::<Vec<_>>(), [&high]);

    // A removal of the tag removes whichever item holds it.
    let at = ts(2, 0, 1);
    assert_eq!(a.remove("k", &[t], at), [high]);
    assert!(!a.add("k", low));
    assert_eq!(parts(a.get("k")), (vec![], vec![tomb(t, at)]));
}

#[test]
fn equal_item_hashes_fall_back_to_the_hashed_bytes() {
    // No xxh3 collision at hand: feed equal hashes to the order directly.
    let t = ts(1, 0, 1);
    let (a, b) = (item("a", t), item("b", t));
    let a_wins = beats((&a, 7), (&b, 7));
    assert_ne!(a_wins, beats((&b, 7), (&a, 7)));
    assert_eq!(a_wins, item_bytes(&a) > item_bytes(&b));
    assert!(beats((&a, 8), (&b, 7)));
    assert!(!beats((&a, 6), (&b, 7)));
    assert_eq!(xxhash_rust::xxh3::xxh3_64(&item_bytes(&a)), item_hash(&a));
    assert!(!item_wins(&a, &a.clone()));
}

#[test]
fn remove_deletes_only_observed_tags() {
    let mut m = OrMap::new();
    let (t1, t2, t3) = (ts(1, 0, 1), ts(2, 0, 1), ts(3, 0, 2));
    let at = ts(9, 0, 1);
    check(
        &mut m,
        &[
            Step::Add("k", item("a", t1), true),
            Step::Add("k", item("b", t2), true),
            Step::Add("j", item("c", t3), true),
            Step::Remove("k", &[t1], at, &[t1]),
            // Removing it again at the same time changes nothing.
            Step::Remove("k", &[t1], at, &[]),
            // A tag of another key is not removed from this one.
            Step::Remove("k", &[t3], at, &[]),
        ],
    );
    assert_eq!(values(&m, "k"), ["b"]);
    assert_eq!(values(&m, "j"), ["c"]);
    assert_eq!(
        parts(m.get("k")),
        (vec![t2], vec![tomb(t1, at), tomb(t3, at)])
    );
    // Once removed, the same tag can not come back.
    assert!(!m.add("k", item("a", t1)));
}

#[test]
fn a_tombstone_keeps_the_latest_removal_time() {
    let mut m = OrMap::new();
    let t = ts(1, 0, 1);
    let (early, late) = (ts(5, 0, 2), ts(7, 0, 3));
    check(
        &mut m,
        &[
            Step::Add("k", item("a", t), true),
            Step::Remove("k", &[t], early, &[t]),
            // A later removal of the same item (from another replica) moves
            // the removal time forward; an earlier one does not move it back.
            Step::Remove("k", &[t], late, &[]),
            Step::Remove("k", &[t], early, &[]),
        ],
    );
    assert_eq!(parts(m.get("k")), (vec![], vec![tomb(t, late)]));
    // Merging in either order gives the latest time.
    let mut a = OrMap::new();
    a.remove("k", &[t], early);
    let mut b = OrMap::new();
    b.remove("k", &[t], late);
    sync(&mut a, &mut b);
    assert_eq!(a, b);
    assert_eq!(parts(a.get("k")), (vec![], vec![tomb(t, late)]));
}

#[test]
fn a_removal_time_before_the_tag_is_clamped_to_the_tag() {
    let mut m = OrMap::new();
    let t = ts(10, 0, 1);
    m.remove("k", &[t], ts(3, 0, 2));
    assert_eq!(parts(m.get("k")), (vec![], vec![tomb(t, t)]));
    let e = OrEntry::from_parts([], [tomb(t, Timestamp::ZERO)]);
    assert_eq!(e.tombstones().collect::<Vec<_>>(), [tomb(t, t)]);
}

#[test]
fn remove_before_its_add_leaves_the_item_removed() {
    let mut m = OrMap::new();
    let t = ts(5, 0, 1);
    let at = ts(6, 0, 2);
    check(
        &mut m,
        &[
            Step::Remove("k", &[t], at, &[]),
            Step::Add("k", item("late", t), false),
        ],
    );
    assert_eq!(values(&m, "k"), Vec::<String>::new());
    assert_eq!(parts(m.get("k")), (vec![], vec![tomb(t, at)]));
    assert_eq!(m.len(), 1, "the tombstone is kept so the add stays removed");
}

#[test]
fn add_concurrent_with_remove_survives() {
    let (t1, t2, t3) = (ts(1, 0, 1), ts(2, 0, 1), ts(2, 0, 2));
    let removed_at = ts(2, 1, 2);
    let mut a = OrMap::new();
    a.add("list", item("milk", t1));
    let mut b = a.clone();
    // Concurrently: A re-adds "milk" and adds "eggs"; B removes the "milk"
    // it observed.
    a.add("list", item("milk", t2));
    a.add("list", item("eggs", t3));
    assert_eq!(b.remove("list", &[t1], removed_at), [item("milk", t1)]);

    let mut ab = a.clone();
    ab.merge_map(&b);
    let mut ba = b.clone();
    ba.merge_map(&a);
    assert_eq!(ab, ba);
    assert_eq!(ab.merkle(), ba.merkle());
    // Add wins: the unobserved adds survive, the observed one is gone.
    assert_eq!(values(&ab, "list"), ["milk", "eggs"]);
    assert_eq!(
        parts(ab.get("list")),
        (vec![t2, t3], vec![tomb(t1, removed_at)])
    );
    assert_tree_consistent(&ab);
}

#[test]
fn merge_entry_is_a_union_of_items_minus_a_union_of_tombstones() {
    let [a, b, c, x, y] = [1, 2, 3, 4, 5].map(|m| ts(m, 0, 1));
    let at = ts(9, 0, 2);
    let mut map = OrMap::new();
    map.merge_entry(
        "k",
        &OrEntry::from_parts([item("a", a), item("b", b)], [tomb(x, at)]),
    );
    let remote = OrEntry::from_parts([item("b", b), item("c", c)], [tomb(a, at), tomb(y, at)]);
    assert!(map.merge_entry("k", &remote));
    assert_eq!(
        parts(map.get("k")),
        (vec![b, c], vec![tomb(a, at), tomb(x, at), tomb(y, at)])
    );
    assert_tree_consistent(&map);
    // Idempotent: the same entry again changes nothing.
    let root = map.merkle().root();
    assert!(!map.merge_entry("k", &remote));
    assert_eq!(map.merkle().root(), root);
    // An empty entry changes nothing and creates no key.
    assert!(!map.merge_entry("other", &OrEntry::default()));
    assert!(map.get("other").is_none());
    assert_eq!(map.len(), 1);
}

#[test]
fn from_parts_drops_items_whose_tags_are_removed() {
    let (t1, t2) = (ts(1, 0, 1), ts(2, 0, 1));
    let at = ts(3, 0, 1);
    let e = OrEntry::from_parts([item("a", t1), item("b", t2)], [tomb(t1, at)]);
    assert_eq!(parts(Some(&e)), (vec![t2], vec![tomb(t1, at)]));
    // Items come out ordered by tag whatever the input order, and a tag
    // listed twice keeps its latest removal time.
    let e = OrEntry::from_parts(
        [item("b", t2), item("a", t1)],
        [tomb(t1, ts(9, 0, 0)), tomb(t1, at)],
    );
    assert_eq!(parts(Some(&e)), (vec![t2], vec![tomb(t1, ts(9, 0, 0))]));
    let e = OrEntry::from_parts([item("b", t2), item("a", t1)], []);
    assert_eq!(parts(Some(&e)), (vec![t1, t2], vec![]));
}

#[test]
fn ttl_hides_expired_items() {
    let mut m = OrMap::new();
    m.add(
        "k",
        OrItem {
            value: Value::from("soon"),
            tag: ts(1_000, 0, 1),
            ttl_ms: Some(100),
        },
    );
    m.add("k", item("always", ts(1_000, 1, 1)));
    let live = |now| m.get("k").unwrap().live_values(now).count();
    assert_eq!(live(1_099), 2);
    assert_eq!(live(1_100), 1);
    assert_eq!(
        m.get("k").unwrap().items().len(),
        2,
        "expired items are kept"
    );
}

#[test]
fn prune_goes_by_removal_time_and_then_ignores_older_writes() {
    let mut m = OrMap::new();
    let [t1, t2, t3] = [10, 20, 30].map(|ms| ts(ms, 0, 1));
    let frontier = ts(30, 0, 0);
    check(
        &mut m,
        &[
            Step::Add("k", item("a", t1), true),
            Step::Add("k", item("b", t2), true),
            // Removed before the frontier: pruned.
            Step::Remove("k", &[t1], ts(15, 0, 2), &[t1]),
            Step::Remove("gone", &[t2], ts(25, 0, 2), &[]),
            // An old item removed after the frontier: kept, the replicas
            // that still hold the item must learn of the removal.
            Step::Remove("old", &[t1], ts(35, 0, 2), &[]),
            Step::Add("late", item("c", ts(40, 0, 1)), true),
            Step::Prune(frontier, 2),
            // Pruning again at the same frontier finds nothing.
            Step::Prune(frontier, 0),
            // After the frontier: a pruned tag arriving again stays removed,
            Step::Add("k", item("a", t1), false),
            // an add older than the frontier is ignored (every replica saw
            // it, so its absence means it was removed),
            Step::Add("new-key", item("x", t2), false),
            // a removal made before the frontier removes a present item but
            // leaves no tombstone behind,
            Step::Remove("k", &[t2], ts(29, 0, 0), &[t2]),
            // a removal made after it is recorded even for an old tag,
            Step::Remove("k", &[t3], ts(31, 0, 2), &[]),
            // and new tags are handled as usual.
            Step::Add("k", item("d", ts(31, 0, 1)), true),
        ],
    );
    // The key that held only a pruned tombstone is gone.
    assert!(m.get("gone").is_none());
    assert!(m.get("new-key").is_none());
    assert_eq!(
        parts(m.get("k")),
        (vec![ts(31, 0, 1)], vec![tomb(t3, ts(31, 0, 2))])
    );
    assert_eq!(parts(m.get("old")), (vec![], vec![tomb(t1, ts(35, 0, 2))]));
    assert_eq!(m.len(), 3);
}

/// An old item removed after the pruning frontier: the removal must still
/// reach a replica whose copy of the op was lost, through state sync alone.
#[test]
fn removal_of_an_old_item_syncs_across_pruning() {
    let t = ts(10, 0, 1);
    let frontier = ts(20, 0, 0);
    let removed_at = ts(50, 0, 2);
    let mut base = OrMap::new();
    base.add("k", item("x", t));

    // Removed, then pruned; the holder never got the removal op.
    let mut remover = base.clone();
    remover.remove("k", &[t], removed_at);
    remover.prune_tombstones(frontier);
    let mut holder = base.clone();
    holder.prune_tombstones(frontier);
    sync(&mut remover, &mut holder);
    assert_eq!(remover, holder);
    assert_eq!(values(&holder, "k"), Vec::<String>::new());

    // Pruned first, removed afterwards.
    let mut remover = base.clone();
    remover.prune_tombstones(frontier);
    remover.remove("k", &[t], removed_at);
    let mut holder = base;
    sync(&mut remover, &mut holder);
    assert_eq!(remover, holder);
    assert_eq!(values(&holder, "k"), Vec::<String>::new());
}

#[test]
fn a_key_pruned_to_nothing_has_the_empty_root() {
    let mut m = OrMap::new();
    m.add("k", item("a", ts(1, 0, 1)));
    m.remove("k", &[ts(1, 0, 1)], ts(1, 1, 1));
    assert_ne!(m.merkle().root(), 0);
    assert_eq!(m.prune_tombstones(ts(2, 0, 0)), 1);
    assert!(m.is_empty());
    assert_eq!(m.merkle(), OrMap::new().merkle());
}

#[test]
fn merkle_depth_is_validated() {
    assert_eq!(
        OrMap::with_merkle_depth(0).unwrap_err(),
        MerkleError::InvalidDepth(0)
    );
    assert_eq!(
        OrMap::with_merkle_depth(MAX_DEPTH + 1).unwrap_err(),
        MerkleError::InvalidDepth(MAX_DEPTH + 1)
    );
    assert_eq!(OrMap::with_merkle_depth(2).unwrap().merkle().depth(), 2);
}

#[test]
fn leaf_digests_carry_entry_hashes() {
    let mut m = OrMap::with_merkle_depth(1).unwrap();
    for i in 0..30u32 {
        m.add(format!("k{i}"), item("v", ts(1, i, 1)));
    }
    m.remove("tomb", &[ts(9, 0, 9)], ts(10, 0, 9));
    let leaves: Vec<MerklePath> = (0..16).map(|c| MerklePath::ROOT.child(c)).collect();
    let digests = m.leaf_digests(&leaves);
    let mut total = 0;
    for d in &digests {
        for (k, h) in &d.entries {
            assert_eq!(m.merkle().bucket_of(k), d.path);
            assert_eq!(*h, entry_hash(k, m.get(k).unwrap()));
        }
        assert!(d.entries.windows(2).all(|w| w[0].0 < w[1].0));
        total += d.entries.len();
    }
    assert_eq!(total, m.len());
}

fn golden_entry() -> OrEntry {
    let t = ts(1_700_000_000_000, 7, 0x0123_4567_89ab_cdef);
    OrEntry::from_parts(
        [
            item("milk", t),
            OrItem {
                value: Value::Int(2),
                tag: ts(1_700_000_000_001, 0, 2),
                ttl_ms: Some(60_000),
            },
        ],
        [tomb(
            ts(1_699_999_999_999, 3, 2),
            ts(1_700_000_000_002, 0, 2),
        )],
    )
}

/// Golden vectors: the OR entry hash is part of the sync protocol (TopGun's
/// client and server once disagreed on it), so a change here must be
/// deliberate and comes with a protocol version bump.
#[test]
fn entry_hash_golden_vectors() {
    let t = ts(1_700_000_000_000, 7, 1);
    let cases = [
        ("list:1", golden_entry(), 0xd517_1042_622a_544b),
        (
            "list:1",
            OrEntry::from_parts([], [tomb(t, ts(1_700_000_000_000, 8, 3))]),
            0x931c_b063_8065_b92f,
        ),
        ("", OrEntry::default(), 0x32e1_1df3_f808_e29c),
    ];
    // Report every mismatch at once, with the actual values to paste.
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|(key, entry, expected)| {
            let actual = entry_hash(key, entry);
            (actual != *expected).then(|| {
                format!(
                    "entry_hash({key:?}, {entry:?}) = {actual:#018x}, expected {expected:#018x}"
                )
            })
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The entry hash spelled out byte by byte, as another implementation must
/// compute it: xxh3-64 over `"O" | key len u64 LE | key | item count u64 LE
/// | per item in tag order: tag, ttl (0, or 1 + u64 LE), canonical value
/// | tombstone count u64 LE | per tombstone in tag order: tag, removal
/// time`, where a timestamp is `millis u64 LE | counter u32 LE | node u64
/// LE`.
#[test]
fn entry_hash_is_xxh3_of_the_documented_bytes() {
    fn stamp(out: &mut Vec<u8>, t: Timestamp) {
        out.extend_from_slice(&t.millis.to_le_bytes());
        out.extend_from_slice(&t.counter.to_le_bytes());
        out.extend_from_slice(&t.node.0.to_le_bytes());
    }
    let (t1, t2, dead, removed_at) = (ts(5, 1, 7), ts(6, 0, 8), ts(4, 0, 9), ts(7, 2, 6));
    let entry = OrEntry::from_parts(
        [
            OrItem {
                value: Value::Int(-1),
                tag: t2,
                ttl_ms: Some(30),
            },
            OrItem {
                value: Value::Bool(true),
                tag: t1,
                ttl_ms: None,
            },
        ],
        [tomb(dead, removed_at)],
    );
    let mut bytes = b"O".to_vec();
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(b"k");
    bytes.extend_from_slice(&2u64.to_le_bytes());
    stamp(&mut bytes, t1);
    bytes.extend_from_slice(&[0, 1, 1]);
    stamp(&mut bytes, t2);
    bytes.push(1);
    bytes.extend_from_slice(&30u64.to_le_bytes());
    bytes.push(2);
    bytes.extend_from_slice(&(-1i64).to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    stamp(&mut bytes, dead);
    stamp(&mut bytes, removed_at);
    assert_eq!(entry_hash("k", &entry), xxhash_rust::xxh3::xxh3_64(&bytes));
}

#[test]
fn entry_hash_covers_items_tombstones_and_key() {
    let base = golden_entry();
    let h = entry_hash("k", &base);
    let t = ts(1, 0, 1);
    let mut with_item = base.clone();
    with_item.add(item("x", t), Timestamp::ZERO);
    let mut with_tombstone = base.clone();
    with_tombstone.remove(t, ts(2, 0, 1), Timestamp::ZERO);
    let mut later_removal = base.clone();
    later_removal.remove(
        ts(1_699_999_999_999, 3, 2),
        ts(1_800_000_000_000, 0, 2),
        Timestamp::ZERO,
    );
    // An item moved into the tombstones must not hash like the original.
    let moved = OrEntry::from_parts([], [tomb(t, t)]);
    let kept = OrEntry::from_parts([item("x", t)], []);
    assert_ne!(entry_hash("k", &moved), entry_hash("k", &kept));
    for (what, other) in [
        ("key", entry_hash("j", &base)),
        ("item", entry_hash("k", &with_item)),
        ("tombstone", entry_hash("k", &with_tombstone)),
        ("removal time", entry_hash("k", &later_removal)),
    ] {
        assert_ne!(h, other, "{what}");
    }
}
