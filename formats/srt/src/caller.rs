//! The calling side of the HSv5 handshake (the load generator, relays):
//! induction, then conclusion with the SRT handshake, the stream id and,
//! when encrypting, fresh key material. Requests are repeated every 250 ms
//! until answered.

use crate::conn::{Connection, Settings};
use crate::crypto::{KeyMaterial, Keys};
use crate::handshake::{hs_type, Handshake, SrtHs, HSV5_MAGIC, SRT_VERSION};
use crate::listener::{Config, FLAGS, FLOW_WINDOW, MTU};
use crate::packet::{Control, ControlPacket, Packet};
use crate::seq::Seq;
use crate::Error;

const RETRY: u64 = 250_000;

/// A handshake in progress.
pub struct Caller {
    cfg: Config,
    stream_id: Option<String>,
    id: u32,
    isn: Seq,
    start: u64,
    cookie: Option<u32>,
    km: Option<(Vec<u8>, Keys)>,
    last_sent: Option<u64>,
}

impl Caller {
    /// Starts a handshake at `now` for `stream_id`.
    pub fn new(cfg: Config, stream_id: Option<String>, now: u64) -> Result<Caller, Error> {
        let mut r = [0u8; 8];
        getrandom::getrandom(&mut r).map_err(|_| Error::Unsupported("no random source"))?;
        let km = match &cfg.passphrase {
            Some(p) => {
                let (m, keys) = KeyMaterial::generate(p, cfg.key_len)?;
                Some((m.to_vec(), keys))
            }
            None => None,
        };
        Ok(Caller {
            id: u32::from_be_bytes([r[0], r[1], r[2], r[3]]) & 0x3FFF_FFFF | 1,
            isn: Seq::new(u32::from_be_bytes([r[4], r[5], r[6], r[7]]) & 0x3FFF_FFFF),
            cfg,
            stream_id,
            start: now,
            cookie: None,
            km,
            last_sent: None,
        })
    }

    fn request(&self, now: u64) -> Vec<u8> {
        let h = match self.cookie {
            None => Handshake {
                version: 4,
                extension: 2,
                isn: self.isn,
                mtu: MTU,
                flow_window: FLOW_WINDOW,
                kind: hs_type::INDUCTION,
                socket_id: self.id,
                ..Default::default()
            },
            Some(cookie) => Handshake {
                version: 5,
                encryption: self
                    .km
                    .as_ref()
                    .map_or(0, |_| (self.cfg.key_len / 8) as u16),
                extension: 0,
                isn: self.isn,
                mtu: MTU,
                flow_window: FLOW_WINDOW,
                kind: hs_type::CONCLUSION,
                socket_id: self.id,
                cookie,
                peer_ip: [0; 16],
                srt: Some(SrtHs {
                    version: SRT_VERSION,
                    flags: FLAGS,
                    recv_delay_ms: self.cfg.latency_ms,
                    send_delay_ms: self.cfg.latency_ms,
                }),
                km: self.km.as_ref().map(|(m, _)| m.clone()),
                stream_id: self.stream_id.clone(),
                response: false,
            },
        };
        ControlPacket {
            control: Control::Handshake(h),
            timestamp: now.saturating_sub(self.start) as u32,
            dest: 0,
        }
        .to_vec()
    }

    /// The next request to send, when one is due.
    pub fn poll_transmit(&mut self, now: u64) -> Option<Vec<u8>> {
        if self
            .last_sent
            .is_some_and(|t| now.saturating_sub(t) < RETRY)
        {
            return None;
        }
        self.last_sent = Some(now);
        Some(self.request(now))
    }

    /// Takes the listener's answer: the connection once concluded.
    /// [`Error::Rejected`] carries a refusal's reason.
    pub fn handle(&mut self, now: u64, datagram: &[u8]) -> Result<Option<Connection>, Error> {
        let (h, ts) = match Packet::parse(datagram)? {
            Packet::Control(ControlPacket {
                control: Control::Handshake(h),
                timestamp,
                dest,
            }) if dest == self.id => (h, timestamp),
            _ => return Ok(None),
        };
        if let Some(reason) = h.rejection() {
            return Err(Error::Rejected(reason));
        }
        match (self.cookie, h.kind) {
            (None, hs_type::INDUCTION) => {
                if h.version != 5 || h.extension != HSV5_MAGIC {
                    return Err(Error::Unsupported("listener without HSv5"));
                }
                self.cookie = Some(h.cookie);
                self.last_sent = None;
                Ok(None)
            }
            (Some(_), hs_type::CONCLUSION) => {
                let srt = h.srt.ok_or(Error::Malformed("conclusion without HSRSP"))?;
                let keys = self.km.as_ref().map(|(_, k)| k.clone());
                let settings = Settings {
                    local_id: self.id,
                    peer_id: h.socket_id,
                    isn: self.isn,
                    recv_latency: u64::from(self.cfg.latency_ms.max(srt.send_delay_ms)) * 1000,
                    send_latency: u64::from(srt.recv_delay_ms) * 1000,
                    start: self.start,
                    peer_time_base: now as i64 - i64::from(ts),
                    keys,
                    passphrase: self.cfg.passphrase.clone(),
                    recv_buffer: self.cfg.recv_buffer,
                    send_buffer: self.cfg.send_buffer,
                    idle_timeout: self.cfg.idle_timeout,
                };
                Ok(Some(Connection::new(settings, now)))
            }
            _ => Ok(None),
        }
    }
}
