//! JWT authentication: key configuration, token verification, and failed-attempt rate limiting.
//!
//! - [`KeySet`] holds [`VerificationKey`]s, each pinned at load time to one
//!   [`JwsAlgorithm`]. Sources: the `JWT_SECRET` text (an HS256 secret of at
//!   least 32 bytes, or a PEM public key, with `\n` escapes undone), a JWKS
//!   document, or a TopGun key file. Loading fails closed with a
//!   [`KeyLoadError`].
//! - [`Verifier`] checks a token against the current key set (swappable at
//!   run time for key rotation) and returns a [`Principal`] or an
//!   [`AuthError`] with a stable reason.
//! - [`AuthRateLimiter`] refuses peers that failed too often.
//! - [`KeyState`]: a key is active, retired (its tokens issued before the
//!   retirement stay valid until their `exp`) or deactivated (none of its
//!   tokens is accepted). The admin API changes states at run time.
//!
//! **Invariant:** the algorithm used to verify a token comes from the
//! selected key, never from the token header; `alg: none` cannot even be
//! represented.
//!
//! **Invariant:** no claim is trusted, or even looked at, before the
//! signature has verified.
//!
//! Not here: reading the environment (the binary does), the handshake and
//! session expiry (the session code), RBAC (which reads
//! [`Principal::claims`]), and mapping [`AuthError`] to the wire's
//! `AUTH_FAIL` reasons.

mod algorithm;
mod config;
mod error;
mod keys;
mod pem;
mod rate_limit;
mod verify;

pub use algorithm::JwsAlgorithm;
pub use config::{AuthConfig, AuthConfigBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES};
pub use error::{AuthError, KeyLoadError, PemProblem, RateLimited};
pub use keys::{KeySet, KeyState, VerificationKey};
pub use rate_limit::{AuthRateLimiter, RateLimitConfig};
pub use verify::{Principal, Verifier};

#[cfg(test)]
mod tests;
