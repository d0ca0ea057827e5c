//! The native TopGun-RS client's connection layer: one authenticated
//! WebSocket to a TopGun server, over plain TCP or TLS, speaking the wire
//! protocol of `topgun-protocol` in bincode or JSON.
//!
//! [`Client::connect`] opens the connection ([`ClientConfig`]: URL,
//! [`Encoding`], [`TlsConfig`] with a [`CaBundle`] and optionally a
//! [`ClientIdentity`] for mutual TLS, timeouts, bounds) and authenticates
//! with a token from a [`TokenProvider`], which is called again on every
//! later `AUTH_REQUIRED` to renew the session. A [`Client`] then writes ops
//! ([`Client::send_op`], [`Client::send_batch`], and the pipelined
//! [`Client::submit_batch`] returning a [`PendingBatch`]) and gets one
//! [`OpOutcome`] per op; subscribes to live queries ([`Subscription`],
//! [`QueryChange`]); measures round trips ([`Client::ping`]); runs the
//! Merkle sync exchange for a local map ([`Client::sync_lww`],
//! [`Client::sync_or`], [`SyncReport`]); and reports server errors, renewals
//! and the close through [`Client::events`] and [`Client::closed`]. Every
//! failure is typed: [`ConfigError`], [`ConnectError`], [`ClientError`];
//! when a connection ends, every pending request resolves with
//! [`ClientError::Disconnected`] and the close code.
//!
//! Inside, two background tasks own the socket (a reader that routes every
//! server message through a sans-IO table of pending requests, and a writer
//! that drains two bounded queues), and the sync exchange is a state
//! machine fed with the server's answers.
//!
//! Non-goals here: no offline replica, no storage adapters or encryption at
//! rest, no automatic reconnect or resend of unacknowledged ops (a later
//! layer builds those on this one), no built-in trust roots (a `wss://`
//! connection trusts exactly the configured CA bundle).

mod client;
mod config;
mod driver;
mod error;
mod event;
mod handshake;
mod ops;
mod router;
mod subscription;
mod sync;
mod tls;
mod token;
mod transport;
mod wire;

pub use client::{Client, PendingBatch, RawFrame};
pub use config::{
    CaBundle, ClientConfig, ClientIdentity, Scheme, ServerUrl, TlsConfig, TlsVersion,
};
pub use error::{
    ClientError, CloseInfo, CloseInitiator, ConfigError, ConnectError, ConnectStage,
    ProtocolViolation, SubprotocolProblem,
};
pub use event::{ClientEvent, RenewalSkipped};
pub use handshake::SessionInfo;
pub use ops::{ClientOp, OpOutcome};
pub use subscription::{QueryChange, Subscription, SubscriptionEnd};
pub use sync::SyncReport;
pub use token::{StaticToken, TokenFn, TokenFuture, TokenProvider, TokenReason, token_fn};

/// Protocol types that appear in this crate's API.
pub use topgun_protocol::{
    AuthFailReason, ChangeKind, Encoding, ErrorCode, ErrorContext, RejectCode, WriteConcern,
};
