//! The client against fake servers written in the tests with tokio,
//! tokio-tungstenite and the topgun-protocol codec (the real server is
//! tested against the client in the workspace's end-to-end tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;
mod handshake;
mod lifecycle;
mod ops;
mod pki;
mod renewal;
mod subscriptions;
mod sync;
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use topgun_client::{TokenProvider, TokenReason, token_fn};

/// A provider that counts its calls and records their reasons.
pub fn counting_provider() -> (
    impl TokenProvider,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<TokenReason>>>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, r) = (calls.clone(), reasons.clone());
    let provider = token_fn(move |reason| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        r.lock().unwrap().push(reason);
        async move { Some(format!("token-{n}")) }
    });
    (provider, calls, reasons)
}
