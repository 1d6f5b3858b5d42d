//! The host's HTTP server: the management API (and, through plugin routes,
//! HTTP-FLV and friends).

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::engine::Engine;
use crate::plugin::PluginManager;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub plugins: PluginManager,
    pub started: std::time::Instant,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/server", get(server))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/streams", get(streams))
        .fallback(not_found)
        .with_state(state)
}

/// Binds `listen` and serves until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listen, "HTTP listening");
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("HTTP server: {e}");
        }
    }))
}

async fn server(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": "rill",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": s.started.elapsed().as_secs_f64(),
        "streams": s.engine.streams().len(),
    }))
}

async fn plugins(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "plugins": s.plugins.plugins().await }))
}

async fn streams(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "streams": s.engine.streams() }))
}

/// RFC 7807 problem+json.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail });
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "Not Found", "no such route")
}
