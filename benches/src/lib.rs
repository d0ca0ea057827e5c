//! Shared pieces of the TopGun-RS benchmarks (B1-B8 in the performance
//! guide).
//!
//! Every benchmark measures its subject and the limit it is compared against
//! in the same run (the machines are shared and noisy, so a figure from
//! another run means little) and prints both with their ratio. Criterion
//! does the sampling; [`Tally`] records what each routine took so the
//! comparison can be printed when criterion is done.
//!
//! The `loadgen` binary drives a running server over real WebSocket
//! connections; [`load`] holds the report it prints and the latency
//! summaries it and the B3-B5 harnesses share.

pub mod load;

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Whether the quick smoke mode is on (`TOPGUN_BENCH_QUICK=1`, set by
/// `cargo xtask bench --quick`): smaller inputs, fewer samples.
pub fn quick() -> bool {
    std::env::var_os("TOPGUN_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// Accumulates the time a routine took across all of criterion's samples.
#[derive(Debug, Default)]
pub struct Tally {
    total: Cell<Duration>,
    iters: Cell<u64>,
}

impl Tally {
    /// Runs `routine` `iters` times, each on a fresh input from `setup`
    /// (untimed), adds the time to the tally and returns it for criterion.
    pub fn measure<I, O>(
        &self,
        iters: u64,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> O,
    ) -> Duration {
        let mut elapsed = Duration::ZERO;
        for _ in 0..iters {
            let input = setup();
            let start = Instant::now();
            let out = routine(input);
            elapsed += start.elapsed();
            // Dropping the output (a whole map, say) is not part of the work
            // being measured.
            drop(std::hint::black_box(out));
        }
        self.total.set(self.total.get() + elapsed);
        self.iters.set(self.iters.get() + iters);
        elapsed
    }

    /// Mean time per routine call.
    pub fn mean(&self) -> Duration {
        let iters = self.iters.get().max(1);
        self.total.get() / u32::try_from(iters).unwrap_or(u32::MAX)
    }

    /// Elements per second, for a routine that handles `elements` per call.
    pub fn rate(&self, elements: u64) -> f64 {
        let secs = self.mean().as_secs_f64();
        if secs == 0.0 {
            return f64::INFINITY;
        }
        elements as f64 / secs
    }
}

/// One line of a comparison: a subject measured against its limit.
#[derive(Debug)]
pub struct Comparison<'a> {
    /// Benchmark id and subject, e.g. "B1 LWW merge".
    pub subject: &'a str,
    /// The subject's tally.
    pub measured: &'a Tally,
    /// What the limit is, e.g. "HashMap insert".
    pub limit: &'a str,
    /// The limit's tally.
    pub limit_measured: &'a Tally,
    /// Elements handled per call (the same for subject and limit).
    pub elements: u64,
    /// Unit of the elements, e.g. "ops" or "msgs".
    pub unit: &'a str,
    /// The goal as a minimum ratio subject/limit, if the guide sets one.
    pub goal_ratio: Option<f64>,
}

impl Comparison<'_> {
    /// Prints the figure, the limit and their ratio, and whether the goal is
    /// met.
    pub fn print(&self) {
        let rate = self.measured.rate(self.elements);
        let limit = self.limit_measured.rate(self.elements);
        let ratio = rate / limit;
        let verdict = match self.goal_ratio {
            Some(goal) if ratio >= goal => format!("goal >= {goal:.2}: met"),
            Some(goal) => format!("goal >= {goal:.2}: MISSED"),
            None => "goal: reported".to_owned(),
        };
        println!(
            "{:<34} {:>14}  | limit ({}) {:>14}  | ratio {:.2}  ({verdict})",
            self.subject,
            human_rate(rate, self.unit),
            self.limit,
            human_rate(limit, self.unit),
            ratio,
        );
    }
}

/// Formats a rate like `1.23 M ops/s`.
pub fn human_rate(rate: f64, unit: &str) -> String {
    if rate >= 1e6 {
        format!("{:.2} M {unit}/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k {unit}/s", rate / 1e3)
    } else {
        format!("{rate:.0} {unit}/s")
    }
}

/// Prints the header that introduces a benchmark's comparison table.
pub fn print_header(id: &str, what: &str) {
    println!("\n=== {id}: {what}");
    // The machines are shared: the load average says how much of them
    // this run had.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "-".to_owned());
    println!(
        "machine: {} cores, load average {load}; mode: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick() { "quick" } else { "full" }
    );
}
