//! The admin HTTP API under `/api`: operator login, short-lived admin tokens
//! with explicit capabilities, and JWT verification key management that is
//! durable and takes effect without a restart.
//!
//! Endpoints (JSON; errors are `{"error": "<stable code>", ...}`):
//!
//! | Route | Capability |
//! |---|---|
//! | `POST /api/auth/login` | none: user name and password |
//! | `GET /api/admin/keys` | `keys.admin` |
//! | `POST /api/admin/keys` | `keys.admin` |
//! | `POST /api/admin/keys/rotate` | `keys.admin` |
//! | `POST /api/admin/keys/{kid}/deactivate` | `keys.admin` |
//! | `GET /api/admin/status` | `cluster.read` |
//! | `GET /api/admin/maps` | `data.read` |
//!
//! Main types: [`AdminConfig`] enables the API (`ServerBuilder::admin`),
//! [`Capability`] names what a token allows. Inside: `AdminTokens` mints and
//! verifies admin tokens, `RequireCapabilityLayer` guards the routes,
//! `KeyRegistry` keeps the verification keys.
//!
//! **Invariant:** admin tokens are HS256 tokens signed with the admin key
//! (32 random bytes kept in the store's metadata) and carry the audience
//! `topgun-admin`. The admin API verifies only with that key, so no
//! client-session token, whatever its `roles`, is an admin token; the client
//! verifier never holds the admin key and refuses the admin audience, so no
//! admin token opens a session.
//!
//! **Invariant:** `RequireCapabilityLayer` is the only place that checks
//! admin tokens and capabilities; every route but login is behind it.
//!
//! Not here: the RBAC policy endpoints (`policy.admin`) come with the policy
//! engine; they mount behind the same layer.

mod capability;
mod config;
mod error;
mod guard;
mod handlers;
mod keys;
mod password;
mod policies;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use topgun_core::NodeId;

use crate::auth::AuthRateLimiter;
use crate::metrics::Metrics;
use crate::pipeline::Engine;

pub use capability::Capability;
pub use config::{
    AdminConfig, AdminConfigError, DEFAULT_ADMIN_USERNAME, DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL,
    MIN_PASSWORD_CHARS, check_password,
};
pub(crate) use keys::KeyRegistry;
pub use keys::{ENV_KID, StoredKeysError};
pub use tokens::ADMIN_AUDIENCE;
pub(crate) use tokens::unix_now;

use guard::{Authorize, RequireCapabilityLayer};
use password::Credentials;
use tokens::AdminTokens;

/// Everything the admin endpoints share.
#[derive(Debug)]
pub(crate) struct AdminApi {
    credentials: Credentials,
    tokens: Arc<AdminTokens>,
    limiter: AuthRateLimiter,
    /// `None` when the server runs without auth: there are no keys.
    keys: Option<Arc<KeyRegistry>>,
    node: NodeId,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    /// The durable RBAC policies, when the server runs its built-in RBAC.
    policies: Option<Arc<crate::rbac::ManagedPolicies>>,
}

/// What the admin API is built from.
pub(crate) struct AdminParts {
    pub(crate) keys: Option<Arc<KeyRegistry>>,
    pub(crate) node: NodeId,
    pub(crate) engine: Arc<Engine>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) policies: Option<Arc<crate::rbac::ManagedPolicies>>,
}

impl AdminApi {
    /// Checks `config`, loads (or makes) the admin key, and builds the API.
    pub(crate) async fn new(
        config: AdminConfig,
        auth_disabled: bool,
        parts: AdminParts,
    ) -> Result<Self, crate::ServerError> {
        config.check(auth_disabled)?;
        if auth_disabled {
            tracing::warn!(
                "the admin API is enabled on a server running WITHOUT authentication; its password is not checked for strength"
            );
        }
        let tokens = AdminTokens::load(parts.engine.store.as_ref(), config.token_ttl).await?;
        tracing::info!(
            user = %config.username,
            token_ttl_secs = config.token_ttl.as_secs(),
            "admin API enabled under /api"
        );
        Ok(AdminApi {
            credentials: Credentials::new(&config.username, &config.password),
            tokens: Arc::new(tokens),
            limiter: AuthRateLimiter::new(config.login_rate_limit),
            keys: parts.keys,
            node: parts.node,
            engine: parts.engine,
            metrics: parts.metrics,
            policies: parts.policies,
        })
    }
}

/// The `/api` routes: the admin API, or `404 admin_api_disabled` on every
/// `/api` path when it is not configured.
pub(crate) fn router<S>(api: Option<Arc<AdminApi>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use handlers::*;
    let Some(api) = api else {
        return Router::new()
            .route("/api", any(disabled))
            .route("/api/{*rest}", any(disabled));
    };
    let authority: Arc<dyn Authorize> = api.tokens.clone();
    let guard = |cap| RequireCapabilityLayer::new(Arc::clone(&authority), cap);
    let keys = Router::new()
        .route(
            "/api/admin/keys",
            get(list_keys).post(add_key).fallback(method_not_allowed),
        )
        .route(
            "/api/admin/keys/rotate",
            post(rotate_keys).fallback(method_not_allowed),
        )
        .route(
            "/api/admin/keys/{kid}/deactivate",
            post(deactivate_key).fallback(method_not_allowed),
        )
        .route_layer(guard(Capability::KeysAdmin));
    let policy_routes = Router::new()
        .route(
            "/api/admin/policies",
            get(policies::list)
                .post(policies::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/api/admin/policies/dry-run",
            post(policies::dry_run).fallback(method_not_allowed),
        )
        .route(
            "/api/admin/policies/{id}",
            get(policies::get)
                .put(policies::replace)
                .delete(policies::delete)
                .fallback(method_not_allowed),
        )
        .route_layer(guard(Capability::PolicyAdmin));
    let cluster = Router::new()
        .route(
            "/api/admin/status",
            get(status).fallback(method_not_allowed),
        )
        .route_layer(guard(Capability::ClusterRead));
    let data = Router::new()
        .route("/api/admin/maps", get(maps).fallback(method_not_allowed))
        .route_layer(guard(Capability::DataRead));
    Router::new()
        .route("/api/auth/login", post(login).fallback(method_not_allowed))
        .merge(keys)
        .merge(policy_routes)
        .merge(cluster)
        .merge(data)
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .with_state(api)
}

#[cfg(test)]
mod tests;
