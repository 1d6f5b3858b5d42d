//! The web console: `host/console/` (plain ES modules, vendored Preact +
//! htm, hls.js and mpegts.js; no build step) compiled into the binary and
//! served at `/` (the page) and `/console/*` (its files). Everything it
//! shows comes from the management API, with the caller's own rights; the
//! files themselves are public. A path under `/console/` that names no file
//! goes on to plugin routes, so a stream app called `console` still plays.

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::Embed;

use super::{AppState, Peer};

#[derive(Embed)]
#[folder = "console/"]
struct Files;

/// What the page may load: only this server (no CDN, works offline),
/// media from MSE blobs, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The console's routes, and the session routes its login uses.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/{*file}", get(file))
        .merge(super::session::router())
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|| {
        super::problem(StatusCode::INTERNAL_SERVER_ERROR, "console not built in")
    })
}

async fn file(
    state: State<AppState>,
    peer: ConnectInfo<Peer>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    match serve(&name, req.headers()) {
        Some(r) => r,
        None => super::plugin_route(state, peer, req).await,
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// The embedded file `name`, revalidated by its hash (`ETag`).
fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    let f = Files::get(name)?;
    let etag: String = f.metadata.sha256_hash()[..16]
        .iter()
        .fold(String::from("\""), |s, b| s + &format!("{b:02x}"))
        + "\"";
    let fresh = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        f.data.into_owned().into_response()
    };
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type(name)));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::try_from(etag) {
        h.insert("etag", v);
    }
    if name.ends_with(".html") {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_embedded() {
        for f in [
            "index.html",
            "app.js",
            "vendor/htm-preact-standalone.module.js",
            "vendor/hls.min.mjs",
            "vendor/mpegts.js",
        ] {
            assert!(Files::get(f).is_some(), "{f} not embedded");
        }
    }

    #[test]
    fn files_are_revalidated_by_etag() {
        let r = serve("index.html", &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].clone();
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        let mut h = HeaderMap::new();
        h.insert("if-none-match", etag);
        assert_eq!(
            serve("index.html", &h).unwrap().status(),
            StatusCode::NOT_MODIFIED
        );
        assert!(serve("nope.js", &h).is_none());
    }
}
