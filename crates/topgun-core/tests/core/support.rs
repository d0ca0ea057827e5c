//! Helpers shared by the integration tests: HLC-like unique timestamps and
//! the Merkle descent diff, done the way the sync protocol does it.

use std::collections::HashMap;

use topgun_core::merkle::{LeafDigest, diff_leaf};
use topgun_core::{LwwMap, MerklePath, MerkleTree, NodeId, OrMap, Timestamp};

/// Stamps `(node, millis)` pairs the way hybrid logical clocks would: the
/// n-th event of a node within one millisecond gets counter n, so no two
/// stamps are equal (the assumption last-writer-wins relies on).
#[derive(Debug, Default)]
pub struct Stamper(HashMap<(u64, u64), u32>);

impl Stamper {
    pub fn stamp(&mut self, node: u64, millis: u64) -> Timestamp {
        let counter = self.0.entry((node, millis)).or_insert(0);
        let t = Timestamp::new(millis, *counter, NodeId(node));
        *counter += 1;
        t
    }
}

/// A replicated map, as the Merkle diff sees it.
pub trait Synced {
    fn tree(&self) -> &MerkleTree;
    fn digests(&self, buckets: &[MerklePath]) -> Vec<LeafDigest>;
}

impl Synced for LwwMap {
    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }
    fn digests(&self, buckets: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(buckets)
    }
}

impl Synced for OrMap {
    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }
    fn digests(&self, buckets: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(buckets)
    }
}

/// What a descent diff found, and how much it asked for.
#[derive(Debug, Default)]
pub struct Descent {
    /// The differing keys, sorted.
    pub keys: Vec<String>,
    /// How many inner nodes' children were exchanged.
    pub inner_nodes: usize,
    /// How many leaf buckets' digests were exchanged.
    pub leaves: usize,
}

/// The keys that differ between `local` and `remote`, found as the sync
/// protocol finds them: compare the roots, then, level by level, the
/// children of every node that differs ([`MerkleTree::differing_children`]
/// against the peer's [`MerkleTree::children`]), and finally the digests of
/// the differing leaf buckets ([`diff_leaf`]).
pub fn descent_diff(local: &impl Synced, remote: &impl Synced) -> Descent {
    let (lt, rt) = (local.tree(), remote.tree());
    assert_eq!(lt.depth(), rt.depth(), "replicas must agree on the depth");
    let mut out = Descent::default();
    if lt.root() == rt.root() {
        return out;
    }
    let mut differing = vec![MerklePath::ROOT];
    for _ in 0..lt.depth() {
        let mut next = Vec::new();
        for path in differing {
            let remote_children = rt.children(path).expect("an inner node of the peer's tree");
            next.extend(
                lt.differing_children(path, remote_children)
                    .expect("an inner node and 16 children"),
            );
            out.inner_nodes += 1;
        }
        differing = next;
    }
    assert!(differing.iter().all(|p| lt.is_leaf(*p)));
    let (ld, rd) = (local.digests(&differing), remote.digests(&differing));
    assert_eq!(ld.len(), differing.len(), "one digest per requested leaf");
    assert_eq!(rd.len(), differing.len(), "one digest per requested leaf");
    for (l, r) in ld.iter().zip(&rd) {
        assert_eq!(l.path, r.path);
        out.keys.extend(diff_leaf(&l.entries, &r.entries));
    }
    out.leaves = differing.len();
    out.keys.sort_unstable();
    out
}
