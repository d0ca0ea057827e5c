//! Every message survives encode then decode, in both encodings.

use proptest::prelude::*;
use topgun_protocol::*;

use crate::strategies;

fn codecs() -> [Codec; 2] {
    [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)]
}

fn check<M: Message + PartialEq + std::fmt::Debug>(msg: &M) -> Result<(), TestCaseError> {
    for codec in codecs() {
        let bytes = codec
            .encode(msg)
            .map_err(|e| TestCaseError::fail(format!("{:?}: encode: {e}", codec.encoding())))?;
        let back: M = codec
            .decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{:?}: decode: {e}", codec.encoding())))?;
        prop_assert_eq!(&back, msg, "{:?}", codec.encoding());
        // Encoding is deterministic: the decoded message encodes to the
        // same bytes.
        prop_assert_eq!(codec.encode(&back).unwrap(), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(msg in strategies::client_message()) {
        check(&msg)?;
    }

    #[test]
    fn server_messages_round_trip(msg in strategies::server_message()) {
        check(&msg)?;
    }

    /// Floats keep every bit (except the sign of zero, which `==` ignores
    /// too) through JSON's shortest decimal form.
    #[test]
    fn floats_survive_json_exactly(f in strategies::finite_f64()) {
        let msg = ClientMessage::ClientOp { op: put(WireValue::Float(f)) };
        let json = Codec::new(Encoding::Json);
        let back: ClientMessage = json.decode(&json.encode(&msg).unwrap()).unwrap();
        let ClientMessage::ClientOp { op } = back else { panic!("wrong message") };
        let WireOpKind::Put { value: WireValue::Float(g), .. } = op.kind else {
            panic!("float came back as {:?}", op.kind)
        };
        prop_assert!(g == f && (f == 0.0 || g.to_bits() == f.to_bits()), "{f:e} -> {g:e}");
    }
}

pub fn put(value: WireValue) -> Op {
    Op {
        op_id: 1,
        map: "m".into(),
        key: "k".into(),
        timestamp: WireTimestamp::default(),
        kind: WireOpKind::Put {
            value,
            ttl_ms: None,
        },
    }
}

/// A value exactly `depth` deep (counted like `Value::depth`).
pub fn nested_value(depth: usize) -> WireValue {
    (0..depth).fold(WireValue::Int(1), |v, i| {
        if i % 2 == 0 {
            WireValue::Array(vec![v])
        } else {
            WireValue::Map([("k".to_owned(), v)].into_iter().collect())
        }
    })
}

/// A filter exactly `depth` deep whose innermost leaf compares against
/// `operand`.
pub fn nested_filter(depth: usize, operand: WireValue) -> WireFilter {
    let leaf = WireFilter::Compare {
        field: "f".into(),
        op: WireCmpOp::Eq,
        value: operand,
    };
    (1..depth).fold(leaf, |f, i| {
        if i % 2 == 0 {
            WireFilter::Not(Box::new(f))
        } else {
            WireFilter::And(vec![f])
        }
    })
}

/// The deepest legal message (a value of the maximum depth inside a filter
/// of the maximum depth) round-trips in both encodings on an ordinary test
/// thread, so the depth limits leave room on the stack, and one level more
/// of either is refused on encode.
#[test]
fn the_deepest_legal_message_round_trips() {
    let deepest = ClientMessage::QuerySub {
        query_id: 1,
        map: "m".into(),
        query: WireQuery {
            filter: Some(nested_filter(
                MAX_FILTER_DEPTH,
                nested_value(MAX_VALUE_DEPTH),
            )),
            sort: vec![],
            limit: None,
        },
    };
    check(&deepest).unwrap();
    let op = ClientMessage::ClientOp {
        op: put(nested_value(MAX_VALUE_DEPTH)),
    };
    check(&op).unwrap();
    for codec in codecs() {
        let too_deep_value = ClientMessage::ClientOp {
            op: put(nested_value(MAX_VALUE_DEPTH + 1)),
        };
        assert_eq!(
            codec.encode(&too_deep_value),
            Err(EncodeError::TooDeep {
                nesting: Nesting::Value,
                max: MAX_VALUE_DEPTH
            })
        );
        let too_deep_filter = ClientMessage::QuerySub {
            query_id: 1,
            map: "m".into(),
            query: WireQuery {
                filter: Some(nested_filter(MAX_FILTER_DEPTH + 1, WireValue::Null)),
                sort: vec![],
                limit: None,
            },
        };
        assert_eq!(
            codec.encode(&too_deep_filter),
            Err(EncodeError::TooDeep {
                nesting: Nesting::Filter,
                max: MAX_FILTER_DEPTH
            })
        );
        // The guards leave no residue: a legal message still encodes.
        assert!(codec.encode(&op).is_ok());
    }
}

#[test]
fn non_finite_floats_are_refused_on_encode() {
    for codec in codecs() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let msg = ClientMessage::ClientOp {
                op: put(WireValue::Array(vec![WireValue::Float(f)])),
            };
            assert_eq!(codec.encode(&msg), Err(EncodeError::NonFiniteFloat));
        }
    }
}

#[test]
fn encode_refuses_messages_over_the_limit() {
    let msg = ClientMessage::ClientOp {
        op: put(WireValue::String("x".repeat(2000))),
    };
    for codec in codecs() {
        let small = codec.with_max_message_bytes(1000);
        match small.encode(&msg) {
            Err(EncodeError::TooLarge { len, max: 1000 }) => assert!(len > 2000),
            other => panic!("{other:?}"),
        }
    }
}

/// JSON numbers: integers are `Int`, anything with a fraction or an
/// exponent is `Float`, integers between `i64::MAX` and `u64::MAX` are
/// refused.
#[test]
fn json_numbers_map_to_int_or_float() {
    let json = Codec::new(Encoding::Json);
    let decode_value = |text: &str| -> Result<WireValue, DecodeError> {
        let frame = format!(
            r#"{{"CLIENT_OP":{{"op":{{"op_id":1,"map":"m","key":"k","timestamp":{{"millis":0,"counter":0,"node":"0000000000000000"}},"kind":{{"Put":{{"value":{text},"ttl_ms":null}}}}}}}}}}"#
        );
        let msg: ClientMessage = json.decode(frame.as_bytes())?;
        let ClientMessage::ClientOp { op } = msg else {
            panic!("wrong message")
        };
        let WireOpKind::Put { value, .. } = op.kind else {
            panic!("wrong kind")
        };
        Ok(value)
    };
    assert_eq!(decode_value("3"), Ok(WireValue::Int(3)));
    assert_eq!(decode_value("-3"), Ok(WireValue::Int(-3)));
    assert_eq!(
        decode_value("-9223372036854775808"),
        Ok(WireValue::Int(i64::MIN))
    );
    assert_eq!(
        decode_value("9223372036854775807"),
        Ok(WireValue::Int(i64::MAX))
    );
    assert_eq!(decode_value("3.0"), Ok(WireValue::Float(3.0)));
    // A whole float is written with a fraction, so it stays a float.
    let encoded = json
        .encode(&ClientMessage::ClientOp {
            op: put(WireValue::Float(2.0)),
        })
        .unwrap();
    assert!(
        String::from_utf8(encoded)
            .unwrap()
            .contains(r#""value":2.0"#),
        "whole floats keep a fraction"
    );
    assert_eq!(decode_value("3e2"), Ok(WireValue::Float(300.0)));
    assert_eq!(decode_value("-0.5"), Ok(WireValue::Float(-0.5)));
    assert!(matches!(
        decode_value("9223372036854775808"),
        Err(DecodeError::Malformed {
            kind: MalformedKind::IntegerOutOfRange,
            ..
        })
    ));
    assert!(matches!(
        decode_value("18446744073709551615"),
        Err(DecodeError::Malformed {
            kind: MalformedKind::IntegerOutOfRange,
            ..
        })
    ));
    assert_eq!(decode_value("1e400"), Err(DecodeError::NonFiniteFloat));
    // Integer literals beyond 64 bits are read as floats, as JavaScript
    // reads every number.
    assert_eq!(
        decode_value("100000000000000000000"),
        Ok(WireValue::Float(1e20))
    );
    assert_eq!(
        decode_value("-9223372036854775809"),
        Ok(WireValue::Float(-9_223_372_036_854_775_809.0))
    );
    assert_eq!(
        decode_value(r#"{"b":[true,null],"a":"x"}"#),
        Ok(WireValue::Map(
            [
                ("a".to_owned(), WireValue::from("x")),
                (
                    "b".to_owned(),
                    WireValue::Array(vec![WireValue::Bool(true), WireValue::Null])
                ),
            ]
            .into_iter()
            .collect()
        ))
    );
    assert!(matches!(
        decode_value(r#"{"a":1,"a":2}"#),
        Err(DecodeError::Malformed {
            kind: MalformedKind::DuplicateKey,
            ..
        })
    ));
}

/// Omitted optional fields read as their defaults in JSON, and field
/// order does not matter.
#[test]
fn json_defaults() {
    let json = Codec::new(Encoding::Json);
    let msg: ClientMessage = json.decode(br#"{"OP_BATCH":{"ops":[]}}"#).unwrap();
    assert_eq!(
        msg,
        ClientMessage::OpBatch {
            ops: vec![],
            write_concern: WriteConcern::Durable
        }
    );
    let msg: ClientMessage = json
        .decode(
            br#"{"CLIENT_OP":{"op":{"kind":{"Put":{"value":null}},"key":"k","map":"m","op_id":1,
                "timestamp":{"node":"0000000000000000","millis":0,"counter":0}}}}"#,
        )
        .unwrap();
    assert_eq!(
        msg,
        ClientMessage::ClientOp {
            op: put(WireValue::Null)
        }
    );
    let msg: ClientMessage = json
        .decode(br#"{"QUERY_SUB":{"query_id":1,"map":"m","query":{}}}"#)
        .unwrap();
    assert_eq!(
        msg,
        ClientMessage::QuerySub {
            query_id: 1,
            map: "m".into(),
            query: WireQuery::default()
        }
    );
}
