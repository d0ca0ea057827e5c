//! Integration tests of topgun-protocol, in one test binary.

// Helpers shared by the tests are not `#[test]` functions, so clippy's
// allow-unwrap-in-tests does not reach them; a failed unwrap in a helper is
// a failed test all the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conversions;
mod docs;
mod fuzz_crashers;
mod golden;
mod malformed;
mod round_trip;
mod samples;
mod strategies;
mod sync;
