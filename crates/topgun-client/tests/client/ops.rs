//! Ops: acks and rejections routed per op, batches split across messages,
//! pipelined batches, op ids and timestamps.

use std::collections::HashMap;

use topgun_client::{Client, ClientError, OpOutcome, RejectCode, StaticToken, WriteConcern};
use topgun_core::{OpKind, Timestamp, Value};
use topgun_protocol::{
    ClientMessage, OpAckEntry, OpRejection, ServerMessage, WireNodeId, WireOpKind, WireTimestamp,
};

use crate::fake::FakeServer;

fn server_ts(n: u64) -> WireTimestamp {
    WireTimestamp {
        millis: 1_700_000_000_000 + n,
        counter: 0,
        node: WireNodeId(0x5e),
    }
}

#[tokio::test]
async fn a_batch_with_mixed_answers_resolves_per_op_in_order() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let ClientMessage::OpBatch { ops, write_concern } = conn.recv().await else {
            panic!("expected OP_BATCH")
        };
        assert_eq!(write_concern, WriteConcern::Replicated);
        assert_eq!(ops.len(), 4);
        let ids: Vec<u64> = ops.iter().map(|o| o.op_id).collect();
        // Rejections first, then the acks in reverse order: the client
        // must still report outcomes in the batch's order.
        conn.send(ServerMessage::OpRejected {
            rejections: vec![OpRejection {
                op_id: ids[1],
                code: RejectCode::Forbidden,
                message: "remove denied".to_owned(),
            }],
        })
        .await;
        conn.send(ServerMessage::OpAck {
            acks: vec![
                OpAckEntry {
                    op_id: ids[3],
                    timestamp: server_ts(3),
                },
                OpAckEntry {
                    op_id: ids[0],
                    timestamp: server_ts(0),
                },
            ],
        })
        .await;
        conn.send(ServerMessage::OpRejected {
            rejections: vec![OpRejection {
                op_id: ids[2],
                code: RejectCode::MapKindMismatch,
                message: "todos is an LWW map".to_owned(),
            }],
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let ops = vec![
        client.put("todos", "a", 1i64),
        client.remove("todos", "b"),
        client.or_add("todos", "c", "x"),
        client.put("todos", "d", Value::Null),
    ];
    let outcomes = client
        .send_batch(ops, WriteConcern::Replicated)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            OpOutcome::Acked {
                timestamp: server_ts(0).into()
            },
            OpOutcome::Rejected {
                code: RejectCode::Forbidden,
                message: "remove denied".to_owned()
            },
            OpOutcome::Rejected {
                code: RejectCode::MapKindMismatch,
                message: "todos is an LWW map".to_owned()
            },
            OpOutcome::Acked {
                timestamp: server_ts(3).into()
            },
        ]
    );
    // The clock follows the acknowledged timestamps.
    assert!(client.now() > Timestamp::from(server_ts(3)));
    assert_eq!(client.pending_requests(), 0);
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn helpers_stamp_ops_and_ids_are_assigned_or_kept() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let ClientMessage::ClientOp { op } = conn.recv().await else {
                panic!("expected CLIENT_OP")
            };
            conn.send(ServerMessage::OpAck {
                acks: vec![OpAckEntry {
                    op_id: op.op_id,
                    timestamp: op.timestamp,
                }],
            })
            .await;
            seen.push(op);
        }
        assert_eq!(seen[0].op_id + 1, seen[1].op_id, "monotonic ids");
        assert_eq!(seen[2].op_id, 900, "a supplied id is kept");
        assert!(seen[0].timestamp < seen[1].timestamp);
        assert_eq!(seen[0].timestamp.node, seen[1].timestamp.node);
        assert!(matches!(seen[1].kind, WireOpKind::OrRemove { ref tags } if tags.len() == 1));
        assert!(matches!(
            seen[0].kind,
            WireOpKind::Put {
                ttl_ms: Some(60_000),
                ..
            }
        ));
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let put = client.put("m", "k", "v").with_ttl(60_000);
    assert_eq!(put.timestamp.node, client.node_id());
    let tag = client.now();
    let remove = client.or_remove("tags", "k", vec![tag]);
    assert!(matches!(remove.kind, OpKind::OrRemove { .. }));
    assert!(client.send_op(put).await.unwrap().is_acked());
    assert!(client.send_op(remove).await.unwrap().is_acked());
    let mine = client.remove("m", "k").with_op_id(900);
    assert!(client.send_op(mine).await.unwrap().is_acked());
    assert!(
        client
            .send_batch(vec![], WriteConcern::Durable)
            .await
            .unwrap()
            .is_empty()
    );
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn pipelined_batches_stay_in_flight_together() {
    const BATCHES: usize = 20;
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        // Read every batch before answering any, then answer in reverse.
        let mut batches = Vec::new();
        for _ in 0..BATCHES {
            let ClientMessage::OpBatch { ops, .. } = conn.recv().await else {
                panic!("expected OP_BATCH")
            };
            batches.push(ops);
        }
        for ops in batches.into_iter().rev() {
            conn.send(ServerMessage::OpAck {
                acks: ops
                    .iter()
                    .map(|o| OpAckEntry {
                        op_id: o.op_id,
                        timestamp: o.timestamp,
                    })
                    .collect(),
            })
            .await;
        }
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for b in 0..BATCHES {
        let ops = (0..10)
            .map(|i| client.put("load", &format!("{b}-{i}"), i as i64))
            .collect();
        pending.push(
            client
                .submit_batch(ops, WriteConcern::Durable)
                .await
                .unwrap(),
        );
    }
    assert_eq!(client.pending_requests(), BATCHES);
    let mut ids = HashMap::new();
    for p in &pending {
        for id in p.op_ids() {
            assert!(ids.insert(*id, ()).is_none(), "op ids are unique");
        }
    }
    for p in pending {
        let outcomes = p.await.unwrap();
        assert_eq!(outcomes.len(), 10);
        assert!(outcomes.iter().all(OpOutcome::is_acked));
    }
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_duplicate_op_id_in_flight_is_refused() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let ClientMessage::OpBatch { ops, .. } = conn.recv().await else {
            panic!("expected OP_BATCH")
        };
        assert_eq!(ops[0].op_id, 5);
        // The refused ops never reach the wire: the next message is the ping.
        let ClientMessage::Ping { nonce } = conn.recv().await else {
            panic!("expected PING")
        };
        conn.send(ServerMessage::Pong { nonce }).await;
        conn.send(ServerMessage::OpAck {
            acks: vec![OpAckEntry {
                op_id: 5,
                timestamp: server_ts(5),
            }],
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let first = client
        .submit_batch(
            vec![client.put("m", "a", 1i64).with_op_id(5)],
            WriteConcern::Durable,
        )
        .await
        .unwrap();
    let same = client
        .send_op(client.put("m", "a", 2i64).with_op_id(5))
        .await;
    assert!(
        matches!(same, Err(ClientError::DuplicateOpId(5))),
        "{same:?}"
    );
    let twice = client
        .submit_batch(
            vec![
                client.put("m", "b", 1i64).with_op_id(6),
                client.put("m", "c", 1i64).with_op_id(6),
            ],
            WriteConcern::Durable,
        )
        .await;
    assert!(matches!(twice, Err(ClientError::DuplicateOpId(6))));
    client.ping().await.unwrap();
    let outcomes = first.await.unwrap();
    assert_eq!(
        outcomes,
        [OpOutcome::Acked {
            timestamp: server_ts(5).into()
        }]
    );
    client.close().await;
    server.join().await;
}
