//! The client-facing TopGun-RS server: WebSocket/TLS transport, JWT
//! authentication, the RBAC tower layer, the write pipeline, durable storage,
//! the admin API and the `topgun-server` binary.
//!
//! Not built yet: this crate root only reserves the name and its place in the
//! dependency graph. See the server issue and `ARCHITECTURE.md`.
