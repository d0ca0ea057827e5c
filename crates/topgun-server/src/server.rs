//! The embedding API: `ServerBuilder` -> `Server` -> `start()`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use topgun_server::{NetworkConfig, ServerBuilder, StorageConfig};
//! use topgun_server::auth::AuthConfig;
//!
//! let auth = AuthConfig::from_jwt_secret("a-secret-of-at-least-32-bytes-long!!")?.build();
//! let server = ServerBuilder::new()
//!     .network(NetworkConfig { port: 8090, ..Default::default() })
//!     .storage(StorageConfig::sled("./topgun-data"))
//!     .auth(auth)
//!     .build()
//!     .await?;
//! server.start().await?;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use topgun_core::NodeId;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::admin::{
    AdminApi, AdminConfig, AdminConfigError, AdminParts, KeyRegistry, StoredKeysError,
};
use crate::app::{App, AuthMode};
use crate::auth::{AuthConfig, AuthRateLimiter, RateLimitConfig};
use crate::authz::{AllowAll, AllowAuthenticated, AuthorizeLayer, Policy};
use crate::config::{Limits, NetworkConfig, TimestampPolicy, TlsConfig};
use crate::listener::Acceptor;
use crate::live::LiveQueries;
use crate::metrics::Metrics;
use crate::pipeline::{CommitListener, Engine, EngineParts, WriteService};
use crate::rbac::ManagedPolicies;
use crate::state::{Clock, LoadError, Maps, SystemClock};
use crate::store::{MemoryStore, SledConfig, SledStore, Store, StoreError, StoreOp};
use crate::tls::TlsError;

/// Where the server keeps its data.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// sled in a directory (the default, `./topgun-data`).
    Sled(SledConfig),
    /// In memory only: nothing survives a restart (tests, benchmarks).
    Memory,
    /// A store supplied by the embedding application.
    Custom(Arc<dyn Store>),
}

impl StorageConfig {
    /// sled in `dir`, with the default settings.
    pub fn sled(dir: impl Into<PathBuf>) -> Self {
        StorageConfig::Sled(SledConfig::new(dir))
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::sled("./topgun-data")
    }
}

/// Why the server could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Neither `auth(..)` nor `danger_disable_auth()` was called.
    #[error(
        "authentication is not configured: set JWT_SECRET (an HMAC secret of at least 32 bytes or a PEM public key), or run without auth only in development with TOPGUN_NO_AUTH=1"
    )]
    AuthNotConfigured,
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened or used.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The stored state could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The RBAC policies could not be loaded.
    #[error("RBAC policies: {0}")]
    Policies(#[from] crate::rbac::ManageError),
    /// A policy file was given but no RBAC runs: auth is disabled, or the
    /// embedding application supplied its own policy.
    #[error(
        "a policy file needs JWT authentication and the built-in RBAC policy (it cannot apply with TOPGUN_NO_AUTH=1 or a custom policy)"
    )]
    PolicyFileUnused,
    /// The server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin API configuration is refused (a weak password, say).
    #[error(transparent)]
    Admin(#[from] AdminConfigError),
    /// No usable admin signing key could be made.
    #[error("admin API: cannot make an admin signing key")]
    AdminSigningKey,
    /// The stored JWT verification keys (changed through the admin API)
    /// could not be loaded.
    #[error(transparent)]
    StoredKeys(#[from] StoredKeysError),
}

enum AuthSetting {
    Unset,
    Jwt(AuthConfig),
    Disabled,
}

/// Builds a [`Server`].
pub struct ServerBuilder {
    network: NetworkConfig,
    tls: Option<TlsConfig>,
    storage: StorageConfig,
    auth: AuthSetting,
    auth_rate_limit: RateLimitConfig,
    limits: Limits,
    timestamps: TimestampPolicy,
    policy: Option<Arc<dyn Policy>>,
    policy_file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    drain_timeout: Duration,
    admin: Option<AdminConfig>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("network", &self.network)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Defaults: port 8090 on all interfaces, no TLS, sled in
    /// `./topgun-data`, auth NOT configured (build fails until it is).
    pub fn new() -> Self {
        ServerBuilder {
            network: NetworkConfig::default(),
            tls: None,
            storage: StorageConfig::default(),
            auth: AuthSetting::Unset,
            auth_rate_limit: RateLimitConfig::default(),
            limits: Limits::default(),
            timestamps: TimestampPolicy::default(),
            policy: None,
            policy_file: None,
            clock: Arc::new(SystemClock),
            drain_timeout: Duration::from_secs(10),
            admin: None,
        }
    }

    /// Where to listen.
    pub fn network(mut self, network: NetworkConfig) -> Self {
        self.network = network;
        self
    }

    /// Serve `wss://` and HTTPS directly.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Where to keep data.
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.storage = storage;
        self
    }

    /// Verify client tokens with this configuration.
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = AuthSetting::Jwt(auth);
        self
    }

    /// Accept every client as the anonymous principal. For development
    /// only (`TOPGUN_NO_AUTH=1`); the server logs a warning at start.
    pub fn danger_disable_auth(mut self) -> Self {
        self.auth = AuthSetting::Disabled;
        self
    }

    /// Limits on failed authentication attempts per address.
    pub fn auth_rate_limit(mut self, config: RateLimitConfig) -> Self {
        self.auth_rate_limit = config;
        self
    }

    /// Connection and message limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How client timestamps are treated (re-stamped by default).
    pub fn timestamps(mut self, policy: TimestampPolicy) -> Self {
        self.timestamps = policy;
        self
    }

    /// The authorization policy (default: any authenticated principal may
    /// read and write every non-reserved map).
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// A policy file (JSON or TOML) applied on top of the persisted RBAC
    /// policies at start (config as code; see `rbac::ManagedPolicies`).
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy_file = Some(path.into());
        self
    }

    /// The source of physical time (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long shutdown waits for open sessions to finish.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Enables the admin API under `/api` (without it every `/api` path
    /// answers `404 admin_api_disabled`). `build` refuses a weak password
    /// ([`AdminConfigError`]) unless auth is disabled.
    pub fn admin(mut self, admin: AdminConfig) -> Self {
        self.admin = Some(admin);
        self
    }

    /// Checks the configuration, opens the store, loads the data and binds
    /// the socket.
    pub async fn build(self) -> Result<Server, ServerError> {
        let auth_disabled = match self.auth {
            AuthSetting::Unset => return Err(ServerError::AuthNotConfigured),
            AuthSetting::Disabled => true,
            AuthSetting::Jwt(_) => false,
        };
        // Refused before anything touches the disk.
        if let Some(admin) = &self.admin {
            admin.check(auth_disabled)?;
        }
        let tls = match &self.tls {
            Some(t) => Some(TlsAcceptor::from(crate::tls::server_config(t)?)),
            None => None,
        };
        let store: Arc<dyn Store> = match self.storage {
            StorageConfig::Sled(config) => {
                // Opening sled blocks (file locks, recovery).
                let opened = tokio::task::spawn_blocking(move || SledStore::open(config))
                    .await
                    .map_err(|_| StoreError::WorkerLost { op: StoreOp::Open })??;
                Arc::new(opened)
            }
            StorageConfig::Memory => Arc::new(MemoryStore::new()),
            StorageConfig::Custom(store) => store,
        };
        let node = node_id(store.as_ref()).await?;
        let (auth, default_policy, keys): (AuthMode, Arc<dyn Policy>, _) = match self.auth {
            AuthSetting::Unset => return Err(ServerError::AuthNotConfigured),
            AuthSetting::Disabled => {
                tracing::warn!(
                    "AUTHENTICATION IS DISABLED (TOPGUN_NO_AUTH=1): every client can read and write every map. Never run this in production."
                );
                (AuthMode::NoAuth, Arc::new(AllowAll), None)
            }
            AuthSetting::Jwt(config) => {
                // The configured keys combined with the keys and states the
                // admin API stored.
                let (verifier, keys) =
                    KeyRegistry::open(Arc::clone(&store), config, crate::admin::unix_now()).await?;
                (
                    AuthMode::Jwt {
                        verifier,
                        limiter: AuthRateLimiter::new(self.auth_rate_limit),
                    },
                    Arc::new(AllowAuthenticated),
                    Some(Arc::new(keys)),
                )
            }
        };
        // RBAC: the durable policy set (with the policy file applied), unless
        // the embedding application supplied its own policy.
        let managed = match (&self.policy, matches!(auth, AuthMode::Jwt { .. })) {
            (None, true) => Some(Arc::new(
                ManagedPolicies::load(Arc::clone(&store), self.policy_file.as_deref()).await?,
            )),
            _ if self.policy_file.is_some() => return Err(ServerError::PolicyFileUnused),
            _ => None,
        };
        let policy: Arc<dyn Policy> = match (self.policy, &managed) {
            (Some(p), _) => p,
            (None, Some(m)) => Arc::clone(m) as Arc<dyn Policy>,
            (None, None) => default_policy,
        };
        let maps = Maps::load(store.as_ref()).await?;
        let addr = self.network.socket_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;

        let metrics = Arc::new(Metrics::default());
        let live = Arc::new(
            LiveQueries::new(
                Arc::clone(&policy),
                self.limits.max_subscriptions,
                Arc::clone(&metrics),
            )
            .with_clock(Arc::clone(&self.clock)),
        );
        let listeners: Vec<Arc<dyn CommitListener>> = vec![live.clone()];
        let engine = Arc::new(Engine::new(
            maps,
            node,
            EngineParts {
                clock: Arc::clone(&self.clock),
                store: Arc::clone(&store),
                ts_policy: self.timestamps,
                limits: self.limits.clone(),
                metrics: Arc::clone(&metrics),
                listeners,
            },
        ));
        let writes = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(AuthorizeLayer::new(
                    Arc::clone(&policy),
                    Some(Arc::clone(&engine) as Arc<dyn crate::authz::RecordLookup>),
                ))
                .service(WriteService {
                    engine: Arc::clone(&engine),
                }),
        );
        let admin = match self.admin {
            None => None,
            Some(config) => Some(Arc::new(
                AdminApi::new(
                    config,
                    auth_disabled,
                    AdminParts {
                        keys,
                        node,
                        engine: Arc::clone(&engine),
                        metrics: Arc::clone(&metrics),
                        policies: managed.clone(),
                    },
                )
                .await?,
            )),
        };
        let shutdown = CancellationToken::new();
        let app = Arc::new(App {
            admin,
            engine,
            live,
            policy,
            writes,
            auth,
            limits: self.limits.clone(),
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
            tracker: TaskTracker::new(),
            next_conn_id: AtomicU64::new(1),
        });
        Ok(Server {
            app,
            listener,
            local_addr,
            tls,
            store,
            drain_timeout: self.drain_timeout,
        })
    }
}

/// The node id: stored in the store's metadata on first start, so the node
/// keeps it across restarts (timestamps issued by two nodes must never
/// collide).
async fn node_id(store: &dyn Store) -> Result<NodeId, StoreError> {
    const KEY: &str = "node_id";
    if let Some(bytes) = store.get_meta(KEY).await? {
        if let Ok(b) = <[u8; 8]>::try_from(bytes.as_slice()) {
            return Ok(NodeId(u64::from_le_bytes(b)));
        }
    }
    let id = rand::random::<u64>();
    store.put_meta(KEY, id.to_le_bytes().to_vec()).await?;
    Ok(NodeId(id))
}

/// Stops a running server: stop accepting, drain sessions, flush storage.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    token: CancellationToken,
}

impl ShutdownHandle {
    /// Begins a graceful shutdown; `Server::start` returns when it is done.
    pub fn shutdown(&self) {
        self.token.cancel();
    }
}

/// A built server, bound to its address, not yet serving.
pub struct Server {
    app: Arc<App>,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    store: Arc<dyn Store>,
    drain_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that shuts the server down gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            token: self.app.shutdown.clone(),
        }
    }

    /// The server's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.app.metrics)
    }

    /// Serves until the shutdown handle fires, then stops accepting, lets
    /// sessions answer what they accepted and close with 1001, waits up to
    /// the drain timeout, and flushes and closes the store.
    pub async fn start(self) -> Result<(), ServerError> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        tracing::info!(addr = %self.local_addr, "listening on {scheme}://{}", self.local_addr);
        let acceptor = Acceptor {
            listener: self.listener,
            tls: self.tls,
            router: crate::http::router(Arc::clone(&self.app)),
            limits: self.app.limits.clone(),
            metrics: Arc::clone(&self.app.metrics),
            shutdown: self.app.shutdown.clone(),
            tracker: self.app.tracker.clone(),
        };
        // Records leave limited live queries when their TTL passes, which
        // no commit announces: check once a second.
        let expiry = {
            let app = Arc::clone(&self.app);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        () = app.shutdown.cancelled() => break,
                        _ = tick.tick() => app.live.expire(&app.engine.maps, app.engine.now_millis()),
                    }
                }
            })
        };
        acceptor.run().await;
        expiry.abort();
        tracing::info!("shutting down: draining sessions");
        self.app.tracker.close();
        if tokio::time::timeout(self.drain_timeout, self.app.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout passed with sessions still open");
        }
        self.store.flush_and_close().await?;
        tracing::info!("storage flushed; stopped");
        Ok(())
    }

    /// Starts serving on a background task; returns the address, a
    /// shutdown handle and the task.
    pub fn spawn(self) -> RunningServer {
        let addr = self.local_addr;
        let handle = self.shutdown_handle();
        let metrics = self.metrics();
        let task = tokio::spawn(self.start());
        RunningServer {
            addr,
            handle,
            metrics,
            task,
        }
    }
}

/// A server serving on a background task.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shuts it down.
    pub handle: ShutdownHandle,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Shuts down gracefully and waits until storage is flushed.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.handle.shutdown();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }
}
