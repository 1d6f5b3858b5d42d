//! The `plugins.rtsp` section:
//!
//! ```yaml
//! plugins:
//!   rtsp:
//!     listen: 0.0.0.0:8554     # 554 works under the service's CAP_NET_BIND_SERVICE
//!     session_timeout: 60s     # a session without requests or media this long ends
//!     idle_timeout: 10s        # a connection without sessions silent this long is closed
//!     rtp_ports: 8000-8999     # UDP port pairs (RTP even, RTCP odd) for SETUP over UDP
//! ```

use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub session_timeout: Duration,
    pub idle_timeout: Duration,
    /// First and last port of the UDP range (first even).
    pub rtp_ports: (u16, u16),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8554".into(),
            session_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(10),
            rtp_ports: (8000, 8999),
        }
    }
}

const KEYS: &[&str] = &["listen", "session_timeout", "idle_timeout", "rtp_ports"];

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
                "rtp_ports" => {
                    c.rtp_ports = port_range(value).ok_or_else(|| {
                        m(format!("{value:?}: expected an even first port and a range of at least two ports, e.g. 8000-8999"))
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

fn port_range(v: &str) -> Option<(u16, u16)> {
    let (a, b) = v.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a % 2 == 0 && a > 0 && b > a).then_some((a, b))
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
        assert_eq!(
            Config::parse("rtp_ports: 20000-20099\n").unwrap().rtp_ports,
            (20000, 20099)
        );
        assert!(Config::parse("rtp_ports: 20001-20099\n").is_err());
        assert!(Config::parse("rtp_ports: 20000\n").is_err());
        assert!(Config::parse("bogus: 1\n").is_err());
    }
}
