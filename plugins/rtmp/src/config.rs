//! The plugin's configuration: the `plugins.rtmp` section of the host's
//! config, handed over as YAML text.
//!
//! The section is flat (`key: value` lines), so it is read by a small parser
//! rather than a YAML library, which keeps the cdylib small:
//!
//! ```yaml
//! plugins:
//!   rtmp:
//!     listen: 0.0.0.0:1935       # where encoders and players connect
//!     tls_listen: 0.0.0.0:1936   # RTMPS, with the host's certificate
//!                                #   (http.tls); default: none
//!     chunk_size: 4096           # outbound chunk size (4096..=65536)
//!     handshake_timeout: 10s     # handshake + connect must finish within
//!     idle_timeout: 30s          # no input and nothing playing: close (0s: never)
//!     max_message_size: 8MiB     # largest inbound message
//!     max_chunk_streams: 64      # chunk stream ids per connection
//!     max_partial_bytes: 16MiB   # bytes held in unfinished inbound messages, per
//!                                #   connection (at least max_message_size)
//!     min_chunk_size: 128        # inbound Set Chunk Size bounds
//!     max_chunk_size: 16MiB
//!     max_amf_depth: 32          # AMF0 nesting
//!     max_amf_values: 65536      # AMF0 values per message (and at most one per
//!                                #   4 bytes of it beyond the first 64)
//!     max_streams: 16            # createStream per connection
//!     max_queued_bytes: 32MiB    # inbound bytes held while a decision is pending
//!     max_pending_bytes: 4MiB    # media a player may have waiting for its socket
//! ```
//!
//! Unknown keys and bad values are errors (the instance is not created and
//! the host keeps what runs), as in the host's own configuration.

use std::time::Duration;

use rill_abi::sdk::config::{duration, flat_pairs, size, ConfigError};
use rill_rtmp::Limits;

/// Everything the plugin reads from its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP address to listen on.
    pub listen: String,
    /// RTMPS: a TLS listener with the host's certificate; `None`: off.
    pub tls_listen: Option<String>,
    /// Outbound chunk size, announced right after connect.
    pub chunk_size: u32,
    /// Handshake and `connect` must be done within this, or the connection
    /// is closed.
    pub handshake_timeout: Duration,
    /// A connection that sent nothing for this long and plays nothing is
    /// closed (a stalled publisher, a client that never publishes). Zero
    /// disables it.
    pub idle_timeout: Duration,
    /// Media bytes a player may have waiting for its socket (after the host
    /// reported its queue full) before it skips to the next keyframe.
    pub max_pending_bytes: usize,
    /// The parser limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:1935".to_owned(),
            tls_listen: None,
            chunk_size: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_pending_bytes: 4 << 20,
            limits: Limits::default(),
        }
    }
}

const KEYS: &[&str] = &[
    "listen",
    "tls_listen",
    "chunk_size",
    "handshake_timeout",
    "idle_timeout",
    "max_message_size",
    "max_chunk_streams",
    "max_partial_bytes",
    "min_chunk_size",
    "max_chunk_size",
    "max_amf_depth",
    "max_amf_values",
    "max_streams",
    "max_queued_bytes",
    "max_pending_bytes",
];

impl Config {
    /// Parses the section's YAML text (empty, `{}` or `null`: defaults).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let err = |key: &str, message: String| ConfigError {
            key: key.to_owned(),
            message,
        };
        let pairs = flat_pairs(text, KEYS).map_err(|e| err(&e.key, e.message))?;
        for (known, value) in pairs {
            let key = known;
            let l = &mut c.limits;
            match known {
                "listen" => c.listen = value.to_owned(),
                "tls_listen" => {
                    c.tls_listen = Some(value.to_owned()).filter(|v| !v.is_empty() && v != "null")
                }
                "chunk_size" => c.chunk_size = size(value, 4096, 65536).map_err(|m| err(key, m))?,
                "handshake_timeout" => {
                    c.handshake_timeout = duration(value).map_err(|m| err(key, m))?;
                    if c.handshake_timeout.is_zero() {
                        return Err(err(key, "must be greater than 0s".into()));
                    }
                }
                "idle_timeout" => c.idle_timeout = duration(value).map_err(|m| err(key, m))?,
                "max_message_size" => {
                    // The 24-bit length field bounds what a peer can announce.
                    l.max_message_size = size(value, 1024, 0xFF_FFFF).map_err(|m| err(key, m))?
                }
                "max_chunk_streams" => {
                    l.max_chunk_streams = size(value, 2, 65536).map_err(|m| err(key, m))? as usize
                }
                "max_partial_bytes" => {
                    l.max_partial_bytes =
                        size(value, 1024, u32::MAX).map_err(|m| err(key, m))? as usize
                }
                "min_chunk_size" => {
                    l.min_chunk_size = size(value, 1, 0x7FFF_FFFF).map_err(|m| err(key, m))?
                }
                "max_chunk_size" => {
                    l.max_chunk_size = size(value, 128, 0x7FFF_FFFF).map_err(|m| err(key, m))?
                }
                "max_amf_depth" => {
                    l.max_amf_depth = size(value, 1, 1024).map_err(|m| err(key, m))? as usize
                }
                "max_amf_values" => {
                    l.max_amf_values = size(value, 16, u32::MAX).map_err(|m| err(key, m))? as usize
                }
                "max_streams" => {
                    l.max_streams = size(value, 1, 1 << 16).map_err(|m| err(key, m))?
                }
                "max_queued_bytes" => {
                    l.max_queued_bytes =
                        size(value, 4096, u32::MAX).map_err(|m| err(key, m))? as usize
                }
                "max_pending_bytes" => {
                    c.max_pending_bytes =
                        size(value, 64 << 10, u32::MAX).map_err(|m| err(key, m))? as usize
                }
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if c.limits.min_chunk_size > c.limits.max_chunk_size {
            return Err(err(
                "min_chunk_size",
                format!(
                    "{} is above max_chunk_size {}",
                    c.limits.min_chunk_size, c.limits.max_chunk_size
                ),
            ));
        }
        if c.limits.max_partial_bytes < c.limits.max_message_size as usize {
            // A message of the largest size could never finish.
            return Err(err(
                "max_partial_bytes",
                format!(
                    "{} is below max_message_size {}",
                    c.limits.max_partial_bytes, c.limits.max_message_size
                ),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sections_give_defaults() {
        for text in ["", "{}\n", "null\n", "# nothing\n", "---\n{}\n"] {
            assert_eq!(Config::parse(text).unwrap(), Config::default(), "{text:?}");
        }
        let d = Config::default();
        assert_eq!(d.listen, "0.0.0.0:1935");
        assert!(d.chunk_size >= 4096);
    }

    #[test]
    fn reads_every_key() {
        let c = Config::parse(
            "listen: '127.0.0.1:19350'\nchunk_size: 8192\nhandshake_timeout: 3s\nidle_timeout: 1m30s\n\
             max_message_size: 1MiB\nmax_chunk_streams: 8\nmin_chunk_size: 256\nmax_chunk_size: 64KiB\n\
             max_amf_depth: 10 # comment\nmax_streams: 4\nmax_queued_bytes: 2M\nmax_pending_bytes: 512K\n\
             max_partial_bytes: 3MiB\nmax_amf_values: 1000\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:19350");
        assert_eq!(c.chunk_size, 8192);
        assert_eq!(c.handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.max_pending_bytes, 512 << 10);
        let l = &c.limits;
        assert_eq!(l.max_message_size, 1 << 20);
        assert_eq!(l.max_chunk_streams, 8);
        assert_eq!(l.min_chunk_size, 256);
        assert_eq!(l.max_chunk_size, 64 << 10);
        assert_eq!(l.max_amf_depth, 10);
        assert_eq!(l.max_streams, 4);
        assert_eq!(l.max_queued_bytes, 2 << 20);
        assert_eq!(l.max_partial_bytes, 3 << 20);
        assert_eq!(l.max_amf_values, 1000);
    }

    #[test]
    fn what_the_host_serializes_parses() {
        // serde_norway's rendering of a section: plain scalars, quoted when
        // they would read as something else.
        let c = Config::parse("listen: 127.0.0.1:1935\nidle_timeout: 0s\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:1935");
        assert_eq!(c.idle_timeout, Duration::ZERO);
        let c = Config::parse("listen: \"[::1]:1935\"\nchunk_size: 4096\n").unwrap();
        assert_eq!(c.listen, "[::1]:1935");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (text, key) in [
            ("lissen: 1.2.3.4:1\n", "lissen"),
            ("chunk_size: 128\n", "chunk_size"),
            ("chunk_size: big\n", "chunk_size"),
            ("handshake_timeout: 0s\n", "handshake_timeout"),
            ("idle_timeout: soon\n", "idle_timeout"),
            ("max_message_size: 1TiB\n", "max_message_size"),
            ("listen:\n  host: x\n", "listen"),
            ("listen: a\nlisten: b\n", "listen"),
            (
                "min_chunk_size: 4096\nmax_chunk_size: 1024\n",
                "min_chunk_size",
            ),
            ("max_partial_bytes: 4MiB\n", "max_partial_bytes"),
            (
                "max_message_size: 1MiB\nmax_partial_bytes: 512KiB\n",
                "max_partial_bytes",
            ),
            ("max_amf_values: 0\n", "max_amf_values"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text:?}: {e}");
        }
        assert!(Config::parse("- a\n").is_err());
        assert!(Config::parse("  indented: 1\n").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1h 2m").unwrap(), Duration::from_secs(3720));
        assert!(duration("s").is_err());
        assert!(duration("5x").is_err());
        assert_eq!(size("1_000", 0, u32::MAX).unwrap(), 1000);
        assert_eq!(size("4 KiB", 0, u32::MAX).unwrap(), 4096);
        assert!(size("-1", 0, u32::MAX).is_err());
        assert!(size("99999999G", 0, u32::MAX).is_err());
    }
}
