//! Policy definitions as written in policy files and persisted by the server (serde, JSON and TOML).

use serde::{Deserialize, Serialize};

use crate::authz::Action;

/// One policy as written: who, which maps, which operations, under which
/// condition, and (for reads) which fields.
///
/// JSON:
///
/// ```json
/// { "id": "own-notes", "effect": "allow", "roles": ["user"],
///   "pattern": "notes:{sub}", "operations": ["read", "write", "remove"],
///   "condition": "old == null || old.owner == auth.sub",
///   "fields": { "deny": ["internal"] } }
/// ```
///
/// Unknown fields are rejected, so a misspelt `condtion` can not silently
/// widen a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDef {
    /// Unique, non-empty name; verdicts report the deciding policies by id.
    pub id: String,
    /// Whether the policy allows or denies.
    pub effect: Effect,
    /// Roles (from the token's `roles` claim) the policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Subjects (the token's `sub`) the policy applies to. With both `roles`
    /// and `subjects` empty the policy applies to every authenticated
    /// principal; otherwise to a principal that has one of the roles *or* is
    /// one of the subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// The map pattern (see the module docs for the grammar).
    pub pattern: String,
    /// The operations covered; must not be empty.
    pub operations: Vec<Operation>,
    /// An optional condition (see the module docs for the language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Optional field rules for reads (allow policies with `read` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldsDef>,
}

impl PolicyDef {
    /// A policy for everyone authenticated, with no condition and no field
    /// rules; narrow it with the builder methods.
    pub fn new(
        id: impl Into<String>,
        effect: Effect,
        pattern: impl Into<String>,
        operations: impl IntoIterator<Item = Operation>,
    ) -> Self {
        PolicyDef {
            id: id.into(),
            effect,
            roles: Vec::new(),
            subjects: Vec::new(),
            pattern: pattern.into(),
            operations: operations.into_iter().collect(),
            condition: None,
            fields: None,
        }
    }

    /// Restricts the policy to these roles.
    #[must_use]
    pub fn roles<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts the policy to these subjects.
    #[must_use]
    pub fn subjects<S: Into<String>>(mut self, subjects: impl IntoIterator<Item = S>) -> Self {
        self.subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a condition.
    #[must_use]
    pub fn condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// Adds field rules.
    #[must_use]
    pub fn fields(mut self, fields: FieldsDef) -> Self {
        self.fields = Some(fields);
        self
    }
}

/// Whether a policy allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The policy grants access when it applies.
    Allow,
    /// The policy refuses access when it applies; a deny wins over every
    /// allow.
    Deny,
}

/// An operation a policy covers, as written in policy files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Reading records: subscriptions, sync, every record sent out.
    Read,
    /// Creating or changing a record.
    Write,
    /// Deleting a record (a tombstone write or an OR remove); distinct from
    /// `write`.
    Remove,
}

impl Operation {
    /// The name used in policy files and in conditions (`op == "read"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Remove => "remove",
        }
    }
}

impl From<Action> for Operation {
    fn from(action: Action) -> Self {
        match action {
            Action::Read => Operation::Read,
            Action::Write => Operation::Write,
            Action::Remove => Operation::Remove,
        }
    }
}

impl From<Operation> for Action {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Read => Action::Read,
            Operation::Write => Action::Write,
            Operation::Remove => Action::Remove,
        }
    }
}

/// Field rules for reads, as written: `{"allow": [paths]}` lets only these
/// fields leave the server, `{"deny": [paths]}` strips these. Paths are
/// dotted field paths into map values (`"address.city"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldsDef {
    /// Only these fields (and everything under them) are sent.
    Allow(Vec<String>),
    /// These fields (and everything under them) are stripped.
    Deny(Vec<String>),
}

/// The shape of a policy file: `{"policies": [...]}` in JSON, or
/// `[[policies]]` tables in TOML. A JSON file may also be a bare array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The policies, in order.
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
}
