//! Session renewal: the provider is called on every AUTH_REQUIRED.

use std::sync::atomic::Ordering;
use std::time::Duration;

use topgun_client::{AuthFailReason, Client, ClientEvent, TokenReason};
use topgun_protocol::{AuthRequiredReason, ClientMessage, ServerMessage};

use crate::counting_provider;
use crate::fake::FakeServer;

#[tokio::test]
async fn the_provider_is_called_again_on_every_renewal_request() {
    let server = FakeServer::start(|mut conn| async move {
        assert_eq!(conn.accept_auth("alice").await, "token-1");
        for (round, expected) in [(1u64, "token-2"), (2, "token-3")] {
            conn.send(ServerMessage::AuthRequired {
                min_version: 1,
                max_version: 1,
                reason: AuthRequiredReason::SessionExpiring {
                    expires_at_ms: 1_000 * round,
                },
            })
            .await;
            let (token, version) = conn.recv_auth().await;
            assert_eq!((token.as_str(), version), (expected, 1));
            conn.send(ServerMessage::AuthAck {
                protocol_version: 1,
                sub: "alice".to_owned(),
                session_expires_at_ms: Some(10_000 * round),
            })
            .await;
        }
        // The last renewal is refused.
        conn.send(ServerMessage::AuthRequired {
            min_version: 1,
            max_version: 1,
            reason: AuthRequiredReason::SessionExpiring { expires_at_ms: 5 },
        })
        .await;
        conn.recv_auth().await;
        conn.send(ServerMessage::AuthFail {
            reason: AuthFailReason::InvalidSignature,
            message: "bad signature".to_owned(),
        })
        .await;
        // The connection still works meanwhile.
        match conn.recv().await {
            ClientMessage::Ping { nonce } => conn.send(ServerMessage::Pong { nonce }).await,
            other => panic!("expected PING, got {other:?}"),
        }
        conn.expect_close().await;
    })
    .await;

    let (provider, calls, reasons) = counting_provider();
    let client = Client::connect(server.config(), provider).await.unwrap();
    let mut events = client.events();
    let mut renewed = Vec::new();
    while renewed.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ClientEvent::SessionRenewed(info) => renewed.push(info.expires_at_ms),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(renewed, [Some(10_000), Some(20_000)]);
    match tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ClientEvent::RenewalFailed { reason, .. } => {
            assert_eq!(reason, AuthFailReason::InvalidSignature);
        }
        other => panic!("unexpected event {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4, "initial + three renewals");
    assert_eq!(
        reasons.lock().unwrap().as_slice(),
        [
            TokenReason::Initial,
            TokenReason::Renewal {
                expires_at_ms: 1_000
            },
            TokenReason::Renewal {
                expires_at_ms: 2_000
            },
            TokenReason::Renewal { expires_at_ms: 5 },
        ]
    );
    assert_eq!(client.session().expires_at_ms, Some(20_000));
    client.ping().await.unwrap();
    client.close().await;
    server.join().await;
}
