//! Token providers: where the client gets the token it presents on every
//! `AUTH_REQUIRED` (the initial one and every renewal request).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

/// Why the server asked for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenReason {
    /// A new connection.
    Initial,
    /// The session's token expires at `expires_at_ms` (milliseconds since
    /// the Unix epoch); a fresh token renews the session. A provider that
    /// caches tokens should not return the expiring one.
    Renewal {
        /// When the current session ends.
        expires_at_ms: u64,
    },
}

/// Supplies tokens (JWTs) to the client.
///
/// Called on **every** `AUTH_REQUIRED` the server sends: once while
/// connecting and again each time the server asks for a fresh token before
/// the session expires. Returning `None` leaves the connection
/// unauthenticated: [`crate::Client::connect`] then fails with
/// [`crate::ConnectError::NoToken`], and a session whose renewal gets no
/// token is closed by the server when it expires.
///
/// The trait is object safe; implement it for your own type, use
/// [`StaticToken`], or wrap an async closure with [`token_fn`].
pub trait TokenProvider: Send + Sync + 'static {
    /// A token for the server, or `None` when none is available.
    fn token(&self, reason: TokenReason) -> TokenFuture<'_>;
}

impl<T: TokenProvider + ?Sized> TokenProvider for Arc<T> {
    fn token(&self, reason: TokenReason) -> TokenFuture<'_> {
        (**self).token(reason)
    }
}

impl<T: TokenProvider + ?Sized> TokenProvider for Box<T> {
    fn token(&self, reason: TokenReason) -> TokenFuture<'_> {
        (**self).token(reason)
    }
}

/// Always the same token (tests, long-lived service tokens). Against a
/// server that runs without auth any token, the empty one included, will
/// do.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// A provider that always returns `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self, _reason: TokenReason) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Some(token) })
    }
}

/// A provider built from a closure returning a future; see [`token_fn`].
pub struct TokenFn<F>(F);

impl<F> fmt::Debug for TokenFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenFn")
    }
}

/// Wraps `f` (called with the reason, returning a future of the token) as
/// a [`TokenProvider`]:
///
/// ```
/// use topgun_client::{token_fn, TokenReason};
/// let provider = token_fn(|_reason: TokenReason| async { Some("jwt".to_owned()) });
/// # let _ = provider;
/// ```
pub fn token_fn<F, Fut>(f: F) -> TokenFn<F>
where
    F: Fn(TokenReason) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    TokenFn(f)
}

impl<F, Fut> TokenProvider for TokenFn<F>
where
    F: Fn(TokenReason) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    fn token(&self, reason: TokenReason) -> TokenFuture<'_> {
        Box::pin((self.0)(reason))
    }
}
