//! HTTP routes: the WebSocket endpoint (`/` and `/ws`), `/health`,
//! `/metrics`, and the admin API under `/api`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use topgun_protocol::{Encoding, SUBPROTOCOL_BINCODE, SUBPROTOCOL_JSON};

use crate::app::App;
use crate::listener::ConnSlot;

/// The read and write buffers of one idle WebSocket connection: small, so
/// that 10,000 idle connections stay cheap (tungstenite's defaults are
/// 128 KiB each).
const WS_BUFFER_BYTES: usize = 4 * 1024;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ws_handler))
        .route("/ws", get(ws_handler))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(crate::admin::router(app.admin.clone()))
        .with_state(app)
}

async fn ws_handler(
    ws: WebSocketUpgrade,
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(slot): Extension<Arc<ConnSlot>>,
) -> Response {
    let limits = &app.limits;
    let ws = ws
        .protocols([SUBPROTOCOL_BINCODE, SUBPROTOCOL_JSON])
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_write_buffer_size(limits.max_message_bytes.saturating_mul(2));
    // No subprotocol offered: JSON, the encoding a shell tool can speak.
    let encoding = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or(Encoding::Json);
    let token = app.tracker.token();
    ws.on_failed_upgrade(move |e| tracing::debug!(%peer, error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            crate::session::run(socket, app, peer, encoding).await;
            drop(slot);
            drop(token);
        })
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.engine.is_healthy() {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"status\":\"ok\"}",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"status\":\"storage_failed\"}",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let stats = app.engine.store.stats();
    let maps = app.engine.maps.len() as u64;
    let extra = [
        (
            "topgun_store_commits_total",
            "Store commits (batches).",
            stats.commits,
        ),
        (
            "topgun_store_ops_total",
            "Writes committed to the store.",
            stats.ops,
        ),
        (
            "topgun_store_groups_total",
            "Group commits (one flush each).",
            stats.groups,
        ),
        ("topgun_maps", "Maps held in memory.", maps),
    ];
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&extra),
    )
        .into_response()
}
