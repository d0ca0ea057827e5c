//! Sync machine tests: the machine against a server replica answered with
//! topgun-core, no sockets.

use super::*;
use topgun_core::merkle::diff_leaf;
use topgun_core::{NodeId, OrItem, Timestamp, Value};
use topgun_protocol::{BucketHashes, LwwKeyRecord, OrKeyEntry};

fn t(millis: u64, node: u64) -> Timestamp {
    Timestamp::new(millis, 0, NodeId(node))
}

/// The server's side of the exchange over any core replica.
trait Server: SyncReplica {
    fn records(&self, keys: &[String]) -> LeafRecords;
}

impl Server for LwwMap {
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
}

impl Server for OrMap {
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
}

fn serve<S: Server>(server: &S, msg: ClientMessage) -> ServerMessage {
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
            let mut wanted = Vec::new();
            for leaf in leaves {
                let client = LeafDigest::from(leaf);
                let mine = server.digests(&[client.path]).pop().unwrap();
                for key in diff_leaf(&mine.entries, &client.entries) {
                    if client.entries.iter().any(|(k, _)| *k == key) {
                        wanted.push(key.clone());
                    }
                    differing.push(key);
                }
            }
            ServerMessage::SyncRespLeaf {
                map,
                records: server.records(&differing),
                wanted_keys: wanted,
                last: true,
            }
        }
        other => panic!("not a sync request: {other:?}"),
    }
}

/// Splits a `SYNC_RESP_LEAF` into `n` parts (records dealt round-robin,
/// wanted keys in the last part, as the server does); other answers are
/// left whole.
fn split(msg: ServerMessage, n: usize) -> Vec<ServerMessage> {
    let ServerMessage::SyncRespLeaf {
        map,
        records,
        wanted_keys,
        last: true,
    } = msg
    else {
        return vec![msg];
    };
    let deal =
        |len: usize| -> Vec<Vec<usize>> { (0..n).map(|p| (p..len).step_by(n).collect()).collect() };
    let parts: Vec<LeafRecords> = match records {
        LeafRecords::Lww(r) => deal(r.len())
            .into_iter()
            .map(|idx| LeafRecords::Lww(idx.into_iter().map(|i| r[i].clone()).collect()))
            .collect(),
        LeafRecords::Or(e) => deal(e.len())
            .into_iter()
            .map(|idx| LeafRecords::Or(idx.into_iter().map(|i| e[i].clone()).collect()))
            .collect(),
    };
    let mut wanted = Some(wanted_keys);
    parts
        .into_iter()
        .enumerate()
        .map(|(i, records)| {
            let last = i + 1 == n;
            ServerMessage::SyncRespLeaf {
                map: map.clone(),
                records,
                wanted_keys: if last { wanted.take().unwrap() } else { vec![] },
                last,
            }
        })
        .collect()
}

/// Runs a whole exchange; returns the report.
fn run<S: Server>(server: &S, client: &mut S) -> SyncReport {
    run_split(server, client, 1)
}

/// Runs a whole exchange with every leaf answer split into `parts`;
/// checks that the machine waits for the rest of an answer until `last`.
fn run_split<S: Server>(server: &S, client: &mut S, parts: usize) -> SyncReport {
    let (mut machine, mut msg) = SyncMachine::start("m", client).unwrap();
    for _ in 0..100 {
        let answer = split(serve(server, msg), parts);
        let n = answer.len();
        let mut next = None;
        for (i, part) in answer.into_iter().enumerate() {
            let step = machine.handle(client, part).unwrap();
            if i + 1 < n {
                assert_eq!(step, Step::Wait, "part {i} of {n}");
            } else {
                next = Some(step);
            }
        }
        match next {
            Some(Step::Send(request)) => msg = request,
            Some(Step::Done) => return machine.into_report(),
            other => panic!("the last part gave {other:?}"),
        }
    }
    panic!("the exchange does not end");
}

#[test]
fn lww_converges_with_tombstones_and_reports_wanted_keys() {
    let mut server = LwwMap::new();
    let mut client = LwwMap::new();
    for i in 0..200 {
        server.merge(format!("k{i}"), LwwRecord::put(Value::Int(i), t(10, 1)));
    }
    client.merge_map(&server);
    // The server removed one key, changed another, gained one; the client
    // holds a key the server lacks and a newer write of another.
    server.merge("k3", LwwRecord::tombstone(t(20, 1)));
    server.merge("k4", LwwRecord::put(Value::from("new"), t(20, 1)));
    server.merge("fresh", LwwRecord::put(Value::Bool(true), t(20, 1)));
    client.merge("mine", LwwRecord::put(Value::Null, t(20, 2)));
    client.merge("k5", LwwRecord::put(Value::Int(-5), t(30, 2)));

    let report = run(&server, &mut client);
    assert!(!report.already_in_sync);
    assert!(client.get("k3").unwrap().is_tombstone());
    assert_eq!(client.get_live("k4", 0), Some(&Value::from("new")));
    assert!(client.get("fresh").is_some());
    let mut wanted = report.wanted_keys.clone();
    wanted.sort();
    assert_eq!(wanted, ["k5", "mine"]);
    // The server's k5 is older: sent, but not applied.
    assert_eq!(report.records_received, 4);
    assert_eq!(report.records_applied, 3);
    // Root, three bucket levels, one leaf request.
    assert_eq!(report.round_trips, 5);

    // Everything the server holds is now in the client.
    let mut merged = server.clone();
    merged.merge_map(&client);
    assert_eq!(merged, client);
    let again = run(&merged, &mut client);
    assert!(again.already_in_sync);
    assert_eq!(again.round_trips, 1);
}

#[test]
fn a_leaf_answer_split_in_parts_is_merged_whole() {
    let build = || {
        let mut server = LwwMap::new();
        let mut client = LwwMap::new();
        for i in 0..300 {
            server.merge(format!("k{i}"), LwwRecord::put(Value::Int(i), t(10, 1)));
        }
        client.merge("k1", LwwRecord::put(Value::Int(-1), t(5, 2)));
        client.merge("mine", LwwRecord::put(Value::Null, t(20, 2)));
        (server, client)
    };
    let (server, mut whole) = build();
    let expected = run(&server, &mut whole);
    for parts in [2, 3, 7] {
        let (server, mut client) = build();
        let report = run_split(&server, &mut client, parts);
        assert_eq!(client, whole, "{parts} parts");
        assert_eq!(report.records_received, expected.records_received);
        assert_eq!(report.records_applied, expected.records_applied);
        // The server's k1 won, so only "mine" is still wanted.
        assert_eq!(report.wanted_keys, ["mine"]);
        assert_eq!(report.round_trips, expected.round_trips);
        assert_eq!(
            report.messages_received,
            expected.messages_received + parts as u32 - 1
        );
    }
}

#[test]
fn wanted_keys_from_every_part_count() {
    // A server may spread wanted keys over the parts; a key the merge of
    // any part made equal is not wanted.
    let mut server = LwwMap::new();
    server.merge("a", LwwRecord::put(Value::Int(1), t(10, 1)));
    let mut client = LwwMap::new();
    client.merge("a", LwwRecord::put(Value::Int(0), t(5, 2)));
    client.merge("b", LwwRecord::put(Value::Int(2), t(5, 2)));
    let (mut m, mut msg) = SyncMachine::start("m", &client).unwrap();
    let request = loop {
        match m.handle(&mut client, serve(&server, msg)).unwrap() {
            Step::Send(next @ ClientMessage::SyncReqLeaf { .. }) => break next,
            Step::Send(next) => msg = next,
            other => panic!("{other:?}"),
        }
    };
    let ServerMessage::SyncRespLeaf { map, records, .. } = serve(&server, request) else {
        panic!()
    };
    let part = |records, wanted: &[&str], last| ServerMessage::SyncRespLeaf {
        map: map.clone(),
        records,
        wanted_keys: wanted.iter().map(|k| (*k).to_owned()).collect(),
        last,
    };
    let step = m
        .handle(&mut client, part(LeafRecords::Lww(vec![]), &["b"], false))
        .unwrap();
    assert_eq!(step, Step::Wait);
    let step = m.handle(&mut client, part(records, &["a"], true)).unwrap();
    assert_eq!(step, Step::Done);
    let report = m.into_report();
    assert_eq!(report.wanted_keys, ["b"], "a converged through the merge");
    assert_eq!(client.get_live("a", 0), Some(&Value::Int(1)));
}

#[test]
fn or_maps_converge_including_removals() {
    let item = |v: &str, tag: Timestamp| OrItem {
        value: Value::from(v),
        tag,
        ttl_ms: None,
    };
    let mut server = OrMap::new();
    server.add("colors", item("red", t(1, 1)));
    server.add("colors", item("blue", t(2, 1)));
    let mut client = OrMap::new();
    client.merge_map(&server);
    server.remove("colors", &[t(1, 1)], t(3, 1));
    server.add("sizes", item("xl", t(4, 1)));

    let report = run(&server, &mut client);
    assert_eq!(report.records_applied, 2);
    assert_eq!(client, server);
}

#[test]
fn answers_that_break_the_protocol_are_typed_errors() {
    let mut server = LwwMap::new();
    server.merge("a", LwwRecord::put(Value::Int(1), t(1, 1)));
    let mut client = LwwMap::new();

    // The wrong message.
    let (mut m, _) = SyncMachine::start("m", &client).unwrap();
    let err = m
        .handle(&mut client, ServerMessage::Pong { nonce: 1 })
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Protocol(ProtocolViolation::UnexpectedSyncResponse {
            expected: "SYNC_RESP_ROOT",
            got: "PONG"
        })
    ));

    // Buckets for a path that was not asked for.
    let (mut m, init) = SyncMachine::start("m", &client).unwrap();
    let Step::Send(ClientMessage::MerkleReqBucket { .. }) =
        m.handle(&mut client, serve(&server, init)).unwrap()
    else {
        panic!("expected a bucket request")
    };
    let wrong = BucketHashes::from_tree(
        server.merkle(),
        MerklePath::ROOT.child(server.merkle().bucket_of("a").index >> 8),
    )
    .unwrap();
    let err = m
        .handle(
            &mut client,
            ServerMessage::SyncRespBuckets {
                map: "m".into(),
                kind: WireMapKind::Lww,
                buckets: vec![wrong],
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Protocol(ProtocolViolation::BucketMismatch { .. })
    ));

    // Records for a key outside the requested leaves.
    let (mut m, mut msg) = SyncMachine::start("m", &client).unwrap();
    let leaf_request = loop {
        match m.handle(&mut client, serve(&server, msg)).unwrap() {
            Step::Send(next @ ClientMessage::SyncReqLeaf { .. }) => break next,
            Step::Send(next) => msg = next,
            Step::Wait | Step::Done => panic!("ended early"),
        }
    };
    let ServerMessage::SyncRespLeaf { map, .. } = serve(&server, leaf_request) else {
        panic!()
    };
    let mut stranger = LwwMap::new();
    let far = (0..)
        .map(|i| format!("x{i}"))
        .find(|k| server.merkle().bucket_of(k) != server.merkle().bucket_of("a"))
        .unwrap();
    stranger.merge(far.as_str(), LwwRecord::put(Value::Null, t(1, 1)));
    let err = m
        .handle(
            &mut client,
            ServerMessage::SyncRespLeaf {
                map,
                records: stranger.records(std::slice::from_ref(&far)),
                wanted_keys: vec![],
                last: true,
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Protocol(ProtocolViolation::KeyOutsideRequestedLeaves { key }) if key == far
    ));
    assert!(client.is_empty(), "nothing merged from a bad answer");
}

#[test]
fn a_map_with_another_merkle_depth_cannot_sync() {
    let map = LwwMap::with_merkle_depth(2).unwrap();
    assert!(matches!(
        SyncMachine::start("m", &map),
        Err(ClientError::MerkleDepthMismatch {
            local: 2,
            expected: 3
        })
    ));
}

#[test]
fn leaf_digests_are_chunked_by_entry_count() {
    let digest = |index: u32, n: usize| LeafDigest {
        path: MerklePath { level: 3, index },
        entries: (0..n).map(|i| (format!("k{i}"), 0)).collect(),
    };
    let half = LEAF_ENTRIES_PER_REQUEST / 2;
    let chunks = chunk_digests(vec![
        digest(0, half),
        digest(1, half),
        digest(2, 1),
        digest(3, LEAF_ENTRIES_PER_REQUEST * 2),
        digest(4, 0),
    ]);
    let shape: Vec<Vec<u32>> = chunks
        .iter()
        .map(|c| c.iter().map(|d| d.path.index).collect())
        .collect();
    assert_eq!(shape, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
    assert!(chunk_digests(Vec::new()).is_empty());
}
