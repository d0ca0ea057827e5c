//! The admin API over real HTTP: login, capabilities, the default-password
//! refusal, the disabled API, and JWT key rotation end to end (tokens of old
//! and new keys on real sessions, across a restart on sled).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use topgun_protocol::{AuthFailReason, Encoding, ServerMessage};
use topgun_server::admin::{AdminConfig, AdminConfigError};
use topgun_server::auth::RateLimitConfig;
use topgun_server::{Limits, ServerBuilder, ServerError, StorageConfig};
use topgun_tests::{Raw, SECRET, hs256, hs256_with, now_secs, start_with, test_builder};

const PASSWORD: &str = "e2e-admin-password";
const SECRET_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SECRET_C: &str = "cccccccccccccccccccccccccccccccccccc";
const ALL_CAPS: [&str; 5] = [
    "policy.admin",
    "keys.admin",
    "cluster.read",
    "cluster.admin",
    "data.read",
];

pub(super) fn admin_builder() -> ServerBuilder {
    test_builder(Limits::default()).admin(AdminConfig::new(PASSWORD))
}

/// One HTTP/1.1 request; returns the status and the body as JSON (`Null`
/// when empty).
pub(super) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string);
    call_raw(
        addr,
        method,
        path,
        token,
        body.as_deref(),
        "application/json",
    )
    .await
}

async fn call_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    content_type: &str,
) -> (u16, Value) {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer within 10 s")
        .unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let text = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
    };
    (status, json)
}

/// Logs in (with a subset of capabilities, or all) and returns the token.
pub(super) async fn login(addr: SocketAddr, caps: Option<&[&str]>) -> String {
    let mut body = json!({"username": "admin", "password": PASSWORD});
    if let Some(caps) = caps {
        body["capabilities"] = json!(caps);
    }
    let (status, answer) = call(addr, "POST", "/api/auth/login", None, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().unwrap().to_owned()
}

/// A client token: `sub`, issued at `iat`, an hour to live, signed with
/// `secret` under `kid` (or none).
fn client_token(sub: &str, secret: &str, kid: Option<&str>, iat: u64) -> String {
    let claims = json!({"sub": sub, "iat": iat, "exp": iat + 3600});
    match kid {
        None => hs256_with(secret.as_bytes(), &claims),
        Some(kid) => {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(kid.to_owned());
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        }
    }
}

/// Opens a session with `token`: the `sub` it was accepted as, or the
/// AUTH_FAIL reason and message.
async fn session(addr: SocketAddr, token: &str) -> Result<String, (AuthFailReason, String)> {
    let mut raw = Raw::connect(addr, Encoding::Json).await;
    match raw.handshake(token).await {
        ServerMessage::AuthAck { sub, .. } => Ok(sub),
        ServerMessage::AuthFail { reason, message } => Err((reason, message)),
        other => panic!("unexpected answer to AUTH: {other:?}"),
    }
}

#[track_caller]
fn assert_refused(got: Result<String, (AuthFailReason, String)>, needle: &str) {
    match got {
        Err((AuthFailReason::UnknownKeyId, message)) if message.contains(needle) => {}
        other => panic!("expected AUTH_FAIL UnknownKeyId mentioning {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_endpoint_requires_its_capability() {
    let server = start_with(admin_builder()).await;
    let addr = server.addr;
    let now = now_secs();
    // A client-session token with every admin-looking claim: never an
    // admin token.
    let client_admin = hs256(&json!({
        "sub": "admin", "roles": ["admin"], "caps": ALL_CAPS, "aud": "topgun-admin",
        "iat": now, "exp": now + 600,
    }));
    let cases: [(&str, &str, Option<Value>, &str, u16); 6] = [
        ("GET", "/api/admin/keys", None, "keys.admin", 200),
        (
            "POST",
            "/api/admin/keys",
            Some(json!({"kid": "cap-1", "secret": SECRET_B})),
            "keys.admin",
            201,
        ),
        (
            "POST",
            "/api/admin/keys/rotate",
            Some(json!({"new": {"kid": "cap-2", "secret": SECRET_C}, "retire": "cap-1"})),
            "keys.admin",
            200,
        ),
        (
            "POST",
            "/api/admin/keys/cap-2/deactivate",
            None,
            "keys.admin",
            200,
        ),
        ("GET", "/api/admin/status", None, "cluster.read", 200),
        ("GET", "/api/admin/maps", None, "data.read", 200),
    ];
    for (method, path, body, cap, ok) in &cases {
        let body = body.as_ref();
        let case = format!("{method} {path}");
        assert_eq!(
            call(addr, method, path, None, body).await,
            (401, json!({"error": "unauthenticated"})),
            "{case} without a token"
        );
        for bad in ["not-a-jwt", client_admin.as_str()] {
            assert_eq!(
                call(addr, method, path, Some(bad), body).await,
                (401, json!({"error": "unauthenticated"})),
                "{case} with {bad}"
            );
        }
        let others: Vec<&str> = ALL_CAPS.iter().copied().filter(|c| c != cap).collect();
        let lacking = login(addr, Some(&others)).await;
        assert_eq!(
            call(addr, method, path, Some(&lacking), body).await,
            (
                403,
                json!({"error": "missing_capability", "capability": cap})
            ),
            "{case} without {cap}"
        );
        let only = login(addr, Some(&[cap])).await;
        let (status, answer) = call(addr, method, path, Some(&only), body).await;
        assert_eq!(status, *ok, "{case} with {cap}: {answer}");
    }
    // What the successful calls did.
    let keys_admin = login(addr, Some(&["keys.admin"])).await;
    let (_, keys) = call(addr, "GET", "/api/admin/keys", Some(&keys_admin), None).await;
    let states: Vec<(&str, &str)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("env", "active"),
            ("cap-1", "retired"),
            ("cap-2", "deactivated")
        ]
    );
    assert_eq!(keys[0]["algorithm"], json!("HS256"));
    assert!(keys[0]["created_at"].as_u64().unwrap() >= now);
    let status = login(addr, Some(&["cluster.read"])).await;
    let (_, answer) = call(addr, "GET", "/api/admin/status", Some(&status), None).await;
    assert_eq!(answer["healthy"], json!(true));
    assert_eq!(answer["auth"], json!("jwt"));
    // Unknown paths and wrong methods answer JSON too.
    assert_eq!(
        call(addr, "GET", "/api/admin/nope", Some(&keys_admin), None).await,
        (404, json!({"error": "not_found"}))
    );
    assert_eq!(
        call(addr, "DELETE", "/api/admin/keys", Some(&keys_admin), None).await,
        (405, json!({"error": "method_not_allowed"}))
    );
    assert_eq!(
        call(addr, "GET", "/api/auth/login", None, None).await,
        (405, json!({"error": "method_not_allowed"}))
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn login_checks_credentials_rate_limits_and_narrows_capabilities() {
    let builder = test_builder(Limits::default()).admin(
        AdminConfig::new(PASSWORD).login_rate_limit(RateLimitConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            max_tracked: 100,
        }),
    );
    let server = start_with(builder).await;
    let addr = server.addr;
    let login_with =
        |body: Value| async move { call(addr, "POST", "/api/auth/login", None, Some(&body)).await };

    // The full login answer.
    let (status, answer) = login_with(json!({"username": "admin", "password": PASSWORD})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["capabilities"], json!(ALL_CAPS));
    assert_eq!(answer["token_type"], json!("Bearer"));
    let expires_at = answer["expires_at"].as_u64().unwrap();
    let now = now_secs();
    assert!(
        (now + 890..=now + 900).contains(&expires_at),
        "15 min: {expires_at} vs {now}"
    );

    // Least privilege: a subset, deduplicated; unknown names refused.
    let (status, answer) = login_with(json!({
        "username": "admin", "password": PASSWORD,
        "capabilities": ["data.read", "data.read"],
    }))
    .await;
    assert_eq!(
        (status, &answer["capabilities"]),
        (200, &json!(["data.read"]))
    );
    let narrow = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(addr, "GET", "/api/admin/keys", Some(&narrow), None).await,
        (
            403,
            json!({"error": "missing_capability", "capability": "keys.admin"})
        )
    );
    assert_eq!(
        login_with(json!({"username": "admin", "password": PASSWORD, "capabilities": ["root"]}))
            .await,
        (
            400,
            json!({"error": "unknown_capability", "capability": "root"})
        )
    );

    // Bad bodies: a typed 400, never a panic, not counted as failed logins.
    for (body, content_type) in [
        ("{\"username\": \"admin\"", "application/json"),
        ("{\"username\": \"admin\"}", "application/json"),
        ("[]", "application/json"),
        (
            "{\"username\": \"admin\", \"password\": \"x\", \"extra\": 1}",
            "application/json",
        ),
        ("username=admin", "application/x-www-form-urlencoded"),
        ("", "application/json"),
    ] {
        let (status, answer) = call_raw(
            addr,
            "POST",
            "/api/auth/login",
            None,
            Some(body),
            content_type,
        )
        .await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("invalid_json")),
            "{body:?}: {answer}"
        );
    }

    // Wrong user name or password: 401, three times; then 429, even for the
    // right password.
    for body in [
        json!({"username": "admin", "password": "wrong-password!"}),
        json!({"username": "root", "password": PASSWORD}),
        json!({"username": "admin", "password": ""}),
    ] {
        assert_eq!(
            login_with(body).await,
            (401, json!({"error": "invalid_credentials"}))
        );
    }
    for body in [
        json!({"username": "admin", "password": "wrong-password!"}),
        json!({"username": "admin", "password": PASSWORD}),
    ] {
        let (status, answer) = login_with(body).await;
        assert_eq!((status, &answer["error"]), (429, &json!("rate_limited")));
        let retry = answer["retry_after_secs"].as_u64().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    // Tokens issued before keep working: the limit is on logins.
    assert_eq!(
        call(addr, "GET", "/api/admin/maps", Some(&narrow), None).await,
        (200, json!({"maps": []}))
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_tokens_are_not_session_tokens() {
    let server = start_with(admin_builder()).await;
    let admin = login(server.addr, None).await;
    // Another key (and an audience the client verifier refuses).
    match session(server.addr, &admin).await {
        Err((AuthFailReason::InvalidSignature, _)) => {}
        other => panic!("an admin token opened a session: {other:?}"),
    }
    // The --dev style client token, roles ["admin"] included, is not an
    // admin token (tested per endpoint above) but is a session token.
    let client = hs256(&json!({
        "sub": "dev", "roles": ["admin"], "iat": now_secs(), "exp": now_secs() + 600,
    }));
    assert_eq!(session(server.addr, &client).await, Ok("dev".to_owned()));
    assert_eq!(
        call(server.addr, "GET", "/api/admin/keys", Some(&client), None).await,
        (401, json!({"error": "unauthenticated"}))
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_default_password_refuses_to_build_and_no_password_disables_the_api() {
    for (password, expected) in [
        ("", AdminConfigError::EmptyPassword),
        ("admin", AdminConfigError::WellKnownPassword),
        ("changeme", AdminConfigError::WellKnownPassword),
        ("password", AdminConfigError::WellKnownPassword),
        ("topgun", AdminConfigError::WellKnownPassword),
        (
            "eleven-char",
            AdminConfigError::ShortPassword { chars: 11, min: 12 },
        ),
    ] {
        match test_builder(Limits::default())
            .admin(AdminConfig::new(password))
            .build()
            .await
        {
            Err(ServerError::Admin(e)) => {
                assert_eq!(e, expected, "{password:?}");
                assert!(e.to_string().contains("TOPGUN_ADMIN_PASSWORD"), "{e}");
            }
            Err(e) => panic!("{password:?}: unexpected error {e}"),
            Ok(_) => panic!("{password:?}: the server started with a weak admin password"),
        }
    }

    // No admin configured: every /api path answers 404 admin_api_disabled.
    let server = start_with(test_builder(Limits::default())).await;
    for (method, path) in [
        ("POST", "/api/auth/login"),
        ("GET", "/api/admin/keys"),
        ("POST", "/api/admin/keys/rotate"),
        ("GET", "/api"),
    ] {
        let body = json!({"username": "admin", "password": "admin"});
        assert_eq!(
            call(server.addr, method, path, None, Some(&body)).await,
            (404, json!({"error": "admin_api_disabled"})),
            "{method} {path}"
        );
    }
    server.stop().await.unwrap();

    // Without auth (development), a weak password is allowed, and there are
    // no verification keys to manage.
    let no_auth = ServerBuilder::new()
        .network(topgun_server::NetworkConfig {
            host: [127, 0, 0, 1].into(),
            port: 0,
        })
        .storage(StorageConfig::Memory)
        .danger_disable_auth()
        .admin(AdminConfig::new("admin"));
    let server = start_with(no_auth).await;
    let (status, answer) = call(
        server.addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&json!({"username": "admin", "password": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["token"].as_str().unwrap();
    assert_eq!(
        call(server.addr, "GET", "/api/admin/keys", Some(token), None).await,
        (409, json!({"error": "jwt_auth_disabled"}))
    );
    server.stop().await.unwrap();
}

/// Add a key (overlap), rotate (retire the start-up key), deactivate: what
/// each step does to real sessions.
#[tokio::test]
async fn key_rotation_end_to_end() {
    let server = start_with(admin_builder()).await;
    let addr = server.addr;
    let admin = login(addr, Some(&["keys.admin"])).await;
    let issued_before = client_token("before", SECRET, None, now_secs() - 60);
    assert_eq!(session(addr, &issued_before).await, Ok("before".to_owned()));

    // Overlap: the new key is added; tokens of both keys verify.
    let (status, added) = call(
        addr,
        "POST",
        "/api/admin/keys",
        Some(&admin),
        Some(&json!({"kid": "k2", "secret": SECRET_B})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        (&added["kid"], &added["state"], &added["algorithm"]),
        (&json!("k2"), &json!("active"), &json!("HS256"))
    );
    let old_fresh = client_token("old", SECRET, None, now_secs());
    assert_eq!(session(addr, &old_fresh).await, Ok("old".to_owned()));
    let k2 = client_token("new", SECRET_B, Some("k2"), now_secs());
    assert_eq!(session(addr, &k2).await, Ok("new".to_owned()));
    assert_eq!(
        call(
            addr,
            "POST",
            "/api/admin/keys",
            Some(&admin),
            Some(&json!({"kid": "k2", "secret": SECRET_C}))
        )
        .await,
        (409, json!({"error": "duplicate_kid", "kid": "k2"}))
    );

    // Rotate: k3 in, the start-up key (`env`) retired, in one call.
    let (status, rotated) = call(
        addr,
        "POST",
        "/api/admin/keys/rotate",
        Some(&admin),
        Some(&json!({"new": {"kid": "k3", "secret": SECRET_C}, "retire": "env"})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["added"]["kid"], json!("k3"));
    assert_eq!(
        (&rotated["retired"]["kid"], &rotated["retired"]["state"]),
        (&json!("env"), &json!("retired"))
    );
    let retired_at = rotated["retired"]["retired_at"].as_u64().unwrap();
    // Issued before the retirement: still valid until its exp.
    assert_eq!(session(addr, &issued_before).await, Ok("before".to_owned()));
    // Issued now (at or after the retirement): refused.
    let fresh = client_token("fresh", SECRET, None, now_secs().max(retired_at));
    assert_refused(session(addr, &fresh).await, "retired");
    // Without iat: refused.
    let no_iat = hs256_with(
        SECRET.as_bytes(),
        &json!({"sub": "x", "exp": now_secs() + 600}),
    );
    assert_refused(session(addr, &no_iat).await, "retired");
    assert_eq!(
        session(addr, &client_token("k3", SECRET_C, Some("k3"), now_secs())).await,
        Ok("k3".to_owned())
    );
    assert_eq!(session(addr, &k2).await, Ok("new".to_owned()));
    // A retired key cannot be retired again, an unknown one not at all.
    assert_eq!(
        call(
            addr,
            "POST",
            "/api/admin/keys/rotate",
            Some(&admin),
            Some(&json!({"new": {"kid": "k4", "secret": SECRET_C}, "retire": "env"}))
        )
        .await,
        (
            409,
            json!({"error": "key_not_active", "kid": "env", "state": "retired"})
        )
    );
    assert_eq!(
        call(
            addr,
            "POST",
            "/api/admin/keys/nope/deactivate",
            Some(&admin),
            None
        )
        .await,
        (404, json!({"error": "unknown_kid", "kid": "nope"}))
    );
    // Bad key material: typed 400s.
    let (status, answer) = call(
        addr,
        "POST",
        "/api/admin/keys",
        Some(&admin),
        Some(&json!({"kid": "k5", "pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"})),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("invalid_key")),
        "{answer}"
    );
    assert!(answer["detail"].is_string());

    // Deactivate: every token of the key fails, even those issued before.
    let (status, off) = call(
        addr,
        "POST",
        "/api/admin/keys/env/deactivate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((status, &off["state"]), (200, &json!("deactivated")));
    assert_refused(session(addr, &issued_before).await, "deactivated");
    let (status, _) = call(
        addr,
        "POST",
        "/api/admin/keys/k2/deactivate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_refused(session(addr, &k2).await, "deactivated");
    server.stop().await.unwrap();
}

/// Keys, states and admin tokens survive a restart on the same sled
/// directory.
#[tokio::test]
async fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || admin_builder().storage(StorageConfig::sled(dir.path()));
    let issued_before = client_token("before", SECRET, None, now_secs() - 60);

    let server = start_with(builder()).await;
    let addr = server.addr;
    let admin = login(addr, Some(&["keys.admin"])).await;
    for (path, body) in [
        (
            "/api/admin/keys",
            Some(json!({"kid": "k2", "secret": SECRET_B})),
        ),
        (
            "/api/admin/keys/rotate",
            Some(json!({"new": {"kid": "k3", "secret": SECRET_C}, "retire": "env"})),
        ),
        ("/api/admin/keys/k2/deactivate", None),
    ] {
        let (status, answer) = call(addr, "POST", path, Some(&admin), body.as_ref()).await;
        assert!((200..300).contains(&status), "{path}: {answer}");
    }
    let (_, before_restart) = call(addr, "GET", "/api/admin/keys", Some(&admin), None).await;
    server.stop().await.unwrap();

    let server = start_with(builder()).await;
    let addr = server.addr;
    // The admin token from before the restart still verifies (the admin key
    // is kept in the store), and the list is unchanged.
    let (status, after_restart) = call(addr, "GET", "/api/admin/keys", Some(&admin), None).await;
    assert_eq!(status, 200, "{after_restart}");
    assert_eq!(after_restart, before_restart);
    let states: Vec<(&str, &str)> = after_restart
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("env", "retired"), ("k2", "deactivated"), ("k3", "active")]
    );
    // Verification follows the stored states.
    assert_eq!(session(addr, &issued_before).await, Ok("before".to_owned()));
    assert_refused(
        session(addr, &client_token("fresh", SECRET, None, now_secs())).await,
        "retired",
    );
    assert_refused(
        session(
            addr,
            &client_token("k2", SECRET_B, Some("k2"), now_secs() - 60),
        )
        .await,
        "deactivated",
    );
    assert_eq!(
        session(addr, &client_token("k3", SECRET_C, Some("k3"), now_secs())).await,
        Ok("k3".to_owned())
    );
    server.stop().await.unwrap();
}
