//! The authentication exchange that completes a connection:
//! `AUTH_REQUIRED` -> `AUTH` -> `AUTH_ACK` (or `AUTH_FAIL`, or a close).

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use topgun_protocol::{
    AuthRequiredReason, ClientMessage, Codec, MIN_PROTOCOL_VERSION, Message as _, PROTOCOL_VERSION,
    ServerMessage, negotiate_version,
};

use crate::error::{ConnectError, ConnectStage, io_error};
use crate::token::{TokenProvider, TokenReason};
use crate::transport::WsStream;
use crate::wire::{self, codes};

/// What the server told the client about its session in `AUTH_ACK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The authenticated principal (the token's `sub`).
    pub sub: String,
    /// The protocol version in use.
    pub protocol_version: u16,
    /// When the session ends unless renewed (milliseconds since the Unix
    /// epoch); `None` when the server runs without auth.
    pub expires_at_ms: Option<u64>,
}

/// The token reason for an `AUTH_REQUIRED` reason.
pub(crate) fn token_reason(reason: AuthRequiredReason) -> TokenReason {
    match reason {
        AuthRequiredReason::SessionExpiring { expires_at_ms } => {
            TokenReason::Renewal { expires_at_ms }
        }
        _ => TokenReason::Initial,
    }
}

/// Runs the exchange on a fresh WebSocket. On failure the socket is closed
/// (politely when the client gives up, e.g. without a token).
pub(crate) async fn authenticate(
    ws: &mut WsStream,
    codec: &Codec,
    provider: &dyn TokenProvider,
) -> Result<SessionInfo, ConnectError> {
    let (min, max, reason) = match recv(ws, codec).await? {
        ServerMessage::AuthRequired {
            min_version,
            max_version,
            reason,
        } => (min_version, max_version, reason),
        ServerMessage::Error { code, message, .. } => {
            return Err(ConnectError::Server { code, message });
        }
        other => return Err(unexpected("AUTH_REQUIRED", &other)),
    };
    let Some(version) = negotiate_version(min, max) else {
        close(ws, codes::PROTOCOL_ERROR, "no common protocol version").await;
        return Err(ConnectError::UnsupportedVersion {
            server_min: min,
            server_max: max,
            client_min: MIN_PROTOCOL_VERSION,
            client_max: PROTOCOL_VERSION,
        });
    };
    let Some(token) = provider.token(token_reason(reason)).await else {
        close(ws, codes::NORMAL, "no token").await;
        return Err(ConnectError::NoToken);
    };
    let auth = ClientMessage::Auth {
        token,
        protocol_version: version,
    };
    send(ws, codec, &auth).await?;
    match recv(ws, codec).await? {
        ServerMessage::AuthAck {
            protocol_version,
            sub,
            session_expires_at_ms,
        } => Ok(SessionInfo {
            sub,
            protocol_version,
            expires_at_ms: session_expires_at_ms,
        }),
        ServerMessage::AuthFail { reason, message } => {
            close(ws, codes::NORMAL, "authentication failed").await;
            Err(ConnectError::AuthFailed { reason, message })
        }
        ServerMessage::Error { code, message, .. } => Err(ConnectError::Server { code, message }),
        other => Err(unexpected("AUTH_ACK", &other)),
    }
}

fn unexpected(expected: &'static str, got: &ServerMessage) -> ConnectError {
    ConnectError::UnexpectedMessage {
        expected,
        got: got.name(),
    }
}

async fn send(ws: &mut WsStream, codec: &Codec, msg: &ClientMessage) -> Result<(), ConnectError> {
    let frame = wire::encode(codec, msg).map_err(ConnectError::Encode)?;
    ws.send(frame).await.map_err(|e| ws_error(e, "sending"))
}

/// The next protocol message, answering `PING`s on the way.
async fn recv(ws: &mut WsStream, codec: &Codec) -> Result<ServerMessage, ConnectError> {
    loop {
        let frame = match ws.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(ws_error(e, "reading")),
            None => {
                return Err(ConnectError::Closed {
                    code: None,
                    reason: "the connection ended without a close frame".to_owned(),
                });
            }
        };
        if let Message::Close(frame) = &frame {
            let (code, reason) = wire::close_parts(frame.as_ref());
            return Err(ConnectError::Closed { code, reason });
        }
        let Some(payload) = wire::payload(&frame) else {
            continue;
        };
        match wire::decode(codec, payload) {
            Ok(ServerMessage::Ping { nonce }) => {
                send(ws, codec, &ClientMessage::Pong { nonce }).await?;
            }
            Ok(msg) => return Ok(msg),
            Err(e) => {
                close(ws, codes::PROTOCOL_ERROR, "undecodable message").await;
                return Err(ConnectError::Protocol(e));
            }
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error, doing: &str) -> ConnectError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(source) => io_error(ConnectStage::Auth, source),
        E::ConnectionClosed | E::AlreadyClosed => ConnectError::Closed {
            code: None,
            reason: format!("the connection closed while {doing}"),
        },
        other => ConnectError::Closed {
            code: None,
            reason: format!("WebSocket error while {doing}: {other}"),
        },
    }
}

/// Best-effort close; the connection is being abandoned anyway.
async fn close(ws: &mut WsStream, code: u16, reason: &str) {
    if let Message::Close(frame) = wire::close_frame(code, reason) {
        let _ = ws.close(frame).await;
    }
}
