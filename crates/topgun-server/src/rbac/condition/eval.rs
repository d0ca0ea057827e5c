//! Condition evaluation over borrowed claims and record values, without allocating.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value as Json;
use topgun_core::Value;

use super::{CmpOp, Expr, Lit, Root, Step};
use crate::authz::{Action, Principal};

/// How deep two values are compared before giving up (an error, so the
/// condition fails closed). Decoded values are far shallower.
const MAX_COMPARE_DEPTH: usize = 128;

/// What a condition can see.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Env<'a> {
    /// `auth`: the principal (`auth.sub`, `auth.roles`, claims).
    pub(crate) principal: &'a Principal,
    /// `op`.
    pub(crate) action: Action,
    /// `key` (conditions that mention it are only evaluated with one).
    pub(crate) key: Option<&'a str>,
    /// `old`: the stored value, `None` when absent.
    pub(crate) old: Option<&'a Value>,
    /// `new`: the proposed value, `None` for reads and removes.
    pub(crate) new: Option<&'a Value>,
}

/// Why a condition could not be decided at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EvalError {
    /// Character offset of the failing expression in the condition.
    pub(crate) position: usize,
    /// What failed.
    pub(crate) kind: EvalErrorKind,
}

/// What failed while evaluating a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EvalErrorKind {
    /// `&&`, `||`, `!` or the whole condition met a non-boolean.
    NotBoolean,
    /// An ordering comparison of values that are not two numbers or two
    /// strings (a missing field is null, so this includes missing paths).
    NotOrderable,
    /// `in` with a right side that is neither an array nor (for a string on
    /// the left) a string.
    BadIn,
    /// Values nested deeper than [`MAX_COMPARE_DEPTH`] were compared.
    TooDeep,
}

/// A value seen by the evaluator: scalars by value, containers borrowed
/// from the claims, a record, the principal's roles, or an array literal
/// (whose items are evaluated when looked at).
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    JsonArray(&'a [Json]),
    JsonObject(&'a serde_json::Map<String, Json>),
    CoreArray(&'a [Value]),
    CoreMap(&'a BTreeMap<String, Value>),
    Roles(&'a [String]),
    List(&'a [Expr]),
}

fn error(position: usize, kind: EvalErrorKind) -> EvalError {
    EvalError { position, kind }
}

/// Evaluates `expr` as a boolean.
pub(super) fn truth<'a>(expr: &'a Expr, env: &Env<'a>) -> Result<bool, EvalError> {
    match expr {
        Expr::And(items) => {
            for item in items.iter() {
                if !truth(item, env)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Or(items) => {
            for item in items.iter() {
                if truth(item, env)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Expr::Not { operand, .. } => Ok(!truth(operand, env)?),
        Expr::Compare {
            op,
            left,
            right,
            position,
        } => compare(*op, value(left, env)?, value(right, env)?, *position, env),
        other => match value(other, env)? {
            Val::Bool(b) => Ok(b),
            _ => Err(error(other.position(), EvalErrorKind::NotBoolean)),
        },
    }
}

fn value<'a>(expr: &'a Expr, env: &Env<'a>) -> Result<Val<'a>, EvalError> {
    Ok(match expr {
        Expr::Lit { value, .. } => match value {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(s),
        },
        Expr::Path { root, steps, .. } => path(*root, steps, env),
        Expr::Array { items, .. } => Val::List(items),
        Expr::Not { .. } | Expr::And(_) | Expr::Or(_) | Expr::Compare { .. } => {
            Val::Bool(truth(expr, env)?)
        }
    })
}

fn path<'a>(root: Root, steps: &[Step], env: &Env<'a>) -> Val<'a> {
    let start = match root {
        Root::Auth => Val::JsonObject(&env.principal.claims),
        Root::AuthSub => Val::Str(&env.principal.sub),
        Root::AuthRoles => Val::Roles(&env.principal.roles),
        Root::Key => env.key.map_or(Val::Null, Val::Str),
        Root::Op => Val::Str(crate::rbac::def::Operation::from(env.action).as_str()),
        Root::Old => env.old.map_or(Val::Null, from_core),
        Root::New => env.new.map_or(Val::Null, from_core),
    };
    steps.iter().fold(start, |v, step| match (v, step) {
        (Val::JsonObject(m), Step::Field(name)) => m.get(&**name).map_or(Val::Null, from_json),
        (Val::CoreMap(m), Step::Field(name)) => m.get(&**name).map_or(Val::Null, from_core),
        (Val::JsonArray(a), Step::Index(i)) => a.get(*i).map_or(Val::Null, from_json),
        (Val::CoreArray(a), Step::Index(i)) => a.get(*i).map_or(Val::Null, from_core),
        (Val::Roles(r), Step::Index(i)) => r.get(*i).map_or(Val::Null, |s| Val::Str(s)),
        // A member of anything else (null, a scalar, a missing field) is
        // null, as a missing field is.
        _ => Val::Null,
    })
}

fn from_json(v: &Json) -> Val<'_> {
    match v {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Val::Int(i),
            (None, Some(f)) => Val::Float(f),
            (None, None) => Val::Null,
        },
        Json::String(s) => Val::Str(s),
        Json::Array(a) => Val::JsonArray(a),
        Json::Object(m) => Val::JsonObject(m),
    }
}

fn from_core(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Int(i) => Val::Int(*i),
        Value::Float(f) => Val::Float(*f),
        Value::String(s) => Val::Str(s),
        Value::Array(a) => Val::CoreArray(a),
        Value::Map(m) => Val::CoreMap(m),
    }
}

fn compare<'a>(
    op: CmpOp,
    left: Val<'a>,
    right: Val<'a>,
    position: usize,
    env: &Env<'a>,
) -> Result<bool, EvalError> {
    match op {
        CmpOp::Eq => equal(left, right, env, 0),
        CmpOp::Ne => Ok(!equal(left, right, env, 0)?),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let ordering =
                order(left, right).ok_or_else(|| error(position, EvalErrorKind::NotOrderable))?;
            Ok(match op {
                CmpOp::Lt => ordering == Ordering::Less,
                CmpOp::Le => ordering != Ordering::Greater,
                CmpOp::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        CmpOp::In => {
            if let Some(len) = seq_len(right) {
                for i in 0..len {
                    if equal(left, seq_get(right, i, env)?, env, 0)? {
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            match (left, right) {
                (Val::Str(needle), Val::Str(haystack)) => Ok(haystack.contains(needle)),
                _ => Err(error(position, EvalErrorKind::BadIn)),
            }
        }
    }
}

/// Two numbers (by exact value, integers and floats alike) or two strings
/// (byte-wise); anything else has no order.
fn order(left: Val<'_>, right: Val<'_>) -> Option<Ordering> {
    match (left, right) {
        (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
        _ => Some(number(left)?.total_cmp(&number(right)?)),
    }
}

fn number(v: Val<'_>) -> Option<Value> {
    match v {
        Val::Int(i) => Some(Value::Int(i)),
        Val::Float(f) => Some(Value::Float(f)),
        _ => None,
    }
}

/// Deep equality; values of different kinds are unequal (`1 == 1.0` holds,
/// `1 == "1"` does not).
fn equal<'a>(a: Val<'a>, b: Val<'a>, env: &Env<'a>, depth: usize) -> Result<bool, EvalError> {
    if depth > MAX_COMPARE_DEPTH {
        return Err(error(0, EvalErrorKind::TooDeep));
    }
    Ok(match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => {
            if let (Some(x), Some(y)) = (number(a), number(b)) {
                return Ok(x.total_cmp(&y) == Ordering::Equal);
            }
            if let (Some(la), Some(lb)) = (seq_len(a), seq_len(b)) {
                if la != lb {
                    return Ok(false);
                }
                for i in 0..la {
                    if !equal(seq_get(a, i, env)?, seq_get(b, i, env)?, env, depth + 1)? {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            match (a, b) {
                (Val::JsonObject(x), _) => {
                    map_len(b) == Some(x.len())
                        && all_entries_in(x.iter().map(|(k, v)| (k, from_json(v))), b, env, depth)?
                }
                (Val::CoreMap(x), _) => {
                    map_len(b) == Some(x.len())
                        && all_entries_in(x.iter().map(|(k, v)| (k, from_core(v))), b, env, depth)?
                }
                _ => false,
            }
        }
    })
}

/// Whether every entry is in the map `other` with an equal value.
fn all_entries_in<'a>(
    entries: impl Iterator<Item = (&'a String, Val<'a>)>,
    other: Val<'a>,
    env: &Env<'a>,
    depth: usize,
) -> Result<bool, EvalError> {
    for (key, value) in entries {
        let found = match other {
            Val::JsonObject(m) => m.get(key).map(from_json),
            Val::CoreMap(m) => m.get(key).map(from_core),
            _ => None,
        };
        match found {
            Some(found) if equal(value, found, env, depth + 1)? => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn map_len(v: Val<'_>) -> Option<usize> {
    match v {
        Val::JsonObject(m) => Some(m.len()),
        Val::CoreMap(m) => Some(m.len()),
        _ => None,
    }
}

fn seq_len(v: Val<'_>) -> Option<usize> {
    match v {
        Val::JsonArray(a) => Some(a.len()),
        Val::CoreArray(a) => Some(a.len()),
        Val::Roles(r) => Some(r.len()),
        Val::List(items) => Some(items.len()),
        _ => None,
    }
}

/// Item `i` of a sequence (`i < seq_len(v)`); array-literal items are
/// evaluated here.
fn seq_get<'a>(v: Val<'a>, i: usize, env: &Env<'a>) -> Result<Val<'a>, EvalError> {
    Ok(match v {
        Val::JsonArray(a) => a.get(i).map_or(Val::Null, from_json),
        Val::CoreArray(a) => a.get(i).map_or(Val::Null, from_core),
        Val::Roles(r) => r.get(i).map_or(Val::Null, |s| Val::Str(s)),
        Val::List(items) => match items.get(i) {
            Some(item) => value(item, env)?,
            None => Val::Null,
        },
        _ => Val::Null,
    })
}
