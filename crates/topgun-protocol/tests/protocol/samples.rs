//! One fixed sample of every message, shared by the golden and docs tests.

use std::collections::BTreeMap;

use topgun_protocol::*;

pub fn ts(millis: u64, counter: u32, node: u64) -> WireTimestamp {
    WireTimestamp {
        millis,
        counter,
        node: WireNodeId(node),
    }
}

pub fn todo_value() -> WireValue {
    let mut fields = BTreeMap::new();
    fields.insert("title".to_owned(), WireValue::from("milk"));
    fields.insert("done".to_owned(), WireValue::Bool(false));
    fields.insert("prio".to_owned(), WireValue::Int(2));
    fields.insert("weight".to_owned(), WireValue::Float(1.5));
    fields.insert(
        "tags".to_owned(),
        WireValue::Array(vec![WireValue::from("shop"), WireValue::Null]),
    );
    WireValue::Map(fields)
}

fn put_op() -> Op {
    Op {
        op_id: 1,
        map: "todos".into(),
        key: "t1".into(),
        timestamp: ts(1_700_000_000_000, 0, 0x1a2b_3c4d_5e6f_7081),
        kind: WireOpKind::Put {
            value: todo_value(),
            ttl_ms: None,
        },
    }
}

fn live(value: WireValue, t: WireTimestamp) -> WireLwwRecord {
    WireLwwRecord {
        value: RecordValue::Live(value),
        timestamp: t,
        ttl_ms: None,
    }
}

/// Every client message, named by its golden file stem.
pub fn client_samples() -> Vec<(&'static str, ClientMessage)> {
    let node = 0x1a2b_3c4d_5e6f_7081;
    vec![
        (
            "auth",
            ClientMessage::Auth {
                token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln".into(),
                protocol_version: PROTOCOL_VERSION,
            },
        ),
        ("client_op", ClientMessage::ClientOp { op: put_op() }),
        (
            "op_batch",
            ClientMessage::OpBatch {
                ops: vec![
                    Op {
                        op_id: 2,
                        map: "todos".into(),
                        key: "t2".into(),
                        timestamp: ts(1_700_000_000_001, 0, node),
                        kind: WireOpKind::Remove,
                    },
                    Op {
                        op_id: 3,
                        map: "tags:t1".into(),
                        key: "colors".into(),
                        timestamp: ts(1_700_000_000_002, 0, node),
                        kind: WireOpKind::OrAdd {
                            value: WireValue::from("red"),
                            ttl_ms: Some(60_000),
                        },
                    },
                    Op {
                        op_id: 4,
                        map: "tags:t1".into(),
                        key: "colors".into(),
                        timestamp: ts(1_700_000_000_003, 0, node),
                        kind: WireOpKind::OrRemove {
                            tags: vec![ts(1_699_999_999_000, 3, 0x42)],
                        },
                    },
                ],
                write_concern: WriteConcern::Replicated,
            },
        ),
        (
            "query_sub",
            ClientMessage::QuerySub {
                query_id: 7,
                map: "todos".into(),
                query: WireQuery {
                    filter: Some(WireFilter::And(vec![
                        WireFilter::Compare {
                            field: "done".into(),
                            op: WireCmpOp::Eq,
                            value: WireValue::Bool(false),
                        },
                        WireFilter::Not(Box::new(WireFilter::In {
                            field: "prio".into(),
                            values: vec![WireValue::Int(0), WireValue::Float(0.5)],
                        })),
                        WireFilter::Or(vec![
                            WireFilter::Exists {
                                field: "title".into(),
                            },
                            WireFilter::Prefix {
                                field: "$key".into(),
                                prefix: "t".into(),
                            },
                        ]),
                    ])),
                    sort: vec![WireSortKey {
                        field: "prio".into(),
                        descending: true,
                    }],
                    limit: Some(50),
                },
            },
        ),
        ("query_unsub", ClientMessage::QueryUnsub { query_id: 7 }),
        (
            "sync_init",
            ClientMessage::SyncInit {
                map: "todos".into(),
                kind: WireMapKind::Lww,
                root: Hash64(0x9f86_d081_884c_7d65),
            },
        ),
        (
            "merkle_req_bucket",
            ClientMessage::MerkleReqBucket {
                map: "todos".into(),
                kind: WireMapKind::Lww,
                paths: vec![
                    WireMerklePath { level: 0, index: 0 },
                    WireMerklePath {
                        level: 1,
                        index: 10,
                    },
                ],
            },
        ),
        (
            "sync_req_leaf",
            ClientMessage::SyncReqLeaf {
                map: "tags:t1".into(),
                kind: WireMapKind::Or,
                leaves: vec![WireLeafDigest {
                    path: WireMerklePath {
                        level: 3,
                        index: 2748,
                    },
                    entries: vec![KeyHash {
                        key: "colors".into(),
                        hash: Hash64(0x0123_4567_89ab_cdef),
                    }],
                }],
            },
        ),
        (
            "ping",
            ClientMessage::Ping {
                nonce: 1_700_000_000_123,
            },
        ),
        (
            "pong",
            ClientMessage::Pong {
                nonce: 1_700_000_000_456,
            },
        ),
    ]
}

/// Every server message, named by its golden file stem.
pub fn server_samples() -> Vec<(&'static str, ServerMessage)> {
    let server = 0x5e4f_e400_0000_0001;
    let mut children = [Hash64(0); 16];
    children[3] = Hash64(0xffff_0000_ffff_0000);
    children[10] = Hash64(u64::MAX);
    vec![
        (
            "auth_required",
            ServerMessage::AuthRequired {
                min_version: MIN_PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                reason: AuthRequiredReason::Initial,
            },
        ),
        (
            "auth_required_expiring",
            ServerMessage::AuthRequired {
                min_version: MIN_PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                reason: AuthRequiredReason::SessionExpiring {
                    expires_at_ms: 1_700_000_900_000,
                },
            },
        ),
        (
            "auth_ack",
            ServerMessage::AuthAck {
                protocol_version: PROTOCOL_VERSION,
                sub: "alice".into(),
                session_expires_at_ms: Some(1_700_000_900_000),
            },
        ),
        (
            "auth_fail",
            ServerMessage::AuthFail {
                reason: AuthFailReason::Expired,
                message: "token expired at 1700000000".into(),
            },
        ),
        (
            "op_ack",
            ServerMessage::OpAck {
                acks: vec![
                    OpAckEntry {
                        op_id: 1,
                        timestamp: ts(1_700_000_000_010, 0, server),
                    },
                    OpAckEntry {
                        op_id: 3,
                        timestamp: ts(1_700_000_000_010, 1, server),
                    },
                ],
            },
        ),
        (
            "op_rejected",
            ServerMessage::OpRejected {
                rejections: vec![OpRejection {
                    op_id: 2,
                    code: RejectCode::Forbidden,
                    message: "remove denied on todos".into(),
                }],
            },
        ),
        (
            "query_resp",
            ServerMessage::QueryResp {
                query_id: 7,
                records: vec![QueryRecord {
                    key: "t1".into(),
                    record: live(todo_value(), ts(1_700_000_000_010, 0, server)),
                }],
            },
        ),
        (
            "query_update",
            ServerMessage::QueryUpdate {
                query_id: 7,
                change: ChangeKind::Leave,
                key: "t2".into(),
                record: WireLwwRecord {
                    value: RecordValue::Tombstone,
                    timestamp: ts(1_700_000_000_011, 0, server),
                    ttl_ms: None,
                },
            },
        ),
        (
            "sync_resp_root",
            ServerMessage::SyncRespRoot {
                map: "todos".into(),
                kind: WireMapKind::Lww,
                root: Hash64(0x2c26_b46b_68ff_c68f),
            },
        ),
        (
            "sync_resp_buckets",
            ServerMessage::SyncRespBuckets {
                map: "todos".into(),
                kind: WireMapKind::Lww,
                buckets: vec![BucketHashes {
                    path: WireMerklePath { level: 0, index: 0 },
                    children,
                }],
            },
        ),
        (
            "sync_resp_leaf_lww",
            ServerMessage::SyncRespLeaf {
                map: "todos".into(),
                records: LeafRecords::Lww(vec![
                    LwwKeyRecord {
                        key: "t1".into(),
                        record: WireLwwRecord {
                            value: RecordValue::Live(WireValue::from("milk")),
                            timestamp: ts(1_700_000_000_010, 0, server),
                            ttl_ms: Some(86_400_000),
                        },
                    },
                    LwwKeyRecord {
                        key: "t2".into(),
                        record: WireLwwRecord {
                            value: RecordValue::Tombstone,
                            timestamp: ts(1_700_000_000_011, 0, server),
                            ttl_ms: None,
                        },
                    },
                ]),
                wanted_keys: vec!["t3".into()],
                last: true,
            },
        ),
        (
            "sync_resp_leaf_or",
            ServerMessage::SyncRespLeaf {
                map: "tags:t1".into(),
                records: LeafRecords::Or(vec![OrKeyEntry {
                    key: "colors".into(),
                    entry: WireOrEntry {
                        items: vec![WireOrItem {
                            value: WireValue::from("red"),
                            tag: ts(1_700_000_000_012, 0, server),
                            ttl_ms: None,
                        }],
                        tombstones: vec![WireOrTombstone {
                            tag: ts(1_699_999_999_000, 3, 0x42),
                            removed_at: ts(1_700_000_000_013, 0, server),
                        }],
                    },
                }]),
                wanted_keys: vec![],
                // A part of a split answer: more follow.
                last: false,
            },
        ),
        (
            "ping",
            ServerMessage::Ping {
                nonce: 1_700_000_000_789,
            },
        ),
        (
            "pong",
            ServerMessage::Pong {
                nonce: 1_700_000_000_123,
            },
        ),
        (
            "error",
            ServerMessage::Error {
                code: ErrorCode::NotAuthenticated,
                message: "send AUTH first".into(),
                context: None,
            },
        ),
        (
            "error_query",
            ServerMessage::Error {
                code: ErrorCode::Forbidden,
                message: "read denied on secrets".into(),
                context: Some(ErrorContext::Query { query_id: 7 }),
            },
        ),
        (
            "error_sync",
            ServerMessage::Error {
                code: ErrorCode::InvalidSyncRequest,
                message: "todos is an observed-remove map".into(),
                context: Some(ErrorContext::Sync {
                    map: "todos".into(),
                    kind: WireMapKind::Lww,
                }),
            },
        ),
    ]
}

/// The position of a client message in [`Message::NAMES`]. The match is
/// exhaustive, so adding a message without a sample, a golden file and a
/// docs example fails to compile here first.
pub fn client_index(m: &ClientMessage) -> usize {
    match m {
        ClientMessage::Auth { .. } => 0,
        ClientMessage::ClientOp { .. } => 1,
        ClientMessage::OpBatch { .. } => 2,
        ClientMessage::QuerySub { .. } => 3,
        ClientMessage::QueryUnsub { .. } => 4,
        ClientMessage::SyncInit { .. } => 5,
        ClientMessage::MerkleReqBucket { .. } => 6,
        ClientMessage::SyncReqLeaf { .. } => 7,
        ClientMessage::Ping { .. } => 8,
        ClientMessage::Pong { .. } => 9,
    }
}

/// The position of a server message in [`Message::NAMES`] (exhaustive, like
/// [`client_index`]).
pub fn server_index(m: &ServerMessage) -> usize {
    match m {
        ServerMessage::AuthRequired { .. } => 0,
        ServerMessage::AuthAck { .. } => 1,
        ServerMessage::AuthFail { .. } => 2,
        ServerMessage::OpAck { .. } => 3,
        ServerMessage::OpRejected { .. } => 4,
        ServerMessage::QueryResp { .. } => 5,
        ServerMessage::QueryUpdate { .. } => 6,
        ServerMessage::SyncRespRoot { .. } => 7,
        ServerMessage::SyncRespBuckets { .. } => 8,
        ServerMessage::SyncRespLeaf { .. } => 9,
        ServerMessage::Ping { .. } => 10,
        ServerMessage::Pong { .. } => 11,
        ServerMessage::Error { .. } => 12,
    }
}

#[test]
fn samples_cover_every_message_and_names_match_json_tags() {
    let client = client_samples();
    let mut seen = vec![false; ClientMessage::NAMES.len()];
    for (_, m) in &client {
        seen[client_index(m)] = true;
        assert_eq!(m.name(), ClientMessage::NAMES[client_index(m)]);
        // NAMES is in variant order: the bincode tag is the position.
        let bin = Codec::new(Encoding::Bincode).encode(m).unwrap();
        assert_eq!(usize::from(bin[0]), client_index(m));
        let json: serde_json::Value =
            serde_json::from_slice(&Codec::new(Encoding::Json).encode(m).unwrap()).unwrap();
        let tag = json.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(tag, m.name());
    }
    assert!(seen.iter().all(|s| *s), "client samples miss a message");
    let server = server_samples();
    let mut seen = vec![false; ServerMessage::NAMES.len()];
    for (_, m) in &server {
        seen[server_index(m)] = true;
        assert_eq!(m.name(), ServerMessage::NAMES[server_index(m)]);
        let bin = Codec::new(Encoding::Bincode).encode(m).unwrap();
        assert_eq!(usize::from(bin[0]), server_index(m));
        let json: serde_json::Value =
            serde_json::from_slice(&Codec::new(Encoding::Json).encode(m).unwrap()).unwrap();
        let tag = json.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(tag, m.name());
    }
    assert!(seen.iter().all(|s| *s), "server samples miss a message");
}
