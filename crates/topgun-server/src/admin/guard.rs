//! `RequireCapabilityLayer`: the one place that checks admin tokens. It
//! verifies the bearer token, requires the route's capability, and hands
//! the [`AdminPrincipal`] to the handler in the request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::Capability;
use super::error::ApiError;
use super::tokens::{AdminPrincipal, AdminTokens};

/// How an admin request is judged, apart from the plumbing: the token must
/// verify, then carry the capability.
pub(crate) trait Authorize: Send + Sync + 'static {
    /// The principal, or the refusal to answer with.
    fn authorize(&self, headers: &HeaderMap, need: Capability) -> Result<AdminPrincipal, ApiError>;
}

impl Authorize for AdminTokens {
    fn authorize(&self, headers: &HeaderMap, need: Capability) -> Result<AdminPrincipal, ApiError> {
        let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
        let principal = self.verify(token, SystemTime::now()).map_err(|e| {
            tracing::debug!(reason = e.reason(), "admin token refused");
            ApiError::Unauthenticated
        })?;
        if principal.has(need) {
            Ok(principal)
        } else {
            Err(ApiError::MissingCapability(need))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// case-insensitively, RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Requires `capability` of every request to the routes it wraps.
#[derive(Clone)]
pub(crate) struct RequireCapabilityLayer {
    authority: Arc<dyn Authorize>,
    capability: Capability,
}

impl RequireCapabilityLayer {
    pub(crate) fn new(authority: Arc<dyn Authorize>, capability: Capability) -> Self {
        RequireCapabilityLayer {
            authority,
            capability,
        }
    }
}

impl<S> Layer<S> for RequireCapabilityLayer {
    type Service = RequireCapability<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireCapability {
            inner,
            authority: Arc::clone(&self.authority),
            capability: self.capability,
        }
    }
}

/// The service of [`RequireCapabilityLayer`].
#[derive(Clone)]
pub(crate) struct RequireCapability<S> {
    inner: S,
    authority: Arc<dyn Authorize>,
    capability: Capability,
}

impl<S> Service<Request> for RequireCapability<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.authority.authorize(req.headers(), self.capability) {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
                ResponseFuture::Inner {
                    future: self.inner.call(req),
                }
            }
            Err(refusal) => ResponseFuture::Refused {
                response: Some(refusal.into_response()),
            },
        }
    }
}

pin_project! {
    /// The response of [`RequireCapability`]: the inner service's, or the
    /// refusal.
    #[project = ResponseFutureProj]
    pub(crate) enum ResponseFuture<F> {
        /// Authorized: the handler runs.
        Inner {
            #[pin]
            future: F,
        },
        /// Refused before the handler.
        Refused {
            response: Option<Response>,
        },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Inner { future } => future.poll(cx),
            ResponseFutureProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                // Polled again after completion: a caller bug, answered.
                .unwrap_or_else(|| ApiError::Internal.into_response()))),
        }
    }
}
