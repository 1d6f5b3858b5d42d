//! The `plugins.transcode` section:
//!
//! ```yaml
//! plugins:
//!   transcode:
//!     opus_bitrate: 96000    # bits/s of the Opus derived from AAC (WebRTC)
//!     aac_bitrate: 128000    # bits/s of the AAC derived from Opus
//!     max_bridges: 256       # streams bridged at once
//! ```

use rill_abi::sdk::config::{flat_pairs, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub opus_bitrate: u32,
    pub aac_bitrate: u32,
    pub max_bridges: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            opus_bitrate: 96_000,
            aac_bitrate: 128_000,
            max_bridges: 256,
        }
    }
}

const KEYS: &[&str] = &["opus_bitrate", "aac_bitrate", "max_bridges"];

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (key, value) in flat_pairs(text, KEYS)? {
            let n: u64 = value.parse().map_err(|_| ConfigError {
                key: key.to_owned(),
                message: format!("expected a number, got {value:?}"),
            })?;
            let range = |lo: u64, hi: u64| {
                if (lo..=hi).contains(&n) {
                    Ok(n)
                } else {
                    Err(ConfigError {
                        key: key.to_owned(),
                        message: format!("{n} is not within {lo}..={hi}"),
                    })
                }
            };
            match key {
                "opus_bitrate" => c.opus_bitrate = range(6_000, 510_000)? as u32,
                "aac_bitrate" => c.aac_bitrate = range(16_000, 512_000)? as u32,
                "max_bridges" => c.max_bridges = range(1, 100_000)? as usize,
                _ => unreachable!("flat_pairs only yields KEYS"),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse("opus_bitrate: 64000\naac_bitrate: 96000\nmax_bridges: 3").unwrap();
        assert_eq!(
            (c.opus_bitrate, c.aac_bitrate, c.max_bridges),
            (64_000, 96_000, 3)
        );
        assert!(Config::parse("opus_bitrate: 5").is_err());
        assert!(Config::parse("aac_bitrate: x").is_err());
        assert!(Config::parse("bogus: 1").is_err());
    }
}
