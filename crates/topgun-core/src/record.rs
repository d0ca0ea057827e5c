//! Records, operations and origins: the shared vocabulary of every crate.

use crate::hlc::Timestamp;
use crate::value::Value;

/// The two kinds of replicated map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKind {
    /// Last-writer-wins map: one value per key; the greatest timestamp wins.
    Lww,
    /// Observed-remove map: many values per key; an add wins over a
    /// concurrent remove.
    Or,
}

/// Where an operation came from, as established by the server from the kind
/// of connection it arrived on. Never taken from a client message.
///
/// Only [`CallerOrigin::Client`] passes through authorization and write
/// validation; the trusted origins were checked by the node that first
/// received the operation, or are the server's own work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallerOrigin {
    /// A client connection. Every check applies.
    Client,
    /// Forwarded by another cluster node over an authenticated mTLS link.
    Forwarded,
    /// Replicated to this node as a backup of a partition it does not own.
    Backup,
    /// Replicated from another cluster across a WAN link.
    Wan,
    /// The server's own internal work (expiry, restore, maintenance).
    System,
}

impl CallerOrigin {
    /// Whether operations of this origin skip client authorization and
    /// validation.
    pub fn is_trusted(self) -> bool {
        !matches!(self, CallerOrigin::Client)
    }
}

/// The state of one key in a last-writer-wins map.
///
/// A removal is a record too (a tombstone, `value: None`), so that deletions
/// replicate and sync like any write.
#[derive(Clone, Debug, PartialEq)]
pub struct LwwRecord {
    /// The value, or `None` for a tombstone.
    pub value: Option<Value>,
    /// When the write happened; the greater timestamp wins a merge (on equal
    /// timestamps, the greater [`crate::lww::entry_hash`]).
    pub timestamp: Timestamp,
    /// Time to live in milliseconds, counted from `timestamp.millis`.
    pub ttl_ms: Option<u64>,
}

impl LwwRecord {
    /// A live value written at `timestamp`.
    pub fn put(value: Value, timestamp: Timestamp) -> Self {
        LwwRecord {
            value: Some(value),
            timestamp,
            ttl_ms: None,
        }
    }

    /// A live value that expires `ttl_ms` after `timestamp`.
    pub fn put_with_ttl(value: Value, timestamp: Timestamp, ttl_ms: u64) -> Self {
        LwwRecord {
            value: Some(value),
            timestamp,
            ttl_ms: Some(ttl_ms),
        }
    }

    /// A tombstone: the key was removed at `timestamp`.
    pub fn tombstone(timestamp: Timestamp) -> Self {
        LwwRecord {
            value: None,
            timestamp,
            ttl_ms: None,
        }
    }

    /// Whether this record marks a removal.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The physical time (ms) at which this record expires, if it has a TTL.
    pub fn expires_at(&self) -> Option<u64> {
        self.ttl_ms
            .map(|ttl| self.timestamp.millis.saturating_add(ttl))
    }

    /// The value visible at physical time `now_millis`: `None` for a
    /// tombstone or an expired record.
    pub fn live_value(&self, now_millis: u64) -> Option<&Value> {
        match self.expires_at() {
            Some(at) if at <= now_millis => None,
            _ => self.value.as_ref(),
        }
    }
}

/// One value in an observed-remove map, identified by its unique tag.
#[derive(Clone, Debug, PartialEq)]
pub struct OrItem {
    /// The value.
    pub value: Value,
    /// The unique tag: the timestamp of the add that created this item.
    /// Should two different items carry one tag (only a misbehaving node
    /// makes them), replicas keep the one with the greater
    /// [`crate::or::item_hash`].
    pub tag: Timestamp,
    /// Time to live in milliseconds, counted from `tag.millis`.
    pub ttl_ms: Option<u64>,
}

impl OrItem {
    /// The physical time (ms) at which this item expires, if it has a TTL.
    pub fn expires_at(&self) -> Option<u64> {
        self.ttl_ms.map(|ttl| self.tag.millis.saturating_add(ttl))
    }

    /// Whether the item is visible at physical time `now_millis`.
    pub fn is_live(&self, now_millis: u64) -> bool {
        self.expires_at().is_none_or(|at| at > now_millis)
    }
}

/// The record that an item of an observed-remove map was removed.
///
/// Kept so that the removal syncs to replicas that still hold the item, and
/// pruned once every replica has seen the removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrTombstone {
    /// The tag of the removed item.
    pub tag: Timestamp,
    /// The timestamp of the removal (the latest one when several replicas
    /// removed the same item). Never earlier than `tag`: a removal follows
    /// the add it observed.
    pub removed_at: Timestamp,
}

/// What a client asks to do to one key. The server turns it into records
/// after assigning timestamps.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Set a last-writer-wins key.
    Put {
        /// The new value.
        value: Value,
        /// Optional time to live in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// Remove a last-writer-wins key (writes a tombstone).
    Remove,
    /// Add a value to an observed-remove key.
    OrAdd {
        /// The value to add.
        value: Value,
        /// Optional time to live in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// Remove the observed items with these tags from an observed-remove key.
    /// The timestamp the server assigns to the op becomes the tombstones'
    /// removal time ([`OrTombstone::removed_at`]).
    OrRemove {
        /// Tags of the items the caller saw and wants removed.
        tags: Vec<Timestamp>,
    },
}

impl OpKind {
    /// The kind of map this operation applies to.
    pub fn map_kind(&self) -> MapKind {
        match self {
            OpKind::Put { .. } | OpKind::Remove => MapKind::Lww,
            OpKind::OrAdd { .. } | OpKind::OrRemove { .. } => MapKind::Or,
        }
    }

    /// Whether this operation deletes data (authorized as `remove`, not
    /// `write`).
    pub fn is_removal(&self) -> bool {
        matches!(self, OpKind::Remove | OpKind::OrRemove { .. })
    }
}
