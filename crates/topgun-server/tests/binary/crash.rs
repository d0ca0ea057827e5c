//! `kill -9` during a write load: after a restart on the same data
//! directory, every acknowledged write is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topgun_protocol::{
    ClientMessage, Encoding, Op, RecordValue, ServerMessage, WireNodeId, WireOpKind, WireQuery,
    WireTimestamp, WireValue, WriteConcern,
};
use topgun_tests::{Raw, token_for};

use crate::{secured, spawn};

const WRITERS: u64 = 4;

/// Writes batches of 10 unique keys until the connection dies, recording
/// every acknowledged (key, value).
async fn write_until_killed(
    addr: std::net::SocketAddr,
    writer: u64,
    acked: Arc<Mutex<HashMap<String, i64>>>,
) {
    let mut raw = Raw::connect(addr, Encoding::Bincode).await;
    assert!(matches!(
        raw.handshake(&token_for("crash")).await,
        ServerMessage::AuthAck { .. }
    ));
    let mut seq: u64 = 0;
    loop {
        let ops: Vec<Op> = (0..10)
            .map(|_| {
                seq += 1;
                Op {
                    op_id: seq,
                    map: "crash".to_owned(),
                    key: format!("w{writer}-{seq}"),
                    timestamp: WireTimestamp {
                        millis: 1,
                        counter: 0,
                        node: WireNodeId(writer),
                    },
                    kind: WireOpKind::Put {
                        value: WireValue::from(i64::try_from(seq).unwrap()),
                        ttl_ms: None,
                    },
                }
            })
            .collect();
        let keys: HashMap<u64, (String, i64)> = ops
            .iter()
            .map(|o| (o.op_id, (o.key.clone(), i64::try_from(o.op_id).unwrap())))
            .collect();
        raw.send(&ClientMessage::OpBatch {
            ops,
            write_concern: WriteConcern::Durable,
        })
        .await;
        match raw.recv().await {
            Ok(ServerMessage::OpAck { acks }) => {
                let mut map = acked.lock().unwrap();
                for a in acks {
                    let (k, v) = keys[&a.op_id].clone();
                    map.insert(k, v);
                }
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => return, // killed
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn(secured(dir.path()));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until_killed(proc.addr, w, Arc::clone(&acked))))
        .collect();
    // Let the load run until a good number of writes are acknowledged.
    for _ in 0..200 {
        if acked.lock().unwrap().len() >= 3_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proc.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    proc.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 100, "the load ran ({} acks)", acked.len());

    let proc = spawn(secured(dir.path()));
    let mut raw = Raw::connect(proc.addr, Encoding::Bincode).await;
    assert!(matches!(
        raw.handshake(&token_for("check")).await,
        ServerMessage::AuthAck { .. }
    ));
    raw.send(&ClientMessage::QuerySub {
        query_id: 1,
        map: "crash".to_owned(),
        query: WireQuery::default(),
    })
    .await;
    let records = match raw.recv().await {
        Ok(ServerMessage::QueryResp { records, .. }) => records,
        other => panic!("{other:?}"),
    };
    let stored: HashMap<String, RecordValue> = records
        .into_iter()
        .map(|r| (r.key, r.record.value))
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(&RecordValue::Live(WireValue::from(**v))))
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "kill -9: {} acknowledged writes, all present after restart ({} stored)",
        acked.len(),
        stored.len()
    );
}
