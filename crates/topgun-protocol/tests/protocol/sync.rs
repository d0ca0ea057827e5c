//! The Merkle sync exchange of docs/protocol.md, run end to end through the
//! codec: a client and a server replica of each map kind diverge, the
//! client descends the server's tree with `SYNC_INIT`, `MERKLE_REQ_BUCKET`
//! and `SYNC_REQ_LEAF`, merges the records of `SYNC_RESP_LEAF` and pushes
//! its state for the `wanted_keys`; afterwards both replicas are equal.

use topgun_core::merkle::{LeafDigest, diff_leaf};
use topgun_core::{
    LwwMap, LwwRecord, MerklePath, MerkleTree, NodeId, OrEntry, OrItem, OrMap, Timestamp, Value,
};
use topgun_protocol::*;

/// Sends a message through one encoding and back, as the wire would.
fn wire<M: Message + PartialEq + std::fmt::Debug>(codec: Codec, msg: M) -> M {
    let back: M = codec.decode(&codec.encode(&msg).unwrap()).unwrap();
    assert_eq!(back, msg);
    back
}

/// The server's side of the exchange, over whatever replica it holds.
trait Replica {
    fn kind(&self) -> WireMapKind;
    fn tree(&self) -> &MerkleTree;
    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest>;
    /// The records of `keys` this replica holds.
    fn records(&self, keys: &[String]) -> LeafRecords;
    /// Merges a peer's records.
    fn merge(&mut self, records: LeafRecords);
}

impl Replica for LwwMap {
    fn kind(&self) -> WireMapKind {
        WireMapKind::Lww
    }
    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }
    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(leaves)
    }
    fn records(&self, keys: &[String]) -> LeafRecords {
        LeafRecords::Lww(
            keys.iter()
                .filter_map(|k| {
                    self.get(k).map(|r| LwwKeyRecord {
                        key: k.clone(),
                        record: r.try_into().unwrap(),
                    })
                })
                .collect(),
        )
    }
    fn merge(&mut self, records: LeafRecords) {
        let LeafRecords::Lww(records) = records else {
            panic!("kind mismatch")
        };
        for r in records {
            LwwMap::merge(self, r.key, LwwRecord::from(r.record));
        }
    }
}

impl Replica for OrMap {
    fn kind(&self) -> WireMapKind {
        WireMapKind::Or
    }
    fn tree(&self) -> &MerkleTree {
        self.merkle()
    }
    fn digests(&self, leaves: &[MerklePath]) -> Vec<LeafDigest> {
        self.leaf_digests(leaves)
    }
    fn records(&self, keys: &[String]) -> LeafRecords {
        LeafRecords::Or(
            keys.iter()
                .filter_map(|k| {
                    self.get(k).map(|e| OrKeyEntry {
                        key: k.clone(),
                        entry: e.try_into().unwrap(),
                    })
                })
                .collect(),
        )
    }
    fn merge(&mut self, records: LeafRecords) {
        let LeafRecords::Or(entries) = records else {
            panic!("kind mismatch")
        };
        for e in entries {
            self.merge_entry(&e.key, &OrEntry::from(e.entry));
        }
    }
}

/// The server's answer to one client sync message.
fn serve(server: &impl Replica, msg: ClientMessage) -> ServerMessage {
    match msg {
        ClientMessage::SyncInit { map, kind, .. } => ServerMessage::SyncRespRoot {
            map,
            kind,
            root: Hash64(server.tree().root()),
        },
        ClientMessage::MerkleReqBucket { map, kind, paths } => ServerMessage::SyncRespBuckets {
            map,
            kind,
            buckets: paths
                .into_iter()
                .map(|p| BucketHashes::from_tree(server.tree(), p.into()).unwrap())
                .collect(),
        },
        ClientMessage::SyncReqLeaf { map, leaves, .. } => {
            let mut differing = Vec::new();
            let mut wanted_keys = Vec::new();
            for remote in leaves.into_iter().map(LeafDigest::from) {
                let local = server.digests(&[remote.path]);
                let local = local.first().map_or(&[][..], |d| d.entries.as_slice());
                for key in diff_leaf(local, &remote.entries) {
                    if remote.entries.iter().any(|(k, _)| *k == key) {
                        wanted_keys.push(key.clone());
                    }
                    differing.push(key);
                }
            }
            ServerMessage::SyncRespLeaf {
                map,
                records: server.records(&differing),
                wanted_keys,
                // This server answers in one message.
                last: true,
            }
        }
        other => panic!("not a sync message: {other:?}"),
    }
}

/// Runs the client's side of the exchange; returns the server's answer to
/// `SYNC_REQ_LEAF` (or `None` when the roots already agree) and the number
/// of round trips.
fn sync(
    codec: Codec,
    client: &mut impl Replica,
    server: &mut impl Replica,
) -> (Option<Vec<String>>, usize) {
    let map = "m".to_owned();
    let kind = client.kind();
    let mut trips = 1;
    let init = ClientMessage::SyncInit {
        map: map.clone(),
        kind,
        root: Hash64(client.tree().root()),
    };
    let ServerMessage::SyncRespRoot { root, .. } = wire(codec, serve(server, wire(codec, init)))
    else {
        panic!("expected SYNC_RESP_ROOT")
    };
    if root.0 == client.tree().root() {
        return (None, trips);
    }
    // Descend: expand differing inner nodes level by level.
    let mut frontier = vec![MerklePath::ROOT];
    let mut leaves = Vec::new();
    while !frontier.is_empty() {
        trips += 1;
        let req = ClientMessage::MerkleReqBucket {
            map: map.clone(),
            kind,
            paths: frontier.iter().map(|p| (*p).into()).collect(),
        };
        let ServerMessage::SyncRespBuckets { buckets, .. } =
            wire(codec, serve(server, wire(codec, req)))
        else {
            panic!("expected SYNC_RESP_BUCKETS")
        };
        assert_eq!(buckets.len(), frontier.len());
        frontier.clear();
        for b in buckets {
            let path = MerklePath::from(b.path);
            for child in client
                .tree()
                .differing_children(path, &b.child_hashes())
                .unwrap()
            {
                if client.tree().is_leaf(child) {
                    leaves.push(child);
                } else {
                    frontier.push(child);
                }
            }
        }
    }
    trips += 1;
    let req = ClientMessage::SyncReqLeaf {
        map,
        kind,
        leaves: client
            .digests(&leaves)
            .into_iter()
            .map(WireLeafDigest::from)
            .collect(),
    };
    let ServerMessage::SyncRespLeaf {
        records,
        wanted_keys,
        last: true,
        ..
    } = wire(codec, serve(server, wire(codec, req)))
    else {
        panic!("expected the last SYNC_RESP_LEAF")
    };
    assert_eq!(records.kind(), kind);
    client.merge(records);
    // The client pushes its state for the wanted keys (in a real client:
    // as ops); here it is merged directly.
    server.merge(client.records(&wanted_keys));
    (Some(wanted_keys), trips)
}

fn ts(millis: u64, node: u64) -> Timestamp {
    Timestamp::new(millis, 0, NodeId(node))
}

const CLIENT: u64 = 1;
const SERVER: u64 = 2;

/// Two LWW replicas with shared keys, keys on one side only, conflicting
/// versions and tombstones.
fn lww_pair() -> (LwwMap, LwwMap) {
    let (mut c, mut s) = (LwwMap::new(), LwwMap::new());
    for i in 0..400u64 {
        let key = format!("k{i}");
        let put = |t| LwwRecord::put(Value::Int(i as i64), t);
        match i % 8 {
            0 => {
                c.merge(key.as_str(), put(ts(i, SERVER)));
            }
            1 => {
                s.merge(key.as_str(), put(ts(i, SERVER)));
            }
            2 => {
                c.merge(key.as_str(), put(ts(i, CLIENT)));
                s.merge(key.as_str(), put(ts(i + 1, SERVER)));
            }
            3 => {
                c.merge(key.as_str(), put(ts(i + 1, CLIENT)));
                s.merge(key.as_str(), put(ts(i, SERVER)));
            }
            4 => {
                c.merge(key.as_str(), put(ts(i, SERVER)));
                s.merge(key.as_str(), LwwRecord::tombstone(ts(i + 1, SERVER)));
            }
            _ => {
                c.merge(key.as_str(), put(ts(i, SERVER)));
                s.merge(key.as_str(), put(ts(i, SERVER)));
            }
        }
    }
    (c, s)
}

fn or_pair() -> (OrMap, OrMap) {
    let (mut c, mut s) = (OrMap::new(), OrMap::new());
    for i in 0..300u64 {
        let key = format!("k{i}");
        let item = |t: Timestamp| OrItem {
            value: Value::Int(i as i64),
            tag: t,
            ttl_ms: None,
        };
        match i % 6 {
            0 => {
                c.add(&key, item(ts(i, CLIENT)));
            }
            1 => {
                s.add(&key, item(ts(i, SERVER)));
            }
            2 => {
                // Both hold the item; the server also removed it.
                c.add(&key, item(ts(i, SERVER)));
                s.add(&key, item(ts(i, SERVER)));
                s.remove(&key, &[ts(i, SERVER)], ts(i + 5, SERVER));
            }
            3 => {
                // Concurrent adds on both sides.
                c.add(&key, item(ts(i, CLIENT)));
                s.add(&key, item(ts(i, SERVER)));
            }
            _ => {
                c.add(&key, item(ts(i, SERVER)));
                s.add(&key, item(ts(i, SERVER)));
            }
        }
    }
    (c, s)
}

#[test]
fn lww_replicas_converge_through_the_exchange() {
    for codec in [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)] {
        let (mut c, mut s) = lww_pair();
        assert_ne!(c.merkle().root(), s.merkle().root());
        let (wanted, trips) = sync(codec, &mut c, &mut s);
        let mut wanted = wanted.unwrap();
        wanted.sort();
        // The server wants exactly the keys the client holds that it lacks
        // or holds differently.
        let mut expected: Vec<String> = (0..400u64)
            .filter(|i| matches!(i % 8, 0 | 2 | 3 | 4))
            .map(|i| format!("k{i}"))
            .collect();
        expected.sort();
        assert_eq!(wanted, expected);
        // Root, one or more inner levels, leaves.
        assert_eq!(trips, 2 + usize::from(SYNC_MERKLE_DEPTH));
        assert_eq!(c, s);
        assert_eq!(c.merkle().root(), s.merkle().root());
        // A second round finds nothing.
        assert_eq!(sync(codec, &mut c, &mut s), (None, 1));
    }
}

#[test]
fn or_replicas_converge_through_the_exchange() {
    for codec in [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)] {
        let (mut c, mut s) = or_pair();
        assert_ne!(c.merkle().root(), s.merkle().root());
        let (wanted, _) = sync(codec, &mut c, &mut s);
        assert!(!wanted.unwrap().is_empty());
        assert_eq!(c, s);
        assert_eq!(c.merkle().root(), s.merkle().root());
        // The removal reached the client.
        assert_eq!(c.get("k2").unwrap().items().len(), 0);
        assert_eq!(sync(codec, &mut c, &mut s), (None, 1));
    }
}
