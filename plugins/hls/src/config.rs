//! The `plugins.hls` section:
//!
//! ```yaml
//! plugins:
//!   hls:
//!     part_target: 200ms       # longest LL-HLS part (PART-TARGET)
//!     segment_target: 2s       # segments start on key frames at least this apart
//!     window: 6                # complete segments listed
//!     format: ll               # what /app/stream.m3u8 offers: ll (fMP4) or ts;
//!                              #   ?format=ts or ?format=ll on the URL overrides it
//!     always: false            # mux every published stream (both variants) from
//!                              #   its publish on, not only watched ones
//!     idle_timeout: 30s        # a stream nobody asked for this long stops muxing
//!     start_timeout: 15s       # how long a first request waits for a segment
//!     max_waiting: 20000       # requests held (blocking reloads, hinted parts)
//!                              #   per stream; an LL-HLS viewer holds two
//! ```

use std::time::Duration;

use rill_abi::sdk::config::{boolean, duration, flat_pairs, size, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub part_target: Duration,
    pub segment_target: Duration,
    pub window: usize,
    /// `/app/stream.m3u8` offers classic TS rather than LL-HLS.
    pub ts_default: bool,
    pub always: bool,
    pub idle_timeout: Duration,
    pub start_timeout: Duration,
    pub max_waiting: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(2),
            window: 6,
            ts_default: false,
            always: false,
            idle_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(15),
            max_waiting: 20000,
        }
    }
}

const KEYS: &[&str] = &[
    "part_target",
    "segment_target",
    "window",
    "format",
    "always",
    "idle_timeout",
    "start_timeout",
    "max_waiting",
];

impl Config {
    /// How long a blocked reload or a hinted part is held: three segment
    /// targets.
    pub fn hold(&self) -> Duration {
        self.segment_target * 3
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let err = |key: &str, message: String| ConfigError {
            key: key.to_owned(),
            message,
        };
        for (key, value) in flat_pairs(text, KEYS)? {
            let m = |e| err(key, e);
            match key {
                "part_target" => c.part_target = duration(value).map_err(m)?,
                "segment_target" => c.segment_target = duration(value).map_err(m)?,
                "window" => c.window = size(value, 2, 100).map_err(m)? as usize,
                "format" => {
                    c.ts_default = match value {
                        "ll" => false,
                        "ts" => true,
                        _ => return Err(err(key, format!("{value:?}: expected ll or ts"))),
                    }
                }
                "always" => c.always = boolean(value).map_err(m)?,
                "idle_timeout" => c.idle_timeout = duration(value).map_err(m)?,
                "start_timeout" => c.start_timeout = duration(value).map_err(m)?,
                "max_waiting" => c.max_waiting = size(value, 1, 1 << 20).map_err(m)? as usize,
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        let ms = |d: Duration| d.as_millis();
        if !(50..=2000).contains(&ms(c.part_target)) {
            return Err(err("part_target", "expected 50ms to 2s".into()));
        }
        if c.segment_target < c.part_target * 2 || c.segment_target > Duration::from_secs(30) {
            return Err(err(
                "segment_target",
                "expected at least two part targets and at most 30s".into(),
            ));
        }
        if c.idle_timeout.is_zero() || c.start_timeout.is_zero() {
            return Err(err(
                "idle_timeout",
                "timeouts must be greater than 0s".into(),
            ));
        }
        Ok(c)
    }

    pub fn hls(&self, first_msn: u64) -> rill_hls::Config {
        rill_hls::Config {
            part_target_us: self.part_target.as_micros() as i64,
            segment_target_us: self.segment_target.as_micros() as i64,
            window: self.window,
            first_msn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keys() {
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        let c = Config::parse("part_target: 300ms\nsegment_target: 4s\nformat: ts\nalways: true\n")
            .unwrap();
        assert_eq!(c.part_target, Duration::from_millis(300));
        assert!(c.ts_default && c.always);
        assert!(Config::parse("part_target: 10ms\n").is_err());
        assert!(Config::parse("segment_target: 300ms\n").is_err());
        assert!(Config::parse("format: dash\n").is_err());
        assert!(Config::parse("bogus: 1\n").is_err());
    }
}
