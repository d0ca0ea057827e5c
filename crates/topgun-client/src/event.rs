//! Things that happen on a connection outside any one request, delivered
//! through [`crate::Client::events`].

use topgun_protocol::{AuthFailReason, ErrorCode, ErrorContext};

use crate::error::CloseInfo;
use crate::handshake::SessionInfo;

/// Why a session renewal was not attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RenewalSkipped {
    /// The token provider returned no token; the server will close the
    /// connection when the session expires.
    NoToken,
    /// The server's announced versions do not overlap with this client's.
    UnsupportedVersion,
    /// The `AUTH` message could not be encoded (e.g. a token larger than the
    /// message size limit).
    Encode,
}

/// A connection-level event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server sent an `ERROR`. Errors that answer a pending
    /// subscription or sync also fail that request.
    ServerError {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// The request the error answers, as the server named it; `None`
        /// for an error about the connection as a whole.
        context: Option<ErrorContext>,
    },
    /// The server accepted a fresh token (`AUTH_ACK` after a renewal
    /// request); the session now ends at the new expiry.
    SessionRenewed(SessionInfo),
    /// The server refused the fresh token (`AUTH_FAIL` after a renewal
    /// request).
    RenewalFailed {
        /// The server's typed reason.
        reason: AuthFailReason,
        /// The server's explanation.
        message: String,
    },
    /// A renewal request (`AUTH_REQUIRED`) was not answered.
    RenewalSkipped(RenewalSkipped),
    /// A subscription's reader fell behind its buffer; the subscription
    /// was ended and unsubscribed.
    SubscriptionLagged {
        /// The subscription's query id.
        query_id: u64,
    },
    /// The connection ended; no further events follow.
    Closed(CloseInfo),
}
