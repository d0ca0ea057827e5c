//! Unit tests for the last-writer-wins map.

use super::*;
use crate::hlc::NodeId;
use crate::merkle::MAX_DEPTH;

fn ts(millis: u64, counter: u32, node: u64) -> Timestamp {
    Timestamp::new(millis, counter, NodeId(node))
}

fn put(v: i64, t: Timestamp) -> LwwRecord {
    LwwRecord::put(Value::Int(v), t)
}

/// The tree a map should have: rebuilt from scratch out of its records.
fn expected_tree(map: &LwwMap) -> MerkleTree {
    let mut tree = MerkleTree::new(map.merkle().depth()).unwrap();
    for (k, r) in map.iter() {
        tree.update(k, None, Some(entry_hash(k, r)));
    }
    tree
}

fn assert_tree_consistent(map: &LwwMap) {
    assert_eq!(
        map.merkle(),
        &expected_tree(map),
        "incrementally maintained tree differs from one rebuilt from the records"
    );
}

/// Merges `steps` in order into a fresh map, checking each outcome, that
/// the Merkle root moves exactly when the map changes, and that the tree
/// always matches one rebuilt from the records. Returns the map.
fn check(steps: &[(&str, LwwRecord, MergeOutcome)]) -> LwwMap {
    let mut map = LwwMap::new();
    for (i, (key, record, expected)) in steps.iter().enumerate() {
        let root_before = map.merkle().root();
        let outcome = map.merge(*key, record.clone());
        assert_eq!(&outcome, expected, "step {i}: merge {key} {record:?}");
        assert_eq!(
            map.merkle().root() != root_before,
            outcome.changed(),
            "step {i}: root must change exactly when the merge is applied"
        );
        assert_tree_consistent(&map);
    }
    map
}

#[test]
fn merge_keeps_the_greatest_timestamp() {
    use MergeOutcome::{Ignored, Inserted, Replaced};
    let map = check(&[
        ("a", put(1, ts(10, 0, 1)), Inserted),
        // Later millis wins.
        ("a", put(2, ts(11, 0, 1)), Replaced(put(1, ts(10, 0, 1)))),
        // Older loses, whatever its node or counter.
        ("a", put(3, ts(10, 9, 9)), Ignored),
        // Same millis: the counter decides, then the node.
        ("a", put(4, ts(11, 1, 0)), Replaced(put(2, ts(11, 0, 1)))),
        ("a", put(5, ts(11, 1, 2)), Replaced(put(4, ts(11, 1, 0)))),
        ("a", put(6, ts(11, 1, 1)), Ignored),
        // Other keys are independent.
        ("b", put(7, ts(1, 0, 1)), Inserted),
    ]);
    assert_eq!(map.get("a"), Some(&put(5, ts(11, 1, 2))));
    assert_eq!(map.get("b"), Some(&put(7, ts(1, 0, 1))));
    assert_eq!(map.len(), 2);
}

#[test]
fn equal_timestamps_converge_on_the_greater_entry_hash() {
    // One timestamp should identify one write, but a spoofed node id can
    // make several different records with one timestamp. Whatever order
    // they arrive in, every replica keeps the one with the greatest entry
    // hash; a duplicate delivery changes nothing.
    use MergeOutcome::{Ignored, Inserted, Replaced};
    let t = ts(10, 0, 1);
    let mut records = [
        put(1, t),
        put(2, t),
        LwwRecord::tombstone(t),
        LwwRecord::put_with_ttl(Value::Int(1), t, 5),
    ];
    records.sort_by_key(|r| entry_hash("a", r));
    let winner = records[3].clone();

    // Ascending: each record beats the one before.
    let mut steps = vec![("a", records[0].clone(), Inserted)];
    for pair in records.windows(2) {
        steps.push(("a", pair[1].clone(), Replaced(pair[0].clone())));
    }
    steps.push(("a", winner.clone(), Ignored));
    steps.push(("a", records[0].clone(), Ignored));
    assert_eq!(check(&steps).get("a"), Some(&winner));

    // Descending: the first one stays.
    let mut steps = vec![("a", winner.clone(), Inserted)];
    for r in records[..3].iter().rev() {
        steps.push(("a", r.clone(), Ignored));
    }
    assert_eq!(check(&steps).get("a"), Some(&winner));

    // A later timestamp still beats the tie's winner, whatever its hash.
    let later = records
        .iter()
        .map(|r| LwwRecord {
            timestamp: ts(10, 0, 2),
            ..r.clone()
        })
        .min_by_key(|r| entry_hash("a", r))
        .unwrap();
    let map = check(&[
        ("a", winner.clone(), Inserted),
        ("a", later.clone(), Replaced(winner)),
    ]);
    assert_eq!(map.get("a"), Some(&later));
}

#[test]
fn equal_hashes_fall_back_to_the_hashed_bytes() {
    // A real xxh3 collision is constructible but not at hand: feed equal
    // hashes to the tie-break directly. Of two different records exactly
    // one wins, the one whose bytes compare greater; a record never beats
    // itself.
    let t = ts(10, 0, 1);
    let (a, b) = (put(1, t), put(2, t));
    let a_wins = wins_tie("k", (&a, 7), (&b, 7));
    assert_ne!(a_wins, wins_tie("k", (&b, 7), (&a, 7)));
    assert_eq!(a_wins, entry_bytes("k", &a) > entry_bytes("k", &b));
    assert!(!wins_tie("k", (&a, 7), (&a, 7)));
    // The hash decides before the bytes.
    assert!(wins_tie("k", (&a, 8), (&b, 7)));
    assert!(!wins_tie("k", (&a, 6), (&b, 7)));
    // The bytes are the ones hashed.
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(&entry_bytes("k", &a)),
        entry_hash("k", &a)
    );
}

#[test]
fn tombstones_are_records() {
    use MergeOutcome::{Ignored, Inserted, Replaced};
    let map = check(&[
        ("a", put(1, ts(10, 0, 1)), Inserted),
        (
            "a",
            LwwRecord::tombstone(ts(20, 0, 2)),
            Replaced(put(1, ts(10, 0, 1))),
        ),
        // A put older than the removal does not resurrect the key.
        ("a", put(2, ts(15, 0, 3)), Ignored),
        // A removal of a key never seen is stored too.
        ("b", LwwRecord::tombstone(ts(5, 0, 1)), Inserted),
        ("b", put(3, ts(4, 0, 1)), Ignored),
    ]);
    assert_eq!(map.len(), 2, "tombstones count as records");
    assert!(map.get("a").is_some_and(LwwRecord::is_tombstone));
    assert_eq!(map.get_live("a", 0), None);
    assert_eq!(map.iter().count(), 2);
    assert_eq!(map.iter_live(0).count(), 0);
    assert_ne!(
        map.merkle().root(),
        LwwMap::new().merkle().root(),
        "tombstones are in the Merkle tree"
    );

    // A later put revives the key.
    let mut map = map;
    assert!(map.merge("a", put(9, ts(21, 0, 1))).changed());
    assert_eq!(map.get_live("a", 0), Some(&Value::Int(9)));
}

#[test]
fn tombstones_sync_through_merge_map() {
    let mut remover = LwwMap::new();
    remover.merge("a", put(1, ts(10, 0, 1)));
    remover.merge("b", put(2, ts(10, 1, 1)));
    let mut lagging = remover.clone();
    remover.merge("a", LwwRecord::tombstone(ts(11, 0, 1)));

    assert_eq!(lagging.merge_map(&remover), 1);
    assert_eq!(lagging, remover);
    assert_eq!(lagging.merkle(), remover.merkle());
    assert_eq!(lagging.get_live("a", 0), None);
    // Syncing back changes nothing: the put is older than the tombstone.
    assert_eq!(remover.merge_map(&lagging), 0);
    assert_eq!(lagging.merge_map(&remover), 0);
}

#[test]
fn a_tombstone_differs_from_a_null_value() {
    let t = ts(10, 0, 1);
    let null = LwwRecord::put(Value::Null, t);
    let gone = LwwRecord::tombstone(t);
    assert_ne!(entry_hash("k", &null), entry_hash("k", &gone));
    assert_eq!(null.live_value(0), Some(&Value::Null));
    assert_eq!(gone.live_value(0), None);
}

#[test]
fn ttl_expiry_hides_values_but_keeps_records() {
    let mut map = LwwMap::new();
    map.merge(
        "short",
        LwwRecord::put_with_ttl(Value::Int(1), ts(1_000, 0, 1), 500),
    );
    map.merge("forever", put(2, ts(1_000, 0, 1)));
    map.merge(
        "huge",
        LwwRecord::put_with_ttl(Value::Int(3), ts(1_000, 0, 1), u64::MAX),
    );
    // (now, visible keys) rows; expiry is at millis + ttl, exclusive.
    let cases: [(u64, &[&str]); 4] = [
        (0, &["forever", "huge", "short"]),
        (1_499, &["forever", "huge", "short"]),
        (1_500, &["forever", "huge"]),
        (u64::MAX, &["forever"]),
    ];
    for (now, expected) in cases {
        let mut live: Vec<&str> = map.iter_live(now).map(|(k, _)| k).collect();
        live.sort_unstable();
        assert_eq!(live, expected, "iter_live at {now}");
        for key in ["short", "forever", "huge"] {
            assert_eq!(
                map.get_live(key, now).is_some(),
                expected.contains(&key),
                "get_live({key}, {now})"
            );
        }
    }
    // The expired record is still stored and still wins conflicts.
    assert!(map.get("short").is_some());
    assert_eq!(
        map.merge("short", put(9, ts(999, 0, 1))),
        MergeOutcome::Ignored
    );
    assert_eq!(
        map.get("huge").and_then(LwwRecord::expires_at),
        Some(u64::MAX),
        "expiry saturates"
    );
}

#[test]
fn prune_removes_only_tombstones_below_the_frontier() {
    let mut map = LwwMap::new();
    map.merge("old-gone", LwwRecord::tombstone(ts(10, 0, 1)));
    map.merge("at-frontier", LwwRecord::tombstone(ts(20, 0, 1)));
    map.merge("new-gone", LwwRecord::tombstone(ts(30, 0, 1)));
    map.merge("old-live", put(1, ts(5, 0, 1)));
    map.merge("new-live", put(2, ts(40, 0, 1)));

    let frontier = ts(20, 0, 1);
    assert_eq!(map.prune_tombstones(frontier), 1);
    assert_eq!(map.pruned_before(), frontier);
    let mut keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["at-frontier", "new-gone", "new-live", "old-live"]);
    assert_tree_consistent(&map);

    // Pruning again with the same or an older frontier removes nothing and
    // never moves the frontier back.
    assert_eq!(map.prune_tombstones(frontier), 0);
    assert_eq!(map.prune_tombstones(ts(1, 0, 0)), 0);
    assert_eq!(map.pruned_before(), frontier);
}

#[test]
fn a_pruned_tombstone_merged_again_is_ignored() {
    let mut map = LwwMap::new();
    map.merge("k", put(1, ts(5, 0, 1)));
    map.merge("k", LwwRecord::tombstone(ts(10, 0, 1)));
    let empty_root = LwwMap::new().merkle().root();
    assert_eq!(map.prune_tombstones(ts(11, 0, 0)), 1);
    assert!(map.is_empty());
    assert_eq!(map.merkle().root(), empty_root);

    // A lagging peer sends the removal again: it stays pruned.
    assert_eq!(
        map.merge("k", LwwRecord::tombstone(ts(10, 0, 1))),
        MergeOutcome::Ignored
    );
    // A late duplicate of the put the tombstone superseded must not bring
    // the key back either: every replica saw it before the frontier, so its
    // absence here means it was removed.
    assert_eq!(map.merge("k", put(1, ts(5, 0, 1))), MergeOutcome::Ignored);
    assert!(map.is_empty());
    assert_eq!(map.merkle().root(), empty_root);

    // Writes at or after the frontier are new and are stored.
    assert_eq!(
        map.merge("k", LwwRecord::tombstone(ts(11, 0, 0))),
        MergeOutcome::Inserted
    );
    assert_eq!(map.merge("j", put(2, ts(12, 0, 1))), MergeOutcome::Inserted);
    assert_tree_consistent(&map);
}

#[test]
fn equality_ignores_the_pruning_frontier() {
    let mut a = LwwMap::new();
    a.merge("k", put(1, ts(5, 0, 1)));
    let mut b = a.clone();
    b.prune_tombstones(ts(100, 0, 0));
    assert_eq!(a, b);
    b.merge("j", LwwRecord::tombstone(ts(200, 0, 0)));
    assert_ne!(a, b);
}

#[test]
fn root_depends_only_on_contents_not_on_merge_order() {
    let records = [
        ("a", put(1, ts(10, 0, 1))),
        ("a", put(2, ts(10, 0, 2))),
        ("b", LwwRecord::tombstone(ts(11, 0, 1))),
        ("b", put(3, ts(9, 0, 3))),
        (
            "c",
            LwwRecord::put_with_ttl(Value::from("x"), ts(3, 0, 1), 7),
        ),
    ];
    let reference = {
        let mut m = LwwMap::new();
        for (k, r) in &records {
            m.merge(*k, r.clone());
        }
        m
    };
    // Every permutation of the five merges.
    let mut order: Vec<usize> = (0..records.len()).collect();
    let mut seen = 0;
    permutations(&mut order, 0, &mut |order| {
        let mut m = LwwMap::new();
        for &i in order {
            m.merge(records[i].0, records[i].1.clone());
        }
        assert_eq!(m, reference, "order {order:?}");
        assert_eq!(m.merkle(), reference.merkle(), "order {order:?}");
        seen += 1;
    });
    assert_eq!(seen, 120);
    assert_eq!(reference.get("a"), Some(&put(2, ts(10, 0, 2))));
    assert!(reference.get("b").is_some_and(LwwRecord::is_tombstone));
}

fn permutations(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

#[test]
fn merkle_depth_is_validated() {
    assert_eq!(
        LwwMap::with_merkle_depth(0).unwrap_err(),
        MerkleError::InvalidDepth(0)
    );
    assert_eq!(
        LwwMap::with_merkle_depth(MAX_DEPTH + 1).unwrap_err(),
        MerkleError::InvalidDepth(MAX_DEPTH + 1)
    );
    let m = LwwMap::with_merkle_depth(1).unwrap();
    assert_eq!(m.merkle().depth(), 1);
    assert_eq!(LwwMap::new().merkle().depth(), merkle::DEFAULT_DEPTH);
}

#[test]
fn leaf_digests_list_each_bucket_sorted_with_entry_hashes() {
    let mut map = LwwMap::with_merkle_depth(1).unwrap();
    for i in 0..40 {
        map.merge(format!("key{i}"), put(i, ts(1, 0, 1)));
    }
    map.merge("gone", LwwRecord::tombstone(ts(2, 0, 1)));
    let leaves: Vec<MerklePath> = (0..16).map(|c| MerklePath::ROOT.child(c)).collect();
    let digests = map.leaf_digests(&leaves);
    assert_eq!(digests.len(), 16);
    let mut total = 0;
    for (d, path) in digests.iter().zip(&leaves) {
        assert_eq!(d.path, *path);
        assert!(d.entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        let mut sum = 0u64;
        for (k, h) in &d.entries {
            assert_eq!(map.merkle().bucket_of(k), *path);
            assert_eq!(Some(*h), map.get(k).map(|r| entry_hash(k, r)));
            sum = sum.wrapping_add(*h);
        }
        assert_eq!(Ok(sum), map.merkle().node(*path), "bucket hash is the sum");
        total += d.entries.len();
    }
    assert_eq!(total, map.len(), "every record is in exactly one bucket");
    // Inner nodes are not leaves and get no digest.
    assert!(map.leaf_digests(&[MerklePath::ROOT]).is_empty());
}

/// Golden vectors: entry hashes are part of the sync protocol (every
/// replica must compute the same Merkle leaves), so a change here must be
/// deliberate and comes with a protocol version bump.
#[test]
fn entry_hash_golden_vectors() {
    let t = ts(1_700_000_000_000, 7, 0x0123_4567_89ab_cdef);
    let todo = Value::Map(
        [
            ("title".to_owned(), Value::from("milk")),
            ("done".to_owned(), Value::Bool(false)),
        ]
        .into_iter()
        .collect(),
    );
    let cases = [
        (
            "todo:1",
            LwwRecord::put(todo.clone(), t),
            0xaaa6_be88_8c3a_e0ed,
        ),
        (
            "todo:1",
            LwwRecord::put_with_ttl(todo, t, 60_000),
            0xb397_c6f8_6ef1_871f,
        ),
        ("todo:1", LwwRecord::tombstone(t), 0xe994_854f_7587_09c3),
        (
            "",
            LwwRecord::put(Value::Null, Timestamp::ZERO),
            0xfc88_2f55_c909_f709,
        ),
    ];
    // Report every mismatch at once, with the actual values to paste.
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|(key, record, expected)| {
            let actual = entry_hash(key, record);
            (actual != *expected).then(|| {
                format!(
                    "entry_hash({key:?}, {record:?}) = {actual:#018x}, expected {expected:#018x}"
                )
            })
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn entry_hash_covers_every_field() {
    let base = LwwRecord::put(Value::Int(1), ts(10, 0, 1));
    let h = entry_hash("k", &base);
    let variants = [
        ("key", entry_hash("j", &base)),
        ("value", entry_hash("k", &put(2, ts(10, 0, 1)))),
        ("millis", entry_hash("k", &put(1, ts(11, 0, 1)))),
        ("counter", entry_hash("k", &put(1, ts(10, 1, 1)))),
        ("node", entry_hash("k", &put(1, ts(10, 0, 2)))),
        (
            "ttl",
            entry_hash(
                "k",
                &LwwRecord::put_with_ttl(Value::Int(1), ts(10, 0, 1), 0),
            ),
        ),
        (
            "tombstone",
            entry_hash("k", &LwwRecord::tombstone(ts(10, 0, 1))),
        ),
    ];
    for (field, other) in variants {
        assert_ne!(h, other, "changing the {field} must change the hash");
    }
}

/// The entry hash spelled out byte by byte, as another implementation (the
/// TypeScript client) must compute it: xxh3-64 over
/// `"L" | key len u64 LE | key | millis u64 LE | counter u32 LE | node u64 LE
///  | ttl (0, or 1 + u64 LE) | 0 for a tombstone, or 1 + canonical value`.
#[test]
fn entry_hash_is_xxh3_of_the_documented_bytes() {
    let t = ts(1_700_000_000_000, 7, 0x0123_4567_89ab_cdef);
    let mut head = b"L".to_vec();
    head.extend_from_slice(&6u64.to_le_bytes());
    head.extend_from_slice(b"todo:1");
    head.extend_from_slice(&t.millis.to_le_bytes());
    head.extend_from_slice(&t.counter.to_le_bytes());
    head.extend_from_slice(&t.node.0.to_le_bytes());

    let mut tombstone = head.clone();
    tombstone.extend_from_slice(&[0, 0]);
    assert_eq!(
        entry_hash("todo:1", &LwwRecord::tombstone(t)),
        xxhash_rust::xxh3::xxh3_64(&tombstone)
    );

    let mut int_with_ttl = head;
    int_with_ttl.push(1);
    int_with_ttl.extend_from_slice(&60_000u64.to_le_bytes());
    int_with_ttl.extend_from_slice(&[1, 2]);
    int_with_ttl.extend_from_slice(&(-5i64).to_le_bytes());
    assert_eq!(
        entry_hash(
            "todo:1",
            &LwwRecord::put_with_ttl(Value::Int(-5), t, 60_000)
        ),
        xxhash_rust::xxh3::xxh3_64(&int_with_ttl)
    );
}
