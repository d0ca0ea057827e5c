//! `AdminTokens`: mints and verifies admin tokens with the admin key, which
//! is random, kept in the store's metadata, and used for nothing else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::ServerError;
use crate::auth::{AuthConfig, AuthError, JwsAlgorithm, KeySet, VerificationKey, Verifier};
use crate::store::Store;

use super::Capability;

/// The audience of every admin token. A client-session token never carries
/// it (the client verifier refuses tokens with an audience it was not
/// configured for), and the admin verifier requires it.
pub const ADMIN_AUDIENCE: &str = "topgun-admin";

/// The `kid` header of admin tokens.
const ADMIN_KID: &str = "topgun-admin";

/// Where the admin key is kept in the store's metadata.
const SIGNING_KEY_META: &str = "admin.signing_key";

/// Clock leeway for admin tokens: they are minted and checked by the same
/// server, so little skew is expected.
const ADMIN_LEEWAY: Duration = Duration::from_secs(5);

/// Who holds a verified admin token; handlers find it in the request
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdminPrincipal {
    /// The admin user (`sub`).
    pub(crate) sub: String,
    /// The capabilities the token carries (names this server does not know
    /// are dropped).
    pub(crate) caps: Vec<Capability>,
    /// Expiry, seconds since the epoch.
    pub(crate) exp: u64,
}

impl AdminPrincipal {
    pub(crate) fn has(&self, cap: Capability) -> bool {
        self.caps.contains(&cap)
    }
}

/// A freshly minted admin token.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) token: String,
    pub(crate) expires_at: u64,
}

/// Mints and verifies admin tokens.
#[derive(Debug)]
pub(crate) struct AdminTokens {
    encoding: jsonwebtoken::EncodingKey,
    verifier: Verifier,
    ttl: Duration,
}

impl AdminTokens {
    /// Loads the admin key from the store, or makes and stores one.
    pub(crate) async fn load(store: &dyn Store, ttl: Duration) -> Result<Self, ServerError> {
        if let Some(bytes) = store.get_meta(SIGNING_KEY_META).await? {
            if let Some(tokens) = Self::with_key(&bytes, ttl) {
                return Ok(tokens);
            }
            tracing::warn!(
                "the stored admin signing key is unusable; a new one is made (admin tokens issued before are no longer valid)"
            );
        }
        // A random key that happens to look like public-key material is
        // refused as an HMAC secret: draw again, a bounded number of times.
        for _ in 0..8 {
            let key: [u8; 32] = rand::random();
            if let Some(tokens) = Self::with_key(&key, ttl) {
                store.put_meta(SIGNING_KEY_META, key.to_vec()).await?;
                return Ok(tokens);
            }
        }
        Err(ServerError::AdminSigningKey)
    }

    fn with_key(key: &[u8], ttl: Duration) -> Option<Self> {
        if key.len() != 32 {
            return None;
        }
        let verification =
            VerificationKey::hmac(Some(ADMIN_KID.to_owned()), JwsAlgorithm::Hs256, key).ok()?;
        let keys = KeySet::new([verification]).ok()?;
        let config = AuthConfig::builder(keys)
            .audience(ADMIN_AUDIENCE)
            .leeway(ADMIN_LEEWAY)
            .build();
        Some(AdminTokens {
            encoding: jsonwebtoken::EncodingKey::from_secret(key),
            verifier: Verifier::new(config),
            ttl,
        })
    }

    /// A token for `sub` with `caps`, issued at `now` (seconds since the
    /// epoch).
    pub(crate) fn mint(
        &self,
        sub: &str,
        caps: &[Capability],
        now: u64,
    ) -> Result<Minted, jsonwebtoken::errors::Error> {
        let expires_at = now.saturating_add(self.ttl.as_secs());
        let jti: [u8; 16] = rand::random();
        let claims = json!({
            "sub": sub,
            "caps": caps.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "aud": ADMIN_AUDIENCE,
            "iat": now,
            "exp": expires_at,
            "jti": hex(&jti),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(ADMIN_KID.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(Minted { token, expires_at })
    }

    /// Verifies an admin token at `now`.
    pub(crate) fn verify(&self, token: &str, now: SystemTime) -> Result<AdminPrincipal, AuthError> {
        let principal = self.verifier.verify(token, now)?;
        let caps = match principal.claims.get("caps") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| c.as_str().ok_or(AuthError::InvalidClaim("caps")))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter_map(Capability::from_name)
                .collect(),
            None => return Err(AuthError::MissingClaim("caps")),
            Some(_) => return Err(AuthError::InvalidClaim("caps")),
        };
        Ok(AdminPrincipal {
            sub: principal.sub,
            caps,
            exp: principal.exp,
        })
    }
}

/// Seconds since the epoch (0 for a clock before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
