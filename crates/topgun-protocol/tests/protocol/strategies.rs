//! proptest strategies for every wire type: finite floats, bounded depth.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use topgun_protocol::*;

/// Finite floats of every class (normal, subnormal, zero, both signs).
pub fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    (NORMAL | SUBNORMAL | ZERO | POSITIVE | NEGATIVE).prop_filter("finite", |f| f.is_finite())
}

pub fn text() -> impl Strategy<Value = String> {
    // Any Unicode, control characters included, but short.
    "\\PC{0,12}|.{0,6}"
}

pub fn value() -> impl Strategy<Value = WireValue> {
    let leaf = prop_oneof![
        Just(WireValue::Null),
        any::<bool>().prop_map(WireValue::Bool),
        any::<i64>().prop_map(WireValue::Int),
        finite_f64().prop_map(WireValue::Float),
        text().prop_map(WireValue::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(WireValue::Array),
            btree_map(text(), inner, 0..5).prop_map(WireValue::Map),
        ]
    })
}

pub fn timestamp() -> impl Strategy<Value = WireTimestamp> {
    (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(millis, counter, node)| WireTimestamp {
        millis,
        counter,
        node: WireNodeId(node),
    })
}

pub fn hash() -> impl Strategy<Value = Hash64> {
    any::<u64>().prop_map(Hash64)
}

pub fn error_context() -> impl Strategy<Value = ErrorContext> {
    prop_oneof![
        any::<u64>().prop_map(|query_id| ErrorContext::Query { query_id }),
        (text(), map_kind()).prop_map(|(map, kind)| ErrorContext::Sync { map, kind }),
    ]
}

pub fn map_kind() -> impl Strategy<Value = WireMapKind> {
    prop_oneof![Just(WireMapKind::Lww), Just(WireMapKind::Or)]
}

pub fn path() -> impl Strategy<Value = WireMerklePath> {
    (any::<u8>(), any::<u32>()).prop_map(|(level, index)| WireMerklePath { level, index })
}

pub fn op_kind() -> impl Strategy<Value = WireOpKind> {
    prop_oneof![
        (value(), option::of(any::<u64>()))
            .prop_map(|(value, ttl_ms)| WireOpKind::Put { value, ttl_ms }),
        Just(WireOpKind::Remove),
        (value(), option::of(any::<u64>()))
            .prop_map(|(value, ttl_ms)| WireOpKind::OrAdd { value, ttl_ms }),
        vec(timestamp(), 0..4).prop_map(|tags| WireOpKind::OrRemove { tags }),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    (any::<u64>(), text(), text(), timestamp(), op_kind()).prop_map(
        |(op_id, map, key, timestamp, kind)| Op {
            op_id,
            map,
            key,
            timestamp,
            kind,
        },
    )
}

pub fn cmp_op() -> impl Strategy<Value = WireCmpOp> {
    prop_oneof![
        Just(WireCmpOp::Eq),
        Just(WireCmpOp::Ne),
        Just(WireCmpOp::Lt),
        Just(WireCmpOp::Lte),
        Just(WireCmpOp::Gt),
        Just(WireCmpOp::Gte),
    ]
}

pub fn filter() -> impl Strategy<Value = WireFilter> {
    let leaf = prop_oneof![
        (text(), cmp_op(), value()).prop_map(|(field, op, value)| WireFilter::Compare {
            field,
            op,
            value
        }),
        (text(), vec(value(), 0..3)).prop_map(|(field, values)| WireFilter::In { field, values }),
        text().prop_map(|field| WireFilter::Exists { field }),
        (text(), text()).prop_map(|(field, prefix)| WireFilter::Prefix { field, prefix }),
    ];
    leaf.prop_recursive(4, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(WireFilter::And),
            vec(inner.clone(), 0..4).prop_map(WireFilter::Or),
            inner.prop_map(|f| WireFilter::Not(Box::new(f))),
        ]
    })
}

pub fn query() -> impl Strategy<Value = WireQuery> {
    (
        option::of(filter()),
        vec(
            (text(), any::<bool>())
                .prop_map(|(field, descending)| WireSortKey { field, descending }),
            0..3,
        ),
        option::of(any::<u32>()),
    )
        .prop_map(|(filter, sort, limit)| WireQuery {
            filter,
            sort,
            limit,
        })
}

pub fn lww_record() -> impl Strategy<Value = WireLwwRecord> {
    (
        prop_oneof![
            value().prop_map(RecordValue::Live),
            Just(RecordValue::Tombstone)
        ],
        timestamp(),
        option::of(any::<u64>()),
    )
        .prop_map(|(value, timestamp, ttl_ms)| WireLwwRecord {
            value,
            timestamp,
            ttl_ms,
        })
}

pub fn or_entry() -> impl Strategy<Value = WireOrEntry> {
    (
        vec(
            (value(), timestamp(), option::of(any::<u64>()))
                .prop_map(|(value, tag, ttl_ms)| WireOrItem { value, tag, ttl_ms }),
            0..3,
        ),
        vec(
            (timestamp(), timestamp())
                .prop_map(|(tag, removed_at)| WireOrTombstone { tag, removed_at }),
            0..3,
        ),
    )
        .prop_map(|(items, tombstones)| WireOrEntry { items, tombstones })
}

pub fn leaf_digest() -> impl Strategy<Value = WireLeafDigest> {
    (
        path(),
        vec(
            (text(), hash()).prop_map(|(key, hash)| KeyHash { key, hash }),
            0..4,
        ),
    )
        .prop_map(|(path, entries)| WireLeafDigest { path, entries })
}

pub fn write_concern() -> impl Strategy<Value = WriteConcern> {
    prop_oneof![Just(WriteConcern::Durable), Just(WriteConcern::Replicated)]
}

pub fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (text(), any::<u16>()).prop_map(|(token, protocol_version)| ClientMessage::Auth {
            token,
            protocol_version
        }),
        op().prop_map(|op| ClientMessage::ClientOp { op }),
        (vec(op(), 0..4), write_concern())
            .prop_map(|(ops, write_concern)| ClientMessage::OpBatch { ops, write_concern }),
        (any::<u64>(), text(), query()).prop_map(|(query_id, map, query)| {
            ClientMessage::QuerySub {
                query_id,
                map,
                query,
            }
        }),
        any::<u64>().prop_map(|query_id| ClientMessage::QueryUnsub { query_id }),
        (text(), map_kind(), hash()).prop_map(|(map, kind, root)| ClientMessage::SyncInit {
            map,
            kind,
            root
        }),
        (text(), map_kind(), vec(path(), 0..6))
            .prop_map(|(map, kind, paths)| ClientMessage::MerkleReqBucket { map, kind, paths }),
        (text(), map_kind(), vec(leaf_digest(), 0..3))
            .prop_map(|(map, kind, leaves)| ClientMessage::SyncReqLeaf { map, kind, leaves }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientMessage::Pong { nonce }),
    ]
}

pub fn auth_fail_reason() -> impl Strategy<Value = AuthFailReason> {
    prop_oneof![
        Just(AuthFailReason::Malformed),
        Just(AuthFailReason::InvalidSignature),
        Just(AuthFailReason::Expired),
        Just(AuthFailReason::NotYetValid),
        Just(AuthFailReason::MissingClaim),
        Just(AuthFailReason::InvalidClaim),
        Just(AuthFailReason::UnknownKeyId),
        Just(AuthFailReason::AlgorithmNotAllowed),
        Just(AuthFailReason::UnsupportedProtocolVersion),
        Just(AuthFailReason::RateLimited),
    ]
}

pub fn reject_code() -> impl Strategy<Value = RejectCode> {
    prop_oneof![
        Just(RejectCode::Forbidden),
        Just(RejectCode::ValueTooLarge),
        Just(RejectCode::BatchTooLarge),
        Just(RejectCode::InvalidMapName),
        Just(RejectCode::InvalidKey),
        Just(RejectCode::MapKindMismatch),
        Just(RejectCode::ClockDrift),
        Just(RejectCode::RateLimited),
        Just(RejectCode::WriteConcernUnavailable),
        Just(RejectCode::Internal),
    ]
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::MalformedMessage),
        Just(ErrorCode::MessageTooLarge),
        Just(ErrorCode::NotAuthenticated),
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::UnknownQuery),
        Just(ErrorCode::InvalidSyncRequest),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::SlowConsumer),
        Just(ErrorCode::SessionExpired),
        Just(ErrorCode::ShuttingDown),
        Just(ErrorCode::Internal),
    ]
}

pub fn change_kind() -> impl Strategy<Value = ChangeKind> {
    prop_oneof![
        Just(ChangeKind::Enter),
        Just(ChangeKind::Update),
        Just(ChangeKind::Leave)
    ]
}

pub fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            prop_oneof![
                Just(AuthRequiredReason::Initial),
                any::<u64>().prop_map(|expires_at_ms| AuthRequiredReason::SessionExpiring {
                    expires_at_ms
                }),
            ]
        )
            .prop_map(
                |(min_version, max_version, reason)| ServerMessage::AuthRequired {
                    min_version,
                    max_version,
                    reason
                }
            ),
        (any::<u16>(), text(), option::of(any::<u64>())).prop_map(
            |(protocol_version, sub, session_expires_at_ms)| ServerMessage::AuthAck {
                protocol_version,
                sub,
                session_expires_at_ms
            }
        ),
        (auth_fail_reason(), text())
            .prop_map(|(reason, message)| ServerMessage::AuthFail { reason, message }),
        vec(
            (any::<u64>(), timestamp())
                .prop_map(|(op_id, timestamp)| OpAckEntry { op_id, timestamp }),
            0..4
        )
        .prop_map(|acks| ServerMessage::OpAck { acks }),
        vec(
            (any::<u64>(), reject_code(), text()).prop_map(|(op_id, code, message)| {
                OpRejection {
                    op_id,
                    code,
                    message,
                }
            }),
            0..4
        )
        .prop_map(|rejections| ServerMessage::OpRejected { rejections }),
        (
            any::<u64>(),
            vec(
                (text(), lww_record()).prop_map(|(key, record)| QueryRecord { key, record }),
                0..3
            )
        )
            .prop_map(|(query_id, records)| ServerMessage::QueryResp { query_id, records }),
        (any::<u64>(), change_kind(), text(), lww_record()).prop_map(
            |(query_id, change, key, record)| ServerMessage::QueryUpdate {
                query_id,
                change,
                key,
                record
            }
        ),
        (text(), map_kind(), hash()).prop_map(|(map, kind, root)| ServerMessage::SyncRespRoot {
            map,
            kind,
            root
        }),
        (
            text(),
            map_kind(),
            vec(
                (path(), proptest::array::uniform16(hash()))
                    .prop_map(|(path, children)| BucketHashes { path, children }),
                0..3
            )
        )
            .prop_map(|(map, kind, buckets)| ServerMessage::SyncRespBuckets {
                map,
                kind,
                buckets
            }),
        (
            text(),
            prop_oneof![
                vec(
                    (text(), lww_record()).prop_map(|(key, record)| LwwKeyRecord { key, record }),
                    0..3
                )
                .prop_map(LeafRecords::Lww),
                vec(
                    (text(), or_entry()).prop_map(|(key, entry)| OrKeyEntry { key, entry }),
                    0..3
                )
                .prop_map(LeafRecords::Or),
            ],
            vec(text(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(map, records, wanted_keys, last)| ServerMessage::SyncRespLeaf {
                    map,
                    records,
                    wanted_keys,
                    last
                }
            ),
        any::<u64>().prop_map(|nonce| ServerMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
        (error_code(), text(), option::of(error_context())).prop_map(|(code, message, context)| {
            ServerMessage::Error {
                code,
                message,
                context,
            }
        }),
    ]
}
