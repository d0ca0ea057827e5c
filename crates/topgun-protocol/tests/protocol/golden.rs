//! Golden fixtures: the exact bytes of a fixed sample of every message, in
//! both encodings. An accidental change to the wire format fails here; a
//! deliberate one is re-blessed with `TOPGUN_BLESS=1` (and needs a protocol
//! version bump).

use std::path::PathBuf;

use topgun_protocol::*;

use crate::samples::{client_samples, server_samples};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("TOPGUN_BLESS").is_some_and(|v| v == "1")
}

/// Compares (or, when blessing, writes) one fixture and decodes it back.
fn check<M: Message + PartialEq + std::fmt::Debug>(
    name: &str,
    msg: &M,
    failures: &mut Vec<String>,
) {
    for (codec, ext) in [
        (Codec::new(Encoding::Bincode), "bin"),
        (Codec::new(Encoding::Json), "json"),
    ] {
        let path = golden_dir().join(format!("{name}.{ext}"));
        let encoded = codec.encode(msg).unwrap();
        if bless() {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &encoded).unwrap();
        }
        let stored = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!("{}: {e} (run with TOPGUN_BLESS=1)", path.display()));
                continue;
            }
        };
        if stored != encoded {
            failures.push(format!(
                "{}: encoding changed\n  stored:  {}\n  encoded: {}",
                path.display(),
                show(&stored, ext),
                show(&encoded, ext)
            ));
        }
        match codec.decode::<M>(&stored) {
            Ok(back) if &back == msg => {}
            Ok(back) => failures.push(format!("{}: decodes to {back:?}", path.display())),
            Err(e) => failures.push(format!("{}: does not decode: {e}", path.display())),
        }
    }
}

/// One stored record of each kind, taken from the server samples.
fn stored_samples() -> Vec<(&'static str, StoredRecord)> {
    let mut out = Vec::new();
    for (_, msg) in server_samples() {
        if let ServerMessage::SyncRespLeaf { records, .. } = msg {
            match records {
                LeafRecords::Lww(mut r) => {
                    out.push(("stored_lww", StoredRecord::Lww(r.remove(0).record)))
                }
                LeafRecords::Or(mut e) => {
                    out.push(("stored_or", StoredRecord::Or(e.remove(0).entry)))
                }
            }
        }
    }
    assert_eq!(out.len(), 2);
    out
}

fn show(bytes: &[u8], ext: &str) -> String {
    if ext == "json" {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[test]
fn golden_fixtures_match() {
    let mut failures = Vec::new();
    let mut names = Vec::new();
    for (name, msg) in client_samples() {
        let name = format!("client_{name}");
        check(&name, &msg, &mut failures);
        names.push(name);
    }
    for (name, msg) in server_samples() {
        let name = format!("server_{name}");
        check(&name, &msg, &mut failures);
        names.push(name);
    }
    // The stored format: what a server wrote to disk must stay readable, so
    // an accidental change fails here like a wire change.
    for (name, record) in stored_samples() {
        let path = golden_dir().join(format!("{name}.bin"));
        let encoded = encode_stored(&record).unwrap();
        if bless() {
            std::fs::write(&path, &encoded).unwrap();
        }
        match std::fs::read(&path) {
            Ok(stored) if stored != encoded => failures.push(format!(
                "{}: stored format changed\n  stored:  {}\n  encoded: {}",
                path.display(),
                show(&stored, "bin"),
                show(&encoded, "bin")
            )),
            Ok(stored) => {
                if decode_stored(&stored).as_ref() != Ok(&record) {
                    failures.push(format!("{}: does not decode back", path.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e} (run with TOPGUN_BLESS=1)", path.display())),
        }
        names.push(name.to_owned());
    }
    // No stale fixture lingers after a sample is renamed or removed.
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !names.contains(&stem) {
            failures.push(format!("{}: no sample of that name", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A few layouts spelled out byte by byte, as docs/protocol.md describes
/// them, so the description is checked too.
#[test]
fn bincode_layout_matches_the_docs() {
    let bin = Codec::new(Encoding::Bincode);
    // PING is client variant 8; the nonce 300 is a varint: 251 (u16
    // marker) then 300 little endian.
    assert_eq!(
        bin.encode(&ClientMessage::Ping { nonce: 300 }).unwrap(),
        [8, 251, 0x2c, 0x01]
    );
    // AUTH (variant 0): string = varint length + UTF-8; u16 version varint.
    assert_eq!(
        bin.encode(&ClientMessage::Auth {
            token: "ab".into(),
            protocol_version: 1
        })
        .unwrap(),
        [0, 2, b'a', b'b', 1]
    );
    // A value: variant index then payload; floats are 8 bytes little endian.
    let frame = bin
        .encode(&ClientMessage::ClientOp {
            op: crate::round_trip::put(WireValue::Array(vec![
                WireValue::Null,
                WireValue::Float(1.5),
            ])),
        })
        .unwrap();
    let value_and_ttl = [
        5, 2, // Array of 2
        0, // Null
        3, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, // Float 1.5
        0,    // ttl_ms: None
    ];
    assert!(frame.ends_with(&value_and_ttl), "{frame:02x?}");
    // The op: variant 1 (CLIENT_OP), op_id 1, "m", "k", timestamp 0/0/0,
    // kind Put (0), then the value.
    assert_eq!(frame[..9], [1, 1, 1, b'm', 1, b'k', 0, 0, 0]);
    assert_eq!(frame[9], 0);
    // u64 values >= 2^32 take the u64 marker (253) and 8 bytes.
    let frame = bin
        .encode(&ServerMessage::Pong { nonce: u64::MAX })
        .unwrap();
    assert_eq!(frame, [11, 253, 255, 255, 255, 255, 255, 255, 255, 255]);
    // Option: 0 = None, 1 = Some then the value.
    let frame = bin
        .encode(&ServerMessage::AuthAck {
            protocol_version: 1,
            sub: "a".into(),
            session_expires_at_ms: Some(5),
        })
        .unwrap();
    assert_eq!(frame, [1, 1, 1, b'a', 1, 5]);
    // SYNC_RESP_LEAF (9): map, records (Lww = 0, no elements), no wanted
    // keys, then `last` as one byte.
    for last in [false, true] {
        let frame = bin
            .encode(&ServerMessage::SyncRespLeaf {
                map: "m".into(),
                records: LeafRecords::Lww(vec![]),
                wanted_keys: vec![],
                last,
            })
            .unwrap();
        assert_eq!(frame, [9, 1, b'm', 0, 0, 0, u8::from(last)]);
    }
    // ERROR (12): code, message, then the context option: 0 for none, or 1
    // and the context (Query = 0 with its id, Sync = 1 with map and kind).
    let error = |context| {
        bin.encode(&ServerMessage::Error {
            code: ErrorCode::Forbidden,
            message: "no".into(),
            context,
        })
        .unwrap()
    };
    assert_eq!(error(None), [12, 3, 2, b'n', b'o', 0]);
    assert_eq!(
        error(Some(ErrorContext::Query { query_id: 7 })),
        [12, 3, 2, b'n', b'o', 1, 0, 7]
    );
    assert_eq!(
        error(Some(ErrorContext::Sync {
            map: "m".into(),
            kind: WireMapKind::Or
        })),
        [12, 3, 2, b'n', b'o', 1, 1, 1, b'm', 1]
    );
}

/// The variant indices of the small enums, as tabled in docs/protocol.md
/// (the golden samples pin the others).
#[test]
fn small_enum_indices_match_the_docs() {
    let bin = Codec::new(Encoding::Bincode);
    let record = WireLwwRecord {
        value: RecordValue::Tombstone,
        timestamp: WireTimestamp::default(),
        ttl_ms: None,
    };
    for (i, change) in [ChangeKind::Enter, ChangeKind::Update, ChangeKind::Leave]
        .into_iter()
        .enumerate()
    {
        let frame = bin
            .encode(&ServerMessage::QueryUpdate {
                query_id: 0,
                change,
                key: String::new(),
                record: record.clone(),
            })
            .unwrap();
        // QUERY_UPDATE (6), query_id 0, then the change.
        assert_eq!(frame[..3], [6, 0, i as u8]);
    }
    let ops = [
        WireCmpOp::Eq,
        WireCmpOp::Ne,
        WireCmpOp::Lt,
        WireCmpOp::Lte,
        WireCmpOp::Gt,
        WireCmpOp::Gte,
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let frame = bin
            .encode(&ClientMessage::QuerySub {
                query_id: 0,
                map: String::new(),
                query: WireQuery {
                    filter: Some(WireFilter::Compare {
                        field: String::new(),
                        op,
                        value: WireValue::Null,
                    }),
                    sort: vec![],
                    limit: None,
                },
            })
            .unwrap();
        // QUERY_SUB (3), id 0, map "", Some, Compare (0), field "", op.
        assert_eq!(frame[..7], [3, 0, 0, 1, 0, 0, i as u8]);
    }
    // Ints are zigzag varints.
    for (v, bytes) in [
        (0i64, vec![0u8]),
        (-1, vec![1]),
        (1, vec![2]),
        (-2, vec![3]),
    ] {
        let frame = bin
            .encode(&ClientMessage::ClientOp {
                op: crate::round_trip::put(WireValue::Int(v)),
            })
            .unwrap();
        let mut tail = vec![2u8];
        tail.extend(bytes);
        tail.push(0);
        assert!(frame.ends_with(&tail), "{v}: {frame:?}");
    }
}
