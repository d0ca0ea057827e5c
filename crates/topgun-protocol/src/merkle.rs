//! The Merkle sync exchange's payloads: node paths, child hashes, leaf
//! digests and the records that differ.

use serde::{Deserialize, Serialize};
use topgun_core::merkle::{FANOUT, LeafDigest, MerkleError};
use topgun_core::{MerklePath, MerkleTree};

use crate::ids::Hash64;
use crate::record::{WireLwwRecord, WireMapKind, WireOrEntry};

/// A node of a Merkle tree (mirror of [`MerklePath`]): `level` 0 is the
/// root, `index` counts nodes left to right within the level.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct WireMerklePath {
    /// Distance from the root.
    pub level: u8,
    /// Position within the level, `0..16^level`.
    pub index: u32,
}

/// The hashes of the 16 children of one inner node. The fixed-size array
/// makes a wrong fan-out undecodable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketHashes {
    /// The inner node.
    pub path: WireMerklePath,
    /// Its children's hashes, child 0 first.
    pub children: [Hash64; FANOUT],
}

/// One entry of a leaf digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHash {
    /// The key.
    pub key: String,
    /// Its entry hash (`topgun_core::lww::entry_hash` or
    /// `topgun_core::or::entry_hash`).
    pub hash: Hash64,
}

/// One leaf bucket's contents (mirror of [`LeafDigest`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireLeafDigest {
    /// The leaf bucket.
    pub path: WireMerklePath,
    /// Its entries, sorted by key.
    #[serde(deserialize_with = "crate::seq::bounded")]
    pub entries: Vec<KeyHash>,
}

/// A last-writer-wins record with its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LwwKeyRecord {
    /// The key.
    pub key: String,
    /// Its record (a tombstone included).
    pub record: WireLwwRecord,
}

/// An observed-remove entry with its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrKeyEntry {
    /// The key.
    pub key: String,
    /// Its items and tombstones.
    pub entry: WireOrEntry,
}

/// The server's state for the keys that differ, by map kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LeafRecords {
    /// Records of a last-writer-wins map.
    #[serde(deserialize_with = "crate::seq::bounded")]
    Lww(Vec<LwwKeyRecord>),
    /// Entries of an observed-remove map.
    #[serde(deserialize_with = "crate::seq::bounded")]
    Or(Vec<OrKeyEntry>),
}

impl LeafRecords {
    /// The kind of map these records belong to.
    pub fn kind(&self) -> WireMapKind {
        match self {
            LeafRecords::Lww(_) => WireMapKind::Lww,
            LeafRecords::Or(_) => WireMapKind::Or,
        }
    }

    /// How many keys are carried.
    pub fn len(&self) -> usize {
        match self {
            LeafRecords::Lww(r) => r.len(),
            LeafRecords::Or(r) => r.len(),
        }
    }

    /// Whether no key is carried.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<MerklePath> for WireMerklePath {
    fn from(p: MerklePath) -> Self {
        WireMerklePath {
            level: p.level,
            index: p.index,
        }
    }
}

impl From<WireMerklePath> for MerklePath {
    /// Any path converts; whether it names a node of a given tree is for
    /// [`MerkleTree::contains`] to say.
    fn from(p: WireMerklePath) -> Self {
        MerklePath {
            level: p.level,
            index: p.index,
        }
    }
}

impl BucketHashes {
    /// The child hashes of the inner node at `path` of `tree`; fails when
    /// `path` is not an inner node of the tree.
    pub fn from_tree(tree: &MerkleTree, path: MerklePath) -> Result<Self, MerkleError> {
        let children = tree.children(path)?;
        let mut out = [Hash64(0); FANOUT];
        if children.len() != FANOUT {
            return Err(MerkleError::BadFanout(children.len()));
        }
        for (o, c) in out.iter_mut().zip(children) {
            *o = Hash64(*c);
        }
        Ok(BucketHashes {
            path: path.into(),
            children: out,
        })
    }

    /// The child hashes as plain numbers, for
    /// [`MerkleTree::differing_children`].
    pub fn child_hashes(&self) -> [u64; FANOUT] {
        self.children.map(|h| h.0)
    }
}

impl From<LeafDigest> for WireLeafDigest {
    fn from(d: LeafDigest) -> Self {
        WireLeafDigest {
            path: d.path.into(),
            entries: d
                .entries
                .into_iter()
                .map(|(key, hash)| KeyHash {
                    key,
                    hash: Hash64(hash),
                })
                .collect(),
        }
    }
}

impl From<WireLeafDigest> for LeafDigest {
    fn from(d: WireLeafDigest) -> Self {
        LeafDigest {
            path: d.path.into(),
            entries: d.entries.into_iter().map(|e| (e.key, e.hash.0)).collect(),
        }
    }
}
