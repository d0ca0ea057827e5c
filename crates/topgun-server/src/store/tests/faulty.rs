//! `FaultyStore`: injected failures, and what reaches the inner store.

use std::sync::Arc;

use super::{Model, apply, check, open_sled, tempdir};
use crate::store::{FaultKind, FaultyStore, MemoryStore, Store, StoreError, Write};

fn put(map: &str, key: &str) -> Vec<Write> {
    vec![Write::put(map, key, key.as_bytes().to_vec())]
}

#[tokio::test]
async fn fail_next_rejects_that_many_commits_then_heals() {
    let inner = Arc::new(MemoryStore::new());
    let store = FaultyStore::new(inner.clone());
    store.fail_next(2, FaultKind::Reject);
    for key in ["a", "b"] {
        let result = store.commit(put("m", key)).await;
        assert!(matches!(result, Err(StoreError::Injected)), "{result:?}");
    }
    store
        .commit(put("m", "c"))
        .await
        .expect("third commit passes");
    assert_eq!(store.injected(), 2);
    // Rejected batches never reached the inner store.
    let mut model = Model::new();
    apply(&mut model, &put("m", "c"));
    check(&*inner, &model).await;
    check(&store, &model).await;
}

#[tokio::test]
async fn apply_then_fail_reports_failure_but_leaves_the_data() {
    let inner = Arc::new(MemoryStore::new());
    let store = FaultyStore::new(inner.clone());
    store.fail_next(1, FaultKind::ApplyThenFail);
    let result = store.commit(put("m", "a")).await;
    assert!(matches!(result, Err(StoreError::Injected)), "{result:?}");
    let mut model = Model::new();
    apply(&mut model, &put("m", "a"));
    check(&*inner, &model).await;
}

#[tokio::test]
async fn fail_when_matches_batches_until_healed() {
    let dir = tempdir();
    let sled = open_sled(dir.path());
    let store = FaultyStore::new(sled.clone());
    store.fail_when(FaultKind::Reject, |batch| {
        batch.iter().any(|w| w.map() == "poison")
    });
    let mut model = Model::new();
    for i in 0..5 {
        let key = format!("{i}");
        let result = store.commit(put("poison", &key)).await;
        assert!(matches!(result, Err(StoreError::Injected)), "{result:?}");
        store
            .commit(put("fine", &key))
            .await
            .expect("unmatched batch");
        apply(&mut model, &put("fine", &key));
    }
    assert_eq!(store.injected(), 5);
    check(&store, &model).await;
    store.heal();
    store.commit(put("poison", "ok")).await.expect("healed");
    apply(&mut model, &put("poison", "ok"));
    check(&store, &model).await;
    // Metadata and closing pass through.
    store.put_meta("id", b"1".to_vec()).await.expect("put_meta");
    assert_eq!(
        sled.get_meta("id").await.expect("get_meta"),
        Some(b"1".to_vec())
    );
    assert!(format!("{store:?}").contains("FaultyStore"));
    store.flush_and_close().await.expect("close");
}
