//! Token verification: header checks, key selection, signature, claims, `Principal`.
//!
//! jsonwebtoken is used only for the signature primitive
//! (`jsonwebtoken::crypto::verify`); the header and the claims are parsed and
//! checked here, so the clock is a parameter, `crit` is enforced, and claim
//! types are strict whatever the library version does.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::JwsAlgorithm;
use super::config::AuthConfig;
use super::error::AuthError;
use super::keys::KeySet;

/// `crit` extensions this verifier implements (RFC 7515 §4.1.11). None: a
/// token that lists any extension as critical is refused.
const SUPPORTED_CRITICAL: &[&str] = &[];

/// The verified identity a token carries.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The subject (`sub`), non-empty.
    pub sub: String,
    /// The `roles` claim; empty when the token has none.
    pub roles: Vec<String>,
    /// Expiry (`exp`), seconds since the Unix epoch. The session must not
    /// outlive it.
    pub exp: u64,
    /// Issue time (`iat`), seconds since the Unix epoch, when present.
    pub iat: Option<u64>,
    /// The kid of the configured key that verified the token (not the
    /// token's header `kid`, which a kid-less single key ignores).
    pub key_id: Option<String>,
    /// Every claim of the token, for claim interpolation in RBAC rules.
    pub claims: Map<String, Value>,
}

/// Verifies tokens against a key set that can be swapped at run time.
///
/// Cheap to share behind an `Arc`; [`Verifier::verify`] takes `&self`.
#[derive(Debug)]
pub struct Verifier {
    keys: RwLock<Arc<KeySet>>,
    leeway_secs: u64,
    issuers: Vec<String>,
    audiences: Vec<String>,
    max_token_bytes: usize,
}

/// The JOSE header fields this verifier acts on.
struct JoseHeader {
    alg: JwsAlgorithm,
    kid: Option<String>,
}

impl Verifier {
    /// A verifier for this configuration.
    pub fn new(config: AuthConfig) -> Self {
        Verifier {
            keys: RwLock::new(Arc::new(config.keys)),
            leeway_secs: config.leeway.as_secs(),
            issuers: config.issuers,
            audiences: config.audiences,
            max_token_bytes: config.max_token_bytes,
        }
    }

    /// The current key set.
    pub fn key_set(&self) -> Arc<KeySet> {
        // The lock only guards an `Arc` swap, which cannot be left half done,
        // so a poisoned lock still holds a consistent value.
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps in a new key set (key rotation) and returns the previous one.
    /// Verifications already running finish with the set they started with.
    pub fn replace_keys(&self, keys: KeySet) -> Arc<KeySet> {
        let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, Arc::new(keys))
    }

    /// Verifies a compact JWS token at time `now` and returns its principal.
    ///
    /// Order: size and shape, header (`alg`, `crit`, `kid`), key selection,
    /// algorithm pin, signature, the key's state (with `iat` for a retired
    /// key), then claims. Nothing in the payload is
    /// looked at before the signature has verified.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (header_b64, payload_b64, signature_b64) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(h), Some(p), Some(s), None) => (h, p, s),
                _ => return Err(AuthError::Malformed),
            };
        let header = parse_header(&decode_json_object(header_b64)?)?;

        let keys = self.key_set();
        let key = keys.select(header.kid.as_deref())?;
        // The algorithm comes from the key; the header may only agree.
        if header.alg != key.algorithm() {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(
            signature_b64,
            signing_input.as_bytes(),
            key.decoding_key(),
            key.algorithm().to_jwt(),
        ) {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::InvalidSignature),
            Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
                return Err(AuthError::Malformed);
            }
            // Keys are checked at load, so this is not expected; refuse.
            Err(_) => return Err(AuthError::InvalidSignature),
        }

        let claims = decode_json_object(payload_b64)?;
        // A genuine token whose key was rotated out or withdrawn.
        key.state().admits(numeric_date(&claims, "iat")?)?;
        let key_id = key.kid().map(str::to_owned);
        self.check_claims(claims, now, key_id)
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        now: SystemTime,
        key_id: Option<String>,
    ) -> Result<Principal, AuthError> {
        let exp = numeric_date(&claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        let sub = match claims.get("sub") {
            None => return Err(AuthError::MissingClaim("sub")),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(AuthError::InvalidClaim("sub")),
        };
        let roles = match claims.get("roles") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(AuthError::InvalidClaim("roles"))?,
            Some(_) => return Err(AuthError::InvalidClaim("roles")),
        };

        // A clock before 1970 counts as the epoch.
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if now >= exp.saturating_add(self.leeway_secs) {
            return Err(AuthError::Expired);
        }
        // RFC 7519 §4.1.5: the current time must be at or after `nbf`.
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_secs)) {
            return Err(AuthError::NotYetValid);
        }

        if !self.issuers.is_empty() {
            match claims.get("iss") {
                None => return Err(AuthError::MissingClaim("iss")),
                Some(Value::String(iss)) => {
                    if !self.issuers.iter().any(|i| i == iss) {
                        return Err(AuthError::InvalidIssuer);
                    }
                }
                Some(_) => return Err(AuthError::InvalidClaim("iss")),
            }
        }

        let aud: Option<Vec<&str>> = match claims.get("aud") {
            None => None,
            Some(Value::String(a)) => Some(vec![a.as_str()]),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(Value::as_str)
                    .collect::<Option<Vec<_>>>()
                    .ok_or(AuthError::InvalidClaim("aud"))?,
            ),
            Some(_) => return Err(AuthError::InvalidClaim("aud")),
        };
        match (aud, self.audiences.is_empty()) {
            (None, true) => {}
            (None, false) => return Err(AuthError::MissingClaim("aud")),
            // RFC 7519 §4.1.3: a recipient that does not identify itself with
            // a value in a present `aud` must reject the token. This matters
            // with shared issuers: every Firebase project trusts Google's keys.
            (Some(aud), true) => {
                if !aud.is_empty() {
                    return Err(AuthError::InvalidAudience);
                }
            }
            (Some(aud), false) => {
                if !aud.iter().any(|a| self.audiences.iter().any(|c| c == a)) {
                    return Err(AuthError::InvalidAudience);
                }
            }
        }

        Ok(Principal {
            sub,
            roles,
            exp,
            iat,
            key_id,
            claims,
        })
    }
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

fn parse_header(header: &Map<String, Value>) -> Result<JoseHeader, AuthError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        _ => return Err(AuthError::Malformed),
    };
    // `none` and unknown names are refused here, before any key is touched.
    let alg = JwsAlgorithm::from_name(alg).ok_or(AuthError::AlgorithmNotAllowed)?;
    if let Some(crit) = header.get("crit") {
        // RFC 7515 §4.1.11: a non-empty array of names.
        let names = crit
            .as_array()
            .filter(|names| !names.is_empty())
            .ok_or(AuthError::Malformed)?;
        for name in names {
            let name = name.as_str().ok_or(AuthError::Malformed)?;
            if !SUPPORTED_CRITICAL.contains(&name) {
                return Err(AuthError::UnsupportedCriticalHeader);
            }
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok(JoseHeader { alg, kid })
}

/// Reads a NumericDate claim (RFC 7519 §2): a non-negative JSON number,
/// fractions truncated. Anything else, notably a string, is invalid rather
/// than absent.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(AuthError::InvalidClaim(name));
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    match n.as_f64() {
        // 2^63: far beyond any real date, and exactly representable.
        Some(f) if (0.0..9_223_372_036_854_775_808.0).contains(&f) => Ok(Some(f as u64)),
        _ => Err(AuthError::InvalidClaim(name)),
    }
}
