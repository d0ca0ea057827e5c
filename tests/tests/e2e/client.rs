//! The server driven through `topgun-client`, the way applications use it:
//! two clients and a live query, offline-then-sync with deletions, `wss://`
//! with a custom CA, token renewal through the provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use topgun_client::{
    CaBundle, Client, ClientConfig, ClientEvent, OpOutcome, StaticToken, TokenReason, token_fn,
};
use topgun_core::{CmpOp, Filter, LwwMap, Query, Value};
use topgun_protocol::{ChangeKind, Encoding, WriteConcern};
use topgun_server::{Limits, TlsConfig};
use topgun_tests::{hs256, now_secs, start, start_with, test_builder, token_for};

fn todo(title: &str, done: bool) -> Value {
    Value::Map(BTreeMap::from([
        ("title".to_owned(), Value::from(title)),
        ("done".to_owned(), Value::Bool(done)),
    ]))
}

async fn connect(addr: std::net::SocketAddr, sub: &str, encoding: Encoding) -> Client {
    let config = ClientConfig::new(&format!("ws://{addr}/ws"))
        .unwrap()
        .with_encoding(encoding);
    Client::connect(config, StaticToken::new(token_for(sub)))
        .await
        .unwrap()
}

fn acked(outcome: &OpOutcome) -> bool {
    matches!(outcome, OpOutcome::Acked { .. })
}

#[tokio::test]
async fn one_client_writes_and_the_other_clients_live_query_sees_it() {
    let server = start().await;
    let writer = connect(server.addr, "writer", Encoding::Bincode).await;
    let reader = connect(server.addr, "reader", Encoding::Json).await;

    assert!(acked(
        &writer
            .send_op(writer.put("todos", "a", todo("milk", false)))
            .await
            .unwrap()
    ));
    let query = Query {
        filter: Some(Filter::Compare {
            field: "done".into(),
            op: CmpOp::Eq,
            value: Value::Bool(false),
        }),
        sort: Vec::new(),
        limit: None,
    };
    let mut sub = reader.subscribe("todos", &query).await.unwrap();
    assert_eq!(
        sub.initial()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );

    let outcomes = writer
        .send_batch(
            vec![
                writer.put("todos", "b", todo("eggs", false)),
                writer.put("todos", "a", todo("milk", true)),
            ],
            WriteConcern::Durable,
        )
        .await
        .unwrap();
    assert!(outcomes.iter().all(acked));
    let mut changes = Vec::new();
    while changes.len() < 2 {
        let c = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        changes.push((c.key, c.change));
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changes,
        [
            ("a".to_owned(), ChangeKind::Leave),
            ("b".to_owned(), ChangeKind::Enter)
        ]
    );

    assert!(acked(
        &writer.send_op(writer.remove("todos", "b")).await.unwrap()
    ));
    let c = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.key.as_str(), c.change), ("b", ChangeKind::Leave));
    assert!(c.record.is_tombstone());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn offline_edits_and_remote_deletes_converge_after_sync() {
    let server = start().await;
    let writer = connect(server.addr, "w", Encoding::Bincode).await;
    let ops = (0..200)
        .map(|i| writer.put("notes", &format!("n{i}"), Value::Int(i)))
        .collect();
    assert!(
        writer
            .send_batch(ops, WriteConcern::Durable)
            .await
            .unwrap()
            .iter()
            .all(acked)
    );

    // A replica syncs, then goes offline.
    let mut replica = LwwMap::new();
    let client = connect(server.addr, "r", Encoding::Bincode).await;
    let first = client.sync_lww("notes", &mut replica).await.unwrap();
    assert_eq!(first.records_applied, 200);
    client.close().await;

    // While it is offline: remote deletes and an update.
    let outcomes = writer
        .send_batch(
            vec![
                writer.remove("notes", "n1"),
                writer.remove("notes", "n2"),
                writer.put("notes", "n3", Value::from("new")),
            ],
            WriteConcern::Durable,
        )
        .await
        .unwrap();
    assert!(outcomes.iter().all(acked));

    // Back online: only what differs comes back, deletions included.
    let client = connect(server.addr, "r", Encoding::Bincode).await;
    let second = client.sync_lww("notes", &mut replica).await.unwrap();
    assert_eq!(second.records_applied, 3, "{second:?}");
    assert!(
        second.records_received <= 3 + 16,
        "only the differing buckets' records: {second:?}"
    );
    assert!(replica.get("n1").unwrap().is_tombstone());
    assert!(replica.get("n2").unwrap().is_tombstone());
    assert_eq!(replica.get_live("n3", 0), Some(&Value::from("new")));
    assert_eq!(replica.iter_live(0).count(), 198);
    // The replica now equals the server's map: a third sync is a no-op.
    let third = client.sync_lww("notes", &mut replica).await.unwrap();
    assert!(third.already_in_sync, "{third:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_client_connects_over_wss_with_a_custom_ca() {
    let dir = tempfile::tempdir().unwrap();
    xtask::certs::generate(&xtask::certs::CertsOptions {
        out: dir.path().to_owned(),
        nodes: 0,
        ..Default::default()
    })
    .unwrap();
    let tls = TlsConfig::new(dir.path().join("server.crt"), dir.path().join("server.key"));
    let server = start_with(test_builder(Limits::default()).tls(tls)).await;
    let ca = CaBundle::from_pem_file(dir.path().join("ca.crt")).unwrap();
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let config = ClientConfig::new(&url)
        .unwrap()
        .with_tls(topgun_client::TlsConfig::new(ca));
    let client = Client::connect(config, StaticToken::new(token_for("tls")))
        .await
        .unwrap();
    assert_eq!(client.session().sub, "tls");
    assert!(acked(
        &client
            .send_op(client.put("m", "k", Value::Int(1)))
            .await
            .unwrap()
    ));

    // Without the CA, the client refuses the server.
    let other = tempfile::tempdir().unwrap();
    xtask::certs::generate(&xtask::certs::CertsOptions {
        out: other.path().to_owned(),
        nodes: 0,
        ..Default::default()
    })
    .unwrap();
    let wrong = CaBundle::from_pem_file(other.path().join("ca.crt")).unwrap();
    let config = ClientConfig::new(&url)
        .unwrap()
        .with_tls(topgun_client::TlsConfig::new(wrong));
    let err = Client::connect(config, StaticToken::new(token_for("tls")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_token_provider_renews_the_session_before_it_expires() {
    let limits = Limits {
        renewal_lead: Duration::from_secs(2),
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = token_fn(move |reason: TokenReason| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            // A short-lived first token; renewals get a long one.
            let exp = if n == 0 {
                now_secs() + 3
            } else {
                now_secs() + 3600
            };
            let _ = reason;
            Some(hs256(&serde_json::json!({"sub": "renew", "exp": exp})))
        }
    });
    let config = ClientConfig::new(&format!("ws://{}/ws", server.addr)).unwrap();
    let client = Client::connect(config, provider).await.unwrap();
    let mut events = client.events();
    let renewed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ClientEvent::SessionRenewed(info)) = events.recv().await {
                return info;
            }
        }
    })
    .await
    .expect("the session is renewed");
    assert!(renewed.expires_at_ms.unwrap() / 1000 > now_secs() + 3000);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "called on the initial and the renewal AUTH_REQUIRED"
    );
    // Past the first token's expiry the session still works.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(acked(
        &client
            .send_op(client.put("m", "k", Value::Int(1)))
            .await
            .unwrap()
    ));
    server.stop().await.unwrap();
}
