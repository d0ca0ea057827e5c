//! The accept loop: connection caps, optional TLS, HTTP/1.1 with upgrades.
//!
//! Axum's own `serve` cannot do TLS or per-address caps, so connections are
//! accepted here and handed to hyper one by one. Each accepted connection
//! holds a [`ConnSlot`] (a global permit and a per-address count); the slot
//! travels into the WebSocket session through the request extensions, so a
//! connection counts against the caps until its session ends, not just
//! until the HTTP upgrade.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;
use crate::metrics::Metrics;

/// Counts connections per IP address, with a cap.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpGuard> {
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            per_ip: Arc::clone(self),
            ip,
        })
    }
}

#[derive(Debug)]
struct IpGuard {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.per_ip.counts.lock() {
            if let Some(n) = counts.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

/// What one accepted connection holds against the connection caps. Dropped
/// (through its last `Arc`) when both the HTTP connection and any WebSocket
/// session on it have ended.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    _ip: IpGuard,
}

/// Everything the accept loop needs.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) router: Router,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts connections until `shutdown` is cancelled. Connection tasks
    /// are spawned on `tracker`, so the caller can wait for them to drain.
    pub(crate) async fn run(self) {
        let global = Arc::new(Semaphore::new(self.limits.max_connections));
        let per_ip = Arc::new(PerIp::default());
        loop {
            let (tcp, peer) = tokio::select! {
                () = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&global).try_acquire_owned() else {
                self.metrics.conn_rejected("max_connections");
                tracing::debug!(%peer, "connection refused: max_connections reached");
                continue;
            };
            let Some(ip) = per_ip.try_acquire(peer.ip(), self.limits.max_connections_per_ip) else {
                self.metrics.conn_rejected("max_connections_per_ip");
                tracing::debug!(%peer, "connection refused: max_connections_per_ip reached");
                continue;
            };
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "set_nodelay failed");
            }
            let slot = Arc::new(ConnSlot {
                _permit: permit,
                _ip: ip,
            });
            let router = self.router.clone();
            let tls = self.tls.clone();
            let limits = self.limits.clone();
            let metrics = Arc::clone(&self.metrics);
            let shutdown = self.shutdown.clone();
            self.tracker.spawn(async move {
                // The TLS stream is boxed: hyper boxes the connection's IO
                // again when it hands it to the WebSocket, and an unboxed
                // `Either` would be as large as rustls' connection state
                // (over 1 KiB) on every plain connection too.
                let io = match tls {
                    None => Either::Left(tcp),
                    Some(acceptor) => {
                        match tls_handshake(&acceptor, tcp, peer, &limits, &metrics).await {
                            Some(stream) => Either::Right(Box::new(stream)),
                            None => return,
                        }
                    }
                };
                let service =
                    router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req.extensions_mut().insert(Arc::clone(&slot));
                        req
                    });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(limits.upgrade_timeout)
                    .max_buf_size(64 * 1024);
                let conn = http
                    .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                    .with_upgrades();
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "http connection ended with an error");
                }
            });
        }
    }
}

async fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    metrics: &Metrics,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            metrics.tls_failed("handshake");
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.tls_failed("timeout");
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
