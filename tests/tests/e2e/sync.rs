//! Merkle sync against the real server through `topgun-client`: a leaf
//! answer larger than the message size limit arrives split over several
//! `SYNC_RESP_LEAF` messages, every one within the limit, and the client
//! merges them all.

use topgun_client::{Client, ClientConfig, OpOutcome, StaticToken};
use topgun_core::{LwwMap, Value};
use topgun_protocol::{Encoding, WriteConcern};
use topgun_server::Limits;
use topgun_tests::{start_with, test_builder, token_for};

/// The server's (and the syncing client's) message size limit: small, but
/// above the largest `SYNC_RESP_BUCKETS` of a depth-3 tree in JSON (256
/// nodes of 16 hex hashes, about 78 KB), which is not split.
const MAX: usize = 96 * 1024;

async fn connect(addr: std::net::SocketAddr, encoding: Encoding) -> Client {
    // The client refuses frames above the same limit, so a message that
    // outgrew it would fail the sync instead of passing unnoticed.
    let config = ClientConfig::new(&format!("ws://{addr}/ws"))
        .unwrap()
        .with_encoding(encoding)
        .with_max_message_bytes(MAX);
    Client::connect(config, StaticToken::new(token_for("alice")))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_large_leaf_answer_is_split_within_the_limit_and_merged_whole() {
    let limits = Limits {
        max_message_bytes: MAX,
        ..Limits::default()
    };
    let server = start_with(test_builder(limits)).await;
    let writer = connect(server.addr, Encoding::Bincode).await;
    // 300 records of about 4 KB: some 1.2 MB against a 96 KiB limit.
    // Control characters weigh six times more in JSON than in memory.
    let value = |i: usize| {
        Value::Array(vec![
            Value::from(format!("{i:04}").repeat(800)),
            Value::from("\u{1}".repeat(200)),
        ])
    };
    for chunk in (0..300).collect::<Vec<_>>().chunks(10) {
        let ops = chunk
            .iter()
            .map(|i| writer.put("docs", &format!("doc-{i:03}"), value(*i)))
            .collect();
        let outcomes = writer.send_batch(ops, WriteConcern::Durable).await.unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, OpOutcome::Acked { .. })),
            "{outcomes:?}"
        );
    }

    for encoding in [Encoding::Bincode, Encoding::Json] {
        let reader = connect(server.addr, encoding).await;
        let mut local = LwwMap::new();
        let report = reader.sync_lww("docs", &mut local).await.unwrap();
        assert_eq!(local.len(), 300, "{encoding:?}");
        assert_eq!(report.records_received, 300, "{encoding:?}");
        assert!(report.wanted_keys.is_empty());
        for i in 0..300 {
            assert_eq!(
                local.get_live(&format!("doc-{i:03}"), 0),
                Some(&value(i)),
                "{encoding:?}: doc-{i:03}"
            );
        }
        // Root, three bucket levels and one leaf request (300 keys fit one
        // SYNC_REQ_LEAF), answered by many parts.
        assert_eq!(report.round_trips, 5, "{encoding:?}");
        let parts = report.messages_received - 4;
        assert!(
            parts >= 10,
            "{encoding:?}: only {parts} SYNC_RESP_LEAF parts"
        );
        assert!(report.bytes_received <= u64::from(report.messages_received) * MAX as u64);
        assert_eq!(reader.pending_requests(), 0);

        // Synced: the next exchange finds equal roots.
        let again = reader.sync_lww("docs", &mut local).await.unwrap();
        assert!(again.already_in_sync, "{encoding:?}");
        reader.close().await;
    }
    writer.close().await;
}
