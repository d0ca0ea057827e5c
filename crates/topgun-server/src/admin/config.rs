//! `AdminConfig`: the operator's credentials, the admin token lifetime and
//! the login rate limit, and the checks that refuse weak passwords.

use std::fmt;
use std::time::Duration;

use crate::auth::RateLimitConfig;

/// The admin user name when none is configured.
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";

/// How long an admin token lives by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest admin token lifetime accepted.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The shortest admin password accepted (in characters) unless the server
/// runs without auth.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords that appear in quick-start guides and default configurations.
const WELL_KNOWN_PASSWORDS: &[&str] = &["admin", "changeme", "password", "topgun"];

/// Enables the admin API (see the `admin` module and `docs/security.md`).
///
/// The password is compared in constant time and never logged; `Debug`
/// redacts it.
#[derive(Clone)]
pub struct AdminConfig {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) token_ttl: Duration,
    pub(crate) login_rate_limit: RateLimitConfig,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("token_ttl", &self.token_ttl)
            .field("login_rate_limit", &self.login_rate_limit)
            .finish()
    }
}

impl AdminConfig {
    /// The admin user [`DEFAULT_ADMIN_USERNAME`] with this password, tokens
    /// valid for [`DEFAULT_TOKEN_TTL`], and at most 5 failed logins per
    /// minute per address.
    pub fn new(password: impl Into<String>) -> Self {
        AdminConfig {
            username: DEFAULT_ADMIN_USERNAME.to_owned(),
            password: password.into(),
            token_ttl: DEFAULT_TOKEN_TTL,
            login_rate_limit: RateLimitConfig {
                max_failures: 5,
                ..RateLimitConfig::default()
            },
        }
    }

    /// The admin user name.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = username.into();
        self
    }

    /// How long an admin token lives (1 s to 24 h; whole seconds).
    #[must_use]
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Limits on failed logins per address.
    #[must_use]
    pub fn login_rate_limit(mut self, limit: RateLimitConfig) -> Self {
        self.login_rate_limit = limit;
        self
    }

    /// Checks the configuration. Without auth (`TOPGUN_NO_AUTH=1`, a
    /// development mode) any non-empty password is accepted.
    pub(crate) fn check(&self, auth_disabled: bool) -> Result<(), AdminConfigError> {
        if self.username.is_empty() {
            return Err(AdminConfigError::EmptyUsername);
        }
        let secs = self.token_ttl.as_secs();
        if secs == 0 || self.token_ttl > MAX_TOKEN_TTL {
            return Err(AdminConfigError::TokenTtl { secs });
        }
        if self.password.is_empty() {
            return Err(AdminConfigError::EmptyPassword);
        }
        if auth_disabled {
            return Ok(());
        }
        check_password(&self.password)
    }
}

/// Refuses a password that is a well-known default or shorter than
/// [`MIN_PASSWORD_CHARS`] characters.
pub fn check_password(password: &str) -> Result<(), AdminConfigError> {
    if password.is_empty() {
        return Err(AdminConfigError::EmptyPassword);
    }
    let trimmed = password.trim().to_ascii_lowercase();
    if WELL_KNOWN_PASSWORDS.contains(&trimmed.as_str()) {
        return Err(AdminConfigError::WellKnownPassword);
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AdminConfigError::ShortPassword {
            chars,
            min: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

/// Why the admin API configuration is refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminConfigError {
    /// The admin password is empty.
    #[error(
        "the admin password (TOPGUN_ADMIN_PASSWORD) is empty; set one of at least {MIN_PASSWORD_CHARS} characters, e.g. \"$(openssl rand -base64 18)\", or unset it to disable the admin API"
    )]
    EmptyPassword,
    /// The admin password is a well-known default (`admin`, `changeme`,
    /// `password`, `topgun`).
    #[error(
        "the admin password (TOPGUN_ADMIN_PASSWORD) is a well-known default; set one of at least {MIN_PASSWORD_CHARS} characters, e.g. \"$(openssl rand -base64 18)\", or unset it to disable the admin API"
    )]
    WellKnownPassword,
    /// The admin password is too short.
    #[error(
        "the admin password (TOPGUN_ADMIN_PASSWORD) has {chars} characters, fewer than {min}; set a longer one, e.g. \"$(openssl rand -base64 18)\", or unset it to disable the admin API"
    )]
    ShortPassword {
        /// Its length in characters.
        chars: usize,
        /// The minimum.
        min: usize,
    },
    /// The admin user name is empty.
    #[error("the admin user name (TOPGUN_ADMIN_USERNAME) is empty")]
    EmptyUsername,
    /// The admin token lifetime is zero or longer than 24 hours.
    #[error("the admin token lifetime must be 1 s to 24 h, got {secs} s")]
    TokenTtl {
        /// The configured lifetime in whole seconds.
        secs: u64,
    },
}
