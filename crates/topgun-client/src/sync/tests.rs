//! Sync machine tests.
