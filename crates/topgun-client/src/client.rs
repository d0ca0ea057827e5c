//! The client handle: connect, write ops, subscribe, ping, sync, close.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::Message;
use topgun_core::{LwwMap, NodeId, OpKind, OrMap, Query, Timestamp, Value};
use topgun_protocol::{ClientMessage, Codec, Encoding, WireQuery, WriteConcern};

use crate::config::ClientConfig;
use crate::driver;
use crate::error::{ClientError, CloseInfo, CloseInitiator, ConnectError, ConnectStage};
use crate::event::ClientEvent;
use crate::handshake::{self, SessionInfo};
use crate::ops::{self, ClientOp, Clock, OpOutcome};
use crate::router::{BatchResult, Router, SyncKey, SyncParts, SyncReply};
use crate::subscription::{Subscription, SubscriptionEnd};
use crate::sync::{Step, SyncMachine, SyncReplica, SyncReport};
use crate::token::TokenProvider;
use crate::transport;
use crate::wire;

/// Frames the reader and renewals queue for the writer (pongs, `AUTH`,
/// `QUERY_UNSUB`); served before requests.
const CONTROL_QUEUE: usize = 256;
/// Events buffered per [`Client::events`] receiver before the oldest are
/// dropped.
const EVENT_BUFFER: usize = 256;

/// State shared by the client handles, the driver tasks, pending batches
/// and subscriptions.
pub(crate) struct Shared {
    router: Mutex<Router>,
    pub(crate) codec: Codec,
    pub(crate) control: mpsc::Sender<Message>,
    closed: watch::Sender<Option<CloseInfo>>,
    pub(crate) session: watch::Sender<SessionInfo>,
    events: broadcast::Sender<ClientEvent>,
    pub(crate) clock: Clock,
    pub(crate) provider: Arc<dyn TokenProvider>,
    request_timeout: Option<Duration>,
    subscription_buffer: usize,
    pub(crate) close_grace: Duration,
    pub(crate) stop_reader: Notify,
    next_op_id: AtomicU64,
    next_query_id: AtomicU64,
    next_nonce: AtomicU64,
}

impl Shared {
    /// The router, locked. Never held across an `.await`.
    pub(crate) fn router(&self) -> MutexGuard<'_, Router> {
        // Nothing panics while holding the lock, so a poisoned lock still
        // guards a consistent table.
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error for a request that cannot complete because the connection
    /// is gone (or going).
    pub(crate) fn disconnected(&self) -> ClientError {
        match self.router().closed() {
            Some(info) => ClientError::disconnected(info),
            None => ClientError::Disconnected {
                code: None,
                reason: "the connection is closing".to_owned(),
            },
        }
    }

    /// Queues a control message, waiting for room.
    pub(crate) async fn send_control(&self, msg: &ClientMessage) -> Result<(), ClientError> {
        let frame = wire::encode(&self.codec, msg).map_err(ClientError::Encode)?;
        self.control
            .send(frame)
            .await
            .map_err(|_| self.disconnected())
    }

    /// Queues a control message if there is room; drops it otherwise (only
    /// used for messages whose loss is harmless: pongs, unsubscriptions).
    pub(crate) fn try_send_message(&self, msg: &ClientMessage) {
        match wire::encode(&self.codec, msg) {
            Ok(frame) => self.try_send_frame(frame),
            Err(e) => tracing::warn!(error = %e, "cannot encode a control message"),
        }
    }

    /// Like [`Shared::try_send_message`] without a return value.
    pub(crate) fn try_send_control(&self, msg: &ClientMessage) {
        self.try_send_message(msg);
    }

    /// Queues a ready frame on the control queue if there is room.
    pub(crate) fn try_send_frame(&self, frame: Message) {
        if self.control.try_send(frame).is_err() {
            tracing::debug!("control queue full or closed; frame dropped");
        }
    }

    /// Publishes an event to every [`Client::events`] receiver.
    pub(crate) fn publish(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }

    /// The connection ended: fail every pending request, publish the close.
    /// Only the first call has an effect.
    pub(crate) fn teardown(&self, info: CloseInfo) {
        let info = {
            // Checked and closed under one lock, so a reader and a writer
            // failing at once publish one close.
            let mut router = self.router();
            if router.closed().is_some() {
                return;
            }
            router.close(info)
        };
        self.closed.send_replace(Some(info.clone()));
        self.publish(ClientEvent::Closed(info));
    }

    fn next_op_id(&self) -> u64 {
        self.next_op_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A raw WebSocket frame for [`Client::send_raw_frame`] (tests of how a
/// server handles bad input).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawFrame {
    /// A binary frame with these bytes.
    Binary(Vec<u8>),
    /// A text frame.
    Text(String),
    /// A WebSocket-level ping.
    Ping(Vec<u8>),
    /// A close frame; the connection ends after it.
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// A connection to a TopGun server.
///
/// Cheap to clone; all clones share one connection, whose background tasks
/// answer pings, renew the session through the [`TokenProvider`], route
/// answers to the waiting requests and report the close. The connection
/// closes (politely) when the last clone is dropped or [`Client::close`] is
/// called; every request still pending then fails with
/// [`ClientError::Disconnected`] carrying the close code.
///
/// There is no automatic reconnect: connect again after the connection
/// ends (the offline replica that resends on reconnect is a later layer).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("encoding", &self.shared.codec.encoding())
            .field("session", &*self.shared.session.borrow())
            .field("closed", &*self.shared.closed.borrow())
            .finish()
    }
}

impl Client {
    /// Connects: TCP, TLS for `wss://`, the WebSocket upgrade offering the
    /// configured encoding's subprotocol, then authentication with a token
    /// from `provider` (`AUTH_REQUIRED` -> `AUTH` -> `AUTH_ACK`).
    ///
    /// The provider is called again on every later `AUTH_REQUIRED` (session
    /// renewal).
    pub async fn connect(
        config: ClientConfig,
        provider: impl TokenProvider,
    ) -> Result<Client, ConnectError> {
        let provider: Arc<dyn TokenProvider> = Arc::new(provider);
        let codec =
            Codec::new(config.encoding()).with_max_message_bytes(config.max_message_bytes());
        let mut ws = transport::open(&config).await?;
        let session = transport::within(
            ConnectStage::Auth,
            config.handshake_timeout(),
            handshake::authenticate(&mut ws, &codec, provider.as_ref()),
        )
        .await?;
        tracing::debug!(sub = %session.sub, url = %config.url(), "connected");

        let (outbound_tx, outbound_rx) = mpsc::channel(config.outbound_queue());
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            router: Mutex::new(Router::new()),
            codec,
            control: control_tx,
            closed: watch::Sender::new(None),
            session: watch::Sender::new(session),
            events,
            clock: Clock::new(NodeId(rand::random())),
            provider,
            request_timeout: config.request_timeout(),
            subscription_buffer: config.subscription_buffer(),
            close_grace: config.handshake_timeout(),
            stop_reader: Notify::new(),
            next_op_id: AtomicU64::new(1),
            next_query_id: AtomicU64::new(1),
            next_nonce: AtomicU64::new(1),
        });
        driver::spawn(ws, shared.clone(), outbound_rx, control_rx);
        Ok(Client {
            shared,
            outbound: outbound_tx,
        })
    }

    /// The current session (updated when a renewal is accepted).
    pub fn session(&self) -> SessionInfo {
        self.shared.session.borrow().clone()
    }

    /// The encoding in use.
    pub fn encoding(&self) -> Encoding {
        self.shared.codec.encoding()
    }

    /// The random node id stamped on this client's timestamps.
    pub fn node_id(&self) -> NodeId {
        self.shared.clock.node()
    }

    /// A fresh timestamp from the client's hybrid logical clock.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Connection events (server errors, renewals, the close). Each receiver
    /// sees the events published after it was created; a receiver that
    /// falls more than 256 events behind loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.shared.events.subscribe()
    }

    /// How the connection ended, if it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.closed.borrow().clone()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Waits until the connection ends; returns the close code and reason.
    pub async fn closed(&self) -> CloseInfo {
        let mut rx = self.shared.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(info) => info.clone().unwrap_or_else(unknown_close),
            // The sender lives in `shared`, which `self` holds.
            Err(_) => unknown_close(),
        }
    }

    /// Sends a normal close frame (code 1000) after the requests already
    /// queued, and waits (up to the handshake timeout) for the server to
    /// answer it. Requests still pending fail with
    /// [`ClientError::Disconnected`].
    pub async fn close(&self) -> CloseInfo {
        if let Some(info) = self.close_info() {
            return info;
        }
        self.shared
            .router()
            .set_client_close(Some(wire::codes::NORMAL), "client closed");
        let grace = self.shared.close_grace;
        let polite = async {
            let _ = self
                .outbound
                .send(wire::close_frame(wire::codes::NORMAL, "client closed"))
                .await;
            self.closed().await
        };
        match tokio::time::timeout(grace, polite).await {
            Ok(info) => info,
            Err(_) => {
                self.shared.stop_reader.notify_one();
                self.closed().await
            }
        }
    }

    /// A put of `value` under `key` in the last-writer-wins map `map`,
    /// stamped with the client's clock.
    pub fn put(&self, map: &str, key: &str, value: impl Into<Value>) -> ClientOp {
        ClientOp::new(map, key, self.now(), ops::put_kind(value.into()))
    }

    /// A removal of `key` from the last-writer-wins map `map`.
    pub fn remove(&self, map: &str, key: &str) -> ClientOp {
        ClientOp::new(map, key, self.now(), OpKind::Remove)
    }

    /// An add of `value` to `key` of the observed-remove map `map`; the
    /// op's timestamp becomes the item's tag (unless the server replaces
    /// it: the ack carries the applied one).
    pub fn or_add(&self, map: &str, key: &str, value: impl Into<Value>) -> ClientOp {
        ClientOp::new(map, key, self.now(), ops::or_add_kind(value.into()))
    }

    /// A removal of the items tagged `tags` (the ones this client saw) from
    /// `key` of the observed-remove map `map`.
    pub fn or_remove(&self, map: &str, key: &str, tags: Vec<Timestamp>) -> ClientOp {
        ClientOp::new(map, key, self.now(), OpKind::OrRemove { tags })
    }

    /// Sends one op (`CLIENT_OP`) and waits for its outcome.
    pub async fn send_op(&self, op: ClientOp) -> Result<OpOutcome, ClientError> {
        let mut outcomes = self.submit(vec![op], None).await?.await?;
        outcomes.pop().ok_or_else(|| ClientError::Disconnected {
            code: None,
            reason: "the op's answer was lost".to_owned(),
        })
    }

    /// Sends ops as one `OP_BATCH` and waits for every outcome: one per op,
    /// in the order given (the server may answer them across several
    /// `OP_ACK` and `OP_REJECTED` messages).
    pub async fn send_batch(
        &self,
        ops: Vec<ClientOp>,
        write_concern: WriteConcern,
    ) -> Result<Vec<OpOutcome>, ClientError> {
        self.submit(ops, Some(write_concern)).await?.await
    }

    /// Queues ops as one `OP_BATCH` and returns as soon as the frame is in
    /// the outbound queue (waiting only when the queue is full); the
    /// returned [`PendingBatch`] resolves to the outcomes. Lets a caller
    /// keep many batches in flight on one connection.
    pub async fn submit_batch(
        &self,
        ops: Vec<ClientOp>,
        write_concern: WriteConcern,
    ) -> Result<PendingBatch, ClientError> {
        self.submit(ops, Some(write_concern)).await
    }

    /// `None` sends a `CLIENT_OP` (exactly one op), `Some` an `OP_BATCH`.
    async fn submit(
        &self,
        ops: Vec<ClientOp>,
        batch: Option<WriteConcern>,
    ) -> Result<PendingBatch, ClientError> {
        if ops.is_empty() {
            return Ok(PendingBatch::ready(self.shared.clone()));
        }
        let mut op_ids = Vec::with_capacity(ops.len());
        let mut wire_ops = Vec::with_capacity(ops.len());
        for op in ops {
            let id = op.op_id.unwrap_or_else(|| self.shared.next_op_id());
            op_ids.push(id);
            wire_ops.push(op.into_wire(id).map_err(ClientError::Convert)?);
        }
        let msg = match (batch, wire_ops.pop()) {
            (None, Some(op)) if wire_ops.is_empty() => ClientMessage::ClientOp { op },
            (write_concern, last) => {
                wire_ops.extend(last);
                ClientMessage::OpBatch {
                    ops: wire_ops,
                    write_concern: write_concern.unwrap_or_default(),
                }
            }
        };
        let frame = wire::encode(&self.shared.codec, &msg).map_err(ClientError::Encode)?;
        let (batch_id, rx) = self.shared.router().register_batch(op_ids.clone())?;
        // From here on, dropping `pending` (an error below, or a caller
        // that gives up) deregisters the batch.
        let pending = PendingBatch {
            op_ids,
            batch_id: Some(batch_id),
            rx,
            sleep: self
                .shared
                .request_timeout
                .map(|t| Box::pin(tokio::time::sleep(t))),
            shared: self.shared.clone(),
            done: false,
        };
        self.enqueue(frame).await?;
        Ok(pending)
    }

    /// Subscribes to a live query over the last-writer-wins map `map`
    /// (`QUERY_SUB`); returns once the initial result (`QUERY_RESP`) is in.
    pub async fn subscribe(&self, map: &str, query: &Query) -> Result<Subscription, ClientError> {
        let wire_query = WireQuery::try_from(query).map_err(ClientError::Convert)?;
        let query_id = self.shared.next_query_id.fetch_add(1, Ordering::Relaxed);
        let msg = ClientMessage::QuerySub {
            query_id,
            map: map.to_owned(),
            query: wire_query,
        };
        let frame = wire::encode(&self.shared.codec, &msg).map_err(ClientError::Encode)?;
        let (tx, rx) = mpsc::channel(self.shared.subscription_buffer);
        let end = Arc::new(OnceLock::new());
        let initial_rx = self
            .shared
            .router()
            .register_query(query_id, tx, end.clone())?;
        // If the frame never leaves (an error, or the caller gives up while
        // the queue is full), the registration goes too. Once it is queued,
        // a result nobody awaits is unsubscribed by the router.
        let mut unsent = UnsentQuery {
            shared: &self.shared,
            query_id,
            armed: true,
        };
        self.enqueue(frame).await?;
        unsent.armed = false;
        match self.await_reply(initial_rx).await {
            Ok(initial) => Ok(Subscription::new(
                query_id,
                map.to_owned(),
                initial,
                rx,
                end,
                self.shared.clone(),
            )),
            Err(ClientError::Timeout) => {
                if self
                    .shared
                    .router()
                    .remove_query(query_id, SubscriptionEnd::Unsubscribed)
                {
                    self.shared
                        .try_send_control(&ClientMessage::QueryUnsub { query_id });
                }
                Err(ClientError::Timeout)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends a subscription (`QUERY_UNSUB`); the same as
    /// [`Subscription::unsubscribe`].
    pub async fn unsubscribe(&self, subscription: Subscription) -> Result<(), ClientError> {
        subscription.unsubscribe().await
    }

    /// Sends a `PING` and returns the round-trip time to its `PONG`
    /// (measured from when the ping was queued).
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let nonce = self.shared.next_nonce.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&self.shared.codec, &ClientMessage::Ping { nonce })
            .map_err(ClientError::Encode)?;
        let rx = self.shared.router().register_ping(nonce, Instant::now())?;
        let result = match self.enqueue(frame).await {
            Ok(()) => self.await_reply(rx).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.shared.router().cancel_ping(nonce);
        }
        result
    }

    /// Runs the Merkle sync exchange for the last-writer-wins map `map`
    /// against the server and merges what the server holds (tombstones
    /// included) into `local`. `local` must use the protocol's Merkle depth
    /// (`LwwMap::new()` does). The report lists the keys the server wants
    /// from the client (`wanted_keys`); sending them is the caller's part.
    pub async fn sync_lww(&self, map: &str, local: &mut LwwMap) -> Result<SyncReport, ClientError> {
        self.sync(map, local).await
    }

    /// The same exchange for the observed-remove map `map`.
    pub async fn sync_or(&self, map: &str, local: &mut OrMap) -> Result<SyncReport, ClientError> {
        self.sync(map, local).await
    }

    async fn sync<R: SyncReplica + Send>(
        &self,
        map: &str,
        replica: &mut R,
    ) -> Result<SyncReport, ClientError> {
        let (mut machine, mut msg) = SyncMachine::start(map, replica)?;
        let key: SyncKey = (map.to_owned(), machine.kind());
        self.shared.router().begin_sync(&key)?;
        let _running = SyncGuard {
            shared: &self.shared,
            key: &key,
        };
        let (mut sent, mut received) = (0u64, 0u64);
        'requests: loop {
            let frame = wire::encode(&self.shared.codec, &msg).map_err(ClientError::Encode)?;
            sent += wire::payload(&frame).map_or(0, |p| p.len() as u64);
            let mut parts = self.shared.router().register_sync_step(key.clone())?;
            self.enqueue(frame).await?;
            // One answer, or the parts of a split `SYNC_RESP_LEAF` answer;
            // the request timeout applies to each.
            loop {
                let reply = self.await_part(&mut parts).await?;
                received += reply.bytes as u64;
                match machine.handle(replica, reply.msg)? {
                    Step::Send(next) => {
                        msg = next;
                        continue 'requests;
                    }
                    Step::Wait => {}
                    Step::Done => break 'requests,
                }
            }
        }
        let mut report = machine.into_report();
        report.bytes_sent = sent;
        report.bytes_received = received;
        Ok(report)
    }

    /// Sends a raw frame as is, bypassing the codec (for testing how a
    /// server handles bad input). Nothing awaits an answer to it.
    pub async fn send_raw_frame(&self, frame: RawFrame) -> Result<(), ClientError> {
        let frame = match frame {
            RawFrame::Binary(b) => Message::Binary(b.into()),
            RawFrame::Text(t) => Message::Text(t.into()),
            RawFrame::Ping(p) => Message::Ping(p.into()),
            RawFrame::Close { code, reason } => wire::close_frame(code, &reason),
        };
        self.enqueue(frame).await
    }

    /// Requests awaiting answers on this connection (batches, subscriptions,
    /// pings, sync steps).
    pub fn pending_requests(&self) -> usize {
        self.shared.router().pending()
    }

    async fn enqueue(&self, frame: Message) -> Result<(), ClientError> {
        self.outbound
            .send(frame)
            .await
            .map_err(|_| self.shared.disconnected())
    }

    /// Waits for the next part of a routed sync answer, within the request
    /// timeout.
    async fn await_part(&self, parts: &mut SyncParts) -> Result<SyncReply, ClientError> {
        let answer = async {
            match parts.recv().await {
                Some(result) => result,
                None => Err(self.shared.disconnected()),
            }
        };
        match self.shared.request_timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .unwrap_or(Err(ClientError::Timeout)),
            None => answer.await,
        }
    }

    /// Waits for a routed answer, within the request timeout.
    async fn await_reply<T>(
        &self,
        rx: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let answer = async {
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(self.shared.disconnected()),
            }
        };
        match self.shared.request_timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .unwrap_or(Err(ClientError::Timeout)),
            None => answer.await,
        }
    }
}

fn unknown_close() -> CloseInfo {
    CloseInfo {
        code: None,
        reason: "the connection ended".to_owned(),
        initiator: CloseInitiator::Transport,
    }
}

/// Forgets a subscription whose `QUERY_SUB` was never queued.
struct UnsentQuery<'a> {
    shared: &'a Shared,
    query_id: u64,
    armed: bool,
}

impl Drop for UnsentQuery<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .router()
                .remove_query(self.query_id, SubscriptionEnd::Unsubscribed);
        }
    }
}

/// Marks a sync as finished when its future completes or is dropped.
struct SyncGuard<'a> {
    shared: &'a Shared,
    key: &'a SyncKey,
}

impl Drop for SyncGuard<'_> {
    fn drop(&mut self) {
        self.shared.router().end_sync(self.key);
    }
}

/// The outcomes of a batch in flight ([`Client::submit_batch`]): a future
/// that resolves to one [`OpOutcome`] per op, in order, or to
/// [`ClientError::Disconnected`] / [`ClientError::Timeout`].
///
/// Dropping it stops waiting (the ops may still be applied).
pub struct PendingBatch {
    op_ids: Vec<u64>,
    batch_id: Option<u64>,
    rx: oneshot::Receiver<BatchResult>,
    sleep: Option<Pin<Box<Sleep>>>,
    shared: Arc<Shared>,
    done: bool,
}

impl std::fmt::Debug for PendingBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBatch")
            .field("op_ids", &self.op_ids)
            .field("done", &self.done)
            .finish()
    }
}

impl PendingBatch {
    /// An already complete, empty batch (nothing was sent).
    fn ready(shared: Arc<Shared>) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(Vec::new()));
        PendingBatch {
            op_ids: Vec::new(),
            batch_id: None,
            rx,
            sleep: None,
            shared,
            done: false,
        }
    }

    /// The op ids of the batch, in order (assigned ones included).
    pub fn op_ids(&self) -> &[u64] {
        &self.op_ids
    }

    fn finish(&mut self, cancel: bool) {
        self.done = true;
        if let (true, Some(id)) = (cancel, self.batch_id) {
            self.shared.router().cancel_batch(id);
        }
    }
}

impl Future for PendingBatch {
    type Output = Result<Vec<OpOutcome>, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(ClientError::Disconnected {
                code: None,
                reason: "the batch's outcome was already taken".to_owned(),
            }));
        }
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(result)) => {
                this.finish(false);
                Poll::Ready(result)
            }
            Poll::Ready(Err(_)) => {
                this.finish(true);
                Poll::Ready(Err(this.shared.disconnected()))
            }
            Poll::Pending => {
                let expired = this
                    .sleep
                    .as_mut()
                    .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
                if expired {
                    this.finish(true);
                    Poll::Ready(Err(ClientError::Timeout))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for PendingBatch {
    fn drop(&mut self) {
        if let (false, Some(id)) = (self.done, self.batch_id) {
            self.shared.router().cancel_batch(id);
        }
    }
}
