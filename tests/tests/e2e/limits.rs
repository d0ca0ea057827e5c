//! Connection caps, idle timeout, byte rate and slow consumers: each limit
//! gives its documented answer.

use std::time::Duration;

use topgun_protocol::{
    ClientMessage, Encoding, ErrorCode, Op, ServerMessage, WireNodeId, WireOpKind, WireQuery,
    WireTimestamp, WireValue, WriteConcern,
};
use topgun_server::Limits;
use topgun_server::session::close;
use topgun_tests::{Ended, Raw, start_with, test_builder, token_for};

async fn authed(addr: std::net::SocketAddr) -> Raw {
    let mut raw = Raw::connect(addr, Encoding::Bincode).await;
    assert!(matches!(
        raw.handshake(&token_for("l")).await,
        ServerMessage::AuthAck { .. }
    ));
    raw
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused() {
    let limits = Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let _a = authed(server.addr).await;
    let _b = authed(server.addr).await;
    let url = format!("ws://{}/ws", server.addr);
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err(),
        "a third connection is refused"
    );
    drop(_a);
    // A slot frees up when a session ends.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if tokio_tungstenite::connect_async(url.as_str()).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the freed slot is usable again");
    assert!(
        server.metrics.reason_count(
            "topgun_connections_rejected_total",
            "max_connections_per_ip"
        ) >= 1
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_pinged_then_closed_with_4010() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut raw = authed(server.addr).await;
    let (seen, ended) = raw.recv_until_closed().await;
    assert!(
        matches!(seen.as_slice(), [ServerMessage::Ping { .. }]),
        "{seen:?}"
    );
    assert_eq!(ended, Ended::Closed(close::IDLE_TIMEOUT));

    // Answering the ping keeps a connection open.
    let mut alive = authed(server.addr).await;
    for _ in 0..3 {
        match alive.recv().await {
            Ok(ServerMessage::Ping { nonce }) => alive.send(&ClientMessage::Pong { nonce }).await,
            other => panic!("expected PING, got {other:?}"),
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_byte_flood_closes_with_4009() {
    let limits = Limits {
        bytes_per_second: 10_000,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    // Two seconds' burst is 20 kB; ten writes of 5 kB exceed it.
    let mut raw = authed(server.addr).await;
    for i in 0..10u64 {
        let op = Op {
            op_id: i,
            map: "bytes".to_owned(),
            key: format!("k{i}"),
            timestamp: WireTimestamp {
                millis: 1,
                counter: 0,
                node: WireNodeId(5),
            },
            kind: WireOpKind::Put {
                value: WireValue::from("y".repeat(5_000)),
                ttl_ms: None,
            },
        };
        raw.send(&ClientMessage::OpBatch {
            ops: vec![op],
            write_concern: WriteConcern::Durable,
        })
        .await;
    }
    let (seen, ended) = raw.recv_until_closed().await;
    assert!(
        seen.iter().any(|m| matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        )),
        "{seen:?}"
    );
    assert_eq!(ended, Ended::Closed(close::RATE_LIMITED));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_as_a_slow_consumer() {
    let limits = Limits {
        outbound_queue: 4,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut slow = authed(server.addr).await;
    slow.send(&ClientMessage::QuerySub {
        query_id: 1,
        map: "firehose".to_owned(),
        query: WireQuery::default(),
    })
    .await;
    assert!(matches!(
        slow.recv().await,
        Ok(ServerMessage::QueryResp { .. })
    ));
    // The subscriber now reads nothing while a writer pushes large updates
    // until the socket buffers and then the bounded queue are full.
    let mut writer = authed(server.addr).await;
    let big = "x".repeat(60_000);
    let mut closed = false;
    for i in 0..400u64 {
        let op = Op {
            op_id: i,
            map: "firehose".to_owned(),
            key: format!("k{i}"),
            timestamp: WireTimestamp {
                millis: 1,
                counter: 0,
                node: WireNodeId(5),
            },
            kind: WireOpKind::Put {
                value: WireValue::from(big.as_str()),
                ttl_ms: None,
            },
        };
        writer
            .send(&ClientMessage::OpBatch {
                ops: vec![op],
                write_concern: WriteConcern::Durable,
            })
            .await;
        assert!(matches!(
            writer.recv().await,
            Ok(ServerMessage::OpAck { .. })
        ));
        if server
            .metrics
            .reason_count("topgun_sessions_closed_total", "4008")
            > 0
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow subscriber was cut off");
    let (_, ended) = slow.recv_until_closed().await;
    assert!(
        ended == Ended::Closed(close::SLOW_CONSUMER) || ended == Ended::Dropped,
        "{ended:?}"
    );
    // The writer was never blocked by the slow reader.
    writer.send(&ClientMessage::Ping { nonce: 1 }).await;
    assert_eq!(writer.recv().await, Ok(ServerMessage::Pong { nonce: 1 }));
    server.stop().await.unwrap();
}
