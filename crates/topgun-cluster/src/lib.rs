//! Cluster transport and replication between TopGun-RS nodes: QUIC with
//! mutual TLS 1.3, membership, partition ownership and backup replication.
//!
//! Not built yet: this crate root only reserves the name and its place in the
//! dependency graph (`core <- protocol <- cluster <- server`). See the open
//! cluster issue and `ARCHITECTURE.md`.
