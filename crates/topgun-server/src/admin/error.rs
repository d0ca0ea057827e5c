//! `ApiError`: every error an admin endpoint answers, as JSON with a stable
//! `error` code and a fixed status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Capability;

/// An admin endpoint's refusal. The `error` code of each variant is stable:
/// clients and tests match on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 404 `admin_api_disabled`: no admin password is configured.
    Disabled,
    /// 404 `not_found`: no such admin endpoint.
    NotFound,
    /// 405 `method_not_allowed`.
    MethodNotAllowed,
    /// 400 `invalid_json`: the body is not the JSON the endpoint expects.
    InvalidJson {
        /// What the JSON decoder said.
        detail: String,
    },
    /// 401 `invalid_credentials`: wrong user name or password.
    InvalidCredentials,
    /// 429 `rate_limited`: too many failed logins from this address.
    RateLimited {
        /// Seconds until logins are accepted again.
        retry_after_secs: u64,
    },
    /// 401 `unauthenticated`: no admin token, or not a valid one.
    Unauthenticated,
    /// 403 `missing_capability`: the token lacks the endpoint's capability.
    MissingCapability(Capability),
    /// 400 `unknown_capability`: a login asked for a capability that does
    /// not exist.
    UnknownCapability {
        /// The name asked for.
        name: String,
    },
    /// 400 `invalid_kid`: a key id that is empty, too long, or not printable
    /// ASCII.
    InvalidKid,
    /// 400 `invalid_key`: the key material is unusable.
    InvalidKey {
        /// Why.
        detail: String,
    },
    /// 409 `duplicate_kid`: a key with this kid exists.
    DuplicateKid {
        /// The kid.
        kid: String,
    },
    /// 404 `unknown_kid`: no key with this kid exists.
    UnknownKid {
        /// The kid.
        kid: String,
    },
    /// 409 `key_not_active`: only an active key can be retired.
    KeyNotActive {
        /// The kid.
        kid: String,
        /// Its state.
        state: &'static str,
    },
    /// 409 `jwt_auth_disabled`: the server runs without auth, so it has no
    /// verification keys to manage.
    JwtAuthDisabled,
    /// 409 `rbac_disabled`: the server does not run its built-in RBAC (no
    /// auth, or an embedding application's own policy).
    RbacDisabled,
    /// 400 `invalid_policy`: the policy (or the set it would make) is
    /// invalid; nothing changed.
    InvalidPolicy {
        /// Why, naming the policy and the position.
        detail: String,
    },
    /// 409 `duplicate_policy`: a policy with this id exists.
    DuplicatePolicy {
        /// The id.
        id: String,
    },
    /// 404 `unknown_policy`: no policy has this id.
    UnknownPolicy {
        /// The id.
        id: String,
    },
    /// 503 `storage_failed`: the change could not be made durable, so it was
    /// not applied.
    Storage,
    /// 500 `internal`.
    Internal,
}

impl ApiError {
    /// The stable code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "admin_api_disabled",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidJson { .. } => "invalid_json",
            Self::InvalidCredentials => "invalid_credentials",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthenticated => "unauthenticated",
            Self::MissingCapability(_) => "missing_capability",
            Self::UnknownCapability { .. } => "unknown_capability",
            Self::InvalidKid => "invalid_kid",
            Self::InvalidKey { .. } => "invalid_key",
            Self::DuplicateKid { .. } => "duplicate_kid",
            Self::UnknownKid { .. } => "unknown_kid",
            Self::KeyNotActive { .. } => "key_not_active",
            Self::JwtAuthDisabled => "jwt_auth_disabled",
            Self::RbacDisabled => "rbac_disabled",
            Self::InvalidPolicy { .. } => "invalid_policy",
            Self::DuplicatePolicy { .. } => "duplicate_policy",
            Self::UnknownPolicy { .. } => "unknown_policy",
            Self::Storage => "storage_failed",
            Self::Internal => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Disabled
            | Self::NotFound
            | Self::UnknownKid { .. }
            | Self::UnknownPolicy { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidJson { .. }
            | Self::UnknownCapability { .. }
            | Self::InvalidKid
            | Self::InvalidKey { .. }
            | Self::InvalidPolicy { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials | Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MissingCapability(_) => StatusCode::FORBIDDEN,
            Self::DuplicateKid { .. }
            | Self::KeyNotActive { .. }
            | Self::JwtAuthDisabled
            | Self::RbacDisabled
            | Self::DuplicatePolicy { .. } => StatusCode::CONFLICT,
            Self::Storage => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({ "error": self.code() });
        let extra = match self {
            Self::InvalidJson { detail }
            | Self::InvalidKey { detail }
            | Self::InvalidPolicy { detail } => {
                json!({ "detail": detail })
            }
            Self::RateLimited { retry_after_secs } => {
                json!({ "retry_after_secs": retry_after_secs })
            }
            Self::MissingCapability(cap) => json!({ "capability": cap.as_str() }),
            Self::UnknownCapability { name } => json!({ "capability": name }),
            Self::DuplicateKid { kid } | Self::UnknownKid { kid } => json!({ "kid": kid }),
            Self::DuplicatePolicy { id } | Self::UnknownPolicy { id } => json!({ "id": id }),
            Self::KeyNotActive { kid, state } => json!({ "kid": kid, "state": state }),
            _ => Value::Null,
        };
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthenticated => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"topgun-admin\""),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
