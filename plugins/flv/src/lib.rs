//! HTTP-FLV and WebSocket-FLV: `GET /{app}/{stream}.flv` streams the live
//! stream `app/stream` as FLV, over a chunked HTTP body or, with a WebSocket
//! upgrade, as binary messages (the FLV header, then one tag per message),
//! which is what flv.js and mpegts.js read.
//!
//! Who may play is the host's decision (`admit`): a refusal is answered
//! 401/403/503 before anything streams.
//!
//! A request for a stream nobody publishes waits in the host's wait queue
//! and gets 404 when the wait times out. Each tag is muxed once per frame
//! and shared by every viewer through the frame cache (timestamps are the
//! stream's own, so the bytes are the same for everyone).

#![forbid(unsafe_code)]

use rill_abi::sdk::{
    Admission, Body, Conn, FrameInfo, FrameRef, Host, HttpRequest, Plugin, Result, Subscriber,
    SubscriberId,
};
use rill_abi::*;
use rill_flv::stream::{header, tag_header};
use rill_flv::tag::{mux_prefix, Frame};

/// Cache key of a frame's FLV tag (header, body, previous tag size).
const TAG_KEY: u64 = u64::from_le_bytes(*b"flv-tag1");

const ROUTE_FLV: u32 = 1;

pub struct Flv {
    host: Host,
}

pub struct Session {
    /// Held for the session's life: dropping it unsubscribes. `None` while
    /// the host's admission asks a webhook.
    sub: Option<Subscriber>,
    /// The stream and query, kept for the subscription after admission.
    path: String,
    query: String,
    websocket: bool,
    answered: bool,
}

/// The one admission ticket a session asks with.
const TICKET: u64 = 1;

/// `/live/test.flv` → `live/test`; None when it is not a stream path.
fn stream_path(path: &str) -> Option<&str> {
    let p = path.strip_prefix('/')?.strip_suffix(".flv")?;
    let ok = p.contains('/')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b));
    ok.then_some(p)
}

/// The frame as one FLV tag, in one buffer the host owns.
fn mux_tag(host: &Host, f: &FrameRef) -> Result<FrameRef> {
    let info = f.info();
    let data = f.data();
    let probe = Frame {
        codec: info.codec,
        flags: info.flags,
        pts: info.pts,
        dts: info.dts,
        payload: Default::default(),
    };
    let prefix = mux_prefix(&probe).map_err(|_| rill_abi::sdk::Error::UNSUPPORTED)?;
    let body_len = prefix.as_bytes().len() + data.len();
    let mut buf = host.frame_alloc(11 + body_len + 4)?;
    {
        let out = buf.as_mut_slice();
        out[..11].copy_from_slice(&tag_header(prefix.tag_type, prefix.timestamp, body_len));
        let p = prefix.as_bytes();
        out[11..11 + p.len()].copy_from_slice(p);
        out[11 + p.len()..11 + body_len].copy_from_slice(data);
        out[11 + body_len..].copy_from_slice(&((11 + body_len) as u32).to_be_bytes());
    }
    buf.freeze(11 + body_len + 4, &FrameInfo::new())
}

impl Plugin for Flv {
    type Session = Session;
    const DESCRIPTION: &'static str = "HTTP-FLV and WebSocket-FLV players";

    fn create(host: &Host) -> Result<Self> {
        // Players hold their response for as long as they watch: the host
        // serves it on a connection of its own (no HTTP server buffers).
        host.http_route_flags("GET", "*.flv", ROUTE_FLV, rill_abi::RILL_ROUTE_STREAM)?;
        Ok(Flv { host: *host })
    }

    fn on_http_request(&self, conn: &Conn, _route: u32, req: &HttpRequest<'_>) -> Result<Session> {
        let Some(path) = stream_path(req.path()) else {
            return Err(rill_abi::sdk::Error::NOT_FOUND);
        };
        // Refused now: the host answers (401 with a challenge, 403, 503).
        let admitted = conn.admit(&Admission::play(path, req.query()), TICKET)?;
        let sub = match admitted {
            true => Some(conn.subscribe(path, req.query(), None)?),
            false => None,
        };
        Ok(Session {
            sub,
            path: path.to_owned(),
            query: req.query().to_owned(),
            websocket: req.wants_websocket(),
            answered: false,
        })
    }

    fn on_admit(
        &self,
        s: &mut Session,
        conn: &Conn,
        _ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        let refused = match result.and_then(|()| conn.subscribe(&s.path, &s.query, None)) {
            Ok(sub) => {
                s.sub = Some(sub);
                return Ok(());
            }
            Err(e) => e,
        };
        let (status, msg) = match refused {
            rill_abi::sdk::Error::UNAUTHORIZED => (401, "authentication required or failed\n"),
            rill_abi::sdk::Error::BUSY => (503, "too many players\n"),
            rill_abi::sdk::Error::NOT_FOUND => (404, "no such stream\n"),
            _ => (403, "playing not allowed\n"),
        };
        s.answered = true;
        conn.http_respond(
            status,
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("access-control-allow-origin", "*"),
                ("www-authenticate", "Bearer realm=\"rill\""),
            ][..if status == 401 { 3 } else { 2 }],
            Body::Fixed(msg.len() as u64),
        )?;
        conn.write(msg.as_bytes())?;
        conn.close(RILL_END_NORMAL)
    }

    fn on_subscribe_start(&self, s: &mut Session, conn: &Conn, _sub: SubscriberId) -> Result<()> {
        if s.answered {
            return Ok(());
        }
        s.answered = true;
        if s.websocket {
            conn.upgrade_websocket(&[])?;
        } else {
            conn.http_respond(
                200,
                &[
                    ("content-type", "video/x-flv"),
                    ("cache-control", "no-cache"),
                    ("access-control-allow-origin", "*"),
                ],
                Body::Chunked,
            )?;
        }
        conn.write(&header(true, true)).map(drop)
    }

    fn on_frame(
        &self,
        _s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        match frame.cache_get_or(TAG_KEY, |f| mux_tag(&self.host, f)) {
            Ok(tag) => conn.write_frame(&tag).map(drop),
            // A codec FLV cannot carry: skip that frame, keep the stream.
            Err(e) if e == rill_abi::sdk::Error::UNSUPPORTED => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn on_subscribe_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        if !s.answered {
            s.answered = true;
            let status = if reason == RILL_END_TIMEOUT { 404 } else { 503 };
            let msg = format!("{why}\n");
            conn.http_respond(
                status,
                &[
                    ("content-type", "text/plain; charset=utf-8"),
                    ("access-control-allow-origin", "*"),
                ],
                Body::Fixed(msg.len() as u64),
            )?;
            conn.write(msg.as_bytes())?;
        }
        // A player dropped as too slow is ended as such: the host then
        // neither waits to flush to it nor to close its WebSocket.
        conn.close(if reason == RILL_END_TOO_SLOW {
            RILL_END_TOO_SLOW
        } else {
            RILL_END_NORMAL
        })
    }
}

rill_abi::export_plugin!(Flv, "flv");

#[cfg(test)]
mod tests {
    use super::stream_path;

    #[test]
    fn stream_paths() {
        assert_eq!(stream_path("/live/test.flv"), Some("live/test"));
        assert_eq!(stream_path("/a/b/c.flv"), Some("a/b/c"));
        for bad in [
            "/test.flv",
            "/live/test",
            "/live/../x.flv",
            "live/x.flv",
            "/live//x.flv",
            "/live/a b.flv",
        ] {
            assert_eq!(stream_path(bad), None, "{bad}");
        }
    }
}
