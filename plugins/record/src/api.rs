//! The plugin's management calls, under the host's API (and its guard):
//!
//! - `GET /api/v1/plugins/record/recording`: the streams being recorded;
//! - `POST /api/v1/plugins/record/start/{app}/{stream}`: record a
//!   published stream now (its rule, or fMP4 in 60 s files when no rule
//!   matches);
//! - `POST /api/v1/plugins/record/stop/{app}/{stream}`: stop, the file
//!   closed whole (the stream goes on).

use rill_abi::sdk::{Conn, Error, HttpRequest, Result};
use rill_abi::*;
use serde_json::json;

use crate::{lock, Record, Stop};

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
            _ => problem(conn, 404, "no such call"),
        }
    }
}
