//! Tests of live queries: a real `Maps` with records merged in, commits fed
//! to `on_commit` as the pipeline does, and real `Outbound` queues read
//! back.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use topgun_core::lww::MergeOutcome;
use topgun_core::{CmpOp, Filter, MapKind, NodeId, OrItem, SortKey, Timestamp};

use super::*;
use crate::authz::AllowAll;

/// The start of test time, in ms.
const T0: u64 = 1_000_000;

#[derive(Debug)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Allows everything, reserved maps included, so the tests show that the
/// live-query registry refuses reserved maps on its own.
#[derive(Debug)]
struct AllowEverything;

impl Policy for AllowEverything {
    fn decide(&self, _: &Principal, _: Action, _: &str, _: Option<&str>) -> Decision {
        Decision::Allow
    }
}

/// Denies reads of the map `map`, and reads of the key `key` in any map.
#[derive(Debug)]
struct DenyReads {
    map: &'static str,
    key: &'static str,
}

impl Policy for DenyReads {
    fn decide(&self, _: &Principal, action: Action, map: &str, key: Option<&str>) -> Decision {
        if action == Action::Read && (map == self.map || key == Some(self.key)) {
            Decision::Deny("read denied".to_owned())
        } else {
            Decision::Allow
        }
    }
}

/// One connection's view: its outbound queue and what arrives on it.
struct Client {
    conn: u64,
    out: Outbound,
    rx: mpsc::Receiver<crate::outbound::Queued>,
    overflow: CancellationToken,
}

impl Client {
    fn new(conn: u64) -> Client {
        Client::with_capacity(conn, 1024)
    }

    fn with_capacity(conn: u64, capacity: usize) -> Client {
        let (out, rx, overflow) = Outbound::new(capacity);
        Client {
            conn,
            out,
            rx,
            overflow,
        }
    }

    /// Every queued message, as (query id, change, key, record).
    fn drain(&mut self) -> Vec<(u64, ChangeKind, String, WireLwwRecord)> {
        let mut got = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            match *msg {
                ServerMessage::QueryUpdate {
                    query_id,
                    change,
                    key,
                    record,
                } => got.push((query_id, change, key, record)),
                other => panic!("unexpected message {other:?}"),
            }
        }
        got
    }

    /// The queued updates as (change, key) pairs.
    fn changes(&mut self) -> Vec<(ChangeKind, String)> {
        self.drain()
            .into_iter()
            .map(|(_, c, k, _)| (c, k))
            .collect()
    }
}

struct Fixture {
    maps: Maps,
    live: LiveQueries,
    clock: Arc<TestClock>,
    metrics: Arc<Metrics>,
    counter: Cell<u32>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(Arc::new(AllowAll), 16)
    }

    fn with(policy: Arc<dyn Policy>, cap: usize) -> Fixture {
        let clock = Arc::new(TestClock(AtomicU64::new(T0)));
        let metrics = Arc::new(Metrics::default());
        Fixture {
            maps: Maps::default(),
            live: LiveQueries::new(policy, cap, Arc::clone(&metrics)).with_clock(clock.clone()),
            clock,
            metrics,
            counter: Cell::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// The next timestamp at the clock's time.
    fn ts(&self) -> Timestamp {
        self.counter.set(self.counter.get() + 1);
        Timestamp {
            millis: self.now(),
            counter: self.counter.get(),
            node: NodeId(1),
        }
    }

    /// Merges `record` into the LWW map `map` as the pipeline does and
    /// returns the change (not yet committed).
    fn merge(&self, map: &str, key: &str, record: LwwRecord) -> LwwChange {
        let handle = self.maps.get_or_create(map, MapKind::Lww).unwrap();
        let mut data = lock(&handle);
        let MapData::Lww(m) = &mut *data else {
            panic!("not an LWW map")
        };
        let old = match m.merge(key, record.clone()) {
            MergeOutcome::Inserted => None,
            MergeOutcome::Replaced(old) => Some(old),
            MergeOutcome::Ignored => panic!("merge ignored"),
        };
        LwwChange {
            key: key.to_owned(),
            old,
            new: record,
        }
    }

    fn put(&self, map: &str, key: &str, value: Value) -> LwwChange {
        self.put_ttl(map, key, value, None)
    }

    fn put_ttl(&self, map: &str, key: &str, value: Value, ttl_ms: Option<u64>) -> LwwChange {
        let record = LwwRecord {
            value: Some(value),
            timestamp: self.ts(),
            ttl_ms,
        };
        self.merge(map, key, record)
    }

    fn remove(&self, map: &str, key: &str) -> LwwChange {
        self.merge(map, key, LwwRecord::tombstone(self.ts()))
    }

    /// Tells the registry that `changes` to `map` are durable.
    fn commit(&self, map: &str, changes: &[LwwChange]) {
        let handle = self.maps.get(map).unwrap();
        self.live.on_commit(map, &handle, changes);
    }

    /// Writes and commits, one batch per call.
    fn write(&self, map: &str, key: &str, value: Value) {
        let c = self.put(map, key, value);
        self.commit(map, &[c]);
    }

    fn subscribe_as(
        &self,
        client: &Client,
        principal: Principal,
        query_id: u64,
        map: &str,
        query: Query,
    ) -> Result<Vec<QueryRecord>, SubscribeError> {
        self.live.subscribe(
            client.conn,
            Arc::new(principal),
            query_id,
            map,
            query,
            &self.maps,
            self.now(),
            client.out.clone(),
        )
    }

    /// Subscribes, activates, and returns the initial result's keys.
    fn subscribe(&self, client: &Client, query_id: u64, map: &str, query: Query) -> Vec<String> {
        let records = self
            .subscribe_as(client, Principal::anonymous(), query_id, map, query)
            .unwrap();
        assert!(self.live.activate(client.conn, query_id));
        records.into_iter().map(|r| r.key).collect()
    }
}

fn doc(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn task(status: &str, rank: i64) -> Value {
    doc(&[("status", status.into()), ("rank", rank.into())])
}

fn open_tasks() -> Query {
    Query {
        filter: Some(Filter::Compare {
            field: "status".into(),
            op: CmpOp::Eq,
            value: "open".into(),
        }),
        sort: Vec::new(),
        limit: None,
    }
}

/// Open tasks by rank, lowest first, at most `limit`.
fn top_open(limit: u32) -> Query {
    Query {
        sort: vec![SortKey {
            field: "rank".into(),
            descending: false,
        }],
        limit: Some(limit),
        ..open_tasks()
    }
}

fn ck(kind: ChangeKind, key: &str) -> (ChangeKind, String) {
    (kind, key.to_owned())
}

use ChangeKind::{Enter, Leave, Update};

#[test]
fn filter_enter_update_leave() {
    let f = Fixture::new();
    f.write("tasks", "a", task("open", 1));
    f.write("tasks", "b", task("done", 2));
    let mut c = Client::new(1);
    assert_eq!(f.subscribe(&c, 7, "tasks", open_tasks()), ["a"]);

    f.write("tasks", "b", task("open", 2)); // out -> in
    f.write("tasks", "a", task("open", 5)); // in -> in
    f.write("tasks", "a", task("done", 5)); // in -> out
    f.write("tasks", "c", task("done", 1)); // out -> out: nothing
    let got = c.drain();
    let kinds: Vec<_> = got
        .iter()
        .map(|(q, k, key, _)| (*q, *k, key.as_str()))
        .collect();
    assert_eq!(kinds, [(7, Enter, "b"), (7, Update, "a"), (7, Leave, "a")]);
    // Each update carries the key's new record; the Leave carries the
    // record that made it leave.
    let leave = LwwRecord::from(got[2].3.clone());
    assert_eq!(leave.value, Some(task("done", 5)));
    assert_eq!(f.metrics.query_updates.load(Ordering::Relaxed), 3);
}

#[test]
fn tombstone_leaves_with_the_tombstone() {
    let f = Fixture::new();
    f.write("tasks", "a", task("open", 1));
    let mut c = Client::new(1);
    assert_eq!(f.subscribe(&c, 1, "tasks", open_tasks()), ["a"]);
    let rm = f.remove("tasks", "a");
    f.commit("tasks", std::slice::from_ref(&rm));
    let got = c.drain();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].1, got[0].2.as_str()), (Leave, "a"));
    assert_eq!(got[0].3.value, RecordValue::Tombstone);
    assert_eq!(got[0].3.timestamp, rm.new.timestamp.into());
    // Removing again (a tombstone over a tombstone) says nothing.
    f.commit("tasks", &[f.remove("tasks", "a")]);
    assert!(c.drain().is_empty());
}

#[test]
fn expired_records_are_not_live() {
    let f = Fixture::new();
    let a = f.put_ttl("tasks", "a", task("open", 1), Some(100));
    let b = f.put_ttl("tasks", "b", task("open", 2), Some(10_000));
    f.commit("tasks", &[a, b]);
    f.advance(500);
    let mut c = Client::new(1);
    assert_eq!(f.subscribe(&c, 1, "tasks", open_tasks()), ["b"]);
    // A write that is already expired when it commits does not enter.
    let stale = LwwRecord {
        value: Some(task("open", 3)),
        timestamp: Timestamp {
            millis: f.now() - 1_000,
            counter: 99,
            node: NodeId(2),
        },
        ttl_ms: Some(10),
    };
    let change = f.merge("tasks", "x", stale);
    f.commit("tasks", &[change]);
    assert!(c.changes().is_empty());
}

#[test]
fn initial_result_is_sorted_and_limited_like_query_run() {
    let f = Fixture::new();
    let ranks = [5, 3, 9, 1, 7, 3, 8];
    for (i, rank) in ranks.iter().enumerate() {
        let status = if i % 3 == 2 { "done" } else { "open" };
        f.write("tasks", &format!("k{i}"), task(status, *rank));
    }
    let check = |query: Query| {
        let c = Client::new(1);
        let qid = f.counter.get().into();
        let got = f.subscribe(&c, qid, "tasks", query.clone());
        let handle = f.maps.get("tasks").unwrap();
        let data = lock(&handle);
        let MapData::Lww(m) = &*data else { panic!() };
        let want: Vec<String> = query
            .run(m.iter_live(f.now()))
            .into_iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        assert_eq!(got, want, "{query:?}");
        f.counter.set(f.counter.get() + 1);
    };
    check(open_tasks());
    check(top_open(3));
    check(top_open(0));
    check(top_open(100));
    check(Query {
        sort: vec![SortKey {
            field: "rank".into(),
            descending: true,
        }],
        limit: Some(2),
        filter: None,
    });
}

/// A window of the three lowest-ranked open tasks: a, b, c.
fn window_fixture() -> (Fixture, Client) {
    let f = Fixture::new();
    for (key, rank) in [("a", 10), ("b", 20), ("c", 30), ("d", 40), ("e", 50)] {
        f.write("tasks", key, task("open", rank));
    }
    let c = Client::new(1);
    assert_eq!(f.subscribe(&c, 1, "tasks", top_open(3)), ["a", "b", "c"]);
    (f, c)
}

#[test]
fn insert_into_a_full_window_pushes_the_last_out() {
    let (f, mut c) = window_fixture();
    f.write("tasks", "x", task("open", 15));
    assert_eq!(c.changes(), [ck(Leave, "c"), ck(Enter, "x")]);
    // A record that sorts after the window does nothing.
    f.write("tasks", "y", task("open", 99));
    assert!(c.changes().is_empty());
}

#[test]
fn removal_from_a_window_lets_the_next_enter() {
    let (f, mut c) = window_fixture();
    f.commit("tasks", &[f.remove("tasks", "b")]);
    assert_eq!(c.changes(), [ck(Leave, "b"), ck(Enter, "d")]);
    f.write("tasks", "a", task("done", 10));
    assert_eq!(c.changes(), [ck(Leave, "a"), ck(Enter, "e")]);
    // No more candidates: the window shrinks.
    f.write("tasks", "c", task("done", 30));
    assert_eq!(c.changes(), [ck(Leave, "c")]);
    // A new candidate enters the non-full window.
    f.write("tasks", "z", task("open", 1));
    assert_eq!(c.changes(), [ck(Enter, "z")]);
}

#[test]
fn a_member_that_moves_within_the_window_is_updated() {
    let (f, mut c) = window_fixture();
    f.write("tasks", "a", task("open", 25)); // a moves behind b
    assert_eq!(c.changes(), [ck(Update, "a")]);
    // Moving behind the window's end: it leaves and d enters.
    f.write("tasks", "a", task("open", 45));
    assert_eq!(c.changes(), [ck(Leave, "a"), ck(Enter, "d")]);
}

#[test]
fn one_batch_is_announced_as_its_net_effect() {
    let (f, mut c) = window_fixture();
    // x enters and is pushed behind the limit again within the commit
    // (never announced); b and c are pushed out; y and z enter.
    let batch = [
        f.put("tasks", "x", task("open", 25)),
        f.put("tasks", "y", task("open", 5)),
        f.put("tasks", "z", task("open", 6)),
    ];
    f.commit("tasks", &batch);
    assert_eq!(
        c.changes(),
        [
            ck(Leave, "b"),
            ck(Leave, "c"),
            ck(Enter, "y"),
            ck(Enter, "z")
        ]
    );
}

#[test]
fn duplicate_query_id_is_refused() {
    let f = Fixture::new();
    let c = Client::new(1);
    f.subscribe(&c, 1, "tasks", open_tasks());
    let err = f.subscribe_as(&c, Principal::anonymous(), 1, "other", open_tasks());
    assert!(matches!(
        err,
        Err(SubscribeError::DuplicateQueryId { query_id: 1 })
    ));
    // Another connection may use the same id.
    let d = Client::new(2);
    f.subscribe(&d, 1, "tasks", open_tasks());
    assert_eq!(f.live.len(), 2);
}

#[test]
fn subscriptions_per_connection_are_capped() {
    let f = Fixture::with(Arc::new(AllowAll), 2);
    let c = Client::new(1);
    f.subscribe(&c, 1, "a", open_tasks());
    f.subscribe(&c, 2, "b", open_tasks());
    let err = f.subscribe_as(&c, Principal::anonymous(), 3, "c", open_tasks());
    assert!(matches!(
        err,
        Err(SubscribeError::TooManySubscriptions { max: 2 })
    ));
    assert!(f.live.unsubscribe(1, 1));
    f.subscribe(&c, 3, "c", open_tasks());
}

#[test]
fn or_maps_are_refused() {
    let f = Fixture::new();
    let handle = f.maps.get_or_create("sets", MapKind::Or).unwrap();
    if let MapData::Or(m) = &mut *lock(&handle) {
        m.add(
            "k",
            OrItem {
                value: "v".into(),
                tag: f.ts(),
                ttl_ms: None,
            },
        );
    }
    let c = Client::new(1);
    let err = f.subscribe_as(&c, Principal::anonymous(), 1, "sets", open_tasks());
    assert!(matches!(err, Err(SubscribeError::NotLwwMap { .. })));
    // The refusal leaves nothing behind; the id is free again.
    assert_eq!((f.live.len(), f.live.map_entries()), (0, 0));
    f.subscribe(&c, 1, "tasks", open_tasks());
}

#[test]
fn reserved_maps_are_refused_whatever_the_policy() {
    let f = Fixture::with(Arc::new(AllowEverything), 16);
    let c = Client::new(1);
    let err = f.subscribe_as(&c, Principal::anonymous(), 1, "$sys", Query::default());
    assert!(matches!(err, Err(SubscribeError::Forbidden { .. })));
    assert_eq!((f.live.len(), f.live.map_entries()), (0, 0));
}

#[test]
fn a_policy_that_denies_reads() {
    let f = Fixture::with(
        Arc::new(DenyReads {
            map: "secret",
            key: "hidden",
        }),
        16,
    );
    let mut c = Client::new(1);
    let err = f.subscribe_as(&c, Principal::anonymous(), 1, "secret", Query::default());
    assert!(matches!(err, Err(SubscribeError::Forbidden { ref map, .. }) if map == "secret"));

    // Per key: the denied record is never delivered, initially or later.
    f.write("tasks", "hidden", task("open", 1));
    f.write("tasks", "shown", task("open", 2));
    assert_eq!(f.subscribe(&c, 2, "tasks", open_tasks()), ["shown"]);
    assert_eq!(f.subscribe(&c, 3, "tasks", top_open(5)), ["shown"]);
    f.write("tasks", "hidden", task("open", 3));
    f.commit("tasks", &[f.remove("tasks", "hidden")]);
    f.write("tasks", "shown", task("open", 4));
    let got = c.drain();
    assert!(got.iter().all(|(_, _, key, _)| key != "hidden"), "{got:?}");
    assert_eq!(got.len(), 2);
}

#[test]
fn unsubscribe_and_disconnect_stop_delivery_and_leak_nothing() {
    let f = Fixture::new();
    let mut c = Client::new(1);
    let mut d = Client::new(2);
    f.subscribe(&c, 1, "tasks", open_tasks());
    f.subscribe(&c, 2, "tasks", top_open(2));
    f.subscribe(&c, 3, "notes", open_tasks());
    f.subscribe(&d, 1, "tasks", open_tasks());

    assert!(f.live.unsubscribe(1, 1));
    assert!(!f.live.unsubscribe(1, 1));
    assert!(!f.live.activate(1, 1));
    f.write("tasks", "a", task("open", 1));
    assert_eq!(c.drain().iter().map(|m| m.0).collect::<Vec<_>>(), [2]);
    assert_eq!(d.changes(), [ck(Enter, "a")]);

    f.live.remove_connection(1);
    f.write("tasks", "b", task("open", 2));
    f.write("notes", "n", task("open", 2));
    assert!(c.drain().is_empty());
    assert_eq!(d.changes(), [ck(Enter, "b")]);
    assert_eq!((f.live.len(), f.live.map_entries()), (1, 1));

    f.live.remove_connection(2);
    f.live.remove_connection(2);
    assert_eq!((f.live.len(), f.live.map_entries()), (0, 0));
    assert!(f.live.by_conn.is_empty());
}

#[test]
fn a_full_queue_cancels_the_overflow_token_instead_of_blocking() {
    let f = Fixture::new();
    let mut c = Client::with_capacity(1, 2);
    f.subscribe(&c, 1, "tasks", open_tasks());
    for i in 0..5 {
        f.write("tasks", &format!("k{i}"), task("open", i));
    }
    assert!(c.overflow.is_cancelled());
    assert_eq!(c.drain().len(), 2);
    assert_eq!(f.metrics.query_updates.load(Ordering::Relaxed), 2);
}

#[test]
fn updates_wait_for_activation() {
    let f = Fixture::new();
    let mut c = Client::new(1);
    f.write("tasks", "a", task("open", 1));
    let initial = f
        .subscribe_as(&c, Principal::anonymous(), 1, "tasks", open_tasks())
        .unwrap();
    assert_eq!(initial.len(), 1);
    f.write("tasks", "b", task("open", 2));
    f.write("tasks", "a", task("done", 1));
    assert!(c.drain().is_empty(), "nothing may overtake the QUERY_RESP");
    assert!(f.live.activate(1, 1));
    assert_eq!(c.changes(), [ck(Enter, "b"), ck(Leave, "a")]);
    f.write("tasks", "c", task("open", 3));
    assert_eq!(c.changes(), [ck(Enter, "c")]);
}

#[test]
fn too_many_held_updates_mark_a_slow_consumer() {
    let f = Fixture::new();
    let mut c = Client::new(1);
    f.subscribe_as(&c, Principal::anonymous(), 1, "tasks", open_tasks())
        .unwrap();
    let batch: Vec<_> = (0..=MAX_HELD_UPDATES)
        .map(|i| f.put("tasks", &format!("k{i}"), task("open", 1)))
        .collect();
    f.commit("tasks", &batch);
    assert!(c.overflow.is_cancelled());
    f.live.activate(1, 1);
    assert!(c.drain().is_empty());
}

#[test]
fn a_map_created_after_the_subscription() {
    let f = Fixture::new();
    let mut c = Client::new(1);
    assert!(f.subscribe(&c, 1, "later", top_open(2)).is_empty());
    f.write("later", "a", task("open", 1));
    assert_eq!(c.changes(), [ck(Enter, "a")]);
}

#[test]
fn commits_delivered_out_of_order_end_on_the_latest_record() {
    let f = Fixture::new();
    f.write("tasks", "a", task("open", 1));
    let mut c = Client::new(1);
    let mut w = Client::new(2);
    f.subscribe(&c, 1, "tasks", open_tasks());
    f.subscribe(&w, 1, "tasks", top_open(5));
    // Two batches write "a"; the second one's commit finishes first.
    let first = f.put("tasks", "a", task("done", 1));
    let second = f.put("tasks", "a", task("open", 2));
    f.commit("tasks", &[second]);
    f.commit("tasks", &[first]);
    for client in [&mut c, &mut w] {
        let got = client.drain();
        let (_, _, _, last) = got.last().unwrap();
        assert_eq!(LwwRecord::from(last.clone()).value, Some(task("open", 2)));
        assert!(got.iter().all(|m| m.1 != Leave), "{got:?}");
    }
}

#[test]
fn expire_moves_expired_members_out_of_a_window() {
    let f = Fixture::new();
    let a = f.put_ttl("tasks", "a", task("open", 1), Some(100));
    let b = f.put("tasks", "b", task("open", 2));
    let c_rec = f.put("tasks", "c", task("open", 3));
    f.commit("tasks", &[a, b, c_rec]);
    let mut c = Client::new(1);
    assert_eq!(f.subscribe(&c, 1, "tasks", top_open(2)), ["a", "b"]);
    f.live.expire(&f.maps, f.now());
    assert!(c.changes().is_empty());
    f.advance(100);
    f.live.expire(&f.maps, f.now());
    assert_eq!(c.changes(), [ck(Leave, "a"), ck(Enter, "c")]);
    f.live.expire(&f.maps, f.now());
    assert!(c.changes().is_empty());
}

#[test]
fn many_subscribers_of_one_map() {
    let f = Fixture::new();
    let mut clients: Vec<Client> = (0..200).map(Client::new).collect();
    for c in &clients {
        f.subscribe(c, 1, "tasks", open_tasks());
    }
    f.write("tasks", "a", task("open", 1));
    for c in &mut clients {
        assert_eq!(c.changes(), [ck(Enter, "a")]);
    }
    assert_eq!(f.metrics.query_updates.load(Ordering::Relaxed), 200);
}

#[test]
fn a_window_keeps_working_after_its_reserve_is_used_up() {
    let f = Fixture::new();
    for i in 0..40 {
        f.write("tasks", &format!("k{i:02}"), task("open", i));
    }
    let mut c = Client::new(1);
    assert_eq!(
        f.subscribe(&c, 1, "tasks", top_open(3)),
        ["k00", "k01", "k02"]
    );
    for i in 0..20 {
        f.commit("tasks", &[f.remove("tasks", &format!("k{i:02}"))]);
        let next = format!("k{:02}", i + 3);
        assert_eq!(
            c.changes(),
            [ck(Leave, &format!("k{i:02}")), ck(Enter, &next)]
        );
    }
}

/// A client's copy of one subscription's result, kept from the messages
/// alone, strictly: `Enter` only for absent keys, `Update` and `Leave` only
/// for present ones. The one exception: a client of an unlimited query
/// drops expired records itself, and a later change to such a key still
/// sends `Leave` (the server can not know whether the client dropped it).
#[derive(Default)]
struct Model {
    records: BTreeMap<String, LwwRecord>,
    drops_expired: bool,
}

impl Model {
    fn apply(&mut self, change: ChangeKind, key: String, record: WireLwwRecord) {
        let record = LwwRecord::from(record);
        match change {
            Enter => assert!(
                self.records.insert(key.clone(), record).is_none(),
                "Enter {key}"
            ),
            Update => assert!(
                self.records.insert(key.clone(), record).is_some(),
                "Update {key}"
            ),
            Leave => assert!(
                self.records.remove(&key).is_some() || self.drops_expired,
                "Leave {key}"
            ),
        }
    }
}

/// A tiny deterministic generator (no dependency, same sequence everywhere).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Random batches of puts (some with a TTL), removals and clock steps; after
/// every step each client's copy equals the query run over the map.
#[test]
fn clients_copies_follow_the_map() {
    for seed in 0..12u64 {
        let policy: Arc<dyn Policy> = if seed % 3 == 0 {
            Arc::new(DenyReads {
                map: "none",
                key: "k3",
            })
        } else {
            Arc::new(AllowAll)
        };
        let f = Fixture::with(Arc::clone(&policy), 16);
        let mut rng = Lcg(seed);
        let queries = [
            open_tasks(),
            top_open(1),
            top_open(3),
            Query {
                filter: None,
                sort: vec![SortKey {
                    field: "rank".into(),
                    descending: true,
                }],
                limit: Some(4),
            },
            Query {
                limit: Some(2),
                ..Query::default()
            },
        ];
        let mut clients: Vec<(Client, Model, Query)> = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let c = Client::new(i as u64);
            f.subscribe(&c, 1, "tasks", q.clone());
            let model = Model {
                records: BTreeMap::new(),
                drops_expired: q.limit.is_none(),
            };
            clients.push((c, model, q.clone()));
        }
        for step in 0..300 {
            match rng.below(10) {
                0 => {
                    f.advance(rng.below(50));
                    f.live.expire(&f.maps, f.now());
                }
                _ => {
                    let batch: Vec<LwwChange> = (0..=rng.below(3))
                        .map(|_| {
                            let key = format!("k{}", rng.below(12));
                            match rng.below(6) {
                                0 => f.remove("tasks", &key),
                                n => {
                                    let status = if n < 4 { "open" } else { "done" };
                                    let rank = rng.below(8) as i64;
                                    let ttl = (rng.below(4) == 0).then(|| rng.below(80));
                                    f.put_ttl("tasks", &key, task(status, rank), ttl)
                                }
                            }
                        })
                        .collect();
                    f.commit("tasks", &batch);
                }
            }
            let handle = f.maps.get("tasks");
            for (c, model, query) in &mut clients {
                for (_, change, key, record) in c.drain() {
                    model.apply(change, key, record);
                }
                let want: Vec<(String, Timestamp)> = match &handle {
                    None => Vec::new(),
                    Some(h) => {
                        let data = lock(h);
                        let MapData::Lww(m) = &*data else { panic!() };
                        let principal = Principal::anonymous();
                        let visible = m.iter_live(f.now()).filter(|(k, _)| {
                            policy.decide(&principal, Action::Read, "tasks", Some(k))
                                == Decision::Allow
                        });
                        query
                            .run(visible)
                            .into_iter()
                            .map(|(k, _)| (k.to_owned(), m.get(k).unwrap().timestamp))
                            .collect()
                    }
                };
                let mut want_sorted = want.clone();
                want_sorted.sort();
                // Unlimited results: the client drops expired records itself.
                if query.limit.is_none() {
                    let now = f.now();
                    model.records.retain(|_, r| r.live_value(now).is_some());
                }
                let got: Vec<(String, Timestamp)> = model
                    .records
                    .iter()
                    .map(|(k, r)| (k.clone(), r.timestamp))
                    .collect();
                assert_eq!(got, want_sorted, "seed {seed} step {step} query {query:?}");
            }
        }
    }
}
