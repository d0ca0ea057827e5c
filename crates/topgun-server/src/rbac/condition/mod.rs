//! Policy conditions: a small expression language, parsed and type-checked when a policy is loaded and evaluated per request.
//!
//! The grammar, precedence from loosest to tightest:
//!
//! ```text
//! condition  := or
//! or         := and ( "||" and )*
//! and        := comparison ( "&&" comparison )*
//! comparison := unary ( ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" ) unary )?
//! unary      := "!" unary | primary
//! primary    := literal | path | "(" or ")" | "[" ( or ( "," or )* ","? )? "]"
//! path       := root ( "." name | "[" string "]" | "[" integer "]" )*
//! root       := "auth" | "key" | "old" | "new" | "op"
//! literal    := string | integer | float | "true" | "false" | "null"
//! ```
//!
//! Comparisons do not chain (`a == b == c` is an error). Nesting of
//! parentheses, arrays and `!` is limited to [`MAX_DEPTH`] levels and a
//! condition to [`MAX_LEN`] characters. The AST keeps `&&` and `||` chains
//! flat, so no input builds a tree deeper than the nesting limit.

mod check;
mod eval;
mod lexer;
mod parser;

pub(crate) use eval::{Env, EvalError};

use crate::rbac::error::{ConditionError, ConditionErrorKind};

/// The deepest nesting of parentheses, arrays and `!` a condition may have.
pub const MAX_DEPTH: usize = 32;

/// The longest condition, in characters.
pub const MAX_LEN: usize = 4096;

/// A parsed, type-checked condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    expr: Expr,
    needs_record: bool,
}

impl Condition {
    /// Parses and type-checks `source`.
    pub(crate) fn parse(source: &str) -> Result<Condition, ConditionError> {
        if source.chars().nth(MAX_LEN).is_some() {
            return Err(ConditionError {
                position: MAX_LEN,
                kind: ConditionErrorKind::TooLong { max: MAX_LEN },
            });
        }
        let tokens = lexer::tokenize(source)?;
        let expr = parser::parse(&tokens, source.chars().count())?;
        check::check(&expr)?;
        let needs_record = expr.mentions_record();
        Ok(Condition { expr, needs_record })
    }

    /// Whether the condition looks at `key`, `old` or `new`, so that it can
    /// only be decided per record (not for a map-wide request).
    pub(crate) fn needs_record(&self) -> bool {
        self.needs_record
    }

    /// Evaluates the condition; an error means it could not be decided
    /// (the caller fails closed).
    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<bool, EvalError> {
        eval::truth(&self.expr, env)
    }
}

/// An expression. `&&` and `||` chains are flat lists.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    /// A literal.
    Lit { value: Lit, position: usize },
    /// A root and member steps.
    Path {
        root: Root,
        steps: Box<[Step]>,
        position: usize,
    },
    /// An array literal; its items are evaluated when needed.
    Array { items: Box<[Expr]>, position: usize },
    /// `!operand`.
    Not { operand: Box<Expr>, position: usize },
    /// All of the items (short-circuit, left to right).
    And(Box<[Expr]>),
    /// Any of the items (short-circuit, left to right).
    Or(Box<[Expr]>),
    /// A comparison; `position` is the operator's.
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        position: usize,
    },
}

impl Expr {
    /// Where the expression starts (for `&&`/`||`, where its first item
    /// does).
    fn position(&self) -> usize {
        match self {
            Expr::Lit { position, .. }
            | Expr::Path { position, .. }
            | Expr::Array { position, .. }
            | Expr::Not { position, .. } => *position,
            Expr::Compare { left, .. } => left.position(),
            Expr::And(items) | Expr::Or(items) => items.first().map_or(0, Expr::position),
        }
    }

    /// Whether any path starts at `key`, `old` or `new`.
    fn mentions_record(&self) -> bool {
        match self {
            Expr::Lit { .. } => false,
            Expr::Path { root, .. } => matches!(root, Root::Key | Root::Old | Root::New),
            Expr::Array { items, .. } | Expr::And(items) | Expr::Or(items) => {
                items.iter().any(Expr::mentions_record)
            }
            Expr::Not { operand, .. } => operand.mentions_record(),
            Expr::Compare { left, right, .. } => left.mentions_record() || right.mentions_record(),
        }
    }
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

/// Where a path starts. `auth.sub` and `auth.roles` are their own roots:
/// they come from the verified principal, not from the claims map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    /// The claims object.
    Auth,
    /// The principal's subject.
    AuthSub,
    /// The principal's roles.
    AuthRoles,
    /// The record key.
    Key,
    /// The stored value, or null.
    Old,
    /// The proposed value, or null.
    New,
    /// The operation's name.
    Op,
}

/// One member step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `["name"]`.
    Field(Box<str>),
    /// `[index]`.
    Index(usize),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
        }
    }
}
