//! Unit tests for query filters, sorting and limits.

use super::*;

fn todo_item(title: &str, done: bool, prio: i64) -> Value {
    Value::Map(
        [
            ("title".to_owned(), Value::from(title)),
            ("done".to_owned(), Value::Bool(done)),
            ("prio".to_owned(), Value::Int(prio)),
        ]
        .into_iter()
        .collect(),
    )
}

fn cmp(field: &str, op: CmpOp, value: impl Into<Value>) -> Filter {
    Filter::Compare {
        field: field.to_owned(),
        op,
        value: value.into(),
    }
}

#[test]
fn filters_table() {
    let v = todo_item("milk", false, 2);
    let cases: Vec<(Filter, bool)> = vec![
        (cmp("done", CmpOp::Eq, false), true),
        (cmp("done", CmpOp::Eq, true), false),
        (cmp("prio", CmpOp::Gt, 1i64), true),
        (cmp("prio", CmpOp::Gte, 2.0), true),
        (cmp("prio", CmpOp::Lt, 2i64), false),
        (cmp("prio", CmpOp::Lte, 2i64), true),
        (cmp("prio", CmpOp::Ne, 3i64), true),
        // Different kinds never compare as ordered.
        (cmp("prio", CmpOp::Gt, "1"), false),
        (cmp("missing", CmpOp::Eq, 1i64), false),
        (cmp("missing", CmpOp::Ne, 1i64), true),
        (cmp(KEY_FIELD, CmpOp::Eq, "k1"), true),
        (
            Filter::In {
                field: "title".into(),
                values: vec!["eggs".into(), "milk".into()],
            },
            true,
        ),
        (
            Filter::Exists {
                field: "title".into(),
            },
            true,
        ),
        (
            Filter::Exists {
                field: "nope".into(),
            },
            false,
        ),
        (
            Filter::Prefix {
                field: "title".into(),
                prefix: "mi".into(),
            },
            true,
        ),
        (Filter::And(vec![]), true),
        (Filter::Or(vec![]), false),
        (
            Filter::And(vec![
                cmp("done", CmpOp::Eq, false),
                cmp("prio", CmpOp::Eq, 2i64),
            ]),
            true,
        ),
        (Filter::Not(Box::new(cmp("done", CmpOp::Eq, false))), false),
    ];
    for (f, expected) in cases {
        assert_eq!(f.matches("k1", &v), expected, "{f:?}");
    }
}

#[test]
fn run_filters_sorts_and_limits() {
    let records = [
        ("a".to_owned(), todo_item("x", false, 1)),
        ("b".to_owned(), todo_item("y", true, 3)),
        ("c".to_owned(), todo_item("z", false, 3)),
        ("d".to_owned(), todo_item("w", false, 2)),
    ];
    let q = Query {
        filter: Some(cmp("done", CmpOp::Eq, false)),
        sort: vec![SortKey {
            field: "prio".into(),
            descending: true,
        }],
        limit: Some(2),
    };
    let keys: Vec<&str> = q
        .run(records.iter().map(|(k, v)| (k.as_str(), v)))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["c", "d"]);
}

#[test]
fn depth_counts_combinators() {
    let leaf = Filter::Exists { field: "a".into() };
    assert_eq!(leaf.depth(), 1);
    let nested = Filter::Not(Box::new(Filter::And(vec![leaf])));
    assert_eq!(nested.depth(), 3);
}

#[test]
fn the_key_field_behaves_as_a_string() {
    let v = todo_item("milk", false, 2);
    let cases: Vec<(Filter, bool)> = vec![
        (cmp(KEY_FIELD, CmpOp::Lt, "k2"), true),
        (cmp(KEY_FIELD, CmpOp::Gte, "k2"), false),
        (cmp(KEY_FIELD, CmpOp::Ne, "k2"), true),
        // Another kind never compares as ordered or equal.
        (cmp(KEY_FIELD, CmpOp::Eq, 1i64), false),
        (cmp(KEY_FIELD, CmpOp::Gt, 1i64), false),
        (cmp(KEY_FIELD, CmpOp::Ne, 1i64), true),
        (
            Filter::In {
                field: KEY_FIELD.into(),
                values: vec![1i64.into(), "k1".into()],
            },
            true,
        ),
        (
            Filter::Prefix {
                field: KEY_FIELD.into(),
                prefix: "k".into(),
            },
            true,
        ),
        (
            Filter::Prefix {
                field: KEY_FIELD.into(),
                prefix: "k10".into(),
            },
            false,
        ),
        (
            Filter::Exists {
                field: KEY_FIELD.into(),
            },
            true,
        ),
        // A prefix filter on a field that is not a string never matches.
        (
            Filter::Prefix {
                field: "prio".into(),
                prefix: String::new(),
            },
            false,
        ),
    ];
    for (f, expected) in cases {
        assert_eq!(f.matches("k1", &v), expected, "{f:?}");
    }
}

#[test]
fn sort_by_key_and_missing_fields_first() {
    let with_prio = todo_item("x", false, 1);
    let without = Value::Map(Default::default());
    let records = [("b", &with_prio), ("c", &without), ("a", &with_prio)];
    let run = |field: &str, descending: bool| -> Vec<&str> {
        Query {
            filter: None,
            sort: vec![SortKey {
                field: field.into(),
                descending,
            }],
            limit: None,
        }
        .run(records.iter().copied())
        .into_iter()
        .map(|(k, _)| k)
        .collect()
    };
    assert_eq!(run(KEY_FIELD, false), ["a", "b", "c"]);
    assert_eq!(run(KEY_FIELD, true), ["c", "b", "a"]);
    // Missing sorts as null, before any number; ties broken by key.
    assert_eq!(run("prio", false), ["c", "a", "b"]);
    assert_eq!(run("prio", true), ["a", "b", "c"]);
}

mod props {
    use proptest::prelude::*;

    use super::super::*;

    /// The stand-in field that holds a copy of the key in the oracle.
    const KEY_COPY: &str = "key_copy";

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::Int),
            (-6i32..6).prop_map(|h| Value::Float(f64::from(h) / 2.0)),
            "[ab]{0,3}".prop_map(Value::String),
        ]
    }

    fn field() -> impl Strategy<Value = String> {
        prop::sample::select(vec![KEY_FIELD, "n", "s", "missing"]).prop_map(str::to_owned)
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let op = prop::sample::select(vec![
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Lte,
            CmpOp::Gt,
            CmpOp::Gte,
        ]);
        let leaf = prop_oneof![
            (field(), op, scalar()).prop_map(|(field, op, value)| Filter::Compare {
                field,
                op,
                value
            }),
            (field(), prop::collection::vec(scalar(), 0..3))
                .prop_map(|(field, values)| Filter::In { field, values }),
            field().prop_map(|field| Filter::Exists { field }),
            (field(), "[ab]{0,2}").prop_map(|(field, prefix)| Filter::Prefix { field, prefix }),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    /// The filter with every use of the key replaced by the copy field.
    fn on_copy(f: &Filter) -> Filter {
        let rename = |field: &String| {
            if field == KEY_FIELD {
                KEY_COPY.to_owned()
            } else {
                field.clone()
            }
        };
        match f {
            Filter::Compare { field, op, value } => Filter::Compare {
                field: rename(field),
                op: *op,
                value: value.clone(),
            },
            Filter::In { field, values } => Filter::In {
                field: rename(field),
                values: values.clone(),
            },
            Filter::Exists { field } => Filter::Exists {
                field: rename(field),
            },
            Filter::Prefix { field, prefix } => Filter::Prefix {
                field: rename(field),
                prefix: prefix.clone(),
            },
            Filter::And(fs) => Filter::And(fs.iter().map(on_copy).collect()),
            Filter::Or(fs) => Filter::Or(fs.iter().map(on_copy).collect()),
            Filter::Not(f) => Filter::Not(Box::new(on_copy(f))),
        }
    }

    fn record(n: Value, s: Value, key: &str) -> Value {
        Value::Map(
            [
                ("n".to_owned(), n),
                ("s".to_owned(), s),
                (KEY_COPY.to_owned(), Value::from(key)),
            ]
            .into_iter()
            .collect(),
        )
    }

    proptest! {
        /// The key is matched without being copied into a value, and must
        /// behave exactly like a string field holding it.
        #[test]
        fn key_lookups_match_a_string_field(
            f in filter(), key in "[ab]{0,3}", n in scalar(), s in scalar()
        ) {
            let v = record(n, s, &key);
            prop_assert_eq!(f.matches(&key, &v), on_copy(&f).matches(&key, &v), "{:?}", f);
        }

        /// A borrowed key compares like the string value it stands for.
        #[test]
        fn found_key_compares_like_a_string_value(key in "[ab]{0,3}", other in scalar()) {
            let as_value = Value::from(key.as_str());
            let found = Found::Key(&key);
            prop_assert_eq!(found.cmp_value(&other), as_value.total_cmp(&other));
            prop_assert_eq!(found.cmp(Found::Value(&other)), as_value.total_cmp(&other));
            prop_assert_eq!(Found::Value(&other).cmp(found), other.total_cmp(&as_value));
            prop_assert_eq!(found.cmp(Found::Key("ab")), as_value.total_cmp(&Value::from("ab")));
            prop_assert_eq!(found.same_kind(&other), matches!(other, Value::String(_)));
        }

        /// `run` returns exactly the matching records, sorted and truncated,
        /// and sorting by the key equals sorting by its copy.
        #[test]
        fn run_filters_sorts_and_truncates(
            f in filter(),
            rows in prop::collection::btree_map("[ab]{0,3}", (scalar(), scalar()), 0..12),
            descending in any::<bool>(),
            limit in prop::option::of(0u32..8),
        ) {
            let values: Vec<(String, Value)> =
                rows.into_iter().map(|(k, (n, s))| { let v = record(n, s, &k); (k, v) }).collect();
            let records = || values.iter().map(|(k, v)| (k.as_str(), v));
            let sort = |field: &str| vec![
                SortKey { field: "n".into(), descending },
                SortKey { field: field.into(), descending: !descending },
            ];
            let q = Query { filter: Some(f.clone()), sort: sort(KEY_FIELD), limit };
            let out = q.run(records());
            let matching = records().filter(|(k, v)| f.matches(k, v)).count();
            prop_assert_eq!(out.len(), limit.map_or(matching, |l| matching.min(l as usize)));
            prop_assert!(out.iter().all(|(k, v)| f.matches(k, v)));
            prop_assert!(out.windows(2).all(|w| q.compare(w[0], w[1]).is_lt()));
            let copy = Query { filter: Some(on_copy(&f)), sort: sort(KEY_COPY), limit };
            prop_assert_eq!(out, copy.run(records()));
        }
    }
}
