//! Field rules: validation, combination across allowing policies, and redaction of values.

use super::*;

fn rules(allow: Option<&[&str]>, deny: &[&str]) -> FieldRules {
    let owned = |paths: &[&str]| paths.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    FieldRules::new(allow.map(owned), owned(deny)).unwrap()
}

fn profile() -> Value {
    v(json!({
        "name": "Alice",
        "email": "alice@example.com",
        "phone": "555",
        "address": {"city": "Berlin", "street": "Main 1", "geo": {"lat": 1, "lon": 2}},
        "tags": [{"secret": 1, "name": "t"}],
        "nick": "al"
    }))
}

/// Rows of (rules, input, expected output).
#[test]
fn redaction() {
    let rows: Vec<(FieldRules, Value, Option<Json>)> = vec![
        // Allow-lists keep only what they cover; nested paths keep the
        // enclosing maps.
        (
            rules(Some(&["name", "address.city"]), &[]),
            profile(),
            Some(json!({"name": "Alice", "address": {"city": "Berlin"}})),
        ),
        (
            rules(Some(&["address"]), &["address.geo.lat"]),
            profile(),
            Some(json!({"address": {"city": "Berlin", "street": "Main 1", "geo": {"lon": 2}}})),
        ),
        // Deny-lists strip what they cover.
        (
            rules(None, &["email", "address.street", "address.geo"]),
            profile(),
            Some(
                json!({"name": "Alice", "phone": "555", "address": {"city": "Berlin"},
                "tags": [{"secret": 1, "name": "t"}], "nick": "al"}),
            ),
        ),
        // A denied path through an array strips the array (its items might
        // hold the field); through a scalar, strips the scalar.
        (
            rules(None, &["tags.secret", "nick.x"]),
            profile(),
            Some(
                json!({"name": "Alice", "email": "alice@example.com", "phone": "555",
                "address": {"city": "Berlin", "street": "Main 1", "geo": {"lat": 1, "lon": 2}}}),
            ),
        ),
        // An allowed path through a non-map keeps nothing of it; maps left
        // empty are left out.
        (
            rules(Some(&["tags.name", "nick.x", "address.zip", "name"]), &[]),
            profile(),
            Some(json!({"name": "Alice"})),
        ),
        // Missing fields are fine.
        (
            rules(Some(&["nope"]), &["gone.too"]),
            profile(),
            Some(json!({})),
        ),
        // An empty allow-list lets nothing through.
        (rules(Some(&[]), &[]), profile(), Some(json!({}))),
        // A non-map value under any restriction is dropped whole...
        (rules(Some(&["a"]), &[]), v(json!("text")), None),
        (rules(None, &["a"]), v(json!([1, 2])), None),
        (rules(None, &["a"]), Value::Null, None),
        // ...and passes unchanged when nothing is restricted.
        (rules(None, &[]), v(json!("text")), Some(json!("text"))),
    ];
    for (i, (rules, input, want)) in rows.into_iter().enumerate() {
        assert_eq!(rules.redact(&input), want.map(v), "row {i}: {rules:?}");
    }
}

#[test]
fn paths_are_minimized() {
    let r = rules(Some(&["b.c", "a", "a.x", "b", "a"]), &["z.y", "z.y.x", "q"]);
    assert_eq!(r.allow(), Some(&["a".to_owned(), "b".to_owned()][..]));
    assert_eq!(r.deny(), ["q", "z.y"]);
    assert!(rules(None, &[]).is_unrestricted());
    assert!(!rules(Some(&[]), &[]).is_unrestricted());
    for bad in ["", ".", "a..b", "a."] {
        assert!(
            FieldRules::new(Some(vec![bad.into()]), Vec::new()).is_err(),
            "{bad}"
        );
        assert!(FieldRules::new(None, vec![bad.into()]).is_err(), "{bad}");
    }
}

#[test]
fn visibility_of_paths() {
    let r = rules(Some(&["name", "address"]), &["address.street"]);
    for (path, visible) in [
        ("name", true),
        ("name.first", true),
        ("email", false),
        ("address.city", true),
        ("address.street", false),
        ("address.street.no", false),
        // Sorting by `address` would reveal the hidden street.
        ("address", false),
    ] {
        assert_eq!(r.is_visible(path), visible, "{path}");
    }
    assert!(rules(None, &[]).is_visible("anything"));
}

#[test]
fn combination() {
    // Allow-lists intersect (by coverage), deny-lists unite, rules that
    // restrict nothing do not count.
    let a = rules(Some(&["name", "address", "email"]), &["email"]);
    let b = rules(Some(&["name", "address.city", "phone"]), &["address.geo"]);
    let c = rules(None, &["nick"]);
    let free = rules(None, &[]);
    let all = FieldRules::combine([&a, &b, &c, &free]).unwrap();
    assert_eq!(
        all.allow(),
        Some(&["address.city".to_owned(), "name".to_owned()][..])
    );
    assert_eq!(all.deny(), ["address.geo", "email", "nick"]);

    let only_deny = FieldRules::combine([&c, &free]).unwrap();
    assert_eq!(only_deny.allow(), None);
    assert_eq!(only_deny, c);
    assert_eq!(FieldRules::combine([&free, &free]), None);
    assert_eq!(FieldRules::combine([]), None);
    // Disjoint allow-lists leave nothing.
    let x = rules(Some(&["x"]), &[]);
    let y = rules(Some(&["y"]), &[]);
    assert_eq!(
        FieldRules::combine([&x, &y]).unwrap().allow(),
        Some(&[][..])
    );
}

/// Field rules through the engine: the verdict of an allowed read carries
/// the combination over the allowing policies that apply.
#[test]
fn verdicts_carry_the_effective_rules() {
    let defs = vec![
        PolicyDef::new("public", Effect::Allow, "profiles", [Operation::Read]).fields(
            FieldsDef::Allow(vec!["name".into(), "address".into(), "email".into()]),
        ),
        PolicyDef::new(
            "staff",
            Effect::Allow,
            "profiles",
            [Operation::Read, Operation::Write],
        )
        .roles(["staff"])
        .fields(FieldsDef::Allow(vec![
            "name".into(),
            "address.city".into(),
            "phone".into(),
        ])),
        PolicyDef::new("no-street", Effect::Allow, "profiles", [Operation::Read])
            .roles(["user"])
            .fields(FieldsDef::Deny(vec!["address.street".into()])),
        PolicyDef::new("owner-full", Effect::Allow, "profiles", [Operation::Read])
            .condition("key == auth.sub"),
        PolicyDef::new("admin", Effect::Allow, "**", [Operation::Read]).roles(["admin"]),
    ];
    let set = PolicySet::new(defs).unwrap();
    let staff_user = principal(json!({"sub": "sam", "roles": ["staff", "user"]}));
    let user = principal(json!({"sub": "ursula", "roles": ["user"]}));
    let admin = principal(json!({"sub": "root", "roles": ["admin"]}));
    let profile = profile();

    let read = |who: &Principal, key: &'static str| {
        set.evaluate(
            &AccessRequest::new(who, Action::Read, "profiles")
                .key(key)
                .old(Some(&profile)),
        )
    };

    // Two allow-lists and a deny-list apply.
    let verdict = read(&staff_user, "alice");
    assert_eq!(verdict.deciding, ["public", "staff", "no-street"]);
    let fields = verdict.fields.unwrap();
    assert_eq!(
        fields.allow(),
        Some(&["address.city".to_owned(), "name".to_owned()][..])
    );
    assert_eq!(fields.deny(), ["address.street"]);
    assert_eq!(
        fields.redact(&profile),
        Some(v(json!({"name": "Alice", "address": {"city": "Berlin"}})))
    );

    let verdict = read(&user, "alice");
    assert_eq!(
        verdict.fields.unwrap().redact(&profile),
        Some(v(json!({"name": "Alice", "email": "alice@example.com",
            "address": {"city": "Berlin", "geo": {"lat": 1, "lon": 2}}})))
    );

    // A policy without field rules does not lift the others' restrictions:
    // the owner still sees only what every applying policy lets through.
    let verdict = read(&user, "ursula");
    assert_eq!(verdict.deciding, ["public", "no-street", "owner-full"]);
    assert!(verdict.fields.is_some());

    // So an administrator matched by the public policy is restricted too;
    // scope field-restricted policies by role to avoid that.
    let verdict = read(&admin, "alice");
    assert_eq!(verdict.deciding, ["public", "admin"]);
    assert_eq!(
        verdict.fields.unwrap().allow().map(<[String]>::len),
        Some(3)
    );
    let verdict = set.evaluate(&AccessRequest::new(&admin, Action::Read, "other"));
    assert_eq!(verdict.fields, None);

    // Writes carry no field rules.
    let verdict =
        set.evaluate(&AccessRequest::new(&staff_user, Action::Write, "profiles").key("k"));
    assert!(verdict.allowed);
    assert_eq!(verdict.fields, None);
}
