//! Bad input gets its documented answer, and the server keeps serving
//! everyone else.

use tokio_tungstenite::tungstenite::Message;
use topgun_protocol::{
    ClientMessage, Encoding, ErrorCode, ErrorContext, Hash64, Op, RejectCode, ServerMessage,
    WireLeafDigest, WireMapKind, WireMerklePath, WireNodeId, WireOpKind, WireQuery, WireTimestamp,
    WireValue, WriteConcern,
};
use topgun_server::Limits;
use topgun_server::session::close;
use topgun_tests::{Ended, Raw, start, start_with, test_builder, token_for};

fn put(op_id: u64, map: &str, key: &str, value: i64) -> Op {
    Op {
        op_id,
        map: map.to_owned(),
        key: key.to_owned(),
        timestamp: WireTimestamp {
            millis: 1,
            counter: 0,
            node: WireNodeId(42),
        },
        kind: WireOpKind::Put {
            value: WireValue::from(value),
            ttl_ms: None,
        },
    }
}

/// A fresh client still gets served: the server survived.
async fn still_serving(addr: std::net::SocketAddr) {
    let mut raw = Raw::connect(addr, Encoding::Bincode).await;
    assert!(matches!(
        raw.handshake(&token_for("ok")).await,
        ServerMessage::AuthAck { .. }
    ));
    raw.send(&ClientMessage::ClientOp {
        op: put(1, "health", "k", 1),
    })
    .await;
    assert!(matches!(raw.recv().await, Ok(ServerMessage::OpAck { .. })));
}

async fn authed(addr: std::net::SocketAddr, encoding: Encoding) -> Raw {
    let mut raw = Raw::connect(addr, encoding).await;
    assert!(matches!(
        raw.handshake(&token_for("t")).await,
        ServerMessage::AuthAck { .. }
    ));
    raw
}

fn assert_error_then_close(
    seen: &[ServerMessage],
    ended: &Ended,
    code: ErrorCode,
    close_code: u16,
) {
    assert!(
        seen.iter()
            .any(|m| matches!(m, ServerMessage::Error { code: c, .. } if *c == code)),
        "expected ERROR {code:?} in {seen:?}"
    );
    assert_eq!(*ended, Ended::Closed(close_code));
}

#[tokio::test]
async fn garbage_frames_get_malformed_message_and_close_4004() {
    let server = start().await;
    for (encoding, frame) in [
        (
            Encoding::Bincode,
            Message::Binary(vec![0xff, 0xfe, 0x00, 0x13].into()),
        ),
        (Encoding::Json, Message::Text("{\"NOPE\":{}}".into())),
        (Encoding::Json, Message::Text("not json at all".into())),
        // The wrong frame type for the negotiated encoding.
        (
            Encoding::Bincode,
            Message::Text("{\"PING\":{\"nonce\":1}}".into()),
        ),
    ] {
        let mut raw = authed(server.addr, encoding).await;
        raw.send_frame(frame).await;
        let (seen, ended) = raw.recv_until_closed().await;
        assert_error_then_close(
            &seen,
            &ended,
            ErrorCode::MalformedMessage,
            close::PROTOCOL_ERROR,
        );
    }
    still_serving(server.addr).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_hostile_length_prefix_is_an_error_not_an_allocation() {
    let server = start().await;
    let mut raw = authed(server.addr, Encoding::Bincode).await;
    // OP_BATCH (variant 2) claiming 2^40 ops: bincode varint 0xfd + u64.
    let mut frame = vec![2u8, 0xfd];
    frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
    raw.send_frame(Message::Binary(frame.into())).await;
    let (seen, ended) = raw.recv_until_closed().await;
    assert_error_then_close(
        &seen,
        &ended,
        ErrorCode::MalformedMessage,
        close::PROTOCOL_ERROR,
    );
    still_serving(server.addr).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    let limits = Limits {
        max_message_bytes: 64 * 1024,
        max_frame_bytes: 64 * 1024,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut raw = authed(server.addr, Encoding::Bincode).await;
    raw.send_frame(Message::Binary(vec![0u8; 200 * 1024].into()))
        .await;
    let (_, ended) = raw.recv_until_closed().await;
    assert_eq!(ended, Ended::Closed(close::MESSAGE_TOO_BIG));
    still_serving(server.addr).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_op_of_a_batch_is_answered_and_bad_ops_are_rejected_with_codes() {
    let limits = Limits {
        max_value_bytes: 1024,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut raw = authed(server.addr, Encoding::Json).await;
    let mut big = put(3, "m", "big", 0);
    big.kind = WireOpKind::Put {
        value: WireValue::from("x".repeat(4096)),
        ttl_ms: None,
    };
    let mut or_on_lww = put(5, "m", "k", 0);
    or_on_lww.kind = WireOpKind::OrAdd {
        value: WireValue::from(1i64),
        ttl_ms: None,
    };
    let ops = vec![
        put(1, "m", "a", 1),
        put(2, "$internal", "a", 1),
        big,
        put(4, "m", "", 1),
        or_on_lww,
        put(6, "m", "b", 2),
    ];
    raw.send(&ClientMessage::OpBatch {
        ops,
        write_concern: WriteConcern::Durable,
    })
    .await;
    let mut acked = Vec::new();
    let mut rejected = Vec::new();
    while acked.len() + rejected.len() < 6 {
        match raw.recv().await {
            Ok(ServerMessage::OpAck { acks }) => acked.extend(acks.into_iter().map(|a| a.op_id)),
            Ok(ServerMessage::OpRejected { rejections }) => {
                rejected.extend(rejections.into_iter().map(|r| (r.op_id, r.code)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    acked.sort_unstable();
    rejected.sort_unstable_by_key(|r| r.0);
    assert_eq!(acked, [1, 6]);
    assert_eq!(
        rejected,
        [
            (2, RejectCode::Forbidden),
            (3, RejectCode::ValueTooLarge),
            (4, RejectCode::InvalidKey),
            (5, RejectCode::MapKindMismatch),
        ]
    );
    // A batch longer than the limit: every op answered BatchTooLarge.
    let ops: Vec<Op> = (0..1001).map(|i| put(100 + i, "m", "x", 1)).collect();
    raw.send(&ClientMessage::OpBatch {
        ops,
        write_concern: WriteConcern::Durable,
    })
    .await;
    match raw.recv().await {
        Ok(ServerMessage::OpRejected { rejections }) => {
            assert_eq!(rejections.len(), 1001);
            assert!(
                rejections
                    .iter()
                    .all(|r| r.code == RejectCode::BatchTooLarge)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // No cluster: a replicated write concern cannot be met, and says so.
    raw.send(&ClientMessage::OpBatch {
        ops: vec![put(9, "m", "r", 1)],
        write_concern: WriteConcern::Replicated,
    })
    .await;
    match raw.recv().await {
        Ok(ServerMessage::OpRejected { rejections }) => {
            assert_eq!(rejections[0].code, RejectCode::WriteConcernUnavailable);
        }
        other => panic!("unexpected {other:?}"),
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_beyond_the_op_rate_is_rejected_and_closed_with_4009() {
    let limits = Limits {
        ops_per_second: 50,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut raw = authed(server.addr, Encoding::Bincode).await;
    // The bucket holds two seconds' worth (100 ops); 150 do not fit.
    for batch in 0..3u64 {
        let ops = (0..50)
            .map(|i| put(batch * 50 + i, "flood", "k", 1))
            .collect();
        raw.send(&ClientMessage::OpBatch {
            ops,
            write_concern: WriteConcern::Durable,
        })
        .await;
    }
    let (seen, ended) = raw.recv_until_closed().await;
    let acked: usize = seen
        .iter()
        .map(|m| {
            if let ServerMessage::OpAck { acks } = m {
                acks.len()
            } else {
                0
            }
        })
        .sum();
    let limited: usize = seen
        .iter()
        .map(|m| match m {
            ServerMessage::OpRejected { rejections } => rejections
                .iter()
                .filter(|r| r.code == RejectCode::RateLimited)
                .count(),
            _ => 0,
        })
        .sum();
    assert_eq!(acked, 100, "{seen:?}");
    assert_eq!(limited, 50, "every op of the refused batch is answered");
    assert_error_then_close(&seen, &ended, ErrorCode::RateLimited, close::RATE_LIMITED);
    still_serving(server.addr).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_resent_op_is_acknowledged_with_its_first_timestamp() {
    let server = start().await;
    let mut raw = authed(server.addr, Encoding::Bincode).await;
    raw.send(&ClientMessage::ClientOp {
        op: put(77, "dedupe", "k", 1),
    })
    .await;
    let first = match raw.recv().await {
        Ok(ServerMessage::OpAck { acks }) => acks[0].timestamp,
        other => panic!("{other:?}"),
    };
    // Reconnect (same principal, same client replica) and resend.
    let mut again = authed(server.addr, Encoding::Bincode).await;
    again
        .send(&ClientMessage::ClientOp {
            op: put(77, "dedupe", "k", 1),
        })
        .await;
    match again.recv().await {
        Ok(ServerMessage::OpAck { acks }) => assert_eq!(acks[0].timestamp, first),
        other => panic!("{other:?}"),
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_name_the_request_they_answer_and_connection_errors_name_none() {
    let server = start().await;
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let mut raw = authed(server.addr, encoding).await;
        // "tags" becomes an observed-remove map.
        let mut add = put(1, "tags", "colors", 1);
        add.kind = WireOpKind::OrAdd {
            value: WireValue::from("red"),
            ttl_ms: None,
        };
        raw.send(&ClientMessage::ClientOp { op: add }).await;
        assert!(matches!(raw.recv().await, Ok(ServerMessage::OpAck { .. })));

        let sync = |map: &str, kind| ErrorContext::Sync {
            map: map.to_owned(),
            kind,
        };
        let query = |query_id| ErrorContext::Query { query_id };
        let cases: Vec<(ClientMessage, ErrorCode, ErrorContext)> = vec![
            (
                ClientMessage::QuerySub {
                    query_id: 5,
                    map: "$internal".to_owned(),
                    query: WireQuery::default(),
                },
                ErrorCode::Forbidden,
                query(5),
            ),
            (
                ClientMessage::QuerySub {
                    query_id: 6,
                    map: "tags".to_owned(),
                    query: WireQuery::default(),
                },
                ErrorCode::InvalidSyncRequest,
                query(6),
            ),
            (
                ClientMessage::QueryUnsub { query_id: 77 },
                ErrorCode::UnknownQuery,
                query(77),
            ),
            (
                ClientMessage::SyncInit {
                    map: "$internal".to_owned(),
                    kind: WireMapKind::Lww,
                    root: Hash64(0),
                },
                ErrorCode::Forbidden,
                sync("$internal", WireMapKind::Lww),
            ),
            (
                ClientMessage::SyncInit {
                    map: "tags".to_owned(),
                    kind: WireMapKind::Lww,
                    root: Hash64(0),
                },
                ErrorCode::InvalidSyncRequest,
                sync("tags", WireMapKind::Lww),
            ),
            (
                // A leaf bucket cannot be expanded.
                ClientMessage::MerkleReqBucket {
                    map: "tags".to_owned(),
                    kind: WireMapKind::Or,
                    paths: vec![WireMerklePath { level: 3, index: 0 }],
                },
                ErrorCode::InvalidSyncRequest,
                sync("tags", WireMapKind::Or),
            ),
            (
                // The root is not a leaf bucket.
                ClientMessage::SyncReqLeaf {
                    map: "tags".to_owned(),
                    kind: WireMapKind::Or,
                    leaves: vec![WireLeafDigest::default()],
                },
                ErrorCode::InvalidSyncRequest,
                sync("tags", WireMapKind::Or),
            ),
        ];
        for (request, code, context) in cases {
            raw.send(&request).await;
            match raw.recv().await {
                Ok(ServerMessage::Error {
                    code: c,
                    context: Some(ctx),
                    ..
                }) if c == code && ctx == context => {}
                other => {
                    panic!("{encoding:?} {request:?}: expected {code:?} {context:?}, got {other:?}")
                }
            }
        }

        // An error about the connection itself names no request.
        let garbage = if encoding.is_binary() {
            Message::Binary(vec![0xff, 0xfe].into())
        } else {
            Message::Text("{\"NOPE\":{}}".into())
        };
        raw.send_frame(garbage).await;
        let (seen, ended) = raw.recv_until_closed().await;
        assert!(
            matches!(
                seen.as_slice(),
                [ServerMessage::Error {
                    code: ErrorCode::MalformedMessage,
                    context: None,
                    ..
                }]
            ),
            "{seen:?}"
        );
        assert_eq!(ended, Ended::Closed(close::PROTOCOL_ERROR));
    }
}
