//! Unit tests of the admin API pieces: capability names, password rules,
//! constant-time credentials, and admin tokens (which no other key makes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::config::check_password;
use super::password::Credentials;
use super::tokens::{ADMIN_AUDIENCE, AdminTokens};
use super::*;
use crate::auth::{AuthConfig, AuthError, KeySet, Verifier};
use crate::store::{MemoryStore, Store};

const NOW: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn capability_names_round_trip() {
    for cap in Capability::ALL {
        assert_eq!(Capability::from_name(cap.as_str()), Some(cap));
        assert_eq!(cap.to_string(), cap.as_str());
    }
    let names: Vec<_> = Capability::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "policy.admin",
            "keys.admin",
            "cluster.read",
            "cluster.admin",
            "data.read"
        ]
    );
    assert_eq!(Capability::from_name("admin"), None);
    assert_eq!(Capability::from_name("KEYS.ADMIN"), None);
}

#[test]
fn weak_passwords_are_refused() {
    let cases: &[(&str, Result<(), AdminConfigError>)] = &[
        ("", Err(AdminConfigError::EmptyPassword)),
        ("admin", Err(AdminConfigError::WellKnownPassword)),
        ("changeme", Err(AdminConfigError::WellKnownPassword)),
        ("Password", Err(AdminConfigError::WellKnownPassword)),
        (" topgun ", Err(AdminConfigError::WellKnownPassword)),
        (
            "elevenchars",
            Err(AdminConfigError::ShortPassword { chars: 11, min: 12 }),
        ),
        // Characters, not bytes.
        (
            "ééééééééééé",
            Err(AdminConfigError::ShortPassword { chars: 11, min: 12 }),
        ),
        ("twelve-chars", Ok(())),
    ];
    for (password, expected) in cases {
        assert_eq!(&check_password(password), expected, "{password:?}");
    }
    // Without auth (a development mode) any non-empty password goes.
    assert_eq!(AdminConfig::new("admin").check(true), Ok(()));
    assert_eq!(
        AdminConfig::new("").check(true),
        Err(AdminConfigError::EmptyPassword)
    );
    assert_eq!(
        AdminConfig::new("admin").check(false),
        Err(AdminConfigError::WellKnownPassword)
    );
    let strong = || AdminConfig::new("a-strong-password");
    assert_eq!(strong().check(false), Ok(()));
    assert_eq!(
        strong().username("").check(false),
        Err(AdminConfigError::EmptyUsername)
    );
    assert_eq!(
        strong().token_ttl(Duration::ZERO).check(false),
        Err(AdminConfigError::TokenTtl { secs: 0 })
    );
    assert_eq!(
        strong()
            .token_ttl(MAX_TOKEN_TTL + Duration::from_secs(1))
            .check(false),
        Err(AdminConfigError::TokenTtl { secs: 86_401 })
    );
    // The password never shows in Debug.
    let shown = format!("{:?}", AdminConfig::new("hunter2-hunter2"));
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn credentials_need_both_user_and_password() {
    let creds = Credentials::new("admin", "correct horse battery");
    assert!(creds.matches("admin", "correct horse battery"));
    for (user, password) in [
        ("admin", "correct horse batter"),
        ("admin", "correct horse battery "),
        ("admin", ""),
        ("Admin", "correct horse battery"),
        ("", "correct horse battery"),
        ("root", "wrong"),
    ] {
        assert!(!creds.matches(user, password), "{user:?} / {password:?}");
    }
    assert!(!format!("{creds:?}").contains("horse"));
}

async fn tokens(store: &dyn Store) -> AdminTokens {
    AdminTokens::load(store, Duration::from_secs(900))
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_tokens_carry_capabilities_and_expire() {
    let store = MemoryStore::new();
    let tokens = tokens(&store).await;
    let minted = tokens
        .mint("admin", &[Capability::KeysAdmin, Capability::DataRead], NOW)
        .unwrap();
    assert_eq!(minted.expires_at, NOW + 900);
    let p = tokens.verify(&minted.token, at(NOW + 1)).unwrap();
    assert_eq!(p.sub, "admin");
    assert_eq!(p.caps, [Capability::KeysAdmin, Capability::DataRead]);
    assert!(p.has(Capability::KeysAdmin) && !p.has(Capability::PolicyAdmin));
    // The claims: sub, caps, aud, iat, exp, jti; a fresh jti each time.
    let claims = payload(&minted.token);
    assert_eq!(claims["aud"], json!(ADMIN_AUDIENCE));
    assert_eq!(claims["iat"], json!(NOW));
    assert_eq!(claims["caps"], json!(["keys.admin", "data.read"]));
    let other = tokens.mint("admin", &[], NOW).unwrap();
    assert_ne!(payload(&other.token)["jti"], claims["jti"]);
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    // Expired beyond the small leeway.
    assert_eq!(
        tokens.verify(&minted.token, at(NOW + 900 + 5)),
        Err(AuthError::Expired)
    );
}

fn payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_admin_key_is_kept_in_the_store() {
    let store = MemoryStore::new();
    let first = tokens(&store).await;
    let minted = first
        .mint("admin", &[Capability::ClusterRead], NOW)
        .unwrap();
    // Loaded again (a restart): the same key verifies.
    let again = tokens(&store).await;
    assert!(again.verify(&minted.token, at(NOW)).is_ok());
    // Another store, another key.
    let elsewhere = tokens(&MemoryStore::new()).await;
    assert_eq!(
        elsewhere.verify(&minted.token, at(NOW)),
        Err(AuthError::InvalidSignature)
    );
    // A damaged stored key is replaced, not used.
    store
        .put_meta("admin.signing_key", vec![1, 2, 3])
        .await
        .unwrap();
    let replaced = tokens(&store).await;
    assert!(replaced.verify(&minted.token, at(NOW)).is_err());
    assert_eq!(
        store
            .get_meta("admin.signing_key")
            .await
            .unwrap()
            .map(|k| k.len()),
        Some(32)
    );
}

#[tokio::test]
async fn client_tokens_and_admin_tokens_never_cross() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let store = MemoryStore::new();
    let tokens = tokens(&store).await;
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    // A client token with every admin-looking claim is still not an admin
    // token: wrong key.
    let client = sign(json!({
        "sub": "admin", "roles": ["admin"], "caps": ["keys.admin"],
        "aud": ADMIN_AUDIENCE, "iat": NOW, "exp": NOW + 60,
    }));
    assert_eq!(
        tokens.verify(&client, at(NOW)),
        Err(AuthError::InvalidSignature)
    );
    // An admin token is not a client token: the client verifier has another
    // key and no admin audience.
    let admin = tokens.mint("admin", &Capability::ALL, NOW).unwrap().token;
    let client_verifier = Verifier::new(AuthConfig::from_jwt_secret(SECRET).unwrap().build());
    assert_eq!(
        client_verifier.verify(&admin, at(NOW)).map(|_| ()),
        Err(AuthError::InvalidSignature)
    );
    // Even a client verifier configured with the admin audience refuses it.
    let with_aud = Verifier::new(
        AuthConfig::builder(KeySet::from_jwt_secret(SECRET).unwrap())
            .audience(ADMIN_AUDIENCE)
            .build(),
    );
    assert!(with_aud.verify(&admin, at(NOW)).is_err());
    // An admin-key token without the admin audience, or without caps, is
    // refused too.
    assert!(tokens.verify(&client, at(NOW)).is_err());
}
