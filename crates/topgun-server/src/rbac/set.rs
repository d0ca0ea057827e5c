//! The compiled, immutable policy set: validation, the index by first map segment and operation, and evaluation.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::path::Path;

use super::condition::{Condition, Env};
use super::def::{Effect, Operation, PolicyDef, PolicyFile};
use super::error::{PolicyError, PolicyLoadError};
use super::fields::FieldRules;
use super::pattern::Pattern;
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

/// The policies covering one action: those whose pattern starts with a
/// literal segment, by that segment, and the rest. Both lists hold
/// positions in definition order, ascending.
#[derive(Debug, Default)]
struct ActionIndex {
    by_first: HashMap<Box<str>, Vec<usize>>,
    general: Vec<usize>,
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
        }
    }

    /// Validates and compiles `defs`. Fails on the first invalid policy:
    /// an empty or duplicate id, no operations, an empty role or subject, a
    /// bad pattern, condition or field path, or field rules on a deny policy
    /// or on one without `read`.
    pub fn new(defs: Vec<PolicyDef>) -> Result<Self, PolicyError> {
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
            let first = policy.pattern.first_literal();
            let mut operations = def.operations.clone();
            operations.sort_by_key(|op| action_slot((*op).into()));
            operations.dedup();
            for op in operations {
                let slot = &mut index[action_slot(op.into())];
                match first {
                    Some(first) => slot
                        .by_first
                        .entry(first.into())
                        .or_default()
                        .push(position),
                    None => slot.general.push(position),
                }
            }
            compiled.push(policy);
        }
        Ok(PolicySet {
            defs,
            compiled,
            index,
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
        if precheck(req).is_some() {
            return false;
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
        flow.is_continue() && allowed
    }

    /// Calls `visit` for every policy, in definition order, that covers the
    /// action, applies to the principal and matches the map, with how its
    /// condition came out.
    fn scan(
        &self,
        req: &AccessRequest<'_>,
        mut visit: impl FnMut(usize, &Compiled, Outcome) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let index = &self.index[action_slot(req.action)];
        let first = req.map.split(':').next().unwrap_or_default();
        let keyed = index.by_first.get(first).map_or(&[][..], Vec::as_slice);
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
        for i in merge(keyed, &index.general) {
            let policy = &self.compiled[i];
            if !policy.applies_to(req.principal) || !policy.pattern.matches(req.map, req.principal)
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

/// The ascending union of two ascending lists of distinct positions.
fn merge<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || match (a.get(i), b.get(j)) {
        (Some(&x), Some(&y)) if x <= y => {
            i += 1;
            Some(x)
        }
        (_, Some(&y)) => {
            j += 1;
            Some(y)
        }
        (Some(&x), None) => {
            i += 1;
            Some(x)
        }
        (None, None) => None,
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
