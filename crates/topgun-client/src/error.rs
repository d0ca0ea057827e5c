//! Typed errors: one enum for setting a connection up, one for requests on
//! an established connection, and how a connection ended.

use std::fmt;
use std::io;
use std::path::PathBuf;

use topgun_core::merkle::MerkleError;
use topgun_protocol::{AuthFailReason, ConvertError, DecodeError, EncodeError, ErrorCode};

/// Why a [`crate::ClientConfig`] or [`crate::TlsConfig`] is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The server URL does not parse.
    #[error("invalid server URL `{url}`: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The URL's scheme is neither `ws` nor `wss`.
    #[error("unsupported URL scheme `{scheme}` (use ws:// or wss://)")]
    UnsupportedScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// The URL names no host.
    #[error("the server URL `{url}` names no host")]
    MissingHost {
        /// The URL as given.
        url: String,
    },
    /// A `wss://` URL without a [`crate::TlsConfig`]: this client never
    /// falls back to a built-in set of trusted roots.
    #[error("a wss:// URL needs a TlsConfig with the CA bundle that signed the server certificate")]
    TlsRequired,
    /// A [`crate::TlsConfig`] with a plain `ws://` URL, where it would be
    /// silently ignored.
    #[error("a TlsConfig was given for a plain ws:// URL; use wss:// for TLS")]
    TlsWithoutWss,
    /// A PEM file could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    ReadFile {
        /// Which file ("CA bundle", "client certificate", "client key").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// PEM input holds no certificate (or is not PEM at all).
    #[error("the {what} holds no PEM certificate")]
    NoCertificates {
        /// Which input ("CA bundle", "client certificate").
        what: &'static str,
    },
    /// PEM input is malformed.
    #[error("the {what} is not valid PEM: {detail}")]
    InvalidPem {
        /// Which input.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("CA certificate refused as a trust anchor: {detail}")]
    BadCaCertificate {
        /// rustls' / webpki's message.
        detail: String,
    },
    /// The client certificate chain and key do not form a usable identity
    /// (e.g. the key does not match the certificate, or its type is not
    /// supported).
    #[error("client certificate and key are unusable: {detail}")]
    BadClientIdentity {
        /// rustls' message.
        detail: String,
    },
    /// A name given with [`crate::TlsConfig::with_server_name`] (or the URL's
    /// host) is not a valid DNS name or IP address.
    #[error("`{name}` is not a valid TLS server name")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// rustls refused the configuration (e.g. the protocol versions).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[source] rustls::Error),
}

/// The step of [`crate::Client::connect`] that failed or timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectStage {
    /// Name resolution and the TCP connection.
    Tcp,
    /// The TLS handshake (`wss://` only).
    Tls,
    /// The WebSocket upgrade (HTTP request and response).
    WebSocket,
    /// The `AUTH_REQUIRED` / `AUTH` / `AUTH_ACK` exchange, including the
    /// token provider's call.
    Auth,
}

impl fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectStage::Tcp => "TCP connect",
            ConnectStage::Tls => "TLS handshake",
            ConnectStage::WebSocket => "WebSocket upgrade",
            ConnectStage::Auth => "authentication",
        })
    }
}

/// How the server's choice of subprotocol failed to match the one offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubprotocolProblem {
    /// The server accepted the upgrade without selecting a subprotocol
    /// (e.g. it does not speak the offered encoding).
    NoneSelected,
    /// The server selected a subprotocol that was not offered.
    OtherSelected,
}

/// Why [`crate::Client::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An I/O error (name resolution, connection refused, reset, ...).
    #[error("{stage} failed: {source}")]
    Io {
        /// Where it happened.
        stage: ConnectStage,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed, or the server refused the client's
    /// certificate. The rustls error names the problem ("invalid peer
    /// certificate: UnknownIssuer", "certificate not valid for name ...",
    /// "received fatal alert: CertificateRequired").
    #[error("TLS failed during the {stage}: {error}{}", hint_suffix(.error))]
    Tls {
        /// Where it happened (a refused client certificate often shows up
        /// only after the handshake, during the WebSocket upgrade).
        stage: ConnectStage,
        /// rustls' error.
        #[source]
        error: rustls::Error,
    },
    /// The server answered the upgrade request with an HTTP status other
    /// than 101.
    #[error("the server refused the WebSocket upgrade with HTTP status {status}")]
    UpgradeRefused {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, if any (at most 512 bytes).
        body: Option<String>,
    },
    /// The upgrade response is not a valid WebSocket handshake.
    #[error("invalid WebSocket upgrade response: {detail}")]
    InvalidUpgrade {
        /// The WebSocket library's message.
        detail: String,
    },
    /// The server did not select the subprotocol offered (the configured
    /// encoding's `topgun.v1.*`).
    #[error("the server did not select the offered subprotocol `{offered}` ({problem:?})")]
    SubprotocolMismatch {
        /// The subprotocol offered.
        offered: &'static str,
        /// What the server did instead.
        problem: SubprotocolProblem,
    },
    /// A step took longer than its configured timeout.
    #[error("{stage} timed out")]
    Timeout {
        /// The step.
        stage: ConnectStage,
    },
    /// A server frame did not decode.
    #[error("undecodable message from the server: {0}")]
    Protocol(#[source] DecodeError),
    /// A message could not be encoded (e.g. a token longer than the message
    /// size limit).
    #[error("cannot encode a message: {0}")]
    Encode(#[source] EncodeError),
    /// The server sent a message that makes no sense at this point of the
    /// handshake.
    #[error("unexpected {got} from the server while waiting for {expected}")]
    UnexpectedMessage {
        /// The message expected.
        expected: &'static str,
        /// The message received.
        got: &'static str,
    },
    /// The server's protocol versions do not overlap with this client's.
    #[error(
        "the server speaks protocol versions {server_min}..={server_max}, this client {client_min}..={client_max}"
    )]
    UnsupportedVersion {
        /// Oldest version the server speaks.
        server_min: u16,
        /// Newest version the server speaks.
        server_max: u16,
        /// Oldest version this client speaks.
        client_min: u16,
        /// Newest version this client speaks.
        client_max: u16,
    },
    /// The token provider returned no token, so the connection was closed
    /// unauthenticated.
    #[error("the token provider returned no token")]
    NoToken,
    /// The server refused the token.
    #[error("authentication failed ({reason:?}): {message}")]
    AuthFailed {
        /// The server's typed reason.
        reason: AuthFailReason,
        /// The server's explanation.
        message: String,
    },
    /// The server reported an error instead of completing the handshake.
    #[error("server error {code:?} during the handshake: {message}")]
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The connection closed during the handshake.
    #[error("the connection closed during the handshake (code {code:?}): {reason}")]
    Closed {
        /// The WebSocket close code, if a close frame arrived.
        code: Option<u16>,
        /// The close reason, or a description of how the connection ended.
        reason: String,
    },
}

/// A hint for the common certificate problems, appended to the message.
fn hint_suffix(error: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            " (unknown issuer: the server's certificate is not signed by a CA in the configured bundle)"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            " (the certificate's subjectAltNames do not include the host in the URL)"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            " (the server's certificate has expired)"
        }
        rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA,
        ) => " (the server refused the client certificate, or requires one)",
        _ => "",
    }
}

/// Who or what ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseInitiator {
    /// The server sent a close frame.
    Server,
    /// This client closed the connection ([`crate::Client::close`], or every
    /// handle was dropped).
    Client,
    /// This client closed the connection because the server broke the
    /// protocol (an undecodable frame).
    ProtocolViolation,
    /// The connection failed or ended without a close frame.
    Transport,
}

/// How a connection ended: the close code and reason (from the close frame
/// when there was one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket close code; `None` when the connection ended without a
    /// close frame.
    pub code: Option<u16>,
    /// The close reason, or a description of how the connection ended.
    pub reason: String,
    /// Who ended it.
    pub initiator: CloseInitiator,
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(
                f,
                "closed with code {code} ({:?}): {}",
                self.initiator, self.reason
            ),
            None => write!(
                f,
                "closed without a close frame ({:?}): {}",
                self.initiator, self.reason
            ),
        }
    }
}

/// The server broke the protocol in answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A sync request was answered with the wrong message.
    #[error("expected {expected} in the sync exchange, got {got}")]
    UnexpectedSyncResponse {
        /// The message expected.
        expected: &'static str,
        /// The message received.
        got: &'static str,
    },
    /// `SYNC_RESP_BUCKETS` did not answer exactly the requested paths, in
    /// order.
    #[error(
        "SYNC_RESP_BUCKETS answered {received} buckets (or other paths) for {requested} requested"
    )]
    BucketMismatch {
        /// Paths requested.
        requested: usize,
        /// Buckets received.
        received: usize,
    },
    /// The server's bucket hashes name a path this client's tree does not
    /// have.
    #[error("the server's buckets do not fit the local Merkle tree: {0}")]
    Merkle(#[source] MerkleError),
    /// `SYNC_RESP_LEAF` carried records of the other map kind.
    #[error("SYNC_RESP_LEAF carried records of the wrong map kind")]
    MapKindMismatch,
    /// `SYNC_RESP_LEAF` carried a key outside the leaf buckets requested.
    #[error("SYNC_RESP_LEAF carried key `{key}` outside the requested leaf buckets")]
    KeyOutsideRequestedLeaves {
        /// The key.
        key: String,
    },
    /// The descent went deeper than the tree.
    #[error("the Merkle descent went past the leaves")]
    DescentTooDeep,
}

/// Why a request on an established connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection ended before the request was answered (or before it
    /// was sent). Every pending request resolves with this when the
    /// connection closes.
    #[error("disconnected (code {code:?}): {reason}")]
    Disconnected {
        /// The WebSocket close code, if the connection ended with a close
        /// frame.
        code: Option<u16>,
        /// The close reason, or how the connection ended.
        reason: String,
    },
    /// No answer arrived within the configured request timeout.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The request could not be encoded (too large, nests too deep, a
    /// non-finite float).
    #[error("cannot encode the request: {0}")]
    Encode(#[source] EncodeError),
    /// A value or query cannot be expressed on the wire.
    #[error("cannot convert the request to its wire form: {0}")]
    Convert(#[source] ConvertError),
    /// An op id supplied by the caller is already awaiting an answer (or
    /// appears twice in one batch); answers could not be told apart.
    #[error("op id {0} is already in flight")]
    DuplicateOpId(u64),
    /// The server answered the request with an `ERROR`.
    #[error("server error {code:?}: {message}")]
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// A sync of this map (and kind) is already running on this connection.
    #[error("a sync of map `{map}` is already running")]
    SyncInProgress {
        /// The map.
        map: String,
    },
    /// The local map's Merkle depth differs from the protocol's
    /// ([`topgun_protocol::SYNC_MERKLE_DEPTH`]), so bucket paths would not
    /// mean the same thing on both sides.
    #[error("the local map's Merkle depth is {local}, the protocol's is {expected}")]
    MerkleDepthMismatch {
        /// The local tree's depth.
        local: u8,
        /// The protocol's depth.
        expected: u8,
    },
    /// The server's answer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
}

impl ClientError {
    pub(crate) fn disconnected(info: &CloseInfo) -> Self {
        ClientError::Disconnected {
            code: info.code,
            reason: info.reason.clone(),
        }
    }
}

/// Extracts the rustls error from an I/O error raised by the TLS stream.
pub(crate) fn rustls_error(e: &io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// Classifies an I/O error of a connect step: a TLS error when rustls
/// raised it, a plain I/O error otherwise.
pub(crate) fn io_error(stage: ConnectStage, source: io::Error) -> ConnectError {
    match rustls_error(&source) {
        Some(error) => ConnectError::Tls { stage, error },
        None => ConnectError::Io { stage, source },
    }
}
