//! The condition language at run time: semantics of each operator over claims, keys and record values, and what fails to evaluate.

use super::*;
use crate::rbac::condition::{Condition, Env};

/// Evaluates `condition` for alice reading/writing `key` with `old`/`new`;
/// `None` when it fails to evaluate.
fn eval(condition: &str, action: Action, old: Option<Json>, new: Option<Json>) -> Option<bool> {
    let c = Condition::parse(condition).unwrap_or_else(|e| panic!("{condition}: {e}"));
    let who = principal(json!({
        "sub": "alice", "roles": ["user", "editor"], "tenant": "acme", "level": 3,
        "ratio": 0.5, "tags": ["a", "b"], "org": {"id": 7, "name": "Acme"},
        "https://example.com/tier": "gold", "big": 18446744073709551615u64
    }));
    let (old, new) = (old.map(v), new.map(v));
    let env = Env {
        principal: &who,
        action,
        key: Some("alice:note-1"),
        old: old.as_ref(),
        new: new.as_ref(),
    };
    c.eval(&env).ok()
}

/// Rows of (condition, expected): `Some(bool)` or `None` for an
/// evaluation failure. `old` is a fixed record, `new` absent, op "read".
#[test]
fn semantics() {
    let old = json!({
        "owner": "alice", "n": 5, "f": 2.5, "s": "hello world", "t": true,
        "list": [1, "two", [3]], "nested": {"a": {"b": "deep"}}, "nil": null,
        "org": {"id": 7, "name": "Acme"}
    });
    let rows: &[(&str, Option<bool>)] = &[
        // Roots.
        ("auth.sub == \"alice\"", Some(true)),
        ("auth.roles == [\"user\", \"editor\"]", Some(true)),
        ("\"editor\" in auth.roles", Some(true)),
        ("\"admin\" in auth.roles", Some(false)),
        ("auth.roles[1] == \"editor\"", Some(true)),
        ("auth.roles[9] == null", Some(true)),
        ("auth.tenant == \"acme\"", Some(true)),
        ("auth.org.name == old.org.name", Some(true)),
        ("auth.org == old.org", Some(true)),
        ("auth[\"https://example.com/tier\"] == \"gold\"", Some(true)),
        ("auth[\"org\"][\"id\"] == 7", Some(true)),
        ("auth.missing == null", Some(true)),
        ("key == \"alice:note-1\"", Some(true)),
        ("auth.sub in key", Some(true)),
        ("\"bob\" in key", Some(false)),
        ("op == \"read\"", Some(true)),
        ("op in [\"write\", \"remove\"]", Some(false)),
        ("new == null", Some(true)),
        // Equality.
        ("old.n == 5", Some(true)),
        ("old.n == 5.0", Some(true)),
        ("old.n != 5", Some(false)),
        ("old.n == \"5\"", Some(false)),
        ("old.f == 2.5", Some(true)),
        ("old.t == true", Some(true)),
        ("old.nil == null", Some(true)),
        ("old.absent == null", Some(true)),
        ("old.s.length == null", Some(true)),
        ("old.list == [1, \"two\", [3]]", Some(true)),
        ("old.list == [1, \"two\", [3.0]]", Some(true)),
        ("old.list == [1, \"two\"]", Some(false)),
        ("old.list[2] == [3]", Some(true)),
        ("old.list[2][0] == 3", Some(true)),
        ("old.nested.a.b == \"deep\"", Some(true)),
        ("old.nested == old.nested", Some(true)),
        ("old.nested == old.org", Some(false)),
        ("[auth.sub, 1] == [old.owner, 1.0]", Some(true)),
        // Ordering.
        (
            "old.n > 4 && old.n >= 5 && old.n < 6 && old.n <= 5",
            Some(true),
        ),
        ("old.f < old.n", Some(true)),
        ("auth.level < old.n", Some(true)),
        ("auth.ratio < old.f", Some(true)),
        ("auth.big > old.n", Some(true)),
        ("old.s > \"hello\"", Some(true)),
        ("old.s < \"a\"", Some(false)),
        ("-1 < 0", Some(true)),
        ("old.n > \"4\"", None),
        ("old.absent > 1", None),
        ("old.nil < 1", None),
        ("old.t > old.n", None),
        ("old.list < old.list", None),
        // `in`.
        ("\"two\" in old.list", Some(true)),
        ("3 in old.list", Some(false)),
        ("[3] in old.list", Some(true)),
        ("\"world\" in old.s", Some(true)),
        ("\"World\" in old.s", Some(false)),
        ("old.n in [1, 5, 9]", Some(true)),
        ("old.n in [1, old.absent > 1]", None),
        ("old.n in [5, old.absent > 1]", Some(true)),
        ("1 in old.s", None),
        ("\"x\" in old.n", None),
        ("\"x\" in old.absent", None),
        ("\"x\" in auth.org", None),
        // Logic: short-circuit, left to right, booleans only.
        ("true && false", Some(false)),
        ("false || true", Some(true)),
        ("!(old.n == 5)", Some(false)),
        ("!!old.t", Some(true)),
        ("false && old.absent > 1", Some(false)),
        ("true || old.absent > 1", Some(true)),
        ("old.absent > 1 || true", None),
        ("old.t && old.n == 5", Some(true)),
        ("old.s && true", None),
        ("!old.n", None),
        ("old.nil", None),
        ("old.t", Some(true)),
        ("old.absent || true", None),
        // Precedence: `&&` binds tighter than `||`, `!` tighter than `==`.
        ("true || false && false", Some(true)),
        ("(true || false) && false", Some(false)),
        ("!old.t == false", Some(true)),
    ];
    let mut failures = Vec::new();
    for (condition, want) in rows {
        let got = eval(condition, Action::Read, Some(old.clone()), None);
        if got != *want {
            failures.push(format!("{condition}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn old_and_new_by_operation() {
    let record = json!({"owner": "alice"});
    let cond = "(old == null || old.owner == auth.sub) && new.owner == auth.sub";
    assert_eq!(
        eval(cond, Action::Write, None, Some(record.clone())),
        Some(true)
    );
    assert_eq!(
        eval(
            cond,
            Action::Write,
            Some(json!({"owner": "bob"})),
            Some(record.clone())
        ),
        Some(false)
    );
    assert_eq!(eval(cond, Action::Write, None, None), Some(false));
    assert_eq!(
        eval("op == \"remove\"", Action::Remove, None, None),
        Some(true)
    );
    assert_eq!(
        eval("op == \"write\"", Action::Write, None, None),
        Some(true)
    );
    // A scalar record: members of it are null.
    assert_eq!(
        eval("old.owner == null", Action::Read, Some(json!(5)), None),
        Some(true)
    );
    assert_eq!(
        eval("old == 5", Action::Read, Some(json!(5)), None),
        Some(true)
    );
}

#[test]
fn which_conditions_need_a_record() {
    for (condition, needs) in [
        ("auth.sub == \"a\"", false),
        ("op == \"read\" && \"x\" in auth.roles", false),
        ("key == \"a\"", true),
        ("auth.sub in [old.owner]", true),
        ("!(new.x == 1)", true),
    ] {
        assert_eq!(
            Condition::parse(condition).unwrap().needs_record(),
            needs,
            "{condition}"
        );
    }
}

#[test]
fn deep_data_does_not_overflow() {
    // Compare two values nested far deeper than any decoder allows: the
    // comparison gives up (and fails closed) instead of exhausting the
    // stack.
    let mut deep = Value::Int(1);
    for _ in 0..1000 {
        deep = Value::Array(vec![deep]);
    }
    let c = Condition::parse("old == new").unwrap();
    let who = principal(json!({"sub": "a"}));
    let env = Env {
        principal: &who,
        action: Action::Write,
        key: Some("k"),
        old: Some(&deep),
        new: Some(&deep),
    };
    assert!(c.eval(&env).is_err());
}
