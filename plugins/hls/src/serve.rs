//! Requests: what a URL names, and answering it now or once the muxer has
//! it (a held request registers with the stream and has a deadline).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{Body, Conn, Error, Flow, Result, TimerHandle};
use rill_abi::{RILL_END_NORMAL, RILL_WS_BINARY};
use rill_hls::playlist::multivariant;
use rill_hls::{BlockingRequest, Object, Readiness};

use crate::config::Config;
use crate::{lock, Blob, Hls, Stream};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
/// Media objects never change once listed (names are unique per stream
/// start: sequence numbers begin at the wall clock in ms).
const IMMUTABLE: &str = "public, max-age=86400, immutable";

/// What a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Multivariant {
        ts: bool,
    },
    Media {
        ts: bool,
    },
    Object(Object),
    /// Live fMP4.
    Live,
}

/// A live fMP4 viewer's position.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// The next part to send.
    cursor: Option<(u64, usize)>,
    /// The init segment it has.
    init_sent: u32,
    started: bool,
}

/// One HTTP request and its state.
pub struct Request {
    pub path: String,
    pub(crate) what: What,
    /// `?…` carried into every URI of a playlist (the client's credentials).
    suffix: String,
    blocking: BlockingRequest,
    pub head: bool,
    websocket: bool,
    pub admitted: bool,
    /// Answered (nothing more to do but close).
    pub done: bool,
    /// Its deadline passed: answer with what there is.
    pub expired: bool,
    /// Registered with the stream's waiters (until woken).
    pub waiting: bool,
    pub timer: Option<TimerHandle>,
    pub(crate) stream: Option<Arc<Mutex<Stream>>>,
    /// `If-None-Match`.
    pub etag: Option<String>,
    pub(crate) live: Option<Live>,
}

impl Request {
    pub(crate) fn new(
        path: String,
        what: What,
        query: &str,
        head: bool,
        websocket: bool,
    ) -> std::result::Result<Request, rill_hls::RequestError> {
        let blocking = BlockingRequest::parse(query)?;
        let carried: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("_HLS_") && !p.starts_with("format="))
            .collect();
        Ok(Request {
            path,
            what,
            suffix: if carried.is_empty() {
                String::new()
            } else {
                format!("?{}", carried.join("&"))
            },
            blocking,
            head,
            websocket,
            admitted: false,
            done: false,
            expired: false,
            waiting: false,
            timer: None,
            stream: None,
            etag: None,
            live: (what == What::Live).then(Live::default),
        })
    }
}

/// A stream path: `app/stream` (or deeper), plain characters, no empty or
/// dot segments.
fn stream_path(p: &str) -> Option<&str> {
    let ok = p.contains('/')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b));
    ok.then_some(p)
}

/// The stream and what of it a request path names.
pub(crate) fn parse_target(path: &str, query: &str, cfg: &Config) -> Option<(String, What)> {
    let p = path.strip_prefix('/')?;
    if let Some(stem) = p.strip_suffix(".m3u8") {
        let (parent, last) = stem.rsplit_once('/')?;
        let media = match last {
            "llhls" => Some(false),
            "ts" => Some(true),
            _ => None,
        };
        if let (Some(ts), Some(stream)) = (media, stream_path(parent)) {
            return Some((stream.to_owned(), What::Media { ts }));
        }
        let ts = match query.split('&').find_map(|kv| kv.strip_prefix("format=")) {
            Some("ts") => true,
            Some("ll") => false,
            _ => cfg.ts_default,
        };
        return Some((stream_path(stem)?.to_owned(), What::Multivariant { ts }));
    }
    if let Some(stem) = p.strip_suffix(".mp4") {
        return Some((stream_path(stem)?.to_owned(), What::Live));
    }
    let (parent, name) = p.rsplit_once('/')?;
    let object = Object::parse(name)?;
    Some((stream_path(parent)?.to_owned(), What::Object(object)))
}

/// Answers with a short text (errors).
pub(crate) fn text(conn: &Conn, status: u16, body: &str, head: bool) -> Result<()> {
    conn.http_respond(
        status,
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("access-control-allow-origin", "*"),
            ("cache-control", "no-cache"),
        ],
        Body::Fixed(body.len() as u64),
    )?;
    if !head {
        conn.write(body.as_bytes())?;
    }
    conn.close(RILL_END_NORMAL)
}

/// A playlist as served: its text and ETag (FNV-1a of the text).
#[derive(Clone)]
pub(crate) struct Rendered {
    body: Bytes,
    etag: Arc<str>,
}

impl Rendered {
    fn new(body: String) -> Rendered {
        let h = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Rendered {
            body: Bytes::from(body),
            etag: format!("\"{h:016x}\"").into(),
        }
    }
}

/// Most media playlists kept rendered per stream (one per variant and
/// suffix; a suffix per client, with tokens, renders per request).
const RENDERED: usize = 8;

impl Stream {
    /// The media playlist of a variant (`ts`) with `suffix` on its URIs,
    /// rendered once per change of the stream (`changed` forgets them).
    fn media_playlist(&mut self, ts: bool, suffix: &str) -> Rendered {
        if let Some((_, _, r)) = self
            .rendered
            .iter()
            .find(|(t, s, _)| *t == ts && s == suffix)
        {
            return r.clone();
        }
        let text = match (&self.ts, ts) {
            (Some(t), true) => t.playlist(suffix),
            _ => self.ll.playlist(suffix),
        };
        let r = Rendered::new(text);
        if self.rendered.len() < RENDERED {
            self.rendered.push((ts, suffix.to_owned(), r.clone()));
        }
        r
    }
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What to do with a request now.
enum Step {
    Playlist(Rendered),
    Blobs(&'static str, Vec<Blob>),
    /// Hold it, at most this long.
    Wait(Duration),
    Fail(u16, &'static str),
}

impl Hls {
    /// Answers `r` if it can be, or holds it.
    pub(crate) fn serve(&self, r: &mut Request, conn: &Conn) -> Result<()> {
        if r.done {
            return Ok(());
        }
        let st = match &r.stream {
            Some(s) => s.clone(),
            None => {
                let ts = matches!(
                    r.what,
                    What::Multivariant { ts: true }
                        | What::Media { ts: true }
                        | What::Object(Object::Ts(_))
                );
                let s = self.stream(&r.path, ts)?;
                if r.live.is_some() {
                    lock(&s).live_viewers += 1;
                }
                r.stream = Some(s.clone());
                s
            }
        };
        if r.live.is_some() {
            return self.live(r, conn, &st);
        }
        let mut g = lock(&st);
        let step = self.step(r, &mut g);
        let step = match step {
            Step::Wait(after) if !r.expired => match self.wait_on(
                &mut g,
                conn,
                &mut r.waiting,
                matches!(r.what, What::Object(_)),
            ) {
                Ok(()) => {
                    drop(g);
                    return self.arm(r, conn, after);
                }
                Err(_) => Step::Fail(503, "too many requests waiting for this stream\n"),
            },
            Step::Wait(_) => Step::Fail(404, "not available (yet)\n"),
            s => s,
        };
        drop(g);
        r.done = true;
        match step {
            Step::Playlist(Rendered { body, etag: tag }) => {
                if r.etag.as_deref() == Some(&*tag) {
                    conn.http_respond(
                        304,
                        &[("etag", &tag), ("access-control-allow-origin", "*")],
                        Body::Fixed(0),
                    )?;
                    return conn.close(RILL_END_NORMAL);
                }
                conn.http_respond(
                    200,
                    &[
                        ("content-type", PLAYLIST),
                        ("cache-control", "no-cache"),
                        ("access-control-allow-origin", "*"),
                        ("etag", &tag),
                    ],
                    Body::Fixed(body.len() as u64),
                )?;
                if !r.head {
                    conn.write(&body)?;
                }
                conn.close(RILL_END_NORMAL)
            }
            Step::Blobs(kind, blobs) => {
                let len: usize = blobs.iter().map(Blob::len).sum();
                conn.http_respond(
                    200,
                    &[
                        ("content-type", kind),
                        ("cache-control", IMMUTABLE),
                        ("access-control-allow-origin", "*"),
                    ],
                    Body::Fixed(len as u64),
                )?;
                if !r.head {
                    for b in &blobs {
                        write_blob(conn, b, false)?;
                    }
                }
                conn.close(RILL_END_NORMAL)
            }
            Step::Fail(status, why) => text(conn, status, why, r.head),
            Step::Wait(_) => unreachable!("handled above"),
        }
    }

    /// What the stream allows for `r` now.
    fn step(&self, r: &Request, g: &mut Stream) -> Step {
        let start = self.config.start_timeout;
        let hold = self.config.hold();
        match r.what {
            What::Multivariant { ts } => {
                let ready = if ts {
                    g.ts.as_ref().is_some_and(|t| t.has_segment())
                } else {
                    g.ll.has_segment()
                };
                if !ready || !g.ll.has_segment() {
                    return Step::Wait(start);
                }
                let (bw, name) = match (ts, &g.ts) {
                    (true, Some(t)) => (t.window().peak_bps(), "ts.m3u8"),
                    _ => (g.ll.window().peak_bps(), "llhls.m3u8"),
                };
                let uri = format!("{}/{name}{}", last_component(&r.path), r.suffix);
                Step::Playlist(Rendered::new(multivariant(
                    &uri,
                    bw,
                    g.ll.codecs(),
                    g.ll.resolution(),
                )))
            }
            What::Media { ts: false } => {
                if !g.ll.has_segment() {
                    return Step::Wait(start);
                }
                if let Some(msn) = r.blocking.msn {
                    match g.ll.window().readiness(msn, r.blocking.part) {
                        Readiness::TooFar => return Step::Fail(400, "_HLS_msn is too far ahead\n"),
                        Readiness::Wait if r.expired => {
                            return Step::Fail(503, "the requested part did not come in time\n")
                        }
                        Readiness::Wait => return Step::Wait(hold),
                        Readiness::Ready => {}
                    }
                }
                Step::Playlist(g.media_playlist(false, &r.suffix))
            }
            What::Media { ts: true } => match &g.ts {
                Some(t) if t.has_segment() => Step::Playlist(g.media_playlist(true, &r.suffix)),
                _ => Step::Wait(start),
            },
            What::Object(Object::Init(id)) => match g.ll.init(id) {
                Some(b) => Step::Blobs("video/mp4", vec![b.clone()]),
                None => Step::Fail(404, "no such init segment\n"),
            },
            What::Object(Object::Part(m, i)) => {
                let w = g.ll.window();
                if let Some(p) = w.part(m, i) {
                    return Step::Blobs("video/mp4", vec![p.data.clone()]);
                }
                // The part being made (the preload hint) or the first of
                // the next segment: hold until it exists.
                let (nm, ni) = w.next_part();
                if (m == nm && i >= ni && i <= ni + 1) || (m == nm + 1 && i == 0) {
                    return Step::Wait(hold);
                }
                Step::Fail(404, "no such part\n")
            }
            What::Object(Object::Segment(m)) => {
                let w = g.ll.window();
                match w.segment(m) {
                    Some(s) if s.complete => Step::Blobs(
                        "video/mp4",
                        s.parts.iter().map(|p| p.data.clone()).collect(),
                    ),
                    Some(_) => Step::Wait(hold),
                    None if m == w.next_part().0 => Step::Wait(hold),
                    None => Step::Fail(404, "no such segment\n"),
                }
            }
            What::Object(Object::Ts(m)) => {
                let Some(t) = &g.ts else {
                    return Step::Wait(start);
                };
                let w = t.window();
                match w.segment(m) {
                    Some(s) if s.complete => Step::Blobs(
                        "video/mp2t",
                        s.parts.iter().map(|p| p.data.clone()).collect(),
                    ),
                    Some(_) => Step::Wait(hold),
                    None => Step::Fail(404, "no such segment\n"),
                }
            }
            What::Live => Step::Fail(500, "live requests are served apart\n"),
        }
    }

    /// A live fMP4 viewer: init, then every part from the latest
    /// independent one, as they come. A viewer that falls out of the
    /// window skips to the newest independent part.
    fn live(&self, r: &mut Request, conn: &Conn, st: &Arc<Mutex<Stream>>) -> Result<()> {
        let ws = r.websocket;
        let head = r.head;
        let expired = r.expired;
        let Some(l) = r.live.as_mut() else {
            return Ok(());
        };
        let mut g = lock(st);
        loop {
            let w = g.ll.window();
            let cursor = match l.cursor {
                Some((m, _)) if m < w.first_msn() => None,
                c => c,
            };
            let cursor = match cursor {
                Some(c) => c,
                None => match latest_independent(w) {
                    Some(c) => c,
                    None if !l.started && expired => {
                        drop(g);
                        r.done = true;
                        return text(conn, 404, "no media yet\n", head);
                    }
                    None => {
                        self.wait_on(&mut g, conn, &mut r.waiting, true)?;
                        drop(g);
                        if !l.started {
                            return self.arm(r, conn, self.config.start_timeout);
                        }
                        return Ok(());
                    }
                },
            };
            l.cursor = Some(cursor);
            if !l.started {
                l.started = true;
                if ws {
                    conn.upgrade_websocket(&[])?;
                } else {
                    conn.http_respond(
                        200,
                        &[
                            ("content-type", "video/mp4"),
                            ("cache-control", "no-cache"),
                            ("access-control-allow-origin", "*"),
                        ],
                        Body::Chunked,
                    )?;
                }
            }
            let (m, i) = cursor;
            let Some(seg) = w.segment(m) else {
                self.wait_on(&mut g, conn, &mut r.waiting, true)?;
                return Ok(());
            };
            let Some(part) = seg.parts.get(i) else {
                if seg.complete {
                    l.cursor = Some((m + 1, 0));
                    continue;
                }
                self.wait_on(&mut g, conn, &mut r.waiting, true)?;
                return Ok(());
            };
            if l.init_sent != seg.init {
                let Some(init) = g.ll.init(seg.init) else {
                    l.cursor = None;
                    continue;
                };
                write_blob(conn, init, ws)?;
                l.init_sent = seg.init;
            }
            let flow = write_blob(conn, &part.data, ws)?;
            l.cursor = Some((m, i + 1));
            if flow == Flow::Full {
                // on_writable resumes.
                return Ok(());
            }
        }
    }
}

/// The newest part that starts with a key frame.
fn latest_independent<P>(w: &rill_hls::Window<P>) -> Option<(u64, usize)> {
    let segs: Vec<_> = w.segments().collect();
    segs.iter().rev().find_map(|s| {
        s.parts
            .iter()
            .rposition(|p| p.independent)
            .map(|i| (s.msn, i))
    })
}

fn write_blob(conn: &Conn, b: &Blob, ws: bool) -> Result<Flow> {
    if ws {
        return conn.ws_send(RILL_WS_BINARY, b.data());
    }
    match b {
        Blob::Frame(f) => conn.write_frame(f),
        Blob::Heap(h) => conn.write(h),
    }
    .or_else(|e| {
        if e == Error::AGAIN {
            Ok(Flow::Full)
        } else {
            Err(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let c = Config::default();
        let t = |p: &str, q: &str| parse_target(p, q, &c);
        assert_eq!(
            t("/live/x.m3u8", ""),
            Some(("live/x".into(), What::Multivariant { ts: false }))
        );
        assert_eq!(
            t("/live/x.m3u8", "format=ts"),
            Some(("live/x".into(), What::Multivariant { ts: true }))
        );
        assert_eq!(
            t("/live/x/llhls.m3u8", ""),
            Some(("live/x".into(), What::Media { ts: false }))
        );
        assert_eq!(
            t("/live/x/ts.m3u8", ""),
            Some(("live/x".into(), What::Media { ts: true }))
        );
        assert_eq!(
            t("/live/x/p5.2.m4s", ""),
            Some(("live/x".into(), What::Object(Object::Part(5, 2))))
        );
        assert_eq!(
            t("/live/x/t7.ts", ""),
            Some(("live/x".into(), What::Object(Object::Ts(7))))
        );
        assert_eq!(t("/live/x.mp4", ""), Some(("live/x".into(), What::Live)));
        for bad in [
            "/x.m3u8",
            "/live/../x.m3u8",
            "/live/x/y.m4s",
            "/live/x/p1.m4s",
            "live/x.m3u8",
            "/live/a b.mp4",
        ] {
            assert_eq!(t(bad, ""), None, "{bad}");
        }
    }

    #[test]
    fn queries_carried_into_uris() {
        let r = Request::new(
            "live/x".into(),
            What::Media { ts: false },
            "_HLS_msn=3&expires=9&token=ab&format=ll",
            false,
            false,
        )
        .unwrap();
        assert_eq!(r.suffix, "?expires=9&token=ab");
        assert_eq!(r.blocking.msn, Some(3));
        assert!(Request::new(
            "live/x".into(),
            What::Media { ts: false },
            "_HLS_part=1",
            false,
            false
        )
        .is_err());
    }
}
