//! `SledStore`: durability across reopen, group commit, limits, failures, locking.

use std::{
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Model, apply, check, open_sled, tempdir};
use crate::store::{SledConfig, SledStore, Store, StoreError, StoreOp, Write};

fn open_with(config: SledConfig) -> Arc<SledStore> {
    Arc::new(SledStore::open(config).expect("open"))
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("non-zero")
}

/// Ten puts that identify commit `i`.
fn batch(i: usize) -> Vec<Write> {
    (0..10)
        .map(|j| {
            Write::put(
                format!("map/{}", i % 7),
                format!("{i}:{j}"),
                vec![(i % 251) as u8; 32],
            )
        })
        .collect()
}

/// Waits until the paused writer holds one request and `n` more sit in the
/// commit queue, so that the next group is exactly predictable.
async fn wait_queued(store: &SledStore, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(store.writer_holding() && store.queued() >= n) {
        assert!(
            Instant::now() < deadline,
            "writer holding: {}, queued {} of {n}",
            store.writer_holding(),
            store.queued()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Spawns one task per batch, each committing it; returns their handles.
fn spawn_commits(
    store: &Arc<SledStore>,
    batches: Vec<Vec<Write>>,
) -> Vec<tokio::task::JoinHandle<Result<(), StoreError>>> {
    batches
        .into_iter()
        .map(|batch| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.commit(batch).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_close_and_reopen() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    let mut model = Model::new();
    let batches: Vec<_> = (0..300).map(batch).collect();
    for b in &batches {
        apply(&mut model, b);
    }
    for handle in spawn_commits(&store, batches) {
        handle.await.expect("join").expect("commit");
    }
    store
        .put_meta("node_id", b"n1".to_vec())
        .await
        .expect("put_meta");
    store.flush_and_close().await.expect("close");
    drop(store);

    let store = open_sled(dir.path());
    check(&*store, &model).await;
    assert_eq!(
        store.get_meta("node_id").await.expect("get_meta"),
        Some(b"n1".to_vec())
    );
    store.flush_and_close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_share_flushes() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    let handles = spawn_commits(&store, (0..200).map(batch).collect());
    for handle in handles {
        handle.await.expect("join").expect("commit");
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 200);
    assert_eq!(stats.ops, 2000);
    assert!(
        stats.flushes < stats.commits,
        "200 concurrent commits took {} flushes",
        stats.flushes
    );
    assert_eq!(stats.flushes, stats.groups);
    store.flush_and_close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commits_form_one_group_with_one_flush() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    store.pause_writer(true);
    let handles = spawn_commits(&store, (0..200).map(batch).collect());
    // The writer holds the first request; the rest wait in the queue.
    wait_queued(&store, 199).await;
    store.pause_writer(false);
    for handle in handles {
        handle.await.expect("join").expect("commit");
    }
    let stats = store.stats();
    assert_eq!((stats.commits, stats.groups, stats.flushes), (200, 1, 1));
    assert_eq!(stats.largest_group, 200);
    store.flush_and_close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_respect_the_op_and_byte_limits() {
    let dir = tempdir();
    let store = open_with(SledConfig::new(dir.path()).max_group_ops(nz(25)));
    store.pause_writer(true);
    // 20 commits of 10 ops: at most two fit under 25 ops.
    let mut handles = spawn_commits(&store, (0..20).map(batch).collect());
    wait_queued(&store, 19).await;
    // One commit larger than the limit still goes through, alone.
    let big: Vec<_> = (0..100)
        .map(|i| Write::put("big", format!("{i}"), vec![0; 8]))
        .collect();
    handles.extend(spawn_commits(&store, vec![big]));
    wait_queued(&store, 20).await;
    store.pause_writer(false);
    for handle in handles {
        handle.await.expect("join").expect("commit");
    }
    let stats = store.stats();
    assert_eq!((stats.commits, stats.groups), (21, 11));
    store.flush_and_close().await.expect("close");

    let dir = tempdir();
    // Each commit of `batch` carries 10 * (5 + 3..=4 + 32) bytes, about 400:
    // a 1000-byte limit fits two per group.
    let store = open_with(SledConfig::new(dir.path()).max_group_bytes(nz(1000)));
    store.pause_writer(true);
    let handles = spawn_commits(&store, (0..10).map(batch).collect());
    wait_queued(&store, 9).await;
    store.pause_writer(false);
    for handle in handles {
        handle.await.expect("join").expect("commit");
    }
    let stats = store.stats();
    assert_eq!(
        (stats.commits, stats.groups, stats.largest_group),
        (10, 5, 2)
    );
    store.flush_and_close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_makes_commit_wait() {
    let dir = tempdir();
    let store = open_with(SledConfig::new(dir.path()).queue_capacity(nz(2)));
    store.pause_writer(true);
    let handles = spawn_commits(&store, (0..5).map(batch).collect());
    wait_queued(&store, 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // One commit is held by the paused writer, two fill the queue and two
    // wait for capacity; none is answered.
    assert_eq!(store.queued(), 2);
    assert!(handles.iter().all(|h| !h.is_finished()));
    store.pause_writer(false);
    for handle in handles {
        handle.await.expect("join").expect("commit");
    }
    assert_eq!(store.stats().commits, 5);
    store.flush_and_close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_failure_fails_every_waiter_and_the_store() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    let mut model = Model::new();
    let first = batch(1000);
    apply(&mut model, &first);
    store
        .commit(first)
        .await
        .expect("commit before the failure");

    store.inject_flush_failures(1);
    store.pause_writer(true);
    let handles = spawn_commits(&store, (0..50).map(batch).collect());
    wait_queued(&store, 49).await;
    store.pause_writer(false);
    for handle in handles {
        let result = handle.await.expect("join");
        assert!(
            matches!(
                result,
                Err(StoreError::Io {
                    op: StoreOp::Flush,
                    ..
                })
            ),
            "a commit of the failed group got {result:?}"
        );
    }
    assert!(store.is_failed());
    let later = store.commit(batch(2000)).await;
    assert!(matches!(later, Err(StoreError::Failed)), "{later:?}");
    let later = store.put_meta("k", Vec::new()).await;
    assert!(matches!(later, Err(StoreError::Failed)), "{later:?}");
    let stats = store.stats();
    assert_eq!(stats.flush_errors, 1);
    assert_eq!(stats.failed_commits, 50);
    assert_eq!(stats.commits, 1);
    let closed = store.flush_and_close().await;
    assert!(matches!(closed, Err(StoreError::Failed)), "{closed:?}");
    drop(store);

    // What was acknowledged before the failure is still there; the failed
    // group may or may not be (it was never acknowledged).
    let store = open_sled(dir.path());
    let records = store.scan_all().collect_all().await.expect("scan");
    for ((map, key), value) in &model {
        assert!(
            records
                .iter()
                .any(|r| &r.map == map && &r.key == key && &r.value == value),
            "acknowledged {map}/{key} lost"
        );
    }
    store.flush_and_close().await.expect("close");
}

#[tokio::test]
async fn second_open_of_a_held_directory_is_refused() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    let second = SledStore::open(SledConfig::new(dir.path()).lock_wait(Duration::ZERO));
    match second {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Closing releases the lock at once.
    store.flush_and_close().await.expect("close");
    let again = open_sled(dir.path());
    again.flush_and_close().await.expect("close");
}

#[tokio::test]
async fn dropping_the_store_flushes_and_releases_the_directory() {
    let dir = tempdir();
    let store = open_sled(dir.path());
    store.commit(batch(1)).await.expect("commit");
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(30);
    let store = loop {
        match SledStore::open(SledConfig::new(dir.path())) {
            Ok(store) => break store,
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    };
    let mut model = Model::new();
    apply(&mut model, &batch(1));
    check(&store, &model).await;
    store.flush_and_close().await.expect("close");
}

#[tokio::test]
async fn unknown_format_version_is_refused() {
    let dir = tempdir();
    {
        let db = sled::open(dir.path()).expect("raw sled");
        let tree = db.open_tree(b"\x00store").expect("tree");
        tree.insert(b"format", &2u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    match SledStore::open(SledConfig::new(dir.path())) {
        Err(StoreError::UnsupportedFormat {
            found: 2,
            supported: 1,
        }) => {}
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}
