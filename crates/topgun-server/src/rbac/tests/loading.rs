//! Loading and validation: policy files in JSON and TOML, and a table of invalid policies with the error each must give.

use super::*;

fn allow(id: &str, pattern: &str) -> PolicyDef {
    PolicyDef::new(id, Effect::Allow, pattern, [Operation::Read])
}

fn with_condition(condition: &str) -> PolicyDef {
    allow("cond", "m").condition(condition)
}

/// One bad policy list and the error it must give: the kind, the policy it
/// names and, for patterns and conditions, the position.
fn check_error(defs: Vec<PolicyDef>, id: Option<&str>, position: Option<usize>, kind: &str) {
    let err = PolicySet::new(defs).unwrap_err();
    assert_eq!(err.policy_id(), id, "{err}");
    assert_eq!(err.position(), position, "{err}");
    let debug = format!("{err:?}");
    assert!(debug.contains(kind), "expected {kind} in {debug}");
    // The message names the policy too.
    if let Some(id) = id {
        assert!(err.to_string().contains(&format!("{id:?}")), "{err}");
    }
}

#[test]
fn bad_conditions_name_the_policy_and_the_position() {
    let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
    let long = format!("key == \"{}\"", "x".repeat(MAX_CONDITION_LEN));
    let cases: Vec<(String, usize, &str)> = vec![
        ("old.owner == ".into(), 13, "UnexpectedEnd"),
        ("old.owner = \"x\"".into(), 10, "UnexpectedChar('=')"),
        ("old.owner == \"x\" &".into(), 17, "UnexpectedChar('&')"),
        ("user.id == 1".into(), 0, "UnknownIdentifier(\"user\")"),
        (
            "old.a == 1 && owner".into(),
            14,
            "UnknownIdentifier(\"owner\")",
        ),
        ("\"a\" == 1".into(), 4, "TypeMismatch"),
        ("key < 3".into(), 4, "TypeMismatch"),
        ("old.n > null".into(), 6, "TypeMismatch"),
        ("auth.sub == null".into(), 9, "TypeMismatch"),
        ("1 in 2".into(), 2, "TypeMismatch"),
        ("1 in \"abc\"".into(), 2, "TypeMismatch"),
        ("1 && true".into(), 0, "NotBoolean"),
        ("true || \"x\"".into(), 8, "NotBoolean"),
        ("!\"x\"".into(), 1, "NotBoolean"),
        ("key".into(), 0, "NotBoolean"),
        ("[1, 2]".into(), 0, "NotBoolean"),
        ("key.x == \"a\"".into(), 3, "NoMembers"),
        ("op[0] == \"r\"".into(), 2, "NoMembers"),
        ("auth.sub.x == 1".into(), 0, "NoMembers"),
        ("op == \"delete\"".into(), 6, "UnknownOperation"),
        ("op in [\"read\", \"wirte\"]".into(), 15, "UnknownOperation"),
        ("key == \"a\" == true".into(), 11, "UnexpectedToken"),
        ("old.a == (1".into(), 11, "UnexpectedEnd"),
        ("old.a == [1, 2".into(), 14, "UnexpectedEnd"),
        ("old.a ==".into(), 8, "UnexpectedEnd"),
        ("".into(), 0, "UnexpectedEnd"),
        ("old. == 1".into(), 5, "UnexpectedToken"),
        ("old[true] == 1".into(), 4, "UnexpectedToken"),
        ("(old).a == 1".into(), 5, "UnexpectedToken"),
        ("in".into(), 0, "UnexpectedToken"),
        ("key == \"abc".into(), 7, "UnterminatedString"),
        ("key == \"a\\qb\"".into(), 9, "InvalidEscape"),
        ("key == \"\\ud800\"".into(), 8, "InvalidEscape"),
        ("old.n == 99999999999999999999".into(), 9, "InvalidNumber"),
        ("old.n == 1e999".into(), 9, "InvalidNumber"),
        ("old.n == 12abc".into(), 9, "InvalidNumber"),
        (deep, MAX_CONDITION_DEPTH, "TooDeep"),
        (long, MAX_CONDITION_LEN, "TooLong"),
        // Positions count characters, not bytes.
        ("\"é\" == 1".into(), 4, "TypeMismatch"),
    ];
    for (condition, position, kind) in cases {
        let def = with_condition(&condition);
        let err = PolicySet::new(vec![allow("ok", "m"), def]).unwrap_err();
        assert_eq!(err.policy_id(), Some("cond"), "{condition}: {err}");
        assert_eq!(err.position(), Some(position), "{condition}: {err}");
        let debug = format!("{err:?}");
        assert!(
            debug.contains(kind),
            "{condition}: expected {kind} in {debug}"
        );
        assert!(
            err.to_string().contains(&format!("at position {position}")),
            "{condition}: {err}"
        );
    }
}

#[test]
fn good_conditions_load() {
    for condition in [
        "old == null || old.owner == auth.sub",
        "new.owner == auth.sub && !(old.locked == true)",
        "auth.roles[0] == \"admin\" || \"admin\" in auth.roles",
        "auth[\"https://example.com/tier\"] == \"gold\"",
        "key in [\"a\", \"b\",] && op != \"remove\"",
        "old.n >= -1.5e3 && old.n < 10 && old.s <= \"m\"",
        "\"x\" in key || [1, [2, 3]] == old.list",
        "old.enabled",
        "!old.hidden",
        "old.tags[2].name == \"t\"",
        "\"\\u00e9\\ud83d\\ude00\\n\" in old.text",
    ] {
        PolicySet::new(vec![with_condition(condition)])
            .unwrap_or_else(|e| panic!("{condition}: {e}"));
    }
}

#[test]
fn bad_patterns_and_policies() {
    let pattern_cases: [(&str, usize, &str); 13] = [
        ("notes:**x", 6, "PartialWildcard"),
        ("notes:a*", 7, "PartialWildcard"),
        ("a**", 1, "PartialWildcard"),
        ("***", 0, "PartialWildcard"),
        ("a:***:b", 2, "PartialWildcard"),
        ("a::b", 2, "EmptySegment"),
        ("a:", 2, "EmptySegment"),
        (":a", 0, "EmptySegment"),
        ("", 0, "Empty"),
        ("notes:{user}", 6, "UnknownInterpolation"),
        ("notes:x{sub", 7, "UnclosedBrace"),
        ("notes:sub}", 9, "StrayBrace"),
        ("$internal:**", 0, "Reserved"),
    ];
    for (pattern, position, kind) in pattern_cases {
        check_error(vec![allow("p", pattern)], Some("p"), Some(position), kind);
    }
    check_error(
        vec![allow("p", "a:{claims.}")],
        Some("p"),
        Some(2),
        "UnknownInterpolation",
    );
    check_error(
        vec![allow("p", "a:{claims..x}")],
        Some("p"),
        Some(2),
        "UnknownInterpolation",
    );
    check_error(
        vec![allow("p", "a:{{sub}}")],
        Some("p"),
        Some(2),
        "UnclosedBrace",
    );

    check_error(vec![allow("", "m")], None, None, "EmptyId");
    check_error(
        vec![allow("a", "m"), allow("a", "n")],
        Some("a"),
        None,
        "DuplicateId",
    );
    check_error(
        vec![PolicyDef::new("e", Effect::Allow, "m", [])],
        Some("e"),
        None,
        "EmptyOperations",
    );
    check_error(
        vec![allow("r", "m").roles([""])],
        Some("r"),
        None,
        "EmptyPrincipalName",
    );
    check_error(
        vec![
            PolicyDef::new("d", Effect::Deny, "m", [Operation::Read])
                .fields(FieldsDef::Deny(vec!["x".into()])),
        ],
        Some("d"),
        None,
        "FieldsOnDeny",
    );
    check_error(
        vec![
            PolicyDef::new("w", Effect::Allow, "m", [Operation::Write])
                .fields(FieldsDef::Allow(vec!["x".into()])),
        ],
        Some("w"),
        None,
        "FieldsWithoutRead",
    );
    for bad in ["", "a..b", ".a", "a."] {
        check_error(
            vec![allow("f", "m").fields(FieldsDef::Allow(vec!["ok".into(), bad.into()]))],
            Some("f"),
            None,
            "FieldPath",
        );
    }
}

#[test]
fn json_and_toml_files_load_the_same_policies() {
    let json = r#"{ "policies": [
        { "id": "own", "effect": "allow", "roles": ["user"], "pattern": "notes:{sub}",
          "operations": ["read", "write", "remove"],
          "condition": "old == null || old.owner == auth.sub",
          "fields": { "deny": ["internal"] } },
        { "id": "no-x", "effect": "deny", "subjects": ["mallory"], "pattern": "**",
          "operations": ["write"] }
    ] }"#;
    let toml = r#"
        [[policies]]
        id = "own"
        effect = "allow"
        roles = ["user"]
        pattern = "notes:{sub}"
        operations = ["read", "write", "remove"]
        condition = 'old == null || old.owner == auth.sub'
        fields = { deny = ["internal"] }

        [[policies]]
        id = "no-x"
        effect = "deny"
        subjects = ["mallory"]
        pattern = "**"
        operations = ["write"]
    "#;
    let from_json = PolicySet::from_json_str(json).unwrap();
    let from_toml = PolicySet::from_toml_str(toml).unwrap();
    assert_eq!(from_json.defs(), from_toml.defs());
    assert_eq!(from_json.len(), 2);
    assert_eq!(
        from_json.get("own").unwrap().fields,
        Some(FieldsDef::Deny(vec!["internal".into()]))
    );

    // A bare JSON array works too, and definitions round-trip through
    // serde (the server persists them as JSON).
    let array = serde_json::to_string(from_json.defs()).unwrap();
    let again = PolicySet::from_json_str(&array).unwrap();
    assert_eq!(again.defs(), from_json.defs());
    let file = serde_json::to_string(&PolicyFile {
        policies: from_json.defs().to_vec(),
    })
    .unwrap();
    assert_eq!(
        PolicySet::from_json_str(&file).unwrap().defs(),
        from_json.defs()
    );

    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("p.json", json), ("p.TOML", toml)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            PolicySet::from_file(&path).unwrap().defs(),
            from_json.defs()
        );
    }
    let yaml = dir.path().join("p.yaml");
    std::fs::write(&yaml, json).unwrap();
    assert!(matches!(
        PolicySet::from_file(&yaml),
        Err(PolicyLoadError::UnknownFormat { .. })
    ));
    assert!(matches!(
        PolicySet::from_file(dir.path().join("missing.json")),
        Err(PolicyLoadError::Io { .. })
    ));
}

#[test]
fn malformed_files_are_refused() {
    // A misspelt field must not be ignored (it could widen a policy).
    let typo = r#"[{ "id": "a", "effect": "allow", "pattern": "m",
        "operations": ["read"], "condtion": "false" }]"#;
    assert!(matches!(
        PolicySet::from_json_str(typo),
        Err(PolicyLoadError::Json(_))
    ));
    let bad_op = r#"[{ "id": "a", "effect": "allow", "pattern": "m", "operations": ["delete"] }]"#;
    assert!(matches!(
        PolicySet::from_json_str(bad_op),
        Err(PolicyLoadError::Json(_))
    ));
    assert!(matches!(
        PolicySet::from_toml_str("[[policies]]\nid = 1"),
        Err(PolicyLoadError::Toml(_))
    ));
    let invalid = r#"{ "policies": [{ "id": "a", "effect": "allow", "pattern": "a**",
        "operations": ["read"] }] }"#;
    let err = PolicySet::from_json_str(invalid).unwrap_err();
    assert!(matches!(
        err,
        PolicyLoadError::Invalid(PolicyError::Pattern { .. })
    ));
    assert!(err.to_string().contains("\"a\""), "{err}");
    // An empty file is an empty set, which denies everything.
    assert!(PolicySet::from_toml_str("").unwrap().is_empty());
    assert!(PolicySet::from_json_str("[]").unwrap().is_empty());
}
