//! The TopGun-RS wire protocol: every message a client and a server
//! exchange, and a bounded codec that turns them into WebSocket frames and
//! back, as bincode (binary frames) or JSON (text frames).
//!
//! Main types: [`ClientMessage`] and [`ServerMessage`] (one enum per
//! direction, with [`ErrorContext`] tying an `ERROR` to its request);
//! [`Codec`], selected per connection by [`Encoding`], with its typed
//! [`DecodeError`] and [`EncodeError`]; the wire mirrors of the core
//! types ([`WireValue`], [`WireTimestamp`], [`WireLwwRecord`], [`WireOrEntry`],
//! [`WireOpKind`], [`WireFilter`], ...) with explicit `From`/`TryFrom`
//! conversions to and from `topgun_core` (which has no serde derives). The
//! wire format is specified in `docs/protocol.md`, whose examples are
//! checked by this crate's tests.
//!
//! Decoding is safe on hostile input: frames above the size limit are
//! refused unread, bincode decodes under a byte limit, recursive types carry
//! depth guards, and every failure is a typed error, never a panic.
//!
//! Non-goals: no I/O (the server and client own their sockets), no session
//! or handshake state machine, no authorization and no value size policy;
//! those belong to `topgun-server` and `topgun-client`. No message can carry
//! a caller origin: the server derives it from the connection.

mod codec;
mod codes;
mod encoding;
mod error;
mod guard;
mod ids;
mod merkle;
mod message;
mod query;
mod record;
mod seq;
mod storage;
mod value;

pub use codec::{
    BINCODE_CLAIM_FACTOR, BINCODE_LIMIT_TIERS, Codec, DEFAULT_MAX_MESSAGE_BYTES,
    HARD_MAX_MESSAGE_BYTES, bincode_limit_for, decode_stored, encode_stored,
};
pub use codes::{AuthFailReason, AuthRequiredReason, ErrorCode, RejectCode, WriteConcern};
pub use encoding::{Encoding, SUBPROTOCOL_BINCODE, SUBPROTOCOL_JSON};
pub use error::{ConvertError, DecodeError, EncodeError, MAX_DETAIL_LEN, MalformedKind, Nesting};
pub use ids::{Hash64, WireNodeId, WireTimestamp};
pub use merkle::{
    BucketHashes, KeyHash, LeafRecords, LwwKeyRecord, OrKeyEntry, WireLeafDigest, WireMerklePath,
};
pub use message::{ClientMessage, ErrorContext, Message, OpAckEntry, OpRejection, ServerMessage};
pub use query::{ChangeKind, QueryRecord, WireCmpOp, WireFilter, WireQuery, WireSortKey};
pub use record::{
    Op, RecordValue, WireLwwRecord, WireMapKind, WireOpKind, WireOrEntry, WireOrItem,
    WireOrTombstone,
};
pub use storage::{STORED_FORMAT_VERSION, StoredRecord};
pub use value::WireValue;

/// Re-exported protocol bounds that live in `topgun_core`: the deepest
/// value and filter nesting the codec accepts.
pub use topgun_core::{MAX_VALUE_DEPTH, query::MAX_FILTER_DEPTH};

/// The newest protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest protocol version this crate speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The most ops the server accepts in one `OP_BATCH` by default. The codec
/// decodes longer batches (so the server can answer every op with
/// [`RejectCode::BatchTooLarge`] instead of dropping the frame); enforcing
/// the bound is the server's job.
pub const MAX_BATCH_OPS: usize = 1000;

/// The depth of the Merkle trees both sides use for the sync exchange
/// (`topgun_core::merkle::DEFAULT_DEPTH`: 16^3 = 4,096 leaf buckets).
/// Paths and leaf buckets only mean the same thing on both sides when the
/// depths agree, so protocol version 1 fixes it.
pub const SYNC_MERKLE_DEPTH: u8 = topgun_core::merkle::DEFAULT_DEPTH;

/// The protocol version a client should request given the server's
/// announced range (`AUTH_REQUIRED`'s `min_version`/`max_version`): the
/// newest version both sides speak, or `None` when the ranges do not
/// overlap.
pub fn negotiate_version(server_min: u16, server_max: u16) -> Option<u16> {
    let best = server_max.min(PROTOCOL_VERSION);
    (best >= server_min.max(MIN_PROTOCOL_VERSION)).then_some(best)
}

/// Whether this crate speaks protocol version `v` (the server's check of
/// `AUTH`'s `protocol_version`).
pub fn is_supported_version(v: u16) -> bool {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_picks_the_newest_common_version() {
        assert_eq!(negotiate_version(1, 1), Some(1));
        assert_eq!(negotiate_version(1, 9), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate_version(2, 9), None);
        assert_eq!(negotiate_version(0, 0), None);
        assert!(is_supported_version(PROTOCOL_VERSION));
        assert!(!is_supported_version(0));
        assert!(!is_supported_version(PROTOCOL_VERSION + 1));
    }
}
