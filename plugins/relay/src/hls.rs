//! HLS pulls (`http(s)://….m3u8`). HLS is many requests, so an attempt is
//! a socket-less session that owns the local publisher and `rill-hls`'s
//! [`Puller`] (the playlist, the segments, their frames on one time line,
//! released at their pace), and every request is an outbound connection
//! of its own: a [`Fetch`] session that writes the GET, reads the response
//! with `rill-http`, and posts it whole ([`Fetched`]) back to the attempt.
//! One request is in flight at a time; the attempt's end closes it.

use bytes::{Bytes, BytesMut};
use rill_abi::sdk::{Conn, ConnId, Host};
use rill_abi::{rill_log, RILL_CONNECT_TLS, RILL_END_ERROR, RILL_END_NORMAL};
use rill_hls::pull::{Request as HlsRequest, Response, Stats, What};
use rill_hls::{PullConfig, Puller};
use rill_http::{redirect_location, Event, ResponseReader};

use crate::{Relay, Session, Stop, TIMER_SESSION};

/// The attempt's clock: frames are released on their time, to this
/// resolution.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(20);
const USER_AGENT: &str = "Rill relay";

/// One HLS attempt's state (in [`crate::pull::Pull`]).
pub struct HlsPull {
    pub puller: Puller,
    /// The request in flight: its connection and id.
    fetch: Option<(ConnId, u64)>,
}

impl HlsPull {
    pub fn new(url: &str, stall: std::time::Duration, now_us: i64) -> Result<HlsPull, String> {
        let url = rill_http::Url::parse(url).map_err(|e| format!("HLS: {e}"))?;
        let cfg = PullConfig {
            stall_us: stall.as_micros().min(i64::MAX as u128) as i64,
            ..PullConfig::default()
        };
        Ok(HlsPull {
            puller: Puller::new(url, cfg, now_us),
            fetch: None,
        })
    }

    /// Ends the request in flight (the attempt is over).
    pub fn close(&mut self, host: &Host) {
        if let Some((c, _)) = self.fetch.take() {
            let _ = host.post(c, Box::new(Stop("the attempt ended")));
        }
    }

    pub fn stats(&self) -> Stats {
        self.puller.stats()
    }
}

/// A response, whole, or why there is none: posted by a [`Fetch`] to its
/// attempt.
pub struct Fetched {
    id: u64,
    result: Result<Response, String>,
}

/// One request of an HLS attempt, on a connection of its own.
pub struct Fetch {
    pub job: u64,
    /// The attempt's session.
    owner: ConnId,
    id: u64,
    what: What,
    request: Vec<u8>,
    reader: ResponseReader,
    head: Option<(u16, String)>,
    body: BytesMut,
    /// Posted already.
    done: bool,
}

impl Relay {
    /// Makes the requests the puller wants (one at a time); a connection
    /// that cannot be opened is the request's failure.
    pub(crate) fn hls_requests(
        &self,
        job: u64,
        h: &mut HlsPull,
        owner: ConnId,
    ) -> Result<(), String> {
        let now = self.host.now_us();
        while h.fetch.is_none() {
            let Some(req) = h.puller.poll_request(now) else {
                break;
            };
            match self.hls_fetch(job, owner, &req) {
                Ok(c) => h.fetch = Some((c, req.id)),
                Err(e) => h
                    .puller
                    .on_response(now, req.id, Err(e))
                    .map_err(|e| e.to_string())?,
            }
        }
        Ok(())
    }

    fn hls_fetch(&self, job: u64, owner: ConnId, req: &HlsRequest) -> Result<ConnId, String> {
        let http = req.http(USER_AGENT);
        let request = http.encode().map_err(|e| format!("HTTP: {e}"))?;
        let host = req.url.host();
        let addr = if host.contains(':') {
            format!("[{host}]:{}", req.url.port())
        } else {
            format!("{host}:{}", req.url.port())
        };
        let flags = match req.url.scheme() {
            rill_http::Scheme::Https => RILL_CONNECT_TLS,
            rill_http::Scheme::Http => 0,
        };
        let fetch = Fetch {
            job,
            owner,
            id: req.id,
            what: req.what,
            request,
            reader: ResponseReader::new(&http, req.limits()),
            head: None,
            body: BytesMut::new(),
            done: false,
        };
        self.host
            .connect(&addr, flags, Session::Fetch(Box::new(fetch)))
            .map_err(|e| format!("connect to {addr}: {e}"))
    }

    /// A response (or its failure) for the attempt `p`.
    pub(crate) fn hls_fetched(
        &self,
        p: &mut crate::pull::Pull,
        conn: &Conn,
        msg: Fetched,
    ) -> rill_abi::sdk::Result<()> {
        let now = self.host.now_us();
        let Some(h) = p.hls() else {
            return Ok(());
        };
        if h.fetch.is_some_and(|(_, id)| id == msg.id) {
            h.fetch = None;
        }
        if let Err(e) = h.puller.on_response(now, msg.id, msg.result) {
            return self.pull_fail(p, conn, &e.to_string());
        }
        self.pull_pump(p, conn)
    }

    pub(crate) fn fetch_open(&self, f: &mut Fetch, conn: &Conn) -> rill_abi::sdk::Result<()> {
        conn.write(&f.request)?;
        // A safety net: the attempt ends a request unanswered for
        // stall_timeout, and this one when the attempt is gone.
        conn.timer_start(self.cfg.stall_timeout * 2, false, TIMER_SESSION)?;
        Ok(())
    }

    pub(crate) fn fetch_data(
        &self,
        f: &mut Fetch,
        conn: &Conn,
        data: &[u8],
    ) -> rill_abi::sdk::Result<()> {
        self.add_bytes(f.job, data.len());
        if let Err(e) = f.reader.feed(data) {
            self.fetch_done(f, Err(format!("HTTP: {e}")));
            return conn.close(RILL_END_ERROR);
        }
        while let Some(ev) = f.reader.poll_event() {
            match ev {
                Event::Head(h) if h.is_success() => {
                    if let Some(rill_http::Framing::Length(n)) = f.reader.framing() {
                        f.body.reserve((n as usize).min(1 << 20));
                    }
                    f.head = Some((h.status, h.reason));
                }
                Event::Head(h) => {
                    // The head says all there is to say.
                    let location = redirect_location(&h).map(str::to_owned);
                    self.fetch_done(
                        f,
                        Ok(Response {
                            status: h.status,
                            reason: h.reason,
                            location,
                            body: Bytes::new(),
                        }),
                    );
                    return conn.close(RILL_END_NORMAL);
                }
                Event::Body(b) => f.body.extend_from_slice(&b),
                Event::End => {
                    self.fetch_complete(f);
                    return conn.close(RILL_END_NORMAL);
                }
            }
        }
        Ok(())
    }

    /// The request timed out (the attempt is gone, or never asked).
    pub(crate) fn fetch_timer(&self, f: &mut Fetch, conn: &Conn) -> rill_abi::sdk::Result<()> {
        self.fetch_done(f, Err("no answer in time".into()));
        conn.close(RILL_END_ERROR)
    }

    pub(crate) fn fetch_closed(&self, mut f: Fetch, why: &str) {
        if f.done {
            return;
        }
        // A body delimited by the close ends here; a response cut short is
        // the reader's to tell, a connection that never answered the
        // host's.
        let result = match f.reader.finish() {
            Ok(()) if f.head.is_some() => return self.fetch_complete(&mut f),
            Err(e) if f.head.is_some() || why.is_empty() => format!("HTTP: {e}"),
            _ if why.is_empty() => "closed".to_owned(),
            _ => why.to_owned(),
        };
        self.fetch_done(&mut f, Err(result));
    }

    fn fetch_complete(&self, f: &mut Fetch) {
        let (status, reason) = f.head.take().unwrap_or((0, String::new()));
        let body = std::mem::take(&mut f.body).freeze();
        self.fetch_done(
            f,
            Ok(Response {
                status,
                reason,
                location: None,
                body,
            }),
        );
    }

    fn fetch_done(&self, f: &mut Fetch, result: Result<Response, String>) {
        if f.done {
            return;
        }
        f.done = true;
        if let Err(e) = &result {
            rill_log!(self.host, Debug, "relay {}: HLS {}: {e}", f.job, f.what);
        }
        // The attempt may be gone: then nobody waits for this.
        let _ = self
            .host
            .post(f.owner, Box::new(Fetched { id: f.id, result }));
    }
}
