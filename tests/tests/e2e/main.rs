//! End-to-end tests: real servers on loopback sockets, real TLS, driven the
//! way clients drive them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod admin;
mod admin_policies;
mod bad_input;
mod client;
mod handshake;
mod http;
mod limits;
mod live;
mod rbac;
mod sync;
mod tls;
