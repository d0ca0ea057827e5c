//! `RecordStream`: bounded, chunked delivery of stored records to async code.

use std::fmt;

use tokio::sync::mpsc;

use super::{Record, StoreError};

/// Most records in one chunk of a scan.
pub const CHUNK_RECORDS: usize = 1024;
/// A chunk is closed once its keys and values reach this many bytes (a
/// single record larger than this still travels, alone).
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Chunks buffered between a scanning worker and its reader.
pub(crate) const CHUNK_QUEUE: usize = 2;

/// Result of one step of a [`RecordStream`].
pub type Chunk = Result<Vec<Record>, StoreError>;

type PullFn = Box<dyn FnMut() -> Option<Chunk> + Send>;

/// The records of a scan (`scan_all` or `load_map`), delivered in chunks so
/// that rebuilding state at start never holds a second copy of the whole
/// store: at most a couple of chunks are in flight.
///
/// A scan is not a snapshot: it is meant for startup, before writes flow.
/// Records arrive grouped by map; no order is promised beyond that.
pub struct RecordStream {
    inner: Inner,
}

enum Inner {
    /// Chunks produced by a worker thread into a bounded channel.
    Channel(mpsc::Receiver<Chunk>),
    /// Chunks pulled synchronously from an in-memory source.
    Pull(PullFn),
    /// Exhausted (or ended by an error).
    Done,
}

impl RecordStream {
    /// A stream fed by a producer (for example a blocking thread using
    /// `blocking_send`). The producer ends the stream by dropping its sender;
    /// after an `Err` chunk the stream ends.
    pub fn from_receiver(rx: mpsc::Receiver<Chunk>) -> Self {
        Self {
            inner: Inner::Channel(rx),
        }
    }

    /// A stream pulled from a synchronous, non-blocking source (an
    /// in-memory store); `None` ends the stream.
    pub fn from_fn<F>(pull: F) -> Self
    where
        F: FnMut() -> Option<Chunk> + Send + 'static,
    {
        Self {
            inner: Inner::Pull(Box::new(pull)),
        }
    }

    /// A stream over records already in memory.
    pub fn from_records(records: Vec<Record>) -> Self {
        let mut rest = Some(records);
        Self::from_fn(move || {
            let mut records = rest.take()?;
            let at = split_point(&records);
            if at < records.len() {
                let tail = records.split_off(at);
                rest = Some(tail);
            }
            Some(Ok(records))
        })
    }

    /// A stream whose only item is `err`.
    pub fn failed(err: StoreError) -> Self {
        let mut err = Some(err);
        Self::from_fn(move || err.take().map(Err))
    }

    /// The next chunk, `None` at the end. Chunks are never empty. After an
    /// error the stream is over.
    pub async fn next_chunk(&mut self) -> Option<Chunk> {
        let item = match &mut self.inner {
            Inner::Channel(rx) => rx.recv().await,
            Inner::Pull(pull) => pull(),
            Inner::Done => None,
        };
        match &item {
            None | Some(Err(_)) => self.inner = Inner::Done,
            Some(Ok(_)) => {}
        }
        item
    }

    /// Collects every record. Convenient in tests and for small stores; for
    /// rebuilding state prefer [`RecordStream::next_chunk`].
    pub async fn collect_all(mut self) -> Result<Vec<Record>, StoreError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            all.extend(chunk?);
        }
        Ok(all)
    }
}

impl fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner {
            Inner::Channel(_) => "channel",
            Inner::Pull(_) => "pull",
            Inner::Done => "done",
        };
        f.debug_struct("RecordStream")
            .field("state", &state)
            .finish()
    }
}

/// How many of `records` make the first chunk under the chunk limits.
fn split_point(records: &[Record]) -> usize {
    let mut chunk = ChunkBuilder::default();
    for (i, record) in records.iter().enumerate() {
        if chunk.is_full_before(record) {
            return i;
        }
        chunk.count(record);
    }
    records.len()
}

/// Tracks a chunk being filled against `CHUNK_RECORDS` and `CHUNK_BYTES`.
#[derive(Debug, Default)]
pub(crate) struct ChunkBuilder {
    records: usize,
    bytes: usize,
}

impl ChunkBuilder {
    /// Whether `record` must start a new chunk (a chunk always takes at
    /// least one record).
    pub(crate) fn is_full_before(&self, record: &Record) -> bool {
        self.records > 0
            && (self.records >= CHUNK_RECORDS
                || self.bytes.saturating_add(record.byte_len()) > CHUNK_BYTES)
    }

    /// Counts `record` into the chunk.
    pub(crate) fn count(&mut self, record: &Record) {
        self.records += 1;
        self.bytes = self.bytes.saturating_add(record.byte_len());
    }
}
