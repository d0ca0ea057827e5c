//! The topgun-core integration tests, in one binary: the CRDT laws as
//! property tests, the Merkle descent diff checked against a brute-force
//! diff, and a seeded multi-replica convergence simulator.

// A panic in test code is a failed test, which is what we want (as
// clippy.toml says); clippy's test exemption covers only `#[test]` functions,
// not the helpers of an integration-test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod laws;
mod merkle_diff;
mod simulator;
mod support;
