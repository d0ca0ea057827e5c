//! The `topgun-server` binary: configured by flags and environment
//! variables (`topgun-server --help` lists every one).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use topgun_server::admin::{AdminConfig, DEFAULT_ADMIN_USERNAME, DEFAULT_TOKEN_TTL};
use topgun_server::auth::{AuthConfig, KeySet};
use topgun_server::config::{Limits, NetworkConfig, TimestampPolicy, TlsConfig, TlsVersion};
use topgun_server::{ServerBuilder, StorageConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Storage {
    /// sled in --data-dir (durable).
    Sled,
    /// In memory: nothing survives a restart.
    Memory,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Timestamps {
    /// Replace client timestamps with the server's (default).
    Restamp,
    /// Keep client timestamps within --max-drift-ms of server time.
    BoundedDrift,
}

/// TopGun-RS sync server: WebSocket (and wss:// with TLS) with JWT auth and
/// durable storage.
#[derive(Debug, Parser)]
#[command(name = "topgun-server", version, about, long_about = None)]
struct Args {
    /// Development mode: a random JWT secret is generated and a ready token
    /// for the user `dev` is printed (and, unless TOPGUN_ADMIN_PASSWORD is
    /// set, a random admin password); listens on 127.0.0.1 unless --host is
    /// given. Auth stays on.
    #[arg(long)]
    dev: bool,

    /// Address to listen on [default: 0.0.0.0; 127.0.0.1 with --dev].
    #[arg(long, env = "TOPGUN_HOST")]
    host: Option<IpAddr>,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8090)]
    port: u16,

    /// Storage engine.
    #[arg(long, env = "TOPGUN_STORAGE", value_enum, default_value_t = Storage::Sled)]
    storage: Storage,

    /// Data directory of the sled store.
    #[arg(long, env = "TOPGUN_DATA_DIR", default_value = "./topgun-data")]
    data_dir: PathBuf,

    /// JWT verification key: an HMAC secret of at least 32 bytes (HS256), or
    /// a PEM public key (RS256, ES256, EdDSA; `\n` escapes accepted).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// A JWKS file ({"keys":[...]}) of verification keys selected by `kid`.
    #[arg(long, env = "TOPGUN_JWKS_FILE")]
    jwks_file: Option<PathBuf>,

    /// A key file ({"keys":[{"kid","secret"|"pem","alg"}]}) of verification
    /// keys selected by `kid`.
    #[arg(long, env = "TOPGUN_JWT_KEYS_FILE")]
    jwt_keys_file: Option<PathBuf>,

    /// Required token issuer (`iss`); repeat for several.
    #[arg(long, env = "TOPGUN_JWT_ISSUER", value_delimiter = ',')]
    jwt_issuer: Vec<String>,

    /// Required token audience (`aud`); repeat for several.
    #[arg(long, env = "TOPGUN_JWT_AUDIENCE", value_delimiter = ',')]
    jwt_audience: Vec<String>,

    /// RBAC policy file (JSON or TOML), applied on top of the persisted
    /// policies at start.
    #[arg(long, env = "TOPGUN_POLICY_FILE")]
    policy_file: Option<PathBuf>,

    /// Clock leeway for `exp` and `nbf`, in seconds.
    #[arg(long, env = "TOPGUN_JWT_LEEWAY_SECS", default_value_t = 30)]
    jwt_leeway_secs: u64,

    /// Run WITHOUT authentication (development only; logs a loud warning).
    /// Accepts 1/true.
    #[arg(long, env = "TOPGUN_NO_AUTH", value_parser = parse_flag, default_value = "false")]
    no_auth: bool,

    /// Serve wss:// and HTTPS directly (needs --tls-cert and --tls-key).
    #[arg(long, env = "TOPGUN_TLS_ENABLED", value_parser = parse_flag, default_value = "false")]
    tls: bool,

    /// PEM certificate chain for TLS.
    #[arg(long, env = "TOPGUN_TLS_CERT_PATH")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for TLS (unencrypted, mode 0600).
    #[arg(long, env = "TOPGUN_TLS_KEY_PATH")]
    tls_key: Option<PathBuf>,

    /// PEM CA bundle: when set, clients must present a certificate it
    /// signed (mutual TLS).
    #[arg(long, env = "TOPGUN_TLS_CA_PATH")]
    tls_ca: Option<PathBuf>,

    /// Lowest accepted TLS version: TLSv1.2 or TLSv1.3.
    #[arg(long, env = "TOPGUN_TLS_MIN_VERSION", default_value = "TLSv1.2")]
    tls_min_version: TlsVersion,

    /// Log format.
    #[arg(long, env = "TOPGUN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// How client write timestamps are treated.
    #[arg(long, env = "TOPGUN_TIMESTAMPS", value_enum, default_value_t = Timestamps::Restamp)]
    timestamps: Timestamps,

    /// With --timestamps bounded-drift: how far ahead of server time a
    /// client timestamp may be.
    #[arg(long, env = "TOPGUN_MAX_DRIFT_MS", default_value_t = 5_000)]
    max_drift_ms: u64,

    /// Concurrent connections, all addresses together.
    #[arg(long, env = "TOPGUN_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,

    /// Concurrent connections from one IP address.
    #[arg(long, env = "TOPGUN_MAX_CONNECTIONS_PER_IP", default_value_t = Limits::default().max_connections_per_ip)]
    max_connections_per_ip: usize,

    /// Largest WebSocket frame, in bytes.
    #[arg(long, env = "TOPGUN_MAX_FRAME_BYTES", default_value_t = Limits::default().max_frame_bytes)]
    max_frame_bytes: usize,

    /// Largest WebSocket message, in bytes (at most 16 MiB).
    #[arg(long, env = "TOPGUN_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,

    /// Largest value of one write, in bytes.
    #[arg(long, env = "TOPGUN_MAX_VALUE_BYTES", default_value_t = Limits::default().max_value_bytes)]
    max_value_bytes: usize,

    /// Most ops in one OP_BATCH.
    #[arg(long, env = "TOPGUN_MAX_BATCH_OPS", default_value_t = Limits::default().max_batch_ops)]
    max_batch_ops: usize,

    /// Outbound messages queued per connection before it is closed as a
    /// slow consumer.
    #[arg(long, env = "TOPGUN_OUTBOUND_QUEUE", default_value_t = Limits::default().outbound_queue)]
    outbound_queue: usize,

    /// Sustained ops per second per connection.
    #[arg(long, env = "TOPGUN_OPS_PER_SECOND", default_value_t = Limits::default().ops_per_second)]
    ops_per_second: u32,

    /// Sustained inbound bytes per second per connection.
    #[arg(long, env = "TOPGUN_BYTES_PER_SECOND", default_value_t = Limits::default().bytes_per_second)]
    bytes_per_second: u32,

    /// Seconds a client has to send AUTH after connecting.
    #[arg(long, env = "TOPGUN_AUTH_TIMEOUT_SECS", default_value_t = 10)]
    auth_timeout_secs: u64,

    /// Seconds without inbound traffic before the server pings (a second
    /// period without an answer closes the connection).
    #[arg(long, env = "TOPGUN_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    idle_timeout_secs: u64,

    /// Admin API user name (POST /api/auth/login).
    #[arg(long, env = "TOPGUN_ADMIN_USERNAME", default_value = DEFAULT_ADMIN_USERNAME)]
    admin_username: String,

    /// Admin API password: unset disables the admin API (/api answers 404);
    /// a well-known default or fewer than 12 characters refuses to start
    /// (unless TOPGUN_NO_AUTH=1). Prefer the environment variable.
    #[arg(long, env = "TOPGUN_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,

    /// Lifetime of admin tokens, in seconds (at most 24 h).
    #[arg(long, env = "TOPGUN_ADMIN_TOKEN_TTL_SECS", default_value_t = DEFAULT_TOKEN_TTL.as_secs())]
    admin_token_ttl_secs: u64,
}

fn parse_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected 1/true or 0/false, got `{other}`")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Mints the `--dev` token: HS256, sub `dev`, 24 hours.
fn dev_token(secret: &str) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": "dev",
        "roles": ["ADMIN"],
        "iat": now,
        "exp": now + 24 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing the dev token")
}

fn auth_config(args: &Args, secret: Option<&str>) -> Result<Option<AuthConfig>> {
    let keys = match (secret, &args.jwks_file, &args.jwt_keys_file) {
        (None, None, None) => return Ok(None),
        (Some(s), None, None) => KeySet::from_jwt_secret(s).context("JWT_SECRET is not usable")?,
        (None, Some(path), None) => {
            KeySet::from_jwks_file(path).with_context(|| format!("JWKS file {}", path.display()))?
        }
        (None, None, Some(path)) => {
            KeySet::from_key_file(path).with_context(|| format!("key file {}", path.display()))?
        }
        _ => bail!("give exactly one of JWT_SECRET, --jwks-file and --jwt-keys-file"),
    };
    let mut builder = AuthConfig::builder(keys).leeway(Duration::from_secs(args.jwt_leeway_secs));
    for iss in &args.jwt_issuer {
        builder = builder.issuer(iss.clone());
    }
    for aud in &args.jwt_audience {
        builder = builder.audience(aud.clone());
    }
    Ok(Some(builder.build()))
}

async fn run(args: Args) -> Result<()> {
    let mut dev_secret = None;
    if args.dev {
        use base64::Engine as _;
        let bytes: [u8; 32] = rand::random();
        dev_secret = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    let secret = dev_secret.as_deref().or(args.jwt_secret.as_deref());
    let auth = auth_config(&args, secret)?;
    let mut builder = ServerBuilder::new();
    builder = match (auth, args.no_auth) {
        (Some(_), true) => bail!(
            "TOPGUN_NO_AUTH=1 and a JWT key are both set; unset one of them (auth stays on with the key)"
        ),
        (Some(config), false) => builder.auth(config),
        (None, true) => builder.danger_disable_auth(),
        (None, false) => bail!(
            "JWT_SECRET is not set, so the server refuses to start.\n  \
             Set JWT_SECRET to an HMAC secret of at least 32 bytes, e.g.\n    \
             export JWT_SECRET=\"$(openssl rand -base64 32)\"\n  \
             or to your identity provider's PEM public key (RS256/ES256/EdDSA),\n  \
             or use --jwks-file / --jwt-keys-file.\n  \
             For local development run `topgun-server --dev` (auth on, a token is printed),\n  \
             or TOPGUN_NO_AUTH=1 to disable auth entirely (never in production)."
        ),
    };
    let host = args.host.unwrap_or(if args.dev {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from([0, 0, 0, 0])
    });
    builder = builder.network(NetworkConfig {
        host,
        port: args.port,
    });
    if args.tls {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            bail!(
                "TOPGUN_TLS_ENABLED is set: TOPGUN_TLS_CERT_PATH and TOPGUN_TLS_KEY_PATH are required (cargo xtask certs makes a development pair)"
            );
        };
        let mut tls = TlsConfig::new(cert, key);
        tls.client_ca_path = args.tls_ca.clone();
        tls.min_version = args.tls_min_version;
        builder = builder.tls(tls);
    } else if args.tls_cert.is_some() || args.tls_key.is_some() {
        tracing::warn!(
            "TLS certificate paths are set but TLS is off (set TOPGUN_TLS_ENABLED=true)"
        );
    }
    if let Some(file) = &args.policy_file {
        builder = builder.policy_file(file);
    }
    builder = builder.storage(match args.storage {
        Storage::Sled => StorageConfig::sled(&args.data_dir),
        Storage::Memory => StorageConfig::Memory,
    });
    builder = builder.timestamps(match args.timestamps {
        Timestamps::Restamp => TimestampPolicy::Restamp,
        Timestamps::BoundedDrift => TimestampPolicy::BoundedDrift {
            max_drift: Duration::from_millis(args.max_drift_ms),
        },
    });
    let limits = Limits {
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_frame_bytes: args.max_frame_bytes,
        max_message_bytes: args
            .max_message_bytes
            .min(topgun_protocol::HARD_MAX_MESSAGE_BYTES),
        max_value_bytes: args.max_value_bytes,
        max_batch_ops: args.max_batch_ops,
        outbound_queue: args.outbound_queue,
        ops_per_second: args.ops_per_second,
        bytes_per_second: args.bytes_per_second,
        auth_deadline: Duration::from_secs(args.auth_timeout_secs),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        ..Limits::default()
    };
    builder = builder.limits(limits);
    let mut dev_admin_password = None;
    if args.dev && args.admin_password.is_none() {
        use base64::Engine as _;
        let bytes: [u8; 18] = rand::random();
        dev_admin_password = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    }
    if let Some(password) = dev_admin_password.as_ref().or(args.admin_password.as_ref()) {
        builder = builder.admin(
            AdminConfig::new(password.clone())
                .username(args.admin_username.clone())
                .token_ttl(Duration::from_secs(args.admin_token_ttl_secs)),
        );
    }

    let server = builder.build().await?;
    let addr = server.local_addr();
    let scheme = if args.tls { "wss" } else { "ws" };
    if let Some(secret) = &dev_secret {
        let token = dev_token(secret)?;
        println!("topgun-server (dev mode) listening on {scheme}://{addr}/ws");
        println!("dev token (sub=dev, valid 24 h):");
        println!("{token}");
        println!(
            "connect with the TopGun client using this token, or send {{\"AUTH\":{{\"token\":\"<token>\",\"protocol_version\":1}}}} as the first JSON frame"
        );
        if let Some(password) = &dev_admin_password {
            println!(
                "admin API: POST {}://{addr}/api/auth/login with {{\"username\":\"{}\",\"password\":\"{password}\"}}",
                if args.tls { "https" } else { "http" },
                args.admin_username
            );
        }
    } else {
        println!("topgun-server listening on {scheme}://{addr}/ws");
    }
    let handle = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down gracefully");
        handle.shutdown();
    });
    server.start().await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("topgun-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("topgun-server: {e:#}");
            ExitCode::from(2)
        }
    }
}
