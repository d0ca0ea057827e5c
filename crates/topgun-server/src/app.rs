//! What every session shares: the engine, live queries, the authorization
//! stack, the auth mode, limits, metrics and the shutdown signal (and the
//! admin API, which the HTTP routes serve).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::BoxCloneSyncService;

use crate::admin::AdminApi;
use crate::auth::{AuthRateLimiter, Verifier};
use crate::authz::Policy;
use crate::config::Limits;
use crate::live::LiveQueries;
use crate::metrics::Metrics;
use crate::pipeline::{Engine, WriteRequest, WriteResponse};

/// How sessions authenticate.
#[derive(Debug)]
pub(crate) enum AuthMode {
    /// `TOPGUN_NO_AUTH=1`: every `AUTH` is accepted as the anonymous
    /// principal.
    NoAuth,
    /// JWT verification with per-address rate limiting of failures.
    Jwt {
        verifier: Arc<Verifier>,
        limiter: AuthRateLimiter,
    },
}

/// The write path as one cloneable service: authorization layer over the
/// pipeline.
pub(crate) type WriteStack = BoxCloneSyncService<WriteRequest, WriteResponse, Infallible>;

/// Shared state of one server.
#[derive(Debug)]
pub(crate) struct App {
    /// The admin API, when configured.
    pub(crate) admin: Option<Arc<AdminApi>>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) live: Arc<LiveQueries>,
    pub(crate) policy: Arc<dyn Policy>,
    pub(crate) writes: WriteStack,
    pub(crate) auth: AuthMode,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) next_conn_id: AtomicU64,
}
