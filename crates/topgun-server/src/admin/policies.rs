//! The RBAC policy endpoints (capability `policy.admin`): list, create,
//! read, replace and delete policies, and a dry run that says whether a
//! principal would be allowed an operation and which policies decide it.
//! Changes are validated as a whole set and persisted before they apply
//! (see `rbac::ManagedPolicies`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AdminApi;
use super::error::ApiError;
use super::handlers::ApiJson;
use crate::authz::{Action, Principal};
use crate::rbac::{AccessRequest, ManageError, ManagedPolicies, Operation, PolicyDef};

fn managed(api: &AdminApi) -> Result<&Arc<ManagedPolicies>, ApiError> {
    api.policies.as_ref().ok_or(ApiError::RbacDisabled)
}

fn manage_error(e: ManageError) -> ApiError {
    match e {
        ManageError::Exists(id) => ApiError::DuplicatePolicy { id },
        ManageError::NotFound(id) => ApiError::UnknownPolicy { id },
        ManageError::Invalid(e) => ApiError::InvalidPolicy {
            detail: e.to_string(),
        },
        ManageError::File(e) => ApiError::InvalidPolicy {
            detail: e.to_string(),
        },
        ManageError::Store(_) | ManageError::Corrupt(_) => ApiError::Storage,
    }
}

/// `GET /api/admin/policies`.
pub(crate) async fn list(State(api): State<Arc<AdminApi>>) -> Result<Response, ApiError> {
    let set = managed(&api)?.current();
    Ok(Json(json!({ "policies": set.defs() })).into_response())
}

/// `POST /api/admin/policies`.
pub(crate) async fn create(
    State(api): State<Arc<AdminApi>>,
    ApiJson(def): ApiJson<PolicyDef>,
) -> Result<Response, ApiError> {
    let id = def.id.clone();
    managed(&api)?.create(def).await.map_err(manage_error)?;
    tracing::info!(policy = %id, "policy created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `GET /api/admin/policies/{id}`.
pub(crate) async fn get(
    State(api): State<Arc<AdminApi>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let set = managed(&api)?.current();
    let def = set
        .get(&id)
        .ok_or(ApiError::UnknownPolicy { id: id.clone() })?;
    Ok(Json(json!(def)).into_response())
}

/// `PUT /api/admin/policies/{id}`: the body's `id`, if given, must match.
pub(crate) async fn replace(
    State(api): State<Arc<AdminApi>>,
    Path(id): Path<String>,
    ApiJson(def): ApiJson<PolicyDef>,
) -> Result<Response, ApiError> {
    if def.id != id {
        return Err(ApiError::InvalidPolicy {
            detail: format!("the body's id {:?} differs from the path's {id:?}", def.id),
        });
    }
    managed(&api)?.replace(def).await.map_err(manage_error)?;
    tracing::info!(policy = %id, "policy replaced");
    Ok(Json(json!({ "id": id })).into_response())
}

/// `DELETE /api/admin/policies/{id}`.
pub(crate) async fn delete(
    State(api): State<Arc<AdminApi>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    managed(&api)?.delete(&id).await.map_err(manage_error)?;
    tracing::info!(policy = %id, "policy deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The principal and request of a dry run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRun {
    /// The principal's `sub`.
    sub: String,
    /// Its roles.
    #[serde(default)]
    roles: Vec<String>,
    /// Its other claims (for `{claims.x}` patterns and `auth.x`).
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    /// `read`, `write` or `remove`.
    operation: Operation,
    /// The map.
    map: String,
    /// The key (omit for a map-wide question such as a subscription).
    #[serde(default)]
    key: Option<String>,
    /// The stored value (JSON), for conditions over `old`.
    #[serde(default)]
    old: Option<serde_json::Value>,
    /// The proposed value (JSON), for conditions over `new`.
    #[serde(default)]
    new: Option<serde_json::Value>,
}

fn to_value(v: serde_json::Value) -> Result<topgun_core::Value, ApiError> {
    use topgun_core::Value;
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().ok_or(ApiError::InvalidJson {
                detail: format!("number {n} is out of range"),
            })?),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => {
            Value::Array(a.into_iter().map(to_value).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(o) => Value::Map(
            o.into_iter()
                .map(|(k, v)| Ok((k, to_value(v)?)))
                .collect::<Result<_, ApiError>>()?,
        ),
    })
}

/// `POST /api/admin/policies/dry-run`: would this principal be allowed?
pub(crate) async fn dry_run(
    State(api): State<Arc<AdminApi>>,
    ApiJson(q): ApiJson<DryRun>,
) -> Result<Response, ApiError> {
    let policies = managed(&api)?;
    let principal = Principal {
        sub: q.sub,
        roles: q.roles,
        claims: q.claims,
        authenticated: true,
    };
    let old = q.old.map(to_value).transpose()?;
    let new = q.new.map(to_value).transpose()?;
    let mut req = AccessRequest::new(&principal, Action::from(q.operation), &q.map)
        .old(old.as_ref())
        .new_value(new.as_ref());
    if let Some(key) = q.key.as_deref() {
        req = req.key(key);
    }
    let verdict = policies.evaluate(&req);
    let enforced = !policies.is_open();
    Ok(Json(json!({
        "allowed": if enforced { verdict.allowed } else { !crate::authz::is_reserved_map(&q.map) },
        "enforced": enforced,
        "deciding_policies": verdict.deciding,
        "per_record": verdict.per_record,
        "reason": format!("{:?}", verdict.reason),
        "fields": verdict.fields.as_ref().map(|f| json!({"allow": f.allow(), "deny": f.deny()})),
    }))
    .into_response())
}
