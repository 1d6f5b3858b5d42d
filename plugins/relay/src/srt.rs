//! SRT for pulls and pushes: one caller (`rill-srt`'s [`Caller`], then its
//! [`Connection`]) over a UDP socket the attempt's session binds through
//! the host. A pull delivers MPEG-TS payloads (demuxed by `rill-ts`); a
//! push sends the local stream muxed by `rill-ts`'s live muxer, 7 TS
//! packets a datagram, as every encoder does.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_abi::sdk::{Conn, Error, Udp};
use rill_srt::handshake::reject;
use rill_srt::{Caller, CallerParams, Closed, Connection, Stats};
use rill_ts::{LiveMuxer, MuxerConfig};

use crate::source::Url;

/// The session's socket id.
pub const SOCKET: u32 = 1;
/// The connection's clocks (ACK, NAK, delivery) want this resolution.
pub const TICK: Duration = Duration::from_millis(10);
/// TS packets per SRT payload (1316 bytes).
const TS_PER_PAYLOAD: usize = 7;
/// Datagrams a push may have waiting for the socket; older ones are
/// dropped (they stay in the send buffer: the far end's loss reports
/// bring back what still matters).
const MAX_BACKLOG: usize = 1024;
/// Past this many datagrams waiting, a push skips to the next key frame.
pub const BEHIND: usize = MAX_BACKLOG / 2;

/// One SRT caller: handshaking, then connected.
pub struct Link {
    udp: Udp,
    to: SocketAddr,
    to_text: String,
    caller: Option<Caller>,
    conn: Option<Connection>,
}

impl Link {
    /// Binds the socket (on `conn`'s session) and starts the handshake.
    pub fn open(conn: &Conn, url: &Url, now: u64) -> Result<Link, String> {
        let to = url
            .socket_addr()
            .ok_or_else(|| format!("{url}: not an IP address and port"))?;
        let params = CallerParams::parse(url.query())?;
        let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let udp = conn
            .udp_bind(any, SOCKET)
            .map_err(|e| format!("UDP bind: {e}"))?;
        let caller =
            Caller::new(params.config(), params.stream_id, now).map_err(|e| format!("SRT: {e}"))?;
        let mut link = Link {
            udp,
            to,
            to_text: to.to_string(),
            caller: Some(caller),
            conn: None,
        };
        link.flush(now);
        Ok(link)
    }

    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// A datagram arrived. `Ok(true)`: the handshake concluded with it.
    /// Datagrams from another address, or that do not parse, are dropped.
    pub fn datagram(&mut self, now: u64, from: &str, data: &[u8]) -> Result<bool, String> {
        if from.parse::<SocketAddr>().ok() != Some(self.to) {
            return Ok(false);
        }
        if let Some(c) = self.conn.as_mut() {
            let _ = c.handle(now, data);
            self.flush(now);
            return Ok(false);
        }
        let Some(caller) = self.caller.as_mut() else {
            return Ok(false);
        };
        match caller.handle(now, data) {
            Ok(Some(c)) => {
                self.conn = Some(c);
                self.caller = None;
                Ok(true)
            }
            Ok(None) | Err(rill_srt::Error::Malformed(_)) => Ok(false),
            Err(rill_srt::Error::Rejected(r)) => {
                Err(format!("SRT: refused: {} ({r})", reject::describe(r)))
            }
            Err(e) => Err(format!("SRT handshake: {e}")),
        }
    }

    /// Runs the clocks (handshake repeats, ACKs, NAKs, keep-alives) and
    /// sends; the connection's end is an error.
    pub fn tick(&mut self, now: u64) -> Result<(), String> {
        if let Some(c) = self.conn.as_mut() {
            c.tick(now);
            match c.closed() {
                None => {}
                Some(Closed::Shutdown) => return Err("SRT: the far end closed".into()),
                Some(Closed::Timeout) => {
                    return Err(format!(
                        "SRT: nothing from the far end for {} s",
                        c.settings().idle_timeout / 1_000_000
                    ))
                }
                Some(Closed::Local) => return Err("SRT: closed".into()),
            }
        }
        self.flush(now);
        Ok(())
    }

    /// Payloads due for delivery (a pull's TS).
    pub fn deliver(&mut self, now: u64, out: &mut Vec<Bytes>) {
        if let Some(c) = self.conn.as_mut() {
            while let Some(p) = c.poll_deliver(now) {
                out.push(p);
            }
            // ACKs for what was delivered.
            self.flush(now);
        }
    }

    /// Sends TS bytes (a push), 7 packets a datagram; returns the bytes
    /// taken.
    pub fn send_ts(&mut self, now: u64, ts: &[u8]) -> usize {
        let Some(c) = self.conn.as_mut() else {
            return 0;
        };
        let mut n = 0;
        for chunk in ts.chunks(188 * TS_PER_PAYLOAD) {
            if c.send(now, chunk).is_err() {
                break;
            }
            n += chunk.len();
        }
        self.flush(now);
        if let Some(c) = self.conn.as_mut() {
            c.trim_transmit(MAX_BACKLOG);
        }
        n
    }

    /// Datagrams waiting for the socket.
    pub fn backlog(&self) -> usize {
        self.conn.as_ref().map_or(0, Connection::transmit_backlog)
    }

    /// Sends what is due until the socket's queue is full; the rest waits
    /// for the next tick.
    fn flush(&mut self, now: u64) {
        if let Some(caller) = self.caller.as_mut() {
            if let Some(d) = caller.poll_transmit(now) {
                let _ = self.udp.send_to(&self.to_text, &d);
            }
        }
        if let Some(c) = self.conn.as_mut() {
            while let Some(d) = c.poll_transmit() {
                if self.udp.send_to(&self.to_text, &d) == Err(Error::AGAIN) {
                    c.unpoll_transmit(d);
                    break;
                }
            }
        }
    }

    /// Ends the connection: a SHUTDOWN to the far end.
    pub fn close(&mut self, now: u64) {
        if let Some(c) = self.conn.as_mut() {
            c.close(now);
        }
        self.flush(now);
    }

    pub fn stats(&self) -> Option<Stats> {
        self.conn.as_ref().map(Connection::stats)
    }
}

/// A push's muxer: the local stream as one continuous TS.
pub struct TsOut {
    mux: LiveMuxer,
    buf: BytesMut,
}

impl TsOut {
    pub fn new() -> TsOut {
        TsOut {
            mux: LiveMuxer::new(MuxerConfig::default()),
            buf: BytesMut::new(),
        }
    }

    /// The TS bytes of one frame (none for config frames, frames before
    /// the first key frame, codecs TS does not carry).
    pub fn push(&mut self, f: &rill_ts::Frame) -> Result<Bytes, rill_ts::Error> {
        self.buf.clear();
        self.mux.push(f, &mut self.buf)?;
        Ok(self.buf.split().freeze())
    }
}
