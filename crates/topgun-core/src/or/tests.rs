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

fn tags(entry: Option<&OrEntry>) -> (Vec<Timestamp>, Vec<Timestamp>) {
    entry.map_or_else(Default::default, |e| {
        (
            e.items().map(|i| i.tag).collect(),
            e.tombstones().copied().collect(),
        )
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
    Add(&'a str, OrItem, bool),
    Remove(&'a str, &'a [Timestamp], &'a [Timestamp]),
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
                assert_eq!(map.add(key, item.clone()), *expected, "step {i}: add");
            }
            Step::Remove(key, remove, expected) => {
                let removed: Vec<Timestamp> =
                    map.remove(key, remove).into_iter().map(|i| i.tag).collect();
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
fn remove_deletes_only_observed_tags() {
    let mut m = OrMap::new();
    let (t1, t2, t3) = (ts(1, 0, 1), ts(2, 0, 1), ts(3, 0, 2));
    check(
        &mut m,
        &[
            Step::Add("k", item("a", t1), true),
            Step::Add("k", item("b", t2), true),
            Step::Add("j", item("c", t3), true),
            Step::Remove("k", &[t1], &[t1]),
            // Removing it again returns nothing and changes nothing.
            Step::Remove("k", &[t1], &[]),
            // A tag of another key is not removed from this one.
            Step::Remove("k", &[t3], &[]),
        ],
    );
    assert_eq!(values(&m, "k"), ["b"]);
    assert_eq!(values(&m, "j"), ["c"]);
    assert_eq!(tags(m.get("k")), (vec![t2], vec![t1, t3]));
    // Once removed, the same tag can not come back.
    assert!(!m.add("k", item("a", t1)));
}

#[test]
fn remove_before_its_add_leaves_the_item_removed() {
    let mut m = OrMap::new();
    let t = ts(5, 0, 1);
    check(
        &mut m,
        &[
            Step::Remove("k", &[t], &[]),
            Step::Add("k", item("late", t), false),
        ],
    );
    assert_eq!(values(&m, "k"), Vec::<String>::new());
    assert_eq!(tags(m.get("k")), (vec![], vec![t]));
    assert_eq!(m.len(), 1, "the tombstone is kept so the add stays removed");
}

#[test]
fn add_concurrent_with_remove_survives() {
    let (t1, t2, t3) = (ts(1, 0, 1), ts(2, 0, 1), ts(2, 0, 2));
    let mut a = OrMap::new();
    a.add("list", item("milk", t1));
    let mut b = a.clone();
    // Concurrently: A re-adds "milk" and adds "eggs"; B removes the "milk"
    // it observed.
    a.add("list", item("milk", t2));
    a.add("list", item("eggs", t3));
    assert_eq!(b.remove("list", &[t1]), [item("milk", t1)]);

    let mut ab = a.clone();
    ab.merge_map(&b);
    let mut ba = b.clone();
    ba.merge_map(&a);
    assert_eq!(ab, ba);
    assert_eq!(ab.merkle(), ba.merkle());
    // Add wins: the unobserved adds survive, the observed one is gone.
    assert_eq!(values(&ab, "list"), ["milk", "eggs"]);
    assert_eq!(tags(ab.get("list")), (vec![t2, t3], vec![t1]));
    assert_tree_consistent(&ab);
}

#[test]
fn merge_entry_is_a_union_of_items_minus_a_union_of_tombstones() {
    let [a, b, c, x, y] = [1, 2, 3, 4, 5].map(|m| ts(m, 0, 1));
    let mut map = OrMap::new();
    map.merge_entry("k", &OrEntry::from_parts([item("a", a), item("b", b)], [x]));
    let remote = OrEntry::from_parts([item("b", b), item("c", c)], [a, y]);
    assert!(map.merge_entry("k", &remote));
    assert_eq!(tags(map.get("k")), (vec![b, c], vec![a, x, y]));
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
    let e = OrEntry::from_parts([item("a", t1), item("b", t2)], [t1]);
    assert_eq!(tags(Some(&e)), (vec![t2], vec![t1]));
    // Items come out ordered by tag whatever the input order.
    let e = OrEntry::from_parts([item("b", t2), item("a", t1)], []);
    assert_eq!(tags(Some(&e)), (vec![t1, t2], vec![]));
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
fn prune_drops_tombstones_below_the_frontier_and_then_ignores_older_tags() {
    let mut m = OrMap::new();
    let [t1, t2, t3, t4] = [10, 20, 30, 40].map(|ms| ts(ms, 0, 1));
    let frontier = ts(30, 0, 0);
    check(
        &mut m,
        &[
            Step::Add("k", item("a", t1), true),
            Step::Add("k", item("b", t2), true),
            Step::Remove("k", &[t1, t3], &[t1]),
            Step::Remove("gone", &[t2], &[]),
            Step::Add("late", item("c", t4), true),
            // t1 and t2 are below the frontier; t3 (at 30, node 1) is not.
            Step::Prune(frontier, 2),
            // Pruning again at the same frontier finds nothing.
            Step::Prune(frontier, 0),
            // After the frontier: a pruned tag arriving again stays removed,
            Step::Add("k", item("a", t1), false),
            // a removal older than the frontier still removes a present item
            // but leaves no tombstone behind,
            Step::Remove("k", &[t2], &[t2]),
            // and new tags are handled as usual.
            Step::Add("k", item("d", ts(31, 0, 1)), true),
        ],
    );
    // The key that held only a pruned tombstone is gone.
    assert!(m.get("gone").is_none());
    assert_eq!(tags(m.get("k")), (vec![ts(31, 0, 1)], vec![t3]));
    assert_eq!(m.len(), 2);
}

#[test]
fn a_key_pruned_to_nothing_has_the_empty_root() {
    let mut m = OrMap::new();
    m.add("k", item("a", ts(1, 0, 1)));
    m.remove("k", &[ts(1, 0, 1)]);
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
        m.add(&format!("k{i}"), item("v", ts(1, i, 1)));
    }
    m.remove("tomb", &[ts(9, 0, 9)]);
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
        [ts(1_699_999_999_999, 3, 2)],
    )
}

/// Golden vectors: the OR entry hash is part of the sync protocol (TopGun's
/// client and server once disagreed on it), so a change here must be
/// deliberate and comes with a protocol version bump.
#[test]
fn entry_hash_golden_vectors() {
    let cases = [
        ("list:1", golden_entry(), 0x80be_45a1_73f7_0b7d),
        (
            "list:1",
            OrEntry::from_parts([], [ts(1_700_000_000_000, 7, 1)]),
            0x0586_b85e_3465_e7d6,
        ),
        ("", OrEntry::default(), 0x32e1_1df3_f808_e29c),
    ];
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
/// | per item in tag order: millis u64 LE, counter u32 LE, node u64 LE, ttl
/// (0, or 1 + u64 LE), canonical value | tombstone count u64 LE | per
/// tombstone in order: millis, counter, node`.
#[test]
fn entry_hash_is_xxh3_of_the_documented_bytes() {
    fn stamp(out: &mut Vec<u8>, t: Timestamp) {
        out.extend_from_slice(&t.millis.to_le_bytes());
        out.extend_from_slice(&t.counter.to_le_bytes());
        out.extend_from_slice(&t.node.0.to_le_bytes());
    }
    let (t1, t2, dead) = (ts(5, 1, 7), ts(6, 0, 8), ts(4, 0, 9));
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
        [dead],
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
    with_tombstone.remove(t, Timestamp::ZERO);
    // An item moved into the tombstones must not hash like the original.
    let moved = OrEntry::from_parts([], [t]);
    let kept = OrEntry::from_parts([item("x", t)], []);
    assert_ne!(entry_hash("k", &moved), entry_hash("k", &kept));
    for (what, other) in [
        ("key", entry_hash("j", &base)),
        ("item", entry_hash("k", &with_item)),
        ("tombstone", entry_hash("k", &with_tombstone)),
    ] {
        assert_ne!(h, other, "{what}");
    }
}
