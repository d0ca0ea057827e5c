//! What the B3-B5 harnesses share: the real `topgun-server` binary started
//! as a child process with HS256 auth, `loadgen` runs against it, and the
//! limits measured in the same run (raw batched store inserts, a loopback
//! WebSocket echo of the same frames).
//!
//! Every bench target includes this module and uses a part of it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use topgun_benches::load::{LatencySummary, LoadReport, human_kib, latency_histogram, record};
use topgun_core::{LwwRecord, NodeId, Timestamp, Value};
use topgun_protocol::{
    ClientMessage, Codec, Encoding, Op, StoredRecord, WireLwwRecord, WireNodeId, WireOpKind,
    WireTimestamp, WireValue, WriteConcern, encode_stored,
};
use topgun_server::rbac::{Effect, Operation, PolicyDef};
use topgun_server::store::{MemoryStore, SledConfig, SledStore, Store, Write};

/// The HMAC secret of the harness servers (HS256; loadgen signs with it).
const SECRET: &str = "topgun-bench-secret-of-at-least-32-bytes";

/// The argument that turns a bench binary into the echo server child.
const ECHO_SERVER_ARG: &str = "--echo-server";

/// Which store the server (or the store limit) uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// sled with group commit (durable).
    Sled,
    /// In memory.
    Memory,
}

impl StoreKind {
    /// The `--storage` value.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sled => "sled",
            StoreKind::Memory => "memory",
        }
    }
}

/// How writers pace themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Fire-and-wait with this pause after each acknowledged batch.
    Wait(Duration),
    /// Fire-and-forget with this many batches outstanding per connection.
    Forget(usize),
}

impl Pace {
    /// `fire-and-wait 50 ms`, `fire-and-forget x16`.
    pub fn label(self) -> String {
        match self {
            Pace::Wait(d) => format!("fire-and-wait {} ms", d.as_millis()),
            Pace::Forget(n) => format!("fire-and-forget x{n}"),
        }
    }

    /// The loadgen arguments for this pace.
    pub fn loadgen_args(self) -> Vec<String> {
        match self {
            Pace::Wait(d) => vec![
                "--mode".into(),
                "wait".into(),
                "--interval-ms".into(),
                d.as_millis().to_string(),
            ],
            Pace::Forget(n) => vec![
                "--mode".into(),
                "forget".into(),
                "--inflight".into(),
                n.to_string(),
            ],
        }
    }
}

/// The write workload: the same for the server run and its limits.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Concurrent connections (or committers).
    pub connections: usize,
    /// Puts per batch.
    pub batch: usize,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Key space.
    pub keys: u64,
    /// Pacing.
    pub pace: Pace,
    /// Length of the run.
    pub duration: Duration,
}

impl Shape {
    /// The loadgen arguments for this workload.
    pub fn loadgen_args(&self) -> Vec<String> {
        let mut args = vec![
            "--connections".to_owned(),
            self.connections.to_string(),
            "--batch".to_owned(),
            self.batch.to_string(),
            "--value-bytes".to_owned(),
            self.value_bytes.to_string(),
            "--keys".to_owned(),
            self.keys.to_string(),
            "--duration-secs".to_owned(),
            format!("{}", self.duration.as_secs_f64()),
        ];
        args.extend(self.pace.loadgen_args());
        args
    }
}

/// A limit's figures.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Records (or ops) per second.
    pub ops_per_sec: f64,
    /// Per batch (or frame) latency.
    pub latency: LatencySummary,
    /// How much this process's RSS grew over the run, in KiB (the store
    /// limit runs in this process).
    pub rss_growth_kib: Option<u64>,
}

/// Paths and settings of a harness run.
#[derive(Debug)]
pub struct Harness {
    server_bin: PathBuf,
    loadgen_bin: PathBuf,
    /// Quick mode (`TOPGUN_BENCH_QUICK=1`).
    pub quick: bool,
}

/// Runs the echo server instead of the benchmark when this process was
/// started as the echo child; returns otherwise.
pub fn echo_child_or_continue() {
    if std::env::args().any(|a| a == ECHO_SERVER_ARG) {
        let code = match echo_server_main() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("echo server: {e:#}");
                2
            }
        };
        std::process::exit(code);
    }
}

impl Harness {
    /// Finds the binaries and raises the open-files limit (the children
    /// inherit it).
    pub fn new() -> Result<Self> {
        let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
        let loadgen_bin = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
        let server_bin = match std::env::var_os("TOPGUN_SERVER_BIN") {
            Some(p) => PathBuf::from(p),
            None => default_server_bin()?,
        };
        if !server_bin.is_file() {
            bail!(
                "the server binary {} does not exist: run the benchmark with `cargo xtask bench`, which builds it, \
                 or build it with `cargo build --release -p topgun-server` or point TOPGUN_SERVER_BIN at one",
                server_bin.display()
            );
        }
        eprintln!(
            "harness: server {}, loadgen {}, RLIMIT_NOFILE {limit}",
            server_bin.display(),
            loadgen_bin.display()
        );
        Ok(Harness {
            server_bin,
            loadgen_bin,
            quick: topgun_benches::quick() || std::env::args().any(|a| a == "--quick"),
        })
    }

    /// Starts a fresh server (loopback, a free port, HS256 auth, a fresh
    /// data directory) and waits until it listens.
    pub fn start_server(&self, store: StoreKind, extra: &[&str]) -> Result<ServerProc> {
        let dir = tempfile::tempdir().context("creating a data directory")?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).context("creating the server log")?;
        let mut child = Command::new(&self.server_bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--storage",
                store.name(),
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--max-connections-per-ip", "20000"])
            .args(extra)
            .env("JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.server_bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = mpsc::channel();
        // Reads the server's stdout for its whole life, so it never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = ServerProc {
            child,
            pid,
            url: String::new(),
            log: log_path,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.split("listening on ").nth(1) {
                        server.url = url.trim().to_owned();
                        break;
                    }
                }
                Err(_) => bail!(
                    "the server did not start within 30 s; its log:\n{}",
                    server.log_tail()
                ),
            }
        }
        // Let the runtime and the store settle before the empty RSS is read.
        std::thread::sleep(Duration::from_millis(300));
        Ok(server)
    }

    /// Runs loadgen against `server` with `args`; the report comes back
    /// even when the run failed (see [`LoadReport::failures`]).
    pub fn loadgen(&self, server: &ServerProc, args: &[String]) -> Result<LoadReport> {
        let out = Command::new(&self.loadgen_bin)
            .args(["--url", &server.url, "--json", "--quiet"])
            .args(["--server-pid", &server.pid.to_string()])
            .args(args)
            .env("JWT_SECRET", SECRET)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running loadgen")?;
        match serde_json::from_slice::<LoadReport>(&out.stdout) {
            Ok(report) => Ok(report),
            Err(e) => bail!(
                "loadgen exited with {} without a report ({e}); server log:\n{}",
                out.status,
                server.log_tail()
            ),
        }
    }
}

/// The server binary `cargo xtask bench` builds
/// (`target/bench-server/release/topgun-server`) if it exists, else
/// `target/release/topgun-server`; this bench binary is
/// `target/release/deps/<bench>-<hash>`.
fn default_server_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench binary has no target directory")?;
    let xtask_built = release.parent().map(|target| {
        target
            .join("bench-server")
            .join("release")
            .join("topgun-server")
    });
    Ok(match xtask_built {
        Some(bin) if bin.is_file() => bin,
        _ => release.join("topgun-server"),
    })
}

/// A running server child; killed on drop.
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its WebSocket URL.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProc {
    /// VmRSS, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `12.3 MiB` or `-`.
pub fn show_kib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".to_owned(), human_kib)
}

/// A value of `len` bytes, like loadgen's (a clock reading and padding).
fn value(len: usize) -> String {
    let mut s = format!("{:020}", 1_764_000_000_000_000u64);
    s.extend(std::iter::repeat_n('x', len.saturating_sub(s.len())));
    s
}

/// The record bytes the server would store for one put of the shape.
fn stored_bytes(shape: &Shape) -> Result<Vec<u8>> {
    let record = LwwRecord::put(
        Value::String(value(shape.value_bytes)),
        Timestamp::new(1_764_000_000_000, 0, NodeId(0x0123_4567_89ab_cdef)),
    );
    let wire = WireLwwRecord::try_from(&record).context("converting the record")?;
    encode_stored(&StoredRecord::Lww(wire)).context("encoding the record")
}

/// Opens a store of `kind` the way the server does (sled with the default
/// settings in a fresh directory).
pub fn open_store(kind: StoreKind) -> Result<(Arc<dyn Store>, Option<tempfile::TempDir>)> {
    Ok(match kind {
        StoreKind::Memory => (Arc::new(MemoryStore::new()), None),
        StoreKind::Sled => {
            let dir = tempfile::tempdir().context("creating a sled directory")?;
            let store = SledStore::open(SledConfig::new(dir.path().join("data")))
                .context("opening sled")?;
            (Arc::new(store), Some(dir))
        }
    })
}

/// The store limit: `shape.connections` tasks commit batches of
/// `shape.batch` puts of the server's record bytes straight into `store`,
/// paced like the clients.
pub async fn store_limit(store: Arc<dyn Store>, shape: Shape) -> Result<Measured> {
    let bytes = stored_bytes(&shape)?;
    let hist = latency_histogram()?;
    let rss_before = rss_kib(std::process::id());
    let start = Instant::now();
    let deadline = start + shape.duration;
    let mut tasks = JoinSet::new();
    for c in 0..shape.connections {
        let store = store.clone();
        let bytes = bytes.clone();
        let mut hist = hist.clone();
        tasks.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(c as u64);
            let mut writes = move || -> Vec<Write> {
                (0..shape.batch)
                    .map(|_| {
                        let key = format!("k{}", rng.random_range(0..shape.keys));
                        Write::put("loadgen-limit-0", key, bytes.clone())
                    })
                    .collect()
            };
            let mut ops = 0u64;
            let mut last = start;
            match shape.pace {
                Pace::Wait(pause) => {
                    // Spread over the first interval, like loadgen's writers.
                    let offset = pause.mul_f64(rng_start(c));
                    tokio::time::sleep_until((start + offset).min(deadline).into()).await;
                    while Instant::now() < deadline {
                        let batch = writes();
                        let t0 = Instant::now();
                        store.commit(batch).await?;
                        last = Instant::now();
                        record(&mut hist, last - t0);
                        ops += shape.batch as u64;
                        if !pause.is_zero() {
                            tokio::time::sleep_until((last + pause).min(deadline).into()).await;
                        }
                    }
                }
                Pace::Forget(inflight) => {
                    let mut pending = FuturesUnordered::new();
                    loop {
                        while pending.len() < inflight && Instant::now() < deadline {
                            let batch = writes();
                            let store = store.clone();
                            let t0 = Instant::now();
                            pending.push(async move { store.commit(batch).await.map(|()| t0) });
                        }
                        match pending.next().await {
                            Some(done) => {
                                let t0 = done?;
                                last = Instant::now();
                                record(&mut hist, last - t0);
                                ops += shape.batch as u64;
                            }
                            None => break,
                        }
                    }
                }
            }
            Ok::<_, topgun_server::store::StoreError>((hist, ops, last))
        });
    }
    let mut total = hist.clone();
    let mut ops = 0;
    let mut end = start;
    while let Some(joined) = tasks.join_next().await {
        let (h, n, last) = joined.context("a committer panicked")??;
        total.add(&h).context("merging histograms")?;
        ops += n;
        end = end.max(last);
    }
    let rss_after = rss_kib(std::process::id());
    store.flush_and_close().await.context("closing the store")?;
    Ok(Measured {
        ops_per_sec: ops as f64 / (end - start).as_secs_f64().max(1e-9),
        latency: LatencySummary::from_histogram(&total),
        rss_growth_kib: match (rss_before, rss_after) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        },
    })
}

/// The encoded `OP_BATCH` frame a loadgen writer sends for this shape.
fn batch_frame(shape: &Shape) -> Result<Vec<u8>> {
    let ops = (0..shape.batch as u64)
        .map(|i| Op {
            op_id: 1_000 + i,
            map: "loadgen-00000000-0".to_owned(),
            key: format!("k{}", 10_000 + i),
            timestamp: WireTimestamp {
                millis: 1_764_000_000_000 + i,
                counter: 0,
                node: WireNodeId(0x0123_4567_89ab_cdef),
            },
            kind: WireOpKind::Put {
                value: WireValue::from(value(shape.value_bytes)),
                ttl_ms: None,
            },
        })
        .collect();
    let msg = ClientMessage::OpBatch {
        ops,
        write_concern: WriteConcern::Durable,
    };
    Codec::new(Encoding::Bincode)
        .encode_client(&msg)
        .context("encoding the batch")
}

/// A start offset for connection `c`, as a fraction of one interval in
/// `[0, 1)`.
fn rng_start(c: usize) -> f64 {
    SmallRng::seed_from_u64(c as u64 ^ 0x5747_4152_5453).random::<f64>()
}

/// A loopback WebSocket echo server in a child process (this binary
/// started with `--echo-server`); killed on drop.
#[derive(Debug)]
pub struct EchoProc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for EchoProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the echo server child.
pub fn start_echo() -> Result<EchoProc> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut child = Command::new(exe)
        .arg(ECHO_SERVER_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the echo server")?;
    let stdout = child.stdout.take().context("the echo server's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the echo server's address")?;
    let addr = line
        .trim()
        .parse()
        .with_context(|| format!("the echo server printed `{}`", line.trim()))?;
    Ok(EchoProc { child, addr })
}

fn echo_server_main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let echo = match msg {
                        Message::Binary(_) | Message::Text(_) => msg,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(echo).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

/// The echo limit: `shape.connections` WebSocket clients send loadgen's
/// `OP_BATCH` frame to the echo server, paced like the clients, and wait
/// for it to come back.
pub async fn echo_limit(addr: SocketAddr, shape: Shape) -> Result<Measured> {
    let frame = batch_frame(&shape)?;
    let hist = latency_histogram()?;
    let mut sockets = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .context("echo client handshake")?;
        sockets.push(ws);
    }
    let start = Instant::now();
    let deadline = start + shape.duration;
    let mut tasks = JoinSet::new();
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let frame = frame.clone();
        let mut hist = hist.clone();
        tasks.spawn(async move {
            if let Pace::Wait(pause) = shape.pace {
                // Spread over the first interval, like loadgen's writers.
                let offset = pause.mul_f64(rng_start(c));
                tokio::time::sleep_until((start + offset).min(deadline).into()).await;
            }
            let mut sent = std::collections::VecDeque::new();
            let window = match shape.pace {
                Pace::Wait(_) => 1,
                Pace::Forget(n) => n,
            };
            let mut frames = 0u64;
            let mut last = start;
            loop {
                while sent.len() < window && Instant::now() < deadline {
                    ws.feed(Message::Binary(frame.clone().into())).await?;
                    sent.push_back(Instant::now());
                }
                ws.flush().await?;
                let Some(t0) = sent.pop_front() else { break };
                match ws.next().await {
                    Some(Ok(Message::Binary(_))) => {}
                    Some(Ok(other)) => bail!("the echo server answered {other:?}"),
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("the echo server closed the connection"),
                }
                last = Instant::now();
                record(&mut hist, last - t0);
                frames += 1;
                if let Pace::Wait(pause) = shape.pace {
                    if !pause.is_zero() {
                        tokio::time::sleep_until((last + pause).min(deadline).into()).await;
                    }
                }
            }
            let _ = ws.close(None).await;
            Ok((hist, frames, last))
        });
    }
    let mut total = hist.clone();
    let mut frames = 0;
    let mut end = start;
    while let Some(joined) = tasks.join_next().await {
        let (h, n, last) = joined.context("an echo client panicked")??;
        total.add(&h).context("merging histograms")?;
        frames += n;
        end = end.max(last);
    }
    Ok(Measured {
        ops_per_sec: (frames * shape.batch as u64) as f64 / (end - start).as_secs_f64().max(1e-9),
        latency: LatencySummary::from_histogram(&total),
        rss_growth_kib: None,
    })
}

/// `1.23 M ops/s`.
pub fn rate(ops_per_sec: f64) -> String {
    topgun_benches::human_rate(ops_per_sec, "ops")
}

/// A multi-threaded runtime for the in-process limits.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// A policy set of `n` rules of the shapes applications use: per-app maps,
/// per-user maps with interpolation, tenant maps with a condition on the
/// stored value, and some denies. The RBAC benchmark decides against it;
/// B3 runs the server with it (plus the rule that lets the load in).
pub fn policy_mix(n: usize) -> Vec<PolicyDef> {
    (0..n)
        .map(|i| match i % 4 {
            0 => PolicyDef::new(
                format!("app-{i}"),
                Effect::Allow,
                format!("app{i}:**"),
                vec![Operation::Read, Operation::Write],
            )
            .roles([format!("role{}", i % 10)]),
            1 => PolicyDef::new(
                format!("user-{i}"),
                Effect::Allow,
                format!("notes{i}:{{sub}}"),
                vec![Operation::Read, Operation::Write, Operation::Remove],
            ),
            2 => PolicyDef::new(
                format!("tenant-{i}"),
                Effect::Allow,
                format!("{{claims.tenant}}:t{i}:*"),
                vec![Operation::Write],
            )
            .condition("old == null || old.owner == auth.sub"),
            _ => PolicyDef::new(
                format!("deny-{i}"),
                Effect::Deny,
                format!("app{}:secret:**", i - 3),
                vec![Operation::Read, Operation::Write],
            ),
        })
        .collect()
}

/// The role B3's load generator claims, and the map prefix it writes under.
pub const BENCH_ROLE: &str = "bench-writer";
/// Maps B3 writes: `bench:load-<m>`.
pub const BENCH_MAP_PREFIX: &str = "bench:load";

/// Writes a policy file of `total` rules into `dir`: [`policy_mix`] of
/// `total - 1` and the rule that lets [`BENCH_ROLE`] read and write
/// `bench:*` (the last one, so the engine goes through the others first).
pub fn write_policy_file(dir: &Path, total: usize) -> Result<PathBuf> {
    let mut defs = policy_mix(total.saturating_sub(1));
    defs.push(
        PolicyDef::new(
            "bench-load",
            Effect::Allow,
            "bench:*",
            vec![Operation::Read, Operation::Write],
        )
        .roles([BENCH_ROLE]),
    );
    let path = dir.join("policies.json");
    let text = serde_json::to_string_pretty(&defs).context("serializing the policies")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
