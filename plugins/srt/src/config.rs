//! The `plugins.srt` section:
//!
//! ```yaml
//! plugins:
//!   srt:
//!     listen: 0.0.0.0:8890     # the UDP port for every SRT caller
//!     latency: 120ms           # receive latency, and the least asked of players
//!     passphrase: …            # 10-79 characters: callers must encrypt with it (none by default)
//!     pbkeylen: 0              # 16, 24 or 32 to require that key length (AES-128/192/256);
//!                              #   0 takes the caller's
//!     max_bitrate: 50000000    # bits/s a publisher may send: bounds its receive buffer
//!     max_sessions: 1000       # callers connected or being admitted
//!                              #   (per address: the host's limits section)
//!     idle_timeout: 5s         # a caller silent this long is dropped
//! ```

use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, size, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub latency: Duration,
    pub passphrase: Option<String>,
    pub pbkeylen: usize,
    pub max_bitrate: u64,
    pub max_sessions: usize,
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8890".into(),
            latency: Duration::from_millis(120),
            passphrase: None,
            pbkeylen: 0,
            max_bitrate: 50_000_000,
            max_sessions: 1000,
            idle_timeout: Duration::from_secs(5),
        }
    }
}

const KEYS: &[&str] = &[
    "listen",
    "latency",
    "passphrase",
    "pbkeylen",
    "max_bitrate",
    "max_sessions",
    "idle_timeout",
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
                "listen" => c.listen = value.to_owned(),
                "latency" => c.latency = duration(value).map_err(m)?,
                "passphrase" => c.passphrase = Some(value.to_owned()),
                "pbkeylen" => c.pbkeylen = size(value, 0, 32).map_err(m)? as usize,
                "max_bitrate" => {
                    c.max_bitrate = u64::from(size(value, 100_000, 4_000_000_000).map_err(m)?)
                }
                "max_sessions" => c.max_sessions = size(value, 1, 1 << 20).map_err(m)? as usize,
                "idle_timeout" => c.idle_timeout = duration(value).map_err(m)?,
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if !(20..=10_000).contains(&c.latency.as_millis()) {
            return Err(err("latency", "expected 20ms to 10s".into()));
        }
        if let Some(p) = &c.passphrase {
            if !rill_srt::crypto::PASSPHRASE_LEN.contains(&p.len()) {
                return Err(err("passphrase", "expected 10 to 79 characters".into()));
            }
        }
        if ![0, 16, 24, 32].contains(&c.pbkeylen) {
            return Err(err("pbkeylen", "expected 0, 16, 24 or 32".into()));
        }
        if !(1..=300).contains(&c.idle_timeout.as_secs()) {
            return Err(err("idle_timeout", "expected 1s to 300s".into()));
        }
        Ok(c)
    }

    /// The connection settings: the receive buffer holds the latency plus a
    /// second at the largest bitrate.
    pub fn srt(&self) -> rill_srt::Config {
        let window = self.latency + Duration::from_secs(1);
        let packets = (self.max_bitrate as f64 * window.as_secs_f64() / 8.0 / 1316.0) as usize;
        rill_srt::Config {
            latency_ms: self.latency.as_millis() as u16,
            passphrase: self.passphrase.clone(),
            key_len: if self.pbkeylen == 0 {
                16
            } else {
                self.pbkeylen
            },
            recv_buffer: packets.clamp(256, 1 << 16),
            send_buffer: packets.clamp(256, 1 << 16),
            idle_timeout: self.idle_timeout.as_micros() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        let c = Config::parse("latency: 200ms\npassphrase: a long secret\npbkeylen: 32\n").unwrap();
        assert_eq!(c.latency, Duration::from_millis(200));
        assert_eq!(c.passphrase.as_deref(), Some("a long secret"));
        assert!(Config::parse("passphrase: short\n").is_err());
        assert!(Config::parse("pbkeylen: 20\n").is_err());
        assert!(Config::parse("latency: 5ms\n").is_err());
        assert!(Config::parse("bogus: 1\n").is_err());
        // As packaging/rill.yaml writes the defaults.
        let packaged = "listen: 0.0.0.0:8890\nlatency: 120ms\npbkeylen: 0\n\
                        max_bitrate: 50000000\nmax_sessions: 1000\nidle_timeout: 5s\n";
        assert_eq!(Config::parse(packaged).unwrap(), Config::default());
        let srt = Config::default().srt();
        assert!(srt.recv_buffer > 4000 && srt.recv_buffer < 6000);
    }
}
