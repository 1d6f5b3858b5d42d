//! The plugin's management calls, under the host's API (and its guard):
//!
//! - `GET /api/v1/plugins/relay/pulls` (and `/pushes`): every job with its
//!   state (`connecting`, `live`, `retrying` with the reason), origin,
//!   attempts and bytes;
//! - `POST /api/v1/plugins/relay/pulls` with `{"url": ..., "stream":
//!   "app/name"}` (and `/pushes`): a new job, kept across restarts; `201`
//!   with the job;
//! - `DELETE /api/v1/plugins/relay/pulls/{id}` (and `/pushes/{id}`).
//!
//! The host serves the same calls at `/api/v1/pulls` and `/api/v1/pushes`.

use rill_abi::sdk::{Conn, HttpRequest, Result};
use serde::Deserialize;
use serde_json::json;

use crate::jobs::{Kind, Origin};
use crate::source::Url;
use crate::{lock, Relay};

pub const PREFIX_PATTERN: &str = "/api/v1/plugins/relay/*";
const PREFIX: &str = "/api/v1/plugins/relay/";
/// Largest request body.
const MAX_BODY: usize = 8192;

fn reply(conn: &Conn, status: u16, body: serde_json::Value) -> Result<()> {
    let ctype = if status < 300 {
        "application/json"
    } else {
        "application/problem+json"
    };
    conn.http_reply(status, ctype, body.to_string().as_bytes())
}

fn problem(conn: &Conn, status: u16, detail: &str) -> Result<()> {
    reply(
        conn,
        status,
        json!({ "type": "about:blank", "status": status, "detail": detail }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob {
    url: String,
    stream: String,
}

impl Relay {
    pub(crate) fn api(&self, conn: &Conn, req: &HttpRequest<'_>) -> Result<()> {
        let rest = req.path().strip_prefix(PREFIX).unwrap_or("");
        let (what, id) = match rest.split_once('/') {
            Some((w, id)) => (w, Some(id)),
            None => (rest, None),
        };
        let kind = match what {
            "pulls" => Kind::Pull,
            "pushes" => Kind::Push,
            _ => return problem(conn, 404, "no such call"),
        };
        match (req.method(), id) {
            ("GET", None) => {
                let list: Vec<_> = lock(&self.jobs)
                    .by_id
                    .values()
                    .filter(|j| j.kind == kind && !j.stopping)
                    .cloned()
                    .collect();
                reply(conn, 200, json!({ what: list }))
            }
            ("GET", Some(id)) => {
                let job = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| lock(&self.jobs).by_id.get(&id).cloned())
                    .filter(|j| j.kind == kind);
                match job {
                    Some(j) => reply(conn, 200, json!(j)),
                    None => problem(conn, 404, "no such job"),
                }
            }
            ("POST", None) => {
                if req.body().len() > MAX_BODY {
                    return problem(conn, 413, "the body is too large");
                }
                let new: NewJob = match serde_json::from_slice(req.body()) {
                    Ok(n) => n,
                    Err(e) => {
                        return problem(
                            conn,
                            400,
                            &format!("expected {{\"url\", \"stream\"}}: {e}"),
                        )
                    }
                };
                let url = match Url::parse(&new.url) {
                    Ok(u) if kind == Kind::Push && !u.scheme.can_push() => {
                        return problem(
                            conn,
                            400,
                            "pushes go to rtmp(s)://, srt:// or rtsp:// URLs",
                        )
                    }
                    Ok(u) => u,
                    Err(e) => return problem(conn, 400, &e),
                };
                if let Err(e) = crate::config::check_stream(&new.stream) {
                    return problem(conn, 400, &e);
                }
                match self.add_job(
                    kind,
                    Origin::Api,
                    Some(url),
                    &new.stream,
                    Default::default(),
                ) {
                    Ok(id) => {
                        self.save();
                        self.attempt(id);
                        let job = lock(&self.jobs).by_id.get(&id).cloned();
                        reply(conn, 201, json!(job))
                    }
                    Err(e) => problem(conn, 409, &e),
                }
            }
            ("DELETE", Some(id)) => {
                let ok = id.parse::<u64>().ok().filter(|id| {
                    lock(&self.jobs)
                        .by_id
                        .get(id)
                        .is_some_and(|j| j.kind == kind && !j.stopping)
                });
                match ok {
                    Some(id) => {
                        self.stop_job(id, "deleted through the API");
                        self.save();
                        reply(conn, 200, json!({ "deleted": id }))
                    }
                    None => problem(conn, 404, "no such job"),
                }
            }
            _ => problem(conn, 405, "method not allowed"),
        }
    }
}
