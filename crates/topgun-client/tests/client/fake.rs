//! A scriptable fake server: accepts one WebSocket connection (optionally
//! over TLS), selects the subprotocol, and hands the test a [`Conn`] that
//! speaks the protocol through the topgun-protocol codec.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use topgun_client::ClientConfig;
use topgun_protocol::{AuthRequiredReason, ClientMessage, Codec, Encoding, ServerMessage};

/// Anything a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the fake answers the upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Select the client's first supported subprotocol, as a real server.
    Negotiate,
    /// Accept without selecting any subprotocol.
    SelectNothing,
    /// Refuse the upgrade with this HTTP status.
    Refuse(u16),
}

/// Options for [`FakeServer::start_with`].
#[derive(Clone)]
pub struct Options {
    pub upgrade: Upgrade,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            upgrade: Upgrade::Negotiate,
            tls: None,
        }
    }
}

/// A fake server bound to a loopback port, serving one connection.
pub struct FakeServer {
    pub port: u16,
    task: JoinHandle<()>,
}

/// What the client sent in its upgrade request.
#[derive(Clone, Debug, Default)]
pub struct UpgradeSeen {
    pub path: String,
    pub offered: Vec<String>,
}

impl FakeServer {
    /// Serves one plain connection with `script`.
    pub async fn start<F, Fut>(script: F) -> FakeServer
    where
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::start_with(Options::default(), script).await
    }

    /// Serves one connection with `script`, as `options` say.
    // The upgrade callback's error type is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    pub async fn start_with<F, Fut>(options: Options, script: F) -> FakeServer
    where
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let io: Box<dyn Io> = match &options.tls {
                None => Box::new(tcp),
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                    match acceptor.accept(tcp).await {
                        Ok(tls) => Box::new(tls),
                        // The client refused the server (or the server the
                        // client): nothing more to serve.
                        Err(_) => return,
                    }
                }
            };
            let seen = Arc::new(Mutex::new(UpgradeSeen::default()));
            let chosen = Arc::new(Mutex::new(None));
            let callback = {
                let seen = seen.clone();
                let chosen = chosen.clone();
                let upgrade = options.upgrade;
                move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                    let offered: Vec<String> = req
                        .headers()
                        .get_all("Sec-WebSocket-Protocol")
                        .iter()
                        .flat_map(|v| v.to_str().unwrap().split(','))
                        .map(|s| s.trim().to_owned())
                        .collect();
                    *seen.lock().unwrap() = UpgradeSeen {
                        path: req.uri().to_string(),
                        offered: offered.clone(),
                    };
                    match upgrade {
                        Upgrade::Refuse(status) => {
                            let mut refusal = ErrorResponse::new(Some("go away".to_owned()));
                            *refusal.status_mut() = StatusCode::from_u16(status).unwrap();
                            Err(refusal)
                        }
                        Upgrade::SelectNothing => Ok(resp),
                        Upgrade::Negotiate => {
                            let enc = Encoding::negotiate(offered.iter().map(String::as_str));
                            if let Some(enc) = enc {
                                resp.headers_mut().insert(
                                    "Sec-WebSocket-Protocol",
                                    HeaderValue::from_static(enc.subprotocol()),
                                );
                            }
                            *chosen.lock().unwrap() = enc;
                            Ok(resp)
                        }
                    }
                }
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(io, callback).await else {
                return;
            };
            let encoding = chosen.lock().unwrap().unwrap_or(Encoding::Bincode);
            let seen = seen.lock().unwrap().clone();
            script(Conn {
                ws,
                codec: Codec::new(encoding),
                seen,
            })
            .await;
        });
        FakeServer { port, task }
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// A client config for this server (plain WebSocket, path `/ws`).
    pub fn config(&self) -> ClientConfig {
        ClientConfig::new(&self.url("/ws"))
            .unwrap()
            .with_handshake_timeout(Duration::from_secs(5))
            .with_request_timeout(Some(Duration::from_secs(10)))
    }

    /// Waits for the script to finish (and fails the test if it panicked).
    pub async fn join(self) {
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the fake server's script did not finish")
            .expect("the fake server's script panicked");
    }
}

/// The server's end of one connection.
pub struct Conn {
    pub ws: WebSocketStream<Box<dyn Io>>,
    pub codec: Codec,
    pub seen: UpgradeSeen,
}

/// A received close frame's code and reason.
pub type Closed = Option<(u16, String)>;

impl Conn {
    /// Sends a message in the connection's encoding.
    pub async fn send(&mut self, msg: ServerMessage) {
        let bytes = self.codec.encode_server(&msg).unwrap();
        let frame = if self.codec.encoding().is_binary() {
            Message::Binary(bytes.into())
        } else {
            Message::Text(String::from_utf8(bytes).unwrap().into())
        };
        self.ws.send(frame).await.unwrap();
    }

    /// Sends a raw frame.
    pub async fn send_frame(&mut self, frame: Message) {
        self.ws.send(frame).await.unwrap();
    }

    /// The next data frame (the raw frame), or the close.
    pub async fn recv_frame(&mut self) -> Result<Message, Closed> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(frame)) => return Ok(frame),
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next message, or the close.
    pub async fn recv_or_close(&mut self) -> Result<ClientMessage, Closed> {
        let frame = self.recv_frame().await?;
        let bytes: &[u8] = match &frame {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            other => panic!("unexpected frame {other:?}"),
        };
        Ok(self.codec.decode_client(bytes).unwrap())
    }

    /// The next message; panics if the client closed.
    pub async fn recv(&mut self) -> ClientMessage {
        match self.recv_or_close().await {
            Ok(msg) => msg,
            Err(close) => panic!("the client closed: {close:?}"),
        }
    }

    /// Waits for the client's close frame, answers it and waits for the
    /// client to hang up.
    pub async fn expect_close(&mut self) -> Closed {
        loop {
            match self.recv_or_close().await {
                Ok(_) => continue,
                Err(close) => {
                    // Reading on flushes the echo of the close frame.
                    while let Some(Ok(_)) = self.ws.next().await {}
                    return close;
                }
            }
        }
    }

    /// Closes with `code` and `reason`, then drains until the client's
    /// answer so the close handshake completes.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            }))
            .await;
        while let Some(Ok(_)) = self.ws.next().await {}
    }

    /// Sends `AUTH_REQUIRED` (initial, version 1 only).
    pub async fn require_auth(&mut self) {
        self.send(ServerMessage::AuthRequired {
            min_version: 1,
            max_version: 1,
            reason: AuthRequiredReason::Initial,
        })
        .await;
    }

    /// The client's `AUTH`: (token, version).
    pub async fn recv_auth(&mut self) -> (String, u16) {
        match self.recv().await {
            ClientMessage::Auth {
                token,
                protocol_version,
            } => (token, protocol_version),
            other => panic!("expected AUTH, got {other:?}"),
        }
    }

    /// A successful handshake for principal `sub`; returns the token.
    pub async fn accept_auth(&mut self, sub: &str) -> String {
        self.require_auth().await;
        let (token, version) = self.recv_auth().await;
        assert_eq!(version, 1);
        self.send(ServerMessage::AuthAck {
            protocol_version: 1,
            sub: sub.to_owned(),
            session_expires_at_ms: Some(4_000_000_000_000),
        })
        .await;
        token
    }
}
