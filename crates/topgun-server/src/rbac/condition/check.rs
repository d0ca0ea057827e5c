//! The load-time type check of conditions: what can be known about operand types before any data is seen.

use super::{CmpOp, Expr, Lit, Root, Step};
use crate::rbac::error::{ConditionError, ConditionErrorKind};

/// A static type; `Any` is whatever claims and records hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    Null,
    Array,
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Null => "null",
            Ty::Array => "an array",
            Ty::Any => "a value",
        }
    }
}

/// The operation names `op` can hold.
const OPERATIONS: [&str; 3] = ["read", "write", "remove"];

/// Checks a whole condition: it must be able to be a boolean.
pub(super) fn check(expr: &Expr) -> Result<(), ConditionError> {
    let ty = type_of(expr)?;
    if matches!(ty, Ty::Bool | Ty::Any) {
        Ok(())
    } else {
        Err(ConditionError {
            position: expr.position(),
            kind: ConditionErrorKind::NotBoolean {
                op: "the condition",
                found: ty.name(),
            },
        })
    }
}

fn type_of(expr: &Expr) -> Result<Ty, ConditionError> {
    Ok(match expr {
        Expr::Lit { value, .. } => match value {
            Lit::Null => Ty::Null,
            Lit::Bool(_) => Ty::Bool,
            Lit::Int(_) | Lit::Float(_) => Ty::Num,
            Lit::Str(_) => Ty::Str,
        },
        Expr::Path {
            root,
            steps,
            position,
        } => path_type(*root, steps, *position)?,
        Expr::Array { items, .. } => {
            for item in items.iter() {
                type_of(item)?;
            }
            Ty::Array
        }
        Expr::Not { operand, .. } => {
            boolean("`!`", operand)?;
            Ty::Bool
        }
        Expr::And(items) => {
            for item in items.iter() {
                boolean("`&&`", item)?;
            }
            Ty::Bool
        }
        Expr::Or(items) => {
            for item in items.iter() {
                boolean("`||`", item)?;
            }
            Ty::Bool
        }
        Expr::Compare {
            op,
            left,
            right,
            position,
        } => {
            let (l, r) = (type_of(left)?, type_of(right)?);
            let mismatch = || ConditionError {
                position: *position,
                kind: ConditionErrorKind::TypeMismatch {
                    op: op.as_str(),
                    left: l.name(),
                    right: r.name(),
                },
            };
            let ok = match op {
                CmpOp::Eq | CmpOp::Ne => l == Ty::Any || r == Ty::Any || l == r,
                CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                    let orderable = |t| matches!(t, Ty::Num | Ty::Str | Ty::Any);
                    orderable(l) && orderable(r) && (l == Ty::Any || r == Ty::Any || l == r)
                }
                CmpOp::In => match r {
                    Ty::Array | Ty::Any => true,
                    Ty::Str => matches!(l, Ty::Str | Ty::Any),
                    _ => false,
                },
            };
            if !ok {
                return Err(mismatch());
            }
            check_operation_names(*op, left, right)?;
            Ty::Bool
        }
    })
}

/// `&&`, `||` and `!` need operands that can be booleans.
fn boolean(op: &'static str, operand: &Expr) -> Result<(), ConditionError> {
    let ty = type_of(operand)?;
    if matches!(ty, Ty::Bool | Ty::Any) {
        Ok(())
    } else {
        Err(ConditionError {
            position: operand.position(),
            kind: ConditionErrorKind::NotBoolean {
                op,
                found: ty.name(),
            },
        })
    }
}

fn path_type(root: Root, steps: &[Step], position: usize) -> Result<Ty, ConditionError> {
    let no_members = |what| ConditionError {
        position,
        kind: ConditionErrorKind::NoMembers(what),
    };
    Ok(match (root, steps.first()) {
        // Conditions that mention `key` are only evaluated with a key.
        (Root::Key | Root::Op, None) => Ty::Str,
        (Root::Key, Some(_)) => return Err(no_members("`key` (a string)")),
        (Root::Op, Some(_)) => return Err(no_members("`op` (a string)")),
        (Root::AuthSub, None) => Ty::Str,
        (Root::AuthSub, Some(_)) => return Err(no_members("`auth.sub` (a string)")),
        (Root::AuthRoles, None) => Ty::Array,
        (Root::AuthRoles, Some(Step::Field(_))) => {
            return Err(no_members("`auth.roles` (an array; use an index)"));
        }
        (Root::AuthRoles, Some(Step::Index(_))) if steps.len() > 1 => {
            return Err(no_members("a role (a string)"));
        }
        (Root::AuthRoles, Some(Step::Index(_))) => Ty::Any,
        (Root::Auth | Root::Old | Root::New, _) => Ty::Any,
    })
}

/// `op` compared with a string literal (or an array of them) that names no
/// operation could never hold: almost certainly a typo.
fn check_operation_names(op: CmpOp, left: &Expr, right: &Expr) -> Result<(), ConditionError> {
    let is_op = |e: &Expr| matches!(e, Expr::Path { root: Root::Op, .. });
    let literals: &[Expr] = match op {
        CmpOp::Eq | CmpOp::Ne if is_op(left) => std::slice::from_ref(right),
        CmpOp::Eq | CmpOp::Ne if is_op(right) => std::slice::from_ref(left),
        CmpOp::In if is_op(left) => match right {
            Expr::Array { items, .. } => items,
            _ => &[],
        },
        _ => &[],
    };
    for item in literals {
        if let Expr::Lit {
            value: Lit::Str(name),
            position,
        } = item
        {
            if !OPERATIONS.contains(&&**name) {
                return Err(ConditionError {
                    position: *position,
                    kind: ConditionErrorKind::UnknownOperation(name.to_string()),
                });
            }
        }
    }
    Ok(())
}
