//! Values on the wire: plain JSON in text frames, a tagged enum in bincode.
//!
//! In JSON a [`WireValue`] is ordinary JSON: `null`, `true`/`false`, an
//! integer (read as [`WireValue::Int`]), a number with a fraction or an
//! exponent (read as [`WireValue::Float`]), a string, an array or an object.
//! In bincode it is an enum: a varint variant index (`Null` 0, `Bool` 1,
//! `Int` 2, `Float` 3, `String` 4, `Array` 5, `Map` 6) followed by the
//! payload. Both encodings refuse non-finite floats, duplicate map keys and
//! nesting deeper than [`MAX_VALUE_DEPTH`], with typed errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};
use topgun_core::{MAX_VALUE_DEPTH, Value};

use crate::error::{ConvertError, Nesting};
use crate::guard::{self, DepthGuard, Violation};

/// A value stored under a key (mirror of [`Value`]).
///
/// Floats must be finite and nesting must not exceed [`MAX_VALUE_DEPTH`];
/// the codec refuses to encode or decode anything else.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum WireValue {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A finite 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// An ordered list.
    Array(Vec<WireValue>),
    /// Named fields, ordered by name.
    Map(BTreeMap<String, WireValue>),
}

const NAME: &str = "WireValue";
const VARIANTS: &[&str] = &["Null", "Bool", "Int", "Float", "String", "Array", "Map"];

/// Enters one value level. Scalars may sit one level below the deepest
/// container, so the guard admits `MAX_VALUE_DEPTH + 1` levels; whether this
/// level may be a container is checked separately with [`container_ok`].
fn enter() -> Result<DepthGuard, Violation> {
    DepthGuard::enter(Nesting::Value, MAX_VALUE_DEPTH + 1)
}

/// Whether a container may open at the guard's level without the value's
/// depth (counted like [`Value::depth`]) exceeding [`MAX_VALUE_DEPTH`].
fn container_ok(guard: &DepthGuard) -> bool {
    guard.level() <= MAX_VALUE_DEPTH
}

impl Serialize for WireValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let guard = enter().map_err(ser::Error::custom)?;
        if matches!(self, WireValue::Array(_) | WireValue::Map(_)) && !container_ok(&guard) {
            return Err(ser::Error::custom(guard::record(Violation::TooDeep(
                Nesting::Value,
            ))));
        }
        if matches!(self, WireValue::Float(f) if !f.is_finite()) {
            return Err(ser::Error::custom(guard::record(Violation::NonFiniteFloat)));
        }
        if s.is_human_readable() {
            match self {
                WireValue::Null => s.serialize_unit(),
                WireValue::Bool(b) => s.serialize_bool(*b),
                WireValue::Int(i) => s.serialize_i64(*i),
                WireValue::Float(f) => s.serialize_f64(*f),
                WireValue::String(v) => s.serialize_str(v),
                WireValue::Array(items) => s.collect_seq(items),
                WireValue::Map(fields) => s.collect_map(fields),
            }
        } else {
            match self {
                WireValue::Null => s.serialize_unit_variant(NAME, 0, VARIANTS[0]),
                WireValue::Bool(b) => s.serialize_newtype_variant(NAME, 1, VARIANTS[1], b),
                WireValue::Int(i) => s.serialize_newtype_variant(NAME, 2, VARIANTS[2], i),
                WireValue::Float(f) => s.serialize_newtype_variant(NAME, 3, VARIANTS[3], f),
                WireValue::String(v) => s.serialize_newtype_variant(NAME, 4, VARIANTS[4], v),
                WireValue::Array(items) => s.serialize_newtype_variant(NAME, 5, VARIANTS[5], items),
                WireValue::Map(fields) => s.serialize_newtype_variant(NAME, 6, VARIANTS[6], fields),
            }
        }
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let guard = enter().map_err(de::Error::custom)?;
        let containers_ok = container_ok(&guard);
        let value = if d.is_human_readable() {
            d.deserialize_any(JsonVisitor { containers_ok })
        } else {
            d.deserialize_enum(NAME, VARIANTS, TaggedVisitor { containers_ok })
        };
        drop(guard);
        value
    }
}

fn too_deep<E: de::Error>() -> E {
    E::custom(guard::record(Violation::TooDeep(Nesting::Value)))
}

fn finite<E: de::Error>(f: f64) -> Result<WireValue, E> {
    if f.is_finite() {
        Ok(WireValue::Float(f))
    } else {
        Err(E::custom(guard::record(Violation::NonFiniteFloat)))
    }
}

fn collect_array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<WireValue, A::Error> {
    let mut items = Vec::with_capacity(crate::seq::capacity::<WireValue>(seq.size_hint()));
    while let Some(item) = seq.next_element::<WireValue>()? {
        items.push(item);
    }
    Ok(WireValue::Array(items))
}

fn collect_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<WireValue, A::Error> {
    let mut fields = BTreeMap::new();
    while let Some(key) = map.next_key::<String>()? {
        let value = map.next_value::<WireValue>()?;
        if fields.insert(key, value).is_some() {
            return Err(de::Error::custom(guard::record(Violation::DuplicateKey)));
        }
    }
    Ok(WireValue::Map(fields))
}

/// Reads plain JSON (any self-describing format) into a value.
struct JsonVisitor {
    containers_ok: bool,
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<WireValue, E> {
        Ok(WireValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<WireValue, E> {
        Ok(WireValue::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<WireValue, E> {
        Ok(WireValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireValue, E> {
        Ok(WireValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireValue, E> {
        i64::try_from(v)
            .map(WireValue::Int)
            .map_err(|_| E::custom(guard::record(Violation::IntegerOutOfRange)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<WireValue, E> {
        i64::try_from(v)
            .map(WireValue::Int)
            .map_err(|_| E::custom(guard::record(Violation::IntegerOutOfRange)))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<WireValue, E> {
        i64::try_from(v)
            .map(WireValue::Int)
            .map_err(|_| E::custom(guard::record(Violation::IntegerOutOfRange)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireValue, E> {
        finite(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<WireValue, E> {
        Ok(WireValue::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<WireValue, E> {
        Ok(WireValue::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WireValue, A::Error> {
        if !self.containers_ok {
            return Err(too_deep());
        }
        collect_array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireValue, A::Error> {
        if !self.containers_ok {
            return Err(too_deep());
        }
        collect_map(map)
    }
}

/// The variant index of the tagged (bincode) form.
#[derive(Clone, Copy)]
enum Tag {
    Null,
    Bool,
    Int,
    Float,
    String,
    Array,
    Map,
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value variant index")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tag, E> {
                Ok(match v {
                    0 => Tag::Null,
                    1 => Tag::Bool,
                    2 => Tag::Int,
                    3 => Tag::Float,
                    4 => Tag::String,
                    5 => Tag::Array,
                    6 => Tag::Map,
                    // Same wording as serde's derived enums, so the codec
                    // classifies it as an unknown variant.
                    _ => {
                        return Err(E::invalid_value(
                            Unexpected::Unsigned(v),
                            &"variant index 0 <= i < 7",
                        ));
                    }
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                match VARIANTS.iter().position(|n| *n == v) {
                    Some(i) => self.visit_u64(i as u64),
                    None => Err(E::unknown_variant(v, VARIANTS)),
                }
            }
        }
        d.deserialize_identifier(TagVisitor)
    }
}

/// Reads the tagged (bincode) form.
struct TaggedVisitor {
    containers_ok: bool,
}

impl<'de> Visitor<'de> for TaggedVisitor {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<WireValue, A::Error> {
        let (tag, variant) = data.variant::<Tag>()?;
        match tag {
            Tag::Null => variant.unit_variant().map(|()| WireValue::Null),
            Tag::Bool => variant.newtype_variant().map(WireValue::Bool),
            Tag::Int => variant.newtype_variant().map(WireValue::Int),
            Tag::Float => finite(variant.newtype_variant::<f64>()?),
            Tag::String => variant.newtype_variant().map(WireValue::String),
            Tag::Array if self.containers_ok => variant.newtype_variant_seed(ArraySeed),
            Tag::Map if self.containers_ok => variant.newtype_variant_seed(MapSeed),
            Tag::Array | Tag::Map => Err(too_deep()),
        }
    }
}

struct ArraySeed;

impl<'de> DeserializeSeed<'de> for ArraySeed {
    type Value = WireValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WireValue, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WireValue, A::Error> {
        collect_array(seq)
    }
}

struct MapSeed;

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = WireValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WireValue, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of values")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireValue, A::Error> {
        collect_map(map)
    }
}

/// `level` counts the containers above `v`.
fn to_wire_ref(v: &Value, level: usize) -> Result<WireValue, ConvertError> {
    Ok(match v {
        Value::Null => WireValue::Null,
        Value::Bool(b) => WireValue::Bool(*b),
        Value::Int(i) => WireValue::Int(*i),
        Value::Float(f) if f.is_finite() => WireValue::Float(*f),
        Value::Float(_) => return Err(ConvertError::NonFiniteFloat),
        Value::String(s) => WireValue::String(s.clone()),
        Value::Array(_) | Value::Map(_) if level >= MAX_VALUE_DEPTH => {
            return Err(ConvertError::too_deep(Nesting::Value));
        }
        Value::Array(items) => WireValue::Array(
            items
                .iter()
                .map(|i| to_wire_ref(i, level + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(fields) => WireValue::Map(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_wire_ref(v, level + 1)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn to_wire_owned(v: Value, level: usize) -> Result<WireValue, ConvertError> {
    Ok(match v {
        Value::Null => WireValue::Null,
        Value::Bool(b) => WireValue::Bool(b),
        Value::Int(i) => WireValue::Int(i),
        Value::Float(f) if f.is_finite() => WireValue::Float(f),
        Value::Float(_) => return Err(ConvertError::NonFiniteFloat),
        Value::String(s) => WireValue::String(s),
        Value::Array(_) | Value::Map(_) if level >= MAX_VALUE_DEPTH => {
            return Err(ConvertError::too_deep(Nesting::Value));
        }
        Value::Array(items) => WireValue::Array(
            items
                .into_iter()
                .map(|i| to_wire_owned(i, level + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(fields) => WireValue::Map(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k, to_wire_owned(v, level + 1)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl TryFrom<&Value> for WireValue {
    type Error = ConvertError;

    /// Refuses non-finite floats and nesting deeper than
    /// [`MAX_VALUE_DEPTH`], which the peer would refuse too.
    fn try_from(v: &Value) -> Result<Self, ConvertError> {
        to_wire_ref(v, 0)
    }
}

impl TryFrom<Value> for WireValue {
    type Error = ConvertError;

    /// Like the by-reference conversion, moving strings instead of copying.
    fn try_from(v: Value) -> Result<Self, ConvertError> {
        to_wire_owned(v, 0)
    }
}

impl From<WireValue> for Value {
    /// Infallible: the codec only yields finite, depth-bounded values.
    fn from(v: WireValue) -> Self {
        match v {
            WireValue::Null => Value::Null,
            WireValue::Bool(b) => Value::Bool(b),
            WireValue::Int(i) => Value::Int(i),
            WireValue::Float(f) => Value::Float(f),
            WireValue::String(s) => Value::String(s),
            WireValue::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            WireValue::Map(fields) => Value::Map(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<bool> for WireValue {
    fn from(v: bool) -> Self {
        WireValue::Bool(v)
    }
}

impl From<i64> for WireValue {
    fn from(v: i64) -> Self {
        WireValue::Int(v)
    }
}

impl From<&str> for WireValue {
    fn from(v: &str) -> Self {
        WireValue::String(v.to_owned())
    }
}

impl From<String> for WireValue {
    fn from(v: String) -> Self {
        WireValue::String(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |v, _| Value::Array(vec![v]))
    }

    #[test]
    fn conversion_refuses_what_the_wire_refuses() {
        assert!(WireValue::try_from(&nest(MAX_VALUE_DEPTH)).is_ok());
        assert_eq!(
            WireValue::try_from(nest(MAX_VALUE_DEPTH + 1)),
            Err(ConvertError::too_deep(Nesting::Value))
        );
        assert_eq!(
            WireValue::try_from(&Value::Array(vec![Value::Float(f64::NAN)])),
            Err(ConvertError::NonFiniteFloat)
        );
        let v = nest(3);
        assert_eq!(Value::from(WireValue::try_from(&v).unwrap()), v);
    }
}
