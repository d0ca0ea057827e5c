//! Durable storage behind the byte-level `Store` seam, with group commit.
//!
//! The store knows maps, keys and value bytes, nothing of records: the write
//! pipeline encodes records with the protocol codec before committing them.
//! Map names are data (any UTF-8, including `""`, dots, colons, slashes and
//! unicode) and are never restricted; backends encode them. A small
//! metadata namespace (`get_meta`/`put_meta`) lives apart from user maps, so
//! no map name can reach it.
//!
//! Backends: [`SledStore`] (the default: sled 0.34.7 with group commit on a
//! dedicated writer thread), [`MemoryStore`] (tests and the in-memory
//! benchmark mode; [`MemoryStore::reopen`] simulates a restart) and
//! [`FaultyStore`] (wraps any store and fails commits on command).
//!
//! **Invariant:** `commit` returns `Ok` only after the flush that covers the
//! whole batch returned `Ok`; a failed apply or flush fails every commit of
//! its group and puts the store into a failed state that refuses all later
//! commits.
//!
//! # What survives, honestly (sled 0.34.7)
//!
//! - **Process crash (`kill -9`, panic, OOM kill):** every acknowledged
//!   commit survives. sled's `flush()` has written the group's log bytes to
//!   the file with `pwrite` and waited for writeback, so they are in the
//!   kernel's page cache, which outlives the process. Commits that were not
//!   acknowledged may or may not be present after a restart, whole or (for
//!   a commit spanning several maps) in part; the pipeline re-applies them
//!   idempotently when the client resends.
//! - **Power loss or kernel crash:** not guaranteed. On Linux sled's flush
//!   uses `sync_file_range`, not `fsync`: it starts and waits for writeback
//!   of the written range but does not persist file metadata (such as a
//!   grown file length) and does not flush the drive's volatile write cache.
//!   sled's background flusher (kept on, every `flush_every_ms`, default
//!   500 ms) calls a real `fsync`, so the window of acknowledged writes at
//!   risk on power loss is roughly that interval, with no hard guarantee.
//!   There are public reports of sled 0.34 databases that failed to open or
//!   lost data after abrupt stops, and of large space amplification. Keep
//!   backups and replicas; the `Store` trait exists so that an engine with
//!   `fsync`-based durability can be added.

mod error;
mod faulty;
mod memory;
mod sled_store;
mod stream;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
};

pub use error::{NameKind, StoreError, StoreOp};
pub use faulty::{FaultKind, FaultyStore};
pub use memory::MemoryStore;
pub use sled_store::{SledConfig, SledStore};
pub use stream::{CHUNK_BYTES, CHUNK_RECORDS, Chunk, RecordStream};

/// The future returned by [`Store`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Stores `value` as the row of `key` in `map`, replacing any row.
    /// (A CRDT tombstone is an ordinary put of a tombstone record.)
    Put {
        /// The map name (any UTF-8).
        map: String,
        /// The record key.
        key: String,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// Removes the row of `key` in `map` (tombstone garbage collection);
    /// removing a row that does not exist is not an error.
    Delete {
        /// The map name (any UTF-8).
        map: String,
        /// The record key.
        key: String,
    },
}

impl Write {
    /// A [`Write::Put`].
    pub fn put(map: impl Into<String>, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self::Put {
            map: map.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    /// A [`Write::Delete`].
    pub fn delete(map: impl Into<String>, key: impl Into<String>) -> Self {
        Self::Delete {
            map: map.into(),
            key: key.into(),
        }
    }

    /// The map this write changes.
    pub fn map(&self) -> &str {
        match self {
            Self::Put { map, .. } | Self::Delete { map, .. } => map,
        }
    }

    /// The key this write changes.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// Bytes this write carries (map name, key and value), the unit of the
    /// group size limit and of [`StoreStats`].
    pub fn byte_len(&self) -> usize {
        let value = match self {
            Self::Put { value, .. } => value.len(),
            Self::Delete { .. } => 0,
        };
        self.map().len() + self.key().len() + value
    }
}

/// One stored row, as returned by scans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The map name.
    pub map: String,
    /// The record key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
}

impl Record {
    /// Bytes of map name, key and value.
    pub fn byte_len(&self) -> usize {
        self.map.len() + self.key.len() + self.value.len()
    }
}

/// The storage seam. Object safe: the pipeline holds an `Arc<dyn Store>`.
///
/// Every method returns quickly and does its blocking work elsewhere (a
/// writer thread or the blocking pool); no future holds a lock across an
/// await point.
pub trait Store: Send + Sync + fmt::Debug {
    /// Makes `batch` durable. Resolves `Ok` only once every write of the batch
    /// is durable (see the module doc for what that means per backend).
    /// Writes apply in order: a later write to the same key wins. Waits for
    /// queue capacity when the store is busy (backpressure).
    ///
    /// Dropping the future does not cancel a batch already queued: it may
    /// still become durable, unacknowledged.
    fn commit(&self, batch: Vec<Write>) -> StoreFuture<'_, ()>;

    /// Every row of `map`.
    fn load_map(&self, map: &str) -> RecordStream;

    /// Every row of every map, to rebuild in-memory state at start.
    fn scan_all(&self) -> RecordStream;

    /// Names of the maps that hold at least one row.
    fn list_maps(&self) -> StoreFuture<'_, Vec<String>>;

    /// A metadata value (node id, durable policies, keys), apart from maps.
    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Stores a metadata value durably (same guarantee as `commit`).
    fn put_meta<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, ()>;

    /// Removes a metadata value durably; removing a missing key is not an
    /// error.
    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Finishes the commits already queued, flushes, and releases the store
    /// (for sled: its writer thread and its handles on the database; sled
    /// drops the directory lock once no scan is still running and its own
    /// thread pool lets go, which `SledConfig::lock_wait` covers on reopen).
    /// Later calls fail with [`StoreError::Closed`].
    fn flush_and_close(&self) -> StoreFuture<'_, ()>;

    /// Group-commit counters so far.
    fn stats(&self) -> StatsSnapshot;
}

/// Group-commit counters, updated with relaxed atomics and read by
/// `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    commits: AtomicU64,
    ops: AtomicU64,
    bytes: AtomicU64,
    groups: AtomicU64,
    flushes: AtomicU64,
    failed_commits: AtomicU64,
    flush_errors: AtomicU64,
    largest_group: AtomicU64,
}

impl StoreStats {
    /// Counts a durable group of `commits` commits, `ops` writes and
    /// `bytes` bytes, made durable by `flushes` flushes.
    pub fn record_group(&self, commits: u64, ops: u64, bytes: u64, flushes: u64) {
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.ops.fetch_add(ops, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.flushes.fetch_add(flushes, Ordering::Relaxed);
        self.largest_group.fetch_max(commits, Ordering::Relaxed);
    }

    /// Counts `commits` commits that were answered with an error.
    pub fn record_failed(&self, commits: u64) {
        self.failed_commits.fetch_add(commits, Ordering::Relaxed);
    }

    /// Counts one failed apply or flush.
    pub fn record_flush_error(&self) {
        self.flush_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            flush_errors: self.flush_errors.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`StoreStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Commits acknowledged `Ok` (metadata writes included).
    pub commits: u64,
    /// Writes in acknowledged commits.
    pub ops: u64,
    /// Bytes (map, key, value) in acknowledged commits.
    pub bytes: u64,
    /// Durable groups (one per flush for sled; one per commit in memory).
    pub groups: u64,
    /// Flushes that covered acknowledged groups.
    pub flushes: u64,
    /// Commits answered with an error.
    pub failed_commits: u64,
    /// Applies or flushes that failed (each fails a whole group).
    pub flush_errors: u64,
    /// Most commits made durable by one flush.
    pub largest_group: u64,
}
