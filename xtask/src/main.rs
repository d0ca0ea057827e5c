//! Project chores, run as `cargo xtask <command>`:
//!
//! - `ci`: what CI runs, in order: `cargo fmt --check`, `cargo clippy
//!   --all-targets -D warnings`, the whole test suite, and rustdoc with
//!   warnings denied.
//! - `certs [--out DIR] [--nodes N] [--days D] [--san NAME].. [--force]`:
//!   a development PKI (see `xtask::certs`).
//! - `bench [NAME] [--quick]`: the benchmarks of the performance guide, each
//!   printing the limit it is measured against beside its figure.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The benchmarks `cargo xtask bench` knows, by id, with their cargo bench
/// target in the `topgun-benches` package.
const BENCHES: &[(&str, &str, &str)] = &[
    ("b1", "b1_core_merge", "core merge vs HashMap insert"),
    ("b2", "b2_codec", "codec encode+decode vs memcpy"),
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
    for (id, _, what) in BENCHES {
        s.push_str(&format!("  {id:<4} {what}\n"));
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
    step("cargo test", cargo().args(["test", "--workspace"]))?;
    step(
        "cargo doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let selected: Vec<_> = match names.as_slice() {
        [] => BENCHES.iter().collect(),
        [name] => {
            let found = BENCHES
                .iter()
                .find(|(id, target, _)| id.eq_ignore_ascii_case(name) || *target == name.as_str());
            vec![found.with_context(|| format!("no benchmark named `{name}`\n\n{}", usage()))?]
        }
        _ => bail!("give at most one benchmark name\n\n{}", usage()),
    };
    for (id, target, what) in selected {
        let mut cmd = cargo();
        cmd.args(["bench", "--package", "topgun-benches", "--bench", target]);
        if quick {
            cmd.env("TOPGUN_BENCH_QUICK", "1");
        }
        step(&format!("{id}: {what}"), &mut cmd)?;
    }
    Ok(())
}
