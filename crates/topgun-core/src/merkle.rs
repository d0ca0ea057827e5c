//! Merkle trees over a map's records, and the sans-IO steps of a diff.
//!
//! Keys are placed in buckets by the top bits of their hash; a tree of depth
//! `d` has `16^d` leaf buckets and every inner node has 16 children. A node's
//! hash is the wrapping sum of the entry hashes beneath it, which makes
//! updates O(depth) and independent of insertion order. Entry hashes cover
//! the key, the timestamp(s) and the value, so replicas agree on a bucket's
//! hash exactly when they hold the same records in it (up to 64-bit hash
//! collisions).
//!
//! Two replicas find their differences by descending from the root: compare
//! roots, then the children of every differing node ([`MerkleTree::differing_children`]),
//! and at the leaves compare the (key, entry hash) lists
//! ([`diff_leaf`]). The wire protocol carries exactly these steps.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64;

/// Children per inner node.
pub const FANOUT: usize = 16;
/// Depth used by every map unless configured otherwise: 4,096 leaf buckets.
pub const DEFAULT_DEPTH: u8 = 3;
/// The deepest supported tree: 16^5 (about a million) leaf buckets, 8 MiB of
/// node hashes.
pub const MAX_DEPTH: u8 = 5;

/// A node in a Merkle tree: `level` 0 is the root, `level == depth` are the
/// leaf buckets, and `index` counts nodes left to right within a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerklePath {
    /// Distance from the root.
    pub level: u8,
    /// Position within the level, `0..16^level`.
    pub index: u32,
}

impl MerklePath {
    /// The root node.
    pub const ROOT: MerklePath = MerklePath { level: 0, index: 0 };

    /// The `c`-th child of this node (`c < 16`).
    ///
    /// Never panics, since paths arrive from peers: when the child's index
    /// does not fit, the result has level `u8::MAX`, which no tree contains.
    pub fn child(self, c: u32) -> MerklePath {
        let index = self
            .index
            .checked_mul(FANOUT as u32)
            .and_then(|i| i.checked_add(c));
        match (self.level.checked_add(1), index) {
            (Some(level), Some(index)) => MerklePath { level, index },
            _ => MerklePath {
                level: u8::MAX,
                index: self.index,
            },
        }
    }
}

impl fmt::Display for MerklePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level, self.index)
    }
}

/// Why a Merkle operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The requested depth is outside `1..=MAX_DEPTH`.
    #[error("merkle depth {0} is outside 1..={MAX_DEPTH}")]
    InvalidDepth(u8),
    /// The path does not name a node of this tree.
    #[error("merkle path {0} does not exist in a tree of depth {1}")]
    NoSuchNode(MerklePath, u8),
    /// The peer sent a child list that is not exactly 16 hashes long.
    #[error("expected {FANOUT} child hashes, got {0}")]
    BadFanout(usize),
}

/// The hash that places `key` in a bucket.
pub fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// A Merkle tree of fixed depth, updated incrementally as entries change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    depth: u8,
    /// `levels[l]` holds the `16^l` node hashes of level `l`.
    levels: Vec<Vec<u64>>,
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::build(DEFAULT_DEPTH)
    }
}

impl MerkleTree {
    /// An empty tree of `depth` levels below the root.
    pub fn new(depth: u8) -> Result<Self, MerkleError> {
        if depth == 0 || depth > MAX_DEPTH {
            return Err(MerkleError::InvalidDepth(depth));
        }
        Ok(Self::build(depth))
    }

    fn build(depth: u8) -> Self {
        let levels = (0..=u32::from(depth))
            .map(|l| vec![0; FANOUT.pow(l)])
            .collect();
        MerkleTree { depth, levels }
    }

    /// Levels below the root.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The root hash: equal on two replicas holding the same entries.
    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The leaf bucket that holds `key`.
    pub fn bucket_of(&self, key: &str) -> MerklePath {
        self.bucket_of_hash(key_hash(key))
    }

    fn bucket_of_hash(&self, h: u64) -> MerklePath {
        let index = h >> (64 - 4 * u32::from(self.depth));
        MerklePath {
            level: self.depth,
            // At most 20 bits remain after the shift (depth <= 5).
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    /// Whether `path` names a node of this tree.
    pub fn contains(&self, path: MerklePath) -> bool {
        path.level <= self.depth && (path.index as usize) < FANOUT.pow(u32::from(path.level))
    }

    /// Whether `path` is a leaf bucket of this tree.
    pub fn is_leaf(&self, path: MerklePath) -> bool {
        path.level == self.depth && self.contains(path)
    }

    /// Records that the entry for `key` changed from hash `old` to hash
    /// `new` (`None` for absent).
    pub fn update(&mut self, key: &str, old: Option<u64>, new: Option<u64>) {
        let delta = new.unwrap_or(0).wrapping_sub(old.unwrap_or(0));
        if delta == 0 {
            return;
        }
        let mut index = self.bucket_of(key).index as usize;
        for level in (0..=self.depth as usize).rev() {
            let node = &mut self.levels[level][index];
            *node = node.wrapping_add(delta);
            index /= FANOUT;
        }
    }

    /// The hash of the node at `path`.
    pub fn node(&self, path: MerklePath) -> Result<u64, MerkleError> {
        if !self.contains(path) {
            return Err(MerkleError::NoSuchNode(path, self.depth));
        }
        Ok(self.levels[path.level as usize][path.index as usize])
    }

    /// The 16 child hashes of the inner node at `path`.
    pub fn children(&self, path: MerklePath) -> Result<&[u64], MerkleError> {
        if !self.contains(path) || path.level >= self.depth {
            return Err(MerkleError::NoSuchNode(path, self.depth));
        }
        let start = path.index as usize * FANOUT;
        Ok(&self.levels[path.level as usize + 1][start..start + FANOUT])
    }

    /// One descent step: the children of `path` whose hash differs from the
    /// peer's `remote_children`.
    pub fn differing_children(
        &self,
        path: MerklePath,
        remote_children: &[u64],
    ) -> Result<Vec<MerklePath>, MerkleError> {
        if remote_children.len() != FANOUT {
            return Err(MerkleError::BadFanout(remote_children.len()));
        }
        let local = self.children(path)?;
        Ok(local
            .iter()
            .zip(remote_children)
            .zip(0u32..)
            .filter(|((l, r), _)| l != r)
            .map(|(_, c)| path.child(c))
            .collect())
    }

    /// Empties the tree.
    pub fn clear(&mut self) {
        for level in &mut self.levels {
            level.fill(0);
        }
    }
}

/// One leaf bucket's contents as (key, entry hash) pairs, sorted by key: what
/// a replica sends so its peer can tell which keys differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafDigest {
    /// The bucket.
    pub path: MerklePath,
    /// The bucket's entries, sorted by key.
    pub entries: Vec<(String, u64)>,
}

impl Default for MerklePath {
    fn default() -> Self {
        MerklePath::ROOT
    }
}

/// The keys of one leaf bucket that differ between a local and a remote
/// digest: present on one side only, or present on both with different
/// entry hashes. Both inputs must be sorted by key; the output is sorted.
pub fn diff_leaf(local: &[(String, u64)], remote: &[(String, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < local.len() || j < remote.len() {
        match (local.get(i), remote.get(j)) {
            (Some((lk, lh)), Some((rk, rh))) => match lk.cmp(rk) {
                std::cmp::Ordering::Less => {
                    out.push(lk.clone());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(rk.clone());
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if lh != rh {
                        out.push(lk.clone());
                    }
                    i += 1;
                    j += 1;
                }
            },
            (Some((lk, _)), None) => {
                out.push(lk.clone());
                i += 1;
            }
            (None, Some((rk, _))) => {
                out.push(rk.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Groups `(key, entry hash)` pairs into the digests of the requested leaf
/// buckets of `tree`, in one pass over `entries`. Buckets not requested are
/// skipped; requested buckets with no entries get an empty digest.
pub fn leaf_digests<'a>(
    tree: &MerkleTree,
    buckets: &[MerklePath],
    entries: impl Iterator<Item = (&'a str, u64)>,
) -> Vec<LeafDigest> {
    let mut wanted: std::collections::BTreeMap<MerklePath, Vec<(String, u64)>> = buckets
        .iter()
        .filter(|p| tree.is_leaf(**p))
        .map(|p| (*p, Vec::new()))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    for (key, hash) in entries {
        if let Some(list) = wanted.get_mut(&tree.bucket_of(key)) {
            list.push((key.to_owned(), hash));
        }
    }
    wanted
        .into_iter()
        .map(|(path, mut entries)| {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            LeafDigest { path, entries }
        })
        .collect()
}

#[cfg(test)]
mod tests;
