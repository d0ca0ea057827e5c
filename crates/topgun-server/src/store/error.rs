//! Typed errors of the storage layer, shared by every `Store` backend.

use std::{fmt, io, path::PathBuf, sync::Arc};

/// What the store was doing when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOp {
    /// Opening the data directory.
    Open,
    /// Applying a commit group to the engine (before its flush).
    Apply,
    /// Flushing a commit group to disk.
    Flush,
    /// Reading (scan, `load_map`, `list_maps`, `get_meta`).
    Read,
    /// The final flush of `flush_and_close` or of a dropped store.
    Close,
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Apply => "apply",
            Self::Flush => "flush",
            Self::Read => "read",
            Self::Close => "close",
        })
    }
}

/// Which stored name failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A map name (a sled tree name).
    Map,
    /// A record key or a metadata key.
    Key,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Map => "map name",
            Self::Key => "key",
        })
    }
}

/// Errors of the `Store` operations.
///
/// Cloneable because one flush failure is reported to every commit of its
/// group; the underlying causes are shared behind `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (or another open store in this process) holds the
    /// data directory's lock.
    #[error("data directory {path:?} is locked by another process or store instance")]
    Locked {
        /// The data directory that was asked for.
        path: PathBuf,
    },
    /// The engine reported an I/O error.
    #[error("storage I/O error during {op}")]
    Io {
        /// What the store was doing.
        op: StoreOp,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The engine reported a problem that is not plain I/O: detected
    /// corruption, an unsupported use, or an internal bug of the engine.
    #[error("storage engine error during {op}")]
    Engine {
        /// What the store was doing.
        op: StoreOp,
        /// The engine's own error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The data directory was written in a layout this version does not read.
    #[error("unsupported on-disk format version {found} (this build reads version {supported})")]
    UnsupportedFormat {
        /// The version found on disk.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// A stored name is not valid UTF-8: the files were not written by this
    /// store, or are corrupt.
    #[error("stored {kind} is not valid UTF-8 ({} bytes)", bytes.len())]
    InvalidStoredName {
        /// Whether a map name or a key failed to decode.
        kind: NameKind,
        /// The raw bytes found.
        bytes: Vec<u8>,
    },
    /// An earlier apply or flush failed, so the store refuses further work:
    /// it cannot tell what reached the disk. Restart the node, which reloads
    /// whatever is durable.
    #[error("store is in the failed state after an earlier storage error; restart required")]
    Failed,
    /// The store was closed with `flush_and_close`.
    #[error("store is closed")]
    Closed,
    /// A storage worker thread ended without answering (it panicked).
    #[error("storage worker thread stopped unexpectedly during {op}")]
    WorkerLost {
        /// What the worker was doing.
        op: StoreOp,
    },
    /// A fault injected by `FaultyStore`.
    #[error("injected storage fault")]
    Injected,
}

impl StoreError {
    /// An I/O error during `op`.
    pub(crate) fn io(op: StoreOp, source: io::Error) -> Self {
        Self::Io {
            op,
            source: Arc::new(source),
        }
    }

    /// Converts a sled error, keeping sled's types out of the public API.
    pub(crate) fn from_sled(op: StoreOp, err: sled::Error) -> Self {
        match err {
            sled::Error::Io(source) => Self::io(op, source),
            other => Self::Engine {
                op,
                source: Arc::new(other),
            },
        }
    }
}
