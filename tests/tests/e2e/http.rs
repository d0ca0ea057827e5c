//! `/health` and `/metrics` over plain HTTP on the same listener.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use topgun_client::{Client, ClientConfig, StaticToken};
use topgun_core::Value;
use topgun_tests::{start, token_for};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn health_and_metrics_report_the_node() {
    let server = start().await;
    let (status, body) = get(server.addr, "/health").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));

    let client = Client::connect(
        ClientConfig::new(&format!("ws://{}/ws", server.addr)).unwrap(),
        StaticToken::new(token_for("m")),
    )
    .await
    .unwrap();
    client
        .send_op(client.put("m", "k", Value::Int(1)))
        .await
        .unwrap();
    let (status, metrics) = get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "topgun_sessions_open 1",
        "topgun_auth_success_total 1",
        "topgun_ops_acked_total 1",
        "topgun_store_ops_total",
        "# TYPE topgun_ops_acked_total counter",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    let (status, _) = get(server.addr, "/nope").await;
    assert_eq!(status, 404);
    server.stop().await.unwrap();
}

/// A failed storage commit: the ops are rejected (never acknowledged), and
/// `/health` turns 503.
#[tokio::test]
async fn a_storage_failure_rejects_the_write_and_turns_health_red() {
    use std::sync::Arc;
    use topgun_client::OpOutcome;
    use topgun_protocol::RejectCode;
    use topgun_server::store::{FaultKind, FaultyStore, MemoryStore};

    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let builder = topgun_tests::test_builder(topgun_server::Limits::default())
        .storage(topgun_server::StorageConfig::Custom(faulty.clone()));
    let server = topgun_tests::start_with(builder).await;
    let client = Client::connect(
        ClientConfig::new(&format!("ws://{}/ws", server.addr)).unwrap(),
        StaticToken::new(token_for("f")),
    )
    .await
    .unwrap();
    faulty.fail_next(1, FaultKind::Reject);
    match client
        .send_op(client.put("m", "k", Value::Int(1)))
        .await
        .unwrap()
    {
        OpOutcome::Rejected { code, .. } => assert_eq!(code, RejectCode::Internal),
        other => panic!("a write whose commit failed was {other:?}"),
    }
    let (status, body) = get(server.addr, "/health").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "{\"status\":\"storage_failed\"}")
    );
    server.stop().await.unwrap();
}
