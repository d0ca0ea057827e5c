//! What a load run reports: the `loadgen` binary writes a [`LoadReport`]
//! (as JSON with `--json`), and the B3-B5 harnesses read it back.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram records, in microseconds (a minute); longer
/// samples are recorded as this value.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 1 us to [`MAX_LATENCY_US`], with
/// three significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
}

/// Records `elapsed` into `hist` in microseconds, saturating at the
/// histogram's bounds.
pub fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl LatencySummary {
    /// Summarizes `hist` (values in microseconds); all zero when empty.
    pub fn from_histogram(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        LatencySummary {
            count: hist.len(),
            mean_us: hist.mean(),
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
        }
    }

    /// `p50 1.2 ms  p99 3.4 ms  p99.9 5.6 ms  max 7.8 ms`.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {}  p99 {}  p99.9 {}  max {}",
            human_us(self.p50_us),
            human_us(self.p99_us),
            human_us(self.p999_us),
            human_us(self.max_us)
        )
    }
}

/// Formats microseconds as `850 us`, `1.23 ms` or `2.50 s`.
pub fn human_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{us} us")
    }
}

/// Formats KiB as `12.3 MiB` (or `512 KiB`).
pub fn human_kib(kib: u64) -> String {
    if kib >= 1024 {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}

/// CPU time (user + system) process `pid` has used, in seconds, from
/// `/proc/PID/stat` (Linux; assumes the usual 100 clock ticks per second).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are
    // plain. utime and stime are fields 14 and 15, i.e. the 12th and 13th
    // after the name.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The server's resident memory (from `/proc/PID/status`) at the points of
/// a run, in KiB.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RssReport {
    /// Before any connection of this run was opened.
    pub before_kib: Option<u64>,
    /// Once every connection was open (and subscribed), after the settle
    /// time.
    pub connected_kib: Option<u64>,
    /// The largest sample taken during the run (sampled every 250 ms).
    pub peak_kib: Option<u64>,
    /// When the writes had drained, before the connections were closed.
    pub end_kib: Option<u64>,
}

/// Everything one `loadgen` run measured, and whether it is trustworthy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// `wait`, `forget` or `idle`.
    pub mode: String,
    /// Connections that write.
    pub writers: usize,
    /// Connections that hold a live query (from `--read-ratio` and
    /// `--subscribers`).
    pub subscribers: usize,
    /// Connections held open without traffic (`--mode idle`).
    pub idle: usize,
    /// Ops per `OP_BATCH`.
    pub batch: usize,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Pause after each acknowledged batch (fire-and-wait), in ms.
    pub interval_ms: u64,
    /// Whether the fire-and-wait writers all started at once (otherwise
    /// each started at a random point of the first interval).
    pub aligned_start: bool,
    /// Batches outstanding per connection (fire-and-forget).
    pub inflight: usize,
    /// Connections opened successfully.
    pub connected: usize,
    /// Time to open (and authenticate) every connection, in seconds.
    pub connect_secs: f64,
    /// Ops sent.
    pub sent_ops: u64,
    /// Ops acknowledged (`OP_ACK`).
    pub acked_ops: u64,
    /// Ops rejected (`OP_REJECTED`), all codes.
    pub rejected_ops: u64,
    /// Ops sent that got no outcome by the end (timeouts, disconnects).
    pub lost_ops: u64,
    /// From the start of the writes to the last outcome, in seconds.
    pub elapsed_secs: f64,
    /// `acked_ops / elapsed_secs`.
    pub ops_per_sec: f64,
    /// Per `OP_BATCH`: from queueing the batch to its last outcome.
    pub ack_latency: LatencySummary,
    /// Rejections by code.
    pub rejections: BTreeMap<String, u64>,
    /// Errors by kind (server `ERROR` codes, disconnects, timeouts).
    pub errors: BTreeMap<String, u64>,
    /// Live-query updates delivered to the subscribers.
    pub delivered: u64,
    /// Updates the subscribers should have received at least (acked writes
    /// to each map times its subscribers).
    pub expected_deliveries: u64,
    /// From the writer's clock reading in the value to the subscriber
    /// receiving the update.
    pub delivery_latency: LatencySummary,
    /// The server's memory, with `--server-pid`.
    pub server_rss: RssReport,
    /// CPU time the server used from the start of the writes to the end of
    /// the drain, in seconds (with `--server-pid`).
    pub server_cpu_secs: Option<f64>,
    /// CPU time loadgen itself used over the same span, in seconds.
    pub loadgen_cpu_secs: Option<f64>,
    /// Why the run is not trustworthy; empty when it is.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// Whether the run completed without lost acks, unexpected errors or
    /// rejections.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// `CPU server 1.42 + loadgen 0.51 cores`: CPU time over the load
    /// and drain, divided by its length.
    pub fn cpu_line(&self) -> String {
        let cores = |secs: Option<f64>| {
            secs.map_or_else(
                || "-".to_owned(),
                |s| format!("{:.2}", s / self.elapsed_secs.max(1e-9)),
            )
        };
        format!(
            "CPU server {} + loadgen {} cores",
            cores(self.server_cpu_secs),
            cores(self.loadgen_cpu_secs)
        )
    }
}
