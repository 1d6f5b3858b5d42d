//! `/api/v1/recordings`: the recording index (list by stream and time,
//! one row, delete) and each recording's file, with Range. Times are RFC
//! 3339 in UTC, what the API returns can be passed back.
//!
//! Nodes sharing a PostgreSQL index list every node's recordings (each
//! row names its `node`), but a file is on the disk of the node that wrote
//! it: another node's file is a redirect to that node when the cluster
//! registry knows where it is (else 409), and only that node deletes it.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{problem, AppState};
use crate::db::{self, Row};

/// The longest time range one listing may span.
const MAX_RANGE: Duration = Duration::from_secs(366 * 24 * 3600);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recordings", get(list))
        .route("/api/v1/recordings/{id}", get(one).delete(remove))
        .route("/api/v1/recordings/{id}/file", get(file))
}

/// Wall-clock µs as RFC 3339 UTC, to the microsecond: what the API
/// returns, passed back as `from`/`to`, means exactly that instant.
pub fn rfc3339(us: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// RFC 3339 UTC (`Z`) to wall-clock µs.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .map_err(|e| format!("{s:?}: {e} (expected RFC 3339 in UTC, e.g. 2026-12-02T10:00:00Z)"))?;
    if !(s.ends_with('Z') || s.ends_with('z')) {
        return Err(format!("{s:?}: times are UTC and end with Z"));
    }
    let us = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{s:?}: before 1970"))?
        .as_micros();
    i64::try_from(us).map_err(|_| format!("{s:?}: too far in the future"))
}

/// A row as the API shows it.
pub fn view(r: &Row) -> serde_json::Value {
    json!({
        "id": r.id.to_string(),
        "stream": r.stream,
        "format": r.format,
        "start": rfc3339(r.start_us),
        "end": rfc3339(r.end_us),
        "duration_s": r.duration_us as f64 / 1e6,
        "bytes": r.bytes,
        "codecs": r.codecs,
        "complete": r.done,
        "node": r.node,
        "url": format!("/api/v1/recordings/{}/file", r.id),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    stream: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

fn bad(detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, detail)
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is not connected yet",
    )
}

async fn list(
    State(s): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return bad(&e.body_text()),
    };
    let from = match p.from.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => return bad(&format!("from: {e}")),
    };
    let to = match p.to.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => return bad(&format!("to: {e}")),
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return bad("from must be before to");
        }
        if (t - f) as u128 > MAX_RANGE.as_micros() {
            return bad("the range is longer than a year");
        }
    }
    let Some(pool) = s.db.pool() else {
        return unavailable();
    };
    let q = db::Query {
        stream: p.stream.map(|s| s.trim_matches('/').to_owned()),
        from,
        to,
        limit: p.limit,
        ..Default::default()
    };
    match db::recordings::query(&pool, &q).await {
        Ok(rows) => Json(json!({
            "recordings": rows.iter().map(view).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn find(s: &AppState, id: &str) -> Result<Row, Response> {
    let id: i64 = id
        .parse()
        .map_err(|_| problem(StatusCode::NOT_FOUND, "no such recording"))?;
    let pool = s.db.pool().ok_or_else(unavailable)?;
    match db::recordings::get(&pool, id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(problem(StatusCode::NOT_FOUND, "no such recording")),
        Err(e) => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match find(&s, &id).await {
        Ok(r) => Json(view(&r)).into_response(),
        Err(e) => e,
    }
}

/// Another node's recording: its file is not here.
fn elsewhere(r: &Row, what: &str) -> Response {
    problem(
        StatusCode::CONFLICT,
        &format!("recording {} is on node {:?}: {what} there", r.id, r.node),
    )
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let r = match find(&s, &id).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !s.db.local(&r) {
        return elsewhere(&r, "delete it");
    }
    if !r.done {
        return problem(
            StatusCode::CONFLICT,
            "the recording is still being written; stop it first",
        );
    }
    let Some(pool) = s.db.pool() else {
        return unavailable();
    };
    match db::recordings::delete(&pool, &r).await {
        Ok(()) => {
            tracing::info!(stream = %r.stream, path = %r.path, "recording deleted through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

fn content_type(format: &str) -> &'static str {
    match format {
        "mp4" | "fmp4" => "video/mp4",
        "flv" => "video/x-flv",
        "ts" => "video/mp2t",
        _ => "application/octet-stream",
    }
}

async fn file(
    State(s): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let r = match find(&s, &id).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !s.db.local(&r) {
        let view = s.cluster.view().await;
        return match view.nodes.iter().find(|n| n.node_id == r.node) {
            Some(n) if !n.advertise.is_empty() => (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    header::LOCATION,
                    format!("http://{}/api/v1/recordings/{}/file", n.advertise, r.id),
                )],
            )
                .into_response(),
            _ => elsewhere(&r, "fetch it"),
        };
    }
    let mut f = match tokio::fs::File::open(&r.path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %r.path, "recording {}: file unreadable: {e}", r.id);
            return problem(
                StatusCode::GONE,
                &format!("the recording's file is gone or unreadable: {e}"),
            );
        }
    };
    let len = match f.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let name = std::path::Path::new(&r.path)
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, content_type(&r.format))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{name}\""),
        );
    let (start, count) = match rill_abi::sdk::range::byte_range(range, len) {
        Ok(None) => (0, len),
        Ok(Some((a, end))) => {
            resp = resp.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {a}-{}/{len}", end - 1),
            );
            (a, end - a)
        }
        Err(_) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_default();
        }
    };
    resp = resp.header(header::CONTENT_LENGTH, count);
    if method == Method::HEAD {
        return resp.body(Body::empty()).unwrap_or_default();
    }
    if let Err(e) = f.seek(std::io::SeekFrom::Start(start)).await {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f.take(count)));
    resp.body(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let us = parse_time("2026-12-02T10:00:00.250Z").unwrap();
        assert_eq!(rfc3339(us), "2026-12-02T10:00:00.250000Z");
        assert_eq!(parse_time(&rfc3339(us + 7)).unwrap(), us + 7);
        assert!(parse_time("2026-12-02T10:00:00+02:00").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-12-02T10:00:00").is_err());
    }
}
