//! Project chores, run as `cargo xtask <command>`:
//!
//! - `ci`: what CI runs, in order: `cargo fmt --check`, `cargo clippy
//!   --all-targets -D warnings`, the whole test suite, and rustdoc with
//!   warnings denied.
//! - `certs [--out DIR] [--nodes N] [--days D] [--san NAME].. [--force]`:
//!   a development PKI (see `xtask::certs`).
//! - `bench [NAME] [--quick]`: the benchmarks of the performance guide, each
//!   printing the limit it is measured against beside its figure. B1 and B2
//!   are criterion benches; B3-B5 are harnesses (bench targets without
//!   criterion) that start the release `topgun-server` binary, which this
//!   command builds first (in `target/bench-server`), and drive it with
//!   the `loadgen` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// A benchmark `cargo xtask bench` knows: a cargo bench target in the
/// `topgun-benches` package.
struct Bench {
    /// The id of the performance guide, e.g. `b3`.
    id: &'static str,
    /// The bench target.
    target: &'static str,
    /// What it measures, against what.
    what: &'static str,
    /// Whether it drives the `topgun-server` binary, which must be built
    /// (release) before it runs.
    needs_server: bool,
}

const BENCHES: &[Bench] = &[
    Bench {
        id: "b1",
        target: "b1_core_merge",
        what: "core merge vs HashMap insert",
        needs_server: false,
    },
    Bench {
        id: "b2",
        target: "b2_codec",
        what: "codec encode+decode vs memcpy",
        needs_server: false,
    },
    Bench {
        id: "b3",
        target: "b3_pipeline",
        what: "pipeline, 200 connections vs store insert and WebSocket echo",
        needs_server: true,
    },
    Bench {
        id: "b4",
        target: "b4_fanout",
        what: "fan-out to 1,000 subscribers vs one subscriber",
        needs_server: true,
    },
    Bench {
        id: "b5",
        target: "b5_connections",
        what: "10,000 idle connections vs empty server RSS",
        needs_server: true,
    },
    Bench {
        id: "rbac",
        target: "rbac_authz",
        what: "RBAC decision cost with 100 and 1,000 policies vs no rules",
        needs_server: false,
    },
];

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let (cmd, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "ci" => ci(),
        "bench" => bench(rest),
        "certs" if rest.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", xtask::certs::usage());
            Ok(())
        }
        "certs" => {
            let opts = xtask::certs::parse_args(rest)?;
            let written = xtask::certs::generate(&opts)?;
            print!("{}", xtask::certs::summary(&opts, &written));
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("{}", usage());
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{}", usage()),
    }
}

fn usage() -> String {
    let mut s = String::from(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         ci                     fmt --check, clippy -D warnings, all tests, rustdoc -D warnings\n  \
         bench [NAME] [--quick] run the benchmarks (all, or one by id)\n  \
         certs [OPTIONS]        write a development PKI (cargo xtask certs --help)\n\nbenchmarks:\n",
    );
    for b in BENCHES {
        s.push_str(&format!("  {:<4} {}\n", b.id, b.what));
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n== xtask: {name}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{name}`"))?;
    if !status.success() {
        bail!("`{name}` failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let (passed, failed) = tests()?;
    step(
        "cargo doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // One closing line that counts every test of the workspace (cargo's own
    // last line is the last crate's doc-tests, often `0 passed`).
    println!("ci: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs the whole test suite, echoing cargo's output, and adds up its
/// `test result:` lines.
fn tests() -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("\n== xtask: cargo test");
    let mut child = cargo()
        .args(["test", "--workspace"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("could not start `cargo test`")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find_map(|part| {
                            let part = part
                                .trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ");
                            part.strip_suffix(word).and_then(|n| n.trim().parse().ok())
                        })
                        .unwrap_or(0)
                };
                passed += count("passed");
                failed += count("failed");
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        println!("ci: {passed} passed, {failed} failed");
        bail!("`cargo test` failed ({status})");
    }
    Ok((passed, failed))
}

fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let selected: Vec<&Bench> = match names.as_slice() {
        [] => BENCHES.iter().collect(),
        [name] => {
            let found = BENCHES
                .iter()
                .find(|b| b.id.eq_ignore_ascii_case(name) || b.target == name.as_str());
            vec![found.with_context(|| format!("no benchmark named `{name}`\n\n{}", usage()))?]
        }
        _ => bail!("give at most one benchmark name\n\n{}", usage()),
    };
    let server_bin = if selected.iter().any(|b| b.needs_server) {
        // A target directory of its own: the server alone unifies
        // dependency features differently from the benches package, so
        // sharing target/release would rebuild both on every run.
        let dir = target_dir().join("bench-server");
        step(
            "cargo build --release -p topgun-server (target/bench-server)",
            cargo()
                .args(["build", "--release", "--package", "topgun-server"])
                .arg("--target-dir")
                .arg(&dir),
        )?;
        Some(dir.join("release").join("topgun-server"))
    } else {
        None
    };
    // Build every selected target first, so the runs below are not
    // separated by compiles.
    let mut build = cargo();
    build.args(["bench", "--no-run", "--package", "topgun-benches"]);
    for b in &selected {
        build.args(["--bench", b.target]);
    }
    step("cargo bench --no-run", &mut build)?;
    // A failed benchmark does not stop the others; the command fails at
    // the end, naming every one that failed.
    let mut failed = Vec::new();
    for b in selected {
        let mut cmd = cargo();
        cmd.args(["bench", "--package", "topgun-benches", "--bench", b.target]);
        if quick {
            cmd.env("TOPGUN_BENCH_QUICK", "1");
        }
        if let (true, Some(bin)) = (b.needs_server, &server_bin) {
            cmd.env("TOPGUN_SERVER_BIN", bin);
        }
        if let Err(e) = step(&format!("{}: {}", b.id, b.what), &mut cmd) {
            eprintln!("xtask: {e:#}");
            failed.push(b.id);
        }
    }
    if !failed.is_empty() {
        bail!("benchmarks failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` at the
/// workspace root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("target"),
    }
}
