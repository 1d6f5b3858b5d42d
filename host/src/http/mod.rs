//! The host's HTTP server: the management API (and, through plugin routes,
//! HTTP-FLV and friends).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rill_abi::{RILL_HTTP_BODY_CLOSE, RILL_HTTP_BODY_FIXED};
use serde_json::json;

use crate::engine::Engine;
use crate::plugin::{PluginManager, PluginReply, PluginRequest};

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub plugins: PluginManager,
    pub started: std::time::Instant,
    /// The HTTP listen address, as plugins see it (`conn_local_addr`).
    pub local: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/server", get(server))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/streams", get(streams))
        .fallback(plugin_route)
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
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
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

/// Everything the API does not serve goes to plugin routes (HTTP-FLV, ...).
async fn plugin_route(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let upgrade = parts
        .headers
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let ws = if upgrade {
        WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
    } else {
        None
    };
    let body = match axum::body::to_bytes(body, MAX_PLUGIN_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
                "request body over 1 MiB",
            )
        }
    };
    let req = PluginRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        websocket: ws.is_some(),
    };
    let Some(reply) = s.plugins.route_http(req, peer.to_string(), s.local.clone()) else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "no such route");
    };
    match reply.await {
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "the plugin session ended",
        ),
        Ok(PluginReply::Error(code, why)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            problem(status, status.canonical_reason().unwrap_or("Error"), &why)
        }
        Ok(PluginReply::Response {
            status,
            headers,
            body,
            length,
            mut chunks,
        }) => {
            let stream = futures_util::stream::poll_fn(move |cx| {
                chunks
                    .poll_recv(cx)
                    .map(|o| o.map(Ok::<_, std::convert::Infallible>))
            });
            let mut resp = Response::new(Body::from_stream(stream));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let h = resp.headers_mut();
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    h.append(k, v);
                }
            }
            match body {
                RILL_HTTP_BODY_FIXED => {
                    h.insert("content-length", HeaderValue::from(length));
                }
                RILL_HTTP_BODY_CLOSE => {
                    h.insert("connection", HeaderValue::from_static("close"));
                }
                _ => {}
            }
            resp
        }
        Ok(PluginReply::Upgrade { headers, socket }) => match ws {
            Some(ws) => {
                let mut resp = ws.on_upgrade(move |sock| async move {
                    let _ = socket.send(sock);
                });
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                        resp.headers_mut().append(k, v);
                    }
                }
                resp
            }
            None => problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "not a WebSocket upgrade request",
            ),
        },
    }
}

/// Largest request body handed to a plugin.
const MAX_PLUGIN_BODY: usize = 1 << 20;
