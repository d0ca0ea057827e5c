//! The compiled, immutable policy set: validation, the index by first map segment and operation, and evaluation.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::path::Path;

use super::condition::{Condition, Env};
use super::def::{Effect, Operation, PolicyDef, PolicyFile};
use super::error::{PolicyError, PolicyLoadError};
use super::fields::FieldRules;
use super::pattern::{Lead, Pattern, Segment};
use super::{AccessRequest, Verdict, VerdictReason};
use crate::authz::{Action, is_reserved_map};

/// An immutable, validated set of policies, compiled for evaluation.
///
/// Built once per policy change (from a file at start, later from the admin
/// API); evaluation only reads it, so one set can be shared by every
/// session behind an `Arc`.
pub struct PolicySet {
    defs: Vec<PolicyDef>,
    compiled: Vec<Compiled>,
    /// One index per [`Action`], in the order `Read`, `Write`, `Remove`.
    index: [ActionIndex; 3],
    /// Whether some condition looks at `key`, `old` or `new`.
    needs_records: bool,
}

/// A policy ready to evaluate.
#[derive(Debug)]
struct Compiled {
    effect: Effect,
    roles: Box<[Box<str>]>,
    subjects: Box<[Box<str>]>,
    pattern: Pattern,
    condition: Option<Condition>,
    fields: Option<FieldRules>,
}

/// The policies covering one action, by what their pattern's first two
/// segments require of a map name. Each policy is in exactly one list;
/// every list holds positions in definition order, ascending.
#[derive(Debug, Default)]
struct ActionIndex {
    /// Patterns whose first segment is plain text, by that text.
    by_literal: HashMap<Box<str>, Bucket>,
    /// Patterns whose first segment is interpolated (`{sub}`,
    /// `{claims.tenant}`, `t-{sub}`), by that segment. A request looks into
    /// a bucket only when the segment, interpolated for its principal,
    /// equals the map's first segment: one check per bucket, not one per
    /// policy.
    by_interpolated: Vec<(Segment, Bucket)>,
    /// Patterns starting with `*` or `**`.
    general: Bucket,
}

/// Policies that share what their first segment requires, by their second
/// segment when it is plain text (see [`Pattern::second_literal`]).
#[derive(Debug, Default)]
struct Bucket {
    by_second: HashMap<Box<str>, Vec<usize>>,
    rest: Vec<usize>,
}

impl Bucket {
    fn push(&mut self, second: Option<&str>, position: usize) {
        match second {
            Some(second) => self
                .by_second
                .entry(second.into())
                .or_default()
                .push(position),
            None => self.rest.push(position),
        }
    }

    /// The policies that can match a map whose second segment is `second`.
    fn candidates(&self, second: Option<&str>) -> [&[usize]; 2] {
        let keyed = match second {
            Some(second) if !self.by_second.is_empty() => {
                self.by_second.get(second).map_or(&[][..], Vec::as_slice)
            }
            _ => &[],
        };
        [keyed, &self.rest]
    }
}

impl ActionIndex {
    fn push(&mut self, pattern: &Pattern, position: usize) {
        let second = pattern.second_literal();
        let bucket = match pattern.lead() {
            Lead::Literal(first) => self.by_literal.entry(first.into()).or_default(),
            Lead::Interpolated(segment) => {
                match self.by_interpolated.iter().position(|(s, _)| s == segment) {
                    Some(at) => &mut self.by_interpolated[at].1,
                    None => {
                        self.by_interpolated
                            .push((segment.clone(), Bucket::default()));
                        let last = self.by_interpolated.len() - 1;
                        &mut self.by_interpolated[last].1
                    }
                }
            }
            Lead::Any => &mut self.general,
        };
        bucket.push(second, position);
    }
}

/// How one candidate policy relates to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Applies: no condition, or its condition holds.
    Applies,
    /// The condition failed to evaluate (fail closed: a deny applies, an
    /// allow does not).
    Errored,
    /// A map-wide request and a condition that needs a record: decided per
    /// record.
    Deferred,
    /// The condition is false.
    Fails,
}

fn action_slot(action: Action) -> usize {
    match action {
        Action::Read => 0,
        Action::Write => 1,
        Action::Remove => 2,
    }
}

impl PolicySet {
    /// A set with no policies: every request is denied.
    pub fn empty() -> Self {
        PolicySet {
            defs: Vec::new(),
            compiled: Vec::new(),
            index: Default::default(),
            needs_records: false,
        }
    }

    /// Validates and compiles `defs`. Fails on the first invalid policy:
    /// an empty or duplicate id, no operations, an empty role or subject, a
    /// bad pattern, condition or field path, or field rules on a deny policy
    /// or on one without `read`.
    pub fn new(defs: Vec<PolicyDef>) -> Result<Self, PolicyError> {
        PolicySet::build(defs, ActionIndex::push)
    }

    /// A set without the index: every policy of an action is tried, in
    /// definition order, for every request. The reference the index is
    /// tested against.
    #[cfg(test)]
    pub(crate) fn unindexed(defs: Vec<PolicyDef>) -> Result<Self, PolicyError> {
        PolicySet::build(defs, |index, _, position| {
            index.general.rest.push(position);
        })
    }

    /// Validates and compiles `defs`, placing each policy in the index of
    /// every action it covers with `place`.
    fn build(
        defs: Vec<PolicyDef>,
        place: fn(&mut ActionIndex, &Pattern, usize),
    ) -> Result<Self, PolicyError> {
        let mut seen = HashSet::new();
        let mut compiled = Vec::with_capacity(defs.len());
        let mut index: [ActionIndex; 3] = Default::default();
        for (position, def) in defs.iter().enumerate() {
            if def.id.is_empty() {
                return Err(PolicyError::EmptyId { index: position });
            }
            if !seen.insert(def.id.as_str()) {
                return Err(PolicyError::DuplicateId { id: def.id.clone() });
            }
            let policy = compile(def)?;
            let mut operations = def.operations.clone();
            operations.sort_by_key(|op| action_slot((*op).into()));
            operations.dedup();
            for op in operations {
                place(
                    &mut index[action_slot(op.into())],
                    &policy.pattern,
                    position,
                );
            }
            compiled.push(policy);
        }
        let needs_records = compiled
            .iter()
            .any(|c| c.condition.as_ref().is_some_and(Condition::needs_record));
        Ok(PolicySet {
            defs,
            compiled,
            index,
            needs_records,
        })
    }

    /// Loads a policy file in JSON: `{"policies": [...]}` or a bare array.
    pub fn from_json_str(text: &str) -> Result<Self, PolicyLoadError> {
        let defs = if text.trim_start().starts_with('[') {
            serde_json::from_str::<Vec<PolicyDef>>(text)?
        } else {
            serde_json::from_str::<PolicyFile>(text)?.policies
        };
        Ok(PolicySet::new(defs)?)
    }

    /// Loads a policy file in TOML: `[[policies]]` tables.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyLoadError> {
        let file: PolicyFile = toml::from_str(text)?;
        Ok(PolicySet::new(file.policies)?)
    }

    /// Loads a policy file, JSON or TOML by its extension (`.json`, `.toml`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyLoadError> {
        let path = path.as_ref();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let toml = match extension.as_deref() {
            Some("json") => false,
            Some("toml") => true,
            _ => {
                return Err(PolicyLoadError::UnknownFormat {
                    path: path.to_owned(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|error| PolicyLoadError::Io {
            path: path.to_owned(),
            error,
        })?;
        if toml {
            PolicySet::from_toml_str(&text)
        } else {
            PolicySet::from_json_str(&text)
        }
    }

    /// The definitions, in order (for listing and persistence).
    pub fn defs(&self) -> &[PolicyDef] {
        &self.defs
    }

    /// The definition with this id.
    pub fn get(&self, id: &str) -> Option<&PolicyDef> {
        self.defs.iter().find(|d| d.id == id)
    }

    /// The number of policies.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the set has no policies (and so denies everything).
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Whether some policy's condition looks at `key`, `old` or `new`, so
    /// that decisions on records can depend on the stored and proposed
    /// values. Without one, a record request decides the same with or
    /// without them.
    pub fn needs_records(&self) -> bool {
        self.needs_records
    }

    /// The full verdict for a request, with the deciding policies and, for
    /// an allowed read, the effective field rules. See the module docs for
    /// the rules.
    pub fn evaluate(&self, req: &AccessRequest<'_>) -> Verdict {
        if let Some(reason) = precheck(req) {
            return Verdict::refused(reason);
        }
        let mut denies = Vec::new();
        let mut allows = Vec::new();
        let mut per_record = false;
        let _ = self.scan(req, |i, policy, outcome| {
            match (policy.effect, outcome) {
                (_, Outcome::Fails) => {}
                (_, Outcome::Deferred) => {
                    per_record = true;
                    if policy.effect == Effect::Allow {
                        allows.push(i);
                    }
                }
                (Effect::Deny, Outcome::Applies | Outcome::Errored) => denies.push(i),
                (Effect::Allow, Outcome::Applies) => allows.push(i),
                (Effect::Allow, Outcome::Errored) => {}
            }
            ControlFlow::Continue(())
        });
        // The scan goes index list by index list; the verdict names the
        // policies in definition order.
        denies.sort_unstable();
        allows.sort_unstable();
        let ids = |list: &[usize]| list.iter().map(|&i| self.defs[i].id.clone()).collect();
        if !denies.is_empty() {
            return Verdict {
                allowed: false,
                deciding: ids(&denies),
                fields: None,
                per_record: false,
                reason: VerdictReason::Denied,
            };
        }
        if allows.is_empty() {
            return Verdict {
                allowed: false,
                deciding: Vec::new(),
                fields: None,
                per_record,
                reason: VerdictReason::NoMatch,
            };
        }
        let fields = if req.action == Action::Read {
            FieldRules::combine(
                allows
                    .iter()
                    .filter_map(|&i| self.compiled[i].fields.as_ref()),
            )
        } else {
            None
        };
        Verdict {
            allowed: true,
            deciding: ids(&allows),
            fields,
            per_record,
            reason: VerdictReason::Allowed,
        }
    }

    /// Just whether the request is allowed: the same rules as
    /// [`PolicySet::evaluate`], without collecting ids or field rules, and
    /// without allocating. Stops at the first deny that applies.
    pub fn is_allowed(&self, req: &AccessRequest<'_>) -> bool {
        self.reason(req) == VerdictReason::Allowed
    }

    /// Why the request is allowed or denied: the verdict's
    /// [`Verdict::reason`], by the same rules as [`PolicySet::evaluate`],
    /// without collecting ids or field rules, and without allocating. Stops
    /// at the first deny that applies.
    pub fn reason(&self, req: &AccessRequest<'_>) -> VerdictReason {
        if let Some(reason) = precheck(req) {
            return reason;
        }
        let mut allowed = false;
        let flow = self.scan(req, |_, policy, outcome| {
            match (policy.effect, outcome) {
                (Effect::Deny, Outcome::Applies | Outcome::Errored) => {
                    return ControlFlow::Break(());
                }
                (Effect::Allow, Outcome::Applies | Outcome::Deferred) => allowed = true,
                _ => {}
            }
            ControlFlow::Continue(())
        });
        match (flow, allowed) {
            (ControlFlow::Break(()), _) => VerdictReason::Denied,
            (ControlFlow::Continue(()), true) => VerdictReason::Allowed,
            (ControlFlow::Continue(()), false) => VerdictReason::NoMatch,
        }
    }

    /// The reason every record request of `principal` doing `action` on
    /// `map` gets, whatever its key, stored and proposed value; `None` when
    /// records may be decided differently.
    ///
    /// That is so when no candidate policy (covering the action, for the
    /// principal, matching the map) has a condition over `key`, `old` or
    /// `new`: the rest of a request is the same for every record. It is
    /// also so when a deny applies whose condition, if any, does not look
    /// at the record: it applies to every record, and a deny wins.
    pub fn record_independent(
        &self,
        principal: &crate::authz::Principal,
        action: Action,
        map: &str,
    ) -> Option<VerdictReason> {
        let req = AccessRequest::new(principal, action, map);
        if let Some(reason) = precheck(&req) {
            return Some(reason);
        }
        let mut allowed = false;
        let mut per_record = false;
        let flow = self.scan(&req, |_, policy, outcome| {
            match (policy.effect, outcome) {
                (Effect::Deny, Outcome::Applies | Outcome::Errored) => {
                    return ControlFlow::Break(());
                }
                (_, Outcome::Deferred) => per_record = true,
                (Effect::Allow, Outcome::Applies) => allowed = true,
                _ => {}
            }
            ControlFlow::Continue(())
        });
        match (flow, per_record, allowed) {
            (ControlFlow::Break(()), _, _) => Some(VerdictReason::Denied),
            (ControlFlow::Continue(()), true, _) => None,
            (ControlFlow::Continue(()), false, true) => Some(VerdictReason::Allowed),
            (ControlFlow::Continue(()), false, false) => Some(VerdictReason::NoMatch),
        }
    }

    /// Calls `visit` once for every policy that covers the action, applies
    /// to the principal and matches the map, with how its condition came
    /// out. The order is that of the index's lists, not definition order.
    fn scan(
        &self,
        req: &AccessRequest<'_>,
        mut visit: impl FnMut(usize, &Compiled, Outcome) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let index = &self.index[action_slot(req.action)];
        let mut segments = req.map.split(':');
        let first = segments.next().unwrap_or_default();
        let second = segments.next();
        let env = Env {
            principal: req.principal,
            action: req.action,
            key: req.key,
            old: req.old,
            new: if req.action == Action::Write {
                req.new
            } else {
                None
            },
        };
        let map_wide = req.key.is_none();
        let mut consider = |list: &[usize]| -> ControlFlow<()> {
            for &i in list {
                let policy = &self.compiled[i];
                if !policy.applies_to(req.principal)
                    || !policy.pattern.matches(req.map, req.principal)
                {
                    continue;
                }
                let outcome = match &policy.condition {
                    None => Outcome::Applies,
                    Some(c) if map_wide && c.needs_record() => Outcome::Deferred,
                    Some(c) => match c.eval(&env) {
                        Ok(true) => Outcome::Applies,
                        Ok(false) => Outcome::Fails,
                        Err(_) => Outcome::Errored,
                    },
                };
                visit(i, policy, outcome)?;
            }
            ControlFlow::Continue(())
        };
        if let Some(bucket) = index.by_literal.get(first) {
            for list in bucket.candidates(second) {
                consider(list)?;
            }
        }
        for (segment, bucket) in &index.by_interpolated {
            if segment.matches_one(first, req.principal) {
                for list in bucket.candidates(second) {
                    consider(list)?;
                }
            }
        }
        for list in index.general.candidates(second) {
            consider(list)?;
        }
        ControlFlow::Continue(())
    }
}

/// The requests refused before any policy is looked at.
fn precheck(req: &AccessRequest<'_>) -> Option<VerdictReason> {
    if is_reserved_map(req.map) {
        Some(VerdictReason::Reserved)
    } else if !req.principal.authenticated {
        Some(VerdictReason::Unauthenticated)
    } else {
        None
    }
}

impl Compiled {
    /// Whether the policy's `roles`/`subjects` include the principal.
    fn applies_to(&self, principal: &crate::authz::Principal) -> bool {
        if self.roles.is_empty() && self.subjects.is_empty() {
            return true;
        }
        self.subjects.iter().any(|s| **s == *principal.sub)
            || self
                .roles
                .iter()
                .any(|r| principal.roles.iter().any(|have| **r == **have))
    }
}

/// Validates and compiles one policy.
fn compile(def: &PolicyDef) -> Result<Compiled, PolicyError> {
    let id = || def.id.clone();
    if def.operations.is_empty() {
        return Err(PolicyError::EmptyOperations { id: id() });
    }
    if def.roles.iter().chain(&def.subjects).any(String::is_empty) {
        return Err(PolicyError::EmptyPrincipalName { id: id() });
    }
    let pattern =
        Pattern::parse(&def.pattern).map_err(|error| PolicyError::Pattern { id: id(), error })?;
    let condition = def
        .condition
        .as_deref()
        .map(Condition::parse)
        .transpose()
        .map_err(|error| PolicyError::Condition { id: id(), error })?;
    let fields = match &def.fields {
        None => None,
        Some(_) if def.effect == Effect::Deny => {
            return Err(PolicyError::FieldsOnDeny { id: id() });
        }
        Some(_) if !def.operations.contains(&Operation::Read) => {
            return Err(PolicyError::FieldsWithoutRead { id: id() });
        }
        Some(fields) => {
            Some(
                FieldRules::from_def(fields).map_err(|bad| PolicyError::FieldPath {
                    id: id(),
                    path: bad.path,
                })?,
            )
        }
    };
    Ok(Compiled {
        effect: def.effect,
        roles: def.roles.iter().map(|r| r.as_str().into()).collect(),
        subjects: def.subjects.iter().map(|s| s.as_str().into()).collect(),
        pattern,
        condition,
        fields,
    })
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "policies",
                &self.defs.iter().map(|d| &d.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet::empty()
    }
}
