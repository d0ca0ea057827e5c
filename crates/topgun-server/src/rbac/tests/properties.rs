//! Properties: the parsers never panic on any input, evaluation never panics on any data, the pattern matcher agrees with a naive one, the index agrees with a scan of every policy, and redaction never lets a denied field through.

use proptest::prelude::*;

use super::*;
use crate::rbac::condition::{Condition, Env};
use crate::rbac::pattern::Pattern;

/// Pieces of condition syntax, joined at random: mostly invalid input that
/// still looks like conditions.
const TOKENS: &[&str] = &[
    "old",
    "new",
    "auth",
    "key",
    "op",
    ".",
    "owner",
    "sub",
    "roles",
    "[",
    "]",
    "(",
    ")",
    ",",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "&&",
    "||",
    "!",
    "\"x\"",
    "\"read\"",
    "1",
    "2.5",
    "-3",
    "1e3",
    "true",
    "false",
    "null",
    "[0]",
    "[\"a\"]",
    "\"\\u00e9\"",
    "\"",
    "\\",
    "=",
    "&",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.join(" "))
}

/// Syntactically valid conditions (that may or may not type-check).
fn expression() -> impl Strategy<Value = String> {
    // Mostly paths, whose types are only known at run time, so that most
    // generated conditions pass the load-time check and get evaluated.
    let path = prop::sample::select(
        &[
            "old.owner",
            "old.n",
            "old.tags",
            "new.tags[1]",
            "new.a.b",
            "old",
            "new",
            "auth.tenant",
            "auth[\"org\"].id",
            "auth.roles[0]",
            "auth",
        ][..],
    )
    .prop_map(str::to_owned);
    let literal = prop_oneof![
        Just("auth.sub".to_owned()),
        Just("auth.roles".to_owned()),
        Just("key".to_owned()),
        Just("op".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
        "[a-z ]{0,6}".prop_map(|s| format!("{s:?}")),
    ];
    let leaf = prop_oneof![4 => path, 1 => literal];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let op = prop::sample::select(&["==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"][..]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
            inner.clone().prop_map(|e| format!("!({e})")),
            inner.clone().prop_map(|e| format!("({e})")),
            prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        (-1e9f64..1e9).prop_map(Json::from),
        prop::sample::select(&["alice", "bob", "x", "", "read", "a:b"][..]).prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(
                prop::sample::select(&["owner", "n", "tags", "tenant", "a", "b"][..])
                    .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// The obvious, exponential reference matcher.
fn naive(pattern: &[&str], map: &[&str]) -> bool {
    match pattern.split_first() {
        None => map.is_empty(),
        Some((&"**", rest)) => (0..=map.len()).any(|skip| naive(rest, &map[skip..])),
        Some((segment, rest)) => {
            !map.is_empty() && (*segment == "*" || *segment == map[0]) && naive(rest, &map[1..])
        }
    }
}

/// Every dotted path to a leaf (or an empty map) of a value.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Map(fields) = value {
        for (name, child) in fields {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match child {
                Value::Map(inner) if !inner.is_empty() => leaf_paths(child, &path, out),
                _ => out.push(path),
            }
        }
    }
}

/// Pattern segments for the index property: literal, wildcard and
/// interpolated ones, so that every kind of index list gets policies.
const FIRST_SEGMENTS: &[&str] = &[
    "a",
    "b",
    "*",
    "**",
    "{sub}",
    "{claims.tenant}",
    "t-{claims.tenant}",
    "{claims.n}",
    "{claims.org.id}",
];
const LATER_SEGMENTS: &[&str] = &["a", "b", "x", "*", "**", "{sub}", "{claims.tenant}"];
/// Map segments that hit the segments above for the principals below.
const MAP_SEGMENTS: &[&str] = &["a", "b", "x", "alice", "bob", "acme", "t-acme", "7", ""];
/// Conditions over nothing, the principal, the operation and the record.
const CONDITIONS: &[Option<&str>] = &[
    None,
    None,
    Some("auth.sub == \"alice\""),
    Some("op == \"write\""),
    Some("old == null || old.owner == auth.sub"),
    Some("key != \"k2\""),
    Some("old.n > 1"),
    Some("auth.level > 1"),
];

fn policy_defs() -> impl Strategy<Value = Vec<PolicyDef>> {
    let pattern = (
        prop::sample::select(FIRST_SEGMENTS),
        prop::collection::vec(prop::sample::select(LATER_SEGMENTS), 0..3),
    )
        .prop_map(|(first, rest)| {
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join(":")
        });
    let operations = prop::sample::subsequence(
        vec![Operation::Read, Operation::Write, Operation::Remove],
        1..=3,
    );
    let roles = prop::sample::select(vec![&[][..], &["user"][..], &["admin"][..]]);
    let fields = prop::option::of(prop_oneof![
        Just(FieldsDef::Allow(vec!["owner".into()])),
        Just(FieldsDef::Allow(vec!["owner".into(), "n".into()])),
        Just(FieldsDef::Deny(vec!["n".into()])),
    ]);
    let policy = (
        any::<bool>(),
        pattern,
        operations,
        roles,
        prop::sample::select(CONDITIONS),
        fields,
    );
    prop::collection::vec(policy, 0..24).prop_map(|policies| {
        policies
            .into_iter()
            .enumerate()
            .map(
                |(i, (deny, pattern, operations, roles, condition, fields))| {
                    let effect = if deny { Effect::Deny } else { Effect::Allow };
                    let reads = operations.contains(&Operation::Read);
                    let mut def = PolicyDef::new(format!("p{i}"), effect, pattern, operations)
                        .roles(roles.iter().copied());
                    if let Some(condition) = condition {
                        def = def.condition(condition);
                    }
                    match fields {
                        Some(fields) if !deny && reads => def.fields(fields),
                        _ => def,
                    }
                },
            )
            .collect()
    })
}

/// Principals with and without the claims the patterns interpolate.
fn principals() -> impl Strategy<Value = Principal> {
    (
        prop::sample::select(&["alice", "bob", "7"][..]),
        prop::sample::select(vec![&[][..], &["user"][..], &["admin", "user"][..]]),
        prop::sample::select(vec![
            None,
            Some(json!("acme")),
            Some(json!("")),
            Some(json!(7)),
        ]),
        prop::sample::select(vec![
            None,
            Some(json!(7)),
            Some(json!("7")),
            Some(json!(7.5)),
        ]),
        prop::option::of(prop::sample::select(vec![json!(7), json!("acme")])),
        prop::option::of(0i64..3),
    )
        .prop_map(|(sub, roles, tenant, n, org, level)| {
            let mut claims = json!({"sub": sub, "roles": roles});
            if let Some(tenant) = tenant {
                claims["tenant"] = tenant;
            }
            if let Some(n) = n {
                claims["n"] = n;
            }
            if let Some(org) = org {
                claims["org"] = json!({ "id": org });
            }
            if let Some(level) = level {
                claims["level"] = json!(level);
            }
            principal(claims)
        })
}

proptest! {
    #[test]
    fn index_agrees_with_a_scan_of_every_policy(
        defs in policy_defs(),
        who in principals(),
        map in prop::collection::vec(prop::sample::select(MAP_SEGMENTS), 1..5),
        action in prop::sample::select(&[Action::Read, Action::Write, Action::Remove][..]),
        key in prop::option::of(prop::sample::select(&["k1", "k2"][..])),
        old in prop::option::of(prop::sample::select(vec![
            json!({"owner": "alice", "n": 2}),
            json!({"owner": "bob"}),
            json!(null),
        ])),
    ) {
        let indexed = PolicySet::new(defs.clone()).unwrap();
        let linear = PolicySet::unindexed(defs).unwrap();
        let map = map.join(":");
        let old = old.map(v);
        let new = Some(v(json!({"owner": "alice"})));
        let mut req = AccessRequest::new(&who, action, &map);
        // Map-wide, then for the record.
        let verdict = indexed.evaluate(&req);
        prop_assert_eq!(&verdict, &linear.evaluate(&req));
        prop_assert_eq!(indexed.reason(&req), verdict.reason);
        req.key = key;
        req.old = old.as_ref();
        req.new = new.as_ref();
        let verdict = indexed.evaluate(&req);
        prop_assert_eq!(&verdict, &linear.evaluate(&req));
        prop_assert_eq!(indexed.reason(&req), verdict.reason);
        prop_assert_eq!(indexed.is_allowed(&req), verdict.allowed);
        // A decision said to hold for every record holds for this one,
        // whatever its key and values.
        let uniform = indexed.record_independent(&who, action, &map);
        prop_assert_eq!(uniform, linear.record_independent(&who, action, &map));
        if let (Some(uniform), Some(_)) = (uniform, key) {
            prop_assert_eq!(uniform, verdict.reason);
        }
    }

    #[test]
    fn condition_parser_never_panics(source in any::<String>()) {
        let _ = Condition::parse(&source);
    }

    #[test]
    fn pattern_parser_never_panics(source in any::<String>(), map in any::<String>()) {
        if let Ok(pattern) = Pattern::parse(&source) {
            let _ = pattern.matches(&map, &principal(json!({"sub": map.clone()})));
        }
    }

    #[test]
    fn condition_evaluation_never_panics(
        source in prop_oneof![1 => token_soup(), 4 => expression()],
        claims in json_value(),
        old in prop::option::of(json_value()),
        new in prop::option::of(json_value()),
        key in prop::option::of("[a-z:]{0,5}"),
    ) {
        let Ok(condition) = Condition::parse(&source) else {
            return Ok(());
        };
        let mut claims = match claims {
            Json::Object(m) => Json::Object(m),
            other => json!({"tenant": other}),
        };
        claims["sub"] = json!("alice");
        claims["roles"] = json!(["user"]);
        let who = principal(claims);
        let (old, new) = (old.map(v), new.map(v));
        for action in [Action::Read, Action::Write, Action::Remove] {
            let env = Env {
                principal: &who,
                action,
                key: key.as_deref(),
                old: old.as_ref(),
                new: new.as_ref(),
            };
            let _ = condition.eval(&env);
        }
        // And through a whole policy set, map-wide and per record.
        let set = PolicySet::new(vec![
            PolicyDef::new("c", Effect::Allow, "m:**", [Operation::Read, Operation::Write])
                .condition(source.clone()),
            PolicyDef::new("d", Effect::Deny, "m:*", [Operation::Remove])
                .condition(source.clone()),
        ]).unwrap();
        let mut req = AccessRequest::new(&who, Action::Read, "m:x");
        let _ = set.evaluate(&req);
        req.key = key.as_deref();
        req.old = old.as_ref();
        req.new = new.as_ref();
        for action in [Action::Read, Action::Write, Action::Remove] {
            req.action = action;
            prop_assert_eq!(set.evaluate(&req).allowed, set.is_allowed(&req));
        }
    }

    #[test]
    fn matcher_agrees_with_naive_matcher(
        pattern in prop::collection::vec(prop::sample::select(&["a", "b", "*", "**"][..]), 1..7),
        map in prop::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 1..8),
    ) {
        let compiled = Pattern::parse(&pattern.join(":")).unwrap();
        let who = principal(json!({"sub": "s"}));
        prop_assert_eq!(compiled.matches(&map.join(":"), &who), naive(&pattern, &map));
    }

    #[test]
    fn redaction_never_leaks(
        value in json_value(),
        allow in prop::option::of(prop::collection::vec("(owner|n|tags|tenant|a|b)(\\.(owner|n|a|b)){0,2}", 0..4)),
        deny in prop::collection::vec("(owner|n|tags|tenant|a|b)(\\.(owner|n|a|b)){0,2}", 0..4),
    ) {
        let value = v(value);
        let rules = FieldRules::new(allow.clone(), deny.clone()).unwrap();
        let Some(out) = rules.redact(&value) else {
            prop_assert!(!rules.is_unrestricted());
            prop_assert!(!matches!(value, Value::Map(_)));
            return Ok(());
        };
        for path in &deny {
            prop_assert!(out.get_path(path).is_none(), "{} survived in {:?}", path, out);
        }
        let mut paths = Vec::new();
        leaf_paths(&out, "", &mut paths);
        for path in paths {
            prop_assert!(
                !deny.iter().any(|d| path == *d || path.starts_with(&format!("{d}."))),
                "{} is under a denied path", path
            );
            if let Some(allow) = &allow {
                prop_assert!(
                    allow.iter().any(|a| path == *a || path.starts_with(&format!("{a}."))),
                    "{} is not allowed", path
                );
            }
        }
    }
}
