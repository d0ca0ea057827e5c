//! One behavioural suite, run against every backend.

use std::sync::Arc;

use super::{Model, WEIRD_MAPS, apply, check, open_sled, tempdir};
use crate::store::{CHUNK_RECORDS, MemoryStore, Store, StoreError, Write};

/// Runs `case` against a `MemoryStore` and a `SledStore`.
async fn each_backend<F, Fut>(case: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    case(Arc::new(MemoryStore::new())).await;
    let dir = tempdir();
    let sled = open_sled(dir.path());
    case(sled.clone()).await;
    // Ignore "already closed": some cases close the store themselves.
    let _ = sled.flush_and_close().await;
}

async fn commit(store: &dyn Store, model: &mut Model, batch: Vec<Write>) {
    apply(model, &batch);
    store.commit(batch).await.expect("commit");
}

#[tokio::test]
async fn weird_map_names_and_keys_round_trip() {
    each_backend(|store| async move {
        let mut model = Model::new();
        let mut batch = Vec::new();
        for (i, map) in WEIRD_MAPS.iter().enumerate() {
            for key in ["", "k", "a.b:c/d", "ключ", "\u{0}"] {
                batch.push(Write::put(*map, key, format!("{i}:{key}").into_bytes()));
            }
        }
        commit(&*store, &mut model, batch).await;
        check(&*store, &model).await;
    })
    .await;
}

#[tokio::test]
async fn later_writes_win_and_deletes_remove_rows() {
    each_backend(|store| async move {
        let mut model = Model::new();
        commit(
            &*store,
            &mut model,
            vec![
                Write::put("m", "a", b"1".to_vec()),
                Write::put("m", "a", b"2".to_vec()),
                Write::put("m", "b", b"x".to_vec()),
                Write::delete("m", "b"),
                Write::put("n", "c", Vec::new()),
            ],
        )
        .await;
        check(&*store, &model).await;
        // Deleting a missing row, or in a missing map, is not an error.
        commit(
            &*store,
            &mut model,
            vec![Write::delete("m", "zz"), Write::delete("nowhere", "k")],
        )
        .await;
        // A map whose last row goes away is no longer listed.
        commit(&*store, &mut model, vec![Write::delete("n", "c")]).await;
        check(&*store, &model).await;
        // An empty value is a value, distinct from no row.
        commit(&*store, &mut model, vec![Write::put("n", "c", Vec::new())]).await;
        check(&*store, &model).await;
        // An empty batch is accepted.
        commit(&*store, &mut model, Vec::new()).await;
        check(&*store, &model).await;
    })
    .await;
}

#[tokio::test]
async fn metadata_is_isolated_from_maps_named_like_it() {
    each_backend(|store| async move {
        let mut model = Model::new();
        store
            .put_meta("node_id", b"node-1".to_vec())
            .await
            .expect("put_meta");
        // User maps spelled like the reserved trees, holding the same key.
        let batch = ["meta", "\u{0}meta", "\u{0}store", "__sled__default", ""]
            .into_iter()
            .map(|map| Write::put(map, "node_id", b"from-a-client".to_vec()))
            .collect();
        commit(&*store, &mut model, batch).await;
        assert_eq!(
            store.get_meta("node_id").await.expect("get_meta"),
            Some(b"node-1".to_vec())
        );
        // The metadata never shows up in map scans or listings.
        check(&*store, &model).await;
        store.delete_meta("node_id").await.expect("delete_meta");
        store
            .delete_meta("never-set")
            .await
            .expect("delete missing meta");
        assert_eq!(store.get_meta("node_id").await.expect("get_meta"), None);
        check(&*store, &model).await;
    })
    .await;
}

#[tokio::test]
async fn scans_stream_in_bounded_chunks() {
    each_backend(|store| async move {
        let mut model = Model::new();
        let total = 2 * CHUNK_RECORDS + 7;
        let batch = (0..total)
            .map(|i| {
                Write::put(
                    if i % 2 == 0 { "even" } else { "odd" },
                    format!("{i:06}"),
                    vec![1; 10],
                )
            })
            .collect();
        commit(&*store, &mut model, batch).await;
        let mut stream = store.scan_all();
        let mut seen = 0;
        let mut chunks = 0;
        while let Some(chunk) = stream.next_chunk().await {
            let chunk = chunk.expect("chunk");
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK_RECORDS);
            seen += chunk.len();
            chunks += 1;
        }
        assert_eq!(seen, total);
        assert!(chunks >= 3, "expected at least 3 chunks, got {chunks}");
        check(&*store, &model).await;
    })
    .await;
}

#[tokio::test]
async fn closed_store_refuses_work() {
    each_backend(|store| async move {
        store
            .commit(vec![Write::put("m", "k", b"v".to_vec())])
            .await
            .expect("commit");
        store.flush_and_close().await.expect("close");
        let refused = store
            .commit(vec![Write::put("m", "k2", b"v".to_vec())])
            .await;
        assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
        let refused = store.put_meta("k", Vec::new()).await;
        assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
        let refused = store.scan_all().collect_all().await;
        assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
        let refused = store.flush_and_close().await;
        assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
    })
    .await;
}

#[tokio::test]
async fn stats_count_acknowledged_commits() {
    each_backend(|store| async move {
        for i in 0..5 {
            store
                .commit(vec![
                    Write::put("m", format!("{i}"), b"vv".to_vec()),
                    Write::delete("m", "x"),
                ])
                .await
                .expect("commit");
        }
        let stats = store.stats();
        assert_eq!(stats.commits, 5);
        assert_eq!(stats.ops, 10);
        assert_eq!(stats.bytes, 5 * (1 + 1 + 2) + 5 * (1 + 1));
        assert_eq!(stats.failed_commits, 0);
        assert!(stats.groups >= 1 && stats.groups <= 5);
    })
    .await;
}

#[tokio::test]
async fn memory_reopen_sees_acknowledged_commits() {
    let store = MemoryStore::new();
    let mut model = Model::new();
    commit(
        &store,
        &mut model,
        vec![Write::put("m", "k", b"v".to_vec())],
    )
    .await;
    store.put_meta("id", b"7".to_vec()).await.expect("put_meta");
    store.flush_and_close().await.expect("close");
    let again = store.reopen();
    check(&again, &model).await;
    assert_eq!(
        again.get_meta("id").await.expect("get_meta"),
        Some(b"7".to_vec())
    );
}
