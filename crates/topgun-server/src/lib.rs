//! The client-facing TopGun-RS server: WebSocket/TLS transport, JWT
//! authentication, the write pipeline, durable storage, live queries, and the
//! `topgun-server` binary.
//!
//! Being built (server issue): modules land one by one; this root lists
//! only those that exist.

pub mod auth;
pub mod config;
pub mod metrics;
pub mod store;
pub mod tls;
