//! The table of requests awaiting answers, and the routing of every server
//! message to the request it answers.
//!
//! The router does no I/O: requests are registered by the caller before
//! their frame is queued, the reader task hands it each decoded message
//! ([`Router::handle`]) and carries out the [`Action`]s it returns, and
//! [`Router::close`] fails everything still pending with the close code.
//! Time is a parameter, so the routing is tested without sockets.
//!
//! Correlation: op outcomes by op id (a batch completes when every one of
//! its ops is answered, whichever `OP_ACK`/`OP_REJECTED` carried them),
//! query results by query id, pongs by nonce, sync answers by (map, kind).
//! A sync step may be answered by several `SYNC_RESP_LEAF` parts: each is
//! delivered as it arrives, and the step stays pending until the part
//! marked `last`.
//! An `ERROR` whose context names a request (`Query { query_id }`,
//! `Sync { map, kind }`) fails exactly that subscription or sync step, if
//! it is still pending. Only an `ERROR` without a context (from a server
//! that does not set it) falls back to a guess: one that refuses a request
//! (`Forbidden`, `UnknownQuery`, `InvalidSyncRequest`) is matched to the
//! oldest pending subscription or sync step it can answer, relying on the
//! server answering requests in order.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use topgun_core::{LwwRecord, Timestamp};
use topgun_protocol::{
    AuthRequiredReason, ClientMessage, ErrorCode, ErrorContext, OpAckEntry, OpRejection,
    QueryRecord, ServerMessage, WireMapKind,
};

use crate::error::{ClientError, CloseInfo};
use crate::event::ClientEvent;
use crate::handshake::SessionInfo;
use crate::ops::OpOutcome;
use crate::subscription::{QueryChange, SubscriptionEnd};

/// A sync exchange is identified by its map and kind: the responses carry
/// nothing else.
pub(crate) type SyncKey = (String, WireMapKind);

/// A sync step's answer and the size of the frame that carried it.
#[derive(Debug)]
pub(crate) struct SyncReply {
    /// The message.
    pub(crate) msg: ServerMessage,
    /// The frame's payload length.
    pub(crate) bytes: usize,
}

/// A batch's answer.
pub(crate) type BatchResult = Result<Vec<OpOutcome>, ClientError>;
/// A subscription's initial result.
pub(crate) type InitialResult = Result<Vec<(String, LwwRecord)>, ClientError>;
/// Where a sync step's answer goes, part by part.
///
/// Unbounded: the parts answer one request, each within the frame limit,
/// and the sync driver merges them as they come. A bound would either stall
/// the reader (and with it every other request of the connection) or fail
/// a legitimate sync whose driver fell a few parts behind.
pub(crate) type SyncParts = mpsc::UnboundedReceiver<Result<SyncReply, ClientError>>;

/// What the reader task must do after routing a message.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Send this message (a `PONG`, or a `QUERY_UNSUB` for a subscription
    /// nobody listens to any more).
    Send(ClientMessage),
    /// The server asks for a (fresh) token: call the provider and send
    /// `AUTH`.
    Renew {
        /// Oldest version the server speaks.
        min_version: u16,
        /// Newest version the server speaks.
        max_version: u16,
        /// Why.
        reason: AuthRequiredReason,
    },
    /// The session changed (a renewal was accepted).
    Session(SessionInfo),
    /// Publish an event.
    Event(ClientEvent),
    /// Advance the client's clock past this acknowledged timestamp.
    Observe(Timestamp),
}

struct Batch {
    op_ids: Vec<u64>,
    outcomes: Vec<Option<OpOutcome>>,
    remaining: usize,
    reply: oneshot::Sender<BatchResult>,
}

struct QueryState {
    initial: Option<oneshot::Sender<InitialResult>>,
    updates: mpsc::Sender<QueryChange>,
    end: Arc<OnceLock<SubscriptionEnd>>,
}

struct PingState {
    sent: Instant,
    reply: oneshot::Sender<Result<Duration, ClientError>>,
}

/// A request that an `ERROR` may answer, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Awaiting {
    Query(u64),
    Sync(SyncKey),
}

/// The pending-request table of one connection.
#[derive(Default)]
pub(crate) struct Router {
    closed: Option<CloseInfo>,
    /// The close frame this client sent, if it sent one.
    client_close: Option<(Option<u16>, String)>,
    /// op id -> (batch id, position in the batch).
    op_slots: HashMap<u64, (u64, usize)>,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    queries: HashMap<u64, QueryState>,
    pings: HashMap<u64, PingState>,
    sync_steps: HashMap<SyncKey, mpsc::UnboundedSender<Result<SyncReply, ClientError>>>,
    active_syncs: HashSet<SyncKey>,
    awaiting: VecDeque<Awaiting>,
}

impl Router {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// How the connection ended, once it has.
    pub(crate) fn closed(&self) -> Option<&CloseInfo> {
        self.closed.as_ref()
    }

    /// Notes that this client sent (or is about to send) a close frame with
    /// `code` and `reason`, so the end of the connection is attributed to
    /// the client. The first close frame counts.
    pub(crate) fn set_client_close(&mut self, code: Option<u16>, reason: &str) {
        if self.client_close.is_none() {
            self.client_close = Some((code, reason.to_owned()));
        }
    }

    /// The close frame this client sent, if any.
    pub(crate) fn client_close(&self) -> Option<&(Option<u16>, String)> {
        self.client_close.as_ref()
    }

    fn check_open(&self) -> Result<(), ClientError> {
        match &self.closed {
            Some(info) => Err(ClientError::disconnected(info)),
            None => Ok(()),
        }
    }

    /// Registers a batch of ops (one op for `CLIENT_OP`); the receiver
    /// yields one outcome per op, in order. Fails if an id is already in
    /// flight or repeated.
    pub(crate) fn register_batch(
        &mut self,
        op_ids: Vec<u64>,
    ) -> Result<(u64, oneshot::Receiver<BatchResult>), ClientError> {
        self.check_open()?;
        let mut seen = HashSet::with_capacity(op_ids.len());
        for id in &op_ids {
            if self.op_slots.contains_key(id) || !seen.insert(*id) {
                return Err(ClientError::DuplicateOpId(*id));
            }
        }
        let batch_id = self.next_batch;
        self.next_batch = self.next_batch.wrapping_add(1);
        for (i, id) in op_ids.iter().enumerate() {
            self.op_slots.insert(*id, (batch_id, i));
        }
        let (tx, rx) = oneshot::channel();
        let n = op_ids.len();
        self.batches.insert(
            batch_id,
            Batch {
                op_ids,
                outcomes: vec![None; n],
                remaining: n,
                reply: tx,
            },
        );
        Ok((batch_id, rx))
    }

    /// Forgets a batch whose caller gave up (or whose frame was never sent).
    pub(crate) fn cancel_batch(&mut self, batch_id: u64) {
        if let Some(batch) = self.batches.remove(&batch_id) {
            for id in batch.op_ids {
                self.op_slots.remove(&id);
            }
        }
    }

    /// Registers a subscription; the receiver yields its initial result.
    pub(crate) fn register_query(
        &mut self,
        query_id: u64,
        updates: mpsc::Sender<QueryChange>,
        end: Arc<OnceLock<SubscriptionEnd>>,
    ) -> Result<oneshot::Receiver<InitialResult>, ClientError> {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.queries.insert(
            query_id,
            QueryState {
                initial: Some(tx),
                updates,
                end,
            },
        );
        self.awaiting.push_back(Awaiting::Query(query_id));
        Ok(rx)
    }

    /// Ends a subscription locally with `reason`; returns whether it was
    /// live (and so needs a `QUERY_UNSUB`).
    pub(crate) fn remove_query(&mut self, query_id: u64, reason: SubscriptionEnd) -> bool {
        self.awaiting.retain(|a| *a != Awaiting::Query(query_id));
        match self.queries.remove(&query_id) {
            Some(q) => {
                let _ = q.end.set(reason);
                true
            }
            None => false,
        }
    }

    /// Registers a ping sent at `now`.
    pub(crate) fn register_ping(
        &mut self,
        nonce: u64,
        now: Instant,
    ) -> Result<oneshot::Receiver<Result<Duration, ClientError>>, ClientError> {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        self.pings.insert(
            nonce,
            PingState {
                sent: now,
                reply: tx,
            },
        );
        Ok(rx)
    }

    /// Forgets a ping whose caller gave up.
    pub(crate) fn cancel_ping(&mut self, nonce: u64) {
        self.pings.remove(&nonce);
    }

    /// Marks a sync of `key` as running; only one may run per map and kind.
    pub(crate) fn begin_sync(&mut self, key: &SyncKey) -> Result<(), ClientError> {
        self.check_open()?;
        if self.active_syncs.insert(key.clone()) {
            Ok(())
        } else {
            Err(ClientError::SyncInProgress { map: key.0.clone() })
        }
    }

    /// Marks the sync of `key` as finished and forgets any step still
    /// awaiting an answer.
    pub(crate) fn end_sync(&mut self, key: &SyncKey) {
        self.active_syncs.remove(key);
        self.cancel_sync_step(key);
    }

    /// Registers one sync step; the receiver yields the server's answer:
    /// one message, or for a `SYNC_REQ_LEAF` every `SYNC_RESP_LEAF` part up
    /// to the one marked `last`, or an error.
    pub(crate) fn register_sync_step(&mut self, key: SyncKey) -> Result<SyncParts, ClientError> {
        self.check_open()?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.awaiting.push_back(Awaiting::Sync(key.clone()));
        self.sync_steps.insert(key, tx);
        Ok(rx)
    }

    fn cancel_sync_step(&mut self, key: &SyncKey) {
        if self.sync_steps.remove(key).is_some() {
            self.awaiting
                .retain(|a| !matches!(a, Awaiting::Sync(k) if k == key));
        }
    }

    /// How many requests of every kind await answers (for tests and
    /// diagnostics).
    pub(crate) fn pending(&self) -> usize {
        self.batches.len() + self.queries.len() + self.pings.len() + self.sync_steps.len()
    }

    /// Routes one decoded server message that arrived in a frame of `bytes`
    /// bytes at `now`; appends what the caller must do to `out`.
    pub(crate) fn handle(
        &mut self,
        msg: ServerMessage,
        bytes: usize,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        match msg {
            ServerMessage::OpAck { acks } => self.on_acks(acks, out),
            ServerMessage::OpRejected { rejections } => self.on_rejections(rejections),
            ServerMessage::QueryResp { query_id, records } => {
                self.on_query_resp(query_id, records, out);
            }
            ServerMessage::QueryUpdate {
                query_id,
                change,
                key,
                record,
            } => {
                let change = QueryChange {
                    key,
                    change,
                    record: record.into(),
                };
                self.on_query_update(query_id, change, out);
            }
            ServerMessage::SyncRespRoot { ref map, kind, .. }
            | ServerMessage::SyncRespBuckets { ref map, kind, .. } => {
                let key = (map.clone(), kind);
                self.on_sync(key, msg, bytes, true);
            }
            ServerMessage::SyncRespLeaf {
                ref map,
                ref records,
                last,
                ..
            } => {
                let key = (map.clone(), records.kind());
                self.on_sync(key, msg, bytes, last);
            }
            ServerMessage::Ping { nonce } => out.push(Action::Send(ClientMessage::Pong { nonce })),
            ServerMessage::Pong { nonce } => {
                if let Some(p) = self.pings.remove(&nonce) {
                    let _ = p.reply.send(Ok(now.saturating_duration_since(p.sent)));
                }
            }
            ServerMessage::AuthRequired {
                min_version,
                max_version,
                reason,
            } => out.push(Action::Renew {
                min_version,
                max_version,
                reason,
            }),
            ServerMessage::AuthAck {
                protocol_version,
                sub,
                session_expires_at_ms,
            } => {
                let info = SessionInfo {
                    sub,
                    protocol_version,
                    expires_at_ms: session_expires_at_ms,
                };
                out.push(Action::Session(info.clone()));
                out.push(Action::Event(ClientEvent::SessionRenewed(info)));
            }
            ServerMessage::AuthFail { reason, message } => {
                out.push(Action::Event(ClientEvent::RenewalFailed {
                    reason,
                    message,
                }));
            }
            ServerMessage::Error {
                code,
                message,
                context,
            } => self.on_error(code, message, context, out),
        }
    }

    fn on_acks(&mut self, acks: Vec<OpAckEntry>, out: &mut Vec<Action>) {
        let mut latest: Option<Timestamp> = None;
        for ack in acks {
            let timestamp: Timestamp = ack.timestamp.into();
            latest = latest.max(Some(timestamp));
            self.resolve_op(ack.op_id, OpOutcome::Acked { timestamp });
        }
        if let Some(ts) = latest {
            out.push(Action::Observe(ts));
        }
    }

    fn on_rejections(&mut self, rejections: Vec<OpRejection>) {
        for r in rejections {
            self.resolve_op(
                r.op_id,
                OpOutcome::Rejected {
                    code: r.code,
                    message: r.message,
                },
            );
        }
    }

    /// Fills one op's slot; completes its batch when it was the last.
    /// Answers for unknown op ids (a caller that gave up, a duplicate
    /// answer) are ignored.
    fn resolve_op(&mut self, op_id: u64, outcome: OpOutcome) {
        let Some((batch_id, index)) = self.op_slots.remove(&op_id) else {
            tracing::debug!(op_id, "answer for an op nobody awaits");
            return;
        };
        let Entry::Occupied(mut entry) = self.batches.entry(batch_id) else {
            return;
        };
        let batch = entry.get_mut();
        if let Some(slot) = batch.outcomes.get_mut(index) {
            if slot.is_none() {
                batch.remaining = batch.remaining.saturating_sub(1);
            }
            *slot = Some(outcome);
        }
        if batch.remaining == 0 {
            let batch = entry.remove();
            let outcomes = batch.outcomes.into_iter().flatten().collect();
            let _ = batch.reply.send(Ok(outcomes));
        }
    }

    fn on_query_resp(&mut self, query_id: u64, records: Vec<QueryRecord>, out: &mut Vec<Action>) {
        self.awaiting.retain(|a| *a != Awaiting::Query(query_id));
        let Some(q) = self.queries.get_mut(&query_id) else {
            return;
        };
        let Some(initial) = q.initial.take() else {
            return;
        };
        let records = records
            .into_iter()
            .map(|r| (r.key, LwwRecord::from(r.record)))
            .collect();
        if initial.send(Ok(records)).is_err() {
            // The subscriber gave up before the result came: the server
            // holds a subscription nobody reads.
            self.remove_query(query_id, SubscriptionEnd::Unsubscribed);
            out.push(Action::Send(ClientMessage::QueryUnsub { query_id }));
        }
    }

    fn on_query_update(&mut self, query_id: u64, change: QueryChange, out: &mut Vec<Action>) {
        let Some(q) = self.queries.get(&query_id) else {
            return;
        };
        match q.updates.try_send(change) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.remove_query(query_id, SubscriptionEnd::Lagged);
                out.push(Action::Send(ClientMessage::QueryUnsub { query_id }));
                out.push(Action::Event(ClientEvent::SubscriptionLagged { query_id }));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.remove_query(query_id, SubscriptionEnd::Unsubscribed);
                out.push(Action::Send(ClientMessage::QueryUnsub { query_id }));
            }
        }
    }

    /// Delivers a sync answer; `last` ends the step (every answer but a
    /// non-final `SYNC_RESP_LEAF` part).
    fn on_sync(&mut self, key: SyncKey, msg: ServerMessage, bytes: usize, last: bool) {
        let Entry::Occupied(step) = self.sync_steps.entry(key) else {
            tracing::debug!("sync answer nobody awaits");
            return;
        };
        let delivered = step.get().send(Ok(SyncReply { msg, bytes })).is_ok();
        if last || !delivered {
            let (key, _) = step.remove_entry();
            self.awaiting
                .retain(|a| !matches!(a, Awaiting::Sync(k) if *k == key));
        }
    }

    fn on_error(
        &mut self,
        code: ErrorCode,
        message: String,
        context: Option<ErrorContext>,
        out: &mut Vec<Action>,
    ) {
        let target = match &context {
            Some(ErrorContext::Query { query_id }) => Some(Awaiting::Query(*query_id)),
            Some(ErrorContext::Sync { map, kind }) => Some(Awaiting::Sync((map.clone(), *kind))),
            // A context this client does not know names a request it
            // cannot have made: fail nothing.
            Some(_) => None,
            None => self.guess_target(code),
        };
        if let Some(target) = target {
            self.awaiting.retain(|a| *a != target);
            let error = ClientError::Server {
                code,
                message: message.clone(),
            };
            match target {
                Awaiting::Query(id) => {
                    if let Some(mut q) = self.queries.remove(&id) {
                        let _ = q.end.set(SubscriptionEnd::Refused {
                            code,
                            message: message.clone(),
                        });
                        if let Some(initial) = q.initial.take() {
                            let _ = initial.send(Err(error));
                        }
                    }
                }
                Awaiting::Sync(key) => {
                    if let Some(tx) = self.sync_steps.remove(&key) {
                        let _ = tx.send(Err(error));
                    }
                }
            }
        }
        out.push(Action::Event(ClientEvent::ServerError {
            code,
            message,
            context,
        }));
    }

    /// The fallback for an `ERROR` without a context: the oldest pending
    /// subscription or sync step that an error with this code can answer.
    fn guess_target(&self, code: ErrorCode) -> Option<Awaiting> {
        let answers = |a: &&Awaiting| match code {
            ErrorCode::Forbidden => true,
            ErrorCode::UnknownQuery => matches!(a, Awaiting::Query(_)),
            ErrorCode::InvalidSyncRequest => matches!(a, Awaiting::Sync(_)),
            _ => false,
        };
        self.awaiting.iter().find(answers).cloned()
    }

    /// The connection ended: every pending request fails with
    /// [`ClientError::Disconnected`] carrying the close code, every
    /// subscription ends, and later registrations fail at once. Idempotent:
    /// the first close wins.
    pub(crate) fn close(&mut self, info: CloseInfo) -> CloseInfo {
        let info = self.closed.get_or_insert(info).clone();
        for (_, batch) in self.batches.drain() {
            let _ = batch.reply.send(Err(ClientError::disconnected(&info)));
        }
        self.op_slots.clear();
        for (_, mut q) in self.queries.drain() {
            let _ = q.end.set(SubscriptionEnd::Disconnected {
                code: info.code,
                reason: info.reason.clone(),
            });
            if let Some(initial) = q.initial.take() {
                let _ = initial.send(Err(ClientError::disconnected(&info)));
            }
        }
        for (_, p) in self.pings.drain() {
            let _ = p.reply.send(Err(ClientError::disconnected(&info)));
        }
        for (_, tx) in self.sync_steps.drain() {
            let _ = tx.send(Err(ClientError::disconnected(&info)));
        }
        self.awaiting.clear();
        self.active_syncs.clear();
        info
    }
}

#[cfg(test)]
mod tests;
