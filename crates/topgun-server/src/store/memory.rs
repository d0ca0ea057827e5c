//! `MemoryStore`: the in-memory backend, for tests and the in-memory benchmark mode.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use super::{
    Record, RecordStream, StatsSnapshot, Store, StoreError, StoreFuture, StoreStats, Write,
    stream::ChunkBuilder,
};

/// Rows by map, then by key. A map without rows is removed, so
/// `list_maps` is the key set.
#[derive(Debug, Default)]
struct Data {
    rows: HashMap<String, HashMap<String, Vec<u8>>>,
    meta: BTreeMap<String, Vec<u8>>,
}

/// An in-memory [`Store`] with the same semantics as the durable one, minus
/// durability: a commit applies atomically under one lock and is "durable"
/// as long as the data lives.
///
/// [`MemoryStore::reopen`] gives a new handle over the same data, as a
/// process restart over a perfect disk would; together with
/// [`super::FaultyStore`] (whose `ApplyThenFail` leaves a commit applied but
/// unacknowledged) it simulates crashes in pipeline tests.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    data: Arc<Mutex<Data>>,
    closed: Arc<AtomicBool>,
    stats: Arc<StoreStats>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            data: Arc::new(Mutex::new(Data::default())),
            closed: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(StoreStats::default()),
        }
    }

    /// A fresh open handle over the same data, with fresh counters: what a
    /// restarted node would see. This handle stays as it is (open or
    /// closed).
    pub fn reopen(&self) -> Self {
        Self {
            data: Arc::clone(&self.data),
            closed: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(StoreStats::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Streams the rows of `only` (or of every map) in map then key order.
    /// Rows live in hash maps (a commit is one hash insert per write, the
    /// hot path); the order comes from sorting the map names once, and each
    /// map's keys when the stream reaches it. A row written after its map
    /// was reached is not seen; one removed since is skipped.
    fn stream(&self, only: Option<String>) -> RecordStream {
        let data = Arc::clone(&self.data);
        let closed = Arc::clone(&self.closed);
        // Maps still to visit, in reverse order (popped from the end).
        let mut maps: Option<Vec<String>> = None;
        // The map being streamed, its keys (sorted) and the next position.
        let mut current: Option<(String, Vec<String>, usize)> = None;
        let mut done = false;
        RecordStream::from_fn(move || {
            if done {
                return None;
            }
            if closed.load(Ordering::Acquire) {
                done = true;
                return Some(Err(StoreError::Closed));
            }
            let data = lock(&data);
            let todo = maps.get_or_insert_with(|| {
                let mut names: Vec<String> = match &only {
                    Some(map) => data
                        .rows
                        .contains_key(map)
                        .then(|| map.clone())
                        .into_iter()
                        .collect(),
                    None => data.rows.keys().cloned().collect(),
                };
                names.sort_unstable_by(|a, b| b.cmp(a));
                names
            });
            let mut out = Vec::new();
            let mut chunk = ChunkBuilder::default();
            loop {
                let (map, keys, next) = match &mut current {
                    Some(c) if c.2 < c.1.len() => c,
                    _ => {
                        let Some(map) = todo.pop() else { break };
                        let mut keys: Vec<String> = data
                            .rows
                            .get(&map)
                            .map(|rows| rows.keys().cloned().collect())
                            .unwrap_or_default();
                        keys.sort_unstable();
                        current.insert((map, keys, 0))
                    }
                };
                let Some(rows) = data.rows.get(map.as_str()) else {
                    *next = keys.len();
                    continue;
                };
                while let Some(key) = keys.get(*next) {
                    let Some(value) = rows.get(key) else {
                        *next += 1;
                        continue;
                    };
                    let record = Record {
                        map: map.clone(),
                        key: key.clone(),
                        value: value.clone(),
                    };
                    if chunk.is_full_before(&record) {
                        return Some(Ok(out));
                    }
                    chunk.count(&record);
                    out.push(record);
                    *next += 1;
                }
            }
            done = true;
            (!out.is_empty()).then_some(Ok(out))
        })
    }
}

fn lock(data: &Mutex<Data>) -> MutexGuard<'_, Data> {
    // Every mutation below completes without panicking, so a poisoned lock
    // still guards consistent data.
    data.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store for MemoryStore {
    fn commit(&self, batch: Vec<Write>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.check_open()?;
            let ops = batch.len() as u64;
            let bytes: usize = batch.iter().map(Write::byte_len).sum();
            let mut data = self.lock();
            for write in batch {
                match write {
                    Write::Put { map, key, value } => {
                        data.rows.entry(map).or_default().insert(key, value);
                    }
                    Write::Delete { map, key } => {
                        if let Some(rows) = data.rows.get_mut(&map) {
                            rows.remove(&key);
                            if rows.is_empty() {
                                data.rows.remove(&map);
                            }
                        }
                    }
                }
            }
            drop(data);
            self.stats.record_group(1, ops, bytes as u64, 0);
            Ok(())
        })
    }

    fn load_map(&self, map: &str) -> RecordStream {
        self.stream(Some(map.to_owned()))
    }

    fn scan_all(&self) -> RecordStream {
        self.stream(None)
    }

    fn list_maps(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.check_open()?;
            let mut maps: Vec<String> = self.lock().rows.keys().cloned().collect();
            maps.sort_unstable();
            Ok(maps)
        })
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.check_open()?;
            Ok(self.lock().meta.get(key).cloned())
        })
    }

    fn put_meta<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.check_open()?;
            let bytes = (key.len() + value.len()) as u64;
            self.lock().meta.insert(key.to_owned(), value);
            self.stats.record_group(1, 1, bytes, 0);
            Ok(())
        })
    }

    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.check_open()?;
            self.lock().meta.remove(key);
            self.stats.record_group(1, 1, key.len() as u64, 0);
            Ok(())
        })
    }

    fn flush_and_close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self.closed.swap(true, Ordering::AcqRel) {
                return Err(StoreError::Closed);
            }
            Ok(())
        })
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}
