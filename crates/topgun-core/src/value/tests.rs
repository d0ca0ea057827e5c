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
