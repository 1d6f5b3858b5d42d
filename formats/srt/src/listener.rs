//! The listening side of the HSv5 handshake. Inductions are answered
//! without keeping state: the SYN cookie is an HMAC of the caller's address
//! and the minute, so a flood of inductions costs no memory. A conclusion
//! that returns a valid cookie is checked (version, live mode, encryption)
//! and comes out as a [`Pending`] the server admits or refuses.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::conn::{Connection, Settings};
use crate::crypto::{KeyMaterial, PASSPHRASE_LEN};
use crate::handshake::{hs_type, reject, srt_flag, Handshake, SrtHs, HSV5_MAGIC, SRT_VERSION};
use crate::packet::{Control, ControlPacket, Packet};
use crate::seq::Seq;
use crate::Error;

/// The flags this side announces (live mode, TSBPD both ways, too-late
/// drop, periodic NAK, retransmission flag).
pub const FLAGS: u32 = srt_flag::TSBPD_SND
    | srt_flag::TSBPD_RCV
    | srt_flag::HAICRYPT
    | srt_flag::TLPKTDROP
    | srt_flag::NAKREPORT
    | srt_flag::REXMITFLG;
/// The flow window announced, packets.
pub const FLOW_WINDOW: u32 = 8192;
/// The MTU announced.
pub const MTU: u32 = 1500;
const COOKIE_PERIOD: u64 = 60_000_000;

/// Settings of both sides' connections.
#[derive(Debug, Clone)]
pub struct Config {
    /// Receive latency and the least latency asked of the peer, ms.
    pub latency_ms: u16,
    /// Encryption passphrase (10–79 bytes), or none.
    pub passphrase: Option<String>,
    /// Key length in bytes (16, 24, 32) this side uses as a caller; a
    /// listener takes the caller's.
    pub key_len: usize,
    /// Receive buffer, packets.
    pub recv_buffer: usize,
    /// Send buffer, packets.
    pub send_buffer: usize,
    /// Silence after which a connection is closed, µs.
    pub idle_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            latency_ms: 120,
            passphrase: None,
            key_len: 16,
            recv_buffer: 8192,
            send_buffer: 8192,
            idle_timeout: 5_000_000,
        }
    }
}

impl Config {
    /// Checks the passphrase and key length.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.passphrase {
            if !PASSPHRASE_LEN.contains(&p.len()) {
                return Err("passphrase: 10 to 79 characters".into());
            }
        }
        if ![16, 24, 32].contains(&self.key_len) {
            return Err("key length: 16, 24 or 32 bytes (AES-128/192/256)".into());
        }
        if self.recv_buffer < 32 || self.send_buffer < 32 {
            return Err("buffers: at least 32 packets".into());
        }
        Ok(())
    }
}

/// What to do with a handshake datagram.
#[derive(Debug)]
pub enum Answer {
    /// Send these bytes back (the induction response, a rejection).
    Reply(Vec<u8>),
    /// A valid conclusion: admit it ([`Pending::accept`]) or refuse it
    /// ([`Pending::reject`]).
    Conclusion(Box<Pending>),
    /// Nothing to answer; why.
    Ignore(&'static str),
}

/// A caller that completed the handshake, waiting for the server's
/// decision.
#[derive(Debug)]
pub struct Pending {
    /// Where it came from.
    pub from: SocketAddr,
    /// Its socket id.
    pub caller_id: u32,
    /// Its stream id ("" when none was sent).
    pub stream_id: String,
    /// Whether it encrypts.
    pub encrypted: bool,
    /// Its key length in bytes (16, 24, 32), 0 when it does not encrypt.
    pub key_len: usize,
    request: Handshake,
    settings: Settings,
    km_echo: Option<Vec<u8>>,
    send_latency_ms: u16,
}

/// The listening side; one per UDP socket.
pub struct Listener {
    cfg: Config,
    secret: [u8; 32],
    id: u32,
}

fn ip_bytes(addr: SocketAddr) -> [u8; 16] {
    // libsrt writes the address as host-order 32-bit words.
    let mut out = [0u8; 16];
    match addr {
        SocketAddr::V4(a) => {
            let o = a.ip().octets();
            out[..4].copy_from_slice(&[o[3], o[2], o[1], o[0]]);
        }
        SocketAddr::V6(a) => {
            for (i, w) in a.ip().octets().chunks_exact(4).enumerate() {
                out[i * 4..i * 4 + 4].copy_from_slice(&[w[3], w[2], w[1], w[0]]);
            }
        }
    }
    out
}

fn handshake_packet(h: &Handshake, dest: u32, timestamp: u32) -> Vec<u8> {
    ControlPacket {
        control: Control::Handshake(h.clone()),
        timestamp,
        dest,
    }
    .to_vec()
}

impl Listener {
    /// A listener with a fresh cookie secret and its own socket id.
    pub fn new(cfg: Config) -> Result<Listener, Error> {
        let mut secret = [0; 32];
        getrandom::getrandom(&mut secret).map_err(|_| Error::Unsupported("no random source"))?;
        let mut id = [0; 4];
        getrandom::getrandom(&mut id).map_err(|_| Error::Unsupported("no random source"))?;
        Ok(Listener {
            cfg,
            secret,
            id: u32::from_be_bytes(id) & 0x3FFF_FFFF | 1,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn cookie(&self, from: SocketAddr, period: u64) -> u32 {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(&ip_bytes(from));
        mac.update(&from.port().to_be_bytes());
        mac.update(&period.to_be_bytes());
        let out = mac.finalize().into_bytes();
        u32::from_be_bytes([out[0], out[1], out[2], out[3]])
    }

    /// The cookie a caller at `from` must return at `now` (for tests and
    /// fuzzing, which cannot learn it from an induction).
    #[doc(hidden)]
    pub fn cookie_now(&self, from: SocketAddr, now: u64) -> u32 {
        self.cookie(from, now / COOKIE_PERIOD)
    }

    /// Answers one handshake datagram addressed to socket 0.
    pub fn handle(&self, now: u64, from: SocketAddr, datagram: &[u8]) -> Answer {
        let (h, ts) = match Packet::parse(datagram) {
            Ok(Packet::Control(ControlPacket {
                control: Control::Handshake(h),
                timestamp,
                ..
            })) => (h, timestamp),
            Ok(_) => return Answer::Ignore("not a handshake"),
            Err(_) => return Answer::Ignore("malformed handshake"),
        };
        let period = now / COOKIE_PERIOD;
        match h.kind {
            hs_type::INDUCTION => {
                let resp = Handshake {
                    version: 5,
                    encryption: 0,
                    extension: HSV5_MAGIC,
                    isn: h.isn,
                    mtu: h.mtu.min(MTU),
                    flow_window: h.flow_window.min(FLOW_WINDOW),
                    kind: hs_type::INDUCTION,
                    socket_id: self.id,
                    cookie: self.cookie(from, period),
                    peer_ip: ip_bytes(from),
                    ..Default::default()
                };
                Answer::Reply(handshake_packet(&resp, h.socket_id, 0))
            }
            hs_type::CONCLUSION => {
                if h.cookie != self.cookie(from, period)
                    && h.cookie != self.cookie(from, period.wrapping_sub(1))
                {
                    return Answer::Ignore("conclusion with a wrong cookie");
                }
                self.conclusion(now, from, h, ts)
            }
            _ => Answer::Ignore("unexpected handshake type"),
        }
    }

    fn refuse(&self, h: &Handshake, from: SocketAddr, reason: i32) -> Answer {
        Answer::Reply(rejection(self.id, h, from, reason))
    }

    fn conclusion(&self, now: u64, from: SocketAddr, h: Handshake, ts: u32) -> Answer {
        if h.version != 5 {
            return self.refuse(&h, from, reject::VERSION);
        }
        let Some(hs) = h.srt else {
            return self.refuse(&h, from, reject::VERSION);
        };
        if hs.flags & srt_flag::STREAM != 0 {
            return self.refuse(&h, from, reject::MESSAGE_API);
        }
        let (keys, key_len) = match (&self.cfg.passphrase, &h.km) {
            (None, None) => (None, 0),
            (Some(p), Some(km)) => {
                let unwrapped = KeyMaterial::parse(km).and_then(|m| Ok((m.unwrap(p)?, m.key_len)));
                match unwrapped {
                    Ok((keys, len)) => (Some(keys), len),
                    Err(_) => return self.refuse(&h, from, reject::BAD_SECRET),
                }
            }
            _ => return self.refuse(&h, from, reject::UNSECURE),
        };
        let recv_ms = self.cfg.latency_ms.max(hs.send_delay_ms);
        let send_ms = self.cfg.latency_ms.max(hs.recv_delay_ms);
        let settings = Settings {
            local_id: 0,
            peer_id: h.socket_id,
            isn: h.isn,
            recv_latency: u64::from(recv_ms) * 1000,
            send_latency: u64::from(send_ms) * 1000,
            start: now,
            peer_time_base: now as i64 - i64::from(ts),
            keys,
            passphrase: self.cfg.passphrase.clone(),
            recv_buffer: self.cfg.recv_buffer,
            send_buffer: self.cfg.send_buffer,
            idle_timeout: self.cfg.idle_timeout,
        };
        Answer::Conclusion(Box::new(Pending {
            from,
            caller_id: h.socket_id,
            stream_id: h.stream_id.clone().unwrap_or_default(),
            encrypted: settings.keys.is_some(),
            key_len,
            km_echo: h.km.clone(),
            send_latency_ms: send_ms,
            request: h,
            settings,
        }))
    }
}

fn rejection(id: u32, h: &Handshake, from: SocketAddr, reason: i32) -> Vec<u8> {
    let resp = Handshake {
        version: 5,
        kind: hs_type::REJECTION_BASE + reason,
        socket_id: id,
        peer_ip: ip_bytes(from),
        srt: None,
        km: None,
        stream_id: None,
        response: true,
        ..h.clone()
    };
    handshake_packet(&resp, h.socket_id, 0)
}

impl Pending {
    /// Accepts with socket id `local_id`: the connection, and the
    /// conclusion response to send (send it again if the caller repeats its
    /// conclusion).
    pub fn accept(self, local_id: u32, now: u64) -> (Connection, Vec<u8>) {
        let h = &self.request;
        let resp = Handshake {
            version: 5,
            encryption: 0,
            extension: 0,
            isn: h.isn,
            mtu: h.mtu.min(MTU),
            flow_window: h.flow_window.min(FLOW_WINDOW),
            kind: hs_type::CONCLUSION,
            socket_id: local_id,
            cookie: h.cookie,
            peer_ip: ip_bytes(self.from),
            srt: Some(SrtHs {
                version: SRT_VERSION,
                flags: FLAGS,
                recv_delay_ms: (self.settings.recv_latency / 1000) as u16,
                send_delay_ms: self.send_latency_ms,
            }),
            km: self.km_echo.clone(),
            stream_id: None,
            response: true,
        };
        let mut settings = self.settings;
        settings.local_id = local_id;
        let ts = now.saturating_sub(settings.start) as u32;
        let bytes = handshake_packet(&resp, h.socket_id, ts);
        (Connection::new(settings, now), bytes)
    }

    /// The rejection to send, `reason` one of [`reject`]'s.
    pub fn reject(&self, reason: i32) -> Vec<u8> {
        rejection(0, &self.request, self.from, reason)
    }
}

/// The isn of a pending caller (for tests and logs).
impl Pending {
    /// The initial sequence number.
    pub fn isn(&self) -> Seq {
        self.request.isn
    }
}
