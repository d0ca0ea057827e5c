//! Live-query predicates: filter, sort and limit over a map's records.
//!
//! The server evaluates these for `QUERY_SUB`, and the client can run the
//! same query over its local replica, so both agree on what a query matches.

use std::cmp::Ordering;

use crate::value::Value;

/// The pseudo-field that names the record's key rather than a value field.
pub const KEY_FIELD: &str = "$key";

/// The deepest nesting of `And`/`Or`/`Not` a filter may have; decoders refuse
/// deeper filters.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// Equal.
    Eq,
    /// Not equal (also true when the field is missing).
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
}

/// A predicate over one record. Fields are dotted paths into the value
/// (`"address.city"`), or [`KEY_FIELD`] for the key.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `field op value`. Ordering comparisons use [`Value::total_cmp`] and
    /// are false when the field is missing or of another kind.
    Compare {
        /// The field path.
        field: String,
        /// The operator.
        op: CmpOp,
        /// The operand.
        value: Value,
    },
    /// The field equals one of `values`.
    In {
        /// The field path.
        field: String,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// The field is present (and not null).
    Exists {
        /// The field path.
        field: String,
    },
    /// The field is a string starting with `prefix`.
    Prefix {
        /// The field path.
        field: String,
        /// The required prefix.
        prefix: String,
    },
    /// All of the filters hold (true when empty).
    And(Vec<Filter>),
    /// At least one of the filters holds (false when empty).
    Or(Vec<Filter>),
    /// The filter does not hold.
    Not(Box<Filter>),
}

/// A field found in a record: the record's key or a part of its value.
/// The key is borrowed as it is, so evaluating a filter allocates nothing.
#[derive(Clone, Copy, Debug)]
enum Found<'a> {
    /// The record's key ([`KEY_FIELD`]); behaves as a string value.
    Key(&'a str),
    /// A (non-null) part of the value.
    Value(&'a Value),
}

/// What a missing field sorts as.
static NULL: Value = Value::Null;

impl<'a> Found<'a> {
    /// Whether this and `other` are of comparable kinds.
    fn same_kind(self, other: &Value) -> bool {
        match self {
            Found::Key(_) => matches!(other, Value::String(_)),
            Found::Value(v) => same_kind(v, other),
        }
    }

    /// [`Value::total_cmp`] against an operand.
    fn cmp_value(self, other: &Value) -> Ordering {
        match self {
            Found::Key(k) => Value::cmp_str_with(k, other),
            Found::Value(v) => v.total_cmp(other),
        }
    }

    /// [`Value::total_cmp`] between two found fields.
    fn cmp(self, other: Found<'_>) -> Ordering {
        match (self, other) {
            (Found::Key(a), Found::Key(b)) => a.cmp(b),
            (a, Found::Value(b)) => a.cmp_value(b),
            (Found::Value(a), Found::Key(b)) => Value::cmp_str_with(b, a).reverse(),
        }
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Found::Key(k) => Some(k),
            Found::Value(Value::String(s)) => Some(s),
            Found::Value(_) => None,
        }
    }
}

fn lookup<'a>(key: &'a str, value: &'a Value, field: &str) -> Option<Found<'a>> {
    if field == KEY_FIELD {
        Some(Found::Key(key))
    } else {
        value
            .get_path(field)
            .filter(|v| !matches!(v, Value::Null))
            .map(Found::Value)
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Bool(_), Value::Bool(_))
            | (
                Value::Int(_) | Value::Float(_),
                Value::Int(_) | Value::Float(_)
            )
            | (Value::String(_), Value::String(_))
            | (Value::Array(_), Value::Array(_))
            | (Value::Map(_), Value::Map(_))
    )
}

impl Filter {
    /// Whether the record `key` = `value` satisfies this filter.
    pub fn matches(&self, key: &str, value: &Value) -> bool {
        match self {
            Filter::Compare {
                field,
                op,
                value: operand,
            } => {
                let Some(found) = lookup(key, value, field) else {
                    return *op == CmpOp::Ne;
                };
                if !found.same_kind(operand) {
                    return *op == CmpOp::Ne;
                }
                let ord = found.cmp_value(operand);
                match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Lte => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Gte => ord != Ordering::Less,
                }
            }
            Filter::In { field, values } => lookup(key, value, field).is_some_and(|found| {
                values
                    .iter()
                    .any(|v| found.same_kind(v) && found.cmp_value(v) == Ordering::Equal)
            }),
            Filter::Exists { field } => lookup(key, value, field).is_some(),
            Filter::Prefix { field, prefix } => lookup(key, value, field)
                .and_then(Found::as_str)
                .is_some_and(|s| s.starts_with(prefix.as_str())),
            Filter::And(all) => all.iter().all(|f| f.matches(key, value)),
            Filter::Or(any) => any.iter().any(|f| f.matches(key, value)),
            Filter::Not(f) => !f.matches(key, value),
        }
    }

    /// Nesting depth: 1 for a leaf predicate.
    pub fn depth(&self) -> usize {
        match self {
            Filter::And(fs) | Filter::Or(fs) => 1 + fs.iter().map(Filter::depth).max().unwrap_or(0),
            Filter::Not(f) => 1 + f.depth(),
            _ => 1,
        }
    }
}

/// One sort criterion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The field path (or [`KEY_FIELD`]).
    pub field: String,
    /// Largest first when true.
    pub descending: bool,
}

/// A live query over one map: which records, in what order, how many.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Records must satisfy this filter; `None` matches every record.
    pub filter: Option<Filter>,
    /// Sort criteria, most significant first; ties are broken by key.
    pub sort: Vec<SortKey>,
    /// At most this many records are in the result.
    pub limit: Option<u32>,
}

impl Query {
    /// Whether the record belongs to the result before the limit applies.
    pub fn matches(&self, key: &str, value: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(key, value))
    }

    /// The result order: by each sort key in turn (missing fields first),
    /// then by key, so the order is total.
    pub fn compare(&self, a: (&str, &Value), b: (&str, &Value)) -> Ordering {
        for s in &self.sort {
            let fa = lookup(a.0, a.1, &s.field).unwrap_or(Found::Value(&NULL));
            let fb = lookup(b.0, b.1, &s.field).unwrap_or(Found::Value(&NULL));
            let ord = fa.cmp(fb);
            let ord = if s.descending { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        a.0.cmp(b.0)
    }

    /// Evaluates the query over `records` at once: filter, sort, limit.
    pub fn run<'a>(
        &self,
        records: impl Iterator<Item = (&'a str, &'a Value)>,
    ) -> Vec<(&'a str, &'a Value)> {
        let mut out: Vec<_> = records.filter(|(k, v)| self.matches(k, v)).collect();
        out.sort_by(|a, b| self.compare(*a, *b));
        if let Some(limit) = self.limit {
            out.truncate(limit as usize);
        }
        out
    }
}

#[cfg(test)]
mod tests;
