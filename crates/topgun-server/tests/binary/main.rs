//! The `topgun-server` binary as an operator runs it: a real process,
//! configured by flags and environment variables, killed and restarted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod crash;
mod startup;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test, with a clean environment.
pub fn server_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_topgun-server"));
    cmd.env_clear().env("RUST_LOG", "warn");
    cmd
}

/// A running server process and what it printed.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stdout lines up to and including the `listening on` line.
    pub banner: Vec<String>,
    /// Later stdout lines.
    pub lines: mpsc::Receiver<String>,
}

impl Proc {
    /// The next stdout line (10 s at most).
    pub fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(10)).ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (stdout piped) and waits for its `listening on` line.
pub fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn topgun-server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("topgun-server did not print its listening line within 30 s: {banner:?}");
        };
        banner.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            let hostport = rest
                .trim_start_matches("ws://")
                .trim_start_matches("wss://")
                .trim_end_matches("/ws");
            let addr = hostport.parse().expect("address in the listening line");
            return Proc {
                child,
                addr,
                banner,
                lines: rx,
            };
        }
    }
}

/// The usual environment: HS256 with the harness secret, data in `dir`,
/// a free port on loopback.
pub fn secured(dir: &Path) -> Command {
    let mut cmd = server_cmd();
    cmd.env("JWT_SECRET", topgun_tests::SECRET)
        .env("TOPGUN_DATA_DIR", dir)
        .env("TOPGUN_HOST", "127.0.0.1")
        .env("PORT", "0");
    cmd
}
