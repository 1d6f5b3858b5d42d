//! The `plugins.rtsp` section:
//!
//! ```yaml
//! plugins:
//!   rtsp:
//!     listen: 0.0.0.0:8554     # 554 works under the service's CAP_NET_BIND_SERVICE
//!     session_timeout: 60s     # a session without requests or media this long ends
//! ```

use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub session_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8554".into(),
            session_timeout: Duration::from_secs(60),
        }
    }
}

const KEYS: &[&str] = &["listen", "session_timeout"];

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
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if !(5..=3600).contains(&c.session_timeout.as_secs()) {
            return Err(ConfigError {
                key: "session_timeout".into(),
                message: "expected 5s to 1h".into(),
            });
        }
        Ok(c)
    }
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
        assert!(Config::parse("bogus: 1\n").is_err());
    }
}
