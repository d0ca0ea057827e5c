//! Live queries: the initial result, updates, unsubscribing, refusals.

use std::time::Duration;

use topgun_client::{
    ChangeKind, Client, ClientError, ErrorCode, ErrorContext, StaticToken, SubscriptionEnd,
};
use topgun_core::{Filter, Query, Value};
use topgun_protocol::{
    ClientMessage, QueryRecord, RecordValue, ServerMessage, WireFilter, WireLwwRecord, WireNodeId,
    WireTimestamp, WireValue,
};

use crate::fake::FakeServer;

fn rec(value: Option<&str>, millis: u64) -> WireLwwRecord {
    WireLwwRecord {
        value: value.map_or(RecordValue::Tombstone, |v| {
            RecordValue::Live(WireValue::String(v.to_owned()))
        }),
        timestamp: WireTimestamp {
            millis,
            counter: 0,
            node: WireNodeId(1),
        },
        ttl_ms: None,
    }
}

#[tokio::test]
async fn a_subscription_receives_its_result_then_updates() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let ClientMessage::QuerySub {
            query_id,
            map,
            query,
        } = conn.recv().await
        else {
            panic!("expected QUERY_SUB")
        };
        assert_eq!(map, "todos");
        assert!(matches!(query.filter, Some(WireFilter::Exists { .. })));
        assert_eq!(query.limit, Some(10));
        conn.send(ServerMessage::QueryResp {
            query_id,
            records: vec![
                QueryRecord {
                    key: "t1".to_owned(),
                    record: rec(Some("milk"), 1),
                },
                QueryRecord {
                    key: "t2".to_owned(),
                    record: rec(Some("eggs"), 2),
                },
            ],
        })
        .await;
        for (change, key, value) in [
            (ChangeKind::Enter, "t3", Some("bread")),
            (ChangeKind::Update, "t1", Some("oat milk")),
            (ChangeKind::Leave, "t2", None),
        ] {
            conn.send(ServerMessage::QueryUpdate {
                query_id,
                change,
                key: key.to_owned(),
                record: rec(value, 10),
            })
            .await;
        }
        match conn.recv().await {
            ClientMessage::QueryUnsub { query_id: q } => assert_eq!(q, query_id),
            other => panic!("expected QUERY_UNSUB, got {other:?}"),
        }
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let query = Query {
        filter: Some(Filter::Exists {
            field: "$key".to_owned(),
        }),
        sort: vec![],
        limit: Some(10),
    };
    let mut sub = client.subscribe("todos", &query).await.unwrap();
    assert_eq!(sub.map(), "todos");
    let keys: Vec<&str> = sub.initial().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["t1", "t2"]);
    assert_eq!(
        sub.initial()[0].1.value,
        Some(Value::String("milk".to_owned()))
    );
    let mut changes = Vec::new();
    for _ in 0..3 {
        let change = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        changes.push((change.change, change.key, change.record.is_tombstone()));
    }
    assert_eq!(
        changes,
        [
            (ChangeKind::Enter, "t3".to_owned(), false),
            (ChangeKind::Update, "t1".to_owned(), false),
            (ChangeKind::Leave, "t2".to_owned(), true),
        ]
    );
    client.unsubscribe(sub).await.unwrap();
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_refused_subscription_is_a_server_error() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let ClientMessage::QuerySub { query_id, .. } = conn.recv().await else {
            panic!("expected QUERY_SUB")
        };
        conn.send(ServerMessage::Error {
            code: ErrorCode::Forbidden,
            message: "read denied on secrets".to_owned(),
            context: Some(ErrorContext::Query { query_id }),
        })
        .await;
        conn.expect_close().await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let mut events = client.events();
    let err = client
        .subscribe("secrets", &Query::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Server { code: ErrorCode::Forbidden, ref message } if message == "read denied on secrets"),
        "{err:?}"
    );
    assert!(matches!(
        events.recv().await.unwrap(),
        topgun_client::ClientEvent::ServerError {
            code: ErrorCode::Forbidden,
            context: Some(ErrorContext::Query { .. }),
            ..
        }
    ));
    assert_eq!(client.pending_requests(), 0);
    client.close().await;
    server.join().await;
}

#[tokio::test]
async fn a_dropped_subscription_unsubscribes_and_a_close_ends_the_stream() {
    let server = FakeServer::start(|mut conn| async move {
        conn.accept_auth("alice").await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let ClientMessage::QuerySub { query_id, .. } = conn.recv().await else {
                panic!("expected QUERY_SUB")
            };
            conn.send(ServerMessage::QueryResp {
                query_id,
                records: vec![],
            })
            .await;
            ids.push(query_id);
        }
        assert_ne!(ids[0], ids[1]);
        match conn.recv().await {
            ClientMessage::QueryUnsub { query_id } => assert_eq!(query_id, ids[0]),
            other => panic!("expected QUERY_UNSUB, got {other:?}"),
        }
        conn.close(1001, "going away").await;
    })
    .await;
    let client = Client::connect(server.config(), StaticToken::new("t"))
        .await
        .unwrap();
    let first = client.subscribe("a", &Query::default()).await.unwrap();
    let mut second = client.subscribe("b", &Query::default()).await.unwrap();
    drop(first);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), second.next())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        second.end_reason(),
        Some(&SubscriptionEnd::Disconnected {
            code: Some(1001),
            reason: "going away".to_owned()
        })
    );
    server.join().await;
}
