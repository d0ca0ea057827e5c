//! `SledStore`: sled 0.34.7 with group commit on a dedicated writer thread.
//!
//! Layout: each user map is a sled tree named `0x01 ++ utf8(map)`; the
//! metadata namespace is the tree `0x00 "meta"` and the store's own format
//! marker lives in `0x00 "store"`. No map name can produce a name starting
//! with `0x00`, and sled's default tree (`__sled__default`) stays unused, so
//! user maps never collide with either.
//!
//! Writes: `commit` sends its batch over a bounded channel to the writer
//! thread. The writer takes the first queued request, drains whatever else is
//! queued up to the group limits, builds one `sled::Batch` per tree for every
//! [`APPLY_CHUNK_OPS`] writes (cut between commits), applies them, frees the
//! sled pages they replaced (see [`reclaim_garbage`]), calls `flush()` once
//! for the whole group, and only then answers every request of the group. An
//! apply or flush error fails the whole group and puts the store in the
//! failed state.
//!
//! Atomicity: sled applies each `Batch` atomically, also across a crash, so
//! the writes of one commit to one map land all or nothing. A group spanning
//! several maps or chunks is several batches: a crash between them can leave
//! some of them applied and others not, but only for commits that were
//! never acknowledged (their acknowledgement waits for the flush after the
//! last batch). CRDT merges are idempotent, so a resent op repairs that.
//! Multi-tree sled transactions would make groups atomic across maps at a
//! large throughput cost, for no gain the pipeline needs.

use std::{
    collections::HashMap,
    fmt,
    num::{NonZeroU64, NonZeroUsize},
    path::{Path, PathBuf},
    sync::{
        Arc, PoisonError, RwLock, RwLockReadGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use super::{
    NameKind, Record, RecordStream, StatsSnapshot, Store, StoreError, StoreFuture, StoreOp,
    StoreStats, Write,
    stream::{CHUNK_QUEUE, ChunkBuilder},
};

/// Prefix byte of every user map's tree name.
const MAP_TREE_PREFIX: u8 = 0x01;
/// The metadata namespace's tree.
const META_TREE: &[u8] = b"\x00meta";
/// The store's own bookkeeping tree (format marker).
const STORE_TREE: &[u8] = b"\x00store";
/// Key of the format marker in `STORE_TREE`.
const FORMAT_KEY: &[u8] = b"format";
/// The on-disk layout this build reads and writes.
const FORMAT_VERSION: u64 = 1;
/// Pause between attempts to open a locked directory.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(10);

fn map_tree_name(map: &str) -> Vec<u8> {
    let mut name = Vec::with_capacity(map.len() + 1);
    name.push(MAP_TREE_PREFIX);
    name.extend_from_slice(map.as_bytes());
    name
}

/// Configuration of a [`SledStore`]. Every limit is non-zero by type.
#[derive(Debug, Clone)]
pub struct SledConfig {
    path: PathBuf,
    queue_capacity: NonZeroUsize,
    max_group_ops: NonZeroUsize,
    max_group_bytes: NonZeroUsize,
    cache_capacity_bytes: u64,
    background_flush_ms: NonZeroU64,
    lock_wait: Duration,
}

impl SledConfig {
    /// Default bound of the commit queue, in commits.
    pub const DEFAULT_QUEUE_CAPACITY: NonZeroUsize = nonzero_usize(1024);
    /// Default most writes per group.
    pub const DEFAULT_MAX_GROUP_OPS: NonZeroUsize = nonzero_usize(8192);
    /// Default most bytes (map, key, value) per group.
    pub const DEFAULT_MAX_GROUP_BYTES: NonZeroUsize = nonzero_usize(16 * 1024 * 1024);
    /// Default sled page cache size. sled's own default is 1 GiB; the
    /// server keeps its state in memory and reads sled only at start, so a
    /// small cache is enough.
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
    /// Default interval of sled's background flusher (sled's default).
    pub const DEFAULT_BACKGROUND_FLUSH_MS: NonZeroU64 = match NonZeroU64::new(500) {
        Some(ms) => ms,
        None => NonZeroU64::MIN,
    };

    /// Default [`SledConfig::lock_wait`].
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

    /// Defaults, with data in `path` (created if missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            max_group_ops: Self::DEFAULT_MAX_GROUP_OPS,
            max_group_bytes: Self::DEFAULT_MAX_GROUP_BYTES,
            cache_capacity_bytes: Self::DEFAULT_CACHE_CAPACITY_BYTES,
            background_flush_ms: Self::DEFAULT_BACKGROUND_FLUSH_MS,
            lock_wait: Self::DEFAULT_LOCK_WAIT,
        }
    }

    /// How long `open` keeps retrying a directory whose lock is held before
    /// it fails with [`StoreError::Locked`]. sled releases its file lock only
    /// when the last handle inside sled goes, and its thread pool can hold
    /// one for a moment after a store is closed, so reopening at once (a
    /// restart inside one process, tests) needs a short wait. Zero fails at
    /// the first refusal.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Commits that may wait for the writer before `commit` itself waits
    /// (backpressure).
    #[must_use]
    pub fn queue_capacity(mut self, commits: NonZeroUsize) -> Self {
        self.queue_capacity = commits;
        self
    }

    /// Most writes the writer gathers into one group (one flush). A single
    /// larger commit still forms a group of its own.
    #[must_use]
    pub fn max_group_ops(mut self, ops: NonZeroUsize) -> Self {
        self.max_group_ops = ops;
        self
    }

    /// Most bytes the writer gathers into one group. A single larger commit
    /// still forms a group of its own.
    #[must_use]
    pub fn max_group_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.max_group_bytes = bytes;
        self
    }

    /// sled's page cache size in bytes.
    #[must_use]
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Self {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// Interval of sled's background flusher. It cannot be turned off: in
    /// sled 0.34.7 that thread is the only caller of segment garbage
    /// collection and of a real `fsync` (see the module doc of `store`).
    #[must_use]
    pub fn background_flush_ms(mut self, ms: NonZeroU64) -> Self {
        self.background_flush_ms = ms;
        self
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

const fn nonzero_usize(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// What the writer makes durable for one request.
enum Batch {
    Writes(Vec<Write>),
    Meta { key: String, value: Option<Vec<u8>> },
}

struct CommitRequest {
    batch: Batch,
    ops: usize,
    bytes: usize,
    done: oneshot::Sender<Result<(), StoreError>>,
}

enum Request {
    Commit(CommitRequest),
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// The open database, shared by the writer and the readers. `None` once
/// the store is closed, so that the directory lock can be released.
struct OpenDb {
    meta: sled::Tree,
    maps: HashMap<String, sled::Tree>,
}

struct Shared {
    path: PathBuf,
    open: RwLock<Option<OpenDb>>,
    failed: AtomicBool,
    closed: AtomicBool,
    stats: StoreStats,
    /// Flushes still to fail on purpose (tests only set it).
    inject_flush_failures: AtomicU64,
    /// Holds the writer before it gathers a group, so tests can queue
    /// requests deterministically.
    #[cfg(test)]
    paused: AtomicBool,
    /// Set while the paused writer holds a request.
    #[cfg(test)]
    holding: AtomicBool,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Option<OpenDb>> {
        // Every critical section is a plain insert, clone or take.
        self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error for a request the writer will never answer.
    fn gone_error(&self, op: StoreOp) -> StoreError {
        if self.closed.load(Ordering::Acquire) {
            StoreError::Closed
        } else if self.failed.load(Ordering::Acquire) {
            StoreError::Failed
        } else {
            StoreError::WorkerLost { op }
        }
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else if self.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            Ok(())
        }
    }
}

/// The default durable [`Store`]: sled 0.34.7 with group commit.
///
/// sled configuration, and why:
/// - The background flusher stays on (`flush_every_ms`, default 500 ms).
///   Acknowledgements never rely on it (each group is flushed explicitly
///   before its commits are answered), but in sled 0.34.7 that thread is the
///   only caller of segment garbage collection (without it the file only
///   grows) and of a real `fsync`, which narrows what power loss can take.
/// - `mode` is left at its default: sled 0.34.7 stores `Mode` in its config
///   but never reads it, so `HighThroughput` would change nothing.
/// - `cache_capacity` defaults to 64 MiB instead of sled's 1 GiB.
pub struct SledStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.shared.path)
            .field("failed", &self.shared.failed.load(Ordering::Relaxed))
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `config.path()` and starts its
    /// writer thread. Blocking: it reads sled's files, so call it before
    /// serving or from a blocking task.
    ///
    /// Fails with [`StoreError::Locked`] when another process, or another
    /// open store in this process, still holds the directory after
    /// [`SledConfig::lock_wait`].
    pub fn open(config: SledConfig) -> Result<Self, StoreError> {
        let path = config.path.clone();
        let sled_config = sled::Config::new()
            .path(&path)
            .cache_capacity(config.cache_capacity_bytes)
            .flush_every_ms(Some(config.background_flush_ms.get()));
        let started = Instant::now();
        let db = loop {
            match sled_config.open().map_err(|e| open_error(&path, e)) {
                Err(StoreError::Locked { .. }) if started.elapsed() < config.lock_wait => {
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                other => break other?,
            }
        };
        let open_err = |e| StoreError::from_sled(StoreOp::Open, e);

        check_format(&db)?;
        let meta = db.open_tree(META_TREE).map_err(open_err)?;
        let mut maps = HashMap::new();
        for name in db.tree_names() {
            let Some((&MAP_TREE_PREFIX, raw)) = name.split_first() else {
                continue;
            };
            let map =
                String::from_utf8(raw.to_vec()).map_err(|e| StoreError::InvalidStoredName {
                    kind: NameKind::Map,
                    bytes: e.into_bytes(),
                })?;
            let tree = db.open_tree(&name).map_err(open_err)?;
            maps.insert(map, tree);
        }

        let shared = Arc::new(Shared {
            path,
            open: RwLock::new(Some(OpenDb {
                meta: meta.clone(),
                maps: maps.clone(),
            })),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stats: StoreStats::default(),
            inject_flush_failures: AtomicU64::new(0),
            #[cfg(test)]
            paused: AtomicBool::new(false),
            #[cfg(test)]
            holding: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(config.queue_capacity.get());
        let writer = Writer {
            db,
            meta,
            maps,
            rx,
            shared: Arc::clone(&shared),
            max_ops: config.max_group_ops.get(),
            max_bytes: config.max_group_bytes.get(),
        };
        std::thread::Builder::new()
            .name("topgun-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io(StoreOp::Open, e))?;
        Ok(Self { shared, tx })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Whether an apply or flush failed, so that the store refuses commits.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Makes the next `n` group flushes fail (fault injection for tests).
    #[cfg(test)]
    pub(crate) fn inject_flush_failures(&self, n: u64) {
        self.shared
            .inject_flush_failures
            .store(n, Ordering::Release);
    }

    /// Holds (`true`) or releases the writer before it gathers its next
    /// group.
    #[cfg(test)]
    pub(crate) fn pause_writer(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Release);
    }

    /// Whether the paused writer holds a request (taken off the queue).
    #[cfg(test)]
    pub(crate) fn writer_holding(&self) -> bool {
        self.shared.holding.load(Ordering::Acquire)
    }

    /// Requests waiting in the commit queue.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn send_commit(&self, batch: Batch, ops: usize, bytes: usize) -> Result<(), StoreError> {
        self.shared.check_usable()?;
        let (done, answer) = oneshot::channel();
        let request = Request::Commit(CommitRequest {
            batch,
            ops,
            bytes,
            done,
        });
        self.tx
            .send(request)
            .await
            .map_err(|_| self.shared.gone_error(StoreOp::Flush))?;
        answer
            .await
            .map_err(|_| self.shared.gone_error(StoreOp::Flush))?
    }

    fn scan(&self, only: Option<&str>) -> RecordStream {
        let trees: Vec<(String, sled::Tree)> = {
            let open = self.shared.read();
            let Some(open) = open.as_ref() else {
                return RecordStream::failed(StoreError::Closed);
            };
            match only {
                Some(map) => open
                    .maps
                    .get(map)
                    .map(|tree| (map.to_owned(), tree.clone()))
                    .into_iter()
                    .collect(),
                None => {
                    let mut all: Vec<_> = open
                        .maps
                        .iter()
                        .map(|(map, tree)| (map.clone(), tree.clone()))
                        .collect();
                    all.sort_by(|a, b| a.0.cmp(&b.0));
                    all
                }
            }
        };
        let (tx, rx) = mpsc::channel(CHUNK_QUEUE);
        match spawn_blocking(move || scan_trees(trees, &tx)) {
            Ok(()) => RecordStream::from_receiver(rx),
            Err(e) => RecordStream::failed(e),
        }
    }
}

fn open_error(path: &Path, err: sled::Error) -> StoreError {
    // sled 0.34.7 reports a held `flock` as an `Other` I/O error with this
    // text (config.rs, `try_lock`); it has no dedicated variant.
    if let sled::Error::Io(io) = &err {
        if io.to_string().contains("could not acquire lock") {
            return StoreError::Locked {
                path: path.to_owned(),
            };
        }
    }
    StoreError::from_sled(StoreOp::Open, err)
}

/// Checks the format marker, writing it into a new database.
fn check_format(db: &sled::Db) -> Result<(), StoreError> {
    let open_err = |e| StoreError::from_sled(StoreOp::Open, e);
    let store = db.open_tree(STORE_TREE).map_err(open_err)?;
    match store.get(FORMAT_KEY).map_err(open_err)? {
        Some(raw) => {
            let found = <[u8; 8]>::try_from(raw.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            if found != FORMAT_VERSION {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        None => {
            store
                .insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
                .map_err(open_err)?;
            db.flush().map_err(open_err)?;
        }
    }
    Ok(())
}

/// Runs `work` off the async executor: on tokio's blocking pool when a
/// runtime is present, else on a thread of its own.
fn spawn_blocking(work: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            // Detached: the result travels over the task's own channel.
            drop(handle.spawn_blocking(work));
            Ok(())
        }
        Err(_) => std::thread::Builder::new()
            .name("topgun-store-read".to_owned())
            .spawn(work)
            .map(drop)
            .map_err(|e| StoreError::io(StoreOp::Read, e)),
    }
}

/// Runs a blocking read and awaits its result.
async fn read_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = oneshot::channel();
    spawn_blocking(move || {
        // The reader may have stopped waiting; nothing to do then.
        let _sent = tx.send(work());
    })?;
    rx.await
        .map_err(|_| StoreError::WorkerLost { op: StoreOp::Read })?
}

/// Streams the rows of `trees` into `tx` in chunks; stops early when the
/// reader goes away.
fn scan_trees(trees: Vec<(String, sled::Tree)>, tx: &mpsc::Sender<super::Chunk>) {
    let mut out = Vec::new();
    let mut chunk = ChunkBuilder::default();
    for (map, tree) in trees {
        for item in tree.iter() {
            let record = match item {
                Ok((key, value)) => match String::from_utf8(key.to_vec()) {
                    Ok(key) => Record {
                        map: map.clone(),
                        key,
                        value: value.to_vec(),
                    },
                    Err(e) => {
                        let _sent = tx.blocking_send(Err(StoreError::InvalidStoredName {
                            kind: NameKind::Key,
                            bytes: e.into_bytes(),
                        }));
                        return;
                    }
                },
                Err(e) => {
                    let _sent = tx.blocking_send(Err(StoreError::from_sled(StoreOp::Read, e)));
                    return;
                }
            };
            if chunk.is_full_before(&record) {
                chunk = ChunkBuilder::default();
                if tx.blocking_send(Ok(std::mem::take(&mut out))).is_err() {
                    return;
                }
            }
            chunk.count(&record);
            out.push(record);
        }
    }
    if !out.is_empty() {
        let _sent = tx.blocking_send(Ok(out));
    }
}

impl Store for SledStore {
    fn commit(&self, batch: Vec<Write>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return self.shared.check_usable();
            }
            let ops = batch.len();
            let bytes = batch.iter().map(Write::byte_len).sum();
            self.send_commit(Batch::Writes(batch), ops, bytes).await
        })
    }

    fn load_map(&self, map: &str) -> RecordStream {
        self.scan(Some(map))
    }

    fn scan_all(&self) -> RecordStream {
        self.scan(None)
    }

    fn list_maps(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let trees: Vec<(String, sled::Tree)> = {
                let open = self.shared.read();
                let open = open.as_ref().ok_or(StoreError::Closed)?;
                open.maps
                    .iter()
                    .map(|(map, tree)| (map.clone(), tree.clone()))
                    .collect()
            };
            read_blocking(move || {
                let mut names = Vec::new();
                for (map, tree) in trees {
                    // A map whose rows were all deleted keeps its tree.
                    if tree
                        .first()
                        .map_err(|e| StoreError::from_sled(StoreOp::Read, e))?
                        .is_some()
                    {
                        names.push(map);
                    }
                }
                names.sort();
                Ok(names)
            })
            .await
        })
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let meta = {
                let open = self.shared.read();
                open.as_ref().ok_or(StoreError::Closed)?.meta.clone()
            };
            let key = key.to_owned();
            read_blocking(move || {
                meta.get(key.as_bytes())
                    .map(|value| value.map(|v| v.to_vec()))
                    .map_err(|e| StoreError::from_sled(StoreOp::Read, e))
            })
            .await
        })
    }

    fn put_meta<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let bytes = key.len() + value.len();
            let batch = Batch::Meta {
                key: key.to_owned(),
                value: Some(value),
            };
            self.send_commit(batch, 1, bytes).await
        })
    }

    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let batch = Batch::Meta {
                key: key.to_owned(),
                value: None,
            };
            self.send_commit(batch, 1, key.len()).await
        })
    }

    fn flush_and_close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let (done, answer) = oneshot::channel();
            // Behind every commit already queued, so those complete first.
            self.tx
                .send(Request::Close(done))
                .await
                .map_err(|_| self.shared.gone_error(StoreOp::Close))?;
            answer
                .await
                .map_err(|_| self.shared.gone_error(StoreOp::Close))?
        })
    }

    fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }
}

/// Frees the sled pages that `ops` writes replaced.
///
/// sled 0.34 copies a tree node on every write and hands the old copy to
/// crossbeam-epoch's global collector, which frees queued garbage only when
/// a thread pins: at most 8 bags of 64 objects every 128 pins. `apply_batch`
/// pins once for its whole batch, so a group of thousands of writes queues
/// thousands of old nodes and pins a handful of times: under a steady write
/// load the garbage outgrew the collection without bound (B3's
/// fire-and-forget server grew 70 MiB a second). Each `flush` here pins,
/// moves this thread's bag to the global queue and collects; a few calls
/// advance the epoch past the writes just applied, each further one frees
/// up to 512 objects. The budget is 8 objects per write, above what a write
/// leaves (an old page and its node, now and then a split).
fn reclaim_garbage(ops: usize) {
    for _ in 0..ops / 64 + 4 {
        crossbeam_epoch::pin().flush();
    }
}

/// Most writes applied to sled before the garbage they leave is reclaimed
/// (see [`reclaim_garbage`]). A group larger than this is applied in several
/// `apply_batch` calls, split between commits (never inside one), and
/// flushed once.
const APPLY_CHUNK_OPS: usize = 1024;

/// Writes gathered for one `apply_batch` per tree.
#[derive(Default)]
struct Pending {
    maps: HashMap<String, (sled::Tree, sled::Batch)>,
    meta: Option<sled::Batch>,
    ops: usize,
}

/// The writer thread: the only code that writes to sled.
struct Writer {
    db: sled::Db,
    meta: sled::Tree,
    maps: HashMap<String, sled::Tree>,
    rx: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    max_ops: usize,
    max_bytes: usize,
}

impl Writer {
    fn run(mut self) {
        let close = self.serve();
        let result = if self.shared.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            self.db
                .flush()
                .map(drop)
                .map_err(|e| StoreError::from_sled(StoreOp::Close, e))
        };
        self.shared.closed.store(true, Ordering::Release);
        let open = self
            .shared
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Release every handle on the database before answering, so that
        // the directory can be reopened as soon as `flush_and_close`
        // returns. Requests still queued are dropped unanswered and their
        // callers see `Closed`.
        let Self {
            db, meta, maps, rx, ..
        } = self;
        drop((open, maps, meta, rx, db));
        match close {
            Some(done) => {
                let _sent = done.send(result);
            }
            None => {
                if let Err(error) = result {
                    tracing::error!(%error, "final store flush failed");
                }
            }
        }
    }

    /// Serves requests until a close request (returned) or until every
    /// sender is gone (`None`).
    fn serve(&mut self) -> Option<oneshot::Sender<Result<(), StoreError>>> {
        let mut carried: Option<CommitRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match self.rx.blocking_recv()? {
                    Request::Commit(request) => request,
                    Request::Close(done) => return Some(done),
                },
            };
            #[cfg(test)]
            while self.shared.paused.load(Ordering::Acquire) {
                self.shared.holding.store(true, Ordering::Release);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            #[cfg(test)]
            self.shared.holding.store(false, Ordering::Release);
            let mut ops = first.ops;
            let mut bytes = first.bytes;
            let mut group = vec![first];
            let mut close = None;
            while ops < self.max_ops && bytes < self.max_bytes {
                match self.rx.try_recv() {
                    Ok(Request::Commit(next)) => {
                        if ops + next.ops > self.max_ops || bytes + next.bytes > self.max_bytes {
                            carried = Some(next);
                            break;
                        }
                        ops += next.ops;
                        bytes += next.bytes;
                        group.push(next);
                    }
                    Ok(Request::Close(done)) => {
                        close = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group, ops, bytes);
            if close.is_some() {
                return close;
            }
        }
    }

    /// Makes one group durable and answers each of its requests.
    fn commit_group(&mut self, group: Vec<CommitRequest>, ops: usize, bytes: usize) {
        let commits = group.len() as u64;
        let mut answers = Vec::with_capacity(group.len());
        let mut batches = Vec::with_capacity(group.len());
        for request in group {
            answers.push(request.done);
            batches.push(request.batch);
        }
        let result = if self.shared.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            match self.apply_and_flush(batches) {
                Ok(()) => {
                    self.shared
                        .stats
                        .record_group(commits, ops as u64, bytes as u64, 1);
                    Ok(())
                }
                Err(error) => {
                    self.shared.failed.store(true, Ordering::Release);
                    self.shared.stats.record_flush_error();
                    tracing::error!(
                        %error,
                        commits,
                        "store group commit failed; the store refuses writes until restarted"
                    );
                    Err(error)
                }
            }
        };
        if result.is_err() {
            self.shared.stats.record_failed(commits);
        }
        for done in answers {
            // A caller that stopped waiting simply misses its answer.
            let _sent = done.send(result.clone());
        }
    }

    fn apply_and_flush(&mut self, batches: Vec<Batch>) -> Result<(), StoreError> {
        let mut pending = Pending::default();
        for batch in batches {
            match batch {
                Batch::Writes(writes) => {
                    for write in writes {
                        pending.ops += 1;
                        match write {
                            Write::Put { map, key, value } => {
                                let slot = match pending.maps.get_mut(&map) {
                                    Some(slot) => slot,
                                    None => {
                                        let tree = self.tree(&map)?;
                                        pending
                                            .maps
                                            .entry(map)
                                            .or_insert((tree, sled::Batch::default()))
                                    }
                                };
                                slot.1.insert(key.as_bytes(), value);
                            }
                            Write::Delete { map, key } => {
                                let slot = match pending.maps.get_mut(&map) {
                                    Some(slot) => slot,
                                    // A map that has no tree has no row to delete.
                                    None => match self.maps.get(&map) {
                                        Some(tree) => pending
                                            .maps
                                            .entry(map)
                                            .or_insert((tree.clone(), sled::Batch::default())),
                                        None => continue,
                                    },
                                };
                                slot.1.remove(key.as_bytes());
                            }
                        }
                    }
                }
                Batch::Meta { key, value } => {
                    pending.ops += 1;
                    let batch = pending.meta.get_or_insert_with(sled::Batch::default);
                    match value {
                        Some(value) => batch.insert(key.as_bytes(), value),
                        None => batch.remove(key.as_bytes()),
                    }
                }
            }
            // Only between commits, so a commit's writes to one map stay
            // in one sled batch.
            if pending.ops >= APPLY_CHUNK_OPS {
                self.apply(&mut pending)?;
            }
        }
        self.apply(&mut pending)?;
        self.flush()
    }

    /// Applies the gathered batches (not yet flushed) and frees the sled
    /// pages they replaced.
    fn apply(&self, pending: &mut Pending) -> Result<(), StoreError> {
        let apply_err = |e| StoreError::from_sled(StoreOp::Apply, e);
        for (_, (tree, batch)) in pending.maps.drain() {
            tree.apply_batch(batch).map_err(apply_err)?;
        }
        if let Some(batch) = pending.meta.take() {
            self.meta.apply_batch(batch).map_err(apply_err)?;
        }
        reclaim_garbage(std::mem::take(&mut pending.ops));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let injected = self.shared.inject_flush_failures.fetch_update(
            Ordering::AcqRel,
            Ordering::Acquire,
            |n| n.checked_sub(1),
        );
        if injected.is_ok() {
            return Err(StoreError::io(
                StoreOp::Flush,
                std::io::Error::other("injected flush failure"),
            ));
        }
        self.db
            .flush()
            .map(drop)
            .map_err(|e| StoreError::from_sled(StoreOp::Flush, e))
    }

    /// The tree of `map`, created if missing (and published to readers).
    fn tree(&mut self, map: &str) -> Result<sled::Tree, StoreError> {
        if let Some(tree) = self.maps.get(map) {
            return Ok(tree.clone());
        }
        let tree = self
            .db
            .open_tree(map_tree_name(map))
            .map_err(|e| StoreError::from_sled(StoreOp::Apply, e))?;
        self.maps.insert(map.to_owned(), tree.clone());
        if let Some(open) = self
            .shared
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            open.maps.insert(map.to_owned(), tree.clone());
        }
        Ok(tree)
    }
}
