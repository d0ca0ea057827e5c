//! The pipeline without a network: validation, timestamps, trusted
//! origins, commit failure.

use std::sync::Arc;

use topgun_core::{CallerOrigin, NodeId, Value};
use topgun_protocol::{
    Op, RejectCode, WireNodeId, WireOpKind, WireTimestamp, WireValue, WriteConcern,
};

use super::*;
use crate::authz::Principal;
use crate::config::{Limits, TimestampPolicy};
use crate::metrics::Metrics;
use crate::state::{Maps, SystemClock};
use crate::store::{FaultKind, FaultyStore, MemoryStore};

fn engine(store: Arc<dyn Store>, timestamps: TimestampPolicy) -> Arc<Engine> {
    let limits = Limits {
        max_value_bytes: 100,
        ..Limits::default()
    };
    Arc::new(Engine::new(
        Maps::default(),
        NodeId(1),
        EngineParts {
            clock: Arc::new(SystemClock),
            store,
            ts_policy: timestamps,
            limits,
            metrics: Arc::new(Metrics::default()),
            listeners: Vec::new(),
        },
    ))
}

fn op(op_id: u64, map: &str, value: &str, millis: u64) -> Op {
    Op {
        op_id,
        map: map.to_owned(),
        key: "k".to_owned(),
        timestamp: WireTimestamp {
            millis,
            counter: 0,
            node: WireNodeId(9),
        },
        kind: WireOpKind::Put {
            value: WireValue::from(value),
            ttl_ms: None,
        },
    }
}

fn request(origin: CallerOrigin, ops: Vec<Op>) -> WriteRequest {
    WriteRequest {
        principal: Arc::new(Principal::anonymous()),
        origin,
        ops,
        concern: WriteConcern::Durable,
    }
}

fn codes(resp: &WriteResponse) -> Vec<(u64, RejectCode)> {
    let mut v: Vec<_> = resp.rejections.iter().map(|r| (r.op_id, r.code)).collect();
    v.sort_by_key(|r| r.0);
    v
}

const FAR_FUTURE: u64 = 4_000_000_000_000;

#[tokio::test]
async fn client_writes_are_validated_and_restamped() {
    let e = engine(Arc::new(MemoryStore::new()), TimestampPolicy::Restamp);
    let big = "x".repeat(500);
    let resp = write(
        Arc::clone(&e),
        request(
            CallerOrigin::Client,
            vec![
                op(1, "$sys", "v", 1),
                op(2, "m", &big, 1),
                op(3, "m", "ok", FAR_FUTURE),
            ],
        ),
    )
    .await;
    assert_eq!(
        codes(&resp),
        [
            (1, RejectCode::InvalidMapName),
            (2, RejectCode::ValueTooLarge)
        ]
    );
    assert_eq!(resp.acks.len(), 1);
    let ts = resp.acks[0].timestamp;
    assert!(
        ts.millis < FAR_FUTURE,
        "a far-future client clock does not survive re-stamping"
    );
    assert_eq!(ts.node, WireNodeId(1), "the server's node id");
}

#[tokio::test]
async fn bounded_drift_keeps_close_timestamps_and_refuses_far_ones() {
    let e = engine(
        Arc::new(MemoryStore::new()),
        TimestampPolicy::BoundedDrift {
            max_drift: std::time::Duration::from_secs(5),
        },
    );
    let now = e.now_millis();
    let resp = write(
        Arc::clone(&e),
        request(
            CallerOrigin::Client,
            vec![op(1, "m", "a", now), op(2, "n", "b", now + 60_000)],
        ),
    )
    .await;
    assert_eq!(codes(&resp), [(2, RejectCode::ClockDrift)]);
    assert_eq!(
        resp.acks[0].timestamp.millis, now,
        "kept the client's timestamp"
    );
}

#[tokio::test]
async fn trusted_origins_skip_the_write_validator() {
    for origin in [
        CallerOrigin::Forwarded,
        CallerOrigin::Backup,
        CallerOrigin::Wan,
        CallerOrigin::System,
    ] {
        let e = engine(Arc::new(MemoryStore::new()), TimestampPolicy::Restamp);
        let big = "x".repeat(500);
        let resp = write(
            Arc::clone(&e),
            request(
                origin,
                vec![op(1, "$sys", "v", 5), op(2, "m", &big, FAR_FUTURE)],
            ),
        )
        .await;
        assert!(
            resp.rejections.is_empty(),
            "{origin:?}: {:?}",
            resp.rejections
        );
        let mut acks = resp.acks.clone();
        acks.sort_by_key(|a| a.op_id);
        assert_eq!(
            acks[1].timestamp.millis, FAR_FUTURE,
            "{origin:?} keeps the replica's timestamp"
        );
        let handle = e.maps.get("m").unwrap();
        let data = crate::state::lock(&handle);
        match &*data {
            MapData::Lww(m) => assert_eq!(m.get_live("k", 0), Some(&Value::from(big.as_str()))),
            MapData::Or(_) => panic!("kind"),
        }
    }
}

#[tokio::test]
async fn a_failed_commit_rejects_every_op_and_marks_the_engine_unhealthy() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let e = engine(faulty.clone(), TimestampPolicy::Restamp);
    faulty.fail_next(1, FaultKind::Reject);
    let resp = write(
        Arc::clone(&e),
        request(
            CallerOrigin::Client,
            vec![op(1, "m", "a", 1), op(2, "m", "b", 1)],
        ),
    )
    .await;
    assert!(resp.acks.is_empty());
    assert_eq!(
        codes(&resp),
        [(1, RejectCode::Internal), (2, RejectCode::Internal)]
    );
    assert!(!e.is_healthy());
}

/// Records the maps and keys it is told about; wants only `wanted`.
#[derive(Debug)]
struct Recorder {
    wanted: &'static str,
    seen: std::sync::Mutex<Vec<(String, String, Option<Value>)>>,
}

impl CommitListener for Recorder {
    fn on_commit(&self, map: &str, _: &MapHandle, changes: &[LwwChange]) {
        let mut seen = self.seen.lock().unwrap();
        for c in changes {
            seen.push((
                map.to_owned(),
                c.key.clone(),
                c.old.as_ref().and_then(|o| o.value.clone()),
            ));
        }
    }

    fn wants(&self, map: &str) -> bool {
        map == self.wanted
    }
}

#[tokio::test]
async fn changes_are_collected_only_for_maps_a_listener_wants() {
    let recorder = Arc::new(Recorder {
        wanted: "watched",
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let e = Arc::new(Engine::new(
        Maps::default(),
        NodeId(1),
        EngineParts {
            clock: Arc::new(SystemClock),
            store: Arc::new(MemoryStore::new()),
            ts_policy: TimestampPolicy::Restamp,
            limits: Limits::default(),
            metrics: Arc::new(Metrics::default()),
            listeners: vec![recorder.clone() as Arc<dyn CommitListener>],
        },
    ));
    for (id, value) in [(1, "v1"), (3, "v2")] {
        let resp = write(
            Arc::clone(&e),
            request(
                CallerOrigin::Client,
                vec![op(id, "watched", value, 1), op(id + 1, "other", value, 1)],
            ),
        )
        .await;
        assert_eq!(resp.acks.len(), 2, "{resp:?}");
    }
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("watched".to_owned(), "k".to_owned(), None),
            (
                "watched".to_owned(),
                "k".to_owned(),
                Some(Value::from("v1"))
            ),
        ]
    );
    // The unwatched map was written all the same.
    let other = e.maps.get("other").unwrap();
    let MapData::Lww(m) = &*lock(&other) else {
        panic!("an LWW map")
    };
    assert_eq!(
        m.get("k").and_then(|r| r.value.clone()),
        Some(Value::from("v2"))
    );
}
