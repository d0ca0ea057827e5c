//! The harness the end-to-end tests share: servers started in-process on
//! real sockets, tokens signed like an identity provider would, and a raw
//! WebSocket peer for sending what a well-behaved client never would.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use topgun_protocol::{ClientMessage, Codec, Encoding, PROTOCOL_VERSION, ServerMessage};
use topgun_server::auth::AuthConfig;
use topgun_server::config::Limits;
use topgun_server::{RunningServer, ServerBuilder, StorageConfig};

/// The HMAC secret the test servers use.
pub const SECRET: &str = "test-secret-of-at-least-32-bytes!!";

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs `claims` with HS256 and [`SECRET`].
pub fn hs256(claims: &serde_json::Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// Signs `claims` with HS256 and `secret`.
pub fn hs256_with(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// A valid token for `sub`, expiring in an hour.
pub fn token_for(sub: &str) -> String {
    hs256(&serde_json::json!({"sub": sub, "exp": now_secs() + 3600, "iat": now_secs()}))
}

/// A builder for the usual test server: loopback, free port, HS256 auth
/// with [`SECRET`], in-memory store, the given limits.
pub fn test_builder(limits: Limits) -> ServerBuilder {
    let auth = AuthConfig::from_jwt_secret(SECRET)
        .map(|b| b.build())
        .unwrap_or_else(|e| panic!("test secret rejected: {e}"));
    ServerBuilder::new()
        .network(topgun_server::config::NetworkConfig {
            host: [127, 0, 0, 1].into(),
            port: 0,
        })
        .auth(auth)
        .storage(StorageConfig::Memory)
        .limits(limits)
}

/// Starts a test server with default limits.
pub async fn start() -> RunningServer {
    start_with(test_builder(Limits::default())).await
}

/// Builds and spawns `builder`.
pub async fn start_with(builder: ServerBuilder) -> RunningServer {
    match builder.build().await {
        Ok(server) => server.spawn(),
        Err(e) => panic!("test server failed to start: {e}"),
    }
}

/// A raw WebSocket peer speaking the protocol by hand.
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    codec: Codec,
}

/// How a raw peer's connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Closed(u16),
    /// The stream ended without a close frame.
    Dropped,
}

impl Raw {
    /// Connects to `ws://addr/ws` offering `encoding`'s subprotocol.
    pub async fn connect(addr: SocketAddr, encoding: Encoding) -> Raw {
        let mut req = format!("ws://{addr}/ws")
            .into_client_request()
            .unwrap_or_else(|e| panic!("request: {e}"));
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(encoding.subprotocol()),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Raw {
            ws,
            codec: Codec::new(encoding),
        }
    }

    /// Sends a message in the connection's encoding.
    pub async fn send(&mut self, msg: &ClientMessage) {
        let bytes = self
            .codec
            .encode_client(msg)
            .unwrap_or_else(|e| panic!("encode: {e}"));
        let frame = if self.codec.encoding().is_binary() {
            Message::Binary(bytes.into())
        } else {
            Message::Text(String::from_utf8(bytes).unwrap_or_default().into())
        };
        self.send_frame(frame).await;
    }

    /// Sends any frame.
    pub async fn send_frame(&mut self, frame: Message) {
        // A send may fail when the server already closed; the test then
        // sees the close on the next receive.
        let _ = self.ws.send(frame).await;
    }

    /// The next protocol message, or how the connection ended. Panics
    /// after 10 s of silence.
    pub async fn recv(&mut self) -> Result<ServerMessage, Ended> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message from the server within 10 s"));
            match next {
                None | Some(Err(_)) => return Err(Ended::Dropped),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Closed(frame.map_or(1005, |f| u16::from(f.code))));
                }
                Some(Ok(Message::Binary(b))) => {
                    return Ok(self
                        .codec
                        .decode_server(&b)
                        .unwrap_or_else(|e| panic!("decode: {e}")));
                }
                Some(Ok(Message::Text(t))) => {
                    return Ok(self
                        .codec
                        .decode_server(t.as_bytes())
                        .unwrap_or_else(|e| panic!("decode: {e}")));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the connection ends; returns every message seen and how
    /// it ended.
    pub async fn recv_until_closed(&mut self) -> (Vec<ServerMessage>, Ended) {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Ok(m) => seen.push(m),
                Err(e) => return (seen, e),
            }
        }
    }

    /// Reads `AUTH_REQUIRED`, sends `AUTH` with `token`, returns the answer.
    pub async fn handshake(&mut self, token: &str) -> ServerMessage {
        match self.recv().await {
            Ok(ServerMessage::AuthRequired { .. }) => {}
            other => panic!("expected AUTH_REQUIRED, got {other:?}"),
        }
        self.send(&ClientMessage::Auth {
            token: token.to_owned(),
            protocol_version: PROTOCOL_VERSION,
        })
        .await;
        self.recv()
            .await
            .unwrap_or_else(|e| panic!("no answer to AUTH: {e:?}"))
    }
}

/// The numeric value of a tungstenite close code (for messages).
pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}
