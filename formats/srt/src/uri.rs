//! The query of an `srt://host:port?…` URL as libsrt's tools and ffmpeg
//! callers write it: `streamid`, `passphrase`, `pbkeylen`, `latency` (in
//! ms, as srt-live-transmit takes it; ffmpeg's own srt:// takes µs),
//! `mode=caller` and `transtype=live` (the only ones a caller speaks).
//! Values may be percent-encoded (`%23` for the `#` of `#!::`).

use crate::listener::Config;

/// A caller's settings from a URL query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerParams {
    /// `streamid`, when given and not empty.
    pub stream_id: Option<String>,
    /// `passphrase`, when given and not empty.
    pub passphrase: Option<String>,
    /// `pbkeylen` in bytes (16, 24, 32).
    pub key_len: Option<usize>,
    /// `latency`, ms.
    pub latency_ms: Option<u16>,
}

impl CallerParams {
    /// Reads a query (without its `?`). Unknown keys are refused: a typo
    /// would otherwise go unnoticed until the far end refuses.
    pub fn parse(query: &str) -> Result<CallerParams, String> {
        let mut p = CallerParams::default();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_decode(v)?;
            match k {
                "streamid" => p.stream_id = Some(v).filter(|v| !v.is_empty()),
                "passphrase" => p.passphrase = Some(v).filter(|v| !v.is_empty()),
                "latency" => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| format!("latency={v}: milliseconds"))?;
                    p.latency_ms = Some(u16::try_from(ms).map_err(|_| {
                        format!(
                            "latency={v}: milliseconds, at most 65535 \
                                     (ffmpeg's srt:// takes µs; this does not)"
                        )
                    })?);
                }
                "pbkeylen" => {
                    p.key_len = Some(match v.as_str() {
                        "0" | "16" => 16,
                        "24" => 24,
                        "32" => 32,
                        _ => return Err(format!("pbkeylen={v}: 16, 24 or 32")),
                    })
                }
                "mode" if v == "caller" => {}
                "mode" => return Err(format!("mode={v}: only caller")),
                "transtype" if v == "live" => {}
                "transtype" => return Err(format!("transtype={v}: live only")),
                _ => {
                    return Err(format!(
                        "unknown parameter {k:?} (streamid, passphrase, pbkeylen, latency, \
                         mode=caller, transtype=live)"
                    ))
                }
            }
        }
        p.config().validate()?;
        Ok(p)
    }

    /// The connection settings asked for, the rest default.
    pub fn config(&self) -> Config {
        let d = Config::default();
        Config {
            latency_ms: self.latency_ms.unwrap_or(d.latency_ms),
            passphrase: self.passphrase.clone(),
            key_len: self.key_len.unwrap_or(d.key_len),
            ..d
        }
    }
}

/// `%XX` decoded; anything else as it is.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s}: not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_query() {
        let p = CallerParams::parse(
            "streamid=%23!::r=live/x,m=publish&passphrase=0123456789&pbkeylen=32&latency=200&mode=caller",
        )
        .unwrap();
        assert_eq!(p.stream_id.as_deref(), Some("#!::r=live/x,m=publish"));
        let c = p.config();
        assert_eq!(c.latency_ms, 200);
        assert_eq!(c.key_len, 32);
        assert_eq!(c.passphrase.as_deref(), Some("0123456789"));
        assert_eq!(CallerParams::parse("").unwrap(), CallerParams::default());
        assert_eq!(
            CallerParams::parse("streamid=#!::r=a/b")
                .unwrap()
                .stream_id
                .as_deref(),
            Some("#!::r=a/b")
        );
    }

    #[test]
    fn refuses_what_a_caller_cannot_do() {
        for q in [
            "latency=x",
            "latency=70000",
            "pbkeylen=8",
            "passphrase=short",
            "mode=listener",
            "transtype=file",
            "bogus=1",
            "streamid=%ff",
        ] {
            assert!(CallerParams::parse(q).is_err(), "{q}");
        }
        assert_eq!(percent_decode("a%2Fb%zz%").unwrap(), "a/b%zz%");
    }
}
