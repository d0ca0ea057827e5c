//! B5: connections. 10,000 concurrent authenticated idle WebSocket
//! connections to the real `topgun-server` binary (HS256, in-memory store,
//! the per-address cap raised to 20,000): the server's memory per
//! connection and the time to open and authenticate all of them.
//!
//! Limit measured in the same run: the empty server's RSS.

#[allow(dead_code)] // each bench target uses a part of it
mod harness;

use std::process::ExitCode;

use anyhow::Result;
use harness::{Harness, StoreKind, show_kib};
use topgun_benches::print_header;

fn main() -> ExitCode {
    harness::echo_child_or_continue();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\nB5: the run FAILED (see above); its figures are not valid");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("B5: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The goal per connection, in KiB.
const GOAL_KIB: f64 = 16.0;

fn run() -> Result<bool> {
    let h = Harness::new()?;
    let connections: usize = if h.quick { 1_000 } else { 10_000 };
    print_header(
        "B5",
        &format!(
            "connections: {connections} concurrent authenticated idle connections (HS256, memory store)"
        ),
    );
    let server = h.start_server(StoreKind::Memory, &[])?;
    let empty = server.rss_kib();
    let args: Vec<String> = [
        "--mode",
        "idle",
        "--connections",
        &connections.to_string(),
        "--duration-secs",
        "1",
        "--settle-ms",
        "1000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let r = h.loadgen(&server, &args)?;
    if !r.ok() {
        println!("B5 FAILED, figures not valid:");
        for f in &r.failures {
            println!("    - {f}");
        }
        return Ok(false);
    }
    let before = r.server_rss.before_kib.or(empty);
    let per_conn = match (before, r.server_rss.connected_kib) {
        (Some(b), Some(c)) => Some(c.saturating_sub(b) as f64 / connections as f64),
        _ => None,
    };
    println!(
        "B5 {connections} idle connections   connected in {:.2} s ({:.0}/s)  | server RSS {} = {} per connection",
        r.connect_secs,
        connections as f64 / r.connect_secs.max(1e-9),
        show_kib(r.server_rss.connected_kib),
        per_conn.map_or_else(|| "-".to_owned(), |k| format!("{k:.1} KiB")),
    );
    println!(
        "    limit: empty server RSS {}{}",
        show_kib(before),
        match (before, r.server_rss.connected_kib) {
            (Some(b), Some(c)) =>
                format!(" (connected / empty = {:.2})", c as f64 / b.max(1) as f64),
            _ => String::new(),
        }
    );
    if let Some(k) = per_conn {
        println!(
            "    goal <= {GOAL_KIB} KiB per connection: {} ({k:.1} KiB)",
            if k <= GOAL_KIB { "met" } else { "MISSED" },
        );
    }
    Ok(true)
}
