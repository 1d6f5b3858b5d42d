//! The `plugins.webrtc` section:
//!
//! ```yaml
//! plugins:
//!   webrtc:
//!     udp_listen: 0.0.0.0:8189   # the one UDP port of every peer (ICE-lite)
//!     tcp_listen: off            # ICE-TCP (RFC 6544, passive candidates on
//!                                #   this TCP address) for clients whose UDP
//!                                #   is blocked; off by default
//!     candidates: 203.0.113.7    # addresses put in answers, comma-separated
//!                                #   (NAT, containers); default: the bound
//!                                #   address, or with 0.0.0.0 every interface's
//!     max_sessions: 1000         # WHIP and WHEP peers at once
//!                                #   (per address: the host's limits section)
//!     connect_timeout: 10s       # an answered peer must finish ICE and DTLS by then
//!     idle_timeout: 15s          # a connected peer silent this long is dropped
//!     max_offer: 32768           # bytes of an SDP offer
//!     keyframe_interval: 2s      # a WHIP publisher is asked for a key frame
//!                                #   this often (PLI); 0s never
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, size, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub udp_listen: SocketAddr,
    pub tcp_listen: Option<SocketAddr>,
    pub candidates: Vec<IpAddr>,
    pub max_sessions: usize,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_offer: usize,
    pub keyframe_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            tcp_listen: None,
            candidates: Vec::new(),
            max_sessions: 1000,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            max_offer: 32 << 10,
            keyframe_interval: Some(Duration::from_secs(2)),
        }
    }
}

const KEYS: &[&str] = &[
    "udp_listen",
    "tcp_listen",
    "candidates",
    "max_sessions",
    "connect_timeout",
    "idle_timeout",
    "max_offer",
    "keyframe_interval",
];

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let err = |key: &str, message: String| ConfigError {
            key: key.to_owned(),
            message,
        };
        for (key, value) in flat_pairs(text, KEYS)? {
            let m = |e| err(key, e);
            match key {
                "udp_listen" => {
                    c.udp_listen = value
                        .parse()
                        .map_err(|_| err(key, format!("expected ip:port, got {value:?}")))?
                }
                "tcp_listen" => {
                    c.tcp_listen = match value {
                        "" | "off" => None,
                        v => Some(v.parse().map_err(|_| {
                            err(key, format!("expected ip:port or off, got {value:?}"))
                        })?),
                    }
                }
                "candidates" => {
                    c.candidates = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse::<IpAddr>()
                                .map_err(|_| err(key, format!("not an IP address: {s:?}")))
                        })
                        .collect::<Result<_, _>>()?;
                    if c.candidates.len() > 16 {
                        return Err(err(key, "at most 16 addresses".into()));
                    }
                }
                "max_sessions" => c.max_sessions = size(value, 1, 1 << 20).map_err(m)? as usize,
                "connect_timeout" => c.connect_timeout = duration(value).map_err(m)?,
                "idle_timeout" => c.idle_timeout = duration(value).map_err(m)?,
                "max_offer" => c.max_offer = size(value, 1024, 1 << 20).map_err(m)? as usize,
                "keyframe_interval" => {
                    let d = duration(value).map_err(m)?;
                    if !d.is_zero()
                        && !(Duration::from_millis(500)..=Duration::from_secs(60)).contains(&d)
                    {
                        return Err(err(key, "expected 0s (never) or 500ms to 60s".into()));
                    }
                    c.keyframe_interval = (!d.is_zero()).then_some(d);
                }
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if !(1..=120).contains(&c.connect_timeout.as_secs()) {
            return Err(err("connect_timeout", "expected 1s to 120s".into()));
        }
        if !(2..=300).contains(&c.idle_timeout.as_secs()) {
            return Err(err("idle_timeout", "expected 2s to 300s".into()));
        }
        Ok(c)
    }

    /// The addresses put in answers as host candidates, all with the bound
    /// port: the configured ones, else the bound address, else (unspecified)
    /// every interface's.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        Self::addrs(&self.candidates, self.udp_listen)
    }

    /// The ICE-TCP passive candidates, as `candidate_addrs` with the TCP
    /// address; none when ICE-TCP is off.
    pub fn tcp_candidate_addrs(&self) -> Vec<SocketAddr> {
        self.tcp_listen
            .map_or_else(Vec::new, |t| Self::addrs(&self.candidates, t))
    }

    fn addrs(candidates: &[IpAddr], bound: SocketAddr) -> Vec<SocketAddr> {
        let port = bound.port();
        let ips: Vec<IpAddr> = if !candidates.is_empty() {
            candidates.to_vec()
        } else if !bound.ip().is_unspecified() {
            vec![bound.ip()]
        } else {
            let v6 = bound.is_ipv6();
            let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() || v6)
                .filter(|ip| !matches!(ip, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80))
                .collect();
            // Loopback last: a browser on another machine cannot use it.
            ips.sort_by_key(|ip| ip.is_loopback());
            ips.dedup();
            ips.truncate(16);
            ips
        };
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        let c = Config::parse("udp_listen: 127.0.0.1:9000\ncandidates: 192.0.2.1, 2001:db8::1\n")
            .unwrap();
        assert_eq!(c.udp_listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            c.candidate_addrs(),
            vec![
                "192.0.2.1:9000".parse().unwrap(),
                "[2001:db8::1]:9000".parse().unwrap()
            ]
        );
        let c = Config::parse("udp_listen: 127.0.0.1:9000\n").unwrap();
        assert_eq!(c.candidate_addrs(), vec!["127.0.0.1:9000".parse().unwrap()]);
        assert!(!Config::default().candidate_addrs().is_empty());
        assert!(Config::parse("candidates: example.com\n").is_err());
        assert!(Config::parse("udp_listen: 8189\n").is_err());
        assert!(Config::parse("connect_timeout: 0s\n").is_err());
        assert!(Config::parse("bogus: 1\n").is_err());
        let c = Config::parse("udp_listen: 127.0.0.1:9000\ntcp_listen: 127.0.0.1:9001\n").unwrap();
        assert_eq!(
            c.tcp_candidate_addrs(),
            vec!["127.0.0.1:9001".parse().unwrap()]
        );
        assert!(Config::parse("tcp_listen: off\n")
            .unwrap()
            .tcp_candidate_addrs()
            .is_empty());
        assert!(Config::parse("tcp_listen: 9001\n").is_err());
        assert_eq!(
            Config::parse("keyframe_interval: 0s\n")
                .unwrap()
                .keyframe_interval,
            None
        );
        assert!(Config::parse("keyframe_interval: 100ms\n").is_err());
        let packaged = "udp_listen: 0.0.0.0:8189\nmax_sessions: 1000\nconnect_timeout: 10s\n\
                        idle_timeout: 15s\nmax_offer: 32768\nkeyframe_interval: 2s\n";
        assert_eq!(Config::parse(packaged).unwrap(), Config::default());
    }
}
