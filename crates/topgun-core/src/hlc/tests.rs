//! Unit tests for the hybrid logical clock.

use super::*;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

#[test]
fn order_is_millis_then_counter_then_node() {
    let t = |m, c, n| Timestamp::new(m, c, NodeId(n));
    assert!(t(1, 9, 9) < t(2, 0, 0));
    assert!(t(1, 1, 9) < t(1, 2, 0));
    assert!(t(1, 1, 1) < t(1, 1, 2));
    assert_ne!(t(1, 1, 1), t(1, 1, 2));
}

#[test]
fn now_follows_physical_time_and_counts_within_a_millisecond() {
    let mut c = Hlc::new(A);
    assert_eq!(c.now(100).unwrap(), Timestamp::new(100, 0, A));
    assert_eq!(c.now(100).unwrap(), Timestamp::new(100, 1, A));
    // Physical time going backwards never makes time go backwards.
    assert_eq!(c.now(50).unwrap(), Timestamp::new(100, 2, A));
    assert_eq!(c.now(101).unwrap(), Timestamp::new(101, 0, A));
}

#[test]
fn counter_overflow_moves_to_the_next_millisecond() {
    let mut c = Hlc::new(A);
    c.update(&Timestamp::new(10, u32::MAX - 1, B), 10).unwrap();
    assert_eq!(c.last(), Timestamp::new(10, u32::MAX, A));
    let next = c.now(10).unwrap();
    assert_eq!(next, Timestamp::new(11, 0, A));
    let remote = Timestamp::new(11, u32::MAX, B);
    let after = c.update(&remote, 11).unwrap();
    assert_eq!(after, Timestamp::new(12, 0, A));
    assert!(after > remote);
}

#[test]
fn update_takes_the_largest_component_per_the_paper() {
    let mut c = Hlc::new(A);
    c.now(100).unwrap(); // (100, 0)
    // Remote ahead in millis: adopt its millis, counter + 1.
    assert_eq!(
        c.update(&Timestamp::new(105, 7, B), 101).unwrap(),
        Timestamp::new(105, 8, A)
    );
    // Same millis on both: max counter + 1.
    assert_eq!(
        c.update(&Timestamp::new(105, 20, B), 101).unwrap(),
        Timestamp::new(105, 21, A)
    );
    // Local ahead: local counter + 1.
    assert_eq!(
        c.update(&Timestamp::new(90, 50, B), 101).unwrap(),
        Timestamp::new(105, 22, A)
    );
    // Physical time ahead of both: counter resets.
    assert_eq!(
        c.update(&Timestamp::new(90, 50, B), 200).unwrap(),
        Timestamp::new(200, 0, A)
    );
}

#[test]
fn remote_too_far_ahead_is_refused_and_leaves_the_clock_alone() {
    let mut c = Hlc::with_max_drift(A, 1_000);
    c.now(5_000).unwrap();
    let before = c.last();
    let err = c.update(&Timestamp::new(6_001, 0, B), 5_000).unwrap_err();
    assert_eq!(
        err,
        HlcError::DriftExceeded {
            remote_millis: 6_001,
            physical_millis: 5_000,
            max_drift_ms: 1_000
        }
    );
    assert_eq!(c.last(), before);
    // Exactly at the bound is accepted.
    assert!(c.update(&Timestamp::new(6_000, 0, B), 5_000).is_ok());
}

#[test]
fn exhausted_clock_is_an_error_not_a_wrap() {
    let mut c = Hlc::with_max_drift(A, u64::MAX);
    c.update(&Timestamp::new(u64::MAX, u32::MAX, B), 0)
        .unwrap_err();
    c.update(&Timestamp::new(u64::MAX, u32::MAX - 1, B), 0)
        .unwrap();
    assert_eq!(c.now(0), Err(HlcError::Exhausted));
}

proptest::proptest! {
    /// Whatever mix of local events and remote timestamps (within the
    /// drift bound) a clock sees, its readings strictly increase and
    /// exceed every remote timestamp it observed.
    #[test]
    fn readings_strictly_increase(events in proptest::collection::vec(
        (0u64..10_000, proptest::option::of((0u64..10_000, 0u32..5, 0u64..4))), 1..200))
    {
        let mut c = Hlc::with_max_drift(A, 10_000);
        let mut prev = Timestamp::ZERO;
        for (physical, remote) in events {
            let t = match remote {
                None => c.now(physical).unwrap(),
                Some((m, ctr, n)) => {
                    let r = Timestamp::new(m, ctr, NodeId(n));
                    let t = c.update(&r, physical).unwrap();
                    proptest::prop_assert!(t > r);
                    t
                }
            };
            proptest::prop_assert!(t > prev);
            prev = t;
        }
    }
}
