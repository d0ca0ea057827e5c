//! Two clients: one writes, the other's live query sees it; a reconnecting
//! replica syncs by Merkle diff and learns of deletions.

use std::collections::BTreeMap;

use topgun_core::{LwwMap, LwwRecord, MerklePath, MerkleTree, NodeId, Timestamp, Value};
use topgun_protocol::{
    ChangeKind, ClientMessage, Encoding, LeafRecords, Op, RecordValue, ServerMessage, WireCmpOp,
    WireFilter, WireLeafDigest, WireMapKind, WireNodeId, WireOpKind, WireQuery, WireTimestamp,
    WireValue, WriteConcern,
};
use topgun_tests::{Raw, start, token_for};

fn todo(title: &str, done: bool) -> WireValue {
    WireValue::try_from(&Value::Map(BTreeMap::from([
        ("title".to_owned(), Value::from(title)),
        ("done".to_owned(), Value::Bool(done)),
    ])))
    .unwrap()
}

fn op(op_id: u64, key: &str, kind: WireOpKind) -> Op {
    Op {
        op_id,
        map: "todos".to_owned(),
        key: key.to_owned(),
        timestamp: WireTimestamp {
            millis: 1,
            counter: 0,
            node: WireNodeId(7),
        },
        kind,
    }
}

async fn authed(addr: std::net::SocketAddr, sub: &str) -> Raw {
    let mut raw = Raw::connect(addr, Encoding::Bincode).await;
    assert!(matches!(
        raw.handshake(&token_for(sub)).await,
        ServerMessage::AuthAck { .. }
    ));
    raw
}

async fn write(raw: &mut Raw, ops: Vec<Op>) {
    let n = ops.len();
    raw.send(&ClientMessage::OpBatch {
        ops,
        write_concern: WriteConcern::Durable,
    })
    .await;
    match raw.recv().await {
        Ok(ServerMessage::OpAck { acks }) => assert_eq!(acks.len(), n),
        other => panic!("expected OP_ACK, got {other:?}"),
    }
}

async fn next_update(raw: &mut Raw) -> (ChangeKind, String, RecordValue) {
    match raw.recv().await {
        Ok(ServerMessage::QueryUpdate {
            change,
            key,
            record,
            ..
        }) => (change, key, record.value),
        other => panic!("expected QUERY_UPDATE, got {other:?}"),
    }
}

#[tokio::test]
async fn a_live_query_sees_another_clients_writes() {
    let server = start().await;
    let mut writer = authed(server.addr, "writer").await;
    let mut reader = authed(server.addr, "reader").await;
    write(
        &mut writer,
        vec![op(
            1,
            "a",
            WireOpKind::Put {
                value: todo("milk", false),
                ttl_ms: None,
            },
        )],
    )
    .await;

    let open_only = WireQuery {
        filter: Some(WireFilter::Compare {
            field: "done".to_owned(),
            op: WireCmpOp::Eq,
            value: WireValue::from(false),
        }),
        sort: Vec::new(),
        limit: None,
    };
    reader
        .send(&ClientMessage::QuerySub {
            query_id: 1,
            map: "todos".to_owned(),
            query: open_only,
        })
        .await;
    match reader.recv().await {
        Ok(ServerMessage::QueryResp {
            query_id: 1,
            records,
        }) => {
            assert_eq!(
                records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
                ["a"]
            );
        }
        other => panic!("expected QUERY_RESP, got {other:?}"),
    }

    write(
        &mut writer,
        vec![op(
            2,
            "b",
            WireOpKind::Put {
                value: todo("eggs", false),
                ttl_ms: None,
            },
        )],
    )
    .await;
    assert_eq!(next_update(&mut reader).await.0, ChangeKind::Enter);
    write(
        &mut writer,
        vec![op(
            3,
            "b",
            WireOpKind::Put {
                value: todo("eggs!", false),
                ttl_ms: None,
            },
        )],
    )
    .await;
    let (change, key, value) = next_update(&mut reader).await;
    assert_eq!((change, key.as_str()), (ChangeKind::Update, "b"));
    assert_eq!(value, RecordValue::Live(todo("eggs!", false)));
    // Done: no longer matches the filter.
    write(
        &mut writer,
        vec![op(
            4,
            "a",
            WireOpKind::Put {
                value: todo("milk", true),
                ttl_ms: None,
            },
        )],
    )
    .await;
    assert_eq!(
        next_update(&mut reader).await,
        (
            ChangeKind::Leave,
            "a".to_owned(),
            RecordValue::Live(todo("milk", true))
        )
    );
    // Deleted: leaves with the tombstone.
    write(&mut writer, vec![op(5, "b", WireOpKind::Remove)]).await;
    assert_eq!(
        next_update(&mut reader).await,
        (ChangeKind::Leave, "b".to_owned(), RecordValue::Tombstone)
    );

    reader
        .send(&ClientMessage::QueryUnsub { query_id: 1 })
        .await;
    write(
        &mut writer,
        vec![op(
            6,
            "c",
            WireOpKind::Put {
                value: todo("tea", false),
                ttl_ms: None,
            },
        )],
    )
    .await;
    reader.send(&ClientMessage::Ping { nonce: 9 }).await;
    assert_eq!(
        reader.recv().await,
        Ok(ServerMessage::Pong { nonce: 9 }),
        "no update after QUERY_UNSUB"
    );
    server.stop().await.unwrap();
}

/// A client's side of the Merkle exchange, by hand: the server's records
/// for every key whose entry differs are merged into `local`; returns the
/// keys the server wants from the client.
async fn merkle_sync(raw: &mut Raw, local: &mut LwwMap) -> Vec<String> {
    raw.send(&ClientMessage::SyncInit {
        map: "todos".to_owned(),
        kind: WireMapKind::Lww,
        root: local.merkle().root().into(),
    })
    .await;
    let server_root = match raw.recv().await {
        Ok(ServerMessage::SyncRespRoot { root, .. }) => root.0,
        other => panic!("expected SYNC_RESP_ROOT, got {other:?}"),
    };
    if server_root == local.merkle().root() {
        return Vec::new();
    }
    let tree: &MerkleTree = local.merkle();
    let mut frontier = vec![MerklePath::ROOT];
    while frontier.first().is_some_and(|p| p.level < tree.depth()) {
        raw.send(&ClientMessage::MerkleReqBucket {
            map: "todos".to_owned(),
            kind: WireMapKind::Lww,
            paths: frontier.iter().map(|p| (*p).into()).collect(),
        })
        .await;
        let buckets = match raw.recv().await {
            Ok(ServerMessage::SyncRespBuckets { buckets, .. }) => buckets,
            other => panic!("expected SYNC_RESP_BUCKETS, got {other:?}"),
        };
        frontier = buckets
            .iter()
            .flat_map(|b| {
                tree.differing_children(b.path.into(), &b.child_hashes())
                    .unwrap()
            })
            .collect();
    }
    let leaves: Vec<WireLeafDigest> = local
        .leaf_digests(&frontier)
        .into_iter()
        .map(Into::into)
        .collect();
    raw.send(&ClientMessage::SyncReqLeaf {
        map: "todos".to_owned(),
        kind: WireMapKind::Lww,
        leaves,
    })
    .await;
    // These answers are small: one SYNC_RESP_LEAF carries all of it.
    match raw.recv().await {
        Ok(ServerMessage::SyncRespLeaf {
            records: LeafRecords::Lww(records),
            wanted_keys,
            ..
        }) => {
            for r in records {
                local.merge(r.key, LwwRecord::from(r.record));
            }
            wanted_keys
        }
        other => panic!("expected SYNC_RESP_LEAF, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reconnecting_replica_receives_only_what_differs_deletions_included() {
    let server = start().await;
    let mut writer = authed(server.addr, "w").await;
    let ops: Vec<Op> = (0..50)
        .map(|i| {
            op(
                i,
                &format!("k{i}"),
                WireOpKind::Put {
                    value: todo(&format!("t{i}"), false),
                    ttl_ms: None,
                },
            )
        })
        .collect();
    write(&mut writer, ops).await;

    // The replica syncs from empty and gets everything.
    let mut local = LwwMap::new();
    let mut client = authed(server.addr, "r").await;
    assert!(merkle_sync(&mut client, &mut local).await.is_empty());
    assert_eq!(local.iter_live(0).count(), 50);
    drop(client);

    // Offline: the server deletes two keys and changes one; the replica
    // writes a key of its own locally.
    write(
        &mut writer,
        vec![
            op(100, "k3", WireOpKind::Remove),
            op(101, "k4", WireOpKind::Remove),
            op(
                102,
                "k5",
                WireOpKind::Put {
                    value: todo("changed", true),
                    ttl_ms: None,
                },
            ),
        ],
    )
    .await;
    let local_only = Timestamp::new(1, 0, NodeId(99));
    local.merge("mine", LwwRecord::put(Value::from("offline"), local_only));

    let mut client = authed(server.addr, "r").await;
    let mut wanted = merkle_sync(&mut client, &mut local).await;
    wanted.sort();
    // The server wants every key the replica holds differently: its own
    // write, and the three keys the replica held stale (whose server
    // records it has just merged, so only "mine" is newer locally).
    assert_eq!(wanted, ["k3", "k4", "k5", "mine"]);
    assert!(local.get("k3").unwrap().is_tombstone(), "deletions sync");
    assert!(local.get("k4").unwrap().is_tombstone());
    assert_eq!(local.iter_live(0).count(), 50 - 2 + 1);
    // Pushing the wanted key makes the two replicas equal.
    let record = local.get("mine").unwrap().clone();
    write(
        &mut client,
        vec![Op {
            op_id: 1,
            map: "todos".to_owned(),
            key: "mine".to_owned(),
            timestamp: record.timestamp.into(),
            kind: WireOpKind::Put {
                value: WireValue::from("offline"),
                ttl_ms: None,
            },
        }],
    )
    .await;
    // The server re-stamped the write; the ack's timestamp is adopted by a
    // real client. Sync again: only that key differs, then nothing.
    let _ = merkle_sync(&mut client, &mut local).await;
    assert!(merkle_sync(&mut client, &mut local).await.is_empty());
    server.stop().await.unwrap();
}
