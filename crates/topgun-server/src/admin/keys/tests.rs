//! Unit tests of the key registry: how start-up keys and stored keys
//! combine across restarts, and that changes are durable before they apply.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::auth::AuthError;
use crate::store::MemoryStore;

const NOW: u64 = 1_800_000_000;
const SECRET_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SECRET_C: &str = "cccccccccccccccccccccccccccccccccccc";

fn config(secret: &str) -> AuthConfig {
    AuthConfig::from_jwt_secret(secret).unwrap().build()
}

fn new_key(kid: &str, secret: &str) -> NewKey {
    serde_json::from_value(json!({"kid": kid, "secret": secret})).unwrap()
}

/// An HS256 token with `kid` (or none), issued at `iat`.
fn token(kid: Option<&str>, secret: &str, iat: u64) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &json!({"sub": "u", "iat": iat, "exp": iat + 3600}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn verify(v: &Verifier, token: &str) -> Result<(), AuthError> {
    v.verify(token, UNIX_EPOCH + Duration::from_secs(NOW + 10))
        .map(|_| ())
}

/// (kid, state, origin) of every key.
async fn summary(registry: &KeyRegistry) -> Vec<(String, &'static str, &'static str)> {
    registry
        .list()
        .await
        .into_iter()
        .map(|k| (k.kid, k.state, k.origin))
        .collect()
}

fn owned(rows: &[(&str, &'static str, &'static str)]) -> Vec<(String, &'static str, &'static str)> {
    rows.iter()
        .map(|(k, s, o)| ((*k).to_owned(), *s, *o))
        .collect()
}

#[tokio::test]
async fn the_kidless_startup_key_becomes_env_and_stays_the_default() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW)
        .await
        .unwrap();
    assert_eq!(
        summary(&registry).await,
        owned(&[("env", "active", "config")])
    );
    let listed = registry.list().await;
    assert!(listed[0].default);
    assert_eq!(listed[0].created_at, NOW);
    // Like the kid-less key: tokens with no kid, or any kid, verify.
    assert_eq!(verify(&v, &token(None, SECRET_A, NOW)), Ok(()));
    assert_eq!(verify(&v, &token(Some("idp-kid"), SECRET_A, NOW)), Ok(()));

    registry
        .add(new_key("k2", SECRET_B), NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        verify(&v, &token(None, SECRET_A, NOW)),
        Ok(()),
        "kid-less tokens go to env"
    );
    assert_eq!(verify(&v, &token(Some("k2"), SECRET_B, NOW)), Ok(()));
    assert_eq!(
        verify(&v, &token(Some("idp-kid"), SECRET_A, NOW)),
        Err(AuthError::UnknownKeyId)
    );
}

#[tokio::test]
async fn rotate_retire_and_deactivate_apply_at_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW)
        .await
        .unwrap();
    let before = token(None, SECRET_A, NOW - 1);
    let (added, retired) = registry
        .rotate(new_key("k2", SECRET_B), "env", NOW)
        .await
        .unwrap();
    assert_eq!((added.kid.as_str(), added.state), ("k2", "active"));
    assert_eq!(
        (retired.kid.as_str(), retired.state, retired.retired_at),
        ("env", "retired", Some(NOW))
    );
    assert_eq!(verify(&v, &before), Ok(()), "issued before the retirement");
    assert_eq!(
        verify(&v, &token(None, SECRET_A, NOW)),
        Err(AuthError::KeyRetired)
    );
    assert_eq!(verify(&v, &token(Some("k2"), SECRET_B, NOW)), Ok(()));

    // Retiring again: not active.
    assert_eq!(
        registry.rotate(new_key("k3", SECRET_C), "env", NOW).await,
        Err(ApiError::KeyNotActive {
            kid: "env".into(),
            state: "retired"
        })
    );
    assert_eq!(
        registry.rotate(new_key("k3", SECRET_C), "nope", NOW).await,
        Err(ApiError::UnknownKid { kid: "nope".into() })
    );
    assert_eq!(
        registry.rotate(new_key("k2", SECRET_C), "k2", NOW).await,
        Err(ApiError::DuplicateKid { kid: "k2".into() })
    );
    // Nothing of the refused rotations was applied.
    assert_eq!(
        summary(&registry).await,
        owned(&[("env", "retired", "config"), ("k2", "active", "api")])
    );

    let off = registry.deactivate("env", NOW + 5).await.unwrap();
    assert_eq!(
        (off.state, off.deactivated_at),
        ("deactivated", Some(NOW + 5))
    );
    assert_eq!(verify(&v, &before), Err(AuthError::KeyDeactivated));
    // Idempotent.
    assert_eq!(registry.deactivate("env", NOW + 9).await.unwrap(), off);
    assert_eq!(
        registry.deactivate("zz", NOW).await,
        Err(ApiError::UnknownKid { kid: "zz".into() })
    );
}

#[tokio::test]
async fn keys_and_states_survive_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    {
        let (_, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW)
            .await
            .unwrap();
        registry
            .rotate(new_key("k2", SECRET_B), "env", NOW + 1)
            .await
            .unwrap();
        registry
            .add(new_key("k3", SECRET_C), NOW + 2)
            .await
            .unwrap();
        registry.deactivate("k3", NOW + 3).await.unwrap();
    }
    // Same configuration: everything as it was, created_at kept.
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW + 100)
        .await
        .unwrap();
    assert_eq!(
        summary(&registry).await,
        owned(&[
            ("env", "retired", "config"),
            ("k2", "active", "api"),
            ("k3", "deactivated", "api")
        ])
    );
    assert_eq!(registry.list().await[0].created_at, NOW);
    assert_eq!(
        verify(&v, &token(None, SECRET_A, NOW)),
        Ok(()),
        "issued before the retirement"
    );
    assert_eq!(
        verify(&v, &token(None, SECRET_A, NOW + 1)),
        Err(AuthError::KeyRetired)
    );
    assert_eq!(verify(&v, &token(Some("k2"), SECRET_B, NOW + 1)), Ok(()));
    assert_eq!(
        verify(&v, &token(Some("k3"), SECRET_C, NOW)),
        Err(AuthError::KeyDeactivated)
    );

    // JWT_SECRET changed: the new `env` key replaces the retired one, active.
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_C), NOW + 200)
        .await
        .unwrap();
    assert_eq!(
        summary(&registry).await,
        owned(&[
            ("env", "active", "config"),
            ("k2", "active", "api"),
            ("k3", "deactivated", "api")
        ])
    );
    assert_eq!(verify(&v, &token(None, SECRET_C, NOW + 200)), Ok(()));
    assert_eq!(
        verify(&v, &token(None, SECRET_A, NOW)),
        Err(AuthError::InvalidSignature)
    );

    // The configuration no longer names `env` (a key file instead): it is
    // dropped; API keys stay.
    let file = json!({"keys": [{"kid": "file-1", "secret": SECRET_A}]}).to_string();
    let from_file = AuthConfig::builder(KeySet::from_key_file_json(&file).unwrap()).build();
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), from_file, NOW + 300)
        .await
        .unwrap();
    assert_eq!(
        summary(&registry).await,
        owned(&[
            ("k2", "active", "api"),
            ("k3", "deactivated", "api"),
            ("file-1", "active", "config")
        ])
    );
    assert_eq!(
        verify(&v, &token(None, SECRET_C, NOW)),
        Err(AuthError::AmbiguousKey)
    );
    assert_eq!(verify(&v, &token(Some("file-1"), SECRET_A, NOW)), Ok(()));
}

#[tokio::test]
async fn a_failed_store_write_changes_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW)
        .await
        .unwrap();
    // A closed store refuses every write.
    store.flush_and_close().await.unwrap();
    assert_eq!(
        registry.rotate(new_key("k2", SECRET_B), "env", NOW).await,
        Err(ApiError::Storage)
    );
    assert_eq!(
        registry.deactivate("env", NOW).await,
        Err(ApiError::Storage)
    );
    assert_eq!(
        summary(&registry).await,
        owned(&[("env", "active", "config")])
    );
    assert_eq!(verify(&v, &token(None, SECRET_A, NOW)), Ok(()));
    assert_eq!(
        verify(&v, &token(Some("k2"), SECRET_B, NOW)),
        Err(AuthError::InvalidSignature)
    );
}

#[tokio::test]
async fn new_keys_are_validated() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (_, registry) = KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW)
        .await
        .unwrap();
    let add = |body: serde_json::Value| {
        let registry = &registry;
        async move {
            let new: NewKey = serde_json::from_value(body).unwrap();
            registry.add(new, NOW).await.map_err(|e| e.code())
        }
    };
    assert_eq!(
        add(json!({"kid": "env", "secret": SECRET_B})).await,
        Err("duplicate_kid")
    );
    for kid in ["", "has space", "tab\t", "ünï", &"k".repeat(129)] {
        assert_eq!(
            add(json!({"kid": kid, "secret": SECRET_B})).await,
            Err("invalid_kid"),
            "{kid:?}"
        );
    }
    for body in [
        json!({"kid": "x", "secret": "short"}),
        json!({"kid": "x"}),
        json!({"kid": "x", "secret": SECRET_B, "pem": "-----BEGIN PUBLIC KEY-----"}),
        json!({"kid": "x", "pem": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}),
        json!({"kid": "x", "secret": "-----BEGIN PUBLIC KEY-----aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}),
        json!({"kid": "x", "secret": SECRET_B, "alg": "none"}),
        json!({"kid": "x", "secret": SECRET_B, "alg": "RS256"}),
        json!({"kid": "x", "jwk": "not an object"}),
        json!({"kid": "x", "jwk": {"kty": "oct", "k": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE", "kid": "y"}}),
        json!({"kid": "x", "jwk": {"kty": "oct", "k": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE", "alg": "HS384"}, "alg": "HS256"}),
    ] {
        assert_eq!(add(body.clone()).await, Err("invalid_key"), "{body}");
    }
    // A JWK, its kid agreeing, the outer alg pinned into it.
    let jwk = json!({"kty": "oct", "k": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE", "kid": "j"});
    assert!(
        add(json!({"kid": "j", "jwk": jwk, "alg": "HS256"}))
            .await
            .is_ok()
    );
    assert!(
        add(json!({"kid": "h512", "secret": "s".repeat(64), "alg": "HS512"}))
            .await
            .is_ok()
    );
    // Unknown fields are refused when decoding the request.
    assert!(
        serde_json::from_value::<NewKey>(json!({"kid": "x", "secret": SECRET_B, "extra": 1}))
            .is_err()
    );

    // Both reload from the store with the same algorithm.
    let (_, again) = KeyRegistry::open(store, config(SECRET_A), NOW)
        .await
        .unwrap();
    let algs: Vec<_> = again
        .list()
        .await
        .into_iter()
        .map(|k| (k.kid, k.algorithm))
        .collect();
    assert_eq!(
        algs,
        [
            ("env".to_owned(), "HS256"),
            ("j".to_owned(), "HS256"),
            ("h512".to_owned(), "HS512")
        ]
    );
}

#[tokio::test]
async fn unreadable_stored_keys_refuse_the_start() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .put_meta(KEYS_META, b"{not json".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW).await,
        Err(ServerError::StoredKeys(StoredKeysError::Corrupt(_)))
    ));
    store
        .put_meta(KEYS_META, br#"{"version":99,"keys":[]}"#.to_vec())
        .await
        .unwrap();
    assert!(matches!(
        KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW).await,
        Err(ServerError::StoredKeys(StoredKeysError::Version(99)))
    ));
    let bad_state = json!({"version": 1, "keys": [{
        "kid": "k", "alg": "HS256", "origin": "api", "state": "paused", "created_at": 1,
        "fingerprint": "00", "material": {"secret": SECRET_B},
    }]});
    store
        .put_meta(KEYS_META, bad_state.to_string().into_bytes())
        .await
        .unwrap();
    assert!(matches!(
        KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW).await,
        Err(ServerError::StoredKeys(StoredKeysError::State { .. }))
    ));
    let bad_key = json!({"version": 1, "keys": [{
        "kid": "k", "alg": "HS256", "origin": "api", "state": "active", "created_at": 1,
        "fingerprint": "00", "material": {"secret": "short"},
    }]});
    store
        .put_meta(KEYS_META, bad_key.to_string().into_bytes())
        .await
        .unwrap();
    assert!(matches!(
        KeyRegistry::open(Arc::clone(&store), config(SECRET_A), NOW).await,
        Err(ServerError::StoredKeys(StoredKeysError::Key { .. }))
    ));
    // The stored document holds no secret of a configured key.
    let fresh: Arc<dyn Store> = Arc::new(MemoryStore::new());
    KeyRegistry::open(Arc::clone(&fresh), config(SECRET_A), NOW)
        .await
        .unwrap();
    let doc = fresh.get_meta(KEYS_META).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&doc).contains(SECRET_A));
}
