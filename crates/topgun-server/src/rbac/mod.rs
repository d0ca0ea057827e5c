//! The RBAC policy engine: validated, compiled policies that decide who may read, write and remove what, with conditions and field-level read rules.
//!
//! Pure and synchronous: no I/O except [`PolicySet::from_file`], no clock,
//! no knowledge of sessions. The integration into the write pipeline, live
//! queries and sync is a separate step; it calls [`RbacPolicy::evaluate`]
//! per op and per record sent out, and [`FieldRules::redact`] on every
//! record that leaves the server.
//!
//! # Policies
//!
//! A [`PolicyDef`] has an `id`, an `effect` (`allow` or `deny`), who it is
//! for (`roles` matched against the token's `roles`, `subjects` against its
//! `sub`; a principal matching either list is in; both empty means every
//! authenticated principal), a map `pattern`, the `operations` it covers
//! (`read`, `write`, `remove`: a delete is a `remove`, never a `write`), an
//! optional `condition`, and, for allow policies covering `read`, optional
//! `fields` rules. A [`PolicySet`] is built from a list of them and refuses
//! invalid ones with a [`PolicyError`] naming the policy (and, for patterns
//! and conditions, the character position).
//!
//! # Map patterns
//!
//! ```text
//! pattern  := segment ( ":" segment )*
//! segment  := "*" | "**" | piece+
//! piece    := text | "{sub}" | "{claims." name ( "." name )* "}"
//! text     := any characters but ":", "*", "{", "}"
//! ```
//!
//! A map name is split at `:` into segments. `*` matches exactly one
//! segment (an empty one too); `**` matches any number of segments,
//! including none, anywhere in the pattern (`a:**` matches `a`, `a:b`,
//! `a:b:c`; `a:**:z` matches `a:z` and `a:b:c:z`). `*` and `**` must be whole
//! segments. Other segments must equal the map segment exactly, after
//! interpolation: `{sub}` is the principal's subject, `{claims.a.b}` the
//! claim at that dotted path, if it is a string or a number (numbers in
//! their JSON form). An interpolated value is matched literally: a `*` in
//! it matches only a `*`, and a value containing `:` never matches (map
//! segments contain none). A missing claim, a claim of another type, or an
//! empty value makes the pattern not match. Patterns starting with `$` are
//! refused: maps whose names start with `$` are reserved and are never
//! reachable by clients, whatever the policies say.
//!
//! # Conditions
//!
//! An expression over:
//! - `auth`: the token's claims; `auth.sub` and `auth.roles` are the verified
//!   subject and roles, `auth.<claim>` any other claim;
//! - `key`: the record key (a string);
//! - `old`: the stored value, `null` when there is none;
//! - `new`: the proposed value for a `write`, `null` for reads and removes;
//! - `op`: `"read"`, `"write"` or `"remove"`.
//!
//! Literals: double-quoted strings with JSON escapes, integers, floats,
//! `true`, `false`, `null`, arrays `[a, b]` (of any expressions). Operators,
//! loosest first: `||`; `&&`; `==` `!=` `<` `<=` `>` `>=` `in` (not
//! chained); `!`; member access `.name`, `["name"]`, `[index]`. The grammar
//! is in the `condition` module.
//!
//! Semantics: a member of something that has none (a missing field, `null`,
//! a scalar) is `null`. `==`/`!=` are deep equality; values of different
//! kinds are unequal, numbers compare by value (`1 == 1.0`). `<` and friends
//! need two numbers or two strings (byte order). `x in array` is membership
//! by `==`; `s in string` is substring. `&&`/`||` short-circuit left to
//! right and need booleans, as do `!` and the whole condition.
//!
//! Checked at load: syntax (with the position), unknown identifiers, member
//! access on `key`, `op` or `auth.sub`, comparisons whose operand types are
//! known to be incompatible (`"a" == 1`, `key < 3`, `old.n > null`), `in`
//! with a right side that is not an array or string, `&&`/`||`/`!` on
//! non-boolean literals or comparisons known not to be booleans, `op`
//! compared with a string that is no operation name, nesting deeper than
//! [`MAX_CONDITION_DEPTH`], conditions longer than [`MAX_CONDITION_LEN`].
//!
//! At run time a condition that fails to evaluate (a non-boolean where a
//! boolean is needed, an ordering comparison with `null` or a missing
//! field, `in` on a number, ...) fails closed: an allow policy with such a
//! condition does not allow, and a deny policy with such a condition
//! **applies** (denies).
//!
//! # Evaluation
//!
//! 1. A map name starting with `$` is denied ([`VerdictReason::Reserved`]);
//!    so is every request of an unauthenticated principal
//!    ([`VerdictReason::Unauthenticated`]): RBAC is for servers with auth on.
//! 2. The candidate policies are those covering the action, for the
//!    principal, whose pattern matches the map.
//! 3. A candidate applies if it has no condition or its condition holds.
//! 4. Any applying deny wins: denied, deciding = every applying deny.
//!    Otherwise any applying allow: allowed, deciding = every applying
//!    allow. Otherwise denied, deciding empty ([`VerdictReason::NoMatch`]).
//!
//! Map-wide requests (no `key`, as for a subscription) can not decide
//! conditions that look at `key`, `old` or `new`: such policies are treated
//! as applying provisionally (an allow counts as allowing, a deny is set
//! aside), and the verdict says [`Verdict::per_record`]; the caller then
//! evaluates each record with its key and value. Conditions over `auth` and
//! `op` alone are decided map-wide.
//!
//! # Field rules
//!
//! An allowed read's effective [`FieldRules`] combine the `fields` of every
//! applying allow policy so that the principal sees only what *every* one
//! of them lets through: allow-lists intersect (a field passes if each
//! allow-list covers it; a policy without an allow-list does not
//! constrain), deny-lists unite, and the deny-list applies after the
//! allow-list. A path covers everything below it. A consequence to keep in
//! mind: a field-restricted policy that also matches an administrator
//! restricts the administrator; scope such policies by role. See
//! [`FieldRules::redact`] for how rules apply to values (non-map values
//! under any restriction are dropped whole).

mod condition;
mod def;
mod error;
mod fields;
mod managed;
mod pattern;
mod set;

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

use topgun_core::Value;

pub use condition::{MAX_DEPTH as MAX_CONDITION_DEPTH, MAX_LEN as MAX_CONDITION_LEN};
pub use def::{Effect, FieldsDef, Operation, PolicyDef, PolicyFile};
pub use error::{
    ConditionError, ConditionErrorKind, InvalidFieldPath, PatternError, PatternErrorKind,
    PolicyError, PolicyLoadError,
};
pub use fields::FieldRules;
pub use managed::{ManageError, ManagedPolicies, POLICIES_META_KEY};
pub use set::PolicySet;

use crate::authz::{Action, Decision, Policy, Principal, RESERVED_MAP_PREFIX};

/// One access to decide.
///
/// With `key: None` the request is map-wide (a subscription, a sync of the
/// whole map): conditions that need a record are not evaluated and the
/// verdict is provisional ([`Verdict::per_record`]). With a key, `old` is the
/// stored value (`None` when absent) and `new` the proposed value of a
/// write (ignored for reads and removes).
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What they want to do.
    pub action: Action,
    /// The map.
    pub map: &'a str,
    /// The record key, or `None` for a map-wide request.
    pub key: Option<&'a str>,
    /// The stored value, if any.
    pub old: Option<&'a Value>,
    /// The proposed value of a write.
    pub new: Option<&'a Value>,
}

impl<'a> AccessRequest<'a> {
    /// A map-wide request.
    pub fn new(principal: &'a Principal, action: Action, map: &'a str) -> Self {
        AccessRequest {
            principal,
            action,
            map,
            key: None,
            old: None,
            new: None,
        }
    }

    /// The same request for one record.
    #[must_use]
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// The same request with the stored value.
    #[must_use]
    pub fn old(mut self, old: Option<&'a Value>) -> Self {
        self.old = old;
        self
    }

    /// The same request with the proposed value.
    #[must_use]
    pub fn new_value(mut self, new: Option<&'a Value>) -> Self {
        self.new = new;
        self
    }
}

/// The engine's answer to an [`AccessRequest`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The ids of the deciding policies, in definition order: every deny
    /// that applied when denied by policy, every allow that applied when
    /// allowed, none otherwise.
    pub deciding: Vec<String>,
    /// For an allowed read, the effective field rules to apply to what is
    /// sent; `None` when nothing is restricted.
    pub fields: Option<FieldRules>,
    /// For a map-wide request: some matching policy has a condition that
    /// needs a record, so each record must be checked with its own request
    /// (and that request's `fields` applied).
    pub per_record: bool,
    /// Why.
    pub reason: VerdictReason,
}

impl Verdict {
    fn refused(reason: VerdictReason) -> Self {
        Verdict {
            allowed: false,
            deciding: Vec::new(),
            fields: None,
            per_record: false,
            reason,
        }
    }
}

/// Why a verdict came out as it did.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictReason {
    /// At least one allow policy applies and no deny does.
    Allowed,
    /// A deny policy applies (or its condition failed to evaluate).
    Denied,
    /// No policy applies: denied by default.
    NoMatch,
    /// The map is reserved (`$` prefix): never reachable by clients.
    Reserved,
    /// The principal is not authenticated.
    Unauthenticated,
}

/// The RBAC engine behind the [`Policy`] seam: the current [`PolicySet`],
/// swappable at run time (policy changes take effect for the next request).
#[derive(Debug, Default)]
pub struct RbacPolicy {
    set: RwLock<Arc<PolicySet>>,
}

impl RbacPolicy {
    /// An engine enforcing `set`.
    pub fn new(set: PolicySet) -> Self {
        RbacPolicy {
            set: RwLock::new(Arc::new(set)),
        }
    }

    /// The current policy set.
    pub fn policies(&self) -> Arc<PolicySet> {
        // The lock only guards an `Arc` swap, which cannot be left half
        // done, so a poisoned lock still holds a valid set.
        Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the policy set; returns the previous one.
    pub fn replace(&self, set: PolicySet) -> Arc<PolicySet> {
        let mut current = self.set.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, Arc::new(set))
    }

    /// The full verdict for a request (see [`PolicySet::evaluate`]).
    pub fn evaluate(&self, req: &AccessRequest<'_>) -> Verdict {
        self.policies().evaluate(req)
    }

    /// Whether a request is allowed (see [`PolicySet::is_allowed`]).
    pub fn is_allowed(&self, req: &AccessRequest<'_>) -> bool {
        self.policies().is_allowed(req)
    }
}

fn deny_message(action: Action, reason: VerdictReason) -> String {
    match reason {
        VerdictReason::Reserved => {
            format!("map names starting with {RESERVED_MAP_PREFIX:?} are reserved")
        }
        VerdictReason::Unauthenticated => "not authenticated".to_owned(),
        VerdictReason::Denied => format!("{} denied by policy", Operation::from(action).as_str()),
        _ => format!("no policy allows {}", Operation::from(action).as_str()),
    }
}

/// The decision a verdict with this reason makes. The messages do not name
/// policies: they go to clients.
fn decision(action: Action, reason: VerdictReason) -> Decision {
    if reason == VerdictReason::Allowed {
        Decision::Allow
    } else {
        Decision::Deny(deny_message(action, reason))
    }
}

/// One policy set as a [`Policy`]; [`RbacPolicy`] and [`ManagedPolicies`]
/// decide with the set in force.
impl Policy for PolicySet {
    /// The no-record case: a map-wide request without a key, a record
    /// request with the key but without values (conditions see `old` and
    /// `new` as null, so ones that need them fail closed).
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: Option<&str>,
    ) -> Decision {
        let mut req = AccessRequest::new(principal, action, map);
        req.key = key;
        decision(action, self.reason(&req))
    }

    /// The record case: conditions see the stored and proposed values.
    fn decide_record(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Decision {
        let req = AccessRequest::new(principal, action, map)
            .key(key)
            .old(old)
            .new_value(new);
        decision(action, self.reason(&req))
    }

    /// Reads: the record must be readable (conditions see it as `old`), and
    /// the allowing policies' field rules strip what the principal may not
    /// see.
    fn read_view<'v>(
        &self,
        principal: &Principal,
        map: &str,
        key: &str,
        value: &'v Value,
    ) -> Option<Cow<'v, Value>> {
        let req = AccessRequest::new(principal, Action::Read, map)
            .key(key)
            .old(Some(value));
        let verdict = self.evaluate(&req);
        if !verdict.allowed {
            return None;
        }
        match verdict.fields {
            None => Some(Cow::Borrowed(value)),
            Some(rules) if rules.is_unrestricted() => Some(Cow::Borrowed(value)),
            Some(rules) => rules.redact(value).map(Cow::Owned),
        }
    }

    fn needs_values(&self) -> bool {
        self.needs_records()
    }

    /// Known when no candidate policy's condition looks at the record (see
    /// [`PolicySet::record_independent`]).
    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        let reason = self.record_independent(principal, action, map)?;
        Some(decision(action, reason))
    }
}

/// Decides with the set in force at the call.
impl Policy for RbacPolicy {
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
        key: Option<&str>,
    ) -> Decision {
        self.policies().decide(principal, action, map, key)
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
        self.policies()
            .decide_record(principal, action, map, key, old, new)
    }

    fn read_view<'v>(
        &self,
        principal: &Principal,
        map: &str,
        key: &str,
        value: &'v Value,
    ) -> Option<Cow<'v, Value>> {
        self.policies().read_view(principal, map, key, value)
    }

    fn needs_values(&self) -> bool {
        self.policies().needs_values()
    }

    fn uniform_decision(
        &self,
        principal: &Principal,
        action: Action,
        map: &str,
    ) -> Option<Decision> {
        self.policies().uniform_decision(principal, action, map)
    }
}

#[cfg(test)]
mod tests;
