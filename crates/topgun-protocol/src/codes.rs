//! Small enums carried by messages: why auth is required or failed, why an
//! op was rejected, error codes and the write concern.
//!
//! In bincode each is a varint variant index, in JSON the variant's name,
//! so the order of variants is part of the wire format: new codes are only
//! ever appended.

use serde::{Deserialize, Serialize};

/// Why the server asks for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub enum AuthRequiredReason {
    /// A new connection: nothing but `AUTH` (and `PING`) is accepted until
    /// `AUTH_ACK`.
    Initial,
    /// The session's token expires soon; send a fresh `AUTH` before then or
    /// the connection is closed.
    SessionExpiring {
        /// When the current session ends, in milliseconds since the Unix
        /// epoch.
        expires_at_ms: u64,
    },
}

/// Why an `AUTH` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuthFailReason {
    /// The token is not a well-formed JWT.
    Malformed,
    /// The signature does not verify with the selected key.
    InvalidSignature,
    /// The token's `exp` has passed (beyond the leeway).
    Expired,
    /// The token's `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// A required claim (`sub`, `exp`) is absent.
    MissingClaim,
    /// A claim has the wrong type or value (e.g. `exp` as a string, a wrong
    /// `iss` or `aud`).
    InvalidClaim,
    /// The token's `kid` names no configured key.
    UnknownKeyId,
    /// The token's algorithm is not the one pinned to the key (`none`
    /// included).
    AlgorithmNotAllowed,
    /// The client's `protocol_version` is outside the server's range.
    UnsupportedProtocolVersion,
    /// Too many failed attempts from this peer; retry later.
    RateLimited,
}

/// Why one operation was rejected. Every op of a batch is answered,
/// acknowledged or rejected, individually.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectCode {
    /// The principal may not write (or remove) this key.
    Forbidden,
    /// The value exceeds the server's value size limit.
    ValueTooLarge,
    /// The batch has more ops than the server accepts.
    BatchTooLarge,
    /// The map name is invalid or reserved.
    InvalidMapName,
    /// The key is invalid.
    InvalidKey,
    /// The op's kind does not match the map's kind (an OR op on an LWW map
    /// or the reverse).
    MapKindMismatch,
    /// The client's timestamp is too far from the server's clock.
    ClockDrift,
    /// The connection exceeded its op rate.
    RateLimited,
    /// The requested write concern cannot be met (e.g. no backup replica
    /// is reachable).
    WriteConcernUnavailable,
    /// The server failed to apply the op; it may be retried.
    Internal,
}

/// Errors about the connection or a request that is not an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame could not be decoded.
    MalformedMessage,
    /// A frame exceeded the maximum message size.
    MessageTooLarge,
    /// A message other than `AUTH` or `PING` arrived before `AUTH_ACK`.
    NotAuthenticated,
    /// The principal may not read this map (a subscription or sync was
    /// refused).
    Forbidden,
    /// The request names a query id that is not subscribed, or reuses one
    /// that is.
    UnknownQuery,
    /// The sync request is invalid (a path outside the tree, a kind that
    /// does not match the map).
    InvalidSyncRequest,
    /// The connection exceeded its message or byte rate.
    RateLimited,
    /// The connection fell too far behind its outbound queue; resync.
    SlowConsumer,
    /// The session's token expired without renewal.
    SessionExpired,
    /// The server is shutting down.
    ShuttingDown,
    /// An internal server failure.
    Internal,
}

/// How durable a write must be before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WriteConcern {
    /// Durable in the owning node's local store (group commit).
    #[default]
    Durable,
    /// Durable locally and on the partition's backup replicas.
    Replicated,
}
