//! `FaultyStore`: wraps any store and fails commits on command (fault injection).

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{RecordStream, StatsSnapshot, Store, StoreError, StoreFuture, Write};

/// How an injected fault fails a commit. Either way the commit returns
/// [`StoreError::Injected`], and a correct pipeline does not acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The batch never reaches the inner store.
    Reject,
    /// The batch is committed to the inner store, then the commit reports
    /// failure: what a crash between the write and its acknowledgement, or a
    /// flush that failed after applying, looks like. The data may be there
    /// after a restart although nobody was told so.
    ApplyThenFail,
}

type Predicate = Box<dyn Fn(&[Write]) -> bool + Send + Sync>;

#[derive(Default)]
struct Plan {
    /// Commits still to fail, and how.
    next: Option<(u64, FaultKind)>,
    /// Fails every commit whose batch matches, while set.
    when: Option<(Predicate, FaultKind)>,
}

/// A [`Store`] wrapper for tests that fails commits on command: the next
/// `n` commits ([`FaultyStore::fail_next`]) or every commit whose batch
/// matches a predicate ([`FaultyStore::fail_when`]). Reads, metadata and
/// closing pass through unchanged.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    plan: Mutex<Plan>,
    injected: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`, with no fault planned.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan::default()),
            injected: AtomicU64::new(0),
        }
    }

    /// Fails the next `n` commits with `kind` (replacing an earlier count).
    pub fn fail_next(&self, n: u64, kind: FaultKind) {
        self.plan().next = (n > 0).then_some((n, kind));
    }

    /// Fails, with `kind`, every commit whose batch satisfies `predicate`,
    /// until [`FaultyStore::heal`]. Checked after the `fail_next` count.
    pub fn fail_when<F>(&self, kind: FaultKind, predicate: F)
    where
        F: Fn(&[Write]) -> bool + Send + Sync + 'static,
    {
        self.plan().when = Some((Box::new(predicate), kind));
    }

    /// Removes every planned fault.
    pub fn heal(&self) {
        *self.plan() = Plan::default();
    }

    /// How many commits were failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // The plan is replaced whole, never left half-updated.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides, and consumes, the fault for `batch`.
    fn fault_for(&self, batch: &[Write]) -> Option<FaultKind> {
        let mut plan = self.plan();
        if let Some((left, kind)) = plan.next {
            plan.next = (left > 1).then_some((left - 1, kind));
            return Some(kind);
        }
        plan.when
            .as_ref()
            .and_then(|(predicate, kind)| predicate(batch).then_some(*kind))
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.plan();
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("next", &plan.next)
            .field("when", &plan.when.as_ref().map(|(_, kind)| kind))
            .field("injected", &self.injected())
            .finish()
    }
}

impl Store for FaultyStore {
    fn commit(&self, batch: Vec<Write>) -> StoreFuture<'_, ()> {
        // Decided before any await, so the plan's lock is never held across one.
        let fault = self.fault_for(&batch);
        Box::pin(async move {
            match fault {
                None => self.inner.commit(batch).await,
                Some(kind) => {
                    if kind == FaultKind::ApplyThenFail {
                        // The inner result is deliberately dropped: the
                        // caller is told the commit failed either way.
                        let _applied = self.inner.commit(batch).await;
                    }
                    self.injected.fetch_add(1, Ordering::Relaxed);
                    Err(StoreError::Injected)
                }
            }
        })
    }

    fn load_map(&self, map: &str) -> RecordStream {
        self.inner.load_map(map)
    }

    fn scan_all(&self) -> RecordStream {
        self.inner.scan_all()
    }

    fn list_maps(&self) -> StoreFuture<'_, Vec<String>> {
        self.inner.list_maps()
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.inner.get_meta(key)
    }

    fn put_meta<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, ()> {
        self.inner.put_meta(key, value)
    }

    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.inner.delete_meta(key)
    }

    fn flush_and_close(&self) -> StoreFuture<'_, ()> {
        self.inner.flush_and_close()
    }

    fn stats(&self) -> StatsSnapshot {
        self.inner.stats()
    }
}
