//! The two message enums, one per direction, and what they carry.
//!
//! Both use serde's externally tagged representation: in JSON a message is
//! an object with one key, the message name (`{"PING":{"nonce":7}}`); in
//! bincode it is the variant index (the position in the enum, starting at
//! 0) followed by the fields in declaration order. Variants are never
//! reordered or removed; a new message is appended and comes with a new
//! protocol version.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codes::{AuthFailReason, AuthRequiredReason, ErrorCode, RejectCode, WriteConcern};
use crate::ids::{Hash64, WireTimestamp};
use crate::merkle::{BucketHashes, LeafRecords, WireLeafDigest, WireMerklePath};
use crate::query::{ChangeKind, QueryRecord, WireQuery};
use crate::record::{Op, WireMapKind};

/// A message from a client to the server.
///
/// No message (and no field of one) can express a caller origin: the server
/// sets it from the connection. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum ClientMessage {
    /// `AUTH`: present a token and the chosen protocol version.
    Auth {
        /// The bearer token (a JWT).
        token: String,
        /// The protocol version the client speaks, within the range the
        /// server announced in `AUTH_REQUIRED`.
        protocol_version: u16,
    },
    /// `CLIENT_OP`: one operation.
    ClientOp {
        /// The operation.
        op: Op,
    },
    /// `OP_BATCH`: several operations, each answered individually.
    OpBatch {
        /// The operations, applied in order.
        #[serde(deserialize_with = "crate::seq::bounded")]
        ops: Vec<Op>,
        /// How durable the writes must be before they are acknowledged
        /// (JSON: may be omitted, meaning `Durable`).
        #[serde(default)]
        write_concern: WriteConcern,
    },
    /// `QUERY_SUB`: subscribe to a live query over a last-writer-wins map.
    QuerySub {
        /// Chosen by the client, unique among its live subscriptions.
        query_id: u64,
        /// The map.
        map: String,
        /// Filter, sort and limit.
        query: WireQuery,
    },
    /// `QUERY_UNSUB`: end a subscription.
    QueryUnsub {
        /// The subscription.
        query_id: u64,
    },
    /// `SYNC_INIT`: start a Merkle sync of one map by sending the client's
    /// root hash.
    SyncInit {
        /// The map.
        map: String,
        /// Its kind.
        kind: WireMapKind,
        /// The client's root hash.
        root: Hash64,
    },
    /// `MERKLE_REQ_BUCKET`: ask for the child hashes of inner nodes whose
    /// hash differs.
    MerkleReqBucket {
        /// The map.
        map: String,
        /// Its kind.
        kind: WireMapKind,
        /// Inner nodes to expand.
        #[serde(deserialize_with = "crate::seq::bounded")]
        paths: Vec<WireMerklePath>,
    },
    /// `SYNC_REQ_LEAF`: send the client's digests of leaf buckets that
    /// differ, asking for the server's records of the keys that differ.
    SyncReqLeaf {
        /// The map.
        map: String,
        /// Its kind.
        kind: WireMapKind,
        /// The client's (key, entry hash) lists, one per leaf bucket.
        #[serde(deserialize_with = "crate::seq::bounded")]
        leaves: Vec<WireLeafDigest>,
    },
    /// `PING`: liveness probe; answered with `PONG` carrying the same nonce.
    Ping {
        /// Any number, echoed back (often a timestamp).
        nonce: u64,
    },
    /// `PONG`: answer to the server's `PING`.
    Pong {
        /// The nonce of the `PING` being answered.
        nonce: u64,
    },
}

/// The acknowledgement of one op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpAckEntry {
    /// The client's op id.
    pub op_id: u64,
    /// The timestamp the server applied (it may differ from the client's);
    /// the client adopts it so its replica converges.
    pub timestamp: WireTimestamp,
}

/// The rejection of one op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRejection {
    /// The client's op id.
    pub op_id: u64,
    /// Why.
    pub code: RejectCode,
    /// A human-readable explanation.
    pub message: String,
}

/// The request an `ERROR` answers, so that a client fails exactly that
/// request instead of guessing.
///
/// In JSON an externally tagged object (`{"Query":{"query_id":7}}`), in
/// bincode the variant index then the fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub enum ErrorContext {
    /// A `QUERY_SUB` or `QUERY_UNSUB` with this query id.
    Query {
        /// The query id the request named.
        query_id: u64,
    },
    /// A Merkle sync request (`SYNC_INIT`, `MERKLE_REQ_BUCKET`,
    /// `SYNC_REQ_LEAF`) of this map and kind: the exchange it belongs to.
    Sync {
        /// The map the request named.
        map: String,
        /// The kind the request named.
        kind: WireMapKind,
    },
}

/// A message from the server to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum ServerMessage {
    /// `AUTH_REQUIRED`: the server wants a token, now or before the session
    /// expires.
    AuthRequired {
        /// The oldest protocol version the server speaks.
        min_version: u16,
        /// The newest protocol version the server speaks.
        max_version: u16,
        /// Why a token is wanted.
        reason: AuthRequiredReason,
    },
    /// `AUTH_ACK`: the token was accepted.
    AuthAck {
        /// The protocol version in use from now on.
        protocol_version: u16,
        /// The authenticated principal (the token's `sub`).
        sub: String,
        /// When the session ends unless renewed, in milliseconds since the
        /// Unix epoch; `None` when the server runs without auth.
        session_expires_at_ms: Option<u64>,
    },
    /// `AUTH_FAIL`: the token was refused.
    AuthFail {
        /// Why.
        reason: AuthFailReason,
        /// A human-readable explanation.
        message: String,
    },
    /// `OP_ACK`: ops that were applied.
    OpAck {
        /// One entry per acknowledged op.
        #[serde(deserialize_with = "crate::seq::bounded")]
        acks: Vec<OpAckEntry>,
    },
    /// `OP_REJECTED`: ops that were not applied.
    OpRejected {
        /// One entry per rejected op.
        #[serde(deserialize_with = "crate::seq::bounded")]
        rejections: Vec<OpRejection>,
    },
    /// `QUERY_RESP`: the initial result of a subscription.
    QueryResp {
        /// The subscription.
        query_id: u64,
        /// The matching records, in query order, at most `limit`.
        #[serde(deserialize_with = "crate::seq::bounded")]
        records: Vec<QueryRecord>,
    },
    /// `QUERY_UPDATE`: one change to a subscription's result.
    QueryUpdate {
        /// The subscription.
        query_id: u64,
        /// How the record's membership changed.
        change: ChangeKind,
        /// The key.
        key: String,
        /// The key's current record (for `Leave`, the record that made it
        /// leave, e.g. a tombstone).
        record: crate::record::WireLwwRecord,
    },
    /// `SYNC_RESP_ROOT`: the server's root hash for a map.
    SyncRespRoot {
        /// The map.
        map: String,
        /// Its kind.
        kind: WireMapKind,
        /// The server's root hash.
        root: Hash64,
    },
    /// `SYNC_RESP_BUCKETS`: child hashes of the requested inner nodes.
    SyncRespBuckets {
        /// The map.
        map: String,
        /// Its kind.
        kind: WireMapKind,
        /// One entry per requested path, in request order.
        #[serde(deserialize_with = "crate::seq::bounded")]
        buckets: Vec<BucketHashes>,
    },
    /// `SYNC_RESP_LEAF`: the server's records for the keys that differ, and
    /// the keys whose client state the server wants.
    ///
    /// One `SYNC_REQ_LEAF` may be answered by several of these, so that
    /// none exceeds the message size limit: the answer is the union of
    /// their records and wanted keys, and ends with the one whose `last`
    /// is true.
    SyncRespLeaf {
        /// The map.
        map: String,
        /// The server's records (tombstones included) for keys it holds
        /// that the client lacks or holds differently; the variant gives
        /// the map kind.
        records: LeafRecords,
        /// Keys the client holds that the server lacks or holds
        /// differently: the client should send its state for them.
        #[serde(deserialize_with = "crate::seq::bounded")]
        wanted_keys: Vec<String>,
        /// True on the final message answering one `SYNC_REQ_LEAF`;
        /// `wanted_keys` is complete only then. (Required in JSON too: a
        /// message that does not say whether more follow is refused.)
        last: bool,
    },
    /// `PING`: liveness probe; answer with `PONG`.
    Ping {
        /// Echoed back in the `PONG`.
        nonce: u64,
    },
    /// `PONG`: answer to the client's `PING`.
    Pong {
        /// The nonce of the `PING` being answered.
        nonce: u64,
    },
    /// `ERROR`: a problem with the connection or a non-op request.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// The request this error answers; `None` for an error about the
        /// connection as a whole (a malformed frame, a rate limit, the
        /// session expiring, shutdown).
        ///
        /// JSON: may be omitted (or `null`), meaning `None`. bincode is
        /// positional, so the option is always on the wire: one byte 0 for
        /// `None`, or 1 followed by the context.
        #[serde(default)]
        context: Option<ErrorContext>,
    },
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ClientMessage {}
    impl Sealed for super::ServerMessage {}
}

/// The two message enums; the codec encodes and decodes exactly these.
pub trait Message: Serialize + DeserializeOwned + sealed::Sealed {
    /// Every message name of this direction, in variant order.
    const NAMES: &'static [&'static str];

    /// The message's wire name, e.g. `"AUTH"` (also its JSON tag).
    fn name(&self) -> &'static str;
}

impl Message for ClientMessage {
    const NAMES: &'static [&'static str] = &[
        "AUTH",
        "CLIENT_OP",
        "OP_BATCH",
        "QUERY_SUB",
        "QUERY_UNSUB",
        "SYNC_INIT",
        "MERKLE_REQ_BUCKET",
        "SYNC_REQ_LEAF",
        "PING",
        "PONG",
    ];

    fn name(&self) -> &'static str {
        Self::NAMES[match self {
            ClientMessage::Auth { .. } => 0,
            ClientMessage::ClientOp { .. } => 1,
            ClientMessage::OpBatch { .. } => 2,
            ClientMessage::QuerySub { .. } => 3,
            ClientMessage::QueryUnsub { .. } => 4,
            ClientMessage::SyncInit { .. } => 5,
            ClientMessage::MerkleReqBucket { .. } => 6,
            ClientMessage::SyncReqLeaf { .. } => 7,
            ClientMessage::Ping { .. } => 8,
            ClientMessage::Pong { .. } => 9,
        }]
    }
}

impl Message for ServerMessage {
    const NAMES: &'static [&'static str] = &[
        "AUTH_REQUIRED",
        "AUTH_ACK",
        "AUTH_FAIL",
        "OP_ACK",
        "OP_REJECTED",
        "QUERY_RESP",
        "QUERY_UPDATE",
        "SYNC_RESP_ROOT",
        "SYNC_RESP_BUCKETS",
        "SYNC_RESP_LEAF",
        "PING",
        "PONG",
        "ERROR",
    ];

    fn name(&self) -> &'static str {
        Self::NAMES[match self {
            ServerMessage::AuthRequired { .. } => 0,
            ServerMessage::AuthAck { .. } => 1,
            ServerMessage::AuthFail { .. } => 2,
            ServerMessage::OpAck { .. } => 3,
            ServerMessage::OpRejected { .. } => 4,
            ServerMessage::QueryResp { .. } => 5,
            ServerMessage::QueryUpdate { .. } => 6,
            ServerMessage::SyncRespRoot { .. } => 7,
            ServerMessage::SyncRespBuckets { .. } => 8,
            ServerMessage::SyncRespLeaf { .. } => 9,
            ServerMessage::Ping { .. } => 10,
            ServerMessage::Pong { .. } => 11,
            ServerMessage::Error { .. } => 12,
        }]
    }
}
