//! Typed errors of the RBAC engine: invalid policies, bad patterns and conditions, and policy files that cannot be loaded.

use std::fmt;
use std::path::PathBuf;

/// Why a policy set could not be built from its definitions.
///
/// Every variant about one policy names it by its `id`; pattern and condition
/// errors also carry a position (see [`PatternError`] and
/// [`ConditionError`]). Building stops at the first invalid policy.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A policy has an empty `id`; `index` is its place in the list,
    /// counted from 0.
    #[error("policy #{index} has an empty id")]
    EmptyId {
        /// The policy's place in the list, from 0.
        index: usize,
    },
    /// Two policies have the same `id`.
    #[error("duplicate policy id {id:?}")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A policy lists no operations, so it could never apply.
    #[error("policy {id:?} lists no operations")]
    EmptyOperations {
        /// The policy's id.
        id: String,
    },
    /// A policy lists an empty string among its `roles` or `subjects`.
    #[error("policy {id:?} lists an empty role or subject")]
    EmptyPrincipalName {
        /// The policy's id.
        id: String,
    },
    /// A policy's map pattern is invalid.
    #[error("policy {id:?}: bad pattern at position {}: {}", .error.position, .error.kind)]
    Pattern {
        /// The policy's id.
        id: String,
        /// What is wrong, and where.
        #[source]
        error: PatternError,
    },
    /// A policy's condition does not parse or does not type-check.
    #[error("policy {id:?}: bad condition at position {}: {}", .error.position, .error.kind)]
    Condition {
        /// The policy's id.
        id: String,
        /// What is wrong, and where.
        #[source]
        error: ConditionError,
    },
    /// A field path in a policy's `fields` rules is empty or has an empty
    /// segment (`"a..b"`, `".a"`).
    #[error("policy {id:?}: bad field path {path:?}")]
    FieldPath {
        /// The policy's id.
        id: String,
        /// The offending path.
        path: String,
    },
    /// A deny policy has `fields` rules; field rules only narrow what an
    /// allow policy lets through.
    #[error("policy {id:?}: only allow policies can have field rules")]
    FieldsOnDeny {
        /// The policy's id.
        id: String,
    },
    /// A policy has `fields` rules but does not cover `read`, the only
    /// operation they apply to.
    #[error("policy {id:?}: field rules need the read operation")]
    FieldsWithoutRead {
        /// The policy's id.
        id: String,
    },
}

impl PolicyError {
    /// The id of the policy at fault (`None` for [`PolicyError::EmptyId`]).
    pub fn policy_id(&self) -> Option<&str> {
        match self {
            Self::EmptyId { .. } => None,
            Self::DuplicateId { id }
            | Self::EmptyOperations { id }
            | Self::EmptyPrincipalName { id }
            | Self::Pattern { id, .. }
            | Self::Condition { id, .. }
            | Self::FieldPath { id, .. }
            | Self::FieldsOnDeny { id }
            | Self::FieldsWithoutRead { id } => Some(id),
        }
    }

    /// The character position of a pattern or condition error, counted in
    /// characters (not bytes) from 0.
    pub fn position(&self) -> Option<usize> {
        match self {
            Self::Pattern { error, .. } => Some(error.position),
            Self::Condition { error, .. } => Some(error.position),
            _ => None,
        }
    }
}

/// An invalid map pattern: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {kind}")]
pub struct PatternError {
    /// Character offset into the pattern, from 0.
    pub position: usize,
    /// What is wrong.
    pub kind: PatternErrorKind,
}

/// What is wrong with a map pattern.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// The pattern is empty.
    Empty,
    /// A segment is empty: two `:` in a row, or a leading or trailing `:`.
    EmptySegment,
    /// `*` or `**` is part of a segment instead of the whole of it (`a*`,
    /// `x**y`), or a segment has three or more stars.
    PartialWildcard,
    /// A `{` has no closing `}` within its segment.
    UnclosedBrace,
    /// A `}` has no opening `{`.
    StrayBrace,
    /// The text between braces is neither `sub` nor `claims.<path>` with
    /// non-empty path segments.
    UnknownInterpolation(String),
    /// The pattern starts with the reserved map prefix `$`; reserved maps are
    /// never reachable by clients, so such a policy could never apply.
    Reserved,
}

impl fmt::Display for PatternErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the pattern is empty"),
            Self::EmptySegment => f.write_str("empty segment (`::`, or a leading or trailing `:`)"),
            Self::PartialWildcard => {
                f.write_str("`*` and `**` must be a whole segment (`a:*:b`, `a:**`)")
            }
            Self::UnclosedBrace => f.write_str("`{` without a closing `}` in its segment"),
            Self::StrayBrace => f.write_str("`}` without an opening `{`"),
            Self::UnknownInterpolation(text) => write!(
                f,
                "unknown interpolation `{{{text}}}`; expected `{{sub}}` or `{{claims.<path>}}`"
            ),
            Self::Reserved => f.write_str("maps starting with `$` are reserved"),
        }
    }
}

/// An invalid condition: what is wrong and where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("at position {position}: {kind}")]
pub struct ConditionError {
    /// Character offset into the condition, from 0.
    pub position: usize,
    /// What is wrong.
    pub kind: ConditionErrorKind,
}

/// What is wrong with a condition: a syntax error or a type error found
/// when the policy is loaded.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionErrorKind {
    /// The condition is longer than the limit (in characters).
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Parentheses, arrays and `!` are nested deeper than the limit.
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A character that starts no token (a single `=`, `&` or `|`, `'`, ...).
    UnexpectedChar(char),
    /// A string literal has no closing `"`.
    UnterminatedString,
    /// A string literal has an unknown or malformed escape sequence (or a
    /// `\u` escape naming a lone surrogate).
    InvalidEscape,
    /// A number literal is malformed, out of the 64-bit integer range, or
    /// not a finite float.
    InvalidNumber,
    /// A token that does not fit here.
    UnexpectedToken {
        /// The token found, as written.
        found: String,
        /// What the parser expected instead.
        expected: &'static str,
    },
    /// The condition ends too early.
    UnexpectedEnd {
        /// What the parser expected.
        expected: &'static str,
    },
    /// An identifier that is neither a root (`auth`, `key`, `old`, `new`,
    /// `op`) nor a literal (`true`, `false`, `null`).
    UnknownIdentifier(String),
    /// Member access on something that has no members (`key.x`, `op[0]`,
    /// `auth.sub.x`).
    NoMembers(&'static str),
    /// Two operands whose types can never be compared this way (`"a" == 1`,
    /// `key < 3`, `old.n > null`).
    TypeMismatch {
        /// The operator.
        op: &'static str,
        /// The left operand's type.
        left: &'static str,
        /// The right operand's type.
        right: &'static str,
    },
    /// `op` compared with a string that is not an operation name (`op ==
    /// "delete"`): such a comparison could never hold.
    UnknownOperation(String),
    /// `&&`, `||` or `!` applied to something that is known not to be a
    /// boolean (`1 && true`, `!"x"`), or a whole condition that is not one.
    NotBoolean {
        /// The operator, or `"condition"` for the whole expression.
        op: &'static str,
        /// The operand's type.
        found: &'static str,
    },
}

impl fmt::Display for ConditionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "the condition is longer than {max} characters"),
            Self::TooDeep { max } => write!(f, "nesting deeper than {max} levels"),
            Self::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            Self::UnterminatedString => f.write_str("unterminated string"),
            Self::InvalidEscape => f.write_str("invalid escape sequence"),
            Self::InvalidNumber => f.write_str("invalid number"),
            Self::UnexpectedToken { found, expected } => {
                write!(f, "unexpected `{found}`, expected {expected}")
            }
            Self::UnexpectedEnd { expected } => write!(f, "unexpected end, expected {expected}"),
            Self::UnknownIdentifier(name) => write!(
                f,
                "unknown identifier `{name}` (known: auth, key, old, new, op, true, false, null)"
            ),
            Self::NoMembers(what) => write!(f, "{what} has no members"),
            Self::TypeMismatch { op, left, right } => {
                write!(f, "`{op}` cannot compare {left} with {right}")
            }
            Self::UnknownOperation(name) => {
                write!(f, "{name:?} is not an operation (read, write, remove)")
            }
            Self::NotBoolean { op, found } => write!(f, "{op} needs a boolean, found {found}"),
        }
    }
}

/// A field path that is empty or has an empty segment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad field path {path:?}: paths are non-empty names separated by single dots")]
pub struct InvalidFieldPath {
    /// The offending path.
    pub path: String,
}

/// Why a policy file could not be loaded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The file's extension is neither `.json` nor `.toml`.
    #[error("policy file {} must end in .json or .toml", .path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The JSON is malformed or does not have the policy file's shape.
    #[error("policy file is not valid policy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The TOML is malformed or does not have the policy file's shape.
    #[error("policy file is not valid policy TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The file parsed, but a policy in it is invalid.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}
