//! Client operations: what to write, the client's hybrid logical clock that
//! stamps them, and their outcomes.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use topgun_core::{Hlc, NodeId, OpKind, Timestamp, Value};
use topgun_protocol::{ConvertError, Op, RejectCode, WireOpKind};

/// One write to send: a map, a key, the client's timestamp and what to do.
///
/// Build it with the client's helpers ([`crate::Client::put`],
/// [`crate::Client::remove`], [`crate::Client::or_add`],
/// [`crate::Client::or_remove`]), which stamp it with the client's clock, or
/// by hand with [`ClientOp::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClientOp {
    /// The op id; `None` lets the client assign the next one of its
    /// monotonic sequence when the op is sent.
    pub op_id: Option<u64>,
    /// The map.
    pub map: String,
    /// The key within the map.
    pub key: String,
    /// The client's timestamp (the server may replace it; the ack carries
    /// the applied one).
    pub timestamp: Timestamp,
    /// What to do.
    pub kind: OpKind,
}

impl ClientOp {
    /// An op without an op id (one is assigned when it is sent).
    pub fn new(
        map: impl Into<String>,
        key: impl Into<String>,
        timestamp: Timestamp,
        kind: OpKind,
    ) -> Self {
        ClientOp {
            op_id: None,
            map: map.into(),
            key: key.into(),
            timestamp,
            kind,
        }
    }

    /// Uses `op_id` instead of an assigned one (e.g. to resend an op after
    /// a reconnect, which the server recognizes by its id).
    #[must_use]
    pub fn with_op_id(mut self, op_id: u64) -> Self {
        self.op_id = Some(op_id);
        self
    }

    /// Gives a put or an add a time to live; other kinds are unchanged.
    #[must_use]
    pub fn with_ttl(mut self, ttl: u64) -> Self {
        match &mut self.kind {
            OpKind::Put { ttl_ms, .. } | OpKind::OrAdd { ttl_ms, .. } => *ttl_ms = Some(ttl),
            OpKind::Remove | OpKind::OrRemove { .. } => {}
        }
        self
    }

    /// The wire form, with the op id decided.
    pub(crate) fn into_wire(self, op_id: u64) -> Result<Op, ConvertError> {
        Ok(Op {
            op_id,
            map: self.map,
            key: self.key,
            timestamp: self.timestamp.into(),
            kind: WireOpKind::try_from(self.kind)?,
        })
    }
}

/// How the server answered one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// Applied (`OP_ACK`), at `timestamp` (possibly the server's own,
    /// replacing the client's); a replica adopts it to converge.
    Acked {
        /// The timestamp the server applied.
        timestamp: Timestamp,
    },
    /// Not applied (`OP_REJECTED`).
    Rejected {
        /// Why.
        code: RejectCode,
        /// The server's explanation.
        message: String,
    },
}

impl OpOutcome {
    /// Whether the op was applied.
    pub fn is_acked(&self) -> bool {
        matches!(self, OpOutcome::Acked { .. })
    }
}

/// The client's hybrid logical clock. It reads the system clock (the core
/// never does) and follows the timestamps the server acknowledges, so later
/// local writes order after them.
#[derive(Debug)]
pub(crate) struct Clock {
    hlc: Mutex<Hlc>,
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Clock {
    /// A clock for `node`.
    pub(crate) fn new(node: NodeId) -> Self {
        Clock {
            hlc: Mutex::new(Hlc::new(node)),
        }
    }

    /// The node id stamped on this client's timestamps.
    pub(crate) fn node(&self) -> NodeId {
        self.lock().node()
    }

    /// A fresh timestamp, greater than every one issued or observed before.
    pub(crate) fn now(&self) -> Timestamp {
        let mut hlc = self.lock();
        // `Exhausted` needs a clock near u64::MAX milliseconds; the last
        // reading is the only sensible answer left then.
        hlc.now(now_millis()).unwrap_or_else(|_| hlc.last())
    }

    /// Moves the clock past `ts` (an acknowledged timestamp). Timestamps
    /// beyond the drift bound are ignored rather than followed.
    pub(crate) fn observe(&self, ts: &Timestamp) {
        let _ = self.lock().update(ts, now_millis());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hlc> {
        // The lock is never held across a panic point, so poisoning cannot
        // leave the clock inconsistent.
        self.hlc.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Builds the op kinds the helpers stamp.
pub(crate) fn put_kind(value: Value) -> OpKind {
    OpKind::Put {
        value,
        ttl_ms: None,
    }
}

/// An observed-remove add.
pub(crate) fn or_add_kind(value: Value) -> OpKind {
    OpKind::OrAdd {
        value,
        ttl_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_follows_acks() {
        let clock = Clock::new(NodeId(7));
        let a = clock.now();
        let b = clock.now();
        assert!(b > a);
        assert_eq!(a.node, NodeId(7));
        let ahead = Timestamp::new(b.millis + 5_000, 3, NodeId(1));
        clock.observe(&ahead);
        assert!(clock.now() > ahead);
        // Far-future timestamps are not followed.
        let absurd = Timestamp::new(u64::MAX / 2, 0, NodeId(1));
        clock.observe(&absurd);
        assert!(clock.now() < absurd);
    }

    #[test]
    fn ttl_applies_to_puts_and_adds_only() {
        let ts = Timestamp::new(1, 0, NodeId(1));
        let put = ClientOp::new("m", "k", ts, put_kind(Value::Int(1))).with_ttl(10);
        assert_eq!(
            put.kind,
            OpKind::Put {
                value: Value::Int(1),
                ttl_ms: Some(10)
            }
        );
        let rm = ClientOp::new("m", "k", ts, OpKind::Remove).with_ttl(10);
        assert_eq!(rm.kind, OpKind::Remove);
        let wire = put.with_op_id(9).into_wire(9).unwrap();
        assert_eq!(wire.op_id, 9);
    }
}
