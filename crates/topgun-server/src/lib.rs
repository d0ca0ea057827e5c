//! The client-facing TopGun-RS server: WebSocket/TLS transport, JWT
//! authentication, the authorization layer, the write pipeline, durable
//! storage with group commit, live queries, Merkle sync, and the
//! `topgun-server` binary.
//!
//! Main types: [`ServerBuilder`] (with [`NetworkConfig`], [`TlsConfig`],
//! [`Limits`], [`StorageConfig`]) builds a [`Server`]; `start()` serves until
//! its [`ShutdownHandle`] fires. [`auth`] verifies JWTs, [`authz`] holds the
//! policy seam and the tower layer, [`rbac`] the policy engine and its
//! durable policy set, [`store`] the storage seam, [`admin`] the admin HTTP
//! API (login, capabilities, keys, policies).
//!
//! Non-goals here: clustering and the client replica are separate pieces of
//! work.

pub mod admin;
mod app;
pub mod auth;
pub mod authz;
pub mod config;
mod http;
mod listener;
pub(crate) mod live;
pub mod metrics;
mod outbound;
pub mod pipeline;
pub mod rbac;
mod server;
pub mod session;
pub mod state;
pub mod store;
mod sync;
pub mod tls;

pub use config::{Limits, NetworkConfig, TimestampPolicy, TlsConfig, TlsVersion};
pub use server::{
    RunningServer, Server, ServerBuilder, ServerError, ShutdownHandle, StorageConfig,
};
