//! The in-memory replicas of every map, the node's clock, and the stored
//! form of records.
//!
//! Every map lives in memory behind its own lock (no global lock on the
//! write path); the store holds one row per key, which is how the state is
//! rebuilt at start.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use topgun_core::{LwwMap, LwwRecord, MapKind, OrEntry, OrMap};
use topgun_protocol::{StoredRecord, WireLwwRecord, WireOrEntry, decode_stored, encode_stored};

use crate::store::{Store, StoreError};

/// A source of physical time in milliseconds since the Unix epoch. The
/// server reads time only through this seam, so tests can control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// One map's replica.
#[derive(Debug)]
pub(crate) enum MapData {
    /// A last-writer-wins map.
    Lww(LwwMap),
    /// An observed-remove map.
    Or(OrMap),
}

impl MapData {
    fn new(kind: MapKind) -> Self {
        match kind {
            MapKind::Lww => MapData::Lww(LwwMap::new()),
            MapKind::Or => MapData::Or(OrMap::new()),
        }
    }

    /// The map's kind.
    pub(crate) fn kind(&self) -> MapKind {
        match self {
            MapData::Lww(_) => MapKind::Lww,
            MapData::Or(_) => MapKind::Or,
        }
    }
}

/// A shared handle on one map's replica.
pub(crate) type MapHandle = Arc<Mutex<MapData>>;

/// Locks a map. A poisoned lock (a panic while it was held, which the code
/// never does on purpose) still holds consistent CRDT state: every mutation
/// is a single merge call, so the data is used as is.
pub(crate) fn lock(handle: &MapHandle) -> MutexGuard<'_, MapData> {
    handle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The map was created with the other kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KindMismatch {
    /// The map's actual kind.
    pub(crate) actual: MapKind,
}

/// Every map of the node.
#[derive(Debug, Default)]
pub(crate) struct Maps {
    maps: DashMap<String, MapHandle>,
}

impl Maps {
    /// The map, if it exists.
    pub(crate) fn get(&self, name: &str) -> Option<MapHandle> {
        self.maps.get(name).map(|m| Arc::clone(m.value()))
    }

    /// The map, created empty with `kind` if it does not exist; an error if
    /// it exists with the other kind.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        kind: MapKind,
    ) -> Result<MapHandle, KindMismatch> {
        let handle = match self.maps.get(name) {
            Some(m) => Arc::clone(m.value()),
            None => Arc::clone(
                self.maps
                    .entry(name.to_owned())
                    .or_insert_with(|| Arc::new(Mutex::new(MapData::new(kind))))
                    .value(),
            ),
        };
        let actual = lock(&handle).kind();
        if actual == kind {
            Ok(handle)
        } else {
            Err(KindMismatch { actual })
        }
    }

    /// Number of maps.
    pub(crate) fn len(&self) -> usize {
        self.maps.len()
    }

    /// Rebuilds every map from the store's rows. Rows that cannot be decoded
    /// are reported, not skipped silently: start-up fails, since serving a
    /// partial state would hide data loss.
    pub(crate) async fn load(store: &dyn Store) -> Result<Maps, LoadError> {
        let maps = Maps::default();
        let mut stream = store.scan_all();
        while let Some(chunk) = stream.next_chunk().await {
            for row in chunk.map_err(LoadError::Store)? {
                let stored = decode_stored(&row.value).map_err(|e| LoadError::Corrupt {
                    map: row.map.clone(),
                    key: row.key.clone(),
                    detail: e.to_string(),
                })?;
                let kind = match &stored {
                    StoredRecord::Lww(_) => MapKind::Lww,
                    StoredRecord::Or(_) => MapKind::Or,
                };
                let handle =
                    maps.get_or_create(&row.map, kind)
                        .map_err(|_| LoadError::Corrupt {
                            map: row.map.clone(),
                            key: row.key.clone(),
                            detail: "map holds records of both kinds".to_owned(),
                        })?;
                let mut data = lock(&handle);
                match (&mut *data, stored) {
                    (MapData::Lww(m), StoredRecord::Lww(r)) => {
                        m.merge(row.key, LwwRecord::from(r));
                    }
                    (MapData::Or(m), StoredRecord::Or(e)) => {
                        m.merge_entry(&row.key, &OrEntry::from(e));
                    }
                    _ => {
                        return Err(LoadError::Corrupt {
                            map: row.map,
                            key: row.key,
                            detail: "map holds records of both kinds".to_owned(),
                        });
                    }
                }
            }
        }
        Ok(maps)
    }
}

/// Why the maps could not be rebuilt from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The store failed.
    #[error("reading the store failed: {0}")]
    Store(#[source] StoreError),
    /// A row could not be decoded.
    #[error("stored record {map:?}/{key:?} is corrupt: {detail}")]
    Corrupt {
        /// The map.
        map: String,
        /// The key.
        key: String,
        /// What was wrong.
        detail: String,
    },
}

/// Encodes a last-writer-wins record for the store.
pub(crate) fn stored_lww(record: &LwwRecord) -> Result<Vec<u8>, String> {
    let wire = WireLwwRecord::try_from(record).map_err(|e| e.to_string())?;
    encode_stored(&StoredRecord::Lww(wire)).map_err(|e| e.to_string())
}

/// Encodes an observed-remove entry for the store.
pub(crate) fn stored_or(entry: &OrEntry) -> Result<Vec<u8>, String> {
    let wire = WireOrEntry::try_from(entry).map_err(|e| e.to_string())?;
    encode_stored(&StoredRecord::Or(wire)).map_err(|e| e.to_string())
}
