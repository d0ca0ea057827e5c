//! Pings both ways, events, closes from either side, and what pending
//! requests see when the connection ends.

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use topgun_client::{
    Client, ClientError, ClientEvent, CloseInitiator, ErrorCode, RawFrame, StaticToken,
    WriteConcern,
};
use topgun_core::LwwMap;
use topgun_protocol::{ClientMessage, ServerMessage};

use crate::fake::FakeServer;

#[tokio::test]
async fn pings_are_answered_both_ways() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        conn.send(ServerMessage::Ping { nonce: 31337 }).await;
        let mut got_pong = false;
        let mut answered_ping = false;
        while !(got_pong && answered_ping) {
            match conn.recv().await {
                ClientMessage::Pong { nonce } => {
                    assert_eq!(nonce, 31337);
                    got_pong = true;
                }
                ClientMessage::Ping { nonce } => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    conn.send(ServerMessage::Pong { nonce }).await;
                    answered_ping = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let rtt = client.ping().await.unwrap();
    assert!(rtt >= Duration::from_millis(20), "{rtt:?}");
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_server_close_mid_request_fails_every_pending_request_with_its_code() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        // An op, a batch, a subscription, a ping and a sync step arrive;
        // none is answered.
        for _ in 0..5 {
            conn.recv().await;
        }
        conn.send(ServerMessage::Error {
            code: ErrorCode::ShuttingDown,
            message: "restarting".to_owned(),
            context: None,
        })
        .await;
        conn.close(4000, "server restarting").await;
    })
    .await;
    let client = Client::connect(
        server.config().with_request_timeout(None),
        StaticToken::new("t"),
    )
    .await
    .unwrap();
    let mut events = client.events();
    let (c1, c2, c3, c4, c5) = (
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
        client.clone(),
    );
    let op = tokio::spawn(async move { c1.send_op(c1.put("m", "k", 1i64)).await.map(|_| ()) });
    // Queue the requests in a known order, one at a time.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let batch = tokio::spawn(async move {
        c2.send_batch(vec![c2.remove("m", "k")], WriteConcern::Durable)
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sub = tokio::spawn(async move {
        c3.subscribe("m", &topgun_core::Query::default())
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ping = tokio::spawn(async move { c4.ping().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sync = tokio::spawn(async move {
        let mut map = LwwMap::new();
        c5.sync_lww("m", &mut map).await.map(|_| ())
    });

    for (name, task) in [
        ("op", op),
        ("batch", batch),
        ("sub", sub),
        ("ping", ping),
        ("sync", sync),
    ] {
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap_or_else(|_| panic!("{name} hangs"))
            .unwrap();
        match result {
            Err(ClientError::Disconnected { code, reason }) => {
                assert_eq!(code, Some(4000), "{name}");
                assert_eq!(reason, "server restarting", "{name}");
            }
            other => panic!("{name}: expected Disconnected, got {other:?}"),
        }
    }
    let info = client.closed().await;
    assert_eq!(info.code, Some(4000));
    assert_eq!(info.initiator, CloseInitiator::Server);
    assert!(client.is_closed());
    assert_eq!(client.pending_requests(), 0);

    // The server's ERROR, then the close, reached the events channel.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(matches!(
        seen.first(),
        Some(ClientEvent::ServerError {
            code: ErrorCode::ShuttingDown,
            ..
        })
    ));
    assert!(matches!(seen.last(), Some(ClientEvent::Closed(i)) if i.code == Some(4000)));

    // Requests after the close fail at once with the same code.
    let late = client.ping().await.unwrap_err();
    assert!(matches!(
        late,
        ClientError::Disconnected {
            code: Some(4000),
            ..
        }
    ));
    server.join().await;
}

#[tokio::test]
async fn an_undecodable_server_frame_closes_with_a_protocol_error() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        conn.recv().await; // the op
        conn.send_frame(Message::Binary(vec![0xff, 0xff, 0xff].into()))
            .await;
        let close = conn.expect_close().await;
        assert_eq!(close.map(|c| c.0), Some(1002));
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let err = client
        .send_op(client.put("m", "k", 1i64))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Disconnected { code: Some(1002), ref reason } if reason.contains("undecodable")),
        "{err:?}"
    );
    let info = client.closed().await;
    assert_eq!(info.initiator, CloseInitiator::ProtocolViolation);
    server.join().await;
}

#[tokio::test]
async fn close_sends_a_normal_close_after_queued_requests() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let frame = conn.recv_frame().await.unwrap();
        assert_eq!(
            frame,
            Message::Binary(vec![1, 2, 3].into()),
            "raw frame as sent"
        );
        let close = conn.expect_close().await;
        assert_eq!(close, Some((1000, "client closed".to_owned())));
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    client
        .send_raw_frame(RawFrame::Binary(vec![1, 2, 3]))
        .await
        .unwrap();
    let info = client.close().await;
    assert_eq!(info.code, Some(1000));
    assert_eq!(info.initiator, CloseInitiator::Client);
    // Closing twice returns the same information.
    assert_eq!(client.close().await, info);
    server.join().await;
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let close = conn.expect_close().await;
        assert_eq!(close.map(|c| c.0), Some(1000));
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let clone = client.clone();
    drop(client);
    drop(clone);
    server.join().await;
}

#[tokio::test]
async fn a_connection_dropped_without_a_close_frame_is_reported() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        conn.recv().await;
        // Drop the socket without a close frame.
        drop(conn);
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let err = client
        .send_op(client.put("m", "k", 1i64))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Disconnected { code: None, .. }),
        "{err:?}"
    );
    assert_eq!(client.closed().await.initiator, CloseInitiator::Transport);
    server.join().await;
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_is_forgotten() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        conn.recv().await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(
        server
            .config()
            .with_request_timeout(Some(Duration::from_millis(100))),
        StaticToken::new("t"),
    )
    .await
    .unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout), "{err:?}");
    assert_eq!(client.pending_requests(), 0);
    client.close().await;
    server.join().await;
}
