//! The write pipeline behind the authorization layer: validate, stamp,
//! merge, persist with group commit, acknowledge, fan out.
//!
//! One batch takes each touched map's lock once, and the node clock's lock
//! once; no lock is held across the commit's await. A write is acknowledged
//! only after the store's group commit covering it returned `Ok`; if the
//! commit fails, every op of the batch is rejected with `Internal` (the
//! in-memory replica may already hold the writes, and the store has gone
//! into its failed state, which refuses every later write and marks the
//! node unhealthy).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use topgun_core::{
    CallerOrigin, Hlc, HlcError, LwwRecord, MapKind, NodeId, OrItem, Timestamp, Value,
};
use topgun_protocol::{
    Op, OpAckEntry, OpRejection, RejectCode, WireOpKind, WireTimestamp, WriteConcern,
};
use tower::Service;

use crate::authz::Principal;
use crate::config::{Limits, TimestampPolicy};
use crate::metrics::Metrics;
use crate::state::{Clock, MapData, MapHandle, Maps, lock, stored_lww, stored_or};
use crate::store::{Store, Write};

mod dedupe;
use dedupe::{Dedupe, DedupeKey};

/// A batch of client ops on its way through the pipeline.
#[derive(Clone, Debug)]
pub struct WriteRequest {
    /// Who sent it.
    pub principal: Arc<Principal>,
    /// Where it came from; set by the server from the connection kind.
    pub origin: CallerOrigin,
    /// The ops, in order.
    pub ops: Vec<Op>,
    /// The requested durability.
    pub concern: WriteConcern,
}

/// Every op of a request, answered: acknowledged or rejected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteResponse {
    /// Applied ops with the timestamps the server gave them.
    pub acks: Vec<OpAckEntry>,
    /// Ops that were not applied, with why.
    pub rejections: Vec<OpRejection>,
}

/// One change to a last-writer-wins map, as live queries see it.
#[derive(Clone, Debug)]
pub struct LwwChange {
    /// The key.
    pub key: String,
    /// The record before the write (`None` if the key was absent).
    pub old: Option<LwwRecord>,
    /// The record after the write.
    pub new: LwwRecord,
}

/// Told about every committed change (live queries listen here).
pub(crate) trait CommitListener: Send + Sync + std::fmt::Debug {
    /// `changes` to the LWW map `map` are durable.
    fn on_commit(&self, map: &str, handle: &MapHandle, changes: &[LwwChange]);

    /// Whether this listener wants the changes to `map`. Asked while the
    /// writer holds the map's lock: a listener that answers `false` must
    /// see every change made before it starts listening some other way
    /// (live queries read the map's state under that lock when they
    /// subscribe). The pipeline skips collecting changes nobody wants.
    fn wants(&self, _map: &str) -> bool {
        true
    }
}

/// How many acknowledged op ids the server remembers for resends.
const DEDUPE_CAPACITY: usize = 100_000;

/// What an [`Engine`] is made of besides its maps and node id.
pub(crate) struct EngineParts {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ts_policy: TimestampPolicy,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) listeners: Vec<Arc<dyn CommitListener>>,
}

/// The node's data plane: maps, clock, store.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) maps: Maps,
    pub(crate) hlc: Mutex<Hlc>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ts_policy: TimestampPolicy,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) listeners: Vec<Arc<dyn CommitListener>>,
    dedupe: Dedupe,
    /// Cleared when a group commit fails: the store refuses every later
    /// write, and `/health` reports it.
    healthy: std::sync::atomic::AtomicBool,
}

impl Engine {
    /// An engine over `maps` whose clock issues timestamps as `node`.
    pub(crate) fn new(maps: Maps, node: NodeId, parts: EngineParts) -> Self {
        Engine {
            maps,
            hlc: Mutex::new(Hlc::new(node)),
            clock: parts.clock,
            store: parts.store,
            ts_policy: parts.ts_policy,
            limits: parts.limits,
            metrics: parts.metrics,
            listeners: parts.listeners,
            dedupe: Dedupe::new(DEDUPE_CAPACITY),
            healthy: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether every commit so far succeeded.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Physical time now.
    pub(crate) fn now_millis(&self) -> u64 {
        self.clock.now_millis()
    }
}

impl crate::authz::RecordLookup for Engine {
    fn current(&self, map: &str, key: &str) -> Option<Value> {
        let handle = self.maps.get(map)?;
        let now = self.now_millis();
        let data = lock(&handle);
        match &*data {
            MapData::Lww(m) => m.get_live(key, now).cloned(),
            MapData::Or(m) => m
                .get(key)
                .map(|e| Value::Array(e.live_values(now).cloned().collect())),
        }
    }
}

/// The write validator of the security pipeline: the per-op checks that need
/// no state (names, value size) and HLC sanitization. Ops from trusted
/// origins (forwarded, backup, WAN, system) skip it: they were validated
/// where they entered the cluster, and replicas must keep their timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteValidator<'a> {
    limits: &'a Limits,
    timestamps: TimestampPolicy,
    trusted: bool,
}

impl<'a> WriteValidator<'a> {
    pub(crate) fn new(
        limits: &'a Limits,
        timestamps: TimestampPolicy,
        origin: CallerOrigin,
    ) -> Self {
        WriteValidator {
            limits,
            timestamps,
            trusted: origin.is_trusted(),
        }
    }

    /// Map name and key.
    fn check_names(&self, op: &Op) -> Result<(), (RejectCode, String)> {
        if self.trusted {
            return Ok(());
        }
        if op.map.is_empty() || op.map.len() > MAX_MAP_NAME_BYTES {
            return Err((
                RejectCode::InvalidMapName,
                format!("map names are 1 to {MAX_MAP_NAME_BYTES} bytes"),
            ));
        }
        if crate::authz::is_reserved_map(&op.map) {
            return Err((
                RejectCode::InvalidMapName,
                format!(
                    "map names starting with {:?} are reserved",
                    crate::authz::RESERVED_MAP_PREFIX
                ),
            ));
        }
        if op.key.is_empty() || op.key.len() > MAX_KEY_BYTES {
            return Err((
                RejectCode::InvalidKey,
                format!("keys are 1 to {MAX_KEY_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The value size limit.
    fn check_value(&self, value: &Value) -> Result<(), (RejectCode, String)> {
        let size = value.approx_size();
        if self.trusted || size <= self.limits.max_value_bytes {
            Ok(())
        } else {
            Err((
                RejectCode::ValueTooLarge,
                format!(
                    "value is {size} bytes; the limit is {}",
                    self.limits.max_value_bytes
                ),
            ))
        }
    }

    /// HLC sanitization: the timestamp the op is applied with.
    fn timestamp(&self, hlc: &mut Hlc, client: Timestamp, now: u64) -> Result<Timestamp, HlcError> {
        if self.trusted {
            // Keep the replica's timestamp; the clock still moves past it.
            let _ = hlc.update(&client, now);
            return Ok(client);
        }
        match self.timestamps {
            TimestampPolicy::Restamp => hlc.now(now),
            TimestampPolicy::BoundedDrift { max_drift } => {
                let drift = u64::try_from(max_drift.as_millis()).unwrap_or(u64::MAX);
                if client.millis > now.saturating_add(drift) {
                    Err(HlcError::DriftExceeded {
                        remote_millis: client.millis,
                        physical_millis: now,
                        max_drift_ms: drift,
                    })
                } else {
                    hlc.update(&client, now).map(|_| client)
                }
            }
        }
    }
}

/// Longest map name, in bytes.
pub const MAX_MAP_NAME_BYTES: usize = 512;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A validated op waiting for its map's lock.
struct Pending {
    index: usize,
    op_id: u64,
    dedupe_key: DedupeKey,
    key: String,
    kind: PendingKind,
    timestamp: Timestamp,
}

enum PendingKind {
    Put(Value, Option<u64>),
    Remove,
    OrAdd(Value, Option<u64>),
    OrRemove(Vec<Timestamp>),
}

impl PendingKind {
    fn map_kind(&self) -> MapKind {
        match self {
            PendingKind::Put(..) | PendingKind::Remove => MapKind::Lww,
            PendingKind::OrAdd(..) | PendingKind::OrRemove(_) => MapKind::Or,
        }
    }
}

/// Runs one write request to completion (after authorization).
pub(crate) async fn write(engine: Arc<Engine>, req: WriteRequest) -> WriteResponse {
    let mut resp = WriteResponse::default();
    let reject = |resp: &mut WriteResponse, op_id: u64, code: RejectCode, message: String| {
        engine.metrics.op_rejected(format!("{code:?}"));
        resp.rejections.push(OpRejection {
            op_id,
            code,
            message,
        });
    };
    engine
        .metrics
        .batches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let limits = &engine.limits;
    if req.ops.len() > limits.max_batch_ops {
        for op in &req.ops {
            reject(
                &mut resp,
                op.op_id,
                RejectCode::BatchTooLarge,
                format!("a batch holds at most {} ops", limits.max_batch_ops),
            );
        }
        return resp;
    }
    if req.concern == WriteConcern::Replicated {
        for op in &req.ops {
            reject(
                &mut resp,
                op.op_id,
                RejectCode::WriteConcernUnavailable,
                "this node runs without a cluster: no backup replica can acknowledge".to_owned(),
            );
        }
        return resp;
    }

    // Stateless checks, conversion, resend detection.
    let validator = WriteValidator::new(limits, engine.ts_policy, req.origin);
    let sub: Arc<str> = Arc::from(req.principal.sub.as_str());
    let mut valid: Vec<(usize, Op, DedupeKey)> = Vec::with_capacity(req.ops.len());
    for (index, op) in req.ops.into_iter().enumerate() {
        if let Err((code, message)) = validator.check_names(&op) {
            reject(&mut resp, op.op_id, code, message);
            continue;
        }
        let key = (Arc::clone(&sub), op.timestamp.node.0, op.op_id);
        if let Some(timestamp) = engine.dedupe.get(&key) {
            resp.acks.push(OpAckEntry {
                op_id: op.op_id,
                timestamp,
            });
            continue;
        }
        valid.push((index, op, key));
    }

    // Values and timestamps: one clock lock for the whole batch.
    let now = engine.now_millis();
    let mut pending: Vec<(String, Pending)> = Vec::with_capacity(valid.len());
    {
        let mut hlc = engine.hlc.lock().unwrap_or_else(PoisonError::into_inner);
        for (index, op, dedupe_key) in valid {
            let kind = match op.kind {
                WireOpKind::Put { value, ttl_ms } => PendingKind::Put(Value::from(value), ttl_ms),
                WireOpKind::Remove => PendingKind::Remove,
                WireOpKind::OrAdd { value, ttl_ms } => {
                    PendingKind::OrAdd(Value::from(value), ttl_ms)
                }
                WireOpKind::OrRemove { tags } => {
                    PendingKind::OrRemove(tags.into_iter().map(Timestamp::from).collect())
                }
            };
            if let PendingKind::Put(v, _) | PendingKind::OrAdd(v, _) = &kind {
                if let Err((code, message)) = validator.check_value(v) {
                    reject(&mut resp, op.op_id, code, message);
                    continue;
                }
            }
            let stamped = validator.timestamp(&mut hlc, Timestamp::from(op.timestamp), now);
            let timestamp = match stamped {
                Ok(t) => t,
                Err(e) => {
                    reject(&mut resp, op.op_id, RejectCode::ClockDrift, e.to_string());
                    continue;
                }
            };
            pending.push((
                op.map,
                Pending {
                    index,
                    op_id: op.op_id,
                    dedupe_key,
                    key: op.key,
                    kind,
                    timestamp,
                },
            ));
        }
    }

    // Merge, per map, under that map's lock only.
    let mut by_map: Vec<(String, Vec<Pending>)> = Vec::new();
    for (map, p) in pending {
        match by_map.iter_mut().find(|(m, _)| *m == map) {
            Some((_, list)) => list.push(p),
            None => by_map.push((map, vec![p])),
        }
    }
    let mut writes = Vec::new();
    let mut applied: Vec<(usize, OpAckEntry, DedupeKey)> = Vec::new();
    let mut lww_changes: Vec<(String, MapHandle, Vec<LwwChange>)> = Vec::new();
    for (map, ops) in by_map {
        let kind = ops[0].kind.map_kind();
        let handle = match engine.maps.get_or_create(&map, kind) {
            Ok(h) => h,
            Err(mismatch) => {
                for p in ops {
                    reject(
                        &mut resp,
                        p.op_id,
                        RejectCode::MapKindMismatch,
                        format!("map {map:?} is a {:?} map", mismatch.actual),
                    );
                }
                continue;
            }
        };
        let mut changes = Vec::new();
        {
            let mut data = lock(&handle);
            let track = engine.listeners.iter().any(|l| l.wants(&map));
            for p in ops {
                let encoded = match (&mut *data, p.kind) {
                    (MapData::Lww(m), PendingKind::Put(value, ttl_ms)) => {
                        let record = LwwRecord {
                            value: Some(value),
                            timestamp: p.timestamp,
                            ttl_ms,
                        };
                        merge_lww(m, &p.key, record, track.then_some(&mut changes))
                    }
                    (MapData::Lww(m), PendingKind::Remove) => {
                        let record = LwwRecord::tombstone(p.timestamp);
                        merge_lww(m, &p.key, record, track.then_some(&mut changes))
                    }
                    (MapData::Or(m), PendingKind::OrAdd(value, ttl_ms)) => {
                        m.add(
                            &p.key,
                            OrItem {
                                value,
                                tag: p.timestamp,
                                ttl_ms,
                            },
                        );
                        m.get(&p.key).map(stored_or).transpose()
                    }
                    (MapData::Or(m), PendingKind::OrRemove(tags)) => {
                        m.remove(&p.key, &tags, p.timestamp);
                        m.get(&p.key).map(stored_or).transpose()
                    }
                    (data, _) => {
                        reject(
                            &mut resp,
                            p.op_id,
                            RejectCode::MapKindMismatch,
                            format!("map {map:?} is a {:?} map", data.kind()),
                        );
                        continue;
                    }
                };
                match encoded {
                    Ok(Some(bytes)) => writes.push(Write::put(map.clone(), p.key, bytes)),
                    // The key's entry is gone entirely (an OR key whose
                    // items and tombstones were all pruned): drop its row.
                    Ok(None) => writes.push(Write::delete(map.clone(), p.key)),
                    Err(detail) => {
                        reject(&mut resp, p.op_id, RejectCode::Internal, detail);
                        continue;
                    }
                }
                applied.push((
                    p.index,
                    OpAckEntry {
                        op_id: p.op_id,
                        timestamp: WireTimestamp::from(p.timestamp),
                    },
                    p.dedupe_key,
                ));
            }
        }
        if !changes.is_empty() {
            lww_changes.push((map, handle, changes));
        }
    }

    if writes.is_empty() {
        return resp;
    }
    if let Err(e) = engine.store.commit(writes).await {
        tracing::error!(error = %e, "group commit failed: rejecting the batch");
        engine
            .healthy
            .store(false, std::sync::atomic::Ordering::Relaxed);
        for (_, ack, _) in applied {
            reject(
                &mut resp,
                ack.op_id,
                RejectCode::Internal,
                format!("storage failed: {e}"),
            );
        }
        return resp;
    }
    applied.sort_by_key(|(index, _, _)| *index);
    engine
        .metrics
        .ops_acked
        .fetch_add(applied.len() as u64, std::sync::atomic::Ordering::Relaxed);
    resp.acks.reserve(applied.len());
    for (_, ack, key) in applied {
        engine.dedupe.insert(key, ack.timestamp);
        resp.acks.push(ack);
    }
    for (map, handle, changes) in &lww_changes {
        for listener in &engine.listeners {
            listener.on_commit(map, handle, changes);
        }
    }
    resp
}

/// Merges `record` into `map` and returns the row to store. The change is
/// pushed to `changes` when someone listens.
fn merge_lww(
    map: &mut topgun_core::LwwMap,
    key: &str,
    record: LwwRecord,
    changes: Option<&mut Vec<LwwChange>>,
) -> Result<Option<Vec<u8>>, String> {
    use topgun_core::lww::MergeOutcome;
    let bytes = stored_lww(&record)?;
    // The record is copied only when someone listens for the change.
    let new = changes.is_some().then(|| record.clone());
    let old = match map.merge(key, record) {
        MergeOutcome::Inserted => None,
        MergeOutcome::Replaced(old) => Some(old),
        // A bounded-drift write that lost to a newer one: acknowledged (it
        // took part in the merge), nothing changed, nothing to store.
        MergeOutcome::Ignored => return map.get(key).map(stored_lww).transpose(),
    };
    if let (Some(changes), Some(new)) = (changes, new) {
        changes.push(LwwChange {
            key: key.to_owned(),
            old,
            new,
        });
    }
    Ok(Some(bytes))
}

/// The innermost service: [`write`] as a tower `Service`.
#[derive(Clone, Debug)]
pub(crate) struct WriteService {
    pub(crate) engine: Arc<Engine>,
}

impl Service<WriteRequest> for WriteService {
    type Response = WriteResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<WriteResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: WriteRequest) -> Self::Future {
        let engine = Arc::clone(&self.engine);
        Box::pin(async move { Ok(write(engine, req).await) })
    }
}

#[cfg(test)]
mod tests;
