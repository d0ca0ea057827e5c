//! Malformed input -> typed error, as a table.

use topgun_protocol::*;

use crate::round_trip::put;
use crate::samples::{client_samples, server_samples};

const BIN: Codec = Codec::new(Encoding::Bincode);
const JSON: Codec = Codec::new(Encoding::Json);

#[derive(Clone, Copy, Debug)]
enum Dir {
    Client,
    Server,
}

/// A stable one-line shape of an error (details left out), for table
/// assertions.
pub fn shape(e: &DecodeError) -> String {
    match e {
        DecodeError::TooLarge { .. } => "TooLarge".into(),
        DecodeError::Truncated => "Truncated".into(),
        DecodeError::LimitExceeded => "LimitExceeded".into(),
        DecodeError::UnknownVariant { .. } => "UnknownVariant".into(),
        DecodeError::TooDeep { nesting, max } => format!("TooDeep({nesting:?},{max})"),
        DecodeError::InvalidUtf8 => "InvalidUtf8".into(),
        DecodeError::NonFiniteFloat => "NonFiniteFloat".into(),
        DecodeError::TrailingBytes => "TrailingBytes".into(),
        DecodeError::Malformed { kind, .. } => format!("Malformed({kind:?})"),
        other => format!("{other:?}"),
    }
}

/// Decodes `frame` as a message of `dir` and returns the error's shape, or
/// "Ok".
fn outcome(codec: Codec, dir: Dir, frame: &[u8]) -> String {
    let result = match dir {
        Dir::Client => codec.decode_client(frame).map(|_| ()),
        Dir::Server => codec.decode_server(frame).map(|_| ()),
    };
    match result {
        Ok(()) => "Ok".into(),
        Err(e) => {
            if let DecodeError::Malformed { detail, .. } | DecodeError::UnknownVariant { detail } =
                &e
            {
                assert!(
                    detail.len() <= MAX_DETAIL_LEN + 4,
                    "detail too long: {detail}"
                );
            }
            shape(&e)
        }
    }
}

/// The bincode bytes of a CLIENT_OP putting a value given as raw bytes.
fn bin_put(value: &[u8]) -> Vec<u8> {
    let mut frame = BIN
        .encode(&ClientMessage::ClientOp {
            op: put(WireValue::Null),
        })
        .unwrap();
    // The encoding ends with the value (Null = 0) and ttl_ms (None = 0).
    assert!(frame.ends_with(&[0, 0]));
    frame.truncate(frame.len() - 2);
    frame.extend_from_slice(value);
    frame.push(0);
    frame
}

/// The JSON text of a CLIENT_OP putting a value given as JSON text.
fn json_put(value: &str) -> Vec<u8> {
    format!(
        r#"{{"CLIENT_OP":{{"op":{{"op_id":1,"map":"m","key":"k","timestamp":{{"millis":0,"counter":0,"node":"0000000000000000"}},"kind":{{"Put":{{"value":{value},"ttl_ms":null}}}}}}}}}}"#
    )
    .into_bytes()
}

/// The bincode bytes of a QUERY_SUB whose filter is given as raw bytes.
fn bin_query(filter: &[u8]) -> Vec<u8> {
    let mut frame = vec![3, 1, 1, b'm', 1];
    frame.extend_from_slice(filter);
    frame.extend_from_slice(&[0, 0]);
    frame
}

fn json_query(filter: &str) -> Vec<u8> {
    format!(r#"{{"QUERY_SUB":{{"query_id":1,"map":"m","query":{{"filter":{filter}}}}}}}"#)
        .into_bytes()
}

/// `n` levels of JSON arrays around `1`.
fn json_nested_arrays(n: usize) -> String {
    format!("{}1{}", "[".repeat(n), "]".repeat(n))
}

/// `n` levels of bincode arrays (`Array` tag 5, length 1) around `Int 1`.
fn bin_nested_arrays(n: usize) -> Vec<u8> {
    let mut v = [5u8, 1].repeat(n);
    v.extend_from_slice(&[2, 2]); // Int(1): zigzag varint 2
    v
}

/// A filter `n` deep: `Not` (variant 6) around `Exists { field: "f" }`.
fn bin_nested_filter(n: usize) -> Vec<u8> {
    let mut v = vec![6u8; n - 1];
    v.extend_from_slice(&[2, 1, b'f']);
    v
}

fn json_nested_filter(n: usize) -> String {
    format!(
        "{}{}{}",
        r#"{"Not":"#.repeat(n - 1),
        r#"{"Exists":{"field":"f"}}"#,
        "}".repeat(n - 1)
    )
}

const TS: &str = r#"{"millis":0,"counter":0,"node":"0000000000000000"}"#;

/// A JSON CLIENT_OP removing a key, with the op id field and the timestamp
/// given as JSON text.
fn json_op_raw(op_id_field: &str, timestamp: &str) -> Vec<u8> {
    format!(
        r#"{{"CLIENT_OP":{{"op":{{{op_id_field},"map":"m","key":"k","timestamp":{timestamp},"kind":"Remove"}}}}}}"#
    )
    .into_bytes()
}

fn json_op(timestamp: &str) -> Vec<u8> {
    json_op_raw(r#""op_id":1"#, timestamp)
}

fn le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

#[test]
fn malformed_inputs_give_typed_errors() {
    let mut hostile_string = vec![0u8, 253];
    hostile_string.extend_from_slice(&le(1 << 40));
    hostile_string.push(1);
    let mut hostile_batch = vec![2u8, 253];
    hostile_batch.extend_from_slice(&le(1 << 40));
    hostile_batch.push(1);
    let mut hostile_max = vec![0u8, 253];
    hostile_max.extend_from_slice(&le(u64::MAX));
    let mut nan = vec![3u8];
    nan.extend_from_slice(&f64::NAN.to_le_bytes());
    let mut inf = vec![3u8];
    inf.extend_from_slice(&f64::NEG_INFINITY.to_le_bytes());
    let mut ping_trailing = BIN.encode(&ClientMessage::Ping { nonce: 1 }).unwrap();
    ping_trailing.push(0);

    #[rustfmt::skip]
    let cases: Vec<(&str, Codec, Dir, Vec<u8>, &str)> = vec![
        // Framing.
        ("empty bincode", BIN, Dir::Client, vec![], "Truncated"),
        ("empty json", JSON, Dir::Client, vec![], "Truncated"),
        ("oversized", BIN.with_max_message_bytes(4), Dir::Client, vec![8, 1, 0, 0, 0], "TooLarge"),
        ("oversized json", JSON.with_max_message_bytes(4), Dir::Server, b"{\"PING\":{\"nonce\":1}}".to_vec(), "TooLarge"),
        ("trailing byte", BIN, Dir::Client, ping_trailing, "TrailingBytes"),
        ("trailing json", JSON, Dir::Client, b"{\"PING\":{\"nonce\":1}}x".to_vec(), "TrailingBytes"),
        ("trailing json message", JSON, Dir::Client, b"{\"PING\":{\"nonce\":1}}{\"PING\":{\"nonce\":1}}".to_vec(), "TrailingBytes"),
        ("json whitespace is fine", JSON, Dir::Client, b" {\"PING\":{\"nonce\":1}} \n".to_vec(), "Ok"),
        ("json syntax", JSON, Dir::Client, b"{\"PING\":{\"nonce\":1,}}".to_vec(), "Malformed(Syntax)"),
        ("json not an object", JSON, Dir::Client, b"[\"PING\",{\"nonce\":1}]".to_vec(), "Malformed(Syntax)"),
        ("json two tags", JSON, Dir::Client, b"{\"PING\":{\"nonce\":1},\"PONG\":{\"nonce\":1}}".to_vec(), "Malformed(Syntax)"),
        // Hostile lengths: an 11-byte frame claiming 2^40 bytes or elements.
        ("string of 2^40 bytes", BIN, Dir::Client, hostile_string, "LimitExceeded"),
        ("batch of 2^40 ops", BIN, Dir::Client, hostile_batch, "Truncated"),
        ("length u64::MAX", BIN, Dir::Client, hostile_max, "LimitExceeded"),
        ("length as u128", BIN, Dir::Client, vec![0, 254, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "Malformed(IntegerOutOfRange)"),
        ("value array of 2^40", BIN, Dir::Client, bin_put(&[5, 253, 0, 0, 0, 0, 0, 1, 0, 0]), "Truncated"),
        // Unknown tags.
        ("unknown client message", BIN, Dir::Client, vec![10, 0], "UnknownVariant"),
        ("unknown server message", BIN, Dir::Server, vec![13, 0], "UnknownVariant"),
        ("huge variant index", BIN, Dir::Client, vec![252, 255, 255, 255, 255], "UnknownVariant"),
        ("unknown value tag", BIN, Dir::Client, bin_put(&[7]), "UnknownVariant"),
        ("unknown op kind", BIN, Dir::Client, vec![1, 1, 1, b'm', 1, b'k', 0, 0, 0, 4], "UnknownVariant"),
        ("bad option tag", BIN, Dir::Server, vec![1, 1, 1, b'a', 2, 5], "UnknownVariant"),
        ("unknown json message", JSON, Dir::Client, b"{\"NOPE\":{}}".to_vec(), "UnknownVariant"),
        ("server message to server", JSON, Dir::Client, b"{\"AUTH_ACK\":{\"protocol_version\":1,\"sub\":\"a\",\"session_expires_at_ms\":null}}".to_vec(), "UnknownVariant"),
        ("lowercase json tag", JSON, Dir::Client, b"{\"ping\":{\"nonce\":1}}".to_vec(), "UnknownVariant"),
        ("unknown json code", JSON, Dir::Server, b"{\"ERROR\":{\"code\":\"Teapot\",\"message\":\"\"}}".to_vec(), "UnknownVariant"),
        // Strings.
        ("non-UTF-8 bincode string", BIN, Dir::Client, vec![0, 2, 0xff, 0xfe, 1], "InvalidUtf8"),
        ("non-UTF-8 json string", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"\xff\xfe\",\"protocol_version\":1}}".to_vec(), "InvalidUtf8"),
        ("lone surrogate", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"\\ud800\",\"protocol_version\":1}}".to_vec(), "InvalidUtf8"),
        ("non-UTF-8 outside strings", JSON, Dir::Client, b"\xff{\"PING\":{\"nonce\":1}}".to_vec(), "Malformed(Syntax)"),
        // Floats.
        ("NaN", BIN, Dir::Client, bin_put(&nan), "NonFiniteFloat"),
        ("-inf", BIN, Dir::Client, bin_put(&inf), "NonFiniteFloat"),
        ("json overflow to inf", JSON, Dir::Client, json_put("-1e999"), "NonFiniteFloat"),
        ("json NaN token", JSON, Dir::Client, json_put("NaN"), "Malformed(Syntax)"),
        // Integers.
        ("json int beyond i64", JSON, Dir::Client, json_put("9223372036854775808"), "Malformed(IntegerOutOfRange)"),
        ("u16 as u32 varint", BIN, Dir::Client, vec![0, 0, 252, 0, 0, 1, 0], "Malformed(IntegerOutOfRange)"),
        ("json u16 overflow", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"t\",\"protocol_version\":70000}}".to_vec(), "Malformed(InvalidValue)"),
        ("json negative u64", JSON, Dir::Client, b"{\"PING\":{\"nonce\":-1}}".to_vec(), "Malformed(InvalidValue)"),
        // Nesting: 10,000 deep in both encodings, and one past the limit.
        ("value 10k deep", BIN, Dir::Client, bin_put(&bin_nested_arrays(10_000)), "TooDeep(Value,64)"),
        ("value 10k deep json", JSON, Dir::Client, json_put(&json_nested_arrays(10_000)), "TooDeep(Value,64)"),
        ("value 65 deep", BIN, Dir::Client, bin_put(&bin_nested_arrays(65)), "TooDeep(Value,64)"),
        ("value 65 deep json", JSON, Dir::Client, json_put(&json_nested_arrays(65)), "TooDeep(Value,64)"),
        ("value 64 deep", BIN, Dir::Client, bin_put(&bin_nested_arrays(64)), "Ok"),
        ("value 64 deep json", JSON, Dir::Client, json_put(&json_nested_arrays(64)), "Ok"),
        ("empty array 65 deep json", JSON, Dir::Client, json_put(&format!("{}{}", "[".repeat(65), "]".repeat(65))), "TooDeep(Value,64)"),
        ("map 10k deep json", JSON, Dir::Client, json_put(&format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))), "TooDeep(Value,64)"),
        ("filter 10k deep", BIN, Dir::Client, bin_query(&bin_nested_filter(10_000)), "TooDeep(Filter,32)"),
        ("filter 10k deep json", JSON, Dir::Client, json_query(&json_nested_filter(10_000)), "TooDeep(Filter,32)"),
        ("filter 33 deep", BIN, Dir::Client, bin_query(&bin_nested_filter(33)), "TooDeep(Filter,32)"),
        ("filter 33 deep json", JSON, Dir::Client, json_query(&json_nested_filter(33)), "TooDeep(Filter,32)"),
        ("filter 32 deep", BIN, Dir::Client, bin_query(&bin_nested_filter(32)), "Ok"),
        ("filter 32 deep json", JSON, Dir::Client, json_query(&json_nested_filter(32)), "Ok"),
        ("unclosed brackets json", JSON, Dir::Client, json_put(&"[".repeat(100_000)), "TooDeep(Value,64)"),
        // Type confusion (the `exp`-as-string trap): a string where an
        // integer belongs, and the reverse.
        ("string op_id", JSON, Dir::Client, json_op_raw(r#""op_id":"1""#, TS), "Malformed(InvalidType)"),
        ("string millis", JSON, Dir::Client, json_op(r#"{"millis":"0","counter":0,"node":"0000000000000000"}"#), "Malformed(InvalidType)"),
        ("string version", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"t\",\"protocol_version\":\"1\"}}".to_vec(), "Malformed(InvalidType)"),
        ("number token", JSON, Dir::Client, b"{\"AUTH\":{\"token\":1,\"protocol_version\":1}}".to_vec(), "Malformed(InvalidType)"),
        ("number node id", JSON, Dir::Client, json_op(r#"{"millis":0,"counter":0,"node":0}"#), "Malformed(InvalidType)"),
        ("bool as string", JSON, Dir::Client, b"{\"QUERY_SUB\":{\"query_id\":1,\"map\":\"m\",\"query\":{\"sort\":[{\"field\":\"f\",\"descending\":\"true\"}]}}}".to_vec(), "Malformed(InvalidType)"),
        ("bad bool byte", BIN, Dir::Client, vec![3, 1, 1, b'm', 0, 1, 1, b'f', 2, 0], "Malformed(InvalidBool)"),
        // Hex ids and hashes.
        ("uppercase node id", JSON, Dir::Client, json_op(r#"{"millis":0,"counter":0,"node":"00000000000000AB"}"#), "Malformed(InvalidHex)"),
        ("17-digit node id", JSON, Dir::Client, json_op(r#"{"millis":0,"counter":0,"node":"00000000000000000"}"#), "Malformed(InvalidHex)"),
        ("short hash", JSON, Dir::Client, b"{\"SYNC_INIT\":{\"map\":\"m\",\"kind\":\"Lww\",\"root\":\"abc\"}}".to_vec(), "Malformed(InvalidHex)"),
        ("uppercase hash", JSON, Dir::Client, b"{\"SYNC_INIT\":{\"map\":\"m\",\"kind\":\"Lww\",\"root\":\"00000000000000AB\"}}".to_vec(), "Malformed(InvalidHex)"),
        ("hash as number", JSON, Dir::Client, b"{\"SYNC_INIT\":{\"map\":\"m\",\"kind\":\"Lww\",\"root\":171}}".to_vec(), "Malformed(InvalidType)"),
        ("15 child hashes", JSON, Dir::Server, format!(r#"{{"SYNC_RESP_BUCKETS":{{"map":"m","kind":"Lww","buckets":[{{"path":{{"level":0,"index":0}},"children":[{}]}}]}}}}"#, vec!["\"0000000000000000\""; 15].join(",")).into_bytes(), "Malformed(InvalidLength)"),
        ("17 child hashes", JSON, Dir::Server, format!(r#"{{"SYNC_RESP_BUCKETS":{{"map":"m","kind":"Lww","buckets":[{{"path":{{"level":0,"index":0}},"children":[{}]}}]}}}}"#, vec!["\"0000000000000000\""; 17].join(",")).into_bytes(), "Malformed(InvalidLength)"),
        // Fields.
        ("well-formed op", JSON, Dir::Client, json_op(TS), "Ok"),
        ("missing field", JSON, Dir::Client, b"{\"AUTH\":{\"protocol_version\":1}}".to_vec(), "Malformed(MissingField)"),
        ("duplicate field", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"a\",\"token\":\"b\",\"protocol_version\":1}}".to_vec(), "Malformed(DuplicateField)"),
        ("duplicate value key", JSON, Dir::Client, json_put(r#"{"a":1,"a":1}"#), "Malformed(DuplicateKey)"),
        ("duplicate value key bincode", BIN, Dir::Client, bin_put(&[6, 2, 1, b'a', 0, 1, b'a', 0]), "Malformed(DuplicateKey)"),
        ("unknown field in auth", JSON, Dir::Client, b"{\"AUTH\":{\"token\":\"a\",\"protocol_version\":1,\"origin\":\"System\"}}".to_vec(), "Malformed(UnknownField)"),
        ("unknown field in a server message", JSON, Dir::Server, b"{\"PONG\":{\"nonce\":1,\"extra\":true}}".to_vec(), "Malformed(UnknownField)"),
        // SYNC_RESP_LEAF must say whether more parts follow.
        ("leaf answer without last", JSON, Dir::Server, br#"{"SYNC_RESP_LEAF":{"map":"m","records":{"Lww":[]},"wanted_keys":[]}}"#.to_vec(), "Malformed(MissingField)"),
        ("leaf answer with last", JSON, Dir::Server, br#"{"SYNC_RESP_LEAF":{"map":"m","records":{"Lww":[]},"wanted_keys":[],"last":false}}"#.to_vec(), "Ok"),
        ("leaf answer, last byte 2", BIN, Dir::Server, vec![9, 1, b'm', 0, 0, 0, 2], "Malformed(InvalidBool)"),
        ("leaf answer cut before last", BIN, Dir::Server, vec![9, 1, b'm', 0, 0, 0], "Truncated"),
        // ERROR's context: optional in JSON, always present in bincode.
        ("error without context", JSON, Dir::Server, br#"{"ERROR":{"code":"Internal","message":""}}"#.to_vec(), "Ok"),
        ("error with null context", JSON, Dir::Server, br#"{"ERROR":{"code":"Internal","message":"","context":null}}"#.to_vec(), "Ok"),
        ("error with query context", JSON, Dir::Server, br#"{"ERROR":{"code":"UnknownQuery","message":"","context":{"Query":{"query_id":3}}}}"#.to_vec(), "Ok"),
        ("error with unknown context", JSON, Dir::Server, br#"{"ERROR":{"code":"Internal","message":"","context":{"Op":{"op_id":3}}}}"#.to_vec(), "UnknownVariant"),
        ("error context with extra field", JSON, Dir::Server, br#"{"ERROR":{"code":"Internal","message":"","context":{"Query":{"query_id":3,"map":"m"}}}}"#.to_vec(), "Malformed(UnknownField)"),
        ("bincode error without context byte", BIN, Dir::Server, vec![12, 10, 0], "Truncated"),
        ("bincode error, context tag 2", BIN, Dir::Server, vec![12, 10, 0, 2], "UnknownVariant"),
        ("bincode error, unknown context", BIN, Dir::Server, vec![12, 10, 0, 1, 2, 0], "UnknownVariant"),
    ];
    let mut failures = Vec::new();
    for (name, codec, dir, frame, expected) in &cases {
        let got = outcome(*codec, *dir, frame);
        if got != *expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// No client message has a field that can express a caller origin: an
/// `origin` anywhere in a client message is an unknown field, and the
/// serialized op has exactly the documented fields.
#[test]
fn no_field_can_express_an_origin() {
    let op = |extra: &str| {
        format!(r#"{{"op_id":1,"map":"m","key":"k","timestamp":{TS},"kind":"Remove"{extra}}}"#)
    };
    let frames = [
        format!(
            r#"{{"CLIENT_OP":{{"op":{}}}}}"#,
            op(r#","origin":"System""#)
        ),
        format!(
            r#"{{"CLIENT_OP":{{"op":{},"origin":"Forwarded"}}}}"#,
            op("")
        ),
        format!(
            r#"{{"OP_BATCH":{{"ops":[{}],"write_concern":"Durable"}}}}"#,
            op(r#","origin":"Backup""#)
        ),
        format!(r#"{{"OP_BATCH":{{"ops":[{}],"origin":"Wan"}}}}"#, op("")),
        format!(
            r#"{{"CLIENT_OP":{{"op":{}}}}}"#,
            op(r#","caller_origin":"System""#)
        ),
    ];
    for frame in &frames {
        assert_eq!(
            outcome(JSON, Dir::Client, frame.as_bytes()),
            "Malformed(UnknownField)",
            "{frame}"
        );
    }
    // The same frames without the extra field decode.
    let ok = format!(r#"{{"CLIENT_OP":{{"op":{}}}}}"#, op(""));
    assert_eq!(outcome(JSON, Dir::Client, ok.as_bytes()), "Ok");

    let encoded = JSON
        .encode(&ClientMessage::ClientOp {
            op: put(WireValue::Null),
        })
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
    let fields: Vec<&str> = json["CLIENT_OP"]["op"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["key", "kind", "map", "op_id", "timestamp"]);
}

/// Every strict prefix of every sample frame is `Truncated`, in both
/// encodings and both directions.
#[test]
fn every_prefix_of_a_frame_is_truncated() {
    let mut failures = Vec::new();
    let mut check = |name: &str, codec: Codec, dir: Dir, frame: &[u8]| {
        for cut in 0..frame.len() {
            let got = outcome(codec, dir, &frame[..cut]);
            if got != "Truncated" {
                failures.push(format!("{name} {:?} cut at {cut}: {got}", codec.encoding()));
            }
        }
    };
    for (name, msg) in client_samples() {
        check(name, BIN, Dir::Client, &BIN.encode(&msg).unwrap());
        check(name, JSON, Dir::Client, &JSON.encode(&msg).unwrap());
    }
    for (name, msg) in server_samples() {
        check(name, BIN, Dir::Server, &BIN.encode(&msg).unwrap());
        check(name, JSON, Dir::Server, &JSON.encode(&msg).unwrap());
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The claim bound behind the bincode limit tiers: a frame right at a tier
/// boundary made of the densest claims (one-byte varints decoded as `u64`)
/// still decodes under that tier's limit.
#[test]
fn claim_dense_frames_decode_at_the_tier_boundary() {
    // OP_ACK entries of small numbers: every byte but the lengths is a
    // one-byte varint claiming 4 or 8 bytes.
    let (max_len, _) = BINCODE_LIMIT_TIERS[0];
    let entry = OpAckEntry {
        op_id: 0,
        timestamp: WireTimestamp::default(),
    };
    let mut n = 1;
    let frame = loop {
        let msg = ServerMessage::OpAck {
            acks: vec![entry; n + 1],
        };
        let frame = BIN.encode(&msg).unwrap();
        if frame.len() > max_len {
            break BIN
                .encode(&ServerMessage::OpAck {
                    acks: vec![entry; n],
                })
                .unwrap();
        }
        n += 1;
    };
    assert!(frame.len() > max_len - 8 && frame.len() <= max_len);
    assert_eq!(outcome(BIN, Dir::Server, &frame), "Ok");
    // And buckets of zero hashes: one byte each, claiming eight.
    let buckets = vec![
        BucketHashes {
            path: WireMerklePath::default(),
            children: [Hash64(0); 16],
        };
        (max_len - 16) / 18
    ];
    let frame = BIN
        .encode(&ServerMessage::SyncRespBuckets {
            map: String::new(),
            kind: WireMapKind::Lww,
            buckets,
        })
        .unwrap();
    assert!(frame.len() <= max_len, "{}", frame.len());
    assert_eq!(outcome(BIN, Dir::Server, &frame), "Ok");
}
