//! Unit tests for the Merkle tree and the diff steps.

use super::*;

fn path(level: u8, index: u32) -> MerklePath {
    MerklePath { level, index }
}

fn digest(entries: &[(&str, u64)]) -> Vec<(String, u64)> {
    entries.iter().map(|(k, h)| ((*k).to_owned(), *h)).collect()
}

/// Checks the structural invariant: every inner node is the wrapping sum of
/// its 16 children.
fn assert_sums(tree: &MerkleTree) {
    for level in 0..tree.depth() {
        for index in 0..FANOUT.pow(u32::from(level)) as u32 {
            let p = path(level, index);
            let sum = tree
                .children(p)
                .unwrap()
                .iter()
                .fold(0u64, |a, c| a.wrapping_add(*c));
            assert_eq!(tree.node(p), Ok(sum), "node {p}");
        }
    }
}

#[test]
fn new_validates_the_depth() {
    for depth in [0, MAX_DEPTH + 1, u8::MAX] {
        assert_eq!(
            MerkleTree::new(depth),
            Err(MerkleError::InvalidDepth(depth))
        );
    }
    for depth in 1..=MAX_DEPTH {
        let tree = MerkleTree::new(depth).unwrap();
        assert_eq!(tree.depth(), depth);
        assert_eq!(tree.root(), 0);
    }
    assert_eq!(MerkleTree::default().depth(), DEFAULT_DEPTH);
}

#[test]
fn bucket_of_uses_the_top_bits_of_the_key_hash() {
    let trees: Vec<MerkleTree> = (1..=4).map(|d| MerkleTree::new(d).unwrap()).collect();
    for i in 0..200 {
        let key = format!("key-{i}");
        let h = key_hash(&key);
        let mut parent: Option<MerklePath> = None;
        for tree in &trees {
            let b = tree.bucket_of(&key);
            let d = tree.depth();
            assert_eq!(b.level, d);
            assert!(tree.is_leaf(b));
            assert_eq!(u64::from(b.index), h >> (64 - 4 * u32::from(d)), "{key}");
            // A deeper tree refines a shallower one: the bucket at depth
            // d + 1 is a child of the bucket at depth d.
            if let Some(p) = parent {
                assert_eq!(b.index / 16, p.index, "{key} at depth {d}");
            }
            parent = Some(b);
        }
    }
    // Keys spread over all 16 buckets of a depth-1 tree.
    let used: std::collections::BTreeSet<u32> = (0..200)
        .map(|i| trees[0].bucket_of(&format!("key-{i}")).index)
        .collect();
    assert_eq!(used.len(), 16);
}

#[test]
fn paths_are_checked() {
    let tree = MerkleTree::new(2).unwrap();
    // (path, exists, is a leaf, has children)
    let cases = [
        (MerklePath::ROOT, true, false, true),
        (path(0, 1), false, false, false),
        (path(1, 15), true, false, true),
        (path(1, 16), false, false, false),
        (path(2, 255), true, true, false),
        (path(2, 256), false, false, false),
        (path(3, 0), false, false, false),
        (path(u8::MAX, u32::MAX), false, false, false),
    ];
    for (p, exists, leaf, inner) in cases {
        assert_eq!(tree.contains(p), exists, "contains {p}");
        assert_eq!(tree.is_leaf(p), leaf, "is_leaf {p}");
        assert_eq!(tree.node(p).is_ok(), exists, "node {p}");
        match tree.children(p) {
            Ok(children) => {
                assert!(inner, "children {p}");
                assert_eq!(children.len(), FANOUT);
            }
            Err(e) => {
                assert!(!inner, "children {p}");
                assert_eq!(e, MerkleError::NoSuchNode(p, 2));
            }
        }
        assert_eq!(
            tree.differing_children(p, &[0; FANOUT]).is_ok(),
            inner,
            "differing_children {p}"
        );
    }
}

#[test]
fn differing_children_rejects_a_bad_fanout() {
    let tree = MerkleTree::new(2).unwrap();
    for n in [0, 1, 15, 17, 256] {
        assert_eq!(
            tree.differing_children(MerklePath::ROOT, &vec![0; n]),
            Err(MerkleError::BadFanout(n))
        );
    }
}

#[test]
fn update_applies_old_and_new_hashes() {
    let mut tree = MerkleTree::new(2).unwrap();
    let b = tree.bucket_of("k");
    let parent = path(1, b.index / 16);
    let check = |tree: &MerkleTree, expected: u64| {
        assert_eq!(tree.root(), expected);
        assert_eq!(tree.node(parent), Ok(expected));
        assert_eq!(tree.node(b), Ok(expected));
        assert_sums(tree);
    };
    tree.update("k", None, Some(7));
    check(&tree, 7);
    tree.update("k", Some(7), Some(u64::MAX));
    check(&tree, u64::MAX);
    // A no-op update changes nothing.
    tree.update("k", Some(u64::MAX), Some(u64::MAX));
    check(&tree, u64::MAX);
    tree.update("k", Some(u64::MAX), None);
    check(&tree, 0);
    assert_eq!(tree, MerkleTree::new(2).unwrap());
}

#[test]
fn nodes_are_wrapping_sums_independent_of_order() {
    let entries: Vec<(String, u64)> = (0..300u64)
        .map(|i| (format!("k{i}"), i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let mut forward = MerkleTree::new(3).unwrap();
    for (k, h) in &entries {
        forward.update(k, None, Some(*h));
    }
    let mut backward = MerkleTree::new(3).unwrap();
    for (k, h) in entries.iter().rev() {
        backward.update(k, None, Some(*h));
    }
    assert_eq!(forward, backward);
    assert_sums(&forward);
    let total = entries.iter().fold(0u64, |a, (_, h)| a.wrapping_add(*h));
    assert_eq!(forward.root(), total);
    // Removing everything again gives the empty tree.
    for (k, h) in &entries {
        forward.update(k, Some(*h), None);
    }
    assert_eq!(forward, MerkleTree::new(3).unwrap());
}

#[test]
fn differing_children_finds_the_changed_branch() {
    let mut a = MerkleTree::new(2).unwrap();
    for i in 0..100 {
        a.update(&format!("k{i}"), None, Some(i + 1));
    }
    let mut b = a.clone();
    b.update("k42", Some(43), Some(4_242));
    let leaf = a.bucket_of("k42");
    let top = path(1, leaf.index / 16);
    assert_eq!(
        a.differing_children(MerklePath::ROOT, b.children(MerklePath::ROOT).unwrap()),
        Ok(vec![top])
    );
    assert_eq!(
        a.differing_children(top, b.children(top).unwrap()),
        Ok(vec![leaf])
    );
    assert_eq!(
        a.differing_children(MerklePath::ROOT, a.children(MerklePath::ROOT).unwrap()),
        Ok(vec![])
    );
}

#[test]
fn clear_empties_the_tree() {
    let mut t = MerkleTree::new(1).unwrap();
    t.update("k", None, Some(1));
    t.clear();
    assert_eq!(t, MerkleTree::new(1).unwrap());
}

#[test]
fn child_and_display() {
    assert_eq!(MerklePath::ROOT.child(3), path(1, 3));
    assert_eq!(path(1, 3).child(15), path(2, 63));
    assert_eq!(path(2, 63).to_string(), "2/63");
    assert_eq!(MerklePath::default(), MerklePath::ROOT);
    // Hostile paths give a path no tree contains instead of overflowing.
    let tree = MerkleTree::new(MAX_DEPTH).unwrap();
    for p in [path(1, u32::MAX), path(u8::MAX, 0), path(u8::MAX, u32::MAX)] {
        assert!(!tree.contains(p.child(15)), "{p}");
    }
}

#[test]
fn diff_leaf_table() {
    // (local, remote, differing keys)
    type Digest = &'static [(&'static str, u64)];
    let cases: [(Digest, Digest, &[&str]); 8] = [
        (&[], &[], &[]),
        (&[("a", 1)], &[], &["a"]),
        (&[], &[("a", 1)], &["a"]),
        (&[("a", 1), ("b", 2)], &[("a", 1), ("b", 2)], &[]),
        (&[("a", 1), ("b", 2)], &[("a", 1), ("b", 3)], &["b"]),
        (
            &[("a", 1), ("c", 3), ("e", 5)],
            &[("b", 2), ("c", 3), ("d", 4)],
            &["a", "b", "d", "e"],
        ),
        (
            &[("a", 1), ("b", 2), ("c", 3)],
            &[("c", 9)],
            &["a", "b", "c"],
        ),
        (&[("x", 0)], &[("a", 0), ("x", 0), ("z", 0)], &["a", "z"]),
    ];
    for (local, remote, expected) in cases {
        let (l, r) = (digest(local), digest(remote));
        assert_eq!(diff_leaf(&l, &r), expected, "{local:?} vs {remote:?}");
        // Symmetric: the same keys differ seen from the other side.
        assert_eq!(diff_leaf(&r, &l), expected, "{remote:?} vs {local:?}");
    }
}

#[test]
fn leaf_digests_groups_requested_buckets() {
    let tree = MerkleTree::new(1).unwrap();
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    let entries = || keys.iter().zip(0u64..).map(|(k, h)| (k.as_str(), h));
    let empty_bucket = (0..16)
        .map(|c| MerklePath::ROOT.child(c))
        .find(|p| keys.iter().all(|k| tree.bucket_of(k) != *p));
    let (first, second) = (tree.bucket_of("k0"), tree.bucket_of("k1"));

    let mut request = vec![second, first, MerklePath::ROOT, path(1, 99)];
    request.extend(empty_bucket);
    let digests = leaf_digests(&tree, &request, entries());
    let mut expected_paths = vec![first, second];
    expected_paths.extend(empty_bucket);
    expected_paths.sort_unstable();
    expected_paths.dedup();
    assert_eq!(
        digests.iter().map(|d| d.path).collect::<Vec<_>>(),
        expected_paths,
        "only the requested leaves, in path order"
    );
    for d in &digests {
        let mut want: Vec<(String, u64)> = entries()
            .filter(|(k, _)| tree.bucket_of(k) == d.path)
            .map(|(k, h)| (k.to_owned(), h))
            .collect();
        want.sort_unstable();
        assert_eq!(d.entries, want, "bucket {}", d.path);
    }
    if let Some(p) = empty_bucket {
        assert!(digests.iter().any(|d| d.path == p && d.entries.is_empty()));
    }
    assert!(leaf_digests(&tree, &[MerklePath::ROOT], entries()).is_empty());
    assert!(leaf_digests(&tree, &[], entries()).is_empty());
}
