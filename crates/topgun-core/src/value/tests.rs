//! Unit tests for values: ordering, paths and the canonical hash.

use super::*;

fn map(fields: &[(&str, Value)]) -> Value {
    Value::Map(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

#[test]
fn depth_counts_nesting() {
    assert_eq!(Value::Int(1).depth(), 0);
    assert_eq!(Value::Array(vec![]).depth(), 1);
    assert_eq!(map(&[("a", Value::Array(vec![Value::Null]))]).depth(), 2);
}

#[test]
fn get_path_walks_maps() {
    let v = map(&[("a", map(&[("b", Value::Int(7))]))]);
    assert_eq!(v.get_path("a.b"), Some(&Value::Int(7)));
    assert_eq!(v.get_path("a.c"), None);
    assert_eq!(v.get_path("a.b.c"), None);
    assert_eq!(v.get_path(""), Some(&v));
}

#[test]
fn total_cmp_orders_kinds_then_content() {
    let ordered = [
        Value::Null,
        Value::Bool(false),
        Value::Bool(true),
        Value::Int(-3),
        Value::Float(-2.5),
        Value::Int(2),
        Value::Float(2.5),
        Value::from("a"),
        Value::from("b"),
        Value::Array(vec![Value::Int(1)]),
        Value::Array(vec![Value::Int(1), Value::Int(0)]),
        map(&[("a", Value::Int(1))]),
    ];
    for w in ordered.windows(2) {
        assert_eq!(
            w[0].total_cmp(&w[1]),
            Ordering::Less,
            "{:?} < {:?}",
            w[0],
            w[1]
        );
        assert_eq!(w[1].total_cmp(&w[0]), Ordering::Greater);
    }
}

fn hash(v: &Value) -> u64 {
    let mut h = Xxh3::new();
    v.hash_into(&mut h);
    h.digest()
}

#[test]
fn hashes_distinguish_kinds_and_boundaries() {
    assert_ne!(hash(&Value::Int(1)), hash(&Value::Float(1.0)));
    assert_ne!(hash(&Value::from("1")), hash(&Value::Int(1)));
    let ab_c = Value::Array(vec![Value::from("ab"), Value::from("c")]);
    let a_bc = Value::Array(vec![Value::from("a"), Value::from("bc")]);
    assert_ne!(hash(&ab_c), hash(&a_bc));
}

/// Golden vectors: the canonical hash is part of the sync protocol
/// (every replica must compute the same Merkle leaves), so a change
/// here must be deliberate.
#[test]
fn canonical_hash_golden_vectors() {
    const GOLDEN_NULL: u64 = 0xc44b_dff4_074e_ecdb;
    const GOLDEN_INT: u64 = 0xa21e_1a86_7f97_0bec;
    const GOLDEN_MAP: u64 = 0xe716_2c06_95df_1b28;
    let cases = [
        (Value::Null, GOLDEN_NULL),
        (Value::Int(42), GOLDEN_INT),
        (
            map(&[("title", Value::from("milk")), ("done", Value::Bool(false))]),
            GOLDEN_MAP,
        ),
    ];
    for (v, expected) in cases {
        assert_eq!(hash(&v), expected, "{v:?}: {:#018x}", hash(&v));
    }
}

/// Numbers that stress the comparison of integers with floats: around
/// 2^53 (where f64 stops being exact), at the i64 limits, signed zeros,
/// infinities, NaNs and fractions.
fn edge_numbers() -> Vec<Value> {
    const TWO_53: i64 = 1 << 53;
    let ints = [
        i64::MIN,
        i64::MIN + 1,
        -TWO_53 - 1,
        -1,
        0,
        1,
        2,
        TWO_53,
        TWO_53 + 1,
        i64::MAX - 1,
        i64::MAX,
    ];
    let floats = [
        f64::NEG_INFINITY,
        -9_223_372_036_854_775_808.0,
        -1.5,
        -0.5,
        -0.0,
        0.0,
        0.5,
        1.0,
        1.5,
        9_007_199_254_740_992.0,
        9_007_199_254_740_994.0,
        9_223_372_036_854_775_808.0,
        f64::INFINITY,
        f64::NAN,
        -f64::NAN,
    ];
    ints.into_iter()
        .map(Value::Int)
        .chain(floats.into_iter().map(Value::Float))
        .collect()
}

fn assert_total_order(a: &Value, b: &Value, c: &Value) {
    assert_eq!(a.total_cmp(a), Ordering::Equal, "{a:?} vs itself");
    assert_eq!(
        a.total_cmp(b),
        b.total_cmp(a).reverse(),
        "{a:?} vs {b:?} is not antisymmetric"
    );
    let (ab, bc, ac) = (a.total_cmp(b), b.total_cmp(c), a.total_cmp(c));
    if ab.is_le() && bc.is_le() {
        assert!(ac.is_le(), "{a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}");
    }
    if ab.is_eq() && bc.is_eq() {
        assert!(ac.is_eq(), "{a:?} = {b:?} = {c:?} but {a:?} {ac:?} {c:?}");
    }
}

/// `total_cmp` must be a total order (query results are sorted with it,
/// and Rust's sort may panic on an inconsistent comparator). Every triple
/// of edge numbers, integers and floats mixed.
#[test]
fn total_cmp_is_a_total_order_on_numbers() {
    let numbers = edge_numbers();
    for a in &numbers {
        for b in &numbers {
            for c in &numbers {
                assert_total_order(a, b, c);
            }
        }
    }
}

fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        proptest::sample::select(edge_numbers()),
        "[ab]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[ab]", inner, 0..3).prop_map(Value::Map),
        ]
    })
}

proptest::proptest! {
    /// The same for nested values, where the order is lexicographic.
    #[test]
    fn total_cmp_is_a_total_order(a in any_value(), b in any_value(), c in any_value()) {
        assert_total_order(&a, &b, &c);
    }
}

#[test]
fn integers_and_floats_compare_exactly() {
    use Ordering::{Equal, Greater, Less};
    let cases = [
        (Value::Int(1), Value::Float(1.0), Equal),
        (Value::Int(0), Value::Float(-0.0), Equal),
        (Value::Float(-0.0), Value::Float(0.0), Equal),
        (Value::Int(1), Value::Float(1.5), Less),
        (Value::Int(-1), Value::Float(-1.5), Greater),
        // 2^53 + 1 is not a float; it still compares above 2^53.
        (
            Value::Int((1 << 53) + 1),
            Value::Float(9_007_199_254_740_992.0),
            Greater,
        ),
        (
            Value::Int(i64::MAX),
            Value::Float(9_223_372_036_854_775_808.0),
            Less,
        ),
        (
            Value::Int(i64::MIN),
            Value::Float(-9_223_372_036_854_775_808.0),
            Equal,
        ),
        (
            Value::Int(i64::MIN),
            Value::Float(f64::NEG_INFINITY),
            Greater,
        ),
        (Value::Int(i64::MAX), Value::Float(f64::INFINITY), Less),
        (Value::Int(i64::MAX), Value::Float(f64::NAN), Less),
        (Value::Int(i64::MIN), Value::Float(-f64::NAN), Greater),
    ];
    for (a, b, expected) in cases {
        assert_eq!(a.total_cmp(&b), expected, "{a:?} vs {b:?}");
        assert_eq!(b.total_cmp(&a), expected.reverse(), "{b:?} vs {a:?}");
    }
}

/// The canonical form spelled out byte by byte for every kind, as another
/// implementation (the TypeScript client) must produce it: a kind byte,
/// then little-endian fixed-width numbers, u64 length prefixes for strings,
/// arrays and maps, and map fields in key order.
#[test]
fn canonical_bytes_per_kind() {
    fn len(n: usize) -> Vec<u8> {
        (n as u64).to_le_bytes().to_vec()
    }
    let cases: Vec<(Value, Vec<u8>)> = vec![
        (Value::Null, vec![0]),
        (Value::Bool(false), vec![1, 0]),
        (Value::Bool(true), vec![1, 1]),
        (
            Value::Int(-2),
            [vec![2], (-2i64).to_le_bytes().to_vec()].concat(),
        ),
        (
            Value::Float(1.5),
            [vec![3], 1.5f64.to_bits().to_le_bytes().to_vec()].concat(),
        ),
        (
            Value::from("hé"),
            [vec![4], len(3), "hé".as_bytes().to_vec()].concat(),
        ),
        (
            Value::Array(vec![Value::Null, Value::Bool(true)]),
            [vec![5], len(2), vec![0], vec![1, 1]].concat(),
        ),
        (
            map(&[("b", Value::Null), ("a", Value::Int(1))]),
            [
                vec![6],
                len(2),
                len(1),
                b"a".to_vec(),
                vec![2],
                1i64.to_le_bytes().to_vec(),
                len(1),
                b"b".to_vec(),
                vec![0],
            ]
            .concat(),
        ),
    ];
    for (v, bytes) in cases {
        assert_eq!(hash(&v), xxhash_rust::xxh3::xxh3_64(&bytes), "{v:?}");
    }
}
