//! The admin endpoints. Every handler but `login` runs behind
//! `RequireCapabilityLayer`, so it finds a verified [`AdminPrincipal`] with
//! the route's capability and only does its own work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::keys::NewKey;
use super::tokens::unix_now;
use super::{AdminApi, Capability};

/// `axum::Json` with its rejection answered as `400 invalid_json`.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::InvalidJson {
                detail: rejection_detail(&rejection),
            }),
        }
    }
}

fn rejection_detail(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected `Content-Type: application/json`".to_owned()
        }
        other => other.body_text(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
    /// A subset of the admin's capabilities (least privilege); all of
    /// them when absent.
    #[serde(default)]
    capabilities: Option<Vec<String>>,
}

/// `POST /api/auth/login`.
pub(crate) async fn login(
    State(api): State<Arc<AdminApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let ip = peer.ip();
    if let Err(limited) = api.limiter.check(ip, Instant::now()) {
        let secs =
            limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
        return Err(ApiError::RateLimited {
            retry_after_secs: secs.max(1),
        });
    }
    if !api.credentials.matches(&req.username, &req.password) {
        api.limiter.record_failure(ip, Instant::now());
        tracing::warn!(%peer, "admin login failed");
        return Err(ApiError::InvalidCredentials);
    }
    let caps = match req.capabilities {
        None => Capability::ALL.to_vec(),
        Some(names) => {
            let mut caps = names
                .iter()
                .map(|name| {
                    Capability::from_name(name)
                        .ok_or_else(|| ApiError::UnknownCapability { name: name.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            caps.sort();
            caps.dedup();
            caps
        }
    };
    let minted = api
        .tokens
        .mint(&req.username, &caps, unix_now())
        .map_err(|e| {
            tracing::error!(error = %e, "minting an admin token failed");
            ApiError::Internal
        })?;
    tracing::info!(%peer, user = %req.username, caps = ?caps.iter().map(|c| c.as_str()).collect::<Vec<_>>(), "admin login");
    Ok(Json(json!({
        "token": minted.token,
        "token_type": "Bearer",
        "expires_at": minted.expires_at,
        "capabilities": caps.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/admin/keys` (`keys.admin`).
pub(crate) async fn list_keys(State(api): State<Arc<AdminApi>>) -> Result<Response, ApiError> {
    let keys = api.keys.as_ref().ok_or(ApiError::JwtAuthDisabled)?;
    Ok(Json(keys.list().await).into_response())
}

/// `POST /api/admin/keys` (`keys.admin`).
pub(crate) async fn add_key(
    State(api): State<Arc<AdminApi>>,
    ApiJson(new): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    let keys = api.keys.as_ref().ok_or(ApiError::JwtAuthDisabled)?;
    let info = keys.add(new, unix_now()).await?;
    tracing::info!(?info, "verification key added");
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    new: NewKey,
    retire: String,
}

/// `POST /api/admin/keys/rotate` (`keys.admin`).
pub(crate) async fn rotate_keys(
    State(api): State<Arc<AdminApi>>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Response, ApiError> {
    let keys = api.keys.as_ref().ok_or(ApiError::JwtAuthDisabled)?;
    let (added, retired) = keys.rotate(req.new, &req.retire, unix_now()).await?;
    tracing::info!(?added, ?retired, "verification keys rotated");
    Ok(Json(json!({ "added": added, "retired": retired })).into_response())
}

/// `POST /api/admin/keys/{kid}/deactivate` (`keys.admin`).
pub(crate) async fn deactivate_key(
    State(api): State<Arc<AdminApi>>,
    Path(kid): Path<String>,
) -> Result<Response, ApiError> {
    let keys = api.keys.as_ref().ok_or(ApiError::JwtAuthDisabled)?;
    let info = keys.deactivate(&kid, unix_now()).await?;
    tracing::info!(?info, "verification key deactivated");
    Ok(Json(info).into_response())
}

/// `GET /api/admin/status` (`cluster.read`).
pub(crate) async fn status(State(api): State<Arc<AdminApi>>) -> Response {
    let sessions = api
        .metrics
        .sessions_open
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({
        "node_id": format!("{:016x}", api.node.0),
        "healthy": api.engine.is_healthy(),
        "sessions_open": sessions,
        "maps": api.engine.maps.len(),
        "auth": if api.keys.is_some() { "jwt" } else { "none" },
    }))
    .into_response()
}

/// `GET /api/admin/maps` (`data.read`): the names of the maps that hold
/// records.
pub(crate) async fn maps(State(api): State<Arc<AdminApi>>) -> Result<Response, ApiError> {
    let mut maps = api.engine.store.list_maps().await.map_err(|e| {
        tracing::error!(error = %e, "listing maps failed");
        ApiError::Storage
    })?;
    maps.sort();
    Ok(
        Json(json!({ "maps": maps.into_iter().map(Value::String).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// Every `/api` path while the admin API is disabled.
pub(crate) async fn disabled() -> ApiError {
    ApiError::Disabled
}

/// An `/api` path that is no endpoint.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known endpoint called with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
