//! Server metrics, rendered as Prometheus text at `/metrics`.
//!
//! Hot-path counters are plain atomics; counters by reason (rejections,
//! close codes) are rare events and live in one small locked map.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// All counters and gauges of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket sessions.
    pub sessions_open: AtomicI64,
    /// Sessions that completed the auth handshake.
    pub auth_ok: AtomicU64,
    /// Ops applied and acknowledged.
    pub ops_acked: AtomicU64,
    /// Batches (`OP_BATCH` or `CLIENT_OP`) handled.
    pub batches: AtomicU64,
    /// Inbound WebSocket messages.
    pub frames_in: AtomicU64,
    /// Outbound WebSocket messages.
    pub frames_out: AtomicU64,
    /// Live-query updates delivered.
    pub query_updates: AtomicU64,
    by_reason: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    fn bump(&self, family: &'static str, reason: impl Into<String>) {
        if let Ok(mut m) = self.by_reason.lock() {
            *m.entry((family, reason.into())).or_insert(0) += 1;
        }
    }

    /// A connection was refused by a cap.
    pub fn conn_rejected(&self, reason: &'static str) {
        self.bump("topgun_connections_rejected_total", reason);
    }

    /// A TLS handshake failed.
    pub fn tls_failed(&self, reason: &'static str) {
        self.bump("topgun_tls_handshake_failures_total", reason);
    }

    /// An auth attempt failed.
    pub fn auth_failed(&self, reason: impl Into<String>) {
        self.bump("topgun_auth_failures_total", reason);
    }

    /// An op was rejected.
    pub fn op_rejected(&self, code: impl Into<String>) {
        self.bump("topgun_ops_rejected_total", code);
    }

    /// The server closed a session with a close code.
    pub fn closed(&self, code: u16) {
        self.bump("topgun_sessions_closed_total", code.to_string());
    }

    /// The value of a by-reason counter (for tests and the load generator).
    pub fn reason_count(&self, family: &str, reason: &str) -> u64 {
        self.by_reason.lock().map_or(0, |m| {
            m.iter()
                .find(|((f, r), _)| *f == family && r == reason)
                .map_or(0, |(_, n)| *n)
        })
    }

    /// Renders every metric in the Prometheus text exposition format, with
    /// `extra` lines (for example storage statistics) appended.
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let mut simple = |name: &str, kind: &str, help: &str, v: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let g = |a: &AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        simple(
            "topgun_sessions_open",
            "gauge",
            "Open WebSocket sessions.",
            self.sessions_open.load(Ordering::Relaxed),
        );
        simple(
            "topgun_auth_success_total",
            "counter",
            "Successful AUTH handshakes.",
            g(&self.auth_ok),
        );
        simple(
            "topgun_ops_acked_total",
            "counter",
            "Ops applied, made durable and acknowledged.",
            g(&self.ops_acked),
        );
        simple(
            "topgun_batches_total",
            "counter",
            "Write batches handled.",
            g(&self.batches),
        );
        simple(
            "topgun_frames_in_total",
            "counter",
            "Inbound WebSocket messages.",
            g(&self.frames_in),
        );
        simple(
            "topgun_frames_out_total",
            "counter",
            "Outbound WebSocket messages.",
            g(&self.frames_out),
        );
        simple(
            "topgun_query_updates_total",
            "counter",
            "Live-query updates delivered.",
            g(&self.query_updates),
        );
        for (name, help, v) in extra {
            simple(name, "counter", help, i64::try_from(*v).unwrap_or(i64::MAX));
        }
        if let Ok(m) = self.by_reason.lock() {
            let mut last = "";
            for ((family, reason), n) in m.iter() {
                if *family != last {
                    let _ = writeln!(out, "# TYPE {family} counter");
                    last = family;
                }
                let reason = reason.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(out, "{family}{{reason=\"{reason}\"}} {n}");
            }
        }
        out
    }
}
