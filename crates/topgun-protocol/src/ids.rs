//! Node ids, 64-bit hashes and timestamps on the wire.
//!
//! In JSON a node id or a hash is a string of exactly 16 lowercase hex
//! digits, because JavaScript numbers lose precision above 2^53; in bincode
//! it is a plain `u64` (varint).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use topgun_core::{NodeId, Timestamp};

use crate::guard::{self, Violation};

/// A replica's node id (mirror of [`NodeId`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireNodeId(pub u64);

/// A 64-bit hash: a Merkle node hash or an entry hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash64(pub u64);

/// A hybrid logical clock reading (mirror of [`Timestamp`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct WireTimestamp {
    /// Milliseconds since the Unix epoch.
    pub millis: u64,
    /// Logical counter within the millisecond.
    pub counter: u32,
    /// The issuing replica.
    pub node: WireNodeId,
}

impl fmt::Display for Hash64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for WireNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Formats `v` as 16 lowercase hex digits without allocating.
fn to_hex(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *b = DIGITS[((v >> shift) & 0xf) as usize];
    }
    out
}

/// Parses exactly 16 lowercase hex digits; anything else is `None` (one
/// canonical spelling per number).
fn from_hex(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(d))
    })
}

fn serialize_hex_u64<S: Serializer>(v: u64, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        let hex = to_hex(v);
        // The digits are ASCII, so this conversion cannot fail.
        let text = std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    } else {
        s.serialize_u64(v)
    }
}

struct HexU64Visitor;

impl Visitor<'_> for HexU64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("16 lowercase hexadecimal digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        from_hex(v).ok_or_else(|| E::custom(guard::record(Violation::InvalidHex)))
    }
}

fn deserialize_hex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    if d.is_human_readable() {
        d.deserialize_str(HexU64Visitor)
    } else {
        u64::deserialize(d)
    }
}

impl Serialize for WireNodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex_u64(self.0, s)
    }
}

impl<'de> Deserialize<'de> for WireNodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_hex_u64(d).map(WireNodeId)
    }
}

impl Serialize for Hash64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex_u64(self.0, s)
    }
}

impl<'de> Deserialize<'de> for Hash64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_hex_u64(d).map(Hash64)
    }
}

impl From<NodeId> for WireNodeId {
    fn from(n: NodeId) -> Self {
        WireNodeId(n.0)
    }
}

impl From<WireNodeId> for NodeId {
    fn from(n: WireNodeId) -> Self {
        NodeId(n.0)
    }
}

impl From<u64> for Hash64 {
    fn from(h: u64) -> Self {
        Hash64(h)
    }
}

impl From<Hash64> for u64 {
    fn from(h: Hash64) -> Self {
        h.0
    }
}

impl From<Timestamp> for WireTimestamp {
    fn from(t: Timestamp) -> Self {
        WireTimestamp {
            millis: t.millis,
            counter: t.counter,
            node: t.node.into(),
        }
    }
}

impl From<&Timestamp> for WireTimestamp {
    fn from(t: &Timestamp) -> Self {
        (*t).into()
    }
}

impl From<WireTimestamp> for Timestamp {
    fn from(t: WireTimestamp) -> Self {
        Timestamp::new(t.millis, t.counter, t.node.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_canonical() {
        for v in [0, 1, 0xdead_beef, u64::MAX, 1 << 63] {
            let hex = to_hex(v);
            let s = std::str::from_utf8(&hex).unwrap();
            assert_eq!(s, format!("{v:016x}"));
            assert_eq!(from_hex(s), Some(v));
        }
        for bad in [
            "",
            "0",
            "00000000000000000",
            "DEADBEEFDEADBEEF",
            "000000000000000g",
            "+000000000000000",
            "00000000000000é",
        ] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }
}
