//! Depth guards for the recursive wire types, and the side channel that
//! carries typed violations out of serde.
//!
//! Serde reports a `Deserialize` impl's failure only as the format's own
//! error built from a message string, which would lose the type of our
//! errors. So when one of our impls refuses input (too deep, non-finite
//! float, bad hex, ...) it records a [`Violation`] in a thread-local slot and
//! returns a custom error; the codec clears the slot before each call and
//! reads it when the call fails. The same thread-local holds the current
//! nesting depth of values and filters: every `Deserialize` and `Serialize`
//! of a recursive type enters a [`DepthGuard`], which refuses to go deeper
//! than the protocol's maximum, so no input (and no hand-built message) can
//! exhaust the stack.

use std::cell::Cell;
use std::fmt;

use crate::error::Nesting;

/// A typed reason one of this crate's serde impls refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Nesting beyond the maximum depth.
    TooDeep(Nesting),
    /// NaN or an infinity.
    NonFiniteFloat,
    /// An integer outside `i64` where a value integer was expected.
    IntegerOutOfRange,
    /// A hex id that is not 16 lowercase hex digits.
    InvalidHex,
    /// A value map with a repeated key.
    DuplicateKey,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooDeep(n) => write!(
                f,
                "{n} nesting exceeds the maximum depth of {}",
                n.max_depth()
            ),
            Violation::NonFiniteFloat => f.write_str("non-finite float"),
            Violation::IntegerOutOfRange => f.write_str("integer outside the i64 range"),
            Violation::InvalidHex => f.write_str("expected 16 lowercase hexadecimal digits"),
            Violation::DuplicateKey => f.write_str("duplicate key in a value map"),
        }
    }
}

thread_local! {
    static VALUE_DEPTH: Cell<usize> = const { Cell::new(0) };
    static FILTER_DEPTH: Cell<usize> = const { Cell::new(0) };
    static VIOLATION: Cell<Option<Violation>> = const { Cell::new(None) };
}

fn counter(nesting: Nesting) -> &'static std::thread::LocalKey<Cell<usize>> {
    match nesting {
        Nesting::Value => &VALUE_DEPTH,
        Nesting::Filter => &FILTER_DEPTH,
    }
}

/// Records `v` (keeping the first violation of a call) and returns it, so
/// callers can write `Err(E::custom(record(v)))`.
pub(crate) fn record(v: Violation) -> Violation {
    VIOLATION.with(|slot| {
        if slot.get().is_none() {
            slot.set(Some(v));
        }
    });
    v
}

/// Clears the violation slot; the codec calls this before every encode and
/// decode.
pub(crate) fn clear() {
    VIOLATION.with(|slot| slot.set(None));
}

/// Takes the violation recorded since the last [`clear`], if any.
pub(crate) fn take() -> Option<Violation> {
    VIOLATION.with(Cell::take)
}

/// One level of nesting of a recursive type, held while that level is
/// (de)serialized. Dropping it leaves the level, also when an error or a
/// panic unwinds through it.
#[must_use]
pub(crate) struct DepthGuard {
    nesting: Nesting,
}

impl DepthGuard {
    /// Enters one more level of `nesting`; refuses (and records the
    /// violation) when that would make more than `limit` levels active.
    pub(crate) fn enter(nesting: Nesting, limit: usize) -> Result<DepthGuard, Violation> {
        counter(nesting).with(|c| {
            let next = c.get() + 1;
            if next > limit {
                return Err(record(Violation::TooDeep(nesting)));
            }
            c.set(next);
            Ok(DepthGuard { nesting })
        })
    }

    /// How many levels of `nesting` are active, this one included.
    pub(crate) fn level(&self) -> usize {
        counter(self.nesting).with(Cell::get)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        counter(self.nesting).with(|c| c.set(c.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_levels_and_refuse_beyond_the_limit() {
        let a = DepthGuard::enter(Nesting::Filter, 2).unwrap();
        assert_eq!(a.level(), 1);
        let b = DepthGuard::enter(Nesting::Filter, 2).unwrap();
        assert_eq!(b.level(), 2);
        clear();
        assert!(DepthGuard::enter(Nesting::Filter, 2).is_err());
        assert_eq!(take(), Some(Violation::TooDeep(Nesting::Filter)));
        assert_eq!(take(), None);
        drop(b);
        drop(a);
        // Other nestings count separately, and leaving restores the level.
        let v = DepthGuard::enter(Nesting::Value, 1).unwrap();
        assert_eq!(v.level(), 1);
        let f = DepthGuard::enter(Nesting::Filter, 1).unwrap();
        assert_eq!(f.level(), 1);
    }

    #[test]
    fn the_first_violation_wins() {
        clear();
        record(Violation::InvalidHex);
        record(Violation::NonFiniteFloat);
        assert_eq!(take(), Some(Violation::InvalidHex));
    }
}
