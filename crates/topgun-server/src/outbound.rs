//! A connection's outbound queue: bounded, and a full queue marks the
//! connection as a slow consumer instead of growing memory.
//!
//! Messages are queued boxed: tokio's channel allocates its first block of
//! 32 slots when it is created, so with `ServerMessage` inline (about 140
//! bytes) every connection, idle or not, would hold over 4 KiB of empty
//! slots; boxed, the block is 32 pointers.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use topgun_protocol::ServerMessage;

/// One queued message.
pub(crate) type Queued = Box<ServerMessage>;

/// The sending half of one connection's outbound queue. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    tx: mpsc::Sender<Queued>,
    overflow: CancellationToken,
}

impl Outbound {
    /// A queue of `capacity` messages; the receiver goes to the connection's
    /// writer, the token is cancelled when the queue overflows.
    pub(crate) fn new(capacity: usize) -> (Outbound, mpsc::Receiver<Queued>, CancellationToken) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = CancellationToken::new();
        (
            Outbound {
                tx,
                overflow: overflow.clone(),
            },
            rx,
            overflow,
        )
    }

    /// Queues a message without waiting (fan-out: live-query updates). A
    /// full queue cancels the overflow token, which closes the connection
    /// as a slow consumer; the message is not queued. Returns whether it
    /// was queued.
    pub(crate) fn push(&self, msg: ServerMessage) -> bool {
        match self.tx.try_send(Box::new(msg)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Marks the connection as a slow consumer without queuing anything:
    /// for a producer that buffers on the connection's behalf (a live
    /// query's updates held until its `QUERY_RESP` is queued) and ran out
    /// of room.
    pub(crate) fn overflowed(&self) {
        self.overflow.cancel();
    }

    /// Queues a reply to the connection's own request, waiting for room
    /// (backpressure on that connection's reads). Returns whether the
    /// connection is still open.
    pub(crate) async fn reply(&self, msg: ServerMessage) -> bool {
        self.tx.send(Box::new(msg)).await.is_ok()
    }
}
