//! B4: fan-out. One writer, 1,000 subscribers holding a live query on the
//! map it writes (one connection each), against the real `topgun-server`
//! binary with HS256 auth and the durable sled store. Reports
//! write-to-delivery latency (from the writer's clock reading in the value
//! to the subscriber receiving the update).
//!
//! Limit measured in the same run: the same writer with a single
//! subscriber (B3's shape on one connection).

#[allow(dead_code)] // each bench target uses a part of it
mod harness;

use std::process::ExitCode;

use anyhow::Result;
use harness::{Harness, StoreKind, show_kib};
use topgun_benches::load::{LoadReport, human_us};
use topgun_benches::print_header;

fn main() -> ExitCode {
    harness::echo_child_or_continue();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nB4: some runs FAILED (see above); their figures are not valid");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("B4: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The writer: fire-and-wait, one put per batch, a pause between batches.
const BATCH: usize = 1;
const INTERVAL_MS: u64 = 20;

fn run() -> Result<bool> {
    let h = Harness::new()?;
    let (subscribers, secs) = if h.quick { (200, 3) } else { (1_000, 10) };
    print_header(
        "B4",
        &format!(
            "fan-out: 1 writer (fire-and-wait, {BATCH} put per batch every {INTERVAL_MS} ms), \
             {subscribers} subscribers of its map, sled, HS256 auth"
        ),
    );
    let run = |subs: usize| -> Result<LoadReport> {
        let server = h.start_server(StoreKind::Sled, &[])?;
        let args: Vec<String> = [
            "--connections",
            "1",
            "--subscribers",
            &subs.to_string(),
            "--batch",
            &BATCH.to_string(),
            "--mode",
            "wait",
            "--interval-ms",
            &INTERVAL_MS.to_string(),
            "--keys",
            "100000",
            "--duration-secs",
            &secs.to_string(),
            "--settle-ms",
            "200",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        h.loadgen(&server, &args)
    };
    let limit = run(1)?;
    let fan = run(subscribers)?;
    let mut ok = true;
    for r in [&limit, &fan] {
        if !r.ok() {
            println!(
                "B4 run with {} subscriber(s) FAILED, figures not valid:",
                r.subscribers
            );
            for f in &r.failures {
                println!("    - {f}");
            }
            ok = false;
        }
    }
    if !ok {
        return Ok(false);
    }
    let rate = |r: &LoadReport| r.delivered as f64 / r.elapsed_secs.max(1e-9);
    println!(
        "B4 {subscribers} subscribers   write-to-delivery {}  | {} updates ({:.0}/s), writes acked {:.0}/s, server RSS peak {}, {}",
        fan.delivery_latency.line(),
        fan.delivered,
        rate(&fan),
        fan.ops_per_sec,
        show_kib(fan.server_rss.peak_kib),
        fan.cpu_line(),
    );
    println!(
        "    limit: 1 subscriber   write-to-delivery {}  | {} updates",
        limit.delivery_latency.line(),
        limit.delivered,
    );
    let p99 = fan.delivery_latency.p99_us;
    println!(
        "    ratio p50 {:.2}, p99 {:.2}; goal p99 <= 10 ms: {} ({})",
        fan.delivery_latency.p50_us as f64 / limit.delivery_latency.p50_us.max(1) as f64,
        p99 as f64 / limit.delivery_latency.p99_us.max(1) as f64,
        if p99 <= 10_000 { "met" } else { "MISSED" },
        human_us(p99)
    );
    Ok(true)
}
