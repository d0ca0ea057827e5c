//! Map pattern matching on its own: a table of (pattern, map, principal) rows.

use super::*;
use crate::rbac::pattern::{Lead, Pattern};

#[test]
fn matching() {
    let alice = principal(json!({"sub": "alice", "tenant": "acme", "n": -3, "f": 1.5,
        "deep": {"er": {"x": "y"}}}));
    let rows: &[(&str, &str, bool)] = &[
        ("a", "a", true),
        ("a", "b", false),
        ("a", "a:b", false),
        ("a:b", "a:b", true),
        ("*", "x", true),
        ("*", "", true),
        ("*", "x:y", false),
        ("*:*", "x:y", true),
        ("*:*", "x", false),
        ("**", "", true),
        ("**", "x:y:z", true),
        ("a:**", "a", true),
        ("a:**", "a:b:c", true),
        ("a:**", "ab", false),
        ("**:z", "z", true),
        ("**:z", "a:b:z", true),
        ("**:z", "a:b:zz", false),
        ("a:**:z", "a:z", true),
        ("a:**:z", "a:z:z", true),
        ("a:**:z", "a:z:y", false),
        ("a:**:b:**:c", "a:b:c", true),
        ("a:**:b:**:c", "a:x:b:y:y:c", true),
        ("a:**:b:**:c", "a:x:c:b", false),
        ("a:**:*", "a", false),
        ("a:**:*", "a:b", true),
        ("a:*:**", "a", false),
        ("**:**", "", true),
        ("u-{sub}", "u-alice", true),
        ("u-{sub}", "u-alic", false),
        ("u-{sub}-x", "u-alice-x", true),
        ("u-{sub}-x", "u-alice-", false),
        ("{sub}{sub}", "alicealice", true),
        ("{claims.tenant}:{sub}", "acme:alice", true),
        ("{claims.n}", "-3", true),
        ("{claims.f}", "1.5", true),
        ("t{claims.f}", "t1.5", true),
        ("t{claims.f}", "t1.", false),
        ("{claims.deep.er.x}", "y", true),
        ("{claims.deep.er}", "y", false),
        ("{claims.none}", "", false),
        ("{claims.none}:**", "x", false),
        ("**:{sub}", "x:y:alice", true),
        ("**:{sub}", "x:alice:y", false),
    ];
    let mut failures = Vec::new();
    for (pattern, map, want) in rows {
        let got = Pattern::parse(pattern).unwrap().matches(map, &alice);
        if got != *want {
            failures.push(format!("{pattern:?} vs {map:?}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn index_keys_are_the_first_and_second_segments() {
    for (pattern, first, second) in [
        ("a:b", "a", Some("b")),
        ("a", "a", None),
        ("a:*:c", "a", None),
        ("a:**", "a", None),
        ("*:b", "*", Some("b")),
        ("**", "*", None),
        ("**:b", "*", None),
        ("{sub}:x", "{}", Some("x")),
        ("x{sub}:x:y", "{}", Some("x")),
        ("{claims.t}:{sub}", "{}", None),
    ] {
        let parsed = Pattern::parse(pattern).unwrap();
        let lead = match parsed.lead() {
            Lead::Literal(text) => text,
            Lead::Interpolated(_) => "{}",
            Lead::Any => "*",
        };
        assert_eq!(
            (lead, parsed.second_literal()),
            (first, second),
            "{pattern}"
        );
    }
}
