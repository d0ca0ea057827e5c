//! Opening the WebSocket: TCP, TLS for `wss://`, and the upgrade that
//! offers exactly the configured encoding's subprotocol.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{ClientConfig, Scheme};
use crate::error::{ConfigError, ConnectError, ConnectStage, SubprotocolProblem, io_error};

/// The byte stream under the WebSocket: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open WebSocket to the server.
pub(crate) type WsStream = WebSocketStream<Stream>;

/// Read chunk and write batching threshold per connection. The library's
/// default (128 KiB each, the read buffer allocated up front) would cost a
/// load generator with thousands of connections gigabytes; 16 KiB still
/// batches many small frames per system call.
const SOCKET_BUFFER: usize = 16 * 1024;

/// The WebSocket limits: messages up to the codec's limit, small buffers,
/// and a write buffer bound that holds one message beyond the batching
/// threshold (so it never grows without bound).
pub(crate) fn websocket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(SOCKET_BUFFER + max_message_bytes + 1024)
}

/// Runs `fut` under `limit`, mapping expiry to a typed timeout of `stage`.
pub(crate) async fn within<T>(
    stage: ConnectStage,
    limit: Duration,
    fut: impl Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(ConnectError::Timeout { stage }))
}

/// Connects, runs TLS if the URL says `wss`, and upgrades to a WebSocket
/// that speaks the configured encoding.
pub(crate) async fn open(config: &ClientConfig) -> Result<WsStream, ConnectError> {
    config.check()?;
    let url = config.url();
    let tcp = within(ConnectStage::Tcp, config.connect_timeout(), async {
        TcpStream::connect((url.host(), url.port()))
            .await
            .map_err(|source| ConnectError::Io {
                stage: ConnectStage::Tcp,
                source,
            })
    })
    .await?;
    // Small frames (acks, pings) must not wait for Nagle's algorithm.
    tcp.set_nodelay(true).map_err(|source| ConnectError::Io {
        stage: ConnectStage::Tcp,
        source,
    })?;

    let stream = match (url.scheme(), config.tls()) {
        (Scheme::Ws, _) => Stream::Plain(tcp),
        (Scheme::Wss, Some(tls)) => {
            let tls_stream = within(
                ConnectStage::Tls,
                config.handshake_timeout(),
                crate::tls::handshake(tcp, tls, url.host()),
            )
            .await?;
            Stream::Tls(Box::new(tls_stream))
        }
        (Scheme::Wss, None) => return Err(ConfigError::TlsRequired.into()),
    };

    let offered = config.encoding().subprotocol();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConfigError::InvalidUrl {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(offered));
    let ws_config = websocket_config(config.max_message_bytes());
    within(ConnectStage::WebSocket, config.handshake_timeout(), async {
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config))
            .await
            .map(|(ws, _response)| ws)
            .map_err(|e| upgrade_error(e, offered))
    })
    .await
}

/// Classifies a failed upgrade.
fn upgrade_error(e: WsError, offered: &'static str) -> ConnectError {
    match e {
        WsError::Http(response) => {
            let body = response.body().as_ref().map(|b| {
                let cut = &b[..b.len().min(512)];
                String::from_utf8_lossy(cut).into_owned()
            });
            ConnectError::UpgradeRefused {
                status: response.status().as_u16(),
                body,
            }
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(p)) => {
            ConnectError::SubprotocolMismatch {
                offered,
                problem: match p {
                    SubProtocolError::NoSubProtocol => SubprotocolProblem::NoneSelected,
                    _ => SubprotocolProblem::OtherSelected,
                },
            }
        }
        WsError::Io(source) => io_error(ConnectStage::WebSocket, source),
        WsError::Tls(t) => ConnectError::InvalidUpgrade {
            detail: t.to_string(),
        },
        other => ConnectError::InvalidUpgrade {
            detail: other.to_string(),
        },
    }
}
