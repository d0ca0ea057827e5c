//! RBAC end to end: policies enforced per op of a batch, conditions over the
//! stored and proposed values, deletes authorized as `remove`, and reads
//! (live queries and sync) that never deliver a denied record or field.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use topgun_client::{Client, ClientConfig, OpOutcome, StaticToken};
use topgun_core::{LwwMap, Query, Value};
use topgun_protocol::{ChangeKind, RejectCode, WriteConcern};
use topgun_server::Limits;
use topgun_server::rbac::{PolicySet, RbacPolicy};
use topgun_tests::{hs256, now_secs, start_with, test_builder};

const POLICIES: &str = r#"{"policies": [
  {"id": "own-notes", "effect": "allow", "pattern": "notes:{sub}", "operations": ["read", "write", "remove"]},
  {"id": "board-read", "effect": "allow", "pattern": "board", "operations": ["read"],
   "fields": {"deny": ["secret"]}},
  {"id": "board-hide-private", "effect": "deny", "pattern": "board", "operations": ["read"],
   "condition": "old.private == true && old.owner != auth.sub"},
  {"id": "board-write-own", "effect": "allow", "pattern": "board", "operations": ["write"],
   "condition": "new.owner == auth.sub && (old == null || old.owner == auth.sub)"},
  {"id": "editors-remove", "effect": "allow", "roles": ["editor"], "pattern": "board", "operations": ["remove"]},
  {"id": "no-admin-maps", "effect": "deny", "pattern": "admin:**", "operations": ["read", "write", "remove"]},
  {"id": "everything-for-ops", "effect": "allow", "roles": ["ops"], "pattern": "**", "operations": ["read", "write", "remove"]}
]}"#;

fn entry(owner: &str, text: &str, private: bool) -> Value {
    Value::Map(BTreeMap::from([
        ("owner".to_owned(), Value::from(owner)),
        ("text".to_owned(), Value::from(text)),
        ("secret".to_owned(), Value::from("s3cr3t")),
        ("private".to_owned(), Value::Bool(private)),
    ]))
}

async fn rbac_server() -> topgun_server::RunningServer {
    let set = PolicySet::from_json_str(POLICIES).unwrap();
    start_with(test_builder(Limits::default()).policy(Arc::new(RbacPolicy::new(set)))).await
}

async fn connect(addr: std::net::SocketAddr, sub: &str, roles: &[&str]) -> Client {
    let token = hs256(&serde_json::json!({"sub": sub, "roles": roles, "exp": now_secs() + 600}));
    Client::connect(
        ClientConfig::new(&format!("ws://{addr}/ws")).unwrap(),
        StaticToken::new(token),
    )
    .await
    .unwrap()
}

fn code(o: &OpOutcome) -> Option<RejectCode> {
    match o {
        OpOutcome::Acked { .. } => None,
        OpOutcome::Rejected { code, .. } => Some(*code),
    }
}

#[tokio::test]
async fn a_denied_write_in_a_batch_is_rejected_while_the_rest_lands() {
    let server = rbac_server().await;
    let alice = connect(server.addr, "alice", &[]).await;
    let outcomes = alice
        .send_batch(
            vec![
                alice.put("notes:alice", "n1", Value::from("mine")),
                alice.put("notes:bob", "n1", Value::from("not mine")),
                alice.put("admin:config", "k", Value::Int(1)),
                alice.put("notes:alice", "n2", Value::from("also mine")),
            ],
            WriteConcern::Durable,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes.iter().map(code).collect::<Vec<_>>(),
        [
            None,
            Some(RejectCode::Forbidden),
            Some(RejectCode::Forbidden),
            None
        ]
    );
    // Bob cannot read Alice's notes, and the rejected write never landed.
    let bob = connect(server.addr, "bob", &[]).await;
    assert!(
        bob.subscribe("notes:alice", &Query::default())
            .await
            .is_err()
    );
    let mine = bob.subscribe("notes:bob", &Query::default()).await.unwrap();
    assert!(mine.initial().is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn conditions_see_the_stored_and_the_proposed_value_and_deletes_are_removes() {
    let server = rbac_server().await;
    let alice = connect(server.addr, "alice", &[]).await;
    let bob = connect(server.addr, "bob", &[]).await;
    let editor = connect(server.addr, "erin", &["editor"]).await;

    // New entries must be owned by the writer.
    assert_eq!(
        code(
            &alice
                .send_op(alice.put("board", "a", entry("alice", "hi", false)))
                .await
                .unwrap()
        ),
        None
    );
    assert_eq!(
        code(
            &alice
                .send_op(alice.put("board", "forged", entry("bob", "x", false)))
                .await
                .unwrap()
        ),
        Some(RejectCode::Forbidden)
    );
    // Bob may not overwrite Alice's entry (old.owner), even claiming it.
    assert_eq!(
        code(
            &bob.send_op(bob.put("board", "a", entry("bob", "mine now", false)))
                .await
                .unwrap()
        ),
        Some(RejectCode::Forbidden)
    );
    // Deleting is `remove`: the owner's write rule does not cover it...
    assert_eq!(
        code(&alice.send_op(alice.remove("board", "a")).await.unwrap()),
        Some(RejectCode::Forbidden)
    );
    // ...an editor's remove rule does.
    assert_eq!(
        code(&editor.send_op(editor.remove("board", "a")).await.unwrap()),
        None
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn live_queries_and_sync_never_deliver_a_denied_record_or_field() {
    let server = rbac_server().await;
    let alice = connect(server.addr, "alice", &[]).await;
    let bob = connect(server.addr, "bob", &[]).await;
    for (key, value) in [
        ("pub", entry("alice", "public", false)),
        ("priv", entry("alice", "private", true)),
    ] {
        assert_eq!(
            code(&alice.send_op(alice.put("board", key, value)).await.unwrap()),
            None
        );
    }

    let mut sub = bob.subscribe("board", &Query::default()).await.unwrap();
    let initial: Vec<(String, Value)> = sub
        .initial()
        .iter()
        .map(|(k, r)| (k.clone(), r.value.clone().unwrap()))
        .collect();
    assert_eq!(
        initial.len(),
        1,
        "the private entry is not delivered: {initial:?}"
    );
    assert_eq!(initial[0].0, "pub");
    assert_eq!(initial[0].1.field("secret"), None, "denied field stripped");
    assert_eq!(initial[0].1.field("text"), Some(&Value::from("public")));

    // Updates obey the same rules.
    alice
        .send_op(alice.put("board", "priv2", entry("alice", "hidden", true)))
        .await
        .unwrap();
    alice
        .send_op(alice.put("board", "pub2", entry("alice", "visible", false)))
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.key.as_str(), change.change),
        ("pub2", ChangeKind::Enter)
    );
    assert_eq!(change.record.value.as_ref().unwrap().field("secret"), None);

    // Alice sees her private entries (the deny applies to others only).
    let own = alice.subscribe("board", &Query::default()).await.unwrap();
    assert_eq!(own.initial().len(), 4);

    // Sync: the same records and fields as the live query.
    let mut replica = LwwMap::new();
    bob.sync_lww("board", &mut replica).await.unwrap();
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = replica.iter_live(0).map(|(k, _)| k).collect();
        k.sort_unstable();
        k
    };
    assert_eq!(keys, ["pub", "pub2"]);
    assert!(
        replica
            .iter_live(0)
            .all(|(_, v)| v.field("secret").is_none())
    );
    server.stop().await.unwrap();
}
