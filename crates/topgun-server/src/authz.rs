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
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use topgun_core::Value;
use topgun_protocol::{Op, OpRejection, RejectCode, WireOpKind};
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

    /// The decision for `action` on every record of `map`, when the policy
    /// can tell it is the same whatever the record's key, stored and
    /// proposed value: then [`Policy::decide`] with any key and
    /// [`Policy::decide_record`] with any key and values return it. `None`
    /// when records may be decided differently or the policy cannot tell.
    /// Callers deciding many records of one map may decide once with it.
    /// The default, `None`, keeps callers on the per-record path.
    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        let _ = (principal, action, map);
        None
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

    /// Decisions never look at the record.
    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        Some(self.decide(principal, action, map, None))
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

    /// Decisions never look at the record.
    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        Some(self.decide(principal, action, map, None))
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
            let allowed = decide_ops(
                &*self.policy,
                self.records.as_deref(),
                &req.principal,
                &req.ops,
                &mut denied,
            );
            // One flag per op, in order; a missing flag (never) drops the op.
            let mut allowed = allowed.into_iter();
            req.ops.retain(|_| allowed.next().unwrap_or(false));
        }
        ResponseFuture {
            inner: self.inner.call(req),
            denied,
        }
    }
}

/// Decides every op of a batch: whether each may go on, in order, with an
/// `OP_REJECTED { Forbidden }` entry in `denied` for each that may not.
///
/// Where the policy knows the decision for a map and action holds for every
/// record ([`Policy::uniform_decision`]) it is taken once per batch, and the
/// stored values of those ops are not looked up. Otherwise each op is
/// decided on its own, with its stored and proposed value when the policy
/// needs them ([`Policy::needs_values`]).
fn decide_ops(
    policy: &dyn Policy,
    records: Option<&dyn RecordLookup>,
    principal: &Principal,
    ops: &[Op],
    denied: &mut Vec<OpRejection>,
) -> Vec<bool> {
    let records = records.filter(|_| policy.needs_values());
    let mut uniform: HashMap<(&str, Action), Option<Decision>> = HashMap::new();
    ops.iter()
        .map(|op| {
            let removal = matches!(op.kind, WireOpKind::Remove | WireOpKind::OrRemove { .. });
            let action = if removal {
                Action::Remove
            } else {
                Action::Write
            };
            let shared = uniform
                .entry((op.map.as_str(), action))
                .or_insert_with(|| policy.uniform_decision(principal, action, &op.map));
            let decision = match (shared, records) {
                (Some(decision), _) => decision.clone(),
                (None, None) => policy.decide(principal, action, &op.map, Some(&op.key)),
                (None, Some(records)) => {
                    let old = records.current(&op.map, &op.key);
                    let new = match &op.kind {
                        WireOpKind::Put { value, .. } | WireOpKind::OrAdd { value, .. } => {
                            Some(Value::from(value.clone()))
                        }
                        WireOpKind::Remove | WireOpKind::OrRemove { .. } => None,
                    };
                    policy.decide_record(
                        principal,
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
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use topgun_core::CallerOrigin;
    use topgun_protocol::{WireNodeId, WireTimestamp, WireValue, WriteConcern};

    use super::*;
    use crate::rbac::{Effect, Operation, PolicyDef, PolicySet, RbacPolicy};

    /// Stored values, counting lookups.
    #[derive(Debug, Default)]
    struct Records {
        values: HashMap<(String, String), Value>,
        lookups: AtomicUsize,
    }

    impl Records {
        fn owned_by(mut self, map: &str, key: &str, owner: &str) -> Self {
            let value = Value::Map([("owner".to_owned(), Value::from(owner))].into());
            self.values.insert((map.to_owned(), key.to_owned()), value);
            self
        }
    }

    impl RecordLookup for Records {
        fn current(&self, map: &str, key: &str) -> Option<Value> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            self.values.get(&(map.to_owned(), key.to_owned())).cloned()
        }
    }

    /// A policy that counts the calls to it.
    #[derive(Debug)]
    struct Counting {
        inner: RbacPolicy,
        uniform: AtomicUsize,
        per_op: AtomicUsize,
    }

    impl Counting {
        fn new(defs: Vec<PolicyDef>) -> Self {
            Counting {
                inner: RbacPolicy::new(PolicySet::new(defs).unwrap()),
                uniform: AtomicUsize::new(0),
                per_op: AtomicUsize::new(0),
            }
        }
    }

    impl Policy for Counting {
        fn decide(
            &self,
            principal: &Principal,
            action: Action,
            map: &str,
            key: Option<&str>,
        ) -> Decision {
            self.per_op.fetch_add(1, Ordering::Relaxed);
            self.inner.decide(principal, action, map, key)
        }

        fn decide_record(
            &self,
            principal: &Principal,
            action: Action,
            map: &str,
            key: &str,
            old: Option<&Value>,
            new: Option<&Value>,
        ) -> Decision {
            self.per_op.fetch_add(1, Ordering::Relaxed);
            self.inner
                .decide_record(principal, action, map, key, old, new)
        }

        fn needs_values(&self) -> bool {
            self.inner.needs_values()
        }

        fn uniform_decision(
            &self,
            principal: &Principal,
            action: Action,
            map: &str,
        ) -> Option<Decision> {
            self.uniform.fetch_add(1, Ordering::Relaxed);
            self.inner.uniform_decision(principal, action, map)
        }
    }

    /// The inner service: records the op ids it is given.
    #[derive(Clone, Debug, Default)]
    struct Sink {
        seen: Arc<Mutex<Vec<u64>>>,
    }

    impl Service<WriteRequest> for Sink {
        type Response = WriteResponse;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<WriteResponse, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: WriteRequest) -> Self::Future {
            self.seen
                .lock()
                .unwrap()
                .extend(req.ops.iter().map(|op| op.op_id));
            std::future::ready(Ok(WriteResponse::default()))
        }
    }

    fn put(op_id: u64, map: &str, key: &str, owner: &str) -> Op {
        let value = WireValue::Map([("owner".to_owned(), WireValue::from(owner))].into());
        Op {
            op_id,
            map: map.to_owned(),
            key: key.to_owned(),
            timestamp: WireTimestamp {
                millis: 1,
                counter: 0,
                node: WireNodeId(9),
            },
            kind: WireOpKind::Put {
                value,
                ttl_ms: None,
            },
        }
    }

    fn remove(op_id: u64, map: &str, key: &str) -> Op {
        Op {
            kind: WireOpKind::Remove,
            ..put(op_id, map, key, "")
        }
    }

    fn alice() -> Principal {
        let mut claims = serde_json::Map::new();
        claims.insert("tenant".into(), "acme".into());
        Principal {
            sub: "alice".into(),
            roles: vec!["user".into()],
            claims,
            authenticated: true,
        }
    }

    /// Runs one client batch through the layer: the op ids the inner
    /// service got, and the rejected ones.
    async fn run(
        policy: Arc<dyn Policy>,
        records: Arc<Records>,
        ops: Vec<Op>,
    ) -> (Vec<u64>, Vec<u64>) {
        let sink = Sink::default();
        let mut service = AuthorizeLayer::new(policy, Some(records)).layer(sink.clone());
        let resp = service
            .call(WriteRequest {
                principal: Arc::new(alice()),
                origin: CallerOrigin::Client,
                ops,
                concern: WriteConcern::Durable,
            })
            .await
            .unwrap();
        let passed = sink.seen.lock().unwrap().clone();
        let rejected = resp.rejections.iter().map(|r| r.op_id).collect();
        (passed, rejected)
    }

    /// The set of both tests: record conditions on `owned` and `inbox`
    /// only.
    fn defs() -> Vec<PolicyDef> {
        vec![
            PolicyDef::new("docs", Effect::Allow, "docs:*", [Operation::Write]).roles(["user"]),
            PolicyDef::new("docs-keep", Effect::Deny, "docs:*", [Operation::Remove]),
            PolicyDef::new(
                "tenant",
                Effect::Allow,
                "{claims.tenant}:*",
                [Operation::Write],
            )
            .condition("auth.sub == \"alice\" && op == \"write\""),
            PolicyDef::new(
                "owned",
                Effect::Allow,
                "owned",
                [Operation::Write, Operation::Remove],
            )
            .condition("old == null || old.owner == auth.sub"),
            PolicyDef::new("inbox", Effect::Allow, "inbox", [Operation::Write])
                .condition("key != \"locked\""),
        ]
    }

    #[tokio::test]
    async fn a_batch_decides_once_per_map_and_action_when_records_do_not_matter() {
        let policy = Arc::new(Counting::new(defs()));
        let records = Arc::new(Records::default());
        let (passed, rejected) = run(
            Arc::clone(&policy) as Arc<dyn Policy>,
            Arc::clone(&records),
            vec![
                put(1, "docs:a", "k1", "x"),
                put(2, "docs:a", "k2", "x"),
                remove(3, "docs:a", "k3"),
                put(4, "acme:b", "k1", "x"),
                put(5, "docs:a", "k4", "x"),
                put(6, "globex:b", "k1", "x"),
                remove(7, "docs:a", "k5"),
                remove(8, "acme:b", "k1"),
            ],
        )
        .await;
        assert_eq!(passed, [1, 2, 4, 5]);
        assert_eq!(rejected, [3, 6, 7, 8]);
        // (docs:a, write), (docs:a, remove), (acme:b, write),
        // (globex:b, write), (acme:b, remove): decided once each, and no
        // stored value read although the set has record conditions.
        assert!(policy.needs_values());
        assert_eq!(policy.uniform.load(Ordering::Relaxed), 5);
        assert_eq!(policy.per_op.load(Ordering::Relaxed), 0);
        assert_eq!(records.lookups.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn record_conditions_are_decided_per_op_within_a_batch() {
        let policy = Arc::new(Counting::new(defs()));
        let records = Arc::new(
            Records::default()
                .owned_by("owned", "mine", "alice")
                .owned_by("owned", "theirs", "bob"),
        );
        let (passed, rejected) = run(
            Arc::clone(&policy) as Arc<dyn Policy>,
            Arc::clone(&records),
            vec![
                put(1, "owned", "mine", "alice"),
                put(2, "owned", "theirs", "alice"),
                put(3, "owned", "fresh", "alice"),
                remove(4, "owned", "theirs"),
                put(5, "inbox", "hello", "alice"),
                put(6, "inbox", "locked", "alice"),
                put(7, "docs:a", "k1", "alice"),
                remove(8, "owned", "mine"),
            ],
        )
        .await;
        // Same map and action, allowed and denied by the record.
        assert_eq!(passed, [1, 3, 5, 7, 8]);
        assert_eq!(rejected, [2, 4, 6]);
        // Every op but the one on docs:a was decided with its own record.
        assert_eq!(policy.per_op.load(Ordering::Relaxed), 7);
        assert_eq!(records.lookups.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn policies_that_cannot_tell_stay_per_op() {
        // A policy without `uniform_decision` is asked about every op.
        #[derive(Debug)]
        struct EvenKeys;
        impl Policy for EvenKeys {
            fn decide(&self, _: &Principal, _: Action, _: &str, key: Option<&str>) -> Decision {
                match key.and_then(|k| k.parse::<u64>().ok()) {
                    Some(n) if n % 2 == 0 => Decision::Allow,
                    _ => Decision::Deny("odd".into()),
                }
            }
        }
        let ops: Vec<Op> = (0..4).map(|i| put(i, "m", &i.to_string(), "x")).collect();
        let mut denied = Vec::new();
        let allowed = decide_ops(&EvenKeys, None, &alice(), &ops, &mut denied);
        assert_eq!(allowed, [true, false, true, false]);
        assert_eq!(denied.iter().map(|r| r.op_id).collect::<Vec<_>>(), [1, 3]);
    }
}
