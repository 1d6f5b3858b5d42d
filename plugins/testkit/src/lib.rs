//! `testkit`: a test-only Rill plugin written with the Rust SDK. Not
//! installed by `scripts/build-plugins`.
//!
//! Config (`plugins.testkit`): `listen: <ip:port>` (required), `udp:
//! <ip:port>` (optional), `http: true` (optional).
//!
//! - Every TCP connection on `listen` gets its bytes echoed back.
//! - A line that is exactly `panic` (`panic\n`, possibly split across
//!   reads) makes `on_data` panic, which the SDK turns into
//!   `RILL_ERR_PANIC` and an error log line; the host then ends that
//!   session only. `tests/tests/plugin_panic.rs` checks that.
//! - `on_frame` does the minimal work a muxer starts with: it reads the
//!   frame's info (one call back into the host) and counts the frame in its
//!   session. `host/benches/abi.rs` measures the cost of the ABI crossing
//!   with it (sessions subscribe to nothing, so only the bench calls it).
//! - A line that is exactly `udp` binds a UDP socket for that session
//!   (`udp_bind`) and writes `port <n>` back: datagrams to it are echoed
//!   with `s:` in front (`on_udp_data`).
//! - `udp`: an instance socket (`udp_listen`) echoing every datagram with
//!   `<instance id>:` in front (the id tells generations apart; the
//!   counter of datagrams answered by this instance goes in its drain log).
//! - `http`: `GET /testkit/later` answers 200 `later` after 2 s (a session
//!   timer), `GET /testkit/never` never answers (the host's deadline
//!   does), `POST /testkit/echo` echoes the body, `OPTIONS /testkit/echo`
//!   answers 204 with `allow: POST, OPTIONS`.
//! - Every stream event is logged as `stream event <n> <path>`.
//! - `connect_tls: <host:port>`: at create, connects there with TLS
//!   (`RILL_CONNECT_TLS`), sends `hello over tls`, and logs
//!   `tls reply: <line>` for the answer or `tls connect ended: <why>`.
//! - `record: true`: on each `RILL_STREAM_PUBLISHED`, a session without a
//!   socket (`session_open`) subscribes to the stream, counts its frames,
//!   and logs `recorded <path>: <n> frames, last dts <d>` when it ends.
//! - `panic_in: <callback>`: that callback panics every time (`create`,
//!   `drain`, `destroy`, `on_conn_open`, `on_data`, `on_close`, `on_timer`
//!   (a timer each connection starts at open), `on_http_request`,
//!   `on_udp_packet`), with the message `testkit panics in <callback>`.
//!   `tests/tests/plugin_panic.rs` goes through them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rill_abi::rill_log;
use rill_abi::sdk::{
    Body, Conn, Error, FrameRef, Host, HttpRequest, Plugin, Result, Subscriber, SubscriberId, Udp,
};

/// The line that makes the plugin panic.
const PANIC_LINE: &[u8] = b"panic";
/// Longest partial line kept while looking for `panic` (longer lines are
/// echoed and forgotten).
const MAX_LINE: usize = 64;

/// The instance socket's id.
const UDP_SOCKET: u32 = 1;
/// Route ids.
const ROUTE_LATER: u32 = 1;
const ROUTE_NEVER: u32 = 2;
const ROUTE_ECHO: u32 = 3;
/// The session timer that answers `/testkit/later`.
const TIMER_LATER: u64 = 1;
/// The timer each connection starts with `panic_in: on_timer`.
const TIMER_PANIC: u64 = 2;

/// The instance.
pub struct Testkit {
    host: Host,
    /// Tells this generation's UDP answers from another's.
    id: i64,
    /// Datagrams this instance answered.
    answered: AtomicU64,
    /// Record every published stream (`record: true`).
    record: bool,
    /// The callback that panics (`panic_in`).
    panic_in: Option<String>,
}

impl Testkit {
    /// Panics when `callback` is the one configured to.
    fn maybe_panic(&self, callback: &str) {
        if self.panic_in.as_deref() == Some(callback) {
            panic!("testkit panics in {callback}");
        }
    }
}

impl Drop for Testkit {
    fn drop(&mut self) {
        self.maybe_panic("destroy");
    }
}

/// One connection.
#[derive(Default)]
pub struct Session {
    /// The session's UDP socket, after a `udp` line.
    udp: Option<Udp>,
    /// An outbound TLS probe (`connect_tls`).
    tls_probe: bool,
    /// A recorder: the stream it records, and its subscription.
    record: Option<String>,
    sub: Option<Subscriber>,
    /// The current line so far (up to `MAX_LINE` bytes; `None` once longer).
    line: Option<Vec<u8>>,
    /// Frames seen by `on_frame`, and the last one's dts.
    frames: u64,
    last_dts: i64,
}

/// The value of a top-level `key:` line in the plugin's YAML section.
fn config_value<'a>(yaml: &'a str, key: &str) -> Option<&'a str> {
    yaml.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        let v = v.split(" #").next().unwrap_or(v).trim();
        Some(v.trim_matches(|c| c == '"' || c == '\''))
    })
}

impl Session {
    /// Feeds `data` to the line scanner; true when it completed a `panic` line.
    #[cfg(test)]
    fn saw_panic_line(&mut self, data: &[u8]) -> bool {
        self.scan_lines(data).0
    }

    /// Feeds `data` to the line scanner: whether it completed a `panic`
    /// line, and a `udp` line.
    fn scan_lines(&mut self, data: &[u8]) -> (bool, bool) {
        let (mut hit, mut udp) = (false, false);
        for &b in data {
            if b == b'\n' {
                if self.line.as_deref() == Some(PANIC_LINE) {
                    hit = true;
                }
                if self.line.as_deref() == Some(b"udp".as_slice()) {
                    udp = true;
                }
                self.line = Some(Vec::new());
            } else if let Some(l) = &mut self.line {
                if l.len() < MAX_LINE {
                    l.push(b);
                } else {
                    self.line = None;
                }
            }
        }
        (hit, udp)
    }
}

impl Plugin for Testkit {
    type Session = Session;
    const WANTS_STREAM_EVENTS: bool = true;
    const DESCRIPTION: &'static str = "test-only: TCP echo that panics on a `panic` line";

    fn create(host: &Host) -> Result<Self> {
        let config = host.config();
        let panic_in = config_value(&config, "panic_in").map(str::to_owned);
        if panic_in.as_deref() == Some("create") {
            panic!("testkit panics in create");
        }
        let Some(addr) = config_value(&config, "listen").filter(|a| !a.is_empty()) else {
            rill_log!(
                host,
                Error,
                "testkit: no `listen` address in its config section"
            );
            return Err(Error::INVALID);
        };
        host.listen(addr, 1, 0)?;
        rill_log!(host, Info, "testkit echoing on {addr}");
        let id = host.wall_us();
        if let Some(udp) = config_value(&config, "udp").filter(|a| !a.is_empty()) {
            host.udp_listen(udp, UDP_SOCKET)?;
            rill_log!(host, Info, "testkit instance {id} echoing UDP on {udp}");
        }
        if config_value(&config, "http") == Some("true") {
            host.http_route("GET", "/testkit/later", ROUTE_LATER)?;
            host.http_route("GET", "/testkit/never", ROUTE_NEVER)?;
            host.http_route("POST", "/testkit/echo", ROUTE_ECHO)?;
            host.http_route("OPTIONS", "/testkit/echo", ROUTE_ECHO)?;
        }
        if let Some(addr) = config_value(&config, "connect_tls").filter(|a| !a.is_empty()) {
            host.connect(
                addr,
                rill_abi::RILL_CONNECT_TLS,
                Session {
                    tls_probe: true,
                    ..Session::default()
                },
            )?;
        }
        Ok(Testkit {
            host: *host,
            id,
            answered: AtomicU64::new(0),
            record: config_value(&config, "record") == Some("true"),
            panic_in,
        })
    }

    fn drain(&self) {
        self.maybe_panic("drain");
        rill_log!(
            self.host,
            Info,
            "testkit instance {} draining after answering {} datagrams",
            self.id,
            self.answered.load(Ordering::Relaxed)
        );
    }

    fn on_udp_packet(&self, socket_id: u32, from: std::net::SocketAddr, data: &[u8]) -> Result<()> {
        self.maybe_panic("on_udp_packet");
        let mut reply = format!("{}:", self.id).into_bytes();
        reply.extend_from_slice(data);
        self.answered.fetch_add(1, Ordering::Relaxed);
        match self.host.udp_send(socket_id, from, &reply) {
            // A full queue drops the answer, as a network would.
            Ok(()) | Err(Error::AGAIN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn on_udp_data(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _socket_id: u32,
        from: &str,
        data: &[u8],
    ) -> Result<()> {
        let mut reply = b"s:".to_vec();
        reply.extend_from_slice(data);
        if let Some(u) = &s.udp {
            u.send_to(from, &reply)?;
        }
        Ok(())
    }

    fn on_http_request(
        &self,
        conn: &Conn,
        route_id: u32,
        req: &HttpRequest<'_>,
    ) -> Result<Session> {
        self.maybe_panic("on_http_request");
        match (route_id, req.method()) {
            (ROUTE_LATER, _) => {
                conn.timer_start(Duration::from_secs(2), false, TIMER_LATER)?;
            }
            (ROUTE_NEVER, _) => {}
            (ROUTE_ECHO, "OPTIONS") => {
                conn.http_respond(204, &[("allow", "POST, OPTIONS")], Body::Fixed(0))?;
                conn.close(rill_abi::RILL_END_NORMAL)?;
            }
            (ROUTE_ECHO, _) => {
                let body = req.body();
                conn.http_respond(
                    200,
                    &[("content-type", "application/octet-stream")],
                    Body::Fixed(body.len() as u64),
                )?;
                conn.write(body)?;
                conn.close(rill_abi::RILL_END_NORMAL)?;
            }
            _ => return Err(Error::NOT_FOUND),
        }
        Ok(Session::default())
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        self.maybe_panic("on_timer");
        if let (Some((_, conn)), TIMER_LATER) = (session, timer_id) {
            conn.http_respond(200, &[("content-type", "text/plain")], Body::Fixed(5))?;
            conn.write(b"later")?;
            conn.close(rill_abi::RILL_END_NORMAL)?;
        }
        Ok(())
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        rill_log!(self.host, Info, "stream event {event} {path}");
        if self.record && event == rill_abi::RILL_STREAM_PUBLISHED {
            self.host.session_open(Session {
                record: Some(path.to_owned()),
                ..Session::default()
            })?;
        }
        Ok(())
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        if s.tls_probe {
            conn.write(b"hello over tls\n")?;
        }
        if let Some(path) = &s.record {
            s.sub = Some(conn.subscribe(path, "", None)?);
        }
        Ok(())
    }

    fn on_subscribe_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        _reason: u32,
        why: &str,
    ) -> Result<()> {
        rill_log!(
            self.host,
            Info,
            "recorded {}: {} frames, last dts {} ({why})",
            s.record.as_deref().unwrap_or("?"),
            s.frames,
            s.last_dts
        );
        s.sub = None;
        conn.close(rill_abi::RILL_END_NORMAL)
    }

    fn on_conn_open(&self, conn: &Conn, _listener_id: u32) -> Result<Session> {
        self.maybe_panic("on_conn_open");
        if self.panic_in.as_deref() == Some("on_timer") {
            conn.timer_start(Duration::from_millis(100), false, TIMER_PANIC)?;
        }
        Ok(Session {
            line: Some(Vec::new()),
            ..Session::default()
        })
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        if s.tls_probe {
            let text = String::from_utf8_lossy(data);
            rill_log!(self.host, Info, "tls reply: {}", text.trim_end());
            return conn.close(rill_abi::RILL_END_NORMAL);
        }
        self.maybe_panic("on_data");
        let (panic, udp) = s.scan_lines(data);
        if panic {
            panic!("testkit asked to panic by {}", conn.peer_addr());
        }
        conn.write(data)?;
        if udp && s.udp.is_none() {
            let u = conn.udp_bind("127.0.0.1:0", 7)?;
            let port = u.local_addr().rsplit(':').next().unwrap_or("0").to_owned();
            s.udp = Some(u);
            conn.write(format!("port {port}\n").as_bytes())?;
        }
        Ok(())
    }

    fn on_close(&self, s: Session, conn: &Conn, _reason: u32, why: &str) {
        self.maybe_panic("on_close");
        if s.tls_probe {
            rill_log!(self.host, Info, "tls connect ended: {why}");
        }
        if s.frames > 0 {
            rill_log!(
                conn.host(),
                Debug,
                "testkit session ended ({why}) after {} frames, last dts {}",
                s.frames,
                s.last_dts
            );
        }
    }

    fn on_frame(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let info = frame.info();
        s.frames += 1;
        s.last_dts = info.dts;
        Ok(())
    }
}

rill_abi::export_plugin!(Testkit, "testkit");

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            line: Some(Vec::new()),
            ..Session::default()
        }
    }

    #[test]
    fn panic_line_is_found_whole_or_split() {
        let mut s = session();
        assert!(!s.saw_panic_line(b"hello\npanicky\n"));
        assert!(s.saw_panic_line(b"x\npanic\n"));
        let mut s = session();
        assert!(!s.saw_panic_line(b"pa"));
        assert!(!s.saw_panic_line(b"nic"));
        assert!(s.saw_panic_line(b"\n"));
        // Not a whole line: "xpanic".
        let mut s = session();
        assert!(!s.saw_panic_line(b"xpanic\n"));
        // A long line is forgotten, the next one counts again.
        let mut s = session();
        assert!(!s.saw_panic_line(&[b'a'; 200]));
        assert!(!s.saw_panic_line(b"panic\n"), "still the long line");
        assert!(s.saw_panic_line(b"panic\n"));
    }

    #[test]
    fn config_lines() {
        let y = "listen: 127.0.0.1:7000 # here\nother: 1\n";
        assert_eq!(config_value(y, "listen"), Some("127.0.0.1:7000"));
        assert_eq!(
            config_value("listen: '[::1]:9'\n", "listen"),
            Some("[::1]:9")
        );
        assert_eq!(config_value("  listen: x\n", "listen"), None);
        assert_eq!(config_value("listener: x\n", "listen"), None);
    }
}
