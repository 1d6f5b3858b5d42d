//! The `plugins.rtsp` section:
//!
//! ```yaml
//! plugins:
//!   rtsp:
//!     listen: 0.0.0.0:8554     # 554 works under the service's CAP_NET_BIND_SERVICE
//!     session_timeout: 60s     # a session without requests or media this long ends
//!     idle_timeout: 10s        # a connection without sessions silent this long is closed
//!     rtp_port: 8000           # RTP over UDP on this port, RTCP on the next; 0: no UDP
//! ```

use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub session_timeout: Duration,
    pub idle_timeout: Duration,
    /// The UDP port of RTP for every client (RTCP on the next); 0: RTP
    /// over TCP only.
    pub rtp_port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8554".into(),
            session_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(10),
            rtp_port: 8000,
        }
    }
}

// `rtp_ports` (the per-session port range of earlier builds) still reads: its first
// port becomes `rtp_port`.
const KEYS: &[&str] = &[
    "listen",
    "session_timeout",
    "idle_timeout",
    "rtp_port",
    "rtp_ports",
];

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (key, value) in flat_pairs(text, KEYS)? {
            let m = |message| ConfigError {
                key: key.to_owned(),
                message,
            };
            match key {
                "listen" => c.listen = value.to_owned(),
                "session_timeout" => c.session_timeout = duration(value).map_err(m)?,
                "idle_timeout" => c.idle_timeout = duration(value).map_err(m)?,
                "rtp_port" => {
                    c.rtp_port = value
                        .parse()
                        .ok()
                        .filter(|p| *p < u16::MAX)
                        .ok_or_else(|| m(format!("{value:?}: expected a port below 65535, or 0")))?
                }
                "rtp_ports" => {
                    c.rtp_port = port_range(value).ok_or_else(|| {
                        m(format!(
                            "{value:?}: expected a range such as 8000-8999 (rtp_port: 8000 is the current key)"
                        ))
                    })?
                }
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if !(5..=3600).contains(&c.session_timeout.as_secs()) {
            return Err(ConfigError {
                key: "session_timeout".into(),
                message: "expected 5s to 1h".into(),
            });
        }
        if !(1..=3600).contains(&c.idle_timeout.as_secs()) {
            return Err(ConfigError {
                key: "idle_timeout".into(),
                message: "expected 1s to 1h".into(),
            });
        }
        Ok(c)
    }
}

/// The first port of a legacy `rtp_ports` range.
fn port_range(v: &str) -> Option<u16> {
    let (a, b) = v.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && b > a).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        let c = Config::parse("listen: 127.0.0.1:554\nsession_timeout: 30s\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:554");
        assert!(Config::parse("session_timeout: 1s\n").is_err());
        assert_eq!(Config::parse("rtp_port: 20000\n").unwrap().rtp_port, 20000);
        assert_eq!(Config::parse("rtp_port: 0\n").unwrap().rtp_port, 0);
        assert!(Config::parse("rtp_port: 65535\n").is_err());
        assert!(Config::parse("rtp_port: x\n").is_err());
        assert_eq!(
            Config::parse("rtp_ports: 20000-20099\n").unwrap().rtp_port,
            20000
        );
        assert!(Config::parse("rtp_ports: 20000\n").is_err());
        assert!(Config::parse("bogus: 1\n").is_err());
    }
}
