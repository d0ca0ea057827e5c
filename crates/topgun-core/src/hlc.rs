//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).

use std::fmt;

/// Default bound on how far a remote timestamp may run ahead of local
/// physical time before [`Hlc::update`] refuses it (one minute).
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// Identifies the replica (a client or a server node) that issued a
/// [`Timestamp`].
///
/// Node ids break ties between timestamps with equal `millis` and `counter`,
/// so two replicas must never share one: clients pick a random one, server
/// nodes derive theirs from their configured node name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A hybrid logical clock reading.
///
/// Timestamps are totally ordered: first by `millis`, then by `counter`, then
/// by `node`. Because the node id takes part in the order, two timestamps
/// issued by different replicas are never equal, so last-writer-wins merges
/// never see a tie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Physical component: milliseconds since the Unix epoch, as observed by
    /// the clock that issued (or the latest clock that advanced) this reading.
    pub millis: u64,
    /// Logical component: orders events within one millisecond.
    pub counter: u32,
    /// The replica that issued this reading.
    pub node: NodeId,
}

impl Timestamp {
    /// The smallest timestamp; every issued timestamp is greater.
    pub const ZERO: Timestamp = Timestamp {
        millis: 0,
        counter: 0,
        node: NodeId(0),
    };

    /// Builds a timestamp from its parts.
    pub const fn new(millis: u64, counter: u32, node: NodeId) -> Self {
        Timestamp {
            millis,
            counter,
            node,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.millis, self.counter, self.node)
    }
}

/// Why the clock refused to produce a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HlcError {
    /// A remote timestamp is further ahead of local physical time than the
    /// configured maximum drift. Accepting it would drag this clock (and every
    /// later write) into the future.
    #[error(
        "remote timestamp {remote_millis} ms is more than {max_drift_ms} ms ahead of local time {physical_millis} ms"
    )]
    DriftExceeded {
        /// The remote timestamp's physical component.
        remote_millis: u64,
        /// Local physical time when the remote timestamp was seen.
        physical_millis: u64,
        /// The configured bound.
        max_drift_ms: u64,
    },
    /// The clock reached the largest representable time and cannot advance.
    /// Only reachable with a physical clock near `u64::MAX` milliseconds.
    #[error("the hybrid logical clock cannot advance past its largest value")]
    Exhausted,
}

/// A hybrid logical clock for one replica.
///
/// The clock never reads time itself: callers pass the current physical time
/// in milliseconds, which keeps it deterministic under test. Every timestamp
/// it returns is strictly greater than every timestamp it returned or
/// observed before.
#[derive(Clone, Debug)]
pub struct Hlc {
    node: NodeId,
    last: Timestamp,
    max_drift_ms: u64,
}

impl Hlc {
    /// A clock for `node` with the default maximum drift.
    pub fn new(node: NodeId) -> Self {
        Self::with_max_drift(node, DEFAULT_MAX_DRIFT_MS)
    }

    /// A clock for `node` that refuses remote timestamps more than
    /// `max_drift_ms` ahead of local physical time.
    pub fn with_max_drift(node: NodeId, max_drift_ms: u64) -> Self {
        Hlc {
            node,
            last: Timestamp::new(0, 0, node),
            max_drift_ms,
        }
    }

    /// This clock's node id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The configured maximum drift in milliseconds.
    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// The last timestamp this clock issued or advanced to.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// Issues a timestamp for a local event at physical time
    /// `physical_millis`.
    pub fn now(&mut self, physical_millis: u64) -> Result<Timestamp, HlcError> {
        let next = if physical_millis > self.last.millis {
            (physical_millis, 0)
        } else {
            bump(self.last.millis, u64::from(self.last.counter) + 1)?
        };
        Ok(self.set(next))
    }

    /// Advances the clock past a timestamp received from another replica and
    /// issues a timestamp for the receive event.
    ///
    /// Fails with [`HlcError::DriftExceeded`] when `remote` is more than the
    /// maximum drift ahead of `physical_millis`; the clock is left unchanged.
    pub fn update(
        &mut self,
        remote: &Timestamp,
        physical_millis: u64,
    ) -> Result<Timestamp, HlcError> {
        if remote.millis > physical_millis.saturating_add(self.max_drift_ms) {
            return Err(HlcError::DriftExceeded {
                remote_millis: remote.millis,
                physical_millis,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let last = self.last;
        let millis = last.millis.max(remote.millis).max(physical_millis);
        let counter = if millis == last.millis && millis == remote.millis {
            u64::from(last.counter.max(remote.counter)) + 1
        } else if millis == last.millis {
            u64::from(last.counter) + 1
        } else if millis == remote.millis {
            u64::from(remote.counter) + 1
        } else {
            0
        };
        let next = bump(millis, counter)?;
        Ok(self.set(next))
    }

    fn set(&mut self, (millis, counter): (u64, u32)) -> Timestamp {
        self.last = Timestamp::new(millis, counter, self.node);
        self.last
    }
}

/// Normalizes a (millis, counter) pair whose counter may have overflowed:
/// an exhausted counter moves logical time one millisecond ahead, which
/// keeps timestamps strictly increasing without ever wrapping.
fn bump(millis: u64, counter: u64) -> Result<(u64, u32), HlcError> {
    match u32::try_from(counter) {
        Ok(c) => Ok((millis, c)),
        Err(_) => millis
            .checked_add(1)
            .map(|m| (m, 0))
            .ok_or(HlcError::Exhausted),
    }
}

#[cfg(test)]
mod tests;
