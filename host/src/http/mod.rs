//! The host's HTTP server: the management API under `/api/v1`, Prometheus
//! metrics at `/metrics`, and everything else routed to plugins (HTTP-FLV,
//! WebSocket-FLV, ...). API errors are RFC 7807 problem+json. With
//! `http.tls` set, the same router is also served over HTTPS ([`tls`]).

mod cluster;
mod console;
mod metrics;
mod plain;
mod prepare;
mod process;
pub mod recordings;
mod serve;
mod session;
pub mod tls;

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rill_abi::{RILL_HTTP_BODY_CLOSE, RILL_HTTP_BODY_FIXED};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiRole, Config};
use crate::plugin::{PluginReply, PluginRequest, ReloadOutcome, ReloadRefused};

pub use crate::server::{AppState, SetLogLevel};

/// Every API route, as the OpenAPI description lists them (kept in step by a
/// test).
pub const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/server"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/streams"),
    ("get", "/api/v1/streams/{path}"),
    ("delete", "/api/v1/streams/{path}"),
    ("get", "/api/v1/streams/{path}/subscribers"),
    ("delete", "/api/v1/subscribers/{id}"),
    ("get", "/api/v1/plugins"),
    ("post", "/api/v1/plugins/{name}/reload"),
    ("post", "/api/v1/plugins/{name}/drain"),
    ("get", "/api/v1/plugins/{name}/{rest}"),
    ("post", "/api/v1/plugins/{name}/{rest}"),
    ("get", "/api/v1/pulls"),
    ("post", "/api/v1/pulls"),
    ("get", "/api/v1/pulls/{id}"),
    ("delete", "/api/v1/pulls/{id}"),
    ("get", "/api/v1/pushes"),
    ("post", "/api/v1/pushes"),
    ("get", "/api/v1/pushes/{id}"),
    ("delete", "/api/v1/pushes/{id}"),
    ("get", "/api/v1/config"),
    ("put", "/api/v1/config"),
    ("post", "/api/v1/config/validate"),
    ("get", "/api/v1/auth/keys"),
    ("put", "/api/v1/auth/keys/{path}"),
    ("delete", "/api/v1/auth/keys/{path}"),
    ("get", "/api/v1/recordings"),
    ("get", "/api/v1/recordings/{id}"),
    ("delete", "/api/v1/recordings/{id}"),
    ("get", "/api/v1/recordings/{id}/file"),
    ("get", "/api/v1/cluster"),
    ("get", "/metrics"),
];

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/server", get(server))
        .route("/api/v1/streams", get(streams))
        // Stream paths contain slashes: one wildcard route serves the stream
        // and its `/subscribers`.
        .route(
            "/api/v1/streams/{*path}",
            get(stream_get).delete(stream_delete),
        )
        .route("/api/v1/subscribers/{id}", delete(subscriber_delete))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/plugins/{name}/reload", post(plugin_reload))
        .route("/api/v1/plugins/{name}/drain", post(plugin_drain))
        // A plugin's own management routes, guarded as the API is.
        .route(
            "/api/v1/plugins/{name}/{*rest}",
            axum::routing::any(plugin_api),
        )
        // Relays: the relay plugin's jobs at the API's top level.
        .route("/api/v1/pulls", axum::routing::any(relay_api))
        .route("/api/v1/pulls/{*rest}", axum::routing::any(relay_api))
        .route("/api/v1/pushes", axum::routing::any(relay_api))
        .route("/api/v1/pushes/{*rest}", axum::routing::any(relay_api))
        .route("/api/v1/config", get(config_get).put(config_put))
        .route("/api/v1/config/validate", post(config_validate))
        .route("/api/v1/auth/keys", get(keys_list))
        .route(
            "/api/v1/auth/keys/{*path}",
            axum::routing::put(key_put).delete(key_delete),
        )
        .merge(recordings::router())
        .merge(cluster::router())
        .layer(middleware::from_fn_with_state(state.clone(), guard_api));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), guard_metrics));
    Router::new()
        .merge(api)
        .merge(metrics)
        .merge(console::router())
        .fallback(plugin_route)
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// Binds `listen` (plain HTTP) and, with `tls`, its address (HTTPS), and
/// serves the same routes on both until `shutdown` resolves: then neither
/// accepts any more, and the task ends when their connections have.
pub async fn serve(
    listen: SocketAddr,
    tls: Option<(SocketAddr, tls::Tls)>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("HTTP listen {listen}: {e}"))?;
    let tls_listener = match tls {
        Some((addr, certs)) => Some((
            tls::TlsListener::new(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("HTTPS listen {addr}: {e}"))?,
                tls::Handshake(certs),
                state.plugins.admission(),
            ),
            addr,
        )),
        None => None,
    };
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    tracing::info!(addr = %listen, "HTTP listening");
    let plain = serve::serve(
        plain::PlainListener::new(
            listener,
            plain::Triage(state.clone()),
            state.plugins.admission(),
        ),
        router(state.clone()),
        state.clone(),
        stop.clone(),
    );
    let secure = tls_listener.map(|(listener, addr)| {
        tracing::info!(addr = %addr, "HTTPS listening");
        // Plugins see the address the connection came to.
        let state = AppState {
            local: addr.to_string(),
            secure: true,
            ..state
        };
        serve::serve(listener, router(state.clone()), state, stop)
    });
    Ok(tokio::spawn(async move {
        let secure = async {
            if let Some(s) = secure {
                s.await
            }
        };
        tokio::join!(plain, secure);
    }))
}

/// The client's address, for plugins (`conn_peer_addr`), over HTTP or HTTPS.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// RFC 7807 problem+json.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    problem_with(status, detail, json!({}))
}

fn problem_with(status: StatusCode, detail: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// Who may use the API. With a token (`http.api_token` or
/// `api_token_file`) every call needs it (or the console's session cookie,
/// [`session`]), from anywhere. Without one, only
/// clients on loopback are answered, and only when they name a loopback
/// host or one of `http.allowed_hosts` (a page that rebinds its own name
/// to 127.0.0.1 is refused). Calls that send a body must say it is JSON or
/// YAML, which no HTML form can send without a CORS preflight.
async fn guard_api(
    State(s): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    match caller(&s, peer, &req) {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(refused) => *refused,
    }
}

/// [`guard_api`]'s decision: who the caller is, or the answer refusing it.
fn caller(s: &AppState, peer: SocketAddr, req: &Request) -> Result<session::Caller, Box<Response>> {
    let (tokens, allowed_hosts) = {
        let c = s.config.lock();
        (session::api_tokens(&c), c.http.allowed_hosts.clone())
    };
    let headers = req.headers();
    let caller = match tokens.is_empty() {
        false => {
            let given = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            // The bearer token, else the console's session cookie.
            let caller = match given {
                Some(g) => session::token_role(g, &tokens).map(|role| (role, session::Via::Bearer)),
                None => {
                    session::cookie_role(headers, &tokens).map(|role| (role, session::Via::Session))
                }
            };
            let Some((role, via)) = caller else {
                let mut r = problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                r.headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Bearer"));
                return Err(Box::new(r));
            };
            if role == ApiRole::Read && !matches!(*req.method(), Method::GET | Method::HEAD) {
                return Err(Box::new(problem(
                    StatusCode::FORBIDDEN,
                    "this token may only read (role: read); changes need an admin token",
                )));
            }
            session::Caller { role, via }
        }
        true => {
            if !peer.ip().to_canonical().is_loopback() {
                return Err(Box::new(problem(
                    StatusCode::FORBIDDEN,
                    "the API has no token (http.api_token or http.api_token_file) and so \
                     answers only clients on this machine",
                )));
            }
            let host = headers.get("host").and_then(|h| h.to_str().ok());
            if !host.is_some_and(|h| host_allowed(h, &allowed_hosts)) {
                return Err(Box::new(problem(
                    StatusCode::FORBIDDEN,
                    "the Host header names no loopback host nor one of http.allowed_hosts",
                )));
            }
            session::Caller {
                role: ApiRole::Admin,
                via: session::Via::Loopback,
            }
        }
    };
    let sends_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if sends_body && !is_config_media_type(headers.get("content-type")) {
        return Err(Box::new(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json or application/yaml",
        )));
    }
    Ok(caller)
}

/// `/metrics`: open with `http.metrics_public` (the default), else
/// guarded as the API is.
async fn guard_metrics(
    state: State<AppState>,
    peer: ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    if state.config.lock().http.metrics_public {
        return next.run(req).await;
    }
    guard_api(state, peer, req, next).await
}

/// `Host` (name and optional port) is a loopback name or an allowed one.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || allowed.iter().any(|a| {
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(name)
        })
}

fn is_config_media_type(v: Option<&HeaderValue>) -> bool {
    let Some(v) = v.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json" | "application/yaml" | "application/x-yaml" | "text/yaml"
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// CORS. Media routes (HTTP-FLV, ...) are for players on any origin. The
/// API answers only the origins in `http.cors_origins`: for every other
/// origin a preflight is refused and no CORS header is sent, so the
/// browser keeps the page from the answer and from every call that
/// needs a preflight (PUT, DELETE, JSON bodies).
async fn cors(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == "/metrics";
    let origin = req.headers().get("origin").cloned();
    let allowed = if api {
        let c = s.config.lock();
        origin
            .as_ref()
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| c.http.cors_origins.iter().any(|a| a == o))
    } else {
        true
    };
    let allow_origin = if api {
        origin.clone()
    } else {
        Some(HeaderValue::from_static("*"))
    };
    if req.method() == Method::OPTIONS && !api && s.plugins.answers_options(path) {
        // The plugin answers its own preflights (WHIP/WHEP); media routes
        // still allow every origin.
        let mut r = next.run(req).await;
        r.headers_mut()
            .entry("access-control-allow-origin")
            .or_insert(HeaderValue::from_static("*"));
        return r;
    }
    if req.method() == Method::OPTIONS {
        if !allowed {
            return problem(
                StatusCode::FORBIDDEN,
                "this origin may not call the API (http.cors_origins)",
            );
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        if let Some(o) = allow_origin {
            h.insert("access-control-allow-origin", o);
        }
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("86400"));
        if api {
            h.insert("vary", HeaderValue::from_static("origin"));
        }
        return r;
    }
    let mut r = next.run(req).await;
    if allowed {
        if let Some(o) = allow_origin {
            r.headers_mut()
                .entry("access-control-allow-origin")
                .or_insert(o);
        }
    }
    if api {
        r.headers_mut()
            .append("vary", HeaderValue::from_static("origin"));
    }
    r
}

async fn api_not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such API route")
}

async fn server(State(s): State<AppState>) -> Json<serde_json::Value> {
    let t = s.engine.totals();
    Json(json!({
        "name": "rill",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": s.started.elapsed().as_secs_f64(),
        "streams": t.streams,
        "publishers": t.publishers,
        "subscribers": t.subscribers.values().sum::<usize>(),
        "subscribers_by_protocol": t.subscribers,
        "plugins": s.plugins.plugins().await.len(),
        "bytes_in": t.bytes_in,
        "bytes_out": t.bytes_out,
        "cpu_seconds": process::cpu_seconds(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_bytes": process::rss_bytes(),
        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "plugin_instances": crate::plugin::instance_counts(),
    }))
}

async fn streams(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "streams": s.engine.streams() }))
}

async fn stream_get(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    if let Some(p) = path.strip_suffix("/subscribers") {
        return match s.engine.subscribers(p) {
            Some(subs) => Json(json!({ "subscribers": subs })).into_response(),
            None => problem(StatusCode::NOT_FOUND, &format!("no stream {p}")),
        };
    }
    match s.engine.stream(&path) {
        Some(st) => Json(st).into_response(),
        None => problem(StatusCode::NOT_FOUND, &format!("no stream {path}")),
    }
}

async fn stream_delete(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    if s.engine.stream(&path).is_none() {
        return problem(StatusCode::NOT_FOUND, &format!("no stream {path}"));
    }
    if s.engine.kick_publisher(&path) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(
            StatusCode::CONFLICT,
            &format!("stream {path} has no publisher"),
        )
    }
}

async fn subscriber_delete(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return problem(StatusCode::BAD_REQUEST, "subscriber id must be a number");
    };
    if s.engine.kick_subscriber(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, &format!("no subscriber {id}"))
    }
}

async fn plugins(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "plugins": s.plugins.plugins().await }))
}

/// Closes the sessions of the plugin's draining generations now.
async fn plugin_drain(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.plugins.force_drain(&name).await {
        Some(closing) => Json(json!({ "closing_sessions": closing })).into_response(),
        None => problem(StatusCode::NOT_FOUND, &format!("no plugin {name}")),
    }
}

async fn plugin_reload(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let outcome = match s.plugins.reload_requested(&name).await {
        Ok(o) => o,
        Err(ReloadRefused::NoPlugin) => {
            return problem(StatusCode::NOT_FOUND, &format!("no plugin {name}"))
        }
        Err(ReloadRefused::TooSoon(wait)) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("plugin {name} was reloaded less than a second ago"),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(wait.as_secs().max(1)));
            return r;
        }
        Err(ReloadRefused::Failed(e)) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let p = s
        .plugins
        .plugins()
        .await
        .into_iter()
        .find(|p| p.name == name);
    Json(json!({
        "plugin": p,
        "reloaded": outcome == ReloadOutcome::Reloaded,
    }))
    .into_response()
}

async fn config_get(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(s.config.lock().redacted()).unwrap_or_default())
}

/// Parses a config sent to the API, keeping the running secrets it leaves
/// out or redacted. Off the event loop: it reads the files it names.
/// Problems with those files are logged but answered only as "cannot use
/// the file", so the API does not tell what exists on the server.
async fn parse_config(s: &AppState, body: Bytes) -> Result<Config, Box<Response>> {
    let running = s.config.lock().clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body).map_err(|_| None)?;
        Config::from_yaml_str_with(text, |c| c.keep_secrets(&running)).map_err(Some)
    })
    .await
    .map_err(|_| {
        Box::new(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "config check failed",
        ))
    })?;
    parsed.map_err(|e| match e {
        None => Box::new(problem(StatusCode::BAD_REQUEST, "the body is not UTF-8")),
        Some(e) => {
            let errors: Vec<_> = e
                .errors()
                .iter()
                .map(|e| {
                    let message = if e.file {
                        tracing::warn!("config from the API: {e}");
                        "cannot use this file (the reason is in the server log)"
                    } else {
                        &e.message
                    };
                    json!({ "path": e.path, "message": message, "line": e.line, "column": e.column })
                })
                .collect();
            let detail = errors
                .iter()
                .map(|e| format!("{}: {}", e["path"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n");
            Box::new(problem_with(StatusCode::UNPROCESSABLE_ENTITY, &detail, json!({ "errors": errors })))
        }
    })
}

async fn config_validate(State(s): State<AppState>, body: Bytes) -> Response {
    match parse_config(&s, body).await {
        Ok(_) => Json(json!({ "valid": true })).into_response(),
        Err(r) => *r,
    }
}

/// Applies what can change live; says what needs a restart.
async fn config_put(State(s): State<AppState>, body: Bytes) -> Response {
    let new = match parse_config(&s, body).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match s.apply_config(new).await {
        Ok(report) => Json(json!({
            "applied": true,
            "restart_required": report.restart_required,
            "plugins_reloaded": report.plugins_reloaded,
        }))
        .into_response(),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, &e),
    }
}

/// Everything the API does not serve goes to plugin routes (HTTP-FLV, ...).
async fn plugin_route(
    State(s): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    if req.uri().path().starts_with("/api/") {
        return api_not_found().await;
    }
    to_plugin(s, peer, req).await
}

/// `/api/v1/plugins/{name}/…` beyond the host's own calls: the plugin's
/// management routes (`http_route` under that prefix), reached only
/// through the API's guard.
async fn plugin_api(
    State(s): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    to_plugin(s, peer, req).await
}

/// `/api/v1/pulls…` and `/api/v1/pushes…` are the relay plugin's
/// (`/api/v1/plugins/relay/…`), behind the same guard.
async fn relay_api(
    State(s): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    mut req: Request,
) -> Response {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/api/v1/")
        .unwrap_or_default();
    let target = match req.uri().query() {
        Some(q) => format!("/api/v1/plugins/relay/{rest}?{q}"),
        None => format!("/api/v1/plugins/relay/{rest}"),
    };
    match target.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return api_not_found().await,
    }
    to_plugin(s, peer, req).await
}

/// Hands a request to the plugin route that matches it.
async fn to_plugin(s: AppState, peer: SocketAddr, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let authorization = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let object = s
            .plugins
            .http_object(
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                authorization,
                peer.ip(),
            )
            .await;
        if let Some(o) = object {
            return object_response(o, parts.method == Method::HEAD);
        }
    }
    let upgrade = parts
        .headers
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let max_body = s.config.lock().http.max_body;
    let ws = if upgrade {
        WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
            // A message or frame over the cap closes that connection.
            .map(|ws| ws.max_message_size(max_body).max_frame_size(max_body))
    } else {
        None
    };
    let body = match axum::body::to_bytes(body, max_body).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {max_body} bytes (http.max_body)"),
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
        tls: s.secure,
    };
    let Some(reply) = s.plugins.route_http(req, peer.to_string(), s.local.clone()) else {
        return problem(StatusCode::NOT_FOUND, "no such route");
    };
    match reply.await {
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the plugin session ended",
        ),
        Ok(PluginReply::Error(code, why, challenge)) => {
            let mut resp = problem(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &why,
            );
            if let Some(c) = challenge {
                resp.headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static(c));
            }
            resp
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
            None => problem(StatusCode::BAD_REQUEST, "not a WebSocket upgrade request"),
        },
    }
}

/// The answer for a published object (`http_publish`).
fn object_response(o: crate::plugin::ObjectReply, head: bool) -> Response {
    use crate::plugin::ObjectReply;
    match o {
        ObjectReply::Ok { content_type, body } => {
            let len = body.len();
            let mut resp = if head {
                Response::new(Body::empty())
            } else {
                Response::new(Body::from(body))
            };
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::try_from(&*content_type) {
                h.insert("content-type", v);
            }
            h.insert("content-length", HeaderValue::from(len));
            h.insert(
                "cache-control",
                HeaderValue::from_static("public, max-age=86400, immutable"),
            );
            h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
            resp
        }
        ObjectReply::Refused { status, challenge } => {
            let mut resp = problem(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                "playing not allowed",
            );
            if let Some(c) = challenge {
                resp.headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static(c));
            }
            resp
        }
    }
}

// ---- stream keys ----------------------------------------------------------------

/// `GET /api/v1/auth/keys`: the streams that have a publish key (never the
/// keys), from `auth.keys` (`config`) or set here (`api`).
async fn keys_list(State(s): State<AppState>) -> Json<serde_json::Value> {
    let config: Vec<String> = s.config.lock().auth.keys.keys().cloned().collect();
    let api = s.plugins.admission().keys.paths();
    let mut keys: Vec<serde_json::Value> = config
        .iter()
        .map(|p| json!({"path": p.trim_matches('/'), "source": "config"}))
        .collect();
    keys.extend(api.iter().map(|p| json!({"path": p, "source": "api"})));
    Json(json!({ "keys": keys }))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    key: Option<String>,
}

/// `PUT /api/v1/auth/keys/{path}`: sets the stream's publish key, the one
/// given (`{"key": "…"}`) or a new random one (`{}`); answers with it.
async fn key_put(State(s): State<AppState>, Path(path): Path<String>, body: Bytes) -> Response {
    let path = path.trim_matches('/').to_owned();
    if crate::engine::validate_path(&path).is_err() {
        return problem(StatusCode::BAD_REQUEST, "not a stream path (app/stream)");
    }
    let parsed: Result<KeyBody, _> = if body.is_empty() {
        Ok(KeyBody::default())
    } else {
        serde_yaml::from_slice(&body)
    };
    let key = match parsed {
        Ok(KeyBody { key: Some(k) })
            if !k.is_empty() && k.len() <= 256 && !k.contains(char::is_control) =>
        {
            k
        }
        Ok(KeyBody { key: Some(_) }) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "a key is 1 to 256 printable characters",
            )
        }
        Ok(KeyBody { key: None }) => random_key(),
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("body: {e}")),
    };
    let store = s.plugins.admission();
    let (p, k) = (path.clone(), key.clone());
    // A small file write, off the event loop.
    match tokio::task::spawn_blocking(move || store.keys.set(&p, Some(k))).await {
        Ok(Ok(_)) => Json(json!({"path": path, "key": key})).into_response(),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `DELETE /api/v1/auth/keys/{path}`: removes a key set through the API.
async fn key_delete(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    let path = path.trim_matches('/').to_owned();
    let store = s.plugins.admission();
    match tokio::task::spawn_blocking(move || store.keys.set(&path, None)).await {
        Ok(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(false)) => problem(
            StatusCode::NOT_FOUND,
            "no key set through the API for this stream (keys in auth.keys change in the config)",
        ),
        Ok(Err(e)) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// 16 random bytes as hex.
fn random_key() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // The system's generator; failing here means the OS has none.
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
