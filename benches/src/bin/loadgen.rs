//! `loadgen`: drives a running TopGun server over real WebSocket
//! connections, authenticated with HS256 tokens it signs itself, and reports
//! acknowledged ops per second, ack latency, rejections, errors, live-query
//! delivery latency and the server's memory.
//!
//! A run has three phases: connect (and subscribe) every connection, load
//! for `--duration-secs`, then drain: every op sent must be acknowledged or
//! rejected by the end of `--drain-timeout-secs`. Lost acks, errors and
//! rejections not allowed with `--allow-reject` fail the run (exit code 1,
//! a loud message), so a broken run never looks fast.
//!
//! There is no point read in the protocol, so `--read-ratio` is the
//! fraction of `--connections` that *read* by holding a live query on a map
//! instead of writing; `--subscribers` adds that many more subscriber
//! connections per map. Each subscriber counts the updates it receives and
//! measures write-to-delivery latency from the writer's clock reading,
//! which every value starts with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use topgun_benches::load::{
    LatencySummary, LoadReport, RssReport, cpu_secs, human_kib, latency_histogram, record,
};
use topgun_client::{
    CaBundle, Client, ClientConfig, ClientError, ClientEvent, ClientOp, Encoding, OpOutcome,
    Scheme, StaticToken, Subscription, SubscriptionEnd, TlsConfig, WriteConcern,
};
use topgun_core::{Query, Value};

/// How writers pace themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Fire-and-wait: send a batch, wait for all its outcomes, sleep
    /// `--interval-ms`, repeat.
    Wait,
    /// Fire-and-forget: keep up to `--inflight` batches outstanding per
    /// connection.
    Forget,
    /// Open the connections, authenticate, and hold them idle for the
    /// duration (connection cost and time to connect).
    Idle,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Wait => "wait",
            Mode::Forget => "forget",
            Mode::Idle => "idle",
        }
    }
}

/// Wire encoding of the connections.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Enc {
    /// Binary frames (`topgun.v1.bincode`).
    Bincode,
    /// Text frames (`topgun.v1.json`).
    Json,
}

/// Load generator for a running TopGun-RS server.
///
/// Every op of every batch must be acknowledged or rejected by the end of
/// the drain; lost acks, errors, and rejections not allowed by
/// --allow-reject make the run fail with exit code 1.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Server WebSocket URL (ws:// or wss://).
    #[arg(long, default_value = "ws://127.0.0.1:8090/ws")]
    url: String,

    /// HMAC secret the server verifies HS256 tokens with; loadgen signs one
    /// token per connection with it.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,

    /// Token subject of connection i: `<prefix>-<i>`.
    #[arg(long, default_value = "loadgen")]
    sub_prefix: String,

    /// One subject for every connection instead of `<prefix>-<i>`.
    #[arg(long)]
    sub: Option<String>,

    /// A role claim for the tokens (`roles`); repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,

    /// Token lifetime in seconds (default: the run's duration plus an hour).
    #[arg(long)]
    token_ttl_secs: Option<u64>,

    /// Connections (writers and, with --read-ratio, readers; all idle with
    /// --mode idle).
    #[arg(long, default_value_t = 200)]
    connections: usize,

    /// Ops per OP_BATCH.
    #[arg(long, default_value_t = 10)]
    batch: usize,

    /// Bytes per value (a string; at least 20, the writer's clock reading
    /// in microseconds that starts every value).
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,

    /// Key space per map: each put picks a key uniformly in 0..keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,

    /// Maps to spread the writers over (writer i writes map i % maps).
    #[arg(long, default_value_t = 1)]
    maps: usize,

    /// Map name prefix; maps are `<prefix>-<m>` (default: `loadgen-<random>`,
    /// so runs against one server do not share data).
    #[arg(long)]
    map_prefix: Option<String>,

    /// Fraction of --connections that read instead of writing: they hold a
    /// live query on a map (there is no point read in the protocol).
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,

    /// Extra subscriber connections per map, besides --read-ratio.
    #[arg(long, default_value_t = 0)]
    subscribers: usize,

    /// How writers pace themselves.
    #[arg(long, value_enum, default_value_t = Mode::Wait)]
    mode: Mode,

    /// Fire-and-wait: pause after each acknowledged batch, in ms.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,

    /// Fire-and-wait with a pause: start every writer at once, so their
    /// batches arrive in bursts of --connections batches each interval. By
    /// default each writer first waits a random part of one interval, so
    /// the offered load is spread evenly.
    #[arg(long)]
    aligned_start: bool,

    /// Fire-and-forget: batches outstanding per connection (the server
    /// reads at most 64 ahead per connection).
    #[arg(long, default_value_t = 16)]
    inflight: usize,

    /// Length of the load phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,

    /// After the load phase: how long outstanding ops (and live-query
    /// updates) may take to arrive before they count as lost.
    #[arg(long, default_value_t = 10)]
    drain_timeout_secs: u64,

    /// Pause between connecting everything and sampling the server's
    /// "connected" memory, in ms.
    #[arg(long, default_value_t = 0)]
    settle_ms: u64,

    /// Connections being opened at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,

    /// PEM CA bundle to trust for wss:// (the CA that signed the server's
    /// certificate).
    #[arg(long)]
    tls_ca: Option<PathBuf>,

    /// Name to verify the server's certificate against, instead of the
    /// URL's host.
    #[arg(long)]
    tls_server_name: Option<String>,

    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = Enc::Bincode)]
    encoding: Enc,

    /// The server's process id: its resident memory (VmRSS in
    /// /proc/PID/status) is sampled during the run.
    #[arg(long)]
    server_pid: Option<u32>,

    /// Rejection codes that do not fail the run (e.g. RateLimited).
    #[arg(long, value_delimiter = ',')]
    allow_reject: Vec<String>,

    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// What connection `i` does.
#[derive(Clone, Copy, Debug)]
enum Role {
    Writer { map: usize },
    Subscriber { map: usize },
    Idle,
}

/// Counters every task updates, read by the progress line.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    problems: AtomicU64,
    /// What the connections reported on their own, by kind.
    events: Mutex<BTreeMap<String, u64>>,
    /// Set once the run closes its own connections: closes after that are
    /// expected.
    closing: AtomicBool,
}

/// What one writer saw.
#[derive(Debug)]
struct WriterStats {
    hist: Histogram<u64>,
    sent: u64,
    acked: u64,
    lost: u64,
    rejections: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    last_outcome: Option<Instant>,
}

/// What one subscriber saw.
#[derive(Debug)]
struct SubscriberStats {
    hist: Histogram<u64>,
    delivered: u64,
    unparsed: u64,
    end: Option<SubscriptionEnd>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let result = builder
        .build()
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(run(&args)));
    match result {
        Ok(report) if report.ok() => std::process::ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!("\nloadgen: RUN FAILED, its figures are not valid:");
            for f in &report.failures {
                eprintln!("  - {f}");
            }
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn check_args(args: &Args) -> Result<()> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!("--read-ratio must be between 0 and 1");
    }
    if args.mode != Mode::Idle {
        if args.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if args.keys == 0 {
            bail!("--keys must be at least 1");
        }
        if args.maps == 0 {
            bail!("--maps must be at least 1");
        }
    }
    if args.mode == Mode::Forget && args.interval_ms > 0 {
        bail!("--interval-ms paces fire-and-wait only; fire-and-forget is bounded by --inflight");
    }
    if args.inflight == 0 {
        bail!("--inflight must be at least 1");
    }
    if !args.duration_secs.is_finite() || args.duration_secs < 0.0 {
        bail!("--duration-secs must be a non-negative number");
    }
    Ok(())
}

/// Connection roles: writers first, then readers, then extra subscribers.
fn roles(args: &Args) -> Vec<Role> {
    if args.mode == Mode::Idle {
        return vec![Role::Idle; args.connections];
    }
    let readers = (args.connections as f64 * args.read_ratio).round() as usize;
    let writers = args.connections - readers.min(args.connections);
    let mut roles: Vec<Role> = (0..writers)
        .map(|i| Role::Writer { map: i % args.maps })
        .collect();
    roles.extend((0..readers).map(|i| Role::Subscriber { map: i % args.maps }));
    for map in 0..args.maps {
        roles.extend((0..args.subscribers).map(|_| Role::Subscriber { map }));
    }
    roles
}

async fn run(args: &Args) -> Result<LoadReport> {
    check_args(args)?;
    let roles = roles(args);
    raise_fd_limit(roles.len())?;
    let config = client_config(args)?;
    let prefix = args
        .map_prefix
        .clone()
        .unwrap_or_else(|| format!("loadgen-{:08x}", rand::random::<u32>()));
    let maps: Vec<String> = (0..args.maps.max(1))
        .map(|m| format!("{prefix}-{m}"))
        .collect();
    let live = Arc::new(Live::default());
    let mut report = LoadReport {
        mode: args.mode.name().to_owned(),
        batch: args.batch,
        value_bytes: args.value_bytes.max(20),
        interval_ms: args.interval_ms,
        aligned_start: args.aligned_start,
        inflight: args.inflight,
        ..LoadReport::default()
    };
    for role in &roles {
        match role {
            Role::Writer { .. } => report.writers += 1,
            Role::Subscriber { .. } => report.subscribers += 1,
            Role::Idle => report.idle += 1,
        }
    }
    let mut rss = RssReport {
        before_kib: args.server_pid.and_then(rss_kib),
        ..RssReport::default()
    };

    // Connect (and subscribe) everything.
    let connect_start = Instant::now();
    let connected = connect_all(args, &config, &roles, &maps, &live).await;
    report.connect_secs = connect_start.elapsed().as_secs_f64();
    let mut clients = Vec::with_capacity(roles.len());
    let mut subscriptions = Vec::new();
    let mut connect_errors: BTreeMap<String, u64> = BTreeMap::new();
    for (i, outcome) in connected.into_iter().enumerate() {
        match outcome {
            Ok((client, sub)) => {
                clients.push((i, client));
                subscriptions.extend(sub.map(|s| (i, s)));
            }
            Err(e) => *connect_errors.entry(e).or_default() += 1,
        }
    }
    report.connected = clients.len();
    if !args.quiet {
        eprintln!(
            "loadgen: {} of {} connections up in {:.2} s ({} writers, {} subscribers, {} idle)",
            clients.len(),
            roles.len(),
            report.connect_secs,
            report.writers,
            report.subscribers,
            report.idle
        );
    }
    if !connect_errors.is_empty() {
        for (e, n) in &connect_errors {
            report
                .failures
                .push(format!("{n} connection(s) failed to open: {e}"));
            *report.errors.entry(format!("connect: {e}")).or_default() += n;
        }
        close_all(&live, clients).await;
        report.server_rss = rss;
        return finish(args, report);
    }
    if args.settle_ms > 0 {
        tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    }
    rss.connected_kib = args.server_pid.and_then(rss_kib);

    // Load.
    let duration = Duration::from_secs_f64(args.duration_secs);
    let drain = Duration::from_secs(args.drain_timeout_secs);
    let server_pid = args.server_pid.map(|p| p.to_string());
    let cpu_at_start = (server_pid.as_deref().and_then(cpu_secs), cpu_secs("self"));
    let start = Instant::now();
    let deadline = start + duration;
    let drain_deadline = deadline + drain;
    let acked_per_map: Arc<Vec<AtomicU64>> =
        Arc::new((0..maps.len()).map(|_| AtomicU64::new(0)).collect());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (progress_stop, progress) = spawn_progress(args, live.clone(), start);

    let hist = latency_histogram()?;
    let mut subscribers = JoinSet::new();
    for (_, sub) in subscriptions {
        subscribers.spawn(subscriber(sub, hist.clone(), live.clone(), stop_rx.clone()));
    }
    let mut writers = JoinSet::new();
    for (i, client) in &clients {
        if let Role::Writer { map } = roles[*i] {
            let job = WriterJob {
                client: client.clone(),
                map: maps[map].clone(),
                map_index: map,
                seed: *i as u64,
                start,
                deadline,
                drain_deadline,
            };
            let counters = Counters {
                live: live.clone(),
                acked_per_map: acked_per_map.clone(),
            };
            writers.spawn(writer(job, args.into(), hist.clone(), counters));
        }
    }
    if report.writers == 0 {
        tokio::time::sleep_until(deadline.into()).await;
    }

    let mut ack_hist = hist.clone();
    let mut last_outcome = None::<Instant>;
    while let Some(joined) = writers.join_next().await {
        let stats = joined.context("a writer task panicked")?;
        ack_hist
            .add(&stats.hist)
            .context("merging latency histograms")?;
        report.sent_ops += stats.sent;
        report.acked_ops += stats.acked;
        report.lost_ops += stats.lost;
        for (code, n) in stats.rejections {
            report.rejected_ops += n;
            *report.rejections.entry(code).or_default() += n;
        }
        for (kind, n) in stats.errors {
            *report.errors.entry(kind).or_default() += n;
        }
        last_outcome = last_outcome.max(stats.last_outcome);
    }
    let end = last_outcome.unwrap_or_else(Instant::now).max(start);
    report.elapsed_secs = if report.writers == 0 {
        start.elapsed().as_secs_f64()
    } else {
        (end - start).as_secs_f64()
    };
    report.ops_per_sec = if report.elapsed_secs > 0.0 {
        report.acked_ops as f64 / report.elapsed_secs
    } else {
        0.0
    };
    report.ack_latency = LatencySummary::from_histogram(&ack_hist);

    // Live-query updates still on their way.
    report.expected_deliveries = roles
        .iter()
        .filter_map(|r| match r {
            Role::Subscriber { map } => Some(acked_per_map[*map].load(Ordering::Relaxed)),
            _ => None,
        })
        .sum();
    if report.subscribers > 0 {
        wait_for_deliveries(&live, report.expected_deliveries, drain).await;
    }
    rss.end_kib = args.server_pid.and_then(rss_kib);
    let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    report.server_cpu_secs = used(cpu_at_start.0, server_pid.as_deref().and_then(cpu_secs));
    report.loadgen_cpu_secs = used(cpu_at_start.1, cpu_secs("self"));
    let _ = stop_tx.send(true);
    let mut delivery_hist = hist.clone();
    let mut unparsed = 0;
    while let Some(joined) = subscribers.join_next().await {
        let stats = joined.context("a subscriber task panicked")?;
        delivery_hist
            .add(&stats.hist)
            .context("merging latency histograms")?;
        report.delivered += stats.delivered;
        unparsed += stats.unparsed;
        if let Some(end) = stats.end {
            *report
                .errors
                .entry(format!("subscription ended: {end:?}"))
                .or_default() += 1;
        }
    }
    report.delivery_latency = LatencySummary::from_histogram(&delivery_hist);
    let _ = progress_stop.send(true);
    let peak = progress.await.unwrap_or(None);
    rss.peak_kib = peak.max(rss.end_kib).max(rss.connected_kib);
    report.server_rss = rss;

    // Problems the connections reported on their own (server ERRORs,
    // unexpected closes), then close.
    live.closing.store(true, Ordering::SeqCst);
    let watched = close_all(&live, clients).await;
    for (kind, n) in watched {
        *report.errors.entry(kind).or_default() += n;
    }

    // Verdict.
    if report.lost_ops > 0 {
        report.failures.push(format!(
            "{} of {} ops sent got no outcome (ack or rejection) within the drain timeout of {} s",
            report.lost_ops, report.sent_ops, args.drain_timeout_secs
        ));
    }
    let accounted = report.acked_ops + report.rejected_ops + report.lost_ops;
    if accounted != report.sent_ops {
        report.failures.push(format!(
            "outcomes do not add up: {} sent, {} acked + {} rejected + {} lost",
            report.sent_ops, report.acked_ops, report.rejected_ops, report.lost_ops
        ));
    }
    for (code, n) in &report.rejections {
        if !args
            .allow_reject
            .iter()
            .any(|a| a.eq_ignore_ascii_case(code))
        {
            report.failures.push(format!(
                "{n} op(s) rejected with {code} (allow with --allow-reject {code})"
            ));
        }
    }
    for (kind, n) in &report.errors {
        report.failures.push(format!("{n} x error: {kind}"));
    }
    if report.writers > 0 && report.acked_ops == 0 {
        report.failures.push("no op was acknowledged".to_owned());
    }
    if report.delivered < report.expected_deliveries {
        report.failures.push(format!(
            "subscribers received {} of at least {} live-query updates",
            report.delivered, report.expected_deliveries
        ));
    }
    if unparsed > 0 {
        report.failures.push(format!(
            "{unparsed} live-query update(s) carried no clock reading (another writer on the map?)"
        ));
    }
    finish(args, report)
}

/// Prints the report (JSON or text) and hands it back for the exit code.
fn finish(args: &Args, report: LoadReport) -> Result<LoadReport> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serializing the report")?
        );
    } else {
        print_text(&report);
    }
    Ok(report)
}

fn print_text(r: &LoadReport) {
    println!(
        "mode {}: {} writers, {} subscribers, {} idle; batch {}, values {} B, interval {} ms{}, inflight {}",
        r.mode,
        r.writers,
        r.subscribers,
        r.idle,
        r.batch,
        r.value_bytes,
        r.interval_ms,
        if r.aligned_start {
            " (aligned start)"
        } else {
            ""
        },
        r.inflight
    );
    println!("connected {} in {:.2} s", r.connected, r.connect_secs);
    if r.writers > 0 {
        println!(
            "ops: {} sent, {} acked, {} rejected, {} lost in {:.2} s = {:.0} acked ops/s",
            r.sent_ops, r.acked_ops, r.rejected_ops, r.lost_ops, r.elapsed_secs, r.ops_per_sec
        );
        println!("ack latency per batch: {}", r.ack_latency.line());
    }
    if r.subscribers > 0 {
        println!(
            "live-query updates: {} delivered (at least {} expected); write-to-delivery {}",
            r.delivered,
            r.expected_deliveries,
            r.delivery_latency.line()
        );
    }
    println!("{} (over the load and the drain)", r.cpu_line());
    let rss = &r.server_rss;
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), human_kib);
    if rss.before_kib.is_some() {
        println!(
            "server RSS: before {}, connected {}, peak {}, end {}",
            show(rss.before_kib),
            show(rss.connected_kib),
            show(rss.peak_kib),
            show(rss.end_kib)
        );
    }
    for (code, n) in &r.rejections {
        println!("rejected {code}: {n}");
    }
    for (kind, n) in &r.errors {
        println!("error {kind}: {n}");
    }
}

/// Raises the soft open-files limit to the hard one, and checks it covers
/// `connections` sockets.
fn raise_fd_limit(connections: usize) -> Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let needed = connections as u64 + 64;
    if limit < needed {
        bail!(
            "{connections} connections need about {needed} open files, but RLIMIT_NOFILE allows {limit} (raise the hard limit, e.g. `ulimit -Hn`)"
        );
    }
    Ok(())
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let encoding = match args.encoding {
        Enc::Bincode => Encoding::Bincode,
        Enc::Json => Encoding::Json,
    };
    // The drain timeout decides when an op counts as lost; the client's own
    // request timeout is only a backstop behind it.
    let backstop = Duration::from_secs_f64(args.duration_secs)
        + Duration::from_secs(args.drain_timeout_secs + 30);
    let mut config = ClientConfig::new(&args.url)
        .with_context(|| format!("server URL {}", args.url))?
        .with_encoding(encoding)
        .with_request_timeout(Some(backstop))
        .with_outbound_queue(args.inflight.max(16) * 2)
        .with_subscription_buffer(8192);
    if config.url().scheme() == Scheme::Wss && args.tls_ca.is_none() {
        bail!(
            "a wss:// URL needs --tls-ca (the PEM CA bundle that signed the server's certificate)"
        );
    }
    if let Some(ca) = &args.tls_ca {
        let bundle =
            CaBundle::from_pem_file(ca).with_context(|| format!("CA bundle {}", ca.display()))?;
        let mut tls = TlsConfig::new(bundle);
        if let Some(name) = &args.tls_server_name {
            tls = tls.with_server_name(name.clone());
        }
        config = config.with_tls(tls);
    }
    Ok(config)
}

/// An HS256 token for connection `i`.
fn token(args: &Args, i: usize) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let ttl = args
        .token_ttl_secs
        .unwrap_or(args.duration_secs as u64 + args.drain_timeout_secs + 3600);
    let sub = match &args.sub {
        Some(s) => s.clone(),
        None => format!("{}-{i}", args.sub_prefix),
    };
    let mut claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + ttl });
    if !args.roles.is_empty() {
        claims["roles"] = serde_json::json!(args.roles);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(args.jwt_secret.as_bytes()),
    )
    .context("signing a token")
}

type Connected = Result<(Client, Option<Subscription>), String>;

/// Opens every connection (at most `--connect-concurrency` at once),
/// subscribes the subscribers, and starts a watcher of each connection's
/// events. Errors come back as text so equal ones can be counted together.
async fn connect_all(
    args: &Args,
    config: &ClientConfig,
    roles: &[Role],
    maps: &[String],
    live: &Arc<Live>,
) -> Vec<Connected> {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (i, role) in roles.iter().enumerate() {
        let token = match token(args, i) {
            Ok(t) => t,
            Err(e) => {
                tasks.spawn(async move { (i, Err(format!("{e:#}"))) });
                continue;
            }
        };
        let config = config.clone();
        let gate = gate.clone();
        let live = live.clone();
        let map = match role {
            Role::Subscriber { map } => Some(maps[*map].clone()),
            _ => None,
        };
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let client = match Client::connect(config, StaticToken::new(token)).await {
                Ok(c) => c,
                Err(e) => return (i, Err(e.to_string())),
            };
            tokio::spawn(watch_events(client.events(), live));
            let sub = match map {
                Some(map) => match client.subscribe(&map, &Query::default()).await {
                    Ok(s) => Some(s),
                    Err(e) => return (i, Err(format!("subscribe: {}", error_kind(&e)))),
                },
                None => None,
            };
            (i, Ok((client, sub)))
        });
    }
    let mut out: Vec<Connected> = (0..roles.len())
        .map(|_| Err("connection task lost".to_owned()))
        .collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => out[i] = result,
            Err(e) => eprintln!("loadgen: a connect task failed: {e}"),
        }
    }
    out
}

/// Counts what a connection reports on its own: server `ERROR`s, lagging
/// subscriptions, and closes the run did not ask for.
async fn watch_events(mut events: tokio::sync::broadcast::Receiver<ClientEvent>, live: Arc<Live>) {
    loop {
        let kind = match events.recv().await {
            Ok(ClientEvent::ServerError { code, message, .. }) => {
                format!("server ERROR {code:?}: {message}")
            }
            Ok(ClientEvent::SubscriptionLagged { .. }) => "subscription lagged".to_owned(),
            Ok(ClientEvent::RenewalFailed { reason, .. }) => {
                format!("token renewal failed: {reason:?}")
            }
            Ok(ClientEvent::Closed(info)) => {
                if live.closing.load(Ordering::SeqCst) {
                    break;
                }
                format!("connection closed unexpectedly: {info}")
            }
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                format!("{n} connection event(s) missed")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        if live.problems.fetch_add(1, Ordering::Relaxed) < 10 {
            eprintln!("loadgen: {kind}");
        }
        *live
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }
}

/// Closes every connection politely (at most 10 s in all); returns what
/// the event watchers counted.
async fn close_all(live: &Arc<Live>, clients: Vec<(usize, Client)>) -> BTreeMap<String, u64> {
    live.closing.store(true, Ordering::SeqCst);
    let mut closing = JoinSet::new();
    for (_, client) in clients {
        closing.spawn(async move {
            let _ = client.close().await;
        });
    }
    let all = async { while closing.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
    std::mem::take(&mut *live.events.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Per-writer settings, from the arguments.
#[derive(Clone, Copy, Debug)]
struct WriterShape {
    mode: Mode,
    batch: usize,
    value_bytes: usize,
    keys: u64,
    interval: Duration,
    inflight: usize,
    aligned_start: bool,
}

impl From<&Args> for WriterShape {
    fn from(a: &Args) -> Self {
        WriterShape {
            mode: a.mode,
            batch: a.batch,
            value_bytes: a.value_bytes.max(20),
            keys: a.keys,
            interval: Duration::from_millis(a.interval_ms),
            inflight: a.inflight,
            aligned_start: a.aligned_start,
        }
    }
}

struct WriterJob {
    client: Client,
    map: String,
    map_index: usize,
    seed: u64,
    start: Instant,
    deadline: Instant,
    drain_deadline: Instant,
}

/// Microseconds since the Unix epoch (the writers' and subscribers' shared
/// clock; both run on the same machine).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A value of `len` bytes that starts with the clock reading.
fn stamped_value(len: usize) -> Value {
    let mut s = format!("{:020}", now_micros());
    s.extend(std::iter::repeat_n('x', len.saturating_sub(s.len())));
    Value::String(s)
}

/// The clock reading a value starts with.
fn value_stamp(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.get(..20)?.parse().ok(),
        _ => None,
    }
}

fn batch(
    client: &Client,
    job: &WriterJob,
    shape: &WriterShape,
    rng: &mut SmallRng,
) -> Vec<ClientOp> {
    (0..shape.batch)
        .map(|_| {
            let key = format!("k{}", rng.random_range(0..shape.keys));
            client.put(&job.map, &key, stamped_value(shape.value_bytes))
        })
        .collect()
}

/// The name an error is counted under.
fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Disconnected { code, reason } => {
            format!("disconnected (close code {code:?}): {reason}")
        }
        ClientError::Timeout => "request timeout".to_owned(),
        ClientError::Server { code, message } => format!("server ERROR {code:?}: {message}"),
        other => other.to_string(),
    }
}

impl WriterStats {
    fn new(hist: Histogram<u64>) -> Self {
        WriterStats {
            hist,
            sent: 0,
            acked: 0,
            lost: 0,
            rejections: BTreeMap::new(),
            errors: BTreeMap::new(),
            last_outcome: None,
        }
    }

    fn error(&mut self, e: &ClientError) {
        *self.errors.entry(error_kind(e)).or_default() += 1;
    }

    /// Tallies a batch's outcomes; returns how many were acked.
    fn outcomes(&mut self, sent: usize, started: Instant, outcomes: &[OpOutcome]) -> u64 {
        let now = Instant::now();
        record(&mut self.hist, now - started);
        self.last_outcome = Some(now);
        let mut acked = 0;
        for outcome in outcomes {
            match outcome {
                OpOutcome::Acked { .. } => acked += 1,
                OpOutcome::Rejected { code, .. } => {
                    *self.rejections.entry(format!("{code:?}")).or_default() += 1;
                }
            }
        }
        self.acked += acked;
        // The client resolves a batch only with one outcome per op; should
        // that ever break, the missing ones are lost.
        self.lost += sent.saturating_sub(outcomes.len()) as u64;
        acked
    }
}

/// Shared pieces a writer counts into.
struct Counters {
    live: Arc<Live>,
    acked_per_map: Arc<Vec<AtomicU64>>,
}

impl Counters {
    fn sent(&self, n: usize) {
        self.live.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn acked(&self, map: usize, n: u64) {
        self.live.acked.fetch_add(n, Ordering::Relaxed);
        if let Some(c) = self.acked_per_map.get(map) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

async fn writer(
    job: WriterJob,
    shape: WriterShape,
    hist: Histogram<u64>,
    counters: Counters,
) -> WriterStats {
    let mut stats = WriterStats::new(hist);
    let mut rng = SmallRng::seed_from_u64(job.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    match shape.mode {
        Mode::Wait => wait_loop(&job, &shape, &counters, &mut rng, &mut stats).await,
        Mode::Forget => forget_loop(&job, &shape, &counters, &mut rng, &mut stats).await,
        Mode::Idle => {}
    }
    stats
}

/// Fire-and-wait: one batch at a time, a pause after each.
async fn wait_loop(
    job: &WriterJob,
    shape: &WriterShape,
    counters: &Counters,
    rng: &mut SmallRng,
    stats: &mut WriterStats,
) {
    if !shape.aligned_start && !shape.interval.is_zero() {
        let offset = shape.interval.mul_f64(rng.random::<f64>());
        tokio::time::sleep_until((job.start + offset).min(job.deadline).into()).await;
    }
    while Instant::now() < job.deadline {
        let ops = batch(&job.client, job, shape, rng);
        let n = ops.len();
        let started = Instant::now();
        let pending = match job.client.submit_batch(ops, WriteConcern::Durable).await {
            Ok(p) => p,
            Err(e) => {
                // Not sent: the connection is gone.
                stats.error(&e);
                return;
            }
        };
        stats.sent += n as u64;
        counters.sent(n);
        match tokio::time::timeout_at(job.drain_deadline.into(), pending).await {
            Ok(Ok(outcomes)) => {
                let acked = stats.outcomes(n, started, &outcomes);
                counters.acked(job.map_index, acked);
            }
            Ok(Err(e)) => {
                stats.error(&e);
                stats.lost += n as u64;
                return;
            }
            Err(_) => {
                stats.lost += n as u64;
                return;
            }
        }
        if !shape.interval.is_zero() {
            let next = (Instant::now() + shape.interval).min(job.deadline);
            tokio::time::sleep_until(next.into()).await;
        }
    }
}

/// Fire-and-forget: up to `inflight` batches outstanding; each completion
/// makes room for the next until the deadline, then the rest drain.
async fn forget_loop(
    job: &WriterJob,
    shape: &WriterShape,
    counters: &Counters,
    rng: &mut SmallRng,
    stats: &mut WriterStats,
) {
    let mut inflight = FuturesUnordered::new();
    let mut inflight_ops = 0u64;
    let mut broken = false;
    loop {
        while !broken && inflight.len() < shape.inflight && Instant::now() < job.deadline {
            let ops = batch(&job.client, job, shape, rng);
            let n = ops.len();
            let started = Instant::now();
            match job.client.submit_batch(ops, WriteConcern::Durable).await {
                Ok(pending) => {
                    stats.sent += n as u64;
                    counters.sent(n);
                    inflight_ops += n as u64;
                    inflight.push(async move { (n, started, pending.await) });
                }
                Err(e) => {
                    stats.error(&e);
                    broken = true;
                }
            }
        }
        match tokio::time::timeout_at(job.drain_deadline.into(), inflight.next()).await {
            Ok(Some((n, started, result))) => {
                inflight_ops -= n as u64;
                match result {
                    Ok(outcomes) => {
                        let acked = stats.outcomes(n, started, &outcomes);
                        counters.acked(job.map_index, acked);
                    }
                    Err(e) => {
                        stats.error(&e);
                        stats.lost += n as u64;
                        broken = true;
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                // Drain deadline: whatever is still outstanding is lost.
                stats.lost += inflight_ops;
                break;
            }
        }
    }
}

/// Reads a subscription's updates until told to stop, measuring
/// write-to-delivery latency from the clock reading in each value.
async fn subscriber(
    mut sub: Subscription,
    hist: Histogram<u64>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> SubscriberStats {
    let mut stats = SubscriberStats {
        hist,
        delivered: 0,
        unparsed: 0,
        end: None,
    };
    loop {
        tokio::select! {
            biased;
            change = sub.next() => match change {
                Some(change) => {
                    let now = now_micros();
                    stats.delivered += 1;
                    live.delivered.fetch_add(1, Ordering::Relaxed);
                    match change.record.value.as_ref().and_then(value_stamp) {
                        Some(sent) => record(
                            &mut stats.hist,
                            Duration::from_micros(now.saturating_sub(sent)),
                        ),
                        None => stats.unparsed += 1,
                    }
                }
                None => {
                    stats.end = sub.end_reason().cloned();
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    stats
}

/// Waits until the subscribers received `expected` updates, nothing came
/// for a second, or `limit` passed.
async fn wait_for_deliveries(live: &Live, expected: u64, limit: Duration) {
    let give_up = Instant::now() + limit;
    let mut last = live.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let now = live.delivered.load(Ordering::Relaxed);
        if now >= expected || Instant::now() >= give_up {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= Duration::from_secs(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Samples the server's memory every 250 ms and prints a progress line
/// every second (unless `--quiet`); returns the largest sample when told
/// to stop.
fn spawn_progress(
    args: &Args,
    live: Arc<Live>,
    start: Instant,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<Option<u64>>) {
    let (tx, mut rx) = watch::channel(false);
    let pid = args.server_pid;
    let quiet = args.quiet;
    let handle = tokio::spawn(async move {
        let mut peak = pid.and_then(rss_kib);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut ticks = 0u64;
        let mut last_acked = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = rx.changed() => return peak,
            }
            let rss = pid.and_then(rss_kib);
            peak = peak.max(rss);
            ticks += 1;
            if ticks % 4 != 0 || quiet {
                continue;
            }
            let acked = live.acked.load(Ordering::Relaxed);
            let sent = live.sent.load(Ordering::Relaxed);
            eprintln!(
                "[loadgen {:>5.1}s] acked {acked} ops ({:.0}/s now), outstanding {}, delivered {}, problems {}{}",
                start.elapsed().as_secs_f64(),
                acked.saturating_sub(last_acked) as f64,
                sent.saturating_sub(acked),
                live.delivered.load(Ordering::Relaxed),
                live.problems.load(Ordering::Relaxed),
                rss.map_or_else(String::new, |kib| format!(
                    ", server RSS {}",
                    human_kib(kib)
                )),
            );
            last_acked = acked;
        }
    });
    (tx, handle)
}

/// VmRSS of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
