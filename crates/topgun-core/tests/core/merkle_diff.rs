//! The Merkle descent diff (roots, then `differing_children` level by
//! level, then `leaf_digests` and `diff_leaf`) must find exactly the keys a
//! brute-force comparison finds, for both map kinds and every depth from 1
//! (many keys per bucket) to 4 (about one key per bucket); and exchanging
//! just those keys' records must make the replicas equal.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use topgun_core::{LwwMap, LwwRecord, OrItem, OrMap, Value};

use crate::support::{Stamper, descent_diff};

/// Enough keys that a depth-1 tree (16 buckets) holds several per bucket.
const KEYS: u32 = 60;

/// Who a generated write goes to.
#[derive(Clone, Copy, Debug)]
enum Side {
    Both,
    Local,
    Remote,
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![2 => Just(Side::Both), 1 => Just(Side::Local), 1 => Just(Side::Remote)]
}

/// Raw writes: (key, node, millis, kind, side).
fn raw_writes() -> impl Strategy<Value = Vec<(u32, u64, u64, u8, Side)>> {
    prop::collection::vec((0..KEYS, 0u64..3, 0u64..20, 0u8..4, side()), 0..80)
}

fn goes_to(side: Side, local: bool) -> bool {
    matches!(
        (side, local),
        (Side::Both, _) | (Side::Local, true) | (Side::Remote, false)
    )
}

fn lww_pair(raw: &[(u32, u64, u64, u8, Side)], depth: u8) -> (LwwMap, LwwMap) {
    let mut stamper = Stamper::default();
    let mut local = LwwMap::with_merkle_depth(depth).unwrap();
    let mut remote = LwwMap::with_merkle_depth(depth).unwrap();
    for &(key, node, millis, kind, side) in raw {
        let t = stamper.stamp(node, millis);
        let record = if kind == 0 {
            LwwRecord::tombstone(t)
        } else {
            LwwRecord::put(Value::Int(i64::from(kind)), t)
        };
        let key = format!("k{key}");
        for (map, is_local) in [(&mut local, true), (&mut remote, false)] {
            if goes_to(side, is_local) {
                map.merge(key.as_str(), record.clone());
            }
        }
    }
    (local, remote)
}

fn or_pair(raw: &[(u32, u64, u64, u8, Side)], depth: u8) -> (OrMap, OrMap) {
    let mut stamper = Stamper::default();
    let mut local = OrMap::with_merkle_depth(depth).unwrap();
    let mut remote = OrMap::with_merkle_depth(depth).unwrap();
    for &(key, node, millis, kind, side) in raw {
        let key = format!("k{key}");
        let t = stamper.stamp(node, millis);
        for (map, is_local) in [(&mut local, true), (&mut remote, false)] {
            if !goes_to(side, is_local) {
                continue;
            }
            if kind == 0 {
                // Remove what this side sees under the key.
                let tags: Vec<_> = map
                    .get(&key)
                    .map(|e| e.items().map(|i| i.tag).collect())
                    .unwrap_or_default();
                map.remove(&key, &tags, t);
            } else {
                map.add(
                    &key,
                    OrItem {
                        value: Value::Int(i64::from(kind)),
                        tag: t,
                        ttl_ms: None,
                    },
                );
            }
        }
    }
    (local, remote)
}

/// The brute-force diff: keys present on one side only or with different
/// records.
fn brute_force<'a, R: PartialEq + Clone + 'a>(
    local: impl Iterator<Item = (&'a str, &'a R)>,
    remote: impl Iterator<Item = (&'a str, &'a R)>,
) -> Vec<String> {
    let local: BTreeMap<&str, &R> = local.collect();
    let remote: BTreeMap<&str, &R> = remote.collect();
    let keys: BTreeSet<&str> = local.keys().chain(remote.keys()).copied().collect();
    keys.into_iter()
        .filter(|k| local.get(k) != remote.get(k))
        .map(str::to_owned)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lww_descent_finds_exactly_the_differing_keys(raw in raw_writes()) {
        for depth in 1..=4 {
            let (mut local, mut remote) = lww_pair(&raw, depth);
            let expected = brute_force(local.iter(), remote.iter());
            let found = descent_diff(&local, &remote);
            prop_assert_eq!(&found.keys, &expected, "depth {}", depth);
            prop_assert_eq!(descent_diff(&remote, &local).keys, expected.clone(), "depth {} reversed", depth);
            // No more leaves are fetched than there are differing keys.
            prop_assert!(found.leaves <= expected.len());

            // Exchanging just those keys' records makes the replicas equal.
            for key in &expected {
                if let Some(r) = remote.get(key).cloned() {
                    local.merge(key.as_str(), r);
                }
                if let Some(r) = local.get(key).cloned() {
                    remote.merge(key.as_str(), r);
                }
            }
            prop_assert_eq!(&local, &remote);
            prop_assert_eq!(local.merkle(), remote.merkle());
            prop_assert!(descent_diff(&local, &remote).keys.is_empty());
        }
    }

    #[test]
    fn or_descent_finds_exactly_the_differing_keys(raw in raw_writes()) {
        for depth in 1..=4 {
            let (mut local, mut remote) = or_pair(&raw, depth);
            let expected = brute_force(local.iter(), remote.iter());
            let found = descent_diff(&local, &remote);
            prop_assert_eq!(&found.keys, &expected, "depth {}", depth);
            prop_assert_eq!(descent_diff(&remote, &local).keys, expected.clone(), "depth {} reversed", depth);
            prop_assert!(found.leaves <= expected.len());

            for key in &expected {
                if let Some(e) = remote.get(key).cloned() {
                    local.merge_entry(key, &e);
                }
                if let Some(e) = local.get(key).cloned() {
                    remote.merge_entry(key, &e);
                }
            }
            prop_assert_eq!(&local, &remote);
            prop_assert_eq!(local.merkle(), remote.merkle());
            prop_assert!(descent_diff(&local, &remote).keys.is_empty());
        }
    }
}

/// Two maps that differ in one key: the descent touches one node per level
/// and one leaf, not the whole tree.
#[test]
fn one_difference_costs_one_path() {
    for depth in 1..=4u8 {
        let mut stamper = Stamper::default();
        let mut local = LwwMap::with_merkle_depth(depth).unwrap();
        for i in 0..200 {
            local.merge(
                format!("k{i}"),
                LwwRecord::put(Value::Int(i), stamper.stamp(1, 1)),
            );
        }
        let mut remote = local.clone();
        remote.merge("k7", LwwRecord::tombstone(stamper.stamp(2, 2)));
        let found = descent_diff(&local, &remote);
        assert_eq!(found.keys, ["k7"], "depth {depth}");
        assert_eq!(found.inner_nodes, usize::from(depth), "depth {depth}");
        assert_eq!(found.leaves, 1, "depth {depth}");
    }
}
