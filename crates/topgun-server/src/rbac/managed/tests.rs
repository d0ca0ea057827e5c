//! Durable policies: changes persist before they apply, survive a reload,
//! and a policy file is applied on top of what was persisted.

use std::sync::Arc;

use super::*;
use crate::rbac::{Effect, Operation};
use crate::store::MemoryStore;

fn def(id: &str, pattern: &str) -> PolicyDef {
    PolicyDef::new(
        id,
        Effect::Allow,
        pattern,
        vec![Operation::Read, Operation::Write],
    )
}

fn alice() -> Principal {
    Principal {
        sub: "alice".to_owned(),
        roles: Vec::new(),
        claims: serde_json::Map::new(),
        authenticated: true,
    }
}

#[tokio::test]
async fn changes_persist_and_survive_a_reload() {
    let store = Arc::new(MemoryStore::new());
    let policies = ManagedPolicies::load(store.clone(), None).await.unwrap();
    assert!(policies.is_open(), "no policy yet: behaves as without RBAC");
    assert_eq!(
        policies.decide(&alice(), Action::Write, "anything", Some("k")),
        Decision::Allow
    );

    policies.create(def("notes", "notes:{sub}")).await.unwrap();
    assert!(matches!(
        policies.create(def("notes", "x")).await,
        Err(ManageError::Exists(_))
    ));
    // From the first policy on, default deny.
    assert!(matches!(
        policies.decide(&alice(), Action::Write, "anything", Some("k")),
        Decision::Deny(_)
    ));
    assert_eq!(
        policies.decide(&alice(), Action::Write, "notes:alice", Some("k")),
        Decision::Allow
    );

    // An invalid change is refused and changes nothing.
    assert!(matches!(
        policies.replace(def("notes", "bad:***")).await,
        Err(ManageError::Invalid(_))
    ));
    assert!(matches!(
        policies.delete("missing").await,
        Err(ManageError::NotFound(_))
    ));
    policies.replace(def("notes", "notes:**")).await.unwrap();

    let reloaded = ManagedPolicies::load(Arc::new(store.reopen()), None)
        .await
        .unwrap();
    assert_eq!(reloaded.current().defs(), policies.current().defs());
    assert_eq!(
        reloaded.decide(&alice(), Action::Write, "notes:bob", Some("k")),
        Decision::Allow
    );

    reloaded.delete("notes").await.unwrap();
    let again = ManagedPolicies::load(Arc::new(store.reopen()), None)
        .await
        .unwrap();
    assert!(again.is_open());
}

#[tokio::test]
async fn a_policy_file_is_applied_on_top_of_the_persisted_set() {
    let store = Arc::new(MemoryStore::new());
    let policies = ManagedPolicies::load(store.clone(), None).await.unwrap();
    policies.create(def("api-made", "a")).await.unwrap();
    policies.create(def("shared", "old-pattern")).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policies]]\nid = \"shared\"\neffect = \"allow\"\npattern = \"new-pattern\"\noperations = [\"read\"]\n\n\
         [[policies]]\nid = \"from-file\"\neffect = \"deny\"\npattern = \"secret:**\"\noperations = [\"read\"]\n",
    )
    .unwrap();
    let loaded = ManagedPolicies::load(Arc::new(store.reopen()), Some(&file))
        .await
        .unwrap();
    let current = loaded.current();
    let ids: Vec<&str> = current.defs().iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["api-made", "shared", "from-file"]);
    assert_eq!(
        loaded.current().get("shared").unwrap().pattern,
        "new-pattern",
        "the file wins"
    );
    // ...and the result was persisted.
    let after = ManagedPolicies::load(Arc::new(store.reopen()), None)
        .await
        .unwrap();
    assert_eq!(after.current().defs(), loaded.current().defs());

    // A broken file fails start-up with the policy named.
    std::fs::write(&file, "[[policies]]\nid = \"broken\"\neffect = \"allow\"\npattern = \"a:**b\"\noperations = [\"read\"]\n")
        .unwrap();
    let err = ManagedPolicies::load(Arc::new(store.reopen()), Some(&file))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}
