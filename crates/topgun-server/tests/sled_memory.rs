//! `SledStore` memory under a sustained write load: a test binary of its
//! own, so that its process's resident memory is the store's alone.
//!
//! sled 0.34 copies a tree node on every write and frees the old copy
//! through crossbeam-epoch, which collects only when threads pin; a group
//! of thousands of writes pins a handful of times, so without the store's
//! own collection the old nodes piled up without bound (about 1 KiB per
//! write). The store frees them after every chunk it applies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use topgun_server::store::{SledConfig, SledStore, Store, Write};

/// Resident memory of this process in KiB (Linux), or `None` elsewhere.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Keys written: the tree stops growing once every key exists.
const KEYS: usize = 20_000;
/// Writes per commit; each commit is a group of its own (one committer).
const COMMIT: usize = 2_000;

fn commit(n: usize) -> Vec<Write> {
    (0..COMMIT)
        .map(|j| {
            let key = (n * 7_919 + j * 104_729) % KEYS;
            Write::put("memory-test", format!("k{key}"), vec![(n % 251) as u8; 100])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_writes_do_not_grow_memory_past_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
    // Warm up: every key written several times, sled's tree at full size.
    for n in 0..40 {
        store.commit(commit(n)).await.unwrap();
    }
    let Some(before) = rss_kib() else {
        eprintln!("no /proc/self/status: nothing to measure here");
        return;
    };
    // 200,000 more writes over the same keys: the data does not grow.
    for n in 40..140 {
        store.commit(commit(n)).await.unwrap();
    }
    let after = rss_kib().unwrap();
    let grown_kib = after.saturating_sub(before);
    store.flush_and_close().await.unwrap();
    // Old sled nodes left uncollected grew it by 95 MiB; collected, by none.
    assert!(
        grown_kib < 24 * 1024,
        "resident memory grew {grown_kib} KiB over 200,000 writes to {KEYS} keys ({before} -> {after} KiB)"
    );
}
