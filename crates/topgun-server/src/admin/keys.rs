//! `KeyRegistry`: the JWT verification keys and their states, kept in the
//! store's metadata, merged with the start-up keys at every start, and
//! swapped into the running verifier on every change.
//!
//! How start-up keys and stored keys combine (see `docs/security.md`):
//!
//! - A start-up key without a kid (`JWT_SECRET`) gets the kid [`ENV_KID`]
//!   and becomes the key set's default key, so tokens without a `kid` keep
//!   verifying once other keys join it.
//! - A start-up key whose kid is stored with the same key material keeps
//!   its stored state and creation time: a key deactivated through the API
//!   stays deactivated across restarts even though the configuration still
//!   names it.
//! - A start-up key whose kid is stored with other material replaces the
//!   stored key (the configuration is the operator's latest word), active.
//! - A key added through the API is stored with its material and is loaded
//!   from the store; the configuration does not need to name it.
//! - A stored start-up key that the configuration no longer names is
//!   dropped: removing a key from the configuration revokes it.
//!
//! **Invariant:** a change is applied to the verifier only after it is
//! durable in the store; a failed write changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ServerError;
use crate::auth::{
    AuthConfig, JwsAlgorithm, KeyLoadError, KeySet, KeyState, VerificationKey, Verifier,
};
use crate::store::Store;

use super::error::ApiError;
use super::tokens::hex;

/// The kid given to a start-up key configured without one.
pub const ENV_KID: &str = "env";

/// Where the keys are kept in the store's metadata.
const KEYS_META: &str = "auth.keys";

/// The version of the stored format.
const FORMAT_VERSION: u32 = 1;

/// The longest kid accepted through the API.
const MAX_KID_LEN: usize = 128;

/// Why the stored verification keys could not be loaded. The server refuses
/// to start rather than guess: ignoring a stored state could re-activate a
/// deactivated key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoredKeysError {
    /// The stored document is not valid JSON of the expected shape.
    #[error("the stored JWT verification keys (store metadata `auth.keys`) are unreadable: {0}")]
    Corrupt(#[source] serde_json::Error),
    /// The stored document has a format version this server does not know
    /// (written by a newer version).
    #[error(
        "the stored JWT verification keys have format version {0}, which this server does not know"
    )]
    Version(u32),
    /// A stored key (added through the admin API) cannot be loaded.
    #[error("the stored JWT verification key {kid:?} cannot be loaded: {source}")]
    Key {
        /// Its kid.
        kid: String,
        /// Why.
        #[source]
        source: KeyLoadError,
    },
    /// A stored key has a state this server does not know.
    #[error("the stored JWT verification key {kid:?} has an unknown state {state:?}")]
    State {
        /// Its kid.
        kid: String,
        /// The state found.
        state: String,
    },
    /// The merged keys do not form a key set (for instance two keys
    /// without a kid).
    #[error("the configured and stored JWT verification keys do not combine: {0}")]
    Combine(#[source] KeyLoadError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredDoc {
    version: u32,
    keys: Vec<KeyRecord>,
}

/// Where a key comes from.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Origin {
    /// The start-up configuration (`JWT_SECRET`, a JWKS or key file); its
    /// material is not stored.
    Config,
    /// The admin API; its material is stored.
    Api,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

/// Key material as the API received it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Material {
    Secret(String),
    Pem(String),
    Jwk(Value),
}

/// One stored key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    kid: String,
    alg: String,
    origin: Origin,
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_changed_at: Option<u64>,
    created_at: u64,
    fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    material: Option<Material>,
}

impl KeyRecord {
    fn new(
        key: &VerificationKey,
        kid: &str,
        origin: Origin,
        material: Option<Material>,
        now: u64,
    ) -> Self {
        KeyRecord {
            kid: kid.to_owned(),
            alg: key.algorithm().as_str().to_owned(),
            origin,
            state: KeyState::Active.name().to_owned(),
            state_changed_at: None,
            created_at: now,
            fingerprint: hex(&key.fingerprint()),
            material,
        }
    }

    fn key_state(&self) -> Result<KeyState, StoredKeysError> {
        match (self.state.as_str(), self.state_changed_at) {
            ("active", _) => Ok(KeyState::Active),
            ("retired", Some(at)) => Ok(KeyState::Retired { at }),
            ("deactivated", Some(at)) => Ok(KeyState::Deactivated { at }),
            _ => Err(StoredKeysError::State {
                kid: self.kid.clone(),
                state: self.state.clone(),
            }),
        }
    }

    fn set_state(&mut self, state: KeyState) {
        self.state = state.name().to_owned();
        self.state_changed_at = match state {
            KeyState::Retired { at } | KeyState::Deactivated { at } => Some(at),
            _ => None,
        };
    }
}

/// A key and its record; `key.state()` mirrors the record.
#[derive(Clone)]
struct Entry {
    record: KeyRecord,
    key: VerificationKey,
}

impl Entry {
    fn with_state(mut self, state: KeyState) -> Self {
        self.record.set_state(state);
        self.key = self.key.with_state(state);
        self
    }
}

/// A key as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KeyInfo {
    kid: String,
    algorithm: &'static str,
    state: &'static str,
    created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deactivated_at: Option<u64>,
    origin: &'static str,
    default: bool,
}

/// A key to add, as the API receives it: a kid and exactly one of an HMAC
/// secret, a PEM public key and a JWK, with an optional algorithm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    kid: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    pem: Option<String>,
    #[serde(default)]
    jwk: Option<Value>,
    #[serde(default)]
    alg: Option<String>,
}

/// The verification keys of a running server.
pub(crate) struct KeyRegistry {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    default_kid: Option<String>,
    /// Held across the store write, so changes apply one at a time.
    entries: tokio::sync::Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegistry")
            .field("default_kid", &self.default_kid)
            .finish_non_exhaustive()
    }
}

impl KeyRegistry {
    /// Merges the start-up keys of `config` with the stored keys, stores the
    /// result, and returns the verifier built on it with its registry.
    pub(crate) async fn open(
        store: Arc<dyn Store>,
        mut config: AuthConfig,
        now: u64,
    ) -> Result<(Arc<Verifier>, KeyRegistry), ServerError> {
        let stored = match store.get_meta(KEYS_META).await? {
            None => Vec::new(),
            Some(bytes) => {
                let doc: StoredDoc =
                    serde_json::from_slice(&bytes).map_err(StoredKeysError::Corrupt)?;
                if doc.version != FORMAT_VERSION {
                    return Err(StoredKeysError::Version(doc.version).into());
                }
                doc.keys
            }
        };
        let (entries, default_kid) = merge(&config.keys, stored, now)?;
        let keys = key_set(&entries, default_kid.as_deref()).map_err(StoredKeysError::Combine)?;
        store.put_meta(KEYS_META, encode(&entries)?).await?;
        config.keys = keys;
        let verifier = Arc::new(Verifier::new(config));
        let registry = KeyRegistry {
            store,
            verifier: Arc::clone(&verifier),
            default_kid,
            entries: tokio::sync::Mutex::new(entries),
        };
        Ok((verifier, registry))
    }

    /// Every key, in a stable order.
    pub(crate) async fn list(&self) -> Vec<KeyInfo> {
        let entries = self.entries.lock().await;
        entries.iter().map(|e| self.info(e)).collect()
    }

    /// Adds an active key.
    pub(crate) async fn add(&self, new: NewKey, now: u64) -> Result<KeyInfo, ApiError> {
        let mut entries = self.entries.lock().await;
        let added = new_entry(&entries, new, now)?;
        let info = self.info(&added);
        let mut next = entries.clone();
        next.push(added);
        self.commit(&mut entries, next).await?;
        Ok(info)
    }

    /// Adds `new` and retires `retire` in one durable change.
    pub(crate) async fn rotate(
        &self,
        new: NewKey,
        retire: &str,
        now: u64,
    ) -> Result<(KeyInfo, KeyInfo), ApiError> {
        let mut entries = self.entries.lock().await;
        let index = position(&entries, retire)?;
        let state = entries[index].key.state();
        if state != KeyState::Active {
            return Err(ApiError::KeyNotActive {
                kid: retire.to_owned(),
                state: state.name(),
            });
        }
        let added = new_entry(&entries, new, now)?;
        let mut next = entries.clone();
        next[index] = next[index]
            .clone()
            .with_state(KeyState::Retired { at: now });
        let retired = self.info(&next[index]);
        let info = self.info(&added);
        next.push(added);
        self.commit(&mut entries, next).await?;
        Ok((info, retired))
    }

    /// Deactivates `kid` (a no-op for a key already deactivated).
    pub(crate) async fn deactivate(&self, kid: &str, now: u64) -> Result<KeyInfo, ApiError> {
        let mut entries = self.entries.lock().await;
        let index = position(&entries, kid)?;
        if matches!(entries[index].key.state(), KeyState::Deactivated { .. }) {
            return Ok(self.info(&entries[index]));
        }
        let mut next = entries.clone();
        next[index] = next[index]
            .clone()
            .with_state(KeyState::Deactivated { at: now });
        let info = self.info(&next[index]);
        self.commit(&mut entries, next).await?;
        Ok(info)
    }

    /// Stores `next`, then swaps it into the verifier and the registry.
    async fn commit(&self, current: &mut Vec<Entry>, next: Vec<Entry>) -> Result<(), ApiError> {
        let keys = key_set(&next, self.default_kid.as_deref()).map_err(|e| {
            tracing::error!(error = %e, "a key change would break the key set");
            ApiError::Internal
        })?;
        let bytes = encode(&next).map_err(|_| ApiError::Internal)?;
        self.store.put_meta(KEYS_META, bytes).await.map_err(|e| {
            tracing::error!(error = %e, "storing the verification keys failed; the change is not applied");
            ApiError::Storage
        })?;
        self.verifier.replace_keys(keys);
        *current = next;
        Ok(())
    }

    fn info(&self, entry: &Entry) -> KeyInfo {
        let state = entry.key.state();
        KeyInfo {
            kid: entry.record.kid.clone(),
            algorithm: entry.key.algorithm().as_str(),
            state: state.name(),
            created_at: entry.record.created_at,
            retired_at: match state {
                KeyState::Retired { at } => Some(at),
                _ => None,
            },
            deactivated_at: match state {
                KeyState::Deactivated { at } => Some(at),
                _ => None,
            },
            origin: entry.record.origin.name(),
            default: self.default_kid.as_deref() == Some(entry.record.kid.as_str()),
        }
    }
}

fn position(entries: &[Entry], kid: &str) -> Result<usize, ApiError> {
    entries
        .iter()
        .position(|e| e.record.kid == kid)
        .ok_or_else(|| ApiError::UnknownKid {
            kid: kid.to_owned(),
        })
}

fn encode(entries: &[Entry]) -> Result<Vec<u8>, StoredKeysError> {
    let doc = StoredDoc {
        version: FORMAT_VERSION,
        keys: entries.iter().map(|e| e.record.clone()).collect(),
    };
    serde_json::to_vec(&doc).map_err(StoredKeysError::Corrupt)
}

fn key_set(entries: &[Entry], default_kid: Option<&str>) -> Result<KeySet, KeyLoadError> {
    let set = KeySet::new(entries.iter().map(|e| e.key.clone()))?;
    match default_kid {
        Some(kid) => set.with_default_kid(kid),
        None => Ok(set),
    }
}

/// Combines the start-up keys with the stored records (rules in the module
/// documentation). Returns the entries in stored order followed by new
/// start-up keys, and the default kid.
fn merge(
    startup: &KeySet,
    stored: Vec<KeyRecord>,
    now: u64,
) -> Result<(Vec<Entry>, Option<String>), StoredKeysError> {
    let mut default_kid = None;
    let mut configured: Vec<(String, VerificationKey)> = Vec::new();
    for key in startup.iter() {
        let kid = match key.kid() {
            Some(kid) => kid.to_owned(),
            None => {
                default_kid = Some(ENV_KID.to_owned());
                ENV_KID.to_owned()
            }
        };
        configured.push((
            kid.clone(),
            key.clone().with_kid(kid).with_state(KeyState::Active),
        ));
    }
    let mut by_kid: HashMap<String, VerificationKey> = configured
        .iter()
        .map(|(kid, key)| (kid.clone(), key.clone()))
        .collect();

    let mut entries = Vec::new();
    for record in stored {
        if let Some(key) = by_kid.remove(&record.kid) {
            if record.fingerprint == hex(&key.fingerprint()) {
                let state = record.key_state()?;
                entries.push(Entry {
                    key: key.with_state(state),
                    record,
                });
            } else {
                tracing::warn!(
                    kid = %record.kid,
                    "the configured key differs from the stored key of the same kid; the configured key replaces it, active"
                );
                let record = KeyRecord::new(&key, &record.kid, Origin::Config, None, now);
                entries.push(Entry { record, key });
            }
            continue;
        }
        match (record.origin, &record.material) {
            (Origin::Api, Some(material)) => {
                let state = record.key_state()?;
                let alg =
                    JwsAlgorithm::from_name(&record.alg).ok_or_else(|| StoredKeysError::Key {
                        kid: record.kid.clone(),
                        source: KeyLoadError::UnknownAlgorithm {
                            alg: record.alg.clone(),
                        },
                    })?;
                let key = key_from_material(&record.kid, material, Some(alg))
                    .map_err(|source| StoredKeysError::Key {
                        kid: record.kid.clone(),
                        source,
                    })?
                    .with_state(state);
                entries.push(Entry { record, key });
            }
            _ => {
                tracing::info!(
                    kid = %record.kid,
                    "a key from an earlier configuration is no longer configured; it no longer verifies tokens"
                );
            }
        }
    }
    for (kid, _) in configured {
        if let Some(key) = by_kid.remove(&kid) {
            let record = KeyRecord::new(&key, &kid, Origin::Config, None, now);
            entries.push(Entry { record, key });
        }
    }
    Ok((entries, default_kid))
}

/// Builds a key from stored or received material. `alg` pins the algorithm
/// of a secret or PEM key; a JWK carries its own.
fn key_from_material(
    kid: &str,
    material: &Material,
    alg: Option<JwsAlgorithm>,
) -> Result<VerificationKey, KeyLoadError> {
    let key = match material {
        Material::Secret(secret) => VerificationKey::hmac(
            Some(kid.to_owned()),
            alg.unwrap_or(JwsAlgorithm::Hs256),
            secret.as_bytes(),
        )?,
        Material::Pem(pem) => VerificationKey::from_pem(Some(kid.to_owned()), pem, alg)?,
        Material::Jwk(jwk) => VerificationKey::from_jwk(jwk)?.with_kid(kid),
    };
    match alg {
        Some(alg) if alg != key.algorithm() => Err(KeyLoadError::AlgorithmMismatch {
            alg,
            key_type: "the stored key",
        }),
        _ => Ok(key),
    }
}

/// Validates a key received through the API.
fn new_entry(entries: &[Entry], new: NewKey, now: u64) -> Result<Entry, ApiError> {
    let NewKey {
        kid,
        secret,
        pem,
        jwk,
        alg,
    } = new;
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidKid);
    }
    if entries.iter().any(|e| e.record.kid == kid) {
        return Err(ApiError::DuplicateKid { kid });
    }
    let invalid = |detail: String| ApiError::InvalidKey { detail };
    let alg = match alg {
        None => None,
        Some(name) => Some(
            JwsAlgorithm::from_name(&name)
                .ok_or_else(|| invalid(format!("unknown algorithm {name:?}")))?,
        ),
    };
    let material = match (secret, pem, jwk) {
        (Some(secret), None, None) => Material::Secret(secret),
        (None, Some(pem), None) => Material::Pem(pem),
        (None, None, Some(mut jwk)) => {
            let Value::Object(obj) = &mut jwk else {
                return Err(invalid("`jwk` must be a JSON object".to_owned()));
            };
            match obj.get("kid") {
                None => {}
                Some(Value::String(k)) if *k == kid => {}
                Some(_) => return Err(invalid("the JWK's `kid` differs from `kid`".to_owned())),
            }
            if let Some(alg) = alg {
                match obj.get("alg") {
                    None => {
                        obj.insert("alg".to_owned(), Value::String(alg.as_str().to_owned()));
                    }
                    Some(Value::String(a)) if a == alg.as_str() => {}
                    Some(_) => {
                        return Err(invalid("the JWK's `alg` differs from `alg`".to_owned()));
                    }
                }
            }
            Material::Jwk(jwk)
        }
        _ => {
            return Err(invalid(
                "give exactly one of `secret`, `pem` and `jwk`".to_owned(),
            ));
        }
    };
    let pinned = match material {
        Material::Jwk(_) => None,
        _ => alg,
    };
    let key = key_from_material(&kid, &material, pinned).map_err(|e| invalid(e.to_string()))?;
    let record = KeyRecord::new(&key, &kid, Origin::Api, Some(material), now);
    Ok(Entry { record, key })
}

#[cfg(test)]
mod tests;
