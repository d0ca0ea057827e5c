//! One client connection, from `AUTH_REQUIRED` to close.
//!
//! The session reads frames, enforces the handshake, limits and deadlines,
//! hands writes to the pipeline (through the authorization layer) and
//! queries and syncs to their modules, and answers every request. A writer
//! task owns the socket's sending half and drains the bounded outbound
//! queue; a full queue closes the session as a slow consumer.
//!
//! Close codes (documented in `docs/security.md`): 1000 normal, 1001 server
//! shutting down, 1009 message too big, 1011 internal error, 4001 auth
//! failed, 4002 auth deadline passed, 4003 session expired, 4004 protocol
//! error, 4005 not authenticated, 4008 slow consumer, 4009 rate limited,
//! 4010 idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use topgun_core::CallerOrigin;
use topgun_protocol::{
    AuthFailReason, AuthRequiredReason, ClientMessage, Codec, Encoding, ErrorCode, ErrorContext,
    MIN_PROTOCOL_VERSION, OpRejection, PROTOCOL_VERSION, ServerMessage, WriteConcern,
    is_supported_version,
};
use tower::ServiceExt;

use crate::app::{App, AuthMode};
use crate::auth::AuthError;
use crate::authz::Principal;
use crate::outbound::{Outbound, Queued};
use crate::pipeline::{WriteRequest, WriteResponse};

/// Close codes the server uses.
pub mod close {
    /// The client closed, or the session ended normally.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message exceeded the size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server failed internally.
    pub const INTERNAL: u16 = 1011;
    /// `AUTH` was refused (sent after `AUTH_FAIL`).
    pub const AUTH_FAILED: u16 = 4001;
    /// No `AUTH` arrived within the auth deadline.
    pub const AUTH_TIMEOUT: u16 = 4002;
    /// The token expired and no fresh one was sent.
    pub const SESSION_EXPIRED: u16 = 4003;
    /// A frame could not be decoded or was of the wrong kind.
    pub const PROTOCOL_ERROR: u16 = 4004;
    /// A message other than `AUTH` or `PING` arrived before `AUTH_ACK`.
    pub const NOT_AUTHENTICATED: u16 = 4005;
    /// The outbound queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The connection exceeded its op or byte rate.
    pub const RATE_LIMITED: u16 = 4009;
    /// Nothing arrived for two idle periods (the server's ping went
    /// unanswered).
    pub const IDLE_TIMEOUT: u16 = 4010;
}

/// A token bucket: `rate` per second, bursts up to two seconds' worth.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate * 2.0,
            last: now,
        }
    }

    /// Takes `n` tokens; false when the bucket does not hold them.
    fn take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Where the session stands in the handshake.
enum Auth {
    Pending,
    Ready {
        principal: Arc<Principal>,
        /// When the token expires (ms since the epoch); `None` without auth.
        expires_at_ms: Option<u64>,
        /// Whether `AUTH_REQUIRED { SessionExpiring }` went out for this
        /// expiry.
        renewal_asked: bool,
    },
}

/// Why the loop ended: the close frame to send.
struct Closing {
    code: u16,
    reason: &'static str,
}

fn closing(code: u16, reason: &'static str) -> Closing {
    Closing { code, reason }
}

/// What the writer task is told to do.
enum Control {
    Close(Closing),
}

fn auth_fail_reason(e: &AuthError) -> AuthFailReason {
    match e {
        AuthError::Malformed => AuthFailReason::Malformed,
        AuthError::InvalidSignature => AuthFailReason::InvalidSignature,
        AuthError::Expired => AuthFailReason::Expired,
        AuthError::NotYetValid => AuthFailReason::NotYetValid,
        AuthError::MissingClaim(_) => AuthFailReason::MissingClaim,
        AuthError::UnknownKeyId | AuthError::AmbiguousKey => AuthFailReason::UnknownKeyId,
        AuthError::AlgorithmNotAllowed => AuthFailReason::AlgorithmNotAllowed,
        AuthError::RateLimited => AuthFailReason::RateLimited,
        AuthError::KeyRetired | AuthError::KeyDeactivated => AuthFailReason::UnknownKeyId,
        _ => AuthFailReason::InvalidClaim,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Converts a wall-clock instant in ms since the epoch to a tokio deadline.
fn deadline_at(at_ms: u64) -> tokio::time::Instant {
    let now = now_ms();
    tokio::time::Instant::now() + Duration::from_millis(at_ms.saturating_sub(now))
}

/// Runs one session to its end.
pub(crate) async fn run(socket: WebSocket, app: Arc<App>, peer: SocketAddr, encoding: Encoding) {
    let conn = app.next_conn_id.fetch_add(1, Ordering::Relaxed);
    app.metrics.sessions_open.fetch_add(1, Ordering::Relaxed);
    let limits = &app.limits;
    let codec = Codec::new(encoding).with_max_message_bytes(limits.max_message_bytes);
    let (sink, mut stream) = socket.split();
    let (outbound, out_rx, overflow) = Outbound::new(limits.outbound_queue);
    let (control_tx, control_rx) = oneshot::channel::<Control>();
    let writer = tokio::spawn(write_loop(
        sink,
        out_rx,
        control_rx,
        codec,
        Arc::clone(&app),
    ));

    let mut session = Session {
        app: Arc::clone(&app),
        conn,
        peer,
        codec,
        outbound: outbound.clone(),
        auth: Auth::Pending,
        ops: Bucket::new(limits.ops_per_second, Instant::now()),
        bytes: Bucket::new(limits.bytes_per_second, Instant::now()),
    };
    let closing = session.drive(&mut stream, &overflow).await;

    app.live.remove_connection(conn);
    app.metrics.closed(closing.code);
    app.metrics.sessions_open.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%peer, conn, code = closing.code, reason = closing.reason, "session closed");
    drop(session);
    drop(outbound);
    let _ = control_tx.send(Control::Close(closing));
    if let Err(e) = writer.await {
        tracing::warn!(error = %e, "session writer task failed");
    }
}

/// The most messages one flush carries; more wait for the next one.
const MAX_MESSAGES_PER_FLUSH: usize = 64;

/// The most encoded bytes fed to the socket before it is flushed.
const MAX_BYTES_PER_FLUSH: usize = 64 * 1024;

type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Drains the outbound queue into the socket; on `Control::Close`, sends
/// what is still queued, then the close frame.
///
/// Messages that are already queued when the writer wakes go out together:
/// each is encoded and fed to the WebSocket (which buffers it), and the
/// socket is flushed once per [`MAX_MESSAGES_PER_FLUSH`] messages or
/// [`MAX_BYTES_PER_FLUSH`] bytes, or as soon as the queue is empty, so a
/// lone message is never held back.
async fn write_loop(
    mut sink: WsSink,
    mut out_rx: mpsc::Receiver<Queued>,
    mut control: oneshot::Receiver<Control>,
    codec: Codec,
    app: Arc<App>,
) {
    let closing = loop {
        tokio::select! {
            biased;
            msg = out_rx.recv() => match msg {
                Some(msg) => {
                    match write_batch(&mut sink, &mut out_rx, msg, &codec).await {
                        Some(n) => {
                            app.metrics.frames_out.fetch_add(n, Ordering::Relaxed);
                        }
                        None => return,
                    }
                }
                None => match (&mut control).await {
                    Ok(Control::Close(c)) => break c,
                    Err(_) => break closing(close::INTERNAL, "session ended"),
                },
            },
            c = &mut control => match c {
                Ok(Control::Close(c)) => break c,
                Err(_) => break closing(close::INTERNAL, "session ended"),
            },
        }
    };
    // Whatever is still queued (an AUTH_FAIL, an ERROR, final acks) goes out
    // before the close frame.
    while let Ok(msg) = out_rx.try_recv() {
        if write_batch(&mut sink, &mut out_rx, msg, &codec)
            .await
            .is_none()
        {
            return;
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: closing.code,
            reason: Utf8Bytes::from_static(closing.reason),
        })))
        .await;
    let _ = sink.close().await;
}

/// Writes `first` and whatever else is queued already, within the bounds of
/// one flush, then flushes. Returns the number of frames sent, or `None`
/// when the socket failed.
async fn write_batch<S: futures_util::Sink<Message> + Unpin>(
    sink: &mut S,
    out_rx: &mut mpsc::Receiver<Queued>,
    first: Queued,
    codec: &Codec,
) -> Option<u64> {
    let mut frames = 0u64;
    let mut bytes = 0usize;
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        if let Some((f, len)) = frame(codec, &msg) {
            bytes = bytes.saturating_add(len);
            sink.feed(f).await.ok()?;
            frames += 1;
        }
        if frames >= MAX_MESSAGES_PER_FLUSH as u64 || bytes >= MAX_BYTES_PER_FLUSH {
            break;
        }
        next = out_rx.try_recv().ok();
    }
    sink.flush().await.ok()?;
    Some(frames)
}

/// The WebSocket frame of one outbound message and its payload's length,
/// or `None` (logged) if it cannot be encoded.
fn frame(codec: &Codec, msg: &ServerMessage) -> Option<(Message, usize)> {
    match codec.encode_server(msg) {
        Ok(bytes) if codec.encoding().is_binary() => {
            let len = bytes.len();
            Some((Message::Binary(bytes.into()), len))
        }
        // Text encodings (JSON) produce UTF-8.
        Ok(bytes) => {
            let len = bytes.len();
            String::from_utf8(bytes)
                .ok()
                .map(|s| (Message::Text(Utf8Bytes::from(s)), len))
        }
        Err(e) => {
            tracing::error!(error = %e, message = msg_name(msg), "cannot encode an outbound message");
            None
        }
    }
}

/// Whether a WebSocket read failed because a frame or message exceeded the
/// configured size (tungstenite's capacity error, which axum wraps).
fn is_too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    e.into_inner()
        .downcast_ref::<WsError>()
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}

fn msg_name(msg: &ServerMessage) -> &'static str {
    use topgun_protocol::Message as _;
    msg.name()
}

/// What woke the session loop.
enum Event {
    Shutdown,
    Overflow,
    Answer(WriteResponse),
    Timer,
    Frame(Option<Result<Message, axum::Error>>),
}

type Inflight =
    FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = WriteResponse> + Send>>>;

struct Session {
    app: Arc<App>,
    conn: u64,
    peer: SocketAddr,
    codec: Codec,
    outbound: Outbound,
    auth: Auth,
    ops: Bucket,
    bytes: Bucket,
}

impl Session {
    async fn reply(&self, msg: ServerMessage) -> bool {
        self.outbound.reply(msg).await
    }

    /// An `ERROR` about the connection as a whole (no context).
    async fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.reply(ServerMessage::Error {
            code,
            message: message.into(),
            context: None,
        })
        .await;
    }

    /// An `ERROR` refusing the subscription request with `query_id`.
    async fn query_error(&self, query_id: u64, code: ErrorCode, message: impl Into<String>) {
        self.reply(ServerMessage::Error {
            code,
            message: message.into(),
            context: Some(ErrorContext::Query { query_id }),
        })
        .await;
    }

    /// The session loop; returns how to close.
    async fn drive(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        overflow: &tokio_util::sync::CancellationToken,
    ) -> Closing {
        // The limits are read through the `Arc`, not copied: this future
        // lives as long as the connection.
        let app = Arc::clone(&self.app);
        let limits = &app.limits;
        let shutdown = app.shutdown.clone();
        self.reply(ServerMessage::AuthRequired {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            reason: AuthRequiredReason::Initial,
        })
        .await;
        let auth_deadline = tokio::time::Instant::now() + limits.auth_deadline;
        let mut last_inbound = tokio::time::Instant::now();
        let mut ping_sent = false;
        let mut inflight: Inflight = FuturesOrdered::new();

        let result = loop {
            let timer = self.next_deadline(auth_deadline, last_inbound, ping_sent, limits);
            // The select only picks what happened; it is handled after the
            // select's futures are gone, so the two never take room in this
            // future (held by every idle connection) at the same time.
            let event = tokio::select! {
                () = shutdown.cancelled() => Event::Shutdown,
                () = overflow.cancelled() => Event::Overflow,
                Some(done) = inflight.next(), if !inflight.is_empty() => Event::Answer(done),
                () = sleep_until(timer) => Event::Timer,
                frame = stream.next(), if inflight.len() < limits.max_inflight_batches => Event::Frame(frame),
            };
            match event {
                Event::Shutdown => {
                    self.error(ErrorCode::ShuttingDown, "the server is shutting down")
                        .await;
                    break closing(close::GOING_AWAY, "server shutting down");
                }
                Event::Overflow => {
                    break closing(
                        close::SLOW_CONSUMER,
                        "slow consumer: outbound queue full, resync",
                    );
                }
                Event::Answer(done) => self.answer(done).await,
                Event::Timer => {
                    if let Some(c) = self
                        .on_timer(auth_deadline, last_inbound, &mut ping_sent, limits)
                        .await
                    {
                        break c;
                    }
                }
                Event::Frame(frame) => {
                    last_inbound = tokio::time::Instant::now();
                    ping_sent = false;
                    let frame = match frame {
                        None => break closing(close::NORMAL, "client went away"),
                        Some(Ok(f)) => f,
                        Some(Err(e)) => {
                            if is_too_big(e) {
                                self.error(
                                    ErrorCode::MessageTooLarge,
                                    format!(
                                        "message larger than {} bytes",
                                        limits.max_message_bytes
                                    ),
                                )
                                .await;
                                break closing(close::MESSAGE_TOO_BIG, "message too big");
                            }
                            break closing(close::PROTOCOL_ERROR, "websocket protocol error");
                        }
                    };
                    // Boxed: handling a request needs far more state than
                    // waiting for one.
                    if let Some(c) = Box::pin(self.on_frame(frame, &mut inflight)).await {
                        break c;
                    }
                }
            }
        };
        // Nothing accepted is dropped: writes already handed to the pipeline
        // are answered before the close frame (unless the queue overflowed).
        if result.code != close::SLOW_CONSUMER {
            while let Some(done) = inflight.next().await {
                self.answer(done).await;
            }
        }
        result
    }

    fn next_deadline(
        &self,
        auth_deadline: tokio::time::Instant,
        last_inbound: tokio::time::Instant,
        ping_sent: bool,
        limits: &crate::config::Limits,
    ) -> tokio::time::Instant {
        let idle = last_inbound + limits.idle_timeout * if ping_sent { 2 } else { 1 };
        match &self.auth {
            Auth::Pending => auth_deadline.min(idle),
            Auth::Ready {
                expires_at_ms: Some(exp),
                renewal_asked,
                ..
            } => {
                let lead = u64::try_from(limits.renewal_lead.as_millis()).unwrap_or(u64::MAX);
                let at = if *renewal_asked {
                    *exp
                } else {
                    exp.saturating_sub(lead)
                };
                deadline_at(at).min(idle)
            }
            Auth::Ready { .. } => idle,
        }
    }

    async fn on_timer(
        &mut self,
        auth_deadline: tokio::time::Instant,
        last_inbound: tokio::time::Instant,
        ping_sent: &mut bool,
        limits: &crate::config::Limits,
    ) -> Option<Closing> {
        let now = tokio::time::Instant::now();
        if matches!(self.auth, Auth::Pending) && now >= auth_deadline {
            self.app.metrics.auth_failed("deadline");
            return Some(closing(
                close::AUTH_TIMEOUT,
                "no AUTH within the auth deadline",
            ));
        }
        if let Auth::Ready {
            expires_at_ms: Some(exp),
            renewal_asked,
            ..
        } = &mut self.auth
        {
            let wall = now_ms();
            if wall >= *exp {
                let exp = *exp;
                self.error(
                    ErrorCode::SessionExpired,
                    format!("the session's token expired at {exp} ms and was not renewed"),
                )
                .await;
                return Some(closing(close::SESSION_EXPIRED, "session expired"));
            }
            let lead = u64::try_from(limits.renewal_lead.as_millis()).unwrap_or(u64::MAX);
            if !*renewal_asked && wall >= exp.saturating_sub(lead) {
                *renewal_asked = true;
                let expires_at_ms = *exp;
                self.reply(ServerMessage::AuthRequired {
                    min_version: MIN_PROTOCOL_VERSION,
                    max_version: PROTOCOL_VERSION,
                    reason: AuthRequiredReason::SessionExpiring { expires_at_ms },
                })
                .await;
            }
        }
        if now >= last_inbound + limits.idle_timeout {
            if *ping_sent {
                if now >= last_inbound + limits.idle_timeout * 2 {
                    return Some(closing(close::IDLE_TIMEOUT, "idle timeout"));
                }
            } else {
                *ping_sent = true;
                self.reply(ServerMessage::Ping { nonce: now_ms() }).await;
            }
        }
        None
    }

    async fn answer(&self, done: WriteResponse) {
        if !done.acks.is_empty() {
            self.reply(ServerMessage::OpAck { acks: done.acks }).await;
        }
        if !done.rejections.is_empty() {
            self.reply(ServerMessage::OpRejected {
                rejections: done.rejections,
            })
            .await;
        }
    }

    async fn on_frame(&mut self, frame: Message, inflight: &mut Inflight) -> Option<Closing> {
        let binary = self.codec.encoding().is_binary();
        let bytes: &[u8] = match &frame {
            Message::Binary(b) if binary => b,
            Message::Text(t) if !binary => t.as_bytes(),
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(_) => return Some(closing(close::NORMAL, "client closed")),
            Message::Binary(_) | Message::Text(_) => {
                self.error(
                    ErrorCode::MalformedMessage,
                    format!(
                        "this connection speaks {}: wrong frame type",
                        self.codec.encoding().subprotocol()
                    ),
                )
                .await;
                return Some(closing(close::PROTOCOL_ERROR, "wrong frame type"));
            }
        };
        self.app.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        if !self.bytes.take(bytes.len() as f64, Instant::now()) {
            self.error(ErrorCode::RateLimited, "byte rate limit exceeded")
                .await;
            return Some(closing(close::RATE_LIMITED, "byte rate limit exceeded"));
        }
        let msg = match self.codec.decode_client(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.error(ErrorCode::MalformedMessage, e.to_string()).await;
                return Some(closing(close::PROTOCOL_ERROR, "undecodable message"));
            }
        };
        match (&self.auth, msg) {
            (_, ClientMessage::Ping { nonce }) => {
                self.reply(ServerMessage::Pong { nonce }).await;
                None
            }
            (_, ClientMessage::Pong { .. }) => None,
            (
                _,
                ClientMessage::Auth {
                    token,
                    protocol_version,
                },
            ) => self.on_auth(token, protocol_version).await,
            (Auth::Pending, _) => {
                self.error(
                    ErrorCode::NotAuthenticated,
                    "only AUTH and PING are accepted before AUTH_ACK",
                )
                .await;
                Some(closing(close::NOT_AUTHENTICATED, "not authenticated"))
            }
            (Auth::Ready { principal, .. }, msg) => {
                let principal = Arc::clone(principal);
                self.on_request(principal, msg, inflight).await
            }
        }
    }

    async fn on_auth(&mut self, token: String, version: u16) -> Option<Closing> {
        let renewal = matches!(self.auth, Auth::Ready { .. });
        if !is_supported_version(version) {
            self.app.metrics.auth_failed("protocol_version");
            self.reply(ServerMessage::AuthFail {
                reason: AuthFailReason::UnsupportedProtocolVersion,
                message: format!("protocol version {version} is not in {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}"),
            })
            .await;
            return Some(closing(close::AUTH_FAILED, "unsupported protocol version"));
        }
        let verified: Result<(Principal, Option<u64>), AuthError> = match &self.app.auth {
            AuthMode::NoAuth => Ok((Principal::anonymous(), None)),
            AuthMode::Jwt { verifier, limiter } => {
                let ip = self.peer.ip();
                match limiter.check(ip, Instant::now()) {
                    Err(_) => Err(AuthError::RateLimited),
                    Ok(()) => match verifier.verify(&token, SystemTime::now()) {
                        Ok(p) => {
                            let exp = p.exp.saturating_mul(1000);
                            Ok((Principal::from(p), Some(exp)))
                        }
                        Err(e) => {
                            limiter.record_failure(ip, Instant::now());
                            Err(e)
                        }
                    },
                }
            }
        };
        match verified {
            Ok((principal, expires_at_ms)) => {
                if let Auth::Ready { principal: old, .. } = &self.auth {
                    if old.sub != principal.sub {
                        self.app.metrics.auth_failed("subject_changed");
                        self.reply(ServerMessage::AuthFail {
                            reason: AuthFailReason::InvalidClaim,
                            message: "a renewal token must have the session's `sub`".to_owned(),
                        })
                        .await;
                        return Some(closing(close::AUTH_FAILED, "renewal changed the subject"));
                    }
                }
                if !renewal {
                    self.app.metrics.auth_ok.fetch_add(1, Ordering::Relaxed);
                }
                let sub = principal.sub.clone();
                self.auth = Auth::Ready {
                    principal: Arc::new(principal),
                    expires_at_ms,
                    renewal_asked: false,
                };
                self.reply(ServerMessage::AuthAck {
                    protocol_version: version,
                    sub,
                    session_expires_at_ms: expires_at_ms,
                })
                .await;
                None
            }
            Err(e) => {
                self.app.metrics.auth_failed(e.reason());
                tracing::debug!(peer = %self.peer, reason = e.reason(), renewal, "AUTH refused");
                self.reply(ServerMessage::AuthFail {
                    reason: auth_fail_reason(&e),
                    message: e.to_string(),
                })
                .await;
                Some(closing(close::AUTH_FAILED, "authentication failed"))
            }
        }
    }

    async fn on_request(
        &mut self,
        principal: Arc<Principal>,
        msg: ClientMessage,
        inflight: &mut Inflight,
    ) -> Option<Closing> {
        let app = Arc::clone(&self.app);
        match msg {
            ClientMessage::ClientOp { op } => {
                self.submit(principal, vec![op], WriteConcern::Durable, inflight)
                    .await
            }
            ClientMessage::OpBatch { ops, write_concern } => {
                self.submit(principal, ops, write_concern, inflight).await
            }
            ClientMessage::QuerySub {
                query_id,
                map,
                query,
            } => {
                match app.live.subscribe(
                    self.conn,
                    principal,
                    query_id,
                    &map,
                    query.into(),
                    &app.engine.maps,
                    app.engine.now_millis(),
                    self.outbound.clone(),
                ) {
                    Ok(records) => {
                        self.reply(ServerMessage::QueryResp { query_id, records })
                            .await;
                        // Updates held since evaluation follow the result.
                        app.live.activate(self.conn, query_id);
                    }
                    Err(e) => {
                        self.query_error(query_id, e.error_code(), e.to_string())
                            .await;
                    }
                }
                None
            }
            ClientMessage::QueryUnsub { query_id } => {
                if !app.live.unsubscribe(self.conn, query_id) {
                    self.query_error(
                        query_id,
                        ErrorCode::UnknownQuery,
                        format!("no subscription with id {query_id}"),
                    )
                    .await;
                }
                None
            }
            ClientMessage::SyncInit { map, kind, root: _ } => {
                for m in
                    crate::sync::init(&app.engine.maps, app.policy.as_ref(), &principal, map, kind)
                {
                    self.reply(m).await;
                }
                None
            }
            ClientMessage::MerkleReqBucket { map, kind, paths } => {
                for m in crate::sync::buckets(
                    &app.engine.maps,
                    app.policy.as_ref(),
                    &principal,
                    map,
                    kind,
                    paths,
                ) {
                    self.reply(m).await;
                }
                None
            }
            ClientMessage::SyncReqLeaf { map, kind, leaves } => {
                for m in crate::sync::leaves(
                    &app.engine.maps,
                    app.policy.as_ref(),
                    &principal,
                    map,
                    kind,
                    leaves,
                    &self.codec,
                ) {
                    self.reply(m).await;
                }
                None
            }
            // Handled before authentication state is looked at.
            ClientMessage::Auth { .. }
            | ClientMessage::Ping { .. }
            | ClientMessage::Pong { .. } => None,
        }
    }

    async fn submit(
        &mut self,
        principal: Arc<Principal>,
        ops: Vec<topgun_protocol::Op>,
        concern: WriteConcern,
        inflight: &mut Inflight,
    ) -> Option<Closing> {
        if !self.ops.take(ops.len() as f64, Instant::now()) {
            let rejections = ops
                .iter()
                .map(|op| OpRejection {
                    op_id: op.op_id,
                    code: topgun_protocol::RejectCode::RateLimited,
                    message: "op rate limit exceeded; the connection is closed".to_owned(),
                })
                .collect();
            self.reply(ServerMessage::OpRejected { rejections }).await;
            self.error(ErrorCode::RateLimited, "op rate limit exceeded")
                .await;
            return Some(closing(close::RATE_LIMITED, "op rate limit exceeded"));
        }
        let req = WriteRequest {
            principal,
            origin: CallerOrigin::Client,
            ops,
            concern,
        };
        let svc = self.app.writes.clone();
        inflight.push_back(Box::pin(async move {
            match svc.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }));
        None
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A sink that records the frames fed to it and, for each flush, how
    /// many frames it carried.
    #[derive(Default)]
    struct Recorder {
        pending: Vec<Message>,
        flushes: Vec<Vec<Message>>,
    }

    impl futures_util::Sink<Message> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.pending.push(item);
            Ok(())
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            if !self.pending.is_empty() {
                let batch = std::mem::take(&mut self.pending);
                self.flushes.push(batch);
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.poll_flush(cx)
        }
    }

    fn ping(nonce: u64) -> ServerMessage {
        ServerMessage::Ping { nonce }
    }

    fn nonces(codec: &Codec, frames: &[Message]) -> Vec<u64> {
        frames
            .iter()
            .map(|m| match m {
                Message::Binary(b) => match codec.decode_server(b) {
                    Ok(ServerMessage::Ping { nonce }) => nonce,
                    other => panic!("unexpected frame {other:?}"),
                },
                other => panic!("unexpected frame {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_lone_message_is_flushed_at_once() {
        let codec = Codec::new(Encoding::Bincode);
        let (_tx, mut rx) = mpsc::channel::<Queued>(8);
        let mut sink = Recorder::default();
        let sent = write_batch(&mut sink, &mut rx, Box::new(ping(1)), &codec).await;
        assert_eq!(sent, Some(1));
        assert_eq!(sink.flushes.len(), 1);
        assert_eq!(nonces(&codec, &sink.flushes[0]), vec![1]);
    }

    #[tokio::test]
    async fn queued_messages_share_flushes_in_order_and_within_the_bound() {
        let codec = Codec::new(Encoding::Bincode);
        let total = MAX_MESSAGES_PER_FLUSH as u64 + 10;
        let (tx, mut rx) = mpsc::channel::<Queued>(256);
        for n in 1..total {
            tx.try_send(Box::new(ping(n))).unwrap();
        }
        let mut sink = Recorder::default();
        let mut sent = write_batch(&mut sink, &mut rx, Box::new(ping(0)), &codec)
            .await
            .unwrap();
        assert_eq!(sink.flushes.len(), 1, "one flush for the first batch");
        assert_eq!(sink.flushes[0].len(), MAX_MESSAGES_PER_FLUSH);
        // The rest: the next wake-up takes it in one more flush.
        let next = rx.recv().await.unwrap();
        sent += write_batch(&mut sink, &mut rx, next, &codec).await.unwrap();
        assert_eq!(sent, total);
        assert_eq!(sink.flushes.len(), 2);
        let all: Vec<u64> = sink
            .flushes
            .iter()
            .flat_map(|f| nonces(&codec, f))
            .collect();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_flush_carries_at_most_the_byte_bound() {
        let codec = Codec::new(Encoding::Bincode);
        let message = "x".repeat(MAX_BYTES_PER_FLUSH / 4);
        let big = || ServerMessage::Error {
            code: ErrorCode::Internal,
            message: message.clone(),
            context: None,
        };
        let (tx, mut rx) = mpsc::channel::<Queued>(16);
        for _ in 0..7 {
            tx.try_send(Box::new(big())).unwrap();
        }
        let mut sink = Recorder::default();
        let sent = write_batch(&mut sink, &mut rx, Box::new(big()), &codec)
            .await
            .unwrap();
        // Four frames of a quarter of the bound each (plus headers) reach it.
        assert_eq!(sent, 4);
        assert_eq!(sink.flushes.len(), 1);
        assert_eq!(rx.len(), 4);
    }
}
