//! Live query subscriptions: the initial result and a stream of changes.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use topgun_core::LwwRecord;
use topgun_protocol::{ChangeKind, ClientMessage, ErrorCode};

use crate::client::Shared;
use crate::error::ClientError;

/// One change to a live query's result (`QUERY_UPDATE`).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryChange {
    /// The key.
    pub key: String,
    /// How the key's membership in the result changed.
    pub change: ChangeKind,
    /// The key's current record (for [`ChangeKind::Leave`], the record that
    /// made it leave, e.g. a tombstone).
    pub record: LwwRecord,
}

/// Why a subscription's stream of changes ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionEnd {
    /// [`Subscription::unsubscribe`] was called or the subscription was
    /// dropped.
    Unsubscribed,
    /// The reader fell further behind than the configured buffer; the
    /// subscription was ended (and unsubscribed) rather than stall the
    /// connection. Subscribe again to resync.
    Lagged,
    /// The server refused the subscription with an `ERROR`.
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The connection ended.
    Disconnected {
        /// The WebSocket close code, if any.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

/// A live query: its initial result and the changes that follow.
///
/// Dropping it unsubscribes (best effort); [`Subscription::unsubscribe`]
/// does so explicitly. A subscription does not keep the connection open:
/// when the last [`crate::Client`] handle is dropped the connection closes
/// and the subscription ends with [`SubscriptionEnd::Disconnected`].
pub struct Subscription {
    query_id: u64,
    map: String,
    initial: Vec<(String, LwwRecord)>,
    updates: mpsc::Receiver<QueryChange>,
    end: Arc<OnceLock<SubscriptionEnd>>,
    shared: Arc<Shared>,
    live: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("query_id", &self.query_id)
            .field("map", &self.map)
            .field("initial", &self.initial.len())
            .field("end", &self.end.get())
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(
        query_id: u64,
        map: String,
        initial: Vec<(String, LwwRecord)>,
        updates: mpsc::Receiver<QueryChange>,
        end: Arc<OnceLock<SubscriptionEnd>>,
        shared: Arc<Shared>,
    ) -> Self {
        Subscription {
            query_id,
            map,
            initial,
            updates,
            end,
            shared,
            live: true,
        }
    }

    /// The query id this client chose.
    pub fn query_id(&self) -> u64 {
        self.query_id
    }

    /// The map.
    pub fn map(&self) -> &str {
        &self.map
    }

    /// The initial result (`QUERY_RESP`), in query order.
    pub fn initial(&self) -> &[(String, LwwRecord)] {
        &self.initial
    }

    /// Takes the initial result out, leaving it empty.
    pub fn take_initial(&mut self) -> Vec<(String, LwwRecord)> {
        std::mem::take(&mut self.initial)
    }

    /// The next change; `None` once the subscription has ended (see
    /// [`Subscription::end_reason`]) and every buffered change was read.
    pub async fn next(&mut self) -> Option<QueryChange> {
        self.updates.recv().await
    }

    /// The next change if one is buffered.
    pub fn try_next(&mut self) -> Option<QueryChange> {
        self.updates.try_recv().ok()
    }

    /// Why the subscription ended, once it has.
    pub fn end_reason(&self) -> Option<&SubscriptionEnd> {
        self.end.get()
    }

    /// Ends the subscription and tells the server (`QUERY_UNSUB`).
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.live = false;
        let was_live = self
            .shared
            .router()
            .remove_query(self.query_id, SubscriptionEnd::Unsubscribed);
        if !was_live {
            return Ok(());
        }
        self.shared
            .send_control(&ClientMessage::QueryUnsub {
                query_id: self.query_id,
            })
            .await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let was_live = self
            .shared
            .router()
            .remove_query(self.query_id, SubscriptionEnd::Unsubscribed);
        if was_live {
            self.shared.try_send_control(&ClientMessage::QueryUnsub {
                query_id: self.query_id,
            });
        }
    }
}
