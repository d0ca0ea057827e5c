//! The values stored in maps: a JSON-shaped tree.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use xxhash_rust::xxh3::Xxh3;

/// The deepest nesting of arrays and maps a [`Value`] may have. Decoders
/// refuse anything deeper, so no input can exhaust the stack.
pub const MAX_VALUE_DEPTH: usize = 64;

/// A value stored under a key: the JSON data model, with integers and floats
/// kept apart.
///
/// Floats are expected to be finite; the wire codecs refuse NaN and
/// infinities, because JSON cannot carry them.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// The absence of a value (JSON `null`). Not a deletion: deletions are
    /// tombstones on the record.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// Named fields, ordered by name so that equal maps hash equally.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Nesting depth: 0 for a scalar, 1 for a flat array or map, and so on.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(fields) => 1 + fields.values().map(Value::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Looks up a dotted field path (`"address.city"`) inside nested maps.
    /// The empty path is the value itself.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        path.split('.').try_fold(self, |v, segment| match v {
            Value::Map(fields) => fields.get(segment),
            _ => None,
        })
    }

    /// The field named `name` when this value is a map.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(fields) => fields.get(name),
            _ => None,
        }
    }

    /// An approximate in-memory size in bytes, used for value size limits
    /// where the encoded size is not at hand.
    pub fn approx_size(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 8,
            Value::String(s) => s.len() + 8,
            Value::Array(items) => 8 + items.iter().map(Value::approx_size).sum::<usize>(),
            Value::Map(fields) => {
                8 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 8 + v.approx_size())
                    .sum::<usize>()
            }
        }
    }

    /// A total order over values, for sorting query results: by kind
    /// (null < bool < number < string < array < map), then by content.
    ///
    /// Integers and floats compare by their exact numeric value (so
    /// `Int(2^53 + 1) > Float(2^53)`, and `-0.0`, `0.0` and `Int(0)` are
    /// equal); infinities lie beyond every integer, and the NaNs that the
    /// codecs refuse still get a place (negative NaNs first, positive NaNs
    /// last) so that the order stays total whatever a value holds. A total
    /// order matters: sorting with an inconsistent comparator gives an
    /// unspecified order and may panic.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            // IEEE equality first, so that the two zeros are one number.
            (Value::Float(a), Value::Float(b)) if a == b => Ordering::Equal,
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Int(a), Value::Float(b)) => cmp_int_float(*a, *b),
            (Value::Float(a), Value::Int(b)) => cmp_int_float(*b, *a).reverse(),
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a
                .iter()
                .zip(b)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.len().cmp(&b.len())),
            (Value::Map(a), Value::Map(b)) => a
                .iter()
                .zip(b)
                .map(|((ka, va), (kb, vb))| ka.cmp(kb).then_with(|| va.total_cmp(vb)))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.len().cmp(&b.len())),
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }

    /// Compares the string `s` with `other` exactly as
    /// `Value::String(s.to_owned()).total_cmp(other)` would, without
    /// allocating.
    pub(crate) fn cmp_str_with(s: &str, other: &Value) -> Ordering {
        match other {
            Value::String(o) => s.cmp(o),
            _ => KIND_RANK_STRING.cmp(&other.kind_rank()),
        }
    }

    /// The kind's place in [`Value::total_cmp`].
    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::String(_) => KIND_RANK_STRING,
            Value::Array(_) => 4,
            Value::Map(_) => 5,
        }
    }

    /// Feeds the canonical byte form of this value into `hasher`.
    ///
    /// This is the one definition of a value's hash that every replica uses
    /// for Merkle leaves (see `merkle`); changing it changes every Merkle
    /// root, so golden vectors in the tests pin it.
    pub fn hash_into(&self, hasher: &mut Xxh3) {
        self.write_canonical(hasher);
    }

    /// Writes the canonical byte form of this value to `out`: a kind byte,
    /// then the payload (little-endian numbers, floats as their bits,
    /// length-prefixed strings, count-prefixed arrays and maps in key
    /// order). The form is injective: two values with the same bytes are
    /// the same value (bit for bit, for floats).
    pub(crate) fn write_canonical<S: ByteSink + ?Sized>(&self, out: &mut S) {
        match self {
            Value::Null => out.put(&[0]),
            Value::Bool(b) => out.put(&[1, u8::from(*b)]),
            Value::Int(i) => {
                out.put(&[2]);
                out.put(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.put(&[3]);
                out.put(&f.to_bits().to_le_bytes());
            }
            Value::String(s) => {
                out.put(&[4]);
                put_str(out, s);
            }
            Value::Array(items) => {
                out.put(&[5]);
                out.put(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.write_canonical(out);
                }
            }
            Value::Map(fields) => {
                out.put(&[6]);
                out.put(&(fields.len() as u64).to_le_bytes());
                for (k, v) in fields {
                    put_str(out, k);
                    v.write_canonical(out);
                }
            }
        }
    }
}

/// Where canonical bytes go: a hasher for Merkle entry hashes, or a buffer
/// when two records' bytes must be compared (the last resort of the merge
/// tie-break, see `lww::LwwMap::merge`). One writer feeds both, so the hash
/// and the compared bytes cannot drift apart.
pub(crate) trait ByteSink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl ByteSink for Xxh3 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

const KIND_RANK_STRING: u8 = 3;

/// Compares an integer with a float by exact numeric value.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // 2^63 is exactly representable; every i64 lies in [-2^63, 2^63).
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        // Where f64::total_cmp puts NaNs: beyond the infinities.
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if f >= TWO_POW_63 {
        return Ordering::Less;
    }
    if f < -TWO_POW_63 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // In range, and an integer-valued float, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    let whole_int = whole as i64;
    i.cmp(&whole_int).then_with(|| {
        // Same integer part: the float's fraction (exact) decides.
        let fraction = f - whole;
        if fraction > 0.0 {
            Ordering::Less
        } else if fraction < 0.0 {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    })
}

/// Writes a length-prefixed string, so that adjacent strings can not be
/// confused (`"ab" + "c"` differs from `"a" + "bc"`).
pub(crate) fn put_str<S: ByteSink + ?Sized>(out: &mut S, s: &str) {
    out.put(&(s.len() as u64).to_le_bytes());
    out.put(s.as_bytes());
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Map(v)
    }
}

#[cfg(test)]
mod tests;
