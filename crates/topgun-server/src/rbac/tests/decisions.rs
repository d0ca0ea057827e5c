//! The decision table: one policy set, one `check()`, rows of (principal, op, map, key, old, new) and the expected verdict.

use super::*;
use crate::authz::Action::{Read, Remove, Write};

/// The policy set of the table, as a policy file would hold it.
const POLICIES: &str = r#"{ "policies": [
  { "id": "admin-all", "effect": "allow", "roles": ["admin"], "pattern": "**",
    "operations": ["read", "write", "remove"] },
  { "id": "public-read", "effect": "allow", "pattern": "public:*", "operations": ["read"] },
  { "id": "public-secret", "effect": "deny", "pattern": "public:secret",
    "operations": ["read", "write"] },
  { "id": "docs-tree", "effect": "allow", "roles": ["user"], "pattern": "docs:**",
    "operations": ["read"] },
  { "id": "a-to-z", "effect": "allow", "roles": ["user"], "pattern": "a:**:z",
    "operations": ["read"] },
  { "id": "own-notes", "effect": "allow", "roles": ["user"], "pattern": "notes:{sub}",
    "operations": ["read", "write", "remove"] },
  { "id": "tenant-data", "effect": "allow", "pattern": "{claims.tenant}:**",
    "operations": ["read", "write"] },
  { "id": "org-team", "effect": "allow", "pattern": "org:{claims.org.id}:team-{sub}",
    "operations": ["read"] },
  { "id": "bob-only", "effect": "allow", "subjects": ["bob"], "pattern": "bobs",
    "operations": ["read", "write"] },
  { "id": "logs-append", "effect": "allow", "roles": ["user"], "pattern": "logs",
    "operations": ["write"] },
  { "id": "tasks-owner", "effect": "allow", "roles": ["user"], "pattern": "tasks",
    "operations": ["write", "remove"],
    "condition": "(old == null || old.owner == auth.sub) && (op == \"remove\" || new.owner == auth.sub)" },
  { "id": "tasks-read", "effect": "allow", "roles": ["user", "viewer"], "pattern": "tasks",
    "operations": ["read"] },
  { "id": "viewer-read-only", "effect": "deny", "roles": ["viewer"], "pattern": "**",
    "operations": ["write", "remove"] },
  { "id": "shared-tenant", "effect": "allow", "pattern": "shared", "operations": ["read", "write"],
    "condition": "(op == \"read\" && old.tenant == auth.tenant) || (op == \"write\" && new.tenant == auth.tenant && (old == null || old.tenant == auth.tenant))" },
  { "id": "inbox-key", "effect": "allow", "pattern": "inbox", "operations": ["read"],
    "condition": "key in [auth.sub, \"welcome\"]" },
  { "id": "premium", "effect": "allow", "pattern": "premium", "operations": ["read"],
    "condition": "auth.plan == \"pro\" && \"premium\" in auth.features" },
  { "id": "counted", "effect": "allow", "pattern": "counted", "operations": ["read"],
    "condition": "old.count > 3" },
  { "id": "guard-level", "effect": "deny", "pattern": "guarded", "operations": ["read"],
    "condition": "old.level > 3" },
  { "id": "guarded-read", "effect": "allow", "pattern": "guarded", "operations": ["read"] },
  { "id": "flag-on", "effect": "allow", "pattern": "flags", "operations": ["read"],
    "condition": "old.enabled" }
] }"#;

fn set() -> PolicySet {
    PolicySet::from_json_str(POLICIES).unwrap()
}

struct People {
    alice: Principal,
    bob: Principal,
    root: Principal,
    vera: Principal,
    paula: Principal,
    nobody: Principal,
    carl: Principal,
}

fn people() -> People {
    People {
        alice: principal(json!({"sub": "alice", "roles": ["user"], "tenant": "acme",
            "org": {"id": 7}})),
        bob: principal(json!({"sub": "bob", "roles": ["user"], "tenant": "globex"})),
        root: principal(json!({"sub": "root", "roles": ["admin"]})),
        vera: principal(json!({"sub": "vera", "roles": ["viewer"], "tenant": "acme"})),
        paula: principal(json!({"sub": "paula", "plan": "pro", "features": ["premium", "x"]})),
        nobody: principal(json!({"sub": "nobody"})),
        // Has a *role* named like bob's subject.
        carl: principal(json!({"sub": "carl", "roles": ["bob"]})),
    }
}

#[test]
fn deny_wins_and_default_deny() {
    let p = people();
    check(
        &set(),
        vec![
            row(&p.alice, Read, "public:news", true, &["public-read"]),
            // The deny beats the allow of the same pattern family...
            row(&p.alice, Read, "public:secret", false, &["public-secret"]),
            // ...and beats an admin's allow-everything.
            row(&p.root, Read, "public:secret", false, &["public-secret"]),
            row(&p.root, Write, "public:secret", false, &["public-secret"]),
            row(&p.root, Remove, "public:secret", true, &["admin-all"]),
            // Nothing matches: denied, no deciding policy.
            row(&p.alice, Read, "private", false, &[]),
            row(&p.alice, Write, "public:news", false, &[]),
            row(&p.nobody, Read, "docs", false, &[]),
        ],
    );
}

#[test]
fn wildcards() {
    let p = people();
    check(
        &set(),
        vec![
            // `*` is exactly one segment.
            row(&p.alice, Read, "public", false, &[]),
            row(&p.alice, Read, "public:a:b", false, &[]),
            row(&p.alice, Read, "public:", true, &["public-read"]),
            // `**` at the end: zero or more segments.
            row(&p.alice, Read, "docs", true, &["docs-tree"]),
            row(&p.alice, Read, "docs:x", true, &["docs-tree"]),
            row(&p.alice, Read, "docs:x:y:z", true, &["docs-tree"]),
            row(&p.alice, Read, "docsx", false, &[]),
            row(&p.alice, Read, "x:docs", false, &[]),
            // `**` in the middle.
            row(&p.alice, Read, "a:z", true, &["a-to-z"]),
            row(&p.alice, Read, "a:b:z", true, &["a-to-z"]),
            row(&p.alice, Read, "a:b:c:z", true, &["a-to-z"]),
            row(&p.alice, Read, "a:z:z", true, &["a-to-z"]),
            row(&p.alice, Read, "a:b", false, &[]),
            row(&p.alice, Read, "a:z:q", false, &[]),
            row(&p.alice, Read, "a", false, &[]),
            // `**` alone matches every (non-reserved) map.
            row(&p.root, Write, "anything:at:all", true, &["admin-all"]),
        ],
    );
}

#[test]
fn interpolation() {
    let p = people();
    let star = principal(json!({"sub": "*", "roles": ["user"], "tenant": "**"}));
    let colon = principal(json!({"sub": "alice:x", "roles": ["user"], "tenant": "acme:globex"}));
    let numeric = principal(json!({"sub": "n", "tenant": 42}));
    let boolean = principal(json!({"sub": "b", "tenant": true}));
    let empty = principal(json!({"sub": "", "roles": ["user"], "tenant": ""}));
    check(
        &set(),
        vec![
            row(&p.alice, Read, "notes:alice", true, &["own-notes"]),
            row(&p.alice, Write, "notes:alice", true, &["own-notes"]).key("k"),
            row(&p.alice, Read, "notes:bob", false, &[]),
            row(&p.alice, Read, "notes", false, &[]),
            row(&p.alice, Read, "notes:alice:sub", false, &[]),
            row(&p.bob, Read, "notes:bob", true, &["own-notes"]),
            row(&p.alice, Read, "acme:orders", true, &["tenant-data"]),
            row(&p.alice, Write, "acme:orders:2024", true, &["tenant-data"]).key("o1"),
            row(&p.alice, Read, "acme", true, &["tenant-data"]),
            row(&p.alice, Read, "globex:orders", false, &[]),
            row(&p.bob, Read, "globex:orders", true, &["tenant-data"]),
            // Nested claim paths, numbers in their JSON form, text around
            // the interpolation.
            row(&p.alice, Read, "org:7:team-alice", true, &["org-team"]),
            row(&p.alice, Read, "org:7:team-bob", false, &[]),
            row(&p.alice, Read, "org:8:team-alice", false, &[]),
            row(&p.bob, Read, "org:7:team-bob", false, &[]),
            // Interpolated text is literal: `*` and `**` in a claim match
            // only maps literally named so, never widen.
            row(&star, Read, "notes:alice", false, &[]),
            row(&star, Read, "notes:*", true, &["own-notes"]),
            row(&star, Read, "acme:orders", false, &[]),
            row(&star, Read, "**", true, &["tenant-data"]),
            row(&star, Read, "**:x", true, &["tenant-data"]),
            // A `:` in a claim can not span segments.
            row(&colon, Read, "notes:alice:x", false, &[]),
            row(&colon, Read, "notes:alice", false, &[]),
            row(&colon, Read, "acme:globex", false, &[]),
            row(&colon, Read, "acme:globex:x", false, &[]),
            row(&colon, Read, "acme", false, &[]),
            // Numbers interpolate; other types and missing claims match
            // nothing.
            row(&numeric, Read, "42:x", true, &["tenant-data"]),
            row(&numeric, Read, "42", true, &["tenant-data"]),
            row(&boolean, Read, "true:x", false, &[]),
            row(&p.nobody, Read, ":x", false, &[]),
            row(&p.root, Read, "org:7:team-root", true, &["admin-all"]),
            // Empty values never match, so principals with an empty claim
            // do not share a map.
            row(&empty, Read, "notes:", false, &[]),
            row(&empty, Read, ":x", false, &[]),
        ],
    );
}

#[test]
fn subjects_roles_and_operations() {
    let p = people();
    check(
        &set(),
        vec![
            row(&p.bob, Read, "bobs", true, &["bob-only"]),
            row(&p.bob, Write, "bobs", true, &["bob-only"]).key("k"),
            row(&p.bob, Remove, "bobs", false, &[]).key("k"),
            row(&p.alice, Read, "bobs", false, &[]),
            // A role that happens to equal a subject is not that subject.
            row(&p.carl, Read, "bobs", false, &[]),
            // `write` and `remove` are different operations.
            row(&p.alice, Write, "logs", true, &["logs-append"]).key("l1"),
            row(&p.alice, Remove, "logs", false, &[]).key("l1"),
            row(&p.alice, Read, "logs", false, &[]),
            row(&p.alice, Remove, "notes:alice", true, &["own-notes"]).key("n"),
            // Several allows apply: all are reported.
            row(
                &p.root,
                Read,
                "public:news",
                true,
                &["admin-all", "public-read"],
            ),
        ],
    );
}

#[test]
fn conditions_over_records() {
    let p = people();
    check(
        &set(),
        vec![
            // Per-user ownership: create as yourself, change your own,
            // remove your own.
            row(&p.alice, Write, "tasks", true, &["tasks-owner"])
                .key("t1")
                .proposed(json!({"owner": "alice", "title": "x"})),
            row(&p.alice, Write, "tasks", true, &["tasks-owner"])
                .key("t1")
                .old(json!({"owner": "alice"}))
                .proposed(json!({"owner": "alice", "done": true})),
            row(&p.alice, Write, "tasks", false, &[])
                .key("t1")
                .old(json!({"owner": "bob"}))
                .proposed(json!({"owner": "alice"})),
            row(&p.alice, Write, "tasks", false, &[])
                .key("t1")
                .proposed(json!({"owner": "bob"})),
            row(&p.alice, Write, "tasks", false, &[])
                .key("t1")
                .proposed(json!("not a map")),
            row(&p.alice, Remove, "tasks", true, &["tasks-owner"])
                .key("t1")
                .old(json!({"owner": "alice"})),
            row(&p.alice, Remove, "tasks", false, &[])
                .key("t1")
                .old(json!({"owner": "bob"})),
            // `new` is null for removes, whatever the caller passes.
            row(&p.alice, Remove, "tasks", false, &[])
                .key("t1")
                .old(json!({"owner": "bob"}))
                .proposed(json!({"owner": "alice"})),
            // A read-only role: its deny beats its tenant allow.
            row(&p.vera, Read, "tasks", true, &["tasks-read"]),
            row(&p.vera, Write, "tasks", false, &["viewer-read-only"])
                .key("t1")
                .proposed(json!({"owner": "vera"})),
            row(&p.vera, Read, "acme:orders", true, &["tenant-data"]),
            row(&p.vera, Write, "acme:orders", false, &["viewer-read-only"]).key("o"),
            row(&p.vera, Remove, "notes:vera", false, &["viewer-read-only"]).key("n"),
            // Multi-tenant records in one map.
            row(&p.alice, Read, "shared", true, &["shared-tenant"])
                .key("s")
                .old(json!({"tenant": "acme"})),
            row(&p.alice, Read, "shared", false, &[])
                .key("s")
                .old(json!({"tenant": "globex"})),
            row(&p.bob, Read, "shared", true, &["shared-tenant"])
                .key("s")
                .old(json!({"tenant": "globex"})),
            row(&p.alice, Write, "shared", true, &["shared-tenant"])
                .key("s")
                .proposed(json!({"tenant": "acme"})),
            row(&p.alice, Write, "shared", false, &[])
                .key("s")
                .old(json!({"tenant": "globex"}))
                .proposed(json!({"tenant": "acme"})),
            row(&p.alice, Write, "shared", false, &[])
                .key("s")
                .proposed(json!({"tenant": "globex"})),
            // Conditions over the key.
            row(&p.alice, Read, "inbox", true, &["inbox-key"]).key("alice"),
            row(&p.alice, Read, "inbox", true, &["inbox-key"]).key("welcome"),
            row(&p.alice, Read, "inbox", false, &[]).key("bob"),
            // Conditions over claims alone are decided even map-wide.
            row(&p.paula, Read, "premium", true, &["premium"]),
            row(&p.alice, Read, "premium", false, &[]),
            row(&p.paula, Read, "premium", true, &["premium"]).key("k"),
        ],
    );
}

#[test]
fn run_time_errors_fail_closed() {
    let p = people();
    check(
        &set(),
        vec![
            row(&p.alice, Read, "counted", true, &["counted"])
                .key("c")
                .old(json!({"count": 5})),
            row(&p.alice, Read, "counted", false, &[])
                .key("c")
                .old(json!({"count": 2})),
            // An ordering comparison with a string, with a missing field,
            // with no record: the allow does not apply.
            row(&p.alice, Read, "counted", false, &[])
                .key("c")
                .old(json!({"count": "many"})),
            row(&p.alice, Read, "counted", false, &[])
                .key("c")
                .old(json!({})),
            row(&p.alice, Read, "counted", false, &[]).key("c"),
            // A deny whose condition fails to evaluate applies.
            row(&p.alice, Read, "guarded", true, &["guarded-read"])
                .key("g")
                .old(json!({"level": 1})),
            row(&p.alice, Read, "guarded", false, &["guard-level"])
                .key("g")
                .old(json!({"level": 5})),
            row(&p.alice, Read, "guarded", false, &["guard-level"])
                .key("g")
                .old(json!({"level": "high"})),
            row(&p.alice, Read, "guarded", false, &["guard-level"]).key("g"),
            // A condition that is a non-boolean value at run time.
            row(&p.alice, Read, "flags", true, &["flag-on"])
                .key("f")
                .old(json!({"enabled": true})),
            row(&p.alice, Read, "flags", false, &[])
                .key("f")
                .old(json!({"enabled": "yes"})),
            row(&p.alice, Read, "flags", false, &[])
                .key("f")
                .old(json!({"enabled": false})),
        ],
    );
}

#[test]
fn reserved_maps_and_unauthenticated_principals() {
    let p = people();
    let anonymous = Principal::anonymous();
    check(
        &set(),
        vec![
            row(&p.root, Read, "$users", false, &[]),
            row(&p.root, Write, "$policies", false, &[]).key("k"),
            row(&p.root, Remove, "$", false, &[]).key("k"),
            row(&p.alice, Read, "$acme:x", false, &[]),
            // `$` further in is an ordinary character.
            row(&p.root, Read, "x:$y", true, &["admin-all"]),
            row(&anonymous, Read, "public:news", false, &[]),
        ],
    );
    let set = set();
    let verdict = set.evaluate(&AccessRequest::new(&p.root, Read, "$users"));
    assert_eq!(verdict.reason, VerdictReason::Reserved);
    let verdict = set.evaluate(&AccessRequest::new(&anonymous, Read, "public:news"));
    assert_eq!(verdict.reason, VerdictReason::Unauthenticated);
}

#[test]
fn map_wide_requests_defer_record_conditions() {
    let p = people();
    let set = set();
    // A subscription to `counted`: the allow needs a record, so it is
    // provisional and each record is checked on its own.
    let verdict = set.evaluate(&AccessRequest::new(&p.alice, Read, "counted"));
    assert!(verdict.allowed);
    assert!(verdict.per_record);
    assert_eq!(verdict.deciding, ["counted"]);
    // A deny that needs a record does not refuse the subscription, but
    // makes it per record.
    let verdict = set.evaluate(&AccessRequest::new(&p.alice, Read, "guarded"));
    assert!(verdict.allowed);
    assert!(verdict.per_record);
    assert_eq!(verdict.deciding, ["guarded-read"]);
    // Without conditions nothing is per record.
    let verdict = set.evaluate(&AccessRequest::new(&p.alice, Read, "public:news"));
    assert!(verdict.allowed && !verdict.per_record);
    // The per-record verdict then decides.
    let old = v(json!({"count": 1}));
    let req = AccessRequest::new(&p.alice, Read, "counted")
        .key("c")
        .old(Some(&old));
    assert!(!set.evaluate(&req).allowed);
    assert!(!set.evaluate(&req).per_record);
}

#[test]
fn policy_seam_messages_do_not_name_policies() {
    let p = people();
    let policy = RbacPolicy::new(set());
    assert_eq!(
        policy.decide(&p.alice, Read, "public:news", None),
        Decision::Allow
    );
    let Decision::Deny(message) = policy.decide(&p.alice, Read, "public:secret", None) else {
        panic!("expected a deny");
    };
    assert!(!message.contains("public-secret"), "{message}");
    assert_eq!(
        policy.decide(&p.alice, Write, "private", Some("k")),
        Decision::Deny("no policy allows write".to_owned())
    );
    assert!(matches!(
        policy.decide(&p.root, Read, "$x", None),
        Decision::Deny(m) if m.contains("reserved")
    ));
}

#[test]
fn replacing_the_policy_set_takes_effect() {
    let p = people();
    let policy = RbacPolicy::new(PolicySet::empty());
    assert!(!policy.is_allowed(&AccessRequest::new(&p.alice, Read, "public:news")));
    let old = policy.replace(set());
    assert!(old.is_empty());
    assert!(policy.is_allowed(&AccessRequest::new(&p.alice, Read, "public:news")));
    assert_eq!(policy.policies().len(), set().len());
}

#[test]
fn many_policies_are_indexed() {
    // 1,000 policies on distinct first segments plus a few general ones:
    // the verdict only involves the matching ones.
    let mut defs: Vec<PolicyDef> = (0..1000)
        .map(|i| {
            PolicyDef::new(
                format!("p{i}"),
                Effect::Allow,
                format!("m{i}:**"),
                [Operation::Read],
            )
        })
        .collect();
    defs.push(PolicyDef::new(
        "all-deny-x",
        Effect::Deny,
        "*:x",
        [Operation::Read],
    ));
    let set = PolicySet::new(defs).unwrap();
    let p = people();
    check(
        &set,
        vec![
            row(&p.alice, Read, "m500:a", true, &["p500"]),
            row(&p.alice, Read, "m999", true, &["p999"]),
            row(&p.alice, Read, "m500:x", false, &["all-deny-x"]),
            row(&p.alice, Read, "m1000", false, &[]),
            row(&p.alice, Write, "m1:a", false, &[]),
        ],
    );
}
