//! The policy endpoints of the admin API: every one with and without
//! `policy.admin`, changes that take effect on live sessions without a
//! restart, the dry run with its deciding policies, and policies that
//! survive a restart.

use serde_json::json;
use topgun_client::{Client, ClientConfig, OpOutcome, StaticToken};
use topgun_core::Value;
use topgun_protocol::RejectCode;
use topgun_server::StorageConfig;
use topgun_tests::{start_with, token_for};

use super::admin::{admin_builder, call, login};

fn rejected(o: &OpOutcome) -> Option<RejectCode> {
    match o {
        OpOutcome::Acked { .. } => None,
        OpOutcome::Rejected { code, .. } => Some(*code),
    }
}

#[tokio::test]
async fn policies_are_managed_over_the_api_and_apply_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || admin_builder().storage(StorageConfig::sled(dir.path()));
    let server = start_with(builder()).await;
    let addr = server.addr;
    let admin = login(addr, Some(&["policy.admin"])).await;
    let keys_only = login(addr, Some(&["keys.admin"])).await;
    let own = json!({"id": "own-notes", "effect": "allow", "pattern": "notes:{sub}",
                     "operations": ["read", "write", "remove"]});

    // Capability checks on every policy endpoint.
    for (method, path, body) in [
        ("GET", "/api/admin/policies", None),
        ("POST", "/api/admin/policies", Some(own.clone())),
        ("GET", "/api/admin/policies/own-notes", None),
        ("PUT", "/api/admin/policies/own-notes", Some(own.clone())),
        ("DELETE", "/api/admin/policies/own-notes", None),
        ("POST", "/api/admin/policies/dry-run", Some(json!({}))),
    ] {
        assert_eq!(
            call(addr, method, path, None, body.as_ref()).await.0,
            401,
            "{method} {path}"
        );
        assert_eq!(
            call(addr, method, path, Some(&keys_only), body.as_ref()).await,
            (
                403,
                json!({"error": "missing_capability", "capability": "policy.admin"})
            ),
            "{method} {path}"
        );
    }

    // Before any policy: open, as without RBAC.
    let alice = Client::connect(
        ClientConfig::new(&format!("ws://{addr}/ws")).unwrap(),
        StaticToken::new(token_for("alice")),
    )
    .await
    .unwrap();
    assert_eq!(
        rejected(
            &alice
                .send_op(alice.put("notes:bob", "k", Value::Int(1)))
                .await
                .unwrap()
        ),
        None
    );

    assert_eq!(
        call(
            addr,
            "POST",
            "/api/admin/policies",
            Some(&admin),
            Some(&own)
        )
        .await,
        (201, json!({"id": "own-notes"}))
    );
    assert_eq!(
        call(
            addr,
            "POST",
            "/api/admin/policies",
            Some(&admin),
            Some(&own)
        )
        .await,
        (409, json!({"error": "duplicate_policy", "id": "own-notes"}))
    );
    let (status, bad) = call(
        addr,
        "POST",
        "/api/admin/policies",
        Some(&admin),
        Some(&json!({"id": "bad", "effect": "allow", "pattern": "a", "operations": ["read"], "condition": "new.x =="})),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_policy"))
    );
    assert!(bad["detail"].as_str().unwrap().contains("bad"), "{bad}");

    // In force at once, on the already-open session: default deny.
    assert_eq!(
        rejected(
            &alice
                .send_op(alice.put("notes:bob", "k", Value::Int(2)))
                .await
                .unwrap()
        ),
        Some(RejectCode::Forbidden)
    );
    assert_eq!(
        rejected(
            &alice
                .send_op(alice.put("notes:alice", "k", Value::Int(2)))
                .await
                .unwrap()
        ),
        None
    );

    // Dry run: the deciding policies.
    let (status, verdict) = call(
        addr,
        "POST",
        "/api/admin/policies/dry-run",
        Some(&admin),
        Some(&json!({"sub": "alice", "operation": "write", "map": "notes:alice", "key": "k", "new": {"x": 1}})),
    )
    .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], json!(true));
    assert_eq!(verdict["deciding_policies"], json!(["own-notes"]));
    let (_, verdict) = call(
        addr,
        "POST",
        "/api/admin/policies/dry-run",
        Some(&admin),
        Some(&json!({"sub": "alice", "operation": "write", "map": "notes:bob", "key": "k"})),
    )
    .await;
    assert_eq!(
        (
            verdict["allowed"].clone(),
            verdict["deciding_policies"].clone()
        ),
        (json!(false), json!([]))
    );

    // Replace, read back, list.
    let mut read_only = own.clone();
    read_only["operations"] = json!(["read"]);
    assert_eq!(
        call(
            addr,
            "PUT",
            "/api/admin/policies/own-notes",
            Some(&admin),
            Some(&read_only)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            addr,
            "GET",
            "/api/admin/policies/own-notes",
            Some(&admin),
            None
        )
        .await,
        (200, read_only.clone())
    );
    assert_eq!(
        rejected(
            &alice
                .send_op(alice.put("notes:alice", "k", Value::Int(3)))
                .await
                .unwrap()
        ),
        Some(RejectCode::Forbidden)
    );
    assert_eq!(
        call(addr, "GET", "/api/admin/policies/nope", Some(&admin), None).await,
        (404, json!({"error": "unknown_policy", "id": "nope"}))
    );
    server.stop().await.unwrap();

    // Policies survive a restart.
    let server = start_with(builder()).await;
    let admin = login(server.addr, Some(&["policy.admin"])).await;
    let (status, list) = call(
        server.addr,
        "GET",
        "/api/admin/policies",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((status, list), (200, json!({"policies": [read_only]})));
    assert_eq!(
        call(
            server.addr,
            "DELETE",
            "/api/admin/policies/own-notes",
            Some(&admin),
            None
        )
        .await
        .0,
        204
    );
    server.stop().await.unwrap();
}
