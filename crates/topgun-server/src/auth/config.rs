//! `AuthConfig` and its builder: keys, leeway, issuers, audiences, size limit.

use std::time::Duration;

use super::error::KeyLoadError;
use super::keys::KeySet;

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Default maximum token size in bytes; larger tokens are refused before
/// any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How tokens are verified. Build with [`AuthConfig::builder`] or
/// [`AuthConfig::from_jwt_secret`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub(crate) keys: KeySet,
    pub(crate) leeway: Duration,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) max_token_bytes: usize,
}

impl AuthConfig {
    /// A builder with these keys and the defaults: leeway 30 s, no issuer or
    /// audience requirement, tokens up to 16 KiB.
    pub fn builder(keys: KeySet) -> AuthConfigBuilder {
        AuthConfigBuilder {
            config: AuthConfig {
                keys,
                leeway: DEFAULT_LEEWAY,
                issuers: Vec::new(),
                audiences: Vec::new(),
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            },
        }
    }

    /// A builder for the value of the `JWT_SECRET` environment variable (the
    /// binary reads the environment; this only interprets the text). See
    /// [`KeySet::from_jwt_secret`] for the rules.
    pub fn from_jwt_secret(secret: &str) -> Result<AuthConfigBuilder, KeyLoadError> {
        Ok(Self::builder(KeySet::from_jwt_secret(secret)?))
    }

    /// The initial key set.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The clock-skew allowance.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Accepted issuers; empty means `iss` is not checked.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// Accepted audiences; empty means tokens must not carry an `aud`.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Maximum token size in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }
}

/// Builder for [`AuthConfig`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthConfigBuilder {
    config: AuthConfig,
}

impl AuthConfigBuilder {
    /// Clock-skew allowance for `exp` and `nbf` (whole seconds are used).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// Accepts tokens from this issuer. Once any issuer is set, `iss` is
    /// required and must be one of them.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience. Once any audience is set, `aud` is
    /// required and must name one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audiences.push(audience.into());
        self
    }

    /// Maximum token size in bytes.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.config.max_token_bytes = max;
        self
    }

    /// The finished configuration.
    pub fn build(self) -> AuthConfig {
        self.config
    }
}
