//! B3: the write pipeline under the workload of TopGun's published load
//! harness: 200 WebSocket connections sending `OP_BATCH`es of 10 puts,
//! fire-and-wait (50 ms and 0 ms pauses) and fire-and-forget, against the
//! real `topgun-server` binary with HS256 auth and RBAC enforcing 100
//! policies, on the durable sled store and in memory.
//!
//! Limits measured in the same run: the raw batched insert of the same
//! records into the same store by 200 concurrent committers paced the same
//! way, and a loopback WebSocket echo of the same frames by 200 clients.

#[allow(dead_code)] // each bench target uses a part of it
mod harness;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use harness::{
    BENCH_MAP_PREFIX, BENCH_ROLE, Harness, Measured, Pace, Shape, StoreKind, echo_limit,
    open_store, rate, runtime, show_kib, start_echo, store_limit, write_policy_file,
};
use topgun_benches::load::{LoadReport, human_us};
use topgun_benches::print_header;

fn main() -> ExitCode {
    harness::echo_child_or_continue();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nB3: some runs FAILED (see above); their figures are not valid");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("B3: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Policies the server enforces during the runs.
const POLICIES: usize = 100;

/// The server's memory goal for 200 connections.
const RSS_GOAL_KIB: u64 = 100 * 1024;

fn run() -> Result<bool> {
    let h = Harness::new()?;
    let (duration, limit_duration) = if h.quick {
        (Duration::from_secs(3), Duration::from_millis(500))
    } else {
        (Duration::from_secs(10), Duration::from_secs(5))
    };
    let paces = [
        Pace::Wait(Duration::from_millis(50)),
        Pace::Wait(Duration::ZERO),
        Pace::Forget(16),
    ];
    let base = Shape {
        connections: 200,
        batch: 10,
        value_bytes: 64,
        keys: 100_000,
        pace: paces[0],
        duration,
    };
    print_header(
        "B3",
        "pipeline: 200 WebSocket connections, OP_BATCH of 10 puts (64 B values), HS256 auth, RBAC with 100 policies",
    );
    println!(
        "runs of {:.1} s (limits {:.1} s), a fresh server per run; fire-and-wait writers start spread over \
         the first interval; ack latency per batch; server RSS peak; CPU in cores busy",
        duration.as_secs_f64(),
        limit_duration.as_secs_f64()
    );
    println!(
        "reference, not measured here (PERFORMANCE.md): TopGun's own harness on 2 cores, in memory: \
         ~34-36k ops/s at 50 ms (p99 22-36 ms), ~24k at 0 ms (p99 > 100 ms)"
    );

    let policy_dir = tempfile::tempdir().context("creating a directory for the policy file")?;
    let policy_file = write_policy_file(policy_dir.path(), POLICIES)?;
    let policy_arg = policy_file.to_string_lossy().into_owned();
    let server_args = ["--policy-file", policy_arg.as_str()];

    let rt = runtime()?;
    let echo = start_echo()?;
    let mut echo_limits = Vec::new();
    for pace in paces {
        let shape = Shape {
            pace,
            duration: limit_duration,
            ..base
        };
        echo_limits.push(rt.block_on(echo_limit(echo.addr, shape))?);
    }
    drop(echo);

    let mut all_ok = true;
    for store in [StoreKind::Sled, StoreKind::Memory] {
        println!();
        for (pace, echo) in paces.into_iter().zip(&echo_limits) {
            let shape = Shape { pace, ..base };
            let report = {
                let server = h.start_server(store, &server_args)?;
                let mut args = shape.loadgen_args();
                args.extend(
                    ["--role", BENCH_ROLE, "--map-prefix", BENCH_MAP_PREFIX].map(String::from),
                );
                h.loadgen(&server, &args)?
            };
            let (st, _dir) = open_store(store)?;
            let limit = rt.block_on(store_limit(
                st,
                Shape {
                    duration: limit_duration,
                    ..shape
                },
            ))?;
            all_ok &= print_scenario(store, pace, &report, &limit, echo);
        }
    }
    Ok(all_ok)
}

/// Prints one scenario; false if its run failed.
fn print_scenario(
    store: StoreKind,
    pace: Pace,
    r: &LoadReport,
    store_lim: &Measured,
    echo: &Measured,
) -> bool {
    let subject = format!("B3 {:<6} {:<20}", store.name(), pace.label());
    if !r.ok() {
        println!("{subject} FAILED, figures not valid:");
        for f in &r.failures {
            println!("    - {f}");
        }
        return false;
    }
    println!(
        "{subject} {:>14} acked  ack {}  | server RSS peak {} (before {}), {}",
        rate(r.ops_per_sec),
        r.ack_latency.line(),
        show_kib(r.server_rss.peak_kib),
        show_kib(r.server_rss.before_kib),
        r.cpu_line(),
    );
    let ratio = |l: &Measured| r.ops_per_sec / l.ops_per_sec.max(1e-9);
    println!(
        "    limit: {:<6} store insert, 200 committers {:>14}  commit {}  | ratio {:.2}, store RSS +{}",
        store.name(),
        rate(store_lim.ops_per_sec),
        store_lim.latency.line(),
        ratio(store_lim),
        show_kib(store_lim.rss_growth_kib),
    );
    println!(
        "    limit: WebSocket echo, 200 clients        {:>14}  rtt {}  | ratio {:.2}",
        rate(echo.ops_per_sec),
        echo.latency.line(),
        ratio(echo)
    );
    let mut goals = Vec::new();
    match pace {
        Pace::Wait(d) if !d.is_zero() => goals.push(verdict(
            "p99 <= 5 ms at 40k ops/s offered",
            r.ack_latency.p99_us <= 5_000,
            human_us(r.ack_latency.p99_us),
        )),
        Pace::Wait(_) => {
            let (goal, name) = match store {
                StoreKind::Sled => (60_000.0, ">= 60k ops/s at saturation (durable)"),
                StoreKind::Memory => (150_000.0, ">= 150k ops/s at saturation (in memory)"),
            };
            goals.push(verdict(name, r.ops_per_sec >= goal, rate(r.ops_per_sec)));
        }
        Pace::Forget(_) => goals.push(verdict(
            "fire-and-forget >= 0.5 of the store limit",
            ratio(store_lim) >= 0.5,
            format!("{:.2}", ratio(store_lim)),
        )),
    }
    if let Some(peak) = r.server_rss.peak_kib {
        goals.push(verdict(
            "server RSS <= 100 MB",
            peak <= RSS_GOAL_KIB,
            show_kib(Some(peak)),
        ));
    }
    println!("    goals: {}", goals.join("; "));
    true
}

fn verdict(goal: &str, met: bool, value: String) -> String {
    format!("{goal}: {} ({value})", if met { "met" } else { "MISSED" })
}
