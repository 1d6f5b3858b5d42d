//! The plugin's management calls, under the host's API (and its guard):
//!
//! - `GET /api/v1/plugins/record/recording`: the streams being recorded;
//! - `POST /api/v1/plugins/record/start/{app}/{stream}`: record a
//!   published stream now (its rule, or fMP4 in 60 s files when no rule
//!   matches);
//! - `POST /api/v1/plugins/record/stop/{app}/{stream}`: stop, the file
//!   closed whole (the stream goes on).
//! - `POST /api/v1/plugins/record/replays` with `{"stream", "start"?,
//!   "end"?, "speed"? (0.5–4, default 1), "path"? (default
//!   `replay/{stream}`)}`: replay recordings into the engine (201 with
//!   the replay); `GET …/replays`: those running; `POST
//!   …/replays/{id}/seek` with `{"at"}`: go there; `DELETE
//!   …/replays/{id}`: stop.

use rill_abi::sdk::{Conn, Error, HttpRequest, Result};
use rill_abi::*;
use serde_json::json;

use crate::replay::{Ask, Replay, Seek, MAX_REPLAYS, SPEEDS};
use crate::{lock, Record, Session, Stop};

/// The largest request body the calls read.
const MAX_BODY: usize = 16 << 10;

pub const PREFIX_PATTERN: &str = "/api/v1/plugins/record/*";
const PREFIX: &str = "/api/v1/plugins/record/";

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

impl Record {
    pub(crate) fn api(&self, conn: &Conn, req: &HttpRequest<'_>) -> Result<()> {
        let rest = req.path().strip_prefix(PREFIX).unwrap_or("");
        match (req.method(), rest.split_once('/')) {
            ("GET", None) if rest == "recording" => {
                let mut list: Vec<&String> = Vec::new();
                let active = lock(&self.active);
                list.extend(active.keys());
                list.sort();
                reply(conn, 200, json!({ "recording": list }))
            }
            ("POST", Some(("start", stream))) if stream.contains('/') => {
                if !lock(&self.published).contains(stream) {
                    return problem(conn, 404, &format!("{stream} is not published"));
                }
                let rule = self.cfg.rule_for(stream).unwrap_or(self.cfg.rules.len());
                match self.start_with(stream, rule) {
                    Ok(true) => {
                        rill_log!(self.host, Info, "recording {stream}: asked through the API");
                        reply(conn, 200, json!({ "stream": stream, "recording": true }))
                    }
                    Ok(false) => problem(conn, 409, &format!("{stream} is already recorded")),
                    Err(Error::NO_SPACE) => problem(conn, 507, "the disk is below min_free"),
                    Err(e) => problem(conn, 500, &e.to_string()),
                }
            }
            ("POST", Some(("stop", stream))) => {
                let id = lock(&self.active).get(stream).copied();
                match id {
                    Some(id) => {
                        let _ = self
                            .host
                            .post(id, Box::new(Stop("stopped through the API")));
                        reply(conn, 200, json!({ "stream": stream, "recording": false }))
                    }
                    None => problem(conn, 404, &format!("{stream} is not being recorded")),
                }
            }
            ("POST", None) if rest == "replays" => self.replay_start(conn, req.body()),
            ("GET", None) if rest == "replays" => {
                let list: Vec<_> = lock(&self.replays)
                    .values()
                    .map(|(_, a)| replay_json(a))
                    .collect();
                reply(conn, 200, json!({ "replays": list }))
            }
            (method, Some(("replays", tail))) => {
                let (id, action) = tail.split_once('/').unwrap_or((tail, ""));
                let Some((session, _)) = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| lock(&self.replays).get(&id).cloned())
                else {
                    return problem(conn, 404, "no such replay");
                };
                match (method, action) {
                    ("DELETE", "") => {
                        let _ = self
                            .host
                            .post(session, Box::new(Stop("stopped through the API")));
                        reply(conn, 200, json!({ "id": id, "stopped": true }))
                    }
                    ("POST", "seek") => {
                        let body: serde_json::Value = match parse_body(req.body()) {
                            Ok(b) => b,
                            Err(why) => return problem(conn, 400, &why),
                        };
                        let at = match body["at"].as_str().map(crate::vod::parse_time) {
                            Some(Ok(at)) => at,
                            Some(Err(e)) => return problem(conn, 400, &format!("at: {e}")),
                            None => return problem(conn, 400, "at: an RFC 3339 time is needed"),
                        };
                        let _ = self.host.post(session, Box::new(Seek(at)));
                        reply(conn, 200, json!({ "id": id, "seeking": body["at"] }))
                    }
                    _ => problem(conn, 404, "no such call"),
                }
            }
            _ => problem(conn, 404, "no such call"),
        }
    }

    /// `POST …/replays`: a replay session, publishing at once.
    fn replay_start(&self, conn: &Conn, body: &[u8]) -> Result<()> {
        let b: serde_json::Value = match parse_body(body) {
            Ok(b) => b,
            Err(why) => return problem(conn, 400, &why),
        };
        let Some(stream) = b["stream"].as_str().filter(|s| valid_path(s)) else {
            return problem(conn, 400, "stream: the recorded stream, as app/name");
        };
        let time = |k: &str| match b[k].as_str() {
            None if b[k].is_null() => Ok(None),
            None => Err(format!("{k}: an RFC 3339 time")),
            Some(t) => crate::vod::parse_time(t)
                .map(Some)
                .map_err(|e| format!("{k}: {e}")),
        };
        let (from, to) = match (time("start"), time("end")) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return problem(conn, 400, &e),
        };
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return problem(conn, 400, "start must be before end");
            }
        }
        let speed = match &b["speed"] {
            serde_json::Value::Null => 1.0,
            v => match v.as_f64().filter(|s| SPEEDS.contains(s)) {
                Some(s) => s,
                None => return problem(conn, 400, "speed: from 0.5 to 4"),
            },
        };
        let path = match b["path"].as_str() {
            None => format!("replay/{stream}"),
            Some(p) if valid_path(p) && p != stream => p.to_owned(),
            Some(_) => return problem(conn, 400, "path: app/name, not the recorded stream itself"),
        };
        if lock(&self.replays).len() >= MAX_REPLAYS {
            return problem(conn, 429, &format!("{MAX_REPLAYS} replays run already"));
        }
        let ask = Ask {
            id: self
                .next_replay
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stream: stream.to_owned(),
            path,
            from,
            to,
            speed,
        };
        let session = match self
            .host
            .session_open(Session::Replay(Box::new(Replay::new(ask.clone()))))
        {
            Ok(id) => id,
            Err(e) => return problem(conn, 503, &format!("cannot start a replay: {e}")),
        };
        lock(&self.replays).insert(ask.id, (session, ask.clone()));
        rill_log!(
            self.host,
            Info,
            "replay {}: {} at {}x as {}",
            ask.id,
            ask.stream,
            ask.speed,
            ask.path
        );
        reply(conn, 201, replay_json(&ask))
    }
}

fn parse_body(body: &[u8]) -> std::result::Result<serde_json::Value, String> {
    if body.len() > MAX_BODY {
        return Err(format!("a body of more than {MAX_BODY} bytes"));
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is no JSON object: {e}"))
}

/// `app/name`: no empty part, no `..`, no control characters.
fn valid_path(p: &str) -> bool {
    p.len() <= 256
        && p.split('/').count() >= 2
        && p.split('/').all(|s| !s.is_empty() && s != "..")
        && !p.chars().any(char::is_control)
}

fn replay_json(a: &Ask) -> serde_json::Value {
    let time = |t: Option<i64>| {
        t.map(|us| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.max(0) as u64);
            humantime::format_rfc3339_micros(t).to_string()
        })
    };
    json!({
        "id": a.id,
        "stream": a.stream,
        "path": a.path,
        "start": time(a.from),
        "end": time(a.to),
        "speed": a.speed,
    })
}
