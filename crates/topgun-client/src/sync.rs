//! The client's side of the Merkle sync exchange, as a state machine with
//! no I/O: it says which message to send next and consumes the server's
//! answers; [`crate::Client::sync_lww`] and [`crate::Client::sync_or`] drive
//! it over the connection.
//!
//! `SYNC_INIT` -> `SYNC_RESP_ROOT`; if the roots differ, one
//! `MERKLE_REQ_BUCKET` per tree level with every differing inner node of
//! that level -> `SYNC_RESP_BUCKETS`; then `SYNC_REQ_LEAF` with the local
//! digests of the differing leaves (in chunks, so no request outgrows the
//! message limit) -> one or more `SYNC_RESP_LEAF` parts, up to the one
//! marked `last`, whose records are merged into the local map as they
//! arrive. The server's `wanted_keys` (from every part) are reported, less
//! the keys the merge made equal to the server's state.

use std::collections::{BTreeSet, HashSet, VecDeque};

use topgun_core::merkle::LeafDigest;
use topgun_core::{LwwMap, LwwRecord, MapKind, MerklePath, MerkleTree, OrEntry, OrMap};
use topgun_protocol::{
    ClientMessage, Hash64, LeafRecords, Message as _, ServerMessage, WireLeafDigest, WireMapKind,
};

use crate::error::{ClientError, ProtocolViolation};

/// At most this many (key, hash) entries go into one `SYNC_REQ_LEAF`
/// (about 40 bytes each in bincode, so far below the default 4 MiB limit).
pub(crate) const LEAF_ENTRIES_PER_REQUEST: usize = 16_384;

/// What a sync exchange did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the roots were equal at the start (nothing to do).
    pub already_in_sync: bool,
    /// Request/response round trips, `SYNC_INIT` included.
    pub round_trips: u32,
    /// Server messages received: one per round trip, plus one for every
    /// extra part of a `SYNC_RESP_LEAF` answer the server split.
    pub messages_received: u32,
    /// Leaf buckets whose digests were compared.
    pub leaves_compared: usize,
    /// Records (LWW) or entries (OR) the server sent, tombstones included.
    pub records_received: usize,
    /// How many of them changed the local map.
    pub records_applied: usize,
    /// Keys the server asked for (`wanted_keys`) whose local state, after
    /// the merge, is still not the server's: the client holds writes the
    /// server lacks and should send its state for them. (Keys the server
    /// listed only because the client was behind are left out.)
    pub wanted_keys: Vec<String>,
    /// Payload bytes of the frames sent.
    pub bytes_sent: u64,
    /// Payload bytes of the frames received.
    pub bytes_received: u64,
}

/// What merging a `SYNC_RESP_LEAF` did to the local replica.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// Records that changed the local map.
    pub(crate) applied: usize,
    /// Keys whose local state is now exactly the server's (so the server
    /// does not need the client's).
    pub(crate) converged: HashSet<String>,
}

/// A local replica that can take part in a sync.
pub(crate) trait SyncReplica {
    /// The map kind.
    const KIND: MapKind;
    /// The Merkle tree.
    fn tree(&self) -> &MerkleTree;
    /// The digests of the given leaf buckets.
    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest>;
    /// Merges the server's records, or returns `None` when they are of the
    /// other kind.
    fn merge(&mut self, records: LeafRecords) -> Option<Merged>;
}

impl SyncReplica for LwwMap {
    const KIND: MapKind = MapKind::Lww;

    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }

    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(leaves)
    }

    fn merge(&mut self, records: LeafRecords) -> Option<Merged> {
        let LeafRecords::Lww(records) = records else {
            return None;
        };
        let mut merged = Merged::default();
        for r in records {
            let record = LwwRecord::from(r.record);
            if LwwMap::merge(self, r.key.as_str(), record.clone()).changed() {
                merged.applied += 1;
            }
            if self.get(&r.key) == Some(&record) {
                merged.converged.insert(r.key);
            }
        }
        Some(merged)
    }
}

impl SyncReplica for OrMap {
    const KIND: MapKind = MapKind::Or;

    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }

    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(leaves)
    }

    fn merge(&mut self, records: LeafRecords) -> Option<Merged> {
        let LeafRecords::Or(entries) = records else {
            return None;
        };
        let mut merged = Merged::default();
        for e in entries {
            let entry = OrEntry::from(e.entry);
            if self.merge_entry(&e.key, &entry) {
                merged.applied += 1;
            }
            if self.get(&e.key) == Some(&entry) {
                merged.converged.insert(e.key);
            }
        }
        Some(merged)
    }
}

/// What to do after a step.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Send this request and feed the answer back.
    Send(ClientMessage),
    /// The answer to the last request continues: feed its next part back.
    Wait,
    /// The exchange is complete.
    Done,
}

#[derive(Debug)]
enum State {
    AwaitRoot,
    AwaitBuckets {
        requested: Vec<MerklePath>,
        leaves: Vec<MerklePath>,
    },
    /// Awaiting (the rest of) a `SYNC_REQ_LEAF`'s answer.
    AwaitLeaf {
        requested: BTreeSet<MerklePath>,
        /// Keys the parts so far made equal to the server's state.
        converged: HashSet<String>,
        /// Wanted keys of the parts so far.
        wanted: Vec<String>,
    },
    Done,
}

/// One sync exchange of one map.
#[derive(Debug)]
pub(crate) struct SyncMachine {
    map: String,
    kind: WireMapKind,
    state: State,
    leaf_chunks: VecDeque<Vec<LeafDigest>>,
    report: SyncReport,
}

impl SyncMachine {
    /// Starts a sync of `map`; returns the machine and the `SYNC_INIT` to
    /// send. Fails when the replica's tree depth is not the protocol's.
    pub(crate) fn start<R: SyncReplica>(
        map: &str,
        replica: &R,
    ) -> Result<(Self, ClientMessage), ClientError> {
        let depth = replica.tree().depth();
        if depth != topgun_protocol::SYNC_MERKLE_DEPTH {
            return Err(ClientError::MerkleDepthMismatch {
                local: depth,
                expected: topgun_protocol::SYNC_MERKLE_DEPTH,
            });
        }
        let kind = WireMapKind::from(R::KIND);
        let init = ClientMessage::SyncInit {
            map: map.to_owned(),
            kind,
            root: Hash64(replica.tree().root()),
        };
        let machine = SyncMachine {
            map: map.to_owned(),
            kind,
            state: State::AwaitRoot,
            leaf_chunks: VecDeque::new(),
            report: SyncReport {
                round_trips: 0,
                ..SyncReport::default()
            },
        };
        Ok((machine, init))
    }

    /// The wire kind of the map being synced.
    pub(crate) fn kind(&self) -> WireMapKind {
        self.kind
    }

    /// Consumes the server's answer to the last request, or one part of
    /// it.
    pub(crate) fn handle<R: SyncReplica>(
        &mut self,
        replica: &mut R,
        msg: ServerMessage,
    ) -> Result<Step, ClientError> {
        self.report.messages_received += 1;
        let step = self.step(replica, msg)?;
        if step != Step::Wait {
            self.report.round_trips += 1;
        }
        Ok(step)
    }

    fn step<R: SyncReplica>(
        &mut self,
        replica: &mut R,
        msg: ServerMessage,
    ) -> Result<Step, ClientError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match (state, msg) {
            (State::AwaitRoot, ServerMessage::SyncRespRoot { root, .. }) => {
                if root.0 == replica.tree().root() {
                    self.report.already_in_sync = true;
                    return Ok(Step::Done);
                }
                Ok(self.request_buckets(vec![MerklePath::ROOT], Vec::new()))
            }
            (
                State::AwaitBuckets {
                    requested,
                    mut leaves,
                },
                ServerMessage::SyncRespBuckets { buckets, .. },
            ) => {
                let mismatch = buckets.len() != requested.len()
                    || buckets
                        .iter()
                        .zip(&requested)
                        .any(|(b, p)| MerklePath::from(b.path) != *p);
                if mismatch {
                    return Err(ProtocolViolation::BucketMismatch {
                        requested: requested.len(),
                        received: buckets.len(),
                    }
                    .into());
                }
                let tree = replica.tree();
                let mut inner = Vec::new();
                for b in &buckets {
                    let differing = tree
                        .differing_children(MerklePath::from(b.path), &b.child_hashes())
                        .map_err(ProtocolViolation::Merkle)?;
                    for child in differing {
                        if child.level >= tree.depth() {
                            leaves.push(child);
                        } else {
                            inner.push(child);
                        }
                    }
                }
                if !inner.is_empty() {
                    return Ok(self.request_buckets(inner, leaves));
                }
                self.report.leaves_compared = leaves.len();
                self.leaf_chunks = chunk_digests(replica.digests(&leaves));
                Ok(self.request_next_leaves())
            }
            (
                State::AwaitLeaf {
                    requested,
                    mut converged,
                    mut wanted,
                },
                ServerMessage::SyncRespLeaf {
                    records,
                    wanted_keys,
                    last,
                    ..
                },
            ) => {
                if records.kind() != self.kind {
                    return Err(ProtocolViolation::MapKindMismatch.into());
                }
                let tree = replica.tree();
                if let Some(key) =
                    record_keys(&records).find(|k| !requested.contains(&tree.bucket_of(k)))
                {
                    return Err(ProtocolViolation::KeyOutsideRequestedLeaves {
                        key: key.to_owned(),
                    }
                    .into());
                }
                self.report.records_received += records.len();
                let merged = replica
                    .merge(records)
                    .ok_or(ProtocolViolation::MapKindMismatch)?;
                self.report.records_applied += merged.applied;
                converged.extend(merged.converged);
                wanted.extend(wanted_keys);
                if !last {
                    self.state = State::AwaitLeaf {
                        requested,
                        converged,
                        wanted,
                    };
                    return Ok(Step::Wait);
                }
                self.report
                    .wanted_keys
                    .extend(wanted.into_iter().filter(|k| !converged.contains(k)));
                Ok(self.request_next_leaves())
            }
            (state, other) => {
                let expected = match state {
                    State::AwaitRoot => "SYNC_RESP_ROOT",
                    State::AwaitBuckets { .. } => "SYNC_RESP_BUCKETS",
                    State::AwaitLeaf { .. } => "SYNC_RESP_LEAF",
                    State::Done => "nothing",
                };
                Err(ProtocolViolation::UnexpectedSyncResponse {
                    expected,
                    got: other.name(),
                }
                .into())
            }
        }
    }

    fn request_buckets(&mut self, paths: Vec<MerklePath>, leaves: Vec<MerklePath>) -> Step {
        let msg = ClientMessage::MerkleReqBucket {
            map: self.map.clone(),
            kind: self.kind,
            paths: paths.iter().map(|p| (*p).into()).collect(),
        };
        self.state = State::AwaitBuckets {
            requested: paths,
            leaves,
        };
        Step::Send(msg)
    }

    fn request_next_leaves(&mut self) -> Step {
        let Some(chunk) = self.leaf_chunks.pop_front() else {
            self.state = State::Done;
            return Step::Done;
        };
        let requested = chunk.iter().map(|d| d.path).collect();
        let msg = ClientMessage::SyncReqLeaf {
            map: self.map.clone(),
            kind: self.kind,
            leaves: chunk.into_iter().map(WireLeafDigest::from).collect(),
        };
        self.state = State::AwaitLeaf {
            requested,
            converged: HashSet::new(),
            wanted: Vec::new(),
        };
        Step::Send(msg)
    }

    /// The report so far (complete once [`Step::Done`] was returned).
    pub(crate) fn into_report(self) -> SyncReport {
        self.report
    }
}

/// Splits digests into requests of at most [`LEAF_ENTRIES_PER_REQUEST`]
/// entries (a single bigger leaf goes alone).
fn chunk_digests(digests: Vec<LeafDigest>) -> VecDeque<Vec<LeafDigest>> {
    let mut chunks = VecDeque::new();
    let mut current = Vec::new();
    let mut entries = 0;
    for d in digests {
        if !current.is_empty() && entries + d.entries.len() > LEAF_ENTRIES_PER_REQUEST {
            chunks.push_back(std::mem::take(&mut current));
            entries = 0;
        }
        entries += d.entries.len();
        current.push(d);
    }
    if !current.is_empty() {
        chunks.push_back(current);
    }
    chunks
}

fn record_keys(records: &LeafRecords) -> Box<dyn Iterator<Item = &str> + '_> {
    match records {
        LeafRecords::Lww(r) => Box::new(r.iter().map(|r| r.key.as_str())),
        LeafRecords::Or(e) => Box::new(e.iter().map(|e| e.key.as_str())),
    }
}

#[cfg(test)]
mod tests;
