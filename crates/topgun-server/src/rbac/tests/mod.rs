//! Tests of the RBAC engine: the decision table, loading and validation, conditions, patterns, field rules, and properties.

mod conditions;
mod decisions;
mod fields;
mod loading;
mod patterns;
mod properties;

use serde_json::{Value as Json, json};
use topgun_core::Value;

use super::*;

/// A principal with these claims (`sub` and `roles` are taken from them).
fn principal(claims: Json) -> Principal {
    let claims = match claims {
        Json::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let sub = claims
        .get("sub")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let roles = claims
        .get("roles")
        .and_then(Json::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Principal {
        sub,
        roles,
        claims,
        authenticated: true,
    }
}

/// A core value from JSON (integers stay integers).
fn v(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap()),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(items.into_iter().map(v).collect()),
        Json::Object(fields) => Value::Map(fields.into_iter().map(|(k, x)| (k, v(x))).collect()),
    }
}

/// One row of a decision table: who does what to which record, and the
/// expected outcome.
struct Row {
    who: Principal,
    action: Action,
    map: &'static str,
    key: Option<&'static str>,
    old: Option<Json>,
    new: Option<Json>,
    allowed: bool,
    deciding: &'static [&'static str],
}

/// A row for a map-wide request; refine with the methods below.
fn row(
    who: &Principal,
    action: Action,
    map: &'static str,
    allowed: bool,
    deciding: &'static [&'static str],
) -> Row {
    Row {
        who: who.clone(),
        action,
        map,
        key: None,
        old: None,
        new: None,
        allowed,
        deciding,
    }
}

impl Row {
    fn key(mut self, key: &'static str) -> Self {
        self.key = Some(key);
        self
    }

    fn old(mut self, old: Json) -> Self {
        self.old = Some(old);
        self
    }

    fn proposed(mut self, new: Json) -> Self {
        self.new = Some(new);
        self
    }
}

/// Checks every row against `set`, through `evaluate`, `is_allowed`, the
/// `Policy` seam and a scan of every policy without the index (which must
/// agree), and reports all failing rows at once.
fn check(set: &PolicySet, rows: Vec<Row>) {
    let policy = RbacPolicy::new(PolicySet::new(set.defs().to_vec()).unwrap());
    let linear = PolicySet::unindexed(set.defs().to_vec()).unwrap();
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let old = row.old.clone().map(v);
        let new = row.new.clone().map(v);
        let req = AccessRequest {
            principal: &row.who,
            action: row.action,
            map: row.map,
            key: row.key,
            old: old.as_ref(),
            new: new.as_ref(),
        };
        let verdict = set.evaluate(&req);
        let got = (verdict.allowed, verdict.deciding.clone());
        let want = (
            row.allowed,
            row.deciding
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        );
        if got != want {
            failures.push(format!(
                "row {i}: {} {:?} {:?} key={:?} old={:?} new={:?}: want {want:?}, got {got:?} ({:?})",
                row.who.sub, row.action, row.map, row.key, row.old, row.new, verdict.reason
            ));
        }
        if set.is_allowed(&req) != verdict.allowed {
            failures.push(format!("row {i}: is_allowed disagrees with evaluate"));
        }
        if linear.evaluate(&req) != verdict {
            failures.push(format!("row {i}: a scan of every policy disagrees"));
        }
        if row.old.is_none() && row.new.is_none() {
            let decided = policy.decide(&row.who, row.action, row.map, row.key);
            if (decided == Decision::Allow) != verdict.allowed {
                failures.push(format!("row {i}: Policy::decide disagrees: {decided:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
