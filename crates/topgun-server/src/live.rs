//! Live queries: the registry of subscriptions and the incremental
//! evaluation that turns committed changes into `QUERY_UPDATE`s.
//!
//! A subscription is a [`Query`] over one last-writer-wins map, held by one
//! connection. [`LiveQueries::subscribe`] evaluates it once and returns the
//! initial result; after that the pipeline calls
//! [`CommitListener::on_commit`] with each group commit's changes and every
//! subscription on that map is told how its result changed (`Enter`,
//! `Update`, `Leave`), through the connection's [`Outbound`] without ever
//! waiting.
//!
//! Two kinds of subscription:
//! - **Unlimited** queries keep no per-subscription state: a change's
//!   membership before and after is computed from the old and the new
//!   record alone, so 1,000 subscribers of one map cost one filter check
//!   (and one message) each per change, and no scan.
//! - **Limited** queries keep their current result (a *window*) in query
//!   order, followed by a reserve of the next records (as many as the
//!   limit, at most 64). A record that sorts into a full result pushes the
//!   last member out (into the reserve); a member that leaves is replaced
//!   from the reserve, and only once the reserve is used up is the map
//!   scanned again, under its lock, for the next records in order (and not
//!   at all when the window already holds every candidate).
//!
//! Ordering. Every subscription of a map lives behind one registry lock
//! (per map, not global); commits of one map are fanned out under it, and
//! each fan-out evaluates a key's *current* record (read under the map's
//! lock), not the record the commit wrote. Two batches that commit the same
//! key out of order therefore cannot leave a client with a stale record:
//! the last message about a key always describes the map's latest record.
//! The price is an occasional redundant message (an `Update` that repeats
//! a record, a `Leave` for a key the client does not hold), which clients
//! apply idempotently.
//!
//! A `Leave` carries the record that made the key leave (a tombstone, the
//! non-matching record); when that record is not visible to the principal,
//! a bare tombstone with its timestamp stands in for it.
//!
//! Initial result before updates. `subscribe` registers the subscription
//! *held*: updates computed after its snapshot are buffered (bounded) until
//! the caller, having queued the `QUERY_RESP`, calls
//! [`LiveQueries::activate`]. Without that a `QUERY_UPDATE` could overtake
//! the `QUERY_RESP` it applies to.
//!
//! **Invariant:** no registry lock is held across an `.await`, and the only
//! lock order is registry lock, then map lock; the pipeline never holds a
//! map lock while calling a listener.
//!
//! **Invariant:** every record sent to a client passes [`visible_record`].
//!
//! Non-goals: TTL expiry is not a commit. [`LiveQueries::expire`] moves
//! expired members out of limited results (the server calls it on a timer);
//! for unlimited queries clients drop expired records themselves (every
//! record carries its `ttl_ms`).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use topgun_core::{LwwMap, LwwRecord, Query, Value};
use topgun_protocol::{
    ChangeKind, ConvertError, ErrorCode, QueryRecord, RecordValue, ServerMessage, WireLwwRecord,
};

use crate::authz::{Action, Decision, Policy, Principal, RESERVED_MAP_PREFIX, is_reserved_map};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::pipeline::{CommitListener, LwwChange};
use crate::state::{Clock, MapData, MapHandle, Maps, SystemClock, lock};

#[cfg(test)]
mod tests;

/// How many updates a held subscription (one whose `QUERY_RESP` is not
/// queued yet) may buffer before its connection counts as a slow consumer.
pub(crate) const MAX_HELD_UPDATES: usize = 4096;

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The connection already has a live subscription with this id.
    #[error("query id {query_id} is already subscribed on this connection")]
    DuplicateQueryId {
        /// The reused id.
        query_id: u64,
    },
    /// The connection holds as many subscriptions as it may.
    #[error("a connection may hold at most {max} live queries")]
    TooManySubscriptions {
        /// The per-connection cap.
        max: usize,
    },
    /// The map exists and is an observed-remove map; live queries run over
    /// last-writer-wins maps only.
    #[error("map {map:?} is an OR map; live queries run over LWW maps")]
    NotLwwMap {
        /// The map.
        map: String,
    },
    /// The principal may not read the map (reserved maps are always
    /// refused).
    #[error("reading map {map:?} is forbidden: {reason}")]
    Forbidden {
        /// The map.
        map: String,
        /// The policy's reason.
        reason: String,
    },
    /// A record of the initial result could not be converted to its wire
    /// form. Records are converted when they are written, so this means a
    /// bug, reported rather than skipped so nothing goes missing silently.
    #[error("record {key:?} can not be sent: {source}")]
    Unencodable {
        /// The record's key.
        key: String,
        /// Why the conversion failed.
        #[source]
        source: ConvertError,
    },
}

impl SubscribeError {
    /// The `ERROR` code that answers the `QUERY_SUB`.
    ///
    /// The protocol has no code of its own for a per-connection cap or for
    /// a map of the wrong kind yet; the nearest ones are used (`RateLimited`:
    /// a per-connection resource limit; `InvalidSyncRequest`: "a kind that
    /// does not match the map").
    pub fn error_code(&self) -> ErrorCode {
        match self {
            SubscribeError::DuplicateQueryId { .. } => ErrorCode::UnknownQuery,
            SubscribeError::TooManySubscriptions { .. } => ErrorCode::RateLimited,
            SubscribeError::NotLwwMap { .. } => ErrorCode::InvalidSyncRequest,
            SubscribeError::Forbidden { .. } => ErrorCode::Forbidden,
            SubscribeError::Unencodable { .. } => ErrorCode::Internal,
        }
    }
}

/// The form of `record` that `principal` may see, or `None` if they may not
/// see it at all.
///
/// Every record a live query sends, and every record a filter is evaluated
/// on, passes through here, so a filter can not probe fields the principal
/// can not read. Today the decision is per key; per-record RBAC conditions
/// and field redaction plug in here (redaction returns `Cow::Owned` with the
/// denied fields stripped).
pub(crate) fn visible_record<'r>(
    policy: &dyn Policy,
    principal: &Principal,
    map: &str,
    key: &str,
    record: &'r LwwRecord,
) -> Option<Cow<'r, LwwRecord>> {
    let Some(value) = &record.value else {
        // A tombstone carries no fields: only whether the key may be read.
        return match policy.decide_record(principal, Action::Read, map, key, None, None) {
            Decision::Allow => Some(Cow::Borrowed(record)),
            Decision::Deny(_) => None,
        };
    };
    match policy.read_view(principal, map, key, value)? {
        Cow::Borrowed(_) => Some(Cow::Borrowed(record)),
        Cow::Owned(redacted) => Some(Cow::Owned(LwwRecord {
            value: Some(redacted),
            timestamp: record.timestamp,
            ttl_ms: record.ttl_ms,
        })),
    }
}

/// Whether a (visible) record is in a query's result before the limit: live
/// at `now` and matching the filter.
fn in_result(query: &Query, key: &str, record: &LwwRecord, now: u64) -> bool {
    record
        .live_value(now)
        .is_some_and(|v| query.matches(key, v))
}

/// Whether a record matched the filter when it was written, expiry ignored.
/// A client may still hold a record that has expired since (it was never
/// told), so a change to it must still send `Leave`.
fn matched_when_written(query: &Query, key: &str, record: &LwwRecord) -> bool {
    record.value.as_ref().is_some_and(|v| query.matches(key, v))
}

/// The record a `Leave` carries when the record that made the key leave is
/// not visible to the principal: a tombstone at its timestamp, which says
/// that the key left and nothing about its content.
fn redacted_leave(record: &LwwRecord) -> WireLwwRecord {
    WireLwwRecord {
        value: RecordValue::Tombstone,
        timestamp: record.timestamp.into(),
        ttl_ms: None,
    }
}

/// What a subscription's sort sees of a member: a missing value (never the
/// case for a member, which is live) sorts as null.
static NULL: Value = Value::Null;

/// The registry of live queries of one node.
#[derive(Debug)]
pub(crate) struct LiveQueries {
    policy: Arc<dyn Policy>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    max_per_connection: usize,
    /// Subscriptions by map name: the index commits are fanned out through.
    by_map: DashMap<String, Arc<Mutex<MapSubs>>>,
    /// Each connection's subscriptions (query id to map name), for the cap,
    /// duplicate ids, unsubscribe and disconnect.
    by_conn: DashMap<u64, HashMap<u64, String>>,
}

/// Every subscription of one map.
#[derive(Debug, Default)]
struct MapSubs {
    subs: Vec<Subscription>,
    /// Set when the entry was removed from the registry while empty; a
    /// subscriber that raced with the removal must register again in the
    /// registry's new entry.
    retired: bool,
}

fn lock_subs(subs: &Mutex<MapSubs>) -> MutexGuard<'_, MapSubs> {
    // Every mutation of `MapSubs` leaves it consistent between statements
    // that can panic, so a poisoned lock's data is used as is.
    subs.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Subscription {
    conn: u64,
    query_id: u64,
    principal: Arc<Principal>,
    query: Query,
    outbound: Outbound,
    /// The current result, for limited queries.
    window: Option<Window>,
    delivery: Delivery,
}

/// Where a subscription's updates go.
#[derive(Debug)]
enum Delivery {
    /// The `QUERY_RESP` is not queued yet: updates wait here.
    Held(Vec<ServerMessage>),
    /// Updates are pushed to the connection.
    Live,
    /// The held buffer overflowed; the connection is closing as a slow
    /// consumer and nothing more is sent.
    Overflowed,
}

/// A sink for one fan-out: a subscription's delivery state and a count of
/// messages queued.
struct Sink<'a> {
    query_id: u64,
    outbound: &'a Outbound,
    delivery: &'a mut Delivery,
    queued: &'a mut u64,
}

impl Sink<'_> {
    fn send(&mut self, change: ChangeKind, key: &str, record: WireLwwRecord) {
        let msg = ServerMessage::QueryUpdate {
            query_id: self.query_id,
            change,
            key: key.to_owned(),
            record,
        };
        match self.delivery {
            Delivery::Live => {
                if self.outbound.push(msg) {
                    *self.queued += 1;
                }
            }
            Delivery::Held(buf) if buf.len() < MAX_HELD_UPDATES => buf.push(msg),
            Delivery::Held(_) => {
                self.outbound.overflowed();
                *self.delivery = Delivery::Overflowed;
            }
            Delivery::Overflowed => {}
        }
    }

    /// Sends `record` converted to its wire form; a record that can not be
    /// converted (a bug: it was converted when written) is logged.
    fn send_record(&mut self, change: ChangeKind, key: &str, record: &LwwRecord) {
        match WireLwwRecord::try_from(record) {
            Ok(wire) => self.send(change, key, wire),
            Err(e) => tracing::error!(key, error = %e, "live query: record can not be encoded"),
        }
    }
}

/// The current result of a limited query, in query order, followed by a
/// reserve: the next records after the result, kept so that a member
/// leaving is replaced without scanning the map (a scan happens only once
/// the reserve is used up).
#[derive(Debug)]
struct Window {
    /// The query's limit: how many members the client sees.
    limit: usize,
    /// `limit` plus the reserve.
    capacity: usize,
    /// The result, then the reserve.
    members: Vec<Member>,
    /// The members' keys, for constant-time membership checks (most changes
    /// are to keys outside the window).
    keys: HashSet<Arc<str>>,
    /// Whether the members are every record of the map in the result: a
    /// member leaving then needs no refill scan.
    complete: bool,
    /// The earliest expiry among the members (possibly stale-early).
    next_expiry: Option<u64>,
}

#[derive(Clone, Debug)]
struct Member {
    key: Arc<str>,
    /// The record as the principal sees it (live).
    record: Arc<LwwRecord>,
    /// Whether the client holds it: true exactly for the first `limit`
    /// members between fan-outs.
    shown: bool,
}

impl Member {
    fn value(&self) -> &Value {
        self.record.value.as_ref().unwrap_or(&NULL)
    }
}

/// A member taken out of the window during a fan-out, and why.
struct Removed {
    member: Member,
    /// The change (index into the fan-out's changes) that removed it; `None`
    /// when it was pushed out by the capacity or expired.
    cause: Option<usize>,
}

/// The most records a window keeps in reserve beyond its limit.
const MAX_RESERVE: usize = 64;

impl Window {
    /// The capacity of a window for `limit`: the limit and its reserve.
    fn capacity(limit: usize) -> usize {
        limit.saturating_add(limit.min(MAX_RESERVE))
    }

    /// A window over `members` (the first `limit` of them already shown),
    /// evaluated with [`Window::capacity`].
    fn new(limit: usize, members: Vec<Member>) -> Window {
        let keys = members.iter().map(|m| Arc::clone(&m.key)).collect();
        let next_expiry = members.iter().filter_map(|m| m.record.expires_at()).min();
        let capacity = Window::capacity(limit);
        Window {
            limit,
            capacity,
            complete: members.len() < capacity,
            members,
            keys,
            next_expiry,
        }
    }

    /// The position of `key`'s member. `hint` is the record the member is
    /// expected to hold, which finds it by binary search.
    fn position(&self, query: &Query, key: &str, hint: Option<&LwwRecord>) -> Option<usize> {
        if !self.keys.contains(key) {
            return None;
        }
        if let Some(v) = hint.and_then(|r| r.value.as_ref()) {
            if let Ok(i) = self
                .members
                .binary_search_by(|m| query.compare((&m.key, m.value()), (key, v)))
            {
                if *self.members[i].key == *key {
                    return Some(i);
                }
            }
        }
        self.members.iter().position(|m| *m.key == *key)
    }

    /// Whether `key` = `record` sorts after every member (true when there
    /// are none).
    fn sorts_after_last(&self, query: &Query, key: &str, record: &LwwRecord) -> bool {
        self.members.last().is_none_or(|last| {
            query
                .compare((&last.key, last.value()), (key, value_of(record)))
                .is_lt()
        })
    }

    fn insert(&mut self, query: &Query, member: Member) {
        let at = self.members.partition_point(|m| {
            query
                .compare((&m.key, m.value()), (&member.key, member.value()))
                .is_lt()
        });
        if let Some(exp) = member.record.expires_at() {
            self.next_expiry = Some(self.next_expiry.map_or(exp, |n| n.min(exp)));
        }
        self.keys.insert(Arc::clone(&member.key));
        self.members.insert(at, member);
    }

    fn remove(&mut self, at: usize) -> Member {
        let member = self.members.remove(at);
        self.keys.remove(&member.key);
        member
    }

    fn pop(&mut self) -> Option<Member> {
        let member = self.members.pop()?;
        self.keys.remove(&member.key);
        Some(member)
    }

    /// Moves members expired at `now` to `removed`.
    fn purge_expired(&mut self, now: u64, removed: &mut Vec<Removed>) {
        if self.next_expiry.is_none_or(|at| at > now) {
            return;
        }
        let mut i = 0;
        while i < self.members.len() {
            if self.members[i].record.live_value(now).is_none() {
                let member = self.remove(i);
                removed.push(Removed {
                    member,
                    cause: None,
                });
            } else {
                i += 1;
            }
        }
        self.next_expiry = self
            .members
            .iter()
            .filter_map(|m| m.record.expires_at())
            .min();
    }
}

/// One key's change as every subscription of the map sees it.
struct Prepared<'a> {
    key: &'a str,
    /// The record before the first write of the batch to this key.
    old: Option<&'a LwwRecord>,
    /// The key's current record (read after the commit, under the map's
    /// lock).
    new: Cow<'a, LwwRecord>,
    /// `key` and `new`, shared by every window the key enters.
    shared: OnceCell<(Arc<str>, Arc<LwwRecord>)>,
}

impl Prepared<'_> {
    fn shared(&self) -> &(Arc<str>, Arc<LwwRecord>) {
        self.shared
            .get_or_init(|| (Arc::from(self.key), Arc::new(self.new.as_ref().clone())))
    }
}

/// Who reads which map: the context of [`visible_record`].
#[derive(Clone, Copy)]
struct Reader<'a> {
    policy: &'a dyn Policy,
    principal: &'a Principal,
    map: &'a str,
}

impl Reader<'_> {
    fn visible<'r>(&self, key: &str, record: &'r LwwRecord) -> Option<Cow<'r, LwwRecord>> {
        visible_record(self.policy, self.principal, self.map, key, record)
    }
}

/// The records of `data` in `query`'s result as the reader sees them, in
/// query order, at most `limit` (all if `None`), skipping keys in `exclude`.
///
/// Runs under the map's lock. A small limit keeps only the best records
/// seen so far, so a candidate that sorts after all of them costs one
/// comparison and no allocation.
fn evaluate<'d>(
    reader: Reader<'_>,
    query: &Query,
    data: &'d LwwMap,
    now: u64,
    limit: Option<usize>,
    exclude: Option<&HashSet<Arc<str>>>,
) -> Vec<(&'d str, Cow<'d, LwwRecord>)> {
    type Found<'d> = (&'d str, Cow<'d, LwwRecord>);
    let cmp =
        |a: &Found<'_>, b: &Found<'_>| query.compare((a.0, value_of(&a.1)), (b.0, value_of(&b.1)));
    let excluded = |k: &str| exclude.is_some_and(|ex| ex.contains(k));
    let candidates = data.iter().filter_map(|(k, r)| {
        r.live_value(now)?;
        let visible = reader.visible(k, r)?;
        in_result(query, k, &visible, now).then_some((k, visible))
    });
    match limit {
        Some(limit) if limit <= SMALL_LIMIT => {
            let mut best: Vec<Found<'d>> = Vec::with_capacity(limit);
            if limit == 0 {
                return best;
            }
            for found in candidates {
                let full = best.len() == limit;
                if full && best.last().is_some_and(|last| cmp(&found, last).is_ge()) {
                    continue;
                }
                if excluded(found.0) {
                    continue;
                }
                if full {
                    best.pop();
                }
                let at = best.partition_point(|b| cmp(b, &found).is_lt());
                best.insert(at, found);
            }
            best
        }
        _ => {
            let mut out: Vec<Found<'d>> = candidates.filter(|f| !excluded(f.0)).collect();
            if let Some(limit) = limit {
                if out.len() > limit {
                    out.select_nth_unstable_by(limit - 1, cmp);
                    out.truncate(limit);
                }
            }
            out.sort_unstable_by(cmp);
            out
        }
    }
}

/// Up to this limit, [`evaluate`] keeps a sorted list of the best records
/// instead of collecting every candidate.
const SMALL_LIMIT: usize = 256;

fn value_of(record: &LwwRecord) -> &Value {
    record.value.as_ref().unwrap_or(&NULL)
}

impl LiveQueries {
    /// A registry enforcing `policy`, with at most `max_per_connection`
    /// subscriptions per connection, counting in `metrics`. Commits read
    /// the system clock (for TTL) unless [`LiveQueries::with_clock`] gives
    /// the engine's.
    pub(crate) fn new(
        policy: Arc<dyn Policy>,
        max_per_connection: usize,
        metrics: Arc<Metrics>,
    ) -> LiveQueries {
        LiveQueries {
            policy,
            metrics,
            clock: Arc::new(SystemClock),
            max_per_connection,
            by_map: DashMap::new(),
            by_conn: DashMap::new(),
        }
    }

    /// The registry reading time for commits from `clock` (the engine's,
    /// so simulated time applies to expiry too).
    pub(crate) fn with_clock(mut self, clock: Arc<dyn Clock>) -> LiveQueries {
        self.clock = clock;
        self
    }

    /// Subscribes connection `conn` to `query` over `map` (which need not
    /// exist yet) and returns the initial result, in query order, at most
    /// `limit` records.
    ///
    /// The subscription starts *held*: the caller queues the result as
    /// `QUERY_RESP` on `outbound` and then calls [`LiveQueries::activate`];
    /// updates that happen in between are delivered then, in order.
    #[allow(clippy::too_many_arguments)] // the request's parts, named by the caller
    pub(crate) fn subscribe(
        &self,
        conn: u64,
        principal: Arc<Principal>,
        query_id: u64,
        map: &str,
        query: Query,
        maps: &Maps,
        now_millis: u64,
        outbound: Outbound,
    ) -> Result<Vec<QueryRecord>, SubscribeError> {
        if is_reserved_map(map) {
            return Err(SubscribeError::Forbidden {
                map: map.to_owned(),
                reason: format!("map names starting with {RESERVED_MAP_PREFIX:?} are reserved"),
            });
        }
        if let Decision::Deny(reason) = self.policy.decide(&principal, Action::Read, map, None) {
            return Err(SubscribeError::Forbidden {
                map: map.to_owned(),
                reason,
            });
        }
        self.reserve(conn, query_id, map)?;
        let sub = Subscription {
            conn,
            query_id,
            principal,
            query,
            outbound,
            window: None,
            delivery: Delivery::Held(Vec::new()),
        };
        let result = self.register(sub, map, maps, now_millis);
        if result.is_err() {
            self.release(conn, query_id);
        }
        result
    }

    /// Takes a slot for `(conn, query_id)` in the per-connection index.
    fn reserve(&self, conn: u64, query_id: u64, map: &str) -> Result<(), SubscribeError> {
        let mut subs = self.by_conn.entry(conn).or_default();
        let result = if subs.contains_key(&query_id) {
            Err(SubscribeError::DuplicateQueryId { query_id })
        } else if subs.len() >= self.max_per_connection {
            Err(SubscribeError::TooManySubscriptions {
                max: self.max_per_connection,
            })
        } else {
            subs.insert(query_id, map.to_owned());
            return Ok(());
        };
        let empty = subs.is_empty();
        drop(subs);
        if empty {
            self.by_conn.remove_if(&conn, |_, s| s.is_empty());
        }
        result
    }

    /// Gives back the slot of `(conn, query_id)`; returns its map.
    fn release(&self, conn: u64, query_id: u64) -> Option<String> {
        let mut subs = self.by_conn.get_mut(&conn)?;
        let map = subs.remove(&query_id);
        let empty = subs.is_empty();
        drop(subs);
        if empty {
            self.by_conn.remove_if(&conn, |_, s| s.is_empty());
        }
        map
    }

    fn is_reserved(&self, conn: u64, query_id: u64) -> bool {
        self.by_conn
            .get(&conn)
            .is_some_and(|s| s.contains_key(&query_id))
    }

    /// The registry entry of `map`, created if absent.
    fn map_entry(&self, map: &str) -> Arc<Mutex<MapSubs>> {
        if let Some(e) = self.by_map.get(map) {
            return Arc::clone(e.value());
        }
        Arc::clone(self.by_map.entry(map.to_owned()).or_default().value())
    }

    /// Removes `map`'s registry entry if it holds no subscription.
    fn prune(&self, map: &str) {
        self.by_map.remove_if(map, |_, subs| {
            let mut subs = lock_subs(subs);
            if subs.subs.is_empty() {
                subs.retired = true;
                true
            } else {
                false
            }
        });
    }

    /// Evaluates the initial result and adds the subscription to its map's
    /// entry, atomically with respect to that map's fan-outs.
    fn register(
        &self,
        mut sub: Subscription,
        map: &str,
        maps: &Maps,
        now: u64,
    ) -> Result<Vec<QueryRecord>, SubscribeError> {
        loop {
            let entry = self.map_entry(map);
            let mut subs = lock_subs(&entry);
            if subs.retired {
                continue;
            }
            let limit = sub
                .query
                .limit
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            let snapshot = match maps.get(map) {
                Some(handle) => self.snapshot(&handle, &sub, map, now, limit),
                None => Ok((Vec::new(), Vec::new())),
            };
            let (records, members) = match snapshot {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    drop(subs);
                    self.prune(map);
                    return Err(e);
                }
            };
            sub.window = limit.map(|limit| Window::new(limit, members));
            // An unsubscribe or disconnect that ran since the slot was taken
            // found nothing to remove here: do not register behind its back.
            if self.is_reserved(sub.conn, sub.query_id) {
                subs.subs.push(sub);
            } else {
                drop(subs);
                self.prune(map);
            }
            return Ok(records);
        }
    }

    /// The initial result of `sub` over the map behind `handle`, read under
    /// the map's lock: the wire records, and the window's members if the
    /// query is limited.
    fn snapshot(
        &self,
        handle: &MapHandle,
        sub: &Subscription,
        map: &str,
        now: u64,
        limit: Option<usize>,
    ) -> Result<(Vec<QueryRecord>, Vec<Member>), SubscribeError> {
        let data = lock(handle);
        let MapData::Lww(data) = &*data else {
            return Err(SubscribeError::NotLwwMap {
                map: map.to_owned(),
            });
        };
        let reader = Reader {
            policy: self.policy.as_ref(),
            principal: &sub.principal,
            map,
        };
        let result = evaluate(
            reader,
            &sub.query,
            data,
            now,
            limit.map(Window::capacity),
            None,
        );
        let shown = limit.unwrap_or(usize::MAX).min(result.len());
        let mut records = Vec::with_capacity(shown);
        for (key, record) in &result[..shown] {
            let wire = WireLwwRecord::try_from(record.as_ref()).map_err(|source| {
                SubscribeError::Unencodable {
                    key: (*key).to_owned(),
                    source,
                }
            })?;
            records.push(QueryRecord {
                key: (*key).to_owned(),
                record: wire,
            });
        }
        let members = if limit.is_some() {
            result
                .into_iter()
                .enumerate()
                .map(|(i, (key, record))| Member {
                    key: Arc::from(key),
                    record: Arc::new(record.into_owned()),
                    shown: i < shown,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok((records, members))
    }

    /// Starts delivering updates to a subscription whose `QUERY_RESP` has
    /// been queued, first the ones held since it was evaluated. Returns
    /// whether the subscription exists.
    pub(crate) fn activate(&self, conn: u64, query_id: u64) -> bool {
        let Some(map) = self
            .by_conn
            .get(&conn)
            .and_then(|s| s.get(&query_id).cloned())
        else {
            return false;
        };
        let Some(entry) = self.by_map.get(&map).map(|e| Arc::clone(e.value())) else {
            return false;
        };
        let mut subs = lock_subs(&entry);
        let Some(sub) = subs
            .subs
            .iter_mut()
            .find(|s| s.conn == conn && s.query_id == query_id)
        else {
            return false;
        };
        if let Delivery::Held(held) = &mut sub.delivery {
            let held = std::mem::take(held);
            sub.delivery = Delivery::Live;
            let mut queued = 0;
            for msg in held {
                if sub.outbound.push(msg) {
                    queued += 1;
                }
            }
            self.metrics
                .query_updates
                .fetch_add(queued, AtomicOrdering::Relaxed);
        }
        true
    }

    /// Ends a subscription; returns whether it existed.
    pub(crate) fn unsubscribe(&self, conn: u64, query_id: u64) -> bool {
        let Some(map) = self.release(conn, query_id) else {
            return false;
        };
        self.remove_where(&map, |s| s.conn == conn && s.query_id == query_id);
        true
    }

    /// Ends every subscription of a connection (on disconnect).
    pub(crate) fn remove_connection(&self, conn: u64) {
        let Some((_, subs)) = self.by_conn.remove(&conn) else {
            return;
        };
        let mut maps: Vec<String> = subs.into_values().collect();
        maps.sort_unstable();
        maps.dedup();
        for map in maps {
            self.remove_where(&map, |s| s.conn == conn);
        }
    }

    fn remove_where(&self, map: &str, gone: impl Fn(&Subscription) -> bool) {
        let Some(entry) = self.by_map.get(map).map(|e| Arc::clone(e.value())) else {
            return;
        };
        let empty = {
            let mut subs = lock_subs(&entry);
            subs.subs.retain(|s| !gone(s));
            subs.subs.is_empty()
        };
        if empty {
            self.prune(map);
        }
    }

    /// Number of live subscriptions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_conn.iter().map(|s| s.len()).sum()
    }

    /// Number of maps with a registry entry (for tests: entries must not
    /// outlive their subscriptions).
    #[cfg(test)]
    pub(crate) fn map_entries(&self) -> usize {
        self.by_map.len()
    }

    /// Moves members that expired by `now_millis` out of limited results and
    /// refills them; the server calls this on a timer, since expiry is no
    /// commit. Cheap when nothing is due.
    pub(crate) fn expire(&self, maps: &Maps, now_millis: u64) {
        let entries: Vec<(String, Arc<Mutex<MapSubs>>)> = self
            .by_map
            .iter()
            .map(|e| (e.key().clone(), Arc::clone(e.value())))
            .collect();
        for (map, entry) in entries {
            let mut subs = lock_subs(&entry);
            let due = subs.subs.iter().any(|s| {
                s.window
                    .as_ref()
                    .and_then(|w| w.next_expiry)
                    .is_some_and(|at| at <= now_millis)
            });
            if !due {
                continue;
            }
            let Some(handle) = maps.get(&map) else {
                continue;
            };
            let batch = Batch {
                map: &map,
                handle: &handle,
                changes: &[],
                now: now_millis,
            };
            let queued = self.fan_out(&batch, &mut subs);
            self.metrics
                .query_updates
                .fetch_add(queued, AtomicOrdering::Relaxed);
        }
    }

    /// Tells every subscription of the batch's map about its changes;
    /// returns how many messages were queued.
    fn fan_out(&self, batch: &Batch<'_, '_>, subs: &mut MapSubs) -> u64 {
        let mut queued = 0;
        for sub in &mut subs.subs {
            let Subscription {
                query_id,
                principal,
                query,
                outbound,
                window,
                delivery,
                ..
            } = sub;
            if matches!(delivery, Delivery::Overflowed) {
                continue;
            }
            let reader = Reader {
                policy: self.policy.as_ref(),
                principal,
                map: batch.map,
            };
            let mut sink = Sink {
                query_id: *query_id,
                outbound,
                delivery,
                queued: &mut queued,
            };
            match window {
                None => fan_out_unlimited(batch, reader, query, &mut sink),
                Some(window) => fan_out_window(batch, reader, query, window, &mut sink),
            }
        }
        queued
    }
}

/// One fan-out: a map's committed changes (or none, for an expiry sweep).
struct Batch<'a, 'c> {
    map: &'a str,
    handle: &'a MapHandle,
    changes: &'a [Prepared<'c>],
    now: u64,
}

/// An unlimited query: membership before and after each change follows
/// from the old and the new record alone.
fn fan_out_unlimited(
    batch: &Batch<'_, '_>,
    reader: Reader<'_>,
    query: &Query,
    sink: &mut Sink<'_>,
) {
    let now = batch.now;
    for c in batch.changes {
        let new = reader.visible(c.key, &c.new);
        if let Some(new) = new.as_deref().filter(|r| in_result(query, c.key, r, now)) {
            // Enter unless the client holds a live record of this key.
            let held = c.old.is_some_and(|old| {
                reader
                    .visible(c.key, old)
                    .is_some_and(|old| in_result(query, c.key, &old, now))
            });
            let kind = if held {
                ChangeKind::Update
            } else {
                ChangeKind::Enter
            };
            sink.send_record(kind, c.key, new);
            continue;
        }
        let was_in = c.old.is_some_and(|old| {
            reader
                .visible(c.key, old)
                .is_some_and(|old| matched_when_written(query, c.key, &old))
        });
        if was_in {
            send_leave(reader, c, sink);
        }
    }
}

/// `Leave` for a key that a change moved out of a result, with the record
/// that made it leave (redacted to a tombstone if it is not visible).
fn send_leave(reader: Reader<'_>, c: &Prepared<'_>, sink: &mut Sink<'_>) {
    match reader.visible(c.key, &c.new) {
        Some(new) => sink.send_record(ChangeKind::Leave, c.key, &new),
        None => sink.send(ChangeKind::Leave, c.key, redacted_leave(&c.new)),
    }
}

/// A limited query: apply the changes to the window, push out what no
/// longer fits, drop expired members, refill if the result is short, then
/// announce the net difference of the first `limit` members.
fn fan_out_window(
    batch: &Batch<'_, '_>,
    reader: Reader<'_>,
    query: &Query,
    window: &mut Window,
    sink: &mut Sink<'_>,
) {
    let now = batch.now;
    let mut removed: Vec<Removed> = Vec::new();
    let mut touched = false;
    for (i, c) in batch.changes.iter().enumerate() {
        if let Some(at) = window.position(query, c.key, c.old) {
            removed.push(Removed {
                member: window.remove(at),
                cause: Some(i),
            });
            touched = true;
        }
        let Some(visible) = reader.visible(c.key, &c.new) else {
            continue;
        };
        if window.capacity == 0 || !in_result(query, c.key, &visible, now) {
            continue;
        }
        // Past the last member of a window that does not hold every
        // candidate, other records may sort before this one: leave it to
        // the refill scan (or out, if the window is full).
        if !window.complete && window.sorts_after_last(query, c.key, &visible) {
            continue;
        }
        let (key, shared) = c.shared();
        let record = match visible {
            Cow::Borrowed(_) => Arc::clone(shared),
            Cow::Owned(redacted) => Arc::new(redacted),
        };
        window.insert(
            query,
            Member {
                key: Arc::clone(key),
                record,
                shown: false,
            },
        );
        touched = true;
        if window.members.len() > window.capacity {
            window.complete = false;
            if let Some(last) = window.pop() {
                removed.push(Removed {
                    member: last,
                    cause: None,
                });
            }
        }
    }
    let before = removed.len();
    window.purge_expired(now, &mut removed);
    touched |= removed.len() > before;
    if window.members.len() < window.limit && !window.complete {
        touched |= refill(batch, reader, query, window);
    }
    if !touched {
        return;
    }

    // Announce the difference, leaves first, so a client's copy of the
    // result never holds more than `limit` records.
    for r in removed.iter().filter(|r| r.member.shown) {
        match window.position(query, &r.member.key, None) {
            Some(at) if at < window.limit => {
                // Changed and still in the result.
                let member = &mut window.members[at];
                member.shown = true;
                if member.record.timestamp != r.member.record.timestamp {
                    sink.send_record(ChangeKind::Update, &member.key, &member.record);
                }
            }
            _ => match r.cause.and_then(|i| batch.changes.get(i)) {
                Some(c) => send_leave(reader, c, sink),
                None => sink.send_record(ChangeKind::Leave, &r.member.key, &r.member.record),
            },
        }
    }
    let limit = window.limit;
    for m in window.members.iter_mut().skip(limit).filter(|m| m.shown) {
        // Pushed behind the limit by records that sort before it.
        m.shown = false;
        sink.send_record(ChangeKind::Leave, &m.key, &m.record);
    }
    for m in window.members.iter_mut().take(limit).filter(|m| !m.shown) {
        m.shown = true;
        sink.send_record(ChangeKind::Enter, &m.key, &m.record);
    }
}

/// Fills a window that lost members with the next records in order,
/// scanning the map under its lock; returns whether any entered.
fn refill(batch: &Batch<'_, '_>, reader: Reader<'_>, query: &Query, window: &mut Window) -> bool {
    let need = window.capacity.saturating_sub(window.members.len());
    let found: Vec<Member> = {
        let data = lock(batch.handle);
        let MapData::Lww(data) = &*data else {
            return false;
        };
        evaluate(
            reader,
            query,
            data,
            batch.now,
            Some(need),
            Some(&window.keys),
        )
        .into_iter()
        .map(|(key, record)| Member {
            key: Arc::from(key),
            record: Arc::new(record.into_owned()),
            shown: false,
        })
        .collect()
    };
    window.complete = found.len() < need;
    let entered = !found.is_empty();
    for m in found {
        window.insert(query, m);
    }
    entered
}

impl CommitListener for LiveQueries {
    /// A subscription creates its map's entry before it reads the map under
    /// the map's lock, so a writer that finds no entry while holding that
    /// lock wrote before the subscription's snapshot.
    fn wants(&self, map: &str) -> bool {
        self.by_map.contains_key(map)
    }

    fn on_commit(&self, map: &str, handle: &MapHandle, changes: &[LwwChange]) {
        let Some(entry) = self.by_map.get(map).map(|e| Arc::clone(e.value())) else {
            return;
        };
        let mut subs = lock_subs(&entry);
        if subs.subs.is_empty() {
            return;
        }
        let now = self.clock.now_millis();

        // One entry per key: the record before the batch's first write to
        // it, and the latest one.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
        let mut latest: Vec<(&str, Option<&LwwRecord>, &LwwRecord)> =
            Vec::with_capacity(changes.len());
        for c in changes {
            match index.entry(c.key.as_str()) {
                Entry::Occupied(at) => latest[*at.get()].2 = &c.new,
                Entry::Vacant(slot) => {
                    slot.insert(latest.len());
                    latest.push((c.key.as_str(), c.old.as_ref(), &c.new));
                }
            }
        }
        // The current records, under one short map lock: a later batch may
        // have overwritten a key since this one committed.
        let prepared: Vec<Prepared<'_>> = {
            let data = lock(handle);
            let MapData::Lww(data) = &*data else {
                return;
            };
            latest
                .into_iter()
                .map(|(key, old, new)| {
                    let new = match data.get(key) {
                        Some(current) if current.timestamp != new.timestamp => {
                            Cow::Owned(current.clone())
                        }
                        _ => Cow::Borrowed(new),
                    };
                    Prepared {
                        key,
                        old,
                        new,
                        shared: OnceCell::new(),
                    }
                })
                .collect()
        };
        let batch = Batch {
            map,
            handle,
            changes: &prepared,
            now,
        };
        let queued = self.fan_out(&batch, &mut subs);
        drop(subs);
        self.metrics
            .query_updates
            .fetch_add(queued, AtomicOrdering::Relaxed);
    }
}
