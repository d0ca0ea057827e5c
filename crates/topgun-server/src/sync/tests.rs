//! Leaf answers without a network: how `SYNC_RESP_LEAF` answers are split
//! to fit the message size limit, in both encodings.

use std::collections::BTreeSet;

use topgun_core::{LwwRecord, NodeId, OrItem, Timestamp, Value};
use topgun_protocol::{Encoding, KeyHash};

use super::*;
use crate::authz::AllowAll;

fn t(millis: u64) -> Timestamp {
    Timestamp::new(millis, 0, NodeId(1))
}

/// A server holding `keys` with `value` each in the LWW map `m`.
fn lww_server(keys: impl IntoIterator<Item = String>, value: &Value) -> Maps {
    let maps = Maps::default();
    let handle = maps.get_or_create("m", MapKind::Lww).unwrap();
    if let MapData::Lww(m) = &mut *lock(&handle) {
        for key in keys {
            m.merge(key, LwwRecord::put(value.clone(), t(10)));
        }
    }
    maps
}

/// The request of a client that holds only `own` (keys the server lacks,
/// with a made-up hash), for every leaf bucket that holds a server key or
/// one of `own`.
fn request(maps: &Maps, own: &[String]) -> Vec<WireLeafDigest> {
    let tree = MerkleTree::default();
    let mut paths: BTreeSet<MerklePath> = own.iter().map(|k| tree.bucket_of(k)).collect();
    if let Some(handle) = maps.get("m") {
        match &*lock(&handle) {
            MapData::Lww(m) => paths.extend(m.iter().map(|(k, _)| tree.bucket_of(k))),
            MapData::Or(m) => paths.extend(m.iter().map(|(k, _)| tree.bucket_of(k))),
        }
    }
    paths
        .into_iter()
        .map(|path| WireLeafDigest {
            path: path.into(),
            entries: own
                .iter()
                .filter(|k| tree.bucket_of(k) == path)
                .map(|k| KeyHash {
                    key: k.clone(),
                    hash: Hash64(7),
                })
                .collect(),
        })
        .collect()
}

/// What an answer carried, once checked: every message encodes within the
/// limit, exactly the last one is marked `last`, and wanted keys travel
/// only in the last one.
#[derive(Debug)]
struct Answer {
    messages: usize,
    keys: Vec<String>,
    wanted: Vec<String>,
}

fn check(maps: &Maps, kind: WireMapKind, own: &[String], codec: &Codec) -> Answer {
    let answer = leaves(
        maps,
        &AllowAll,
        &Principal::anonymous(),
        "m".to_owned(),
        kind,
        request(maps, own),
        codec,
    );
    let n = answer.len();
    assert!(n > 0, "an answer has at least one message");
    let mut keys = Vec::new();
    let mut wanted = Vec::new();
    for (i, msg) in answer.into_iter().enumerate() {
        let len = codec
            .encode_server(&msg)
            .unwrap_or_else(|e| panic!("message {i} of {n} does not encode: {e}"))
            .len();
        assert!(len <= codec.max_message_bytes());
        let ServerMessage::SyncRespLeaf {
            map,
            records,
            wanted_keys,
            last,
        } = msg
        else {
            panic!("message {i}: not SYNC_RESP_LEAF: {msg:?}")
        };
        assert_eq!(map, "m");
        assert_eq!(records.kind(), kind);
        assert_eq!(last, i + 1 == n, "message {i} of {n}: last = {last}");
        if !last {
            assert!(
                wanted_keys.is_empty(),
                "wanted keys before the last message"
            );
        }
        match records {
            LeafRecords::Lww(r) => keys.extend(r.into_iter().map(|r| r.key)),
            LeafRecords::Or(e) => keys.extend(e.into_iter().map(|e| e.key)),
        }
        wanted.extend(wanted_keys);
    }
    Answer {
        messages: n,
        keys,
        wanted,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn codecs(max: usize) -> [Codec; 2] {
    [Encoding::Bincode, Encoding::Json].map(|e| Codec::new(e).with_max_message_bytes(max))
}

#[test]
fn a_large_answer_is_split_and_every_message_fits() {
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i:03}")).collect();
    let big = Value::from("x".repeat(1000));
    let maps = lww_server(keys.clone(), &big);
    let own: Vec<String> = (0..20).map(|i| format!("mine-{i}")).collect();
    for codec in codecs(16 * 1024) {
        let answer = check(&maps, WireMapKind::Lww, &own, &codec);
        // About 300 KB of records in 16 KiB messages.
        assert!(answer.messages >= 19, "{:?}: {answer:?}", codec.encoding());
        assert_eq!(sorted(answer.keys), keys, "every record exactly once");
        assert_eq!(sorted(answer.wanted), sorted(own.clone()));
    }
}

#[test]
fn escaped_json_and_wide_numbers_still_fit() {
    // What a size estimate gets wrong: a control character is one byte in
    // memory and six (`\u0001`) in JSON; an integer is eight bytes in
    // memory and up to twenty digits in JSON.
    let nasty = Value::Array(vec![
        Value::from("\u{1}".repeat(300)),
        Value::Array(vec![Value::Int(i64::MIN); 100]),
        Value::Array(vec![Value::Float(-1.234_567_890_123_456_7e-300); 50]),
    ]);
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let maps = lww_server(keys.clone(), &nasty);
    for codec in codecs(8 * 1024) {
        let answer = check(&maps, WireMapKind::Lww, &[], &codec);
        assert!(answer.messages > 1);
        assert_eq!(sorted(answer.keys), sorted(keys.clone()));
        assert!(answer.wanted.is_empty());
    }
}

#[test]
fn an_empty_answer_is_one_last_message() {
    let maps = lww_server(Vec::new(), &Value::Null);
    for codec in codecs(1024) {
        let answer = check(&maps, WireMapKind::Lww, &[], &codec);
        assert_eq!(answer.messages, 1);
        assert!(answer.keys.is_empty() && answer.wanted.is_empty());
    }
    // A map the server does not have: it wants everything the client has.
    let own = vec!["a".to_owned(), "b".to_owned()];
    let answer = check(&Maps::default(), WireMapKind::Or, &own, &codecs(1024)[0]);
    assert_eq!(answer.messages, 1);
    assert_eq!(sorted(answer.wanted), own);
}

#[test]
fn wanted_keys_that_do_not_fit_beside_the_records_get_the_last_message() {
    // One record that fills most of a message, and wanted keys that need
    // the rest and more.
    let codec = Codec::new(Encoding::Bincode).with_max_message_bytes(4096);
    let maps = lww_server(["r".to_owned()], &Value::from("x".repeat(3000)));
    let own: Vec<String> = (0..100).map(|i| format!("wanted-{i:03}")).collect();
    let answer = check(&maps, WireMapKind::Lww, &own, &codec);
    assert_eq!(answer.messages, 2);
    assert_eq!(answer.keys, ["r"]);
    assert_eq!(sorted(answer.wanted), own);
    // With few wanted keys, one message carries both.
    let answer = check(&maps, WireMapKind::Lww, &own[..3], &codec);
    assert_eq!(answer.messages, 1);
}

#[test]
fn or_answers_are_split_too() {
    let maps = Maps::default();
    let handle = maps.get_or_create("m", MapKind::Or).unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("set-{i}")).collect();
    if let MapData::Or(m) = &mut *lock(&handle) {
        for (i, key) in keys.iter().enumerate() {
            for j in 0..10 {
                m.add(
                    key,
                    OrItem {
                        value: Value::from("y".repeat(100)),
                        tag: Timestamp::new(10 + j, i as u32, NodeId(1)),
                        ttl_ms: None,
                    },
                );
            }
        }
    }
    for codec in codecs(8 * 1024) {
        let answer = check(&maps, WireMapKind::Or, &[], &codec);
        assert!(answer.messages > 1);
        assert_eq!(sorted(answer.keys), sorted(keys.clone()));
    }
}

#[test]
fn a_record_larger_than_any_message_is_left_out() {
    let codec = Codec::new(Encoding::Bincode).with_max_message_bytes(1024);
    let maps = lww_server(["small".to_owned()], &Value::from("ok"));
    let handle = maps.get("m").unwrap();
    if let MapData::Lww(m) = &mut *lock(&handle) {
        m.merge("huge", LwwRecord::put(Value::from("z".repeat(2000)), t(10)));
    }
    let answer = check(&maps, WireMapKind::Lww, &[], &codec);
    assert_eq!(answer.messages, 1);
    assert_eq!(answer.keys, ["small"]);
}

#[test]
fn refusals_name_the_exchange_they_refuse() {
    let maps = lww_server(["a".to_owned()], &Value::Null);
    let (policy, principal) = (AllowAll, Principal::anonymous());
    let codec = Codec::new(Encoding::Bincode);
    let context = |map: &str, kind| {
        Some(ErrorContext::Sync {
            map: map.to_owned(),
            kind,
        })
    };
    let leaf = WireMerklePath { level: 3, index: 0 };
    let cases: Vec<(Vec<ServerMessage>, ErrorCode, &str, WireMapKind)> = vec![
        (
            init(&maps, &policy, &principal, "m".into(), WireMapKind::Or),
            ErrorCode::InvalidSyncRequest,
            "m",
            WireMapKind::Or,
        ),
        (
            init(&maps, &policy, &principal, "$x".into(), WireMapKind::Lww),
            ErrorCode::Forbidden,
            "$x",
            WireMapKind::Lww,
        ),
        (
            buckets(
                &maps,
                &policy,
                &principal,
                "m".into(),
                WireMapKind::Lww,
                vec![leaf],
            ),
            ErrorCode::InvalidSyncRequest,
            "m",
            WireMapKind::Lww,
        ),
        (
            leaves(
                &maps,
                &policy,
                &principal,
                "m".into(),
                WireMapKind::Lww,
                vec![WireLeafDigest::default()],
                &codec,
            ),
            ErrorCode::InvalidSyncRequest,
            "m",
            WireMapKind::Lww,
        ),
    ];
    for (answer, code, map, kind) in cases {
        assert_eq!(answer.len(), 1, "{answer:?}");
        match &answer[0] {
            ServerMessage::Error {
                code: c,
                context: ctx,
                ..
            } => {
                assert_eq!(*c, code, "{map}");
                assert_eq!(*ctx, context(map, kind), "{map}");
            }
            other => panic!("expected ERROR, got {other:?}"),
        }
    }
}
