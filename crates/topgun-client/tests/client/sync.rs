//! The Merkle sync exchange against a fake server that holds core maps and
//! answers with topgun-core.

use topgun_client::{Client, ClientError, ErrorCode, ErrorContext, StaticToken};
use topgun_core::merkle::{LeafDigest, diff_leaf};
use topgun_core::{LwwMap, LwwRecord, NodeId, OrItem, OrMap, Timestamp, Value};
use topgun_protocol::{
    BucketHashes, ClientMessage, Hash64, LeafRecords, LwwKeyRecord, OrKeyEntry, ServerMessage,
    WireMapKind,
};

use crate::fake::{Conn, FakeServer};

fn t(millis: u64) -> Timestamp {
    Timestamp::new(millis, 0, NodeId(0x5e))
}

/// The server's maps.
struct Maps {
    lww: LwwMap,
    or: OrMap,
}

impl Maps {
    fn tree(&self, kind: WireMapKind) -> &topgun_core::MerkleTree {
        match kind {
            WireMapKind::Lww => self.lww.merkle(),
            WireMapKind::Or => self.or.merkle(),
        }
    }

    fn digest(&self, kind: WireMapKind, leaf: &LeafDigest) -> LeafDigest {
        let digests = match kind {
            WireMapKind::Lww => self.lww.leaf_digests(&[leaf.path]),
            WireMapKind::Or => self.or.leaf_digests(&[leaf.path]),
        };
        digests.into_iter().next().unwrap()
    }

    fn records(&self, kind: WireMapKind, keys: &[String]) -> LeafRecords {
        match kind {
            WireMapKind::Lww => LeafRecords::Lww(
                keys.iter()
                    .filter_map(|k| {
                        self.lww.get(k).map(|r| LwwKeyRecord {
                            key: k.clone(),
                            record: r.try_into().unwrap(),
                        })
                    })
                    .collect(),
            ),
            WireMapKind::Or => LeafRecords::Or(
                keys.iter()
                    .filter_map(|k| {
                        self.or.get(k).map(|e| OrKeyEntry {
                            key: k.clone(),
                            entry: e.try_into().unwrap(),
                        })
                    })
                    .collect(),
            ),
        }
    }
}

/// Answers sync requests until the client closes, each leaf answer split
/// into `parts` messages (records dealt round-robin, wanted keys in the
/// last, a server `PING` between parts); returns how many requests it
/// answered.
async fn serve_sync(conn: &mut Conn, maps: &Maps, parts: usize) -> usize {
    let mut answered = 0;
    while let Ok(msg) = conn.recv_or_close().await {
        let reply = match msg {
            // The client's answers to the pings sent between parts.
            ClientMessage::Pong { .. } => continue,
            ClientMessage::SyncInit { map, kind, .. } => ServerMessage::SyncRespRoot {
                map,
                kind,
                root: Hash64(maps.tree(kind).root()),
            },
            ClientMessage::MerkleReqBucket { map, kind, paths } => ServerMessage::SyncRespBuckets {
                map,
                kind,
                buckets: paths
                    .into_iter()
                    .map(|p| BucketHashes::from_tree(maps.tree(kind), p.into()).unwrap())
                    .collect(),
            },
            ClientMessage::SyncReqLeaf { map, kind, leaves } => {
                let mut differing = Vec::new();
                let mut wanted = Vec::new();
                for leaf in leaves {
                    let client = LeafDigest::from(leaf);
                    let mine = maps.digest(kind, &client);
                    for key in diff_leaf(&mine.entries, &client.entries) {
                        if client.entries.iter().any(|(k, _)| *k == key) {
                            wanted.push(key.clone());
                        }
                        differing.push(key);
                    }
                }
                let n = parts.max(1);
                let mut part_keys: Vec<Vec<String>> = vec![Vec::new(); n];
                for (i, key) in differing.into_iter().enumerate() {
                    part_keys[i % n].push(key);
                }
                let last = part_keys.pop().unwrap_or_default();
                for keys in part_keys {
                    conn.send(ServerMessage::SyncRespLeaf {
                        map: map.clone(),
                        records: maps.records(kind, &keys),
                        wanted_keys: vec![],
                        last: false,
                    })
                    .await;
                    // Other traffic may come between the parts.
                    conn.send(ServerMessage::Ping { nonce: 7 }).await;
                }
                ServerMessage::SyncRespLeaf {
                    map,
                    records: maps.records(kind, &last),
                    wanted_keys: wanted,
                    last: true,
                }
            }
            other => panic!("not a sync request: {other:?}"),
        };
        conn.send(reply).await;
        answered += 1;
    }
    answered
}

#[tokio::test]
async fn sync_lww_converges_to_the_server_map_including_a_tombstone() {
    let mut server_lww = LwwMap::new();
    for i in 0..500 {
        server_lww.merge(format!("k{i}"), LwwRecord::put(Value::Int(i), t(100)));
    }
    // The client saw an older state of the map.
    let mut local = server_lww.clone();
    server_lww.merge("k7", LwwRecord::tombstone(t(200)));
    server_lww.merge("k8", LwwRecord::put(Value::from("changed"), t(200)));
    server_lww.merge("new", LwwRecord::put(Value::Bool(true), t(200)));
    // And the client wrote something the server lacks.
    local.merge("offline", LwwRecord::put(Value::from("mine"), t(150)));
    let expected = server_lww.clone();

    let maps = Maps {
        lww: server_lww,
        or: OrMap::new(),
    };
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        // SYNC_INIT, three MERKLE_REQ_BUCKETs, one SYNC_REQ_LEAF.
        assert_eq!(serve_sync(&mut conn, &maps, 1).await, 5);
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let report = client.sync_lww("todos", &mut local).await.unwrap();
    assert!(!report.already_in_sync);
    assert_eq!(report.records_received, 3);
    assert_eq!(report.records_applied, 3);
    assert_eq!(report.wanted_keys, ["offline"]);
    assert_eq!(report.round_trips, 5);
    assert!(report.bytes_sent > 0 && report.bytes_received > 0);
    assert!(
        local.get("k7").unwrap().is_tombstone(),
        "the deletion synced"
    );
    assert_eq!(local.get_live("k8", 0), Some(&Value::from("changed")));
    assert!(local.get("new").is_some());

    // The local map is the server's plus the client's own write.
    let mut server_plus = expected;
    server_plus.merge("offline", LwwRecord::put(Value::from("mine"), t(150)));
    assert_eq!(local, server_plus);
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_leaf_answer_split_in_three_is_merged_whole() {
    let mut server_lww = LwwMap::new();
    for i in 0..300 {
        server_lww.merge(format!("k{i}"), LwwRecord::put(Value::Int(i), t(100)));
    }
    let mut local = LwwMap::new();
    local.merge("k5", LwwRecord::put(Value::Int(-5), t(50)));
    local.merge("offline", LwwRecord::put(Value::from("mine"), t(150)));
    let mut expected = server_lww.clone();
    expected.merge("offline", LwwRecord::put(Value::from("mine"), t(150)));

    let maps = Maps {
        lww: server_lww,
        or: OrMap::new(),
    };
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        assert_eq!(serve_sync(&mut conn, &maps, 3).await, 5);
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let report = client.sync_lww("todos", &mut local).await.unwrap();
    assert_eq!(report.records_received, 300, "every part was merged");
    assert_eq!(report.records_applied, 300);
    assert_eq!(report.wanted_keys, ["offline"]);
    assert_eq!(report.round_trips, 5);
    // SYNC_RESP_ROOT, three SYNC_RESP_BUCKETS, three SYNC_RESP_LEAF parts.
    assert_eq!(report.messages_received, 7);
    assert_eq!(local, expected);
    assert_eq!(client.pending_requests(), 0);
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn sync_lww_of_an_identical_map_is_one_round_trip_and_sync_or_converges() {
    let mut server_lww = LwwMap::new();
    server_lww.merge("a", LwwRecord::put(Value::Int(1), t(1)));
    let mut local_lww = server_lww.clone();
    let mut server_or = OrMap::new();
    let item = |v: &str, ms| OrItem {
        value: Value::from(v),
        tag: t(ms),
        ttl_ms: None,
    };
    server_or.add("colors", item("red", 1));
    server_or.add("colors", item("blue", 2));
    let mut local_or = server_or.clone();
    server_or.remove("colors", &[t(1)], t(3));
    let expected_or = server_or.clone();

    let maps = Maps {
        lww: server_lww,
        or: server_or,
    };
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        serve_sync(&mut conn, &maps, 1).await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let same = client.sync_lww("plain", &mut local_lww).await.unwrap();
    assert!(same.already_in_sync);
    assert_eq!(same.round_trips, 1);
    let report = client.sync_or("tags", &mut local_or).await.unwrap();
    assert_eq!(report.records_applied, 1);
    assert!(report.wanted_keys.is_empty());
    assert_eq!(local_or, expected_or, "the removal synced");
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_refused_sync_is_a_server_error() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let ClientMessage::SyncInit { .. } = conn.recv().await else {
            panic!("expected SYNC_INIT")
        };
        conn.send(ServerMessage::Error {
            code: ErrorCode::Forbidden,
            message: "read denied".to_owned(),
            context: Some(ErrorContext::Sync {
                map: "secret".to_owned(),
                kind: WireMapKind::Lww,
            }),
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let mut local = LwwMap::new();
    let err = client.sync_lww("secret", &mut local).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{err:?}"
    );
    // The map is free for another sync.
    assert_eq!(client.pending_requests(), 0);
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn an_error_with_a_context_fails_exactly_the_request_it_names() {
    // A subscription and a sync are pending; the server refuses the sync.
    // Without a context the client would have to guess (and `Forbidden`
    // used to go to the oldest pending request, the subscription); with
    // one, the sync fails and the subscription completes.
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let (mut query, mut sync) = (None, None);
        while query.is_none() || sync.is_none() {
            match conn.recv().await {
                ClientMessage::QuerySub { query_id, .. } => query = Some(query_id),
                ClientMessage::SyncInit { map, kind, .. } => sync = Some((map, kind)),
                other => panic!("unexpected {other:?}"),
            }
        }
        let (map, kind) = sync.unwrap();
        conn.send(ServerMessage::Error {
            code: ErrorCode::Forbidden,
            message: "read denied on secret".to_owned(),
            context: Some(ErrorContext::Sync { map, kind }),
        })
        .await;
        conn.send(ServerMessage::QueryResp {
            query_id: query.unwrap(),
            records: vec![],
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let mut local = LwwMap::new();
    let query = topgun_core::Query::default();
    let (sub, sync) = tokio::join!(
        client.subscribe("todos", &query),
        client.sync_lww("secret", &mut local)
    );
    assert!(sub.is_ok(), "{sub:?}");
    assert!(
        matches!(
            sync,
            Err(ClientError::Server {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{sync:?}"
    );
    drop(sub);
    client.close().await;
    server.join().await;
}
