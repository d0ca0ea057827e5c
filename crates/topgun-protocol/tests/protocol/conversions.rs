//! Core types -> wire types -> core types is the identity.

use proptest::prelude::*;
use topgun_core::merkle::LeafDigest;
use topgun_core::query::MAX_FILTER_DEPTH;
use topgun_core::{
    CmpOp, Filter, LwwRecord, MapKind, MerklePath, MerkleTree, NodeId, OpKind, OrEntry, OrItem,
    OrMap, OrTombstone, Query, SortKey, Timestamp, Value,
};
use topgun_protocol::*;

use crate::strategies::finite_f64;

fn core_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        finite_f64().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,4}", inner, 0..4).prop_map(Value::Map),
        ]
    })
}

fn core_ts() -> impl Strategy<Value = Timestamp> {
    (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(m, c, n)| Timestamp::new(m, c, NodeId(n)))
}

fn core_filter() -> impl Strategy<Value = Filter> {
    let cmp = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Lte),
        Just(CmpOp::Gt),
        Just(CmpOp::Gte)
    ];
    let leaf = prop_oneof![
        (".{0,4}", cmp, core_value()).prop_map(|(field, op, value)| Filter::Compare {
            field,
            op,
            value
        }),
        (".{0,4}", proptest::collection::vec(core_value(), 0..3))
            .prop_map(|(field, values)| Filter::In { field, values }),
        ".{0,4}".prop_map(|field| Filter::Exists { field }),
        (".{0,4}", ".{0,4}").prop_map(|(field, prefix)| Filter::Prefix { field, prefix }),
    ];
    leaf.prop_recursive(4, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #[test]
    fn values_round_trip(v in core_value()) {
        prop_assert_eq!(Value::from(WireValue::try_from(&v).unwrap()), v.clone());
        prop_assert_eq!(Value::from(WireValue::try_from(v.clone()).unwrap()), v);
    }

    #[test]
    fn timestamps_round_trip(t in core_ts()) {
        prop_assert_eq!(Timestamp::from(WireTimestamp::from(t)), t);
        prop_assert_eq!(NodeId::from(WireNodeId::from(t.node)), t.node);
    }

    #[test]
    fn lww_records_round_trip(
        v in proptest::option::of(core_value()),
        t in core_ts(),
        ttl in proptest::option::of(any::<u64>()),
    ) {
        let r = LwwRecord { value: v, timestamp: t, ttl_ms: ttl };
        prop_assert_eq!(LwwRecord::from(WireLwwRecord::try_from(&r).unwrap()), r.clone());
        prop_assert_eq!(LwwRecord::from(WireLwwRecord::try_from(r.clone()).unwrap()), r);
    }

    #[test]
    fn op_kinds_round_trip(
        v in core_value(),
        ttl in proptest::option::of(any::<u64>()),
        tags in proptest::collection::vec(core_ts(), 0..4),
    ) {
        for k in [
            OpKind::Put { value: v.clone(), ttl_ms: ttl },
            OpKind::Remove,
            OpKind::OrAdd { value: v.clone(), ttl_ms: ttl },
            OpKind::OrRemove { tags: tags.clone() },
        ] {
            let wire = WireOpKind::try_from(&k).unwrap();
            prop_assert_eq!(MapKind::from(wire.map_kind()), k.map_kind());
            prop_assert_eq!(OpKind::from(wire), k.clone());
            prop_assert_eq!(OpKind::from(WireOpKind::try_from(k.clone()).unwrap()), k);
        }
    }

    #[test]
    fn or_entries_round_trip(
        items in proptest::collection::vec((core_value(), core_ts(), proptest::option::of(any::<u64>())), 0..4),
        removed in proptest::collection::vec((core_ts(), core_ts()), 0..4),
    ) {
        let entry = OrEntry::from_parts(
            items.into_iter().map(|(value, tag, ttl_ms)| OrItem { value, tag, ttl_ms }),
            removed.into_iter().map(|(tag, removed_at)| OrTombstone { tag, removed_at }),
        );
        let wire = WireOrEntry::try_from(&entry).unwrap();
        prop_assert_eq!(wire.items.len(), entry.items().len());
        prop_assert_eq!(wire.tombstones.len(), entry.tombstones().len());
        prop_assert_eq!(OrEntry::from(wire), entry);
    }

    #[test]
    fn filters_and_queries_round_trip(
        f in core_filter(),
        sort in proptest::collection::vec((".{0,4}", any::<bool>()), 0..3),
        limit in proptest::option::of(any::<u32>()),
    ) {
        prop_assert_eq!(Filter::from(WireFilter::try_from(&f).unwrap()), f.clone());
        let q = Query {
            filter: Some(f),
            sort: sort.into_iter().map(|(field, descending)| SortKey { field, descending }).collect(),
            limit,
        };
        prop_assert_eq!(Query::from(WireQuery::try_from(&q).unwrap()), q);
    }

    #[test]
    fn merkle_paths_round_trip(level in any::<u8>(), index in any::<u32>()) {
        let p = MerklePath { level, index };
        prop_assert_eq!(MerklePath::from(WireMerklePath::from(p)), p);
    }
}

#[test]
fn map_kinds_and_cmp_ops_round_trip() {
    for k in [MapKind::Lww, MapKind::Or] {
        assert_eq!(MapKind::from(WireMapKind::from(k)), k);
    }
    for op in [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Lte,
        CmpOp::Gt,
        CmpOp::Gte,
    ] {
        assert_eq!(CmpOp::from(WireCmpOp::from(op)), op);
    }
}

/// The conversions carry real Merkle state: an OR map's entry, its tree's
/// child hashes and a leaf digest survive the wire in both encodings.
#[test]
fn merkle_state_survives_the_wire() {
    let mut map = OrMap::new();
    let node = NodeId(7);
    for i in 0..50u64 {
        map.add(
            format!("k{i}"),
            OrItem {
                value: Value::Int(i as i64),
                tag: Timestamp::new(1000 + i, 0, node),
                ttl_ms: None,
            },
        );
    }
    let tree: &MerkleTree = map.merkle();
    let root = BucketHashes::from_tree(tree, MerklePath::ROOT).unwrap();
    assert_eq!(root.path, WireMerklePath { level: 0, index: 0 });
    assert_eq!(
        root.child_hashes().as_slice(),
        tree.children(MerklePath::ROOT).unwrap()
    );
    // A leaf cannot be expanded.
    let leaf = tree.bucket_of("k1");
    assert!(BucketHashes::from_tree(tree, leaf).is_err());

    let digests = map.leaf_digests(&[leaf]);
    let wire: Vec<WireLeafDigest> = digests.iter().cloned().map(Into::into).collect();
    let back: Vec<LeafDigest> = wire.iter().cloned().map(Into::into).collect();
    assert_eq!(back, digests);

    let entry = map.get("k1").unwrap();
    let msg = ServerMessage::SyncRespLeaf {
        map: "m".into(),
        records: LeafRecords::Or(vec![OrKeyEntry {
            key: "k1".into(),
            entry: entry.try_into().unwrap(),
        }]),
        wanted_keys: vec![],
        last: true,
    };
    for codec in [Codec::new(Encoding::Bincode), Codec::new(Encoding::Json)] {
        let back = codec.decode_server(&codec.encode(&msg).unwrap()).unwrap();
        let ServerMessage::SyncRespLeaf {
            records: LeafRecords::Or(entries),
            ..
        } = back
        else {
            panic!("wrong message")
        };
        let got = OrEntry::from(entries[0].entry.clone());
        assert_eq!(&got, entry);
        assert_eq!(
            topgun_core::or::entry_hash("k1", &got),
            topgun_core::or::entry_hash("k1", entry)
        );
    }
}

#[test]
fn conversions_refuse_what_the_wire_refuses() {
    let deep = (0..=MAX_VALUE_DEPTH).fold(Value::Null, |v, _| Value::Array(vec![v]));
    assert!(matches!(
        WireValue::try_from(&deep),
        Err(ConvertError::TooDeep {
            nesting: Nesting::Value,
            ..
        })
    ));
    let record = LwwRecord::put(Value::Float(f64::INFINITY), Timestamp::ZERO);
    assert_eq!(
        WireLwwRecord::try_from(&record),
        Err(ConvertError::NonFiniteFloat)
    );
    let deep_filter = (0..MAX_FILTER_DEPTH).fold(Filter::Exists { field: "a".into() }, |f, _| {
        Filter::Not(Box::new(f))
    });
    assert!(matches!(
        WireFilter::try_from(&deep_filter),
        Err(ConvertError::TooDeep {
            nesting: Nesting::Filter,
            ..
        })
    ));
}
