//! Live-query payloads: filters, sort keys and result changes.

use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};
use topgun_core::query::MAX_FILTER_DEPTH;
use topgun_core::{CmpOp, Filter, Query, SortKey};

use crate::error::{ConvertError, Nesting};
use crate::guard::DepthGuard;
use crate::record::WireLwwRecord;
use crate::value::WireValue;

/// A comparison operator (mirror of [`CmpOp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireCmpOp {
    /// Equal.
    Eq,
    /// Not equal.
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

/// A predicate over one record (mirror of [`Filter`]). Nesting is bounded
/// by [`MAX_FILTER_DEPTH`] (a leaf predicate has depth 1).
//
// `remote = "Self"` makes the derives generate inherent functions instead
// of trait impls; the trait impls below wrap them in a depth guard, so the
// recursion through `And`/`Or`/`Not` is bounded in both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub enum WireFilter {
    /// `field op value`.
    Compare {
        /// The field path (`"address.city"`, or `"$key"` for the key).
        field: String,
        /// The operator.
        op: WireCmpOp,
        /// The operand.
        value: WireValue,
    },
    /// The field equals one of `values`.
    In {
        /// The field path.
        field: String,
        /// The accepted values.
        #[serde(deserialize_with = "crate::seq::bounded")]
        values: Vec<WireValue>,
    },
    /// The field is present and not null.
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
    /// All hold.
    #[serde(deserialize_with = "crate::seq::bounded")]
    And(Vec<WireFilter>),
    /// At least one holds.
    #[serde(deserialize_with = "crate::seq::bounded")]
    Or(Vec<WireFilter>),
    /// Does not hold.
    Not(Box<WireFilter>),
}

impl Serialize for WireFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let _guard =
            DepthGuard::enter(Nesting::Filter, MAX_FILTER_DEPTH).map_err(ser::Error::custom)?;
        WireFilter::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for WireFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _guard =
            DepthGuard::enter(Nesting::Filter, MAX_FILTER_DEPTH).map_err(de::Error::custom)?;
        WireFilter::deserialize(d)
    }
}

/// One sort criterion (mirror of [`SortKey`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSortKey {
    /// The field path.
    pub field: String,
    /// Largest first when true.
    pub descending: bool,
}

/// A live query over one last-writer-wins map (mirror of [`Query`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireQuery {
    /// Records must satisfy this filter; `None` (JSON `null` or absent)
    /// matches every record.
    pub filter: Option<WireFilter>,
    /// Sort criteria, most significant first; ties are broken by key.
    #[serde(default)]
    #[serde(deserialize_with = "crate::seq::bounded")]
    pub sort: Vec<WireSortKey>,
    /// At most this many records are in the result.
    pub limit: Option<u32>,
}

/// How a record's membership in a live query's result changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The record is now in the result.
    Enter,
    /// The record was in the result and changed.
    Update,
    /// The record left the result (removed, changed so it no longer
    /// matches, or pushed out by the limit).
    Leave,
}

/// One record of a query result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRecord {
    /// The key.
    pub key: String,
    /// Its record.
    pub record: WireLwwRecord,
}

impl From<CmpOp> for WireCmpOp {
    fn from(op: CmpOp) -> Self {
        match op {
            CmpOp::Eq => WireCmpOp::Eq,
            CmpOp::Ne => WireCmpOp::Ne,
            CmpOp::Lt => WireCmpOp::Lt,
            CmpOp::Lte => WireCmpOp::Lte,
            CmpOp::Gt => WireCmpOp::Gt,
            CmpOp::Gte => WireCmpOp::Gte,
        }
    }
}

impl From<WireCmpOp> for CmpOp {
    fn from(op: WireCmpOp) -> Self {
        match op {
            WireCmpOp::Eq => CmpOp::Eq,
            WireCmpOp::Ne => CmpOp::Ne,
            WireCmpOp::Lt => CmpOp::Lt,
            WireCmpOp::Lte => CmpOp::Lte,
            WireCmpOp::Gt => CmpOp::Gt,
            WireCmpOp::Gte => CmpOp::Gte,
        }
    }
}

/// `level` is the depth of `f` itself (1 for the root).
fn filter_to_wire(f: &Filter, level: usize) -> Result<WireFilter, ConvertError> {
    if level > MAX_FILTER_DEPTH {
        return Err(ConvertError::too_deep(Nesting::Filter));
    }
    let all = |fs: &[Filter]| -> Result<Vec<WireFilter>, ConvertError> {
        fs.iter().map(|f| filter_to_wire(f, level + 1)).collect()
    };
    Ok(match f {
        Filter::Compare { field, op, value } => WireFilter::Compare {
            field: field.clone(),
            op: (*op).into(),
            value: value.try_into()?,
        },
        Filter::In { field, values } => WireFilter::In {
            field: field.clone(),
            values: values
                .iter()
                .map(WireValue::try_from)
                .collect::<Result<_, _>>()?,
        },
        Filter::Exists { field } => WireFilter::Exists {
            field: field.clone(),
        },
        Filter::Prefix { field, prefix } => WireFilter::Prefix {
            field: field.clone(),
            prefix: prefix.clone(),
        },
        Filter::And(fs) => WireFilter::And(all(fs)?),
        Filter::Or(fs) => WireFilter::Or(all(fs)?),
        Filter::Not(inner) => WireFilter::Not(Box::new(filter_to_wire(inner, level + 1)?)),
    })
}

impl TryFrom<&Filter> for WireFilter {
    type Error = ConvertError;

    /// Refuses filters deeper than [`MAX_FILTER_DEPTH`] and operands the
    /// wire refuses.
    fn try_from(f: &Filter) -> Result<Self, ConvertError> {
        filter_to_wire(f, 1)
    }
}

impl From<WireFilter> for Filter {
    fn from(f: WireFilter) -> Self {
        match f {
            WireFilter::Compare { field, op, value } => Filter::Compare {
                field,
                op: op.into(),
                value: value.into(),
            },
            WireFilter::In { field, values } => Filter::In {
                field,
                values: values.into_iter().map(Into::into).collect(),
            },
            WireFilter::Exists { field } => Filter::Exists { field },
            WireFilter::Prefix { field, prefix } => Filter::Prefix { field, prefix },
            WireFilter::And(fs) => Filter::And(fs.into_iter().map(Filter::from).collect()),
            WireFilter::Or(fs) => Filter::Or(fs.into_iter().map(Filter::from).collect()),
            WireFilter::Not(inner) => Filter::Not(Box::new(Filter::from(*inner))),
        }
    }
}

impl From<&SortKey> for WireSortKey {
    fn from(s: &SortKey) -> Self {
        WireSortKey {
            field: s.field.clone(),
            descending: s.descending,
        }
    }
}

impl From<WireSortKey> for SortKey {
    fn from(s: WireSortKey) -> Self {
        SortKey {
            field: s.field,
            descending: s.descending,
        }
    }
}

impl TryFrom<&Query> for WireQuery {
    type Error = ConvertError;

    fn try_from(q: &Query) -> Result<Self, ConvertError> {
        Ok(WireQuery {
            filter: q.filter.as_ref().map(WireFilter::try_from).transpose()?,
            sort: q.sort.iter().map(WireSortKey::from).collect(),
            limit: q.limit,
        })
    }
}

impl From<WireQuery> for Query {
    fn from(q: WireQuery) -> Self {
        Query {
            filter: q.filter.map(Filter::from),
            sort: q.sort.into_iter().map(SortKey::from).collect(),
            limit: q.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(depth: usize) -> Filter {
        (1..depth).fold(Filter::Exists { field: "a".into() }, |f, _| {
            Filter::Not(Box::new(f))
        })
    }

    #[test]
    fn conversion_bounds_filter_depth() {
        assert_eq!(nest(MAX_FILTER_DEPTH).depth(), MAX_FILTER_DEPTH);
        let ok = WireFilter::try_from(&nest(MAX_FILTER_DEPTH)).unwrap();
        assert_eq!(Filter::from(ok), nest(MAX_FILTER_DEPTH));
        assert_eq!(
            WireFilter::try_from(&nest(MAX_FILTER_DEPTH + 1)),
            Err(ConvertError::too_deep(Nesting::Filter))
        );
    }
}
