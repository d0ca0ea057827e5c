//! Records, OR-map items and client operations on the wire, with their
//! conversions to and from the core types.

use serde::{Deserialize, Serialize};
use topgun_core::{LwwRecord, MapKind, OpKind, OrEntry, OrItem, OrTombstone, Timestamp, Value};

use crate::error::ConvertError;
use crate::ids::WireTimestamp;
use crate::value::WireValue;

/// The two kinds of replicated map (mirror of [`MapKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireMapKind {
    /// Last-writer-wins map.
    Lww,
    /// Observed-remove map.
    Or,
}

/// The content of a last-writer-wins record: a value or a tombstone.
///
/// A separate enum rather than an `Option`, because in JSON a `null` value
/// and an absent value would otherwise both read as `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RecordValue {
    /// The key holds this value.
    Live(WireValue),
    /// The key was removed.
    Tombstone,
}

/// The state of one key of a last-writer-wins map (mirror of
/// [`LwwRecord`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireLwwRecord {
    /// The value or the tombstone.
    pub value: RecordValue,
    /// When the write happened.
    pub timestamp: WireTimestamp,
    /// Time to live in milliseconds, counted from `timestamp.millis`.
    pub ttl_ms: Option<u64>,
}

/// One value of an observed-remove key (mirror of [`OrItem`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireOrItem {
    /// The value.
    pub value: WireValue,
    /// The unique tag: the timestamp of the add.
    pub tag: WireTimestamp,
    /// Time to live in milliseconds, counted from `tag.millis`.
    pub ttl_ms: Option<u64>,
}

/// The removal of one observed-remove item (mirror of [`OrTombstone`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct WireOrTombstone {
    /// The tag of the removed item.
    pub tag: WireTimestamp,
    /// When it was removed (the latest removal).
    pub removed_at: WireTimestamp,
}

/// Everything a replica holds for one observed-remove key (mirror of
/// [`OrEntry`]): its items and its tombstones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireOrEntry {
    /// The items, ordered by tag.
    #[serde(deserialize_with = "crate::seq::bounded")]
    pub items: Vec<WireOrItem>,
    /// The tombstones, ordered by tag.
    #[serde(deserialize_with = "crate::seq::bounded")]
    pub tombstones: Vec<WireOrTombstone>,
}

/// What a client asks to do to one key (mirror of [`OpKind`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum WireOpKind {
    /// Set a last-writer-wins key.
    Put {
        /// The new value.
        value: WireValue,
        /// Optional time to live in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// Remove a last-writer-wins key.
    Remove,
    /// Add a value to an observed-remove key.
    OrAdd {
        /// The value to add.
        value: WireValue,
        /// Optional time to live in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// Remove the observed items with these tags.
    OrRemove {
        /// Tags of the items the client saw.
        #[serde(deserialize_with = "crate::seq::bounded")]
        tags: Vec<WireTimestamp>,
    },
}

impl WireOpKind {
    /// The kind of map this operation applies to.
    pub fn map_kind(&self) -> WireMapKind {
        match self {
            WireOpKind::Put { .. } | WireOpKind::Remove => WireMapKind::Lww,
            WireOpKind::OrAdd { .. } | WireOpKind::OrRemove { .. } => WireMapKind::Or,
        }
    }
}

/// One client operation, as carried by `CLIENT_OP` and `OP_BATCH`.
///
/// There is deliberately no field for the caller's origin: the server
/// derives it from the connection, and unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// Chosen by the client, unique per client session and map; a resend
    /// with the same id is recognized and acknowledged again.
    pub op_id: u64,
    /// The map.
    pub map: String,
    /// The key within the map.
    pub key: String,
    /// The client's HLC reading for this op. The server may replace it; the
    /// ack carries the timestamp that was applied.
    pub timestamp: WireTimestamp,
    /// What to do.
    pub kind: WireOpKind,
}

impl From<MapKind> for WireMapKind {
    fn from(k: MapKind) -> Self {
        match k {
            MapKind::Lww => WireMapKind::Lww,
            MapKind::Or => WireMapKind::Or,
        }
    }
}

impl From<WireMapKind> for MapKind {
    fn from(k: WireMapKind) -> Self {
        match k {
            WireMapKind::Lww => MapKind::Lww,
            WireMapKind::Or => MapKind::Or,
        }
    }
}

fn record_value(v: Option<WireValue>) -> RecordValue {
    v.map_or(RecordValue::Tombstone, RecordValue::Live)
}

impl TryFrom<&LwwRecord> for WireLwwRecord {
    type Error = ConvertError;

    fn try_from(r: &LwwRecord) -> Result<Self, ConvertError> {
        Ok(WireLwwRecord {
            value: record_value(r.value.as_ref().map(WireValue::try_from).transpose()?),
            timestamp: r.timestamp.into(),
            ttl_ms: r.ttl_ms,
        })
    }
}

impl TryFrom<LwwRecord> for WireLwwRecord {
    type Error = ConvertError;

    fn try_from(r: LwwRecord) -> Result<Self, ConvertError> {
        Ok(WireLwwRecord {
            value: record_value(r.value.map(WireValue::try_from).transpose()?),
            timestamp: r.timestamp.into(),
            ttl_ms: r.ttl_ms,
        })
    }
}

impl From<WireLwwRecord> for LwwRecord {
    fn from(r: WireLwwRecord) -> Self {
        LwwRecord {
            value: match r.value {
                RecordValue::Live(v) => Some(v.into()),
                RecordValue::Tombstone => None,
            },
            timestamp: r.timestamp.into(),
            ttl_ms: r.ttl_ms,
        }
    }
}

impl TryFrom<&OrItem> for WireOrItem {
    type Error = ConvertError;

    fn try_from(i: &OrItem) -> Result<Self, ConvertError> {
        Ok(WireOrItem {
            value: WireValue::try_from(&i.value)?,
            tag: i.tag.into(),
            ttl_ms: i.ttl_ms,
        })
    }
}

impl TryFrom<OrItem> for WireOrItem {
    type Error = ConvertError;

    fn try_from(i: OrItem) -> Result<Self, ConvertError> {
        Ok(WireOrItem {
            value: WireValue::try_from(i.value)?,
            tag: i.tag.into(),
            ttl_ms: i.ttl_ms,
        })
    }
}

impl From<WireOrItem> for OrItem {
    fn from(i: WireOrItem) -> Self {
        OrItem {
            value: Value::from(i.value),
            tag: i.tag.into(),
            ttl_ms: i.ttl_ms,
        }
    }
}

impl TryFrom<&OrEntry> for WireOrEntry {
    type Error = ConvertError;

    fn try_from(e: &OrEntry) -> Result<Self, ConvertError> {
        Ok(WireOrEntry {
            items: e
                .items()
                .map(WireOrItem::try_from)
                .collect::<Result<_, _>>()?,
            tombstones: e.tombstones().map(WireOrTombstone::from).collect(),
        })
    }
}

impl From<WireOrEntry> for OrEntry {
    /// Rebuilds the entry with [`OrEntry::from_parts`], which merges the
    /// parts: items whose tag is among the tombstones are dropped and
    /// duplicates collapse.
    fn from(e: WireOrEntry) -> Self {
        OrEntry::from_parts(
            e.items.into_iter().map(OrItem::from),
            e.tombstones.into_iter().map(OrTombstone::from),
        )
    }
}

impl From<OrTombstone> for WireOrTombstone {
    fn from(t: OrTombstone) -> Self {
        WireOrTombstone {
            tag: t.tag.into(),
            removed_at: t.removed_at.into(),
        }
    }
}

impl From<WireOrTombstone> for OrTombstone {
    fn from(t: WireOrTombstone) -> Self {
        OrTombstone {
            tag: t.tag.into(),
            removed_at: t.removed_at.into(),
        }
    }
}

impl TryFrom<&OpKind> for WireOpKind {
    type Error = ConvertError;

    fn try_from(k: &OpKind) -> Result<Self, ConvertError> {
        Ok(match k {
            OpKind::Put { value, ttl_ms } => WireOpKind::Put {
                value: value.try_into()?,
                ttl_ms: *ttl_ms,
            },
            OpKind::Remove => WireOpKind::Remove,
            OpKind::OrAdd { value, ttl_ms } => WireOpKind::OrAdd {
                value: value.try_into()?,
                ttl_ms: *ttl_ms,
            },
            OpKind::OrRemove { tags } => WireOpKind::OrRemove {
                tags: tags.iter().map(WireTimestamp::from).collect(),
            },
        })
    }
}

impl TryFrom<OpKind> for WireOpKind {
    type Error = ConvertError;

    fn try_from(k: OpKind) -> Result<Self, ConvertError> {
        Ok(match k {
            OpKind::Put { value, ttl_ms } => WireOpKind::Put {
                value: value.try_into()?,
                ttl_ms,
            },
            OpKind::Remove => WireOpKind::Remove,
            OpKind::OrAdd { value, ttl_ms } => WireOpKind::OrAdd {
                value: value.try_into()?,
                ttl_ms,
            },
            OpKind::OrRemove { tags } => WireOpKind::OrRemove {
                tags: tags.into_iter().map(WireTimestamp::from).collect(),
            },
        })
    }
}

impl From<WireOpKind> for OpKind {
    fn from(k: WireOpKind) -> Self {
        match k {
            WireOpKind::Put { value, ttl_ms } => OpKind::Put {
                value: value.into(),
                ttl_ms,
            },
            WireOpKind::Remove => OpKind::Remove,
            WireOpKind::OrAdd { value, ttl_ms } => OpKind::OrAdd {
                value: value.into(),
                ttl_ms,
            },
            WireOpKind::OrRemove { tags } => OpKind::OrRemove {
                tags: tags.into_iter().map(Timestamp::from).collect(),
            },
        }
    }
}
