//! Connecting: the upgrade, the subprotocol, the AUTH exchange and every
//! way it can fail.

use std::time::Duration;

use topgun_client::{
    AuthFailReason, Client, ClientConfig, ConnectError, ConnectStage, Encoding, StaticToken,
    SubprotocolProblem, token_fn,
};
use topgun_protocol::{AuthRequiredReason, ErrorCode, ServerMessage};

use crate::fake::{FakeServer, Options, Upgrade};

#[tokio::test]
async fn handshake_ok_returns_the_session() {
    let server = FakeServer::start(|mut conn| async move {
        assert_eq!(conn.seen.path, "/ws");
        assert_eq!(
            conn.seen.offered,
            ["topgun.v1.bincode"],
            "exactly one subprotocol"
        );
        let token = conn.accept_auth("alice").await;
        assert_eq!(token, "secret");
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("secret"))
        .await
        .unwrap();
    let session = client.session();
    assert_eq!(session.sub, "alice");
    assert_eq!(session.protocol_version, 1);
    assert_eq!(session.expires_at_ms, Some(4_000_000_000_000));
    assert_eq!(client.encoding(), Encoding::Bincode);
    let info = client.close().await;
    assert_eq!(info.code, Some(1000));
    server.join().await;
}

#[tokio::test]
async fn the_server_answers_ping_during_the_handshake() {
    let server = FakeServer::start(|mut conn| async move {
        conn.send(ServerMessage::Ping { nonce: 77 }).await;
        match conn.recv().await {
            topgun_protocol::ClientMessage::Pong { nonce } => assert_eq!(nonce, 77),
            other => panic!("expected PONG, got {other:?}"),
        }
        conn.accept_auth("bob").await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    assert_eq!(client.session().sub, "bob");
    drop(client);
    server.join().await;
}

#[tokio::test]
async fn auth_fail_is_a_typed_error() {
    let server = FakeServer::start(|mut conn| async move {
        conn.require_auth().await;
        conn.recv_auth().await;
        conn.send(ServerMessage::AuthFail {
            reason: AuthFailReason::Expired,
            message: "token expired".to_owned(),
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let err = Client::connect(server.config(), StaticToken::new("old"))
        .await
        .unwrap_err();
    match err {
        ConnectError::AuthFailed { reason, message } => {
            assert_eq!(reason, AuthFailReason::Expired);
            assert_eq!(message, "token expired");
        }
        other => panic!("expected AuthFailed, got {other:?}"),
    }
    server.join().await;
}

#[tokio::test]
async fn no_token_leaves_the_connection_unauthenticated_and_fails() {
    let server = FakeServer::start(|mut conn| async move {
        conn.require_auth().await;
        let close = conn.expect_close().await;
        assert_eq!(close.map(|c| c.0), Some(1000));
    })
    .await;
    let provider = token_fn(|_| async { None });
    let err = Client::connect(server.config(), provider)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::NoToken), "{err:?}");
    server.join().await;
}

#[tokio::test]
async fn a_close_during_the_handshake_carries_its_code() {
    let server = FakeServer::start(|mut conn| async move {
        conn.require_auth().await;
        conn.recv_auth().await;
        conn.close(4401, "auth deadline").await;
    })
    .await;
    let err = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap_err();
    match err {
        ConnectError::Closed { code, reason } => {
            assert_eq!(code, Some(4401));
            assert_eq!(reason, "auth deadline");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    server.join().await;
}

#[tokio::test]
async fn an_error_during_the_handshake_is_typed() {
    let server = FakeServer::start(|mut conn| async move {
        conn.send(ServerMessage::Error {
            code: ErrorCode::ShuttingDown,
            message: "bye".to_owned(),
            context: None,
        })
        .await;
        let _ = conn.expect_close().await;
    })
    .await;
    let err = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Server {
                code: ErrorCode::ShuttingDown,
                ..
            }
        ),
        "{err:?}"
    );
    server.join().await;
}

#[tokio::test]
async fn versions_that_do_not_overlap_are_refused() {
    let server = FakeServer::start(|mut conn| async move {
        conn.send(ServerMessage::AuthRequired {
            min_version: 2,
            max_version: 3,
            reason: AuthRequiredReason::Initial,
        })
        .await;
        let close = conn.expect_close().await;
        assert_eq!(close.map(|c| c.0), Some(1002));
    })
    .await;
    let err = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::UnsupportedVersion {
                server_min: 2,
                server_max: 3,
                ..
            }
        ),
        "{err:?}"
    );
    server.join().await;
}

#[tokio::test]
async fn a_server_that_selects_no_subprotocol_is_refused() {
    let options = Options {
        upgrade: Upgrade::SelectNothing,
        ..Options::default()
    };
    let server = FakeServer::start_with(options, |_conn| async {}).await;
    let err = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::SubprotocolMismatch {
                offered: "topgun.v1.bincode",
                problem: SubprotocolProblem::NoneSelected
            }
        ),
        "{err:?}"
    );
    server.join().await;
}

#[tokio::test]
async fn a_refused_upgrade_carries_the_http_status() {
    let options = Options {
        upgrade: Upgrade::Refuse(403),
        ..Options::default()
    };
    let server = FakeServer::start_with(options, |_conn| async {}).await;
    let err = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap_err();
    match err {
        ConnectError::UpgradeRefused { status, body } => {
            assert_eq!(status, 403);
            assert_eq!(body.as_deref(), Some("go away"));
        }
        other => panic!("expected UpgradeRefused, got {other:?}"),
    }
    server.join().await;
}

#[tokio::test]
async fn a_silent_server_times_out_in_the_auth_stage() {
    let server = FakeServer::start(|mut conn| async move {
        // Never sends AUTH_REQUIRED; waits for the client to give up.
        let _ = conn.expect_close().await;
    })
    .await;
    let config = server
        .config()
        .with_handshake_timeout(Duration::from_millis(200));
    let err = Client::connect(config, StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                stage: ConnectStage::Auth
            }
        ),
        "{err:?}"
    );
    server.join().await;
}

#[tokio::test]
async fn a_refused_tcp_connection_is_an_io_error() {
    // Bind, learn the port, and close the listener so nothing listens.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}/ws")).unwrap();
    let err = Client::connect(config, StaticToken::new("t"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Io {
                stage: ConnectStage::Tcp,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn json_encoding_offers_its_subprotocol_and_speaks_text() {
    let server = FakeServer::start(|mut conn| async move {
        assert_eq!(conn.seen.offered, ["topgun.v1.json"]);
        conn.accept_auth("carol").await;
        // An op arrives as a JSON text frame.
        let frame = conn.recv_frame().await.unwrap();
        let text = frame.to_text().unwrap().to_owned();
        assert!(text.starts_with("{\"CLIENT_OP\""), "{text}");
        let msg = conn.codec.decode_client(text.as_bytes()).unwrap();
        let topgun_protocol::ClientMessage::ClientOp { op } = msg else {
            panic!("expected CLIENT_OP")
        };
        conn.send(ServerMessage::OpAck {
            acks: vec![topgun_protocol::OpAckEntry {
                op_id: op.op_id,
                timestamp: op.timestamp,
            }],
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let config = server.config().with_encoding(Encoding::Json);
    let client = Client::connect(config, StaticToken::new("t"))
        .await
        .unwrap();
    assert_eq!(client.encoding(), Encoding::Json);
    let op = client.put("todos", "t1", "milk");
    let outcome = client.send_op(op).await.unwrap();
    assert!(outcome.is_acked());
    client.close().await;
    server.join().await;
}
