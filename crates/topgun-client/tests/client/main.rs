//! The client against fake servers written with tokio-tungstenite and the
//! protocol codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]
