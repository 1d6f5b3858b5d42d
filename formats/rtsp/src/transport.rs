//! The headers with structure: Transport (RFC 2326 §12.39), Range (npt,
//! §3.6, §12.29), RTP-Info (§12.33), Session (§12.37) and Public (§12.28).

use std::fmt::{self, Write as _};

use crate::error::Error;
use crate::message::Method;

/// The lower transport of RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    /// RTP over UDP (`RTP/AVP` or `RTP/AVP/UDP`).
    Udp,
    /// RTP interleaved on the RTSP connection (`RTP/AVP/TCP`).
    Tcp,
}

/// `mode=` of a Transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The client receives (the default).
    Play,
    /// The client sends (ANNOUNCE/RECORD).
    Record,
}

/// One transport specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, ... (without the lower transport).
    pub profile: String,
    /// UDP or TCP.
    pub lower: Lower,
    /// `unicast` (true) or `multicast` (false).
    pub unicast: bool,
    /// `interleaved=a-b`.
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=a-b`.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=a-b`.
    pub server_port: Option<(u16, u16)>,
    /// `mode=`.
    pub mode: Option<Mode>,
    /// `ssrc=` (hex).
    pub ssrc: Option<u32>,
    /// `destination=`.
    pub destination: Option<String>,
    /// `source=`.
    pub source: Option<String>,
    /// `ttl=`.
    pub ttl: Option<u8>,
}

impl Transport {
    /// A unicast `RTP/AVP` transport of `lower`, nothing else set.
    pub fn new(lower: Lower) -> Transport {
        Transport {
            profile: "RTP/AVP".into(),
            lower,
            unicast: true,
            interleaved: None,
            client_port: None,
            server_port: None,
            mode: None,
            ssrc: None,
            destination: None,
            source: None,
            ttl: None,
        }
    }

    /// The alternatives of a Transport header, in the client's order of
    /// preference; the ones that do not parse are left out.
    pub fn parse_list(header: &str) -> Vec<Transport> {
        header
            .split(',')
            .take(16)
            .filter_map(|t| Transport::parse(t).ok())
            .collect()
    }

    /// Parses one transport specification.
    pub fn parse(spec: &str) -> Result<Transport, Error> {
        let mut parts = spec.trim().split(';');
        let proto = parts.next().unwrap_or("").trim().to_ascii_uppercase();
        let mut segs = proto.split('/');
        let (Some(a), Some(b)) = (segs.next(), segs.next()) else {
            return Err(Error::Malformed("transport protocol"));
        };
        if a != "RTP" {
            return Err(Error::Unsupported("transport protocol"));
        }
        let lower = match segs.next() {
            None | Some("UDP") => Lower::Udp,
            Some("TCP") => Lower::Tcp,
            Some(_) => return Err(Error::Unsupported("lower transport")),
        };
        if segs.next().is_some() {
            return Err(Error::Malformed("transport protocol"));
        }
        let mut t = Transport::new(lower);
        t.profile = format!("RTP/{b}");
        for p in parts {
            let p = p.trim();
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            };
            match (k.to_ascii_lowercase().as_str(), v) {
                ("unicast", None) => t.unicast = true,
                ("multicast", None) => t.unicast = false,
                ("interleaved", Some(v)) => {
                    t.interleaved = Some(pair(v, |x: u8| x.checked_add(1))?);
                }
                ("client_port", Some(v)) => {
                    t.client_port = Some(pair(v, |x: u16| x.checked_add(1))?)
                }
                ("server_port", Some(v)) => {
                    t.server_port = Some(pair(v, |x: u16| x.checked_add(1))?)
                }
                ("mode", Some(v)) => {
                    t.mode = Some(match v.to_ascii_lowercase().as_str() {
                        "play" => Mode::Play,
                        "record" | "receive" => Mode::Record,
                        _ => return Err(Error::Unsupported("transport mode")),
                    })
                }
                ("ssrc", Some(v)) => {
                    t.ssrc = Some(u32::from_str_radix(v, 16).map_err(|_| Error::Malformed("ssrc"))?)
                }
                ("destination", Some(v)) => t.destination = Some(v.chars().take(256).collect()),
                ("source", Some(v)) => t.source = Some(v.chars().take(256).collect()),
                ("ttl", Some(v)) => t.ttl = Some(v.parse().map_err(|_| Error::Malformed("ttl"))?),
                // append, layers, port and anything new: not needed.
                _ => {}
            }
        }
        Ok(t)
    }
}

fn pair<T: std::str::FromStr + Copy>(
    v: &str,
    next: impl Fn(T) -> Option<T>,
) -> Result<(T, T), Error> {
    let bad = Error::Malformed("port or channel pair");
    match v.split_once('-') {
        Some((a, b)) => Ok((
            a.trim().parse().map_err(|_| bad.clone())?,
            b.trim().parse().map_err(|_| bad)?,
        )),
        None => {
            let a: T = v.parse().map_err(|_| bad.clone())?;
            Ok((a, next(a).ok_or(bad)?))
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.profile)?;
        if self.lower == Lower::Tcp {
            f.write_str("/TCP")?;
        }
        f.write_str(if self.unicast {
            ";unicast"
        } else {
            ";multicast"
        })?;
        if let Some(d) = &self.destination {
            write!(f, ";destination={d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, ";source={s}")?;
        }
        if let Some((a, b)) = self.interleaved {
            write!(f, ";interleaved={a}-{b}")?;
        }
        if let Some((a, b)) = self.client_port {
            write!(f, ";client_port={a}-{b}")?;
        }
        if let Some((a, b)) = self.server_port {
            write!(f, ";server_port={a}-{b}")?;
        }
        if let Some(t) = self.ttl {
            write!(f, ";ttl={t}")?;
        }
        if let Some(s) = self.ssrc {
            write!(f, ";ssrc={s:08X}")?;
        }
        match self.mode {
            Some(Mode::Play) => f.write_str(";mode=play")?,
            Some(Mode::Record) => f.write_str(";mode=record")?,
            None => {}
        }
        Ok(())
    }
}

/// The start of an npt range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NptStart {
    /// `now` (live).
    Now,
    /// Seconds.
    Seconds(f64),
}

/// A Range of normal play time (`npt=0-`, `npt=now-`, `npt=10.5-20`).
/// Other units (clock, smpte) are not parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Start.
    pub start: NptStart,
    /// End, seconds.
    pub end: Option<f64>,
}

impl Range {
    /// `npt=0.000-`, the live range a server answers.
    pub fn live() -> Range {
        Range {
            start: NptStart::Seconds(0.0),
            end: None,
        }
    }

    /// Parses a Range header; `Err(Unsupported)` for units other than npt.
    pub fn parse(v: &str) -> Result<Range, Error> {
        let v = v.split(';').next().unwrap_or("").trim();
        let Some(npt) = v.strip_prefix("npt=").or_else(|| v.strip_prefix("npt ")) else {
            return Err(Error::Unsupported("range unit"));
        };
        let (a, b) = npt.split_once('-').ok_or(Error::Malformed("Range"))?;
        let start = match a.trim() {
            "now" => NptStart::Now,
            "" => NptStart::Seconds(0.0),
            s => NptStart::Seconds(npt_time(s)?),
        };
        let end = match b.trim() {
            "" => None,
            s => Some(npt_time(s)?),
        };
        Ok(Range { start, end })
    }
}

/// `npt-sec` (`12.5`) or `npt-hhmmss` (`1:02:03.5`).
fn npt_time(s: &str) -> Result<f64, Error> {
    let bad = Error::Malformed("npt time");
    let mut secs = 0.0f64;
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 3 {
        return Err(bad);
    }
    for (i, p) in parts.iter().enumerate() {
        let v: f64 = p.parse().map_err(|_| bad.clone())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad);
        }
        secs = if i == 0 { v } else { secs * 60.0 + v };
    }
    Ok(secs)
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.start {
            NptStart::Now => f.write_str("npt=now-")?,
            NptStart::Seconds(s) => write!(f, "npt={s:.3}-")?,
        }
        if let Some(e) = self.end {
            write!(f, "{e:.3}")?;
        }
        Ok(())
    }
}

/// One stream of an RTP-Info header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfo {
    /// The track's URL.
    pub url: String,
    /// Sequence number of the first packet.
    pub seq: Option<u16>,
    /// RTP timestamp of the first packet.
    pub rtptime: Option<u32>,
}

impl RtpInfo {
    /// The header value for `infos`.
    pub fn write_list(infos: &[RtpInfo]) -> String {
        let mut s = String::new();
        for (i, r) in infos.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "url={}", r.url);
            if let Some(q) = r.seq {
                let _ = write!(s, ";seq={q}");
            }
            if let Some(t) = r.rtptime {
                let _ = write!(s, ";rtptime={t}");
            }
        }
        s
    }

    /// Parses a header value (URLs holding commas are not supported).
    pub fn parse_list(v: &str) -> Vec<RtpInfo> {
        v.split(',')
            .take(64)
            .filter_map(|item| {
                let mut r = RtpInfo {
                    url: String::new(),
                    seq: None,
                    rtptime: None,
                };
                for p in item.split(';') {
                    match p.trim().split_once('=') {
                        Some(("url", u)) => r.url = u.trim_matches('"').to_string(),
                        Some(("seq", q)) => r.seq = q.parse().ok(),
                        Some(("rtptime", t)) => r.rtptime = t.parse().ok(),
                        _ => {}
                    }
                }
                (!r.url.is_empty()).then_some(r)
            })
            .collect()
    }
}

/// A Session header: `id[;timeout=secs]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// The session id.
    pub id: String,
    /// `timeout=`, seconds.
    pub timeout: Option<u32>,
}

impl SessionHeader {
    /// Parses a Session header.
    pub fn parse(v: &str) -> Result<SessionHeader, Error> {
        let mut parts = v.split(';');
        let id = parts.next().unwrap_or("").trim();
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        {
            return Err(Error::Malformed("Session"));
        }
        let mut timeout = None;
        for p in parts {
            if let Some(("timeout", t)) = p.trim().split_once('=') {
                timeout = t.trim().parse().ok();
            }
        }
        Ok(SessionHeader {
            id: id.to_string(),
            timeout,
        })
    }
}

impl fmt::Display for SessionHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = self.timeout {
            write!(f, ";timeout={t}")?;
        }
        Ok(())
    }
}

/// The Public header value of `methods`.
pub fn public(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_clients_send() {
        // ffmpeg publishing over TCP.
        let t = Transport::parse("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record").unwrap();
        assert_eq!(t.lower, Lower::Tcp);
        assert_eq!(t.interleaved, Some((0, 1)));
        assert_eq!(t.mode, Some(Mode::Record));
        assert_eq!(
            t.to_string(),
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"
        );
        // ffmpeg/VLC playing over UDP; GStreamer's alternatives.
        let l = Transport::parse_list(
            "RTP/AVP/UDP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=2-3",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].lower, Lower::Udp);
        assert_eq!(l[0].client_port, Some((5000, 5001)));
        // Quoted mode, single port, ssrc, multicast.
        let t = Transport::parse("RTP/AVP;multicast;client_port=6000;mode=\"PLAY\";ssrc=0A0B0C0D")
            .unwrap();
        assert!(!t.unicast);
        assert_eq!(t.client_port, Some((6000, 6001)));
        assert_eq!(t.mode, Some(Mode::Play));
        assert_eq!(t.ssrc, Some(0x0A0B0C0D));
        let mut s = Transport::new(Lower::Udp);
        s.client_port = Some((5000, 5001));
        s.server_port = Some((8000, 8001));
        s.ssrc = Some(0x1234);
        assert_eq!(
            s.to_string(),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=8000-8001;ssrc=00001234"
        );
        assert!(Transport::parse("RAW/RAW/UDP").is_err());
        assert!(Transport::parse("RTP/AVP;interleaved=255").is_err());
        assert!(Transport::parse("RTP/AVP;client_port=x-1").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(Range::parse("npt=0-").unwrap(), Range::live());
        assert_eq!(Range::parse("npt=now-").unwrap().start, NptStart::Now);
        let r = Range::parse("npt=1:02:03.5-4000").unwrap();
        assert_eq!(r.start, NptStart::Seconds(3723.5));
        assert_eq!(r.end, Some(4000.0));
        assert_eq!(Range::live().to_string(), "npt=0.000-");
        assert_eq!(
            Range::parse("clock=19961108T142300Z-"),
            Err(Error::Unsupported("range unit"))
        );
        assert!(Range::parse("npt=abc-").is_err());
        assert!(Range::parse("npt=-1-").is_err());
    }

    #[test]
    fn rtp_info_session_public() {
        let v = RtpInfo::write_list(&[
            RtpInfo {
                url: "rtsp://h/x/trackID=0".into(),
                seq: Some(1),
                rtptime: Some(2),
            },
            RtpInfo {
                url: "rtsp://h/x/trackID=1".into(),
                seq: Some(3),
                rtptime: None,
            },
        ]);
        assert_eq!(
            v,
            "url=rtsp://h/x/trackID=0;seq=1;rtptime=2,url=rtsp://h/x/trackID=1;seq=3"
        );
        let back = RtpInfo::parse_list(&v);
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].seq, Some(3));
        let s = SessionHeader::parse("12345678;timeout=60").unwrap();
        assert_eq!((s.id.as_str(), s.timeout), ("12345678", Some(60)));
        assert_eq!(s.to_string(), "12345678;timeout=60");
        assert!(SessionHeader::parse("").is_err());
        assert_eq!(public(&[Method::Options, Method::Play]), "OPTIONS, PLAY");
    }
}
