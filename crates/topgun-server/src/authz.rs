//! Authorization in tower's shape: a [`Policy`] decides, the
//! [`AuthorizeLayer`] applies the decision to every op of a write request
//! before the inner service sees it.
//!
//! Policies: [`AllowAll`] (the server runs with `TOPGUN_NO_AUTH=1`),
//! [`AllowAuthenticated`] (any verified principal may read and write any
//! map that is not reserved; the default without RBAC policies) and the RBAC
//! engine's `rbac::RbacPolicy` (per-map, per-operation rules with
//! conditions over the stored and proposed values, and field redaction).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use topgun_core::Value;
use topgun_protocol::{OpRejection, RejectCode, WireOpKind};
use tower::{Layer, Service};

use crate::pipeline::{WriteRequest, WriteResponse};

/// Map names starting with this prefix are reserved for the server's
/// internal maps and are never reachable by clients.
pub const RESERVED_MAP_PREFIX: &str = "$";

/// Whether a map name is reserved for internal use.
pub fn is_reserved_map(map: &str) -> bool {
    map.starts_with(RESERVED_MAP_PREFIX)
}

/// Who is asking: the verified token's subject, roles and claims, or the
/// anonymous principal of a server running without auth.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The subject (`sub`); `"anonymous"` without auth.
    pub sub: String,
    /// The `roles` claim.
    pub roles: Vec<String>,
    /// Every claim of the token (empty without auth).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Whether a token was verified (false only with `TOPGUN_NO_AUTH=1`).
    pub authenticated: bool,
}

impl Principal {
    /// The principal of every session of a server running without auth.
    pub fn anonymous() -> Self {
        Principal {
            sub: "anonymous".to_owned(),
            roles: Vec::new(),
            claims: serde_json::Map::new(),
            authenticated: false,
        }
    }
}

impl From<crate::auth::Principal> for Principal {
    fn from(p: crate::auth::Principal) -> Self {
        Principal {
            sub: p.sub,
            roles: p.roles,
            claims: p.claims,
            authenticated: true,
        }
    }
}

/// What a principal wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read records (subscriptions, sync, and every record sent out).
    Read,
    /// Create or change a record.
    Write,
    /// Delete a record (a tombstone write or an OR remove).
    Remove,
}

/// A policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with a reason for the client.
    Deny(String),
}

/// Decides whether a principal may perform an action on a map (and key).
pub trait Policy: Send + Sync + std::fmt::Debug + 'static {
    /// The decision for `principal` doing `action` on `map` (`key` is `None`
    /// for map-wide actions such as a subscription).
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: Option<&str>,
    ) -> Decision;

    /// The decision for one record, which may depend on the stored value
    /// (`old`, `None` when absent) and the proposed one (`new`, `None` for
    /// removes and reads). The default ignores the values.
    fn decide_record(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Decision {
        let _ = (old, new);
        self.decide(principal, action, map, Some(key))
    }

    /// What of `value` (stored under `key`) the principal may read: `None`
    /// when the record must not be sent at all, otherwise the value with
    /// denied fields stripped (borrowed when nothing is stripped).
    fn read_view<'v>(
        &self,
        principal: &Principal,
        map: &str,
        key: &str,
        value: &'v Value,
    ) -> Option<Cow<'v, Value>> {
        match self.decide_record(principal, Action::Read, map, key, Some(value), None) {
            Decision::Allow => Some(Cow::Borrowed(value)),
            Decision::Deny(_) => None,
        }
    }

    /// Whether decisions can depend on record values, so the write layer
    /// must look up the stored value of every op (RBAC conditions over
    /// `old`/`new`). The built-in policies need no values.
    fn needs_values(&self) -> bool {
        false
    }
}

/// Reads the current value of a record, for policies whose decisions depend
/// on it. `None` when the key holds nothing (absent or a tombstone).
pub trait RecordLookup: Send + Sync + std::fmt::Debug {
    /// The stored value of `key` in `map` (for an OR map: the array of its
    /// live values).
    fn current(&self, map: &str, key: &str) -> Option<Value>;
}

/// Every action on every non-reserved map is allowed: the policy of a
/// server running with `TOPGUN_NO_AUTH=1`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _: &Principal, _: Action, map: &str, _: Option<&str>) -> Decision {
        if is_reserved_map(map) {
            Decision::Deny(format!(
                "map names starting with {RESERVED_MAP_PREFIX:?} are reserved"
            ))
        } else {
            Decision::Allow
        }
    }
}

/// Any authenticated principal may do anything to non-reserved maps (the
/// default policy until RBAC policies are configured).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAuthenticated;

impl Policy for AllowAuthenticated {
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: Option<&str>,
    ) -> Decision {
        if principal.authenticated {
            AllowAll.decide(principal, action, map, key)
        } else {
            Decision::Deny("not authenticated".to_owned())
        }
    }
}

/// Applies a [`Policy`] to every op of a [`WriteRequest`].
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    policy: Arc<dyn Policy>,
    records: Option<Arc<dyn RecordLookup>>,
}

impl AuthorizeLayer {
    /// A layer enforcing `policy`; `records` supplies stored values when the
    /// policy needs them ([`Policy::needs_values`]).
    pub fn new(policy: Arc<dyn Policy>, records: Option<Arc<dyn RecordLookup>>) -> Self {
        AuthorizeLayer { policy, records }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            policy: Arc::clone(&self.policy),
            records: self.records.clone(),
        }
    }
}

/// The service [`AuthorizeLayer`] produces: denied ops become
/// `OP_REJECTED { Forbidden }` entries, the rest go on to the inner
/// service. Trusted origins (forwarded, backup, WAN, system) were checked
/// where they entered the cluster and pass through.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    policy: Arc<dyn Policy>,
    records: Option<Arc<dyn RecordLookup>>,
}

impl<S> Service<WriteRequest> for Authorize<S>
where
    S: Service<WriteRequest, Response = WriteResponse>,
{
    type Response = WriteResponse;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: WriteRequest) -> Self::Future {
        let mut denied = Vec::new();
        if !req.origin.is_trusted() {
            let principal = Arc::clone(&req.principal);
            let records = self.records.as_ref().filter(|_| self.policy.needs_values());
            req.ops.retain(|op| {
                let removal = matches!(op.kind, WireOpKind::Remove | WireOpKind::OrRemove { .. });
                let action = if removal {
                    Action::Remove
                } else {
                    Action::Write
                };
                let decision = match records {
                    None => self
                        .policy
                        .decide(&principal, action, &op.map, Some(&op.key)),
                    Some(records) => {
                        let old = records.current(&op.map, &op.key);
                        let new = match &op.kind {
                            WireOpKind::Put { value, .. } | WireOpKind::OrAdd { value, .. } => {
                                Some(Value::from(value.clone()))
                            }
                            WireOpKind::Remove | WireOpKind::OrRemove { .. } => None,
                        };
                        self.policy.decide_record(
                            &principal,
                            action,
                            &op.map,
                            &op.key,
                            old.as_ref(),
                            new.as_ref(),
                        )
                    }
                };
                match decision {
                    Decision::Allow => true,
                    Decision::Deny(message) => {
                        denied.push(OpRejection {
                            op_id: op.op_id,
                            code: RejectCode::Forbidden,
                            message,
                        });
                        false
                    }
                }
            });
        }
        ResponseFuture {
            inner: self.inner.call(req),
            denied,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Authorize`]: the inner service's answer with
    /// the denied ops' rejections added.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        denied: Vec<OpRejection>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<WriteResponse, E>>,
{
    type Output = Result<WriteResponse, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(mut resp)) => {
                resp.rejections.append(this.denied);
                Poll::Ready(Ok(resp))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}
