//! The AUTH handshake and every JWT case of the security guide, each with
//! its expected answer; the auth deadline; session expiry and renewal.

use std::time::Duration;

use base64::Engine as _;
use topgun_protocol::{
    AuthFailReason, AuthRequiredReason, ClientMessage, Encoding, ErrorCode, PROTOCOL_VERSION,
    ServerMessage,
};
use topgun_server::Limits;
use topgun_server::auth::{AuthConfig, KeySet};
use topgun_server::session::close;
use topgun_tests::{
    Ended, Raw, SECRET, hs256, hs256_with, now_secs, start, start_with, test_builder,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header, HMAC-signed with `secret` (or unsigned).
fn forge(header: &serde_json::Value, claims: &serde_json::Value, secret: Option<&[u8]>) -> String {
    use hmac::Mac as _;
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = match secret {
        None => String::new(),
        Some(s) => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(s).unwrap();
            mac.update(signing_input.as_bytes());
            b64(&mac.finalize().into_bytes())
        }
    };
    format!("{signing_input}.{sig}")
}

/// Expected answer to one AUTH.
#[derive(Debug)]
enum Expect {
    Ack(&'static str),
    Fail(AuthFailReason),
}

async fn check(addr: std::net::SocketAddr, token: &str, expect: Expect) {
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let mut raw = Raw::connect(addr, encoding).await;
        let answer = raw.handshake(token).await;
        match (&expect, answer) {
            (
                Expect::Ack(sub),
                ServerMessage::AuthAck {
                    sub: got,
                    protocol_version,
                    session_expires_at_ms,
                },
            ) => {
                assert_eq!(got, *sub);
                assert_eq!(protocol_version, PROTOCOL_VERSION);
                assert!(
                    session_expires_at_ms.is_some(),
                    "a JWT session has an expiry"
                );
            }
            (Expect::Fail(reason), ServerMessage::AuthFail { reason: got, .. }) => {
                assert_eq!(got, *reason, "token {token}");
                assert_eq!(raw.recv().await, Err(Ended::Closed(close::AUTH_FAILED)));
            }
            (e, other) => panic!("expected {e:?}, got {other:?} for token {token}"),
        }
    }
}

#[tokio::test]
async fn jwt_cases_against_an_hs256_server() {
    // Many failures from one address: lift the failed-auth budget so the
    // rate limiter (tested on its own below) does not answer instead.
    let generous = topgun_server::auth::RateLimitConfig {
        max_failures: 10_000,
        ..Default::default()
    };
    let server = start_with(test_builder(Limits::default()).auth_rate_limit(generous)).await;
    let now = now_secs();
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "valid",
            hs256(&serde_json::json!({"sub": "alice", "exp": now + 600})),
            Expect::Ack("alice"),
        ),
        (
            "expired",
            hs256(&serde_json::json!({"sub": "a", "exp": now - 3600})),
            Expect::Fail(AuthFailReason::Expired),
        ),
        (
            "not yet valid",
            hs256(&serde_json::json!({"sub": "a", "exp": now + 7200, "nbf": now + 3600})),
            Expect::Fail(AuthFailReason::NotYetValid),
        ),
        (
            "bad signature",
            hs256_with(
                b"another-secret-of-at-least-32-bytes",
                &serde_json::json!({"sub": "a", "exp": now + 600}),
            ),
            Expect::Fail(AuthFailReason::InvalidSignature),
        ),
        (
            "alg none",
            forge(
                &serde_json::json!({"alg": "none", "typ": "JWT"}),
                &serde_json::json!({"sub": "a", "exp": now + 600}),
                None,
            ),
            Expect::Fail(AuthFailReason::AlgorithmNotAllowed),
        ),
        (
            "string exp",
            forge(
                &serde_json::json!({"alg": "HS256"}),
                &serde_json::json!({"sub": "a", "exp": (now + 600).to_string()}),
                Some(SECRET.as_bytes()),
            ),
            Expect::Fail(AuthFailReason::InvalidClaim),
        ),
        (
            "missing sub",
            hs256(&serde_json::json!({"exp": now + 600})),
            Expect::Fail(AuthFailReason::MissingClaim),
        ),
        (
            "missing exp",
            hs256(&serde_json::json!({"sub": "a"})),
            Expect::Fail(AuthFailReason::MissingClaim),
        ),
        (
            "garbage",
            "not.a.jwt".to_owned(),
            Expect::Fail(AuthFailReason::Malformed),
        ),
    ];
    for (name, token, expect) in cases {
        eprintln!("case: {name}");
        check(server.addr, &token, expect).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_pem_public_key_server_accepts_es256_and_refuses_hs256_signed_with_the_pem() {
    let key = rcgen::KeyPair::generate().unwrap();
    let public_pem = key.public_key_pem();
    // As a container env var would carry it: escaped newlines.
    let env_style = public_pem.replace('\n', "\\n");
    let auth = AuthConfig::from_jwt_secret(&env_style).unwrap().build();
    let server = start_with(test_builder(Limits::default()).auth(auth)).await;
    let now = now_secs();
    let claims = serde_json::json!({"sub": "bob", "exp": now + 600});
    let es256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    check(server.addr, &es256, Expect::Ack("bob")).await;
    // The classic algorithm confusion: HMAC with the public key's PEM text.
    let confused = forge(
        &serde_json::json!({"alg": "HS256"}),
        &claims,
        Some(public_pem.as_bytes()),
    );
    check(
        server.addr,
        &confused,
        Expect::Fail(AuthFailReason::AlgorithmNotAllowed),
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keys_are_selected_by_kid_and_an_unknown_kid_fails() {
    let keys = KeySet::from_key_file_json(
        r#"{"keys":[{"kid":"k1","secret":"first-secret-of-at-least-32-bytes!!"},{"kid":"k2","secret":"second-secret-of-at-least-32-bytes!"}]}"#,
    )
    .unwrap();
    let server =
        start_with(test_builder(Limits::default()).auth(AuthConfig::builder(keys).build())).await;
    let claims = serde_json::json!({"sub": "carol", "exp": now_secs() + 600});
    let with_kid = |kid: &str, secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    check(
        server.addr,
        &with_kid("k1", b"first-secret-of-at-least-32-bytes!!"),
        Expect::Ack("carol"),
    )
    .await;
    check(
        server.addr,
        &with_kid("k2", b"second-secret-of-at-least-32-bytes!"),
        Expect::Ack("carol"),
    )
    .await;
    // Signed with k1's secret but naming k2: the kid picks the key.
    check(
        server.addr,
        &with_kid("k2", b"first-secret-of-at-least-32-bytes!!"),
        Expect::Fail(AuthFailReason::InvalidSignature),
    )
    .await;
    check(
        server.addr,
        &with_kid("k9", b"first-secret-of-at-least-32-bytes!!"),
        Expect::Fail(AuthFailReason::UnknownKeyId),
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn only_auth_and_ping_before_auth_ack() {
    let server = start().await;
    let mut raw = Raw::connect(server.addr, Encoding::Json).await;
    assert!(matches!(
        raw.recv().await,
        Ok(ServerMessage::AuthRequired {
            reason: AuthRequiredReason::Initial,
            ..
        })
    ));
    raw.send(&ClientMessage::Ping { nonce: 7 }).await;
    assert_eq!(raw.recv().await, Ok(ServerMessage::Pong { nonce: 7 }));
    raw.send(&ClientMessage::QueryUnsub { query_id: 1 }).await;
    let (seen, ended) = raw.recv_until_closed().await;
    assert!(
        matches!(
            seen.as_slice(),
            [ServerMessage::Error {
                code: ErrorCode::NotAuthenticated,
                ..
            }]
        ),
        "{seen:?}"
    );
    assert_eq!(ended, Ended::Closed(close::NOT_AUTHENTICATED));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn no_auth_within_the_deadline_closes_with_4002() {
    let limits = Limits {
        auth_deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let mut raw = Raw::connect(server.addr, Encoding::Bincode).await;
    let (seen, ended) = raw.recv_until_closed().await;
    assert!(
        matches!(seen.as_slice(), [ServerMessage::AuthRequired { .. }]),
        "{seen:?}"
    );
    assert_eq!(ended, Ended::Closed(close::AUTH_TIMEOUT));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unsupported_protocol_version_is_an_auth_fail() {
    let server = start().await;
    let mut raw = Raw::connect(server.addr, Encoding::Json).await;
    raw.recv().await.unwrap();
    raw.send(&ClientMessage::Auth {
        token: topgun_tests::token_for("a"),
        protocol_version: 999,
    })
    .await;
    assert!(matches!(
        raw.recv().await,
        Ok(ServerMessage::AuthFail {
            reason: AuthFailReason::UnsupportedProtocolVersion,
            ..
        })
    ));
    assert_eq!(raw.recv().await, Err(Ended::Closed(close::AUTH_FAILED)));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn failed_auth_attempts_are_rate_limited_per_address() {
    let builder =
        test_builder(Limits::default()).auth_rate_limit(topgun_server::auth::RateLimitConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            max_tracked: 100,
        });
    let server = start_with(builder).await;
    let bad = hs256_with(
        b"wrong-secret-wrong-secret-wrong-secret",
        &serde_json::json!({"sub": "m", "exp": now_secs() + 60}),
    );
    for _ in 0..3 {
        let mut raw = Raw::connect(server.addr, Encoding::Json).await;
        assert!(matches!(
            raw.handshake(&bad).await,
            ServerMessage::AuthFail {
                reason: AuthFailReason::InvalidSignature,
                ..
            }
        ));
    }
    // The budget is spent: even a valid token is refused from this address.
    let mut raw = Raw::connect(server.addr, Encoding::Json).await;
    assert!(matches!(
        raw.handshake(&topgun_tests::token_for("m")).await,
        ServerMessage::AuthFail {
            reason: AuthFailReason::RateLimited,
            ..
        }
    ));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sessions_are_renewed_before_expiry_or_closed_at_expiry() {
    let limits = Limits {
        renewal_lead: Duration::from_secs(2),
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let short = |sub: &str| hs256(&serde_json::json!({"sub": sub, "exp": now_secs() + 3}));

    // One session renews when asked...
    let mut renewing = Raw::connect(server.addr, Encoding::Bincode).await;
    assert!(matches!(
        renewing.handshake(&short("r")).await,
        ServerMessage::AuthAck { .. }
    ));
    // ...and one does not.
    let mut lapsing = Raw::connect(server.addr, Encoding::Bincode).await;
    assert!(matches!(
        lapsing.handshake(&short("l")).await,
        ServerMessage::AuthAck { .. }
    ));

    match renewing.recv().await {
        Ok(ServerMessage::AuthRequired {
            reason: AuthRequiredReason::SessionExpiring { .. },
            ..
        }) => {}
        other => panic!("expected a renewal request, got {other:?}"),
    }
    renewing
        .send(&ClientMessage::Auth {
            token: topgun_tests::token_for("r"),
            protocol_version: PROTOCOL_VERSION,
        })
        .await;
    match renewing.recv().await {
        Ok(ServerMessage::AuthAck {
            sub,
            session_expires_at_ms: Some(exp),
            ..
        }) => {
            assert_eq!(sub, "r");
            assert!(
                exp / 1000 >= now_secs() + 3000,
                "renewed to the new token's expiry"
            );
        }
        other => panic!("expected AUTH_ACK for the renewal, got {other:?}"),
    }

    let (seen, ended) = lapsing.recv_until_closed().await;
    assert!(
        matches!(seen.first(), Some(ServerMessage::AuthRequired { .. })),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::SessionExpired,
                ..
            }
        )),
        "{seen:?}"
    );
    assert_eq!(ended, Ended::Closed(close::SESSION_EXPIRED));

    // The renewed session is still alive.
    renewing.send(&ClientMessage::Ping { nonce: 1 }).await;
    assert_eq!(renewing.recv().await, Ok(ServerMessage::Pong { nonce: 1 }));
    server.stop().await.unwrap();
}
