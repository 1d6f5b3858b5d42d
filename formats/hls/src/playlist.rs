//! Playlists (RFC 8216 and its Low-Latency revision), the names of the
//! objects they list, and the query of a blocking playlist reload.

use std::fmt::Write;

use crate::window::Window;

/// Largest number accepted in `_HLS_msn` / `_HLS_part` and object names.
const MAX_NUMBER: u64 = 1 << 53;

/// Something a playlist names, relative to the stream's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// `init{id}.m4s`
    Init(u32),
    /// `p{msn}.{index}.m4s`
    Part(u64, usize),
    /// `s{msn}.m4s`
    Segment(u64),
    /// `t{msn}.ts`
    Ts(u64),
}

impl Object {
    /// The file name.
    pub fn name(self) -> String {
        match self {
            Object::Init(id) => format!("init{id}.m4s"),
            Object::Part(m, i) => format!("p{m}.{i}.m4s"),
            Object::Segment(m) => format!("s{m}.m4s"),
            Object::Ts(m) => format!("t{m}.ts"),
        }
    }

    /// Reads a file name; `None` for anything else (and for numbers that
    /// overflow).
    pub fn parse(name: &str) -> Option<Object> {
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok().filter(|n| *n <= MAX_NUMBER)
        };
        if let Some(rest) = name.strip_suffix(".ts") {
            return Some(Object::Ts(num(rest.strip_prefix('t')?)?));
        }
        let rest = name.strip_suffix(".m4s")?;
        if let Some(id) = rest.strip_prefix("init") {
            return Some(Object::Init(u32::try_from(num(id)?).ok()?));
        }
        if let Some(m) = rest.strip_prefix('s') {
            return Some(Object::Segment(num(m)?));
        }
        let (m, i) = rest.strip_prefix('p')?.split_once('.')?;
        Some(Object::Part(num(m)?, usize::try_from(num(i)?).ok()?))
    }
}

/// What a playlist request asks to wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockingRequest {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<usize>,
}

/// A malformed blocking request (answered 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub &'static str);

impl BlockingRequest {
    /// Reads `_HLS_msn` and `_HLS_part` from a query string.
    pub fn parse(query: &str) -> Result<BlockingRequest, RequestError> {
        let mut r = BlockingRequest::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let num = || -> Result<u64, RequestError> {
                if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RequestError("_HLS_msn and _HLS_part are decimal integers"));
                }
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_NUMBER)
                    .ok_or(RequestError("number too large"))
            };
            match k {
                "_HLS_msn" => r.msn = Some(num()?),
                "_HLS_part" => r.part = Some(num()? as usize),
                _ => {}
            }
        }
        if r.part.is_some() && r.msn.is_none() {
            return Err(RequestError("_HLS_part without _HLS_msn"));
        }
        Ok(r)
    }
}

fn secs(us: i64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// Unix µs as ISO 8601 UTC with milliseconds.
pub fn iso8601(unix_us: i64) -> String {
    let ms = unix_us.div_euclid(1000);
    let (days, day_ms) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// The LL-HLS media playlist: parts for the newest segments (those within
/// three target durations of the live edge), a preload hint for the next
/// part, blocking reloads offered.
pub fn ll_media<P>(w: &Window<P>, part_target_us: i64, suffix: &str) -> String {
    let mut out = String::with_capacity(2048);
    let target = w.target_s();
    let part_target = secs(part_target_us);
    // PART-HOLD-BACK: three part targets (the spec asks at least two).
    let hold_back = secs(3 * part_target_us);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-PART-INF:PART-TARGET={part_target}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n",
        w.first_msn()
    );
    if w.discontinuity_seq > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", w.discontinuity_seq);
    }
    // Which segments list their parts: from the end, within 3 targets.
    let horizon = 3 * target as i64 * 1_000_000;
    let mut from_end = 0i64;
    let mut with_parts = Vec::new();
    for s in w.segments().collect::<Vec<_>>().into_iter().rev() {
        with_parts.push(s.msn);
        from_end += s.duration_us();
        if from_end >= horizon {
            break;
        }
    }
    let mut map = None;
    for s in w.segments() {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if map != Some(s.init) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{}{suffix}\"",
                Object::Init(s.init).name()
            );
            map = Some(s.init);
        }
        if let Some(wall) = s.wall_us {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(wall));
        }
        if with_parts.contains(&s.msn) {
            for (i, p) in s.parts.iter().enumerate() {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}{suffix}\"",
                    secs(p.duration_us),
                    Object::Part(s.msn, i).name()
                );
                out.push_str(if p.independent {
                    ",INDEPENDENT=YES\n"
                } else {
                    "\n"
                });
            }
        }
        if s.complete {
            let _ = writeln!(
                out,
                "#EXTINF:{},\n{}{suffix}",
                secs(s.duration_us()),
                Object::Segment(s.msn).name()
            );
        }
    }
    let (msn, part) = w.next_part();
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{suffix}\"",
        Object::Part(msn, part).name()
    );
    out
}

/// The classic media playlist over TS segments.
pub fn ts_media<P>(w: &Window<P>, suffix: &str) -> String {
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        w.target_s(),
        w.first_msn()
    );
    if w.discontinuity_seq > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", w.discontinuity_seq);
    }
    for s in w.segments().filter(|s| s.complete) {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(wall) = s.wall_us {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(wall));
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\n{}{suffix}",
            secs(s.duration_us()),
            Object::Ts(s.msn).name()
        );
    }
    out
}

/// A multivariant playlist with the one variant at `media_uri`.
pub fn multivariant(
    media_uri: &str,
    bandwidth: u64,
    codecs: &str,
    resolution: Option<(u32, u32)>,
) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", bandwidth.max(1));
    if !codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{codecs}\"");
    }
    if let Some((w, h)) = resolution {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    let _ = writeln!(out, "\n{media_uri}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in [
            Object::Init(3),
            Object::Part(12, 4),
            Object::Segment(0),
            Object::Ts(99),
        ] {
            assert_eq!(Object::parse(&o.name()), Some(o));
        }
        for bad in [
            "p1.m4s",
            "s.m4s",
            "sx.m4s",
            "t-1.ts",
            "p99999999999999999999.0.m4s",
            "init.m4s",
            "x.mp4",
        ] {
            assert_eq!(Object::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn blocking_queries() {
        assert_eq!(
            BlockingRequest::parse("_HLS_msn=5&_HLS_part=2"),
            Ok(BlockingRequest {
                msn: Some(5),
                part: Some(2)
            })
        );
        assert_eq!(BlockingRequest::parse("token=x"), Ok(Default::default()));
        assert!(BlockingRequest::parse("_HLS_part=1").is_err());
        assert!(BlockingRequest::parse("_HLS_msn=-1").is_err());
        assert!(BlockingRequest::parse("_HLS_msn=99999999999999999999").is_err());
        assert!(BlockingRequest::parse("_HLS_msn=").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
    }
}
