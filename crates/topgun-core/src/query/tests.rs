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
