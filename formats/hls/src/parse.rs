//! Reading HLS playlists (RFC 8216 and its low-latency revision): what a
//! client needs of multivariant playlists (`EXT-X-STREAM-INF`) and media
//! playlists, classic and low-latency (`EXT-X-PART`, `EXT-X-PART-INF`,
//! `EXT-X-SERVER-CONTROL`, `EXT-X-PRELOAD-HINT`, `EXT-X-MAP`,
//! `EXT-X-DISCONTINUITY`, `EXT-X-BYTERANGE`, `EXT-X-SKIP`,
//! `EXT-X-ENDLIST`). Unknown tags are skipped.
//!
//! The playlist comes from a server one does not control, so everything
//! it could make the reader hold is bounded by [`Limits`]: its size, its
//! lines, its segments, variants and parts. Numbers that do not parse or
//! do not fit are read as 0 (durations that are not finite and positive
//! too); sequence numbers saturate rather than overflow.
//!
//! ```
//! use rill_hls::parse::{parse, Playlist};
//!
//! let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
//!             #EXTINF:2.0,\nt7.ts\n#EXTINF:2.0,\nt8.ts\n";
//! let Playlist::Media(m) = parse(text)? else { unreachable!() };
//! assert_eq!(m.segments[1].msn, 8);
//! assert_eq!(m.next_msn(), 9);
//! # Ok::<(), rill_hls::parse::ParseError>(())
//! ```

use std::fmt;

/// What a playlist may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest playlist, bytes (1 MiB).
    pub max_bytes: usize,
    /// Most lines, blank ones included (100 000).
    pub max_lines: usize,
    /// Most segments of a media playlist (20 000: eleven hours of 2 s
    /// segments).
    pub max_segments: usize,
    /// Most variants of a multivariant playlist (1 024).
    pub max_variants: usize,
    /// Most parts of a media playlist, all segments together (20 000).
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_lines: 100_000,
            max_segments: 20_000,
            max_variants: 1_024,
            max_parts: 20_000,
        }
    }
}

/// Why a text is not a playlist this reader takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The first line is not `#EXTM3U`.
    NotAPlaylist,
    /// A media playlist without `EXT-X-TARGETDURATION`.
    NoTargetDuration,
    /// Larger than [`Limits::max_bytes`] (the limit).
    TooLarge(usize),
    /// More lines than [`Limits::max_lines`] (the limit).
    TooManyLines(usize),
    /// More segments than [`Limits::max_segments`] (the limit).
    TooManySegments(usize),
    /// More variants than [`Limits::max_variants`] (the limit).
    TooManyVariants(usize),
    /// More parts than [`Limits::max_parts`] (the limit).
    TooManyParts(usize),
    /// A segment's media sequence number (or the one after it) does not
    /// fit in 64 bits.
    SequenceOverflow,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotAPlaylist => f.write_str("playlist without #EXTM3U"),
            ParseError::NoTargetDuration => {
                f.write_str("media playlist without EXT-X-TARGETDURATION")
            }
            ParseError::TooLarge(n) => write!(f, "playlist larger than {n} bytes"),
            ParseError::TooManyLines(n) => write!(f, "playlist of more than {n} lines"),
            ParseError::TooManySegments(n) => write!(f, "playlist of more than {n} segments"),
            ParseError::TooManyVariants(n) => write!(f, "playlist of more than {n} variants"),
            ParseError::TooManyParts(n) => write!(f, "playlist of more than {n} parts"),
            ParseError::SequenceOverflow => f.write_str("media sequence numbers past 2^64 - 1"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A byte range: length and offset (the offset may be implied by the
/// previous range of the same resource; it is then `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Length in bytes.
    pub len: u64,
    /// First byte, when given.
    pub offset: Option<u64>,
}

impl ByteRange {
    fn parse(s: &str) -> Option<ByteRange> {
        let s = s.trim().trim_matches('"');
        let (len, offset) = match s.split_once('@') {
            Some((l, o)) => (l, Some(o.trim().parse().ok()?)),
            None => (s, None),
        };
        Some(ByteRange {
            len: len.trim().parse().ok()?,
            offset,
        })
    }

    /// The HTTP range (first and last byte), when the offset is known and
    /// the range fits in 64 bits.
    pub fn http(&self) -> Option<(u64, Option<u64>)> {
        let o = self.offset?;
        Some((o, Some(o.checked_add(self.len.max(1) - 1)?)))
    }
}

/// One variant of a multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// `BANDWIDTH`, bits per second (0 when missing).
    pub bandwidth: u64,
    /// `CODECS`.
    pub codecs: Option<String>,
    /// `RESOLUTION`.
    pub resolution: Option<(u32, u32)>,
    /// The media playlist's URI, as written.
    pub uri: String,
}

/// An `EXT-X-MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// The init segment's URI, as written.
    pub uri: String,
    /// Its byte range, if any.
    pub byterange: Option<ByteRange>,
}

/// An `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Seconds.
    pub duration: f64,
    /// As written.
    pub uri: String,
    /// `INDEPENDENT=YES`: it starts with a key frame.
    pub independent: bool,
    /// Its byte range, if any.
    pub byterange: Option<ByteRange>,
    /// `GAP=YES`.
    pub gap: bool,
}

/// A media segment: complete (it has a URI and an `EXTINF`), or the one
/// in progress at the end of a low-latency playlist (parts only).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// Seconds.
    pub duration: f64,
    /// None while the segment is in progress.
    pub uri: Option<String>,
    /// Its byte range; an offset left out in the playlist is filled in
    /// when the segment before it was a range of the same URI.
    pub byterange: Option<ByteRange>,
    /// Its parts (low-latency playlists).
    pub parts: Vec<Part>,
    /// The `EXT-X-MAP` in force for it (fMP4); None for MPEG-TS.
    pub map: Option<Map>,
    /// `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// `PART` or `MAP`.
    pub kind: String,
    /// As written.
    pub uri: String,
    /// `BYTERANGE-START`.
    pub byterange_start: Option<u64>,
    /// `BYTERANGE-LENGTH`.
    pub byterange_length: Option<u64>,
}

/// `EXT-X-SERVER-CONTROL`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
    /// `PART-HOLD-BACK`, seconds.
    pub part_hold_back: Option<f64>,
    /// `HOLD-BACK`, seconds.
    pub hold_back: Option<f64>,
    /// `CAN-SKIP-UNTIL`, seconds.
    pub can_skip_until: Option<f64>,
}

/// A media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Media {
    /// `EXT-X-VERSION`.
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: f64,
    /// `EXT-X-MEDIA-SEQUENCE`: the number of the first segment.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    /// `EXT-X-SERVER-CONTROL`.
    pub server_control: ServerControl,
    /// In order, numbered from `media_sequence` (plus skipped ones).
    pub segments: Vec<Segment>,
    /// `EXT-X-PRELOAD-HINT`.
    pub preload_hint: Option<Hint>,
    /// `EXT-X-ENDLIST`: no segment will be added.
    pub endlist: bool,
}

/// What a playlist turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// Variants (`EXT-X-STREAM-INF`), or no media tag at all.
    Multivariant(Vec<Variant>),
    /// Segments.
    Media(Media),
}

/// The attributes of an attribute list: `KEY=value,KEY="quoted, value"`.
pub fn attributes(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            break;
        };
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(i) => {
                    let tail = &q[i + 1..];
                    (&q[..i], tail.find(',').map_or("", |c| &tail[c + 1..]))
                }
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(c) => (after[..c].trim(), &after[c + 1..]),
                None => (after.trim(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start();
    }
    out
}

fn attr<'a>(a: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn yes(a: &[(&str, &str)], key: &str) -> bool {
    attr(a, key) == Some("YES")
}

/// A finite, non-negative number of seconds (or a count).
fn seconds(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn num(a: &[(&str, &str)], key: &str) -> Option<f64> {
    seconds(attr(a, key)?)
}

/// Parses a playlist within the default [`Limits`].
pub fn parse(text: &str) -> Result<Playlist, ParseError> {
    parse_with(text, &Limits::default())
}

/// Parses a playlist. Errors when it is not one (`#EXTM3U` missing), a
/// media playlist lacks `EXT-X-TARGETDURATION`, or a limit is passed.
pub fn parse_with(text: &str, limits: &Limits) -> Result<Playlist, ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError::TooLarge(limits.max_bytes));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim();
        (!l.is_empty()).then_some((i, l))
    });
    if lines.next().map(|(_, l)| l) != Some("#EXTM3U") {
        return Err(ParseError::NotAPlaylist);
    }
    let mut variants = Vec::new();
    let mut pending_variant: Option<Variant> = None;
    let mut m = Media::default();
    let mut is_media = false;
    let mut target = None;
    let mut part_count = 0usize;
    // Per segment, while it is being read.
    let mut parts: Vec<Part> = Vec::new();
    let mut duration: Option<f64> = None;
    let mut byterange: Option<ByteRange> = None;
    let mut discontinuity = false;
    let mut map: Option<Map> = None;
    let mut skipped = 0u64;
    // Where the last segment's range ended, and of which URI: an offset
    // left out continues from there.
    let mut range_end: Option<(String, u64)> = None;
    for (i, line) in lines {
        if i >= limits.max_lines {
            return Err(ParseError::TooManyLines(limits.max_lines));
        }
        let Some(tag) = line.strip_prefix('#') else {
            // A URI.
            if let Some(mut v) = pending_variant.take() {
                if variants.len() >= limits.max_variants {
                    return Err(ParseError::TooManyVariants(limits.max_variants));
                }
                v.uri = line.to_owned();
                variants.push(v);
                continue;
            }
            let Some(d) = duration.take() else {
                continue; // a URI without EXTINF: not ours to guess
            };
            if m.segments.len() >= limits.max_segments {
                return Err(ParseError::TooManySegments(limits.max_segments));
            }
            let mut range = byterange.take();
            if let Some(r) = range.as_mut() {
                if r.offset.is_none() {
                    r.offset = Some(match &range_end {
                        Some((uri, end)) if uri == line => *end,
                        _ => 0,
                    });
                }
                range_end = r
                    .offset
                    .and_then(|o| o.checked_add(r.len))
                    .map(|end| (line.to_owned(), end));
            } else {
                range_end = None;
            }
            let msn = next_msn(&m, skipped)?;
            m.segments.push(Segment {
                msn,
                duration: d,
                uri: Some(line.to_owned()),
                byterange: range,
                parts: std::mem::take(&mut parts),
                map: map.clone(),
                discontinuity: std::mem::take(&mut discontinuity),
            });
            continue;
        };
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        match name {
            "EXT-X-STREAM-INF" => {
                let a = attributes(value);
                pending_variant = Some(Variant {
                    bandwidth: num(&a, "BANDWIDTH").unwrap_or(0.0) as u64,
                    codecs: attr(&a, "CODECS").map(str::to_owned),
                    resolution: attr(&a, "RESOLUTION").and_then(|r| {
                        let (w, h) = r.split_once('x')?;
                        Some((w.parse().ok()?, h.parse().ok()?))
                    }),
                    uri: String::new(),
                });
            }
            "EXT-X-VERSION" => m.version = value.trim().parse().ok(),
            "EXT-X-TARGETDURATION" => {
                is_media = true;
                target = seconds(value);
            }
            "EXT-X-MEDIA-SEQUENCE" => {
                is_media = true;
                // Numbers the segments: only before the first.
                if m.segments.is_empty() {
                    m.media_sequence = value.trim().parse().unwrap_or(0);
                }
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" => {
                m.discontinuity_sequence = value.trim().parse().unwrap_or(0)
            }
            "EXT-X-PART-INF" => m.part_target = num(&attributes(value), "PART-TARGET"),
            "EXT-X-SERVER-CONTROL" => {
                let a = attributes(value);
                m.server_control = ServerControl {
                    can_block_reload: yes(&a, "CAN-BLOCK-RELOAD"),
                    part_hold_back: num(&a, "PART-HOLD-BACK"),
                    hold_back: num(&a, "HOLD-BACK"),
                    can_skip_until: num(&a, "CAN-SKIP-UNTIL"),
                };
            }
            "EXT-X-SKIP" if m.segments.is_empty() => {
                skipped = num(&attributes(value), "SKIPPED-SEGMENTS").unwrap_or(0.0) as u64;
            }
            "EXT-X-MAP" => {
                let a = attributes(value);
                if let Some(uri) = attr(&a, "URI") {
                    map = Some(Map {
                        uri: uri.to_owned(),
                        byterange: attr(&a, "BYTERANGE").and_then(ByteRange::parse),
                    });
                }
            }
            "EXT-X-DISCONTINUITY" => discontinuity = true,
            "EXTINF" => {
                is_media = true;
                let d = value.split(',').next().unwrap_or("");
                duration = Some(seconds(d).unwrap_or(0.0));
            }
            "EXT-X-BYTERANGE" => byterange = ByteRange::parse(value),
            "EXT-X-PART" => {
                let a = attributes(value);
                if let Some(uri) = attr(&a, "URI") {
                    if part_count >= limits.max_parts {
                        return Err(ParseError::TooManyParts(limits.max_parts));
                    }
                    part_count += 1;
                    parts.push(Part {
                        duration: num(&a, "DURATION").unwrap_or(0.0),
                        uri: uri.to_owned(),
                        independent: yes(&a, "INDEPENDENT"),
                        byterange: attr(&a, "BYTERANGE").and_then(ByteRange::parse),
                        gap: yes(&a, "GAP"),
                    });
                }
            }
            "EXT-X-PRELOAD-HINT" => {
                let a = attributes(value);
                if let Some(uri) = attr(&a, "URI") {
                    m.preload_hint = Some(Hint {
                        kind: attr(&a, "TYPE").unwrap_or("PART").to_owned(),
                        uri: uri.to_owned(),
                        byterange_start: num(&a, "BYTERANGE-START").map(|v| v as u64),
                        byterange_length: num(&a, "BYTERANGE-LENGTH").map(|v| v as u64),
                    });
                }
            }
            "EXT-X-ENDLIST" => m.endlist = true,
            _ => {}
        }
    }
    if !is_media {
        return Ok(Playlist::Multivariant(variants));
    }
    m.target_duration = target.ok_or(ParseError::NoTargetDuration)?;
    if !parts.is_empty() {
        if m.segments.len() >= limits.max_segments {
            return Err(ParseError::TooManySegments(limits.max_segments));
        }
        let msn = next_msn(&m, skipped)?;
        m.segments.push(Segment {
            msn,
            duration: parts.iter().map(|p| p.duration).sum(),
            uri: None,
            byterange: None,
            parts,
            map,
            discontinuity,
        });
    }
    Ok(Playlist::Media(m))
}

/// Where a player is: a part of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// The segment's media sequence number.
    pub msn: u64,
    /// The part's index within it.
    pub part: usize,
}

/// The number of the segment listed next. The one after it must fit too,
/// so every count on from a listed segment is exact (a saturated number
/// would name two segments, and walks over them would not end).
fn next_msn(m: &Media, skipped: u64) -> Result<u64, ParseError> {
    m.media_sequence
        .checked_add(skipped)
        .and_then(|n| n.checked_add(m.segments.len() as u64))
        .filter(|&n| n < u64::MAX)
        .ok_or(ParseError::SequenceOverflow)
}

impl Media {
    /// The segment numbered `msn`, if listed.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.first()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// The number of the first segment listed.
    pub fn first_msn(&self) -> u64 {
        self.segments.first().map_or(self.media_sequence, |s| s.msn)
    }

    /// The number of the segment after the last complete one.
    pub fn next_msn(&self) -> u64 {
        self.segments
            .iter()
            .rev()
            .find(|s| s.uri.is_some())
            .map_or(self.first_msn(), |s| s.msn.saturating_add(1))
    }

    /// `pos` counted on into the next segments while it is past the last
    /// part of a segment known to be complete (parts are numbered on from
    /// one segment to the next).
    pub fn normalize(&self, mut pos: Pos) -> Pos {
        while let Some(s) = self.segment(pos.msn) {
            if s.uri.is_none() || s.parts.is_empty() || pos.part < s.parts.len() {
                break;
            }
            pos = Pos {
                msn: pos.msn.saturating_add(1),
                part: pos.part - s.parts.len(),
            };
        }
        pos
    }

    /// Where the part with this URI is listed.
    pub fn find_part(&self, uri: &str) -> Option<Pos> {
        self.segments.iter().rev().find_map(|s| {
            let i = s.parts.iter().rposition(|p| p.uri == uri)?;
            Some(Pos {
                msn: s.msn,
                part: i,
            })
        })
    }

    /// The part at `pos`, if listed.
    pub fn part(&self, pos: Pos) -> Option<&Part> {
        self.segment(pos.msn)?.parts.get(pos.part)
    }

    /// Where the part after the last one listed will be: the one a
    /// preload hint points at, and the one to ask a blocking reload for.
    pub fn next_part(&self) -> Pos {
        match self.segments.last() {
            Some(s) if s.uri.is_none() => Pos {
                msn: s.msn,
                part: s.parts.len(),
            },
            Some(s) => Pos {
                msn: s.msn.saturating_add(1),
                part: 0,
            },
            None => Pos {
                msn: self.media_sequence,
                part: 0,
            },
        }
    }

    /// Where an hls.js-like low-latency player starts: the last part
    /// marked INDEPENDENT, else part 0 of the last segment with parts
    /// listed, else the start of the last complete segment.
    pub fn live_start(&self) -> Pos {
        for s in self.segments.iter().rev() {
            if let Some(i) = s.parts.iter().rposition(|p| p.independent) {
                return Pos {
                    msn: s.msn,
                    part: i,
                };
            }
        }
        if let Some(s) = self.segments.iter().rev().find(|s| !s.parts.is_empty()) {
            return Pos {
                msn: s.msn,
                part: 0,
            };
        }
        Pos {
            msn: self.next_msn().saturating_sub(1).max(self.first_msn()),
            part: 0,
        }
    }

    /// Where a player of whole segments starts: `back` complete segments
    /// before the end (at least 1), or the first listed.
    pub fn segment_start(&self, back: u64) -> u64 {
        self.next_msn()
            .saturating_sub(back.max(1))
            .max(self.first_msn())
    }
}

/// Picks a multivariant playlist's variant: the highest `BANDWIDTH`, the
/// first of those when several share it (or none says).
pub fn best_variant(variants: &[Variant]) -> Option<&Variant> {
    variants
        .iter()
        .fold(None, |best: Option<&Variant>, v| match best {
            Some(b) if b.bandwidth >= v.bandwidth => Some(b),
            _ => Some(v),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-STREAM-INF:BANDWIDTH=2628000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n\
        x/llhls.m3u8\n";

    /// Shaped like RFC 8216bis's example of a low-latency playlist.
    const LL: &str = "#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init2.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.1.mp4\"
#EXTINF:0.66668,
fileSequence267.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.2.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.3.mp4\",BYTERANGE=\"1000@2000\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart268.4.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
";

    #[test]
    fn attribute_lists() {
        let a = attributes("A=1,B=\"x,y\",C=YES, D=\"\"");
        assert_eq!(a, [("A", "1"), ("B", "x,y"), ("C", "YES"), ("D", "")]);
        assert_eq!(attributes(""), []);
        assert_eq!(attributes("A=\"unterminated"), [("A", "unterminated")]);
    }

    #[test]
    fn multivariant() {
        let Playlist::Multivariant(v) = parse(MULTI).unwrap() else {
            panic!("not a multivariant playlist");
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].bandwidth, 2_628_000);
        assert_eq!(v[0].codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(v[0].resolution, Some((1280, 720)));
        assert_eq!(v[0].uri, "x/llhls.m3u8");
    }

    #[test]
    fn the_best_variant_is_the_highest_bandwidth_or_the_first() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2400000\nhigh.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2400000\nhigh2.m3u8\n";
        let Playlist::Multivariant(v) = parse(text).unwrap() else {
            panic!("not multivariant");
        };
        assert_eq!(best_variant(&v).unwrap().uri, "high.m3u8");
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:CODECS=\"avc1\"\na.m3u8\n\
            #EXT-X-STREAM-INF:CODECS=\"avc1\"\nb.m3u8\n";
        let Playlist::Multivariant(v) = parse(text).unwrap() else {
            panic!("not multivariant");
        };
        assert_eq!(best_variant(&v).unwrap().uri, "a.m3u8");
        assert_eq!(best_variant(&[]), None);
    }

    #[test]
    fn low_latency_media() {
        let Playlist::Media(m) = parse(LL).unwrap() else {
            panic!("not a media playlist");
        };
        assert_eq!(m.target_duration, 4.0);
        assert_eq!(m.media_sequence, 266);
        assert_eq!(m.part_target, Some(0.33334));
        assert!(m.server_control.can_block_reload);
        assert_eq!(m.server_control.part_hold_back, Some(1.0));
        assert_eq!(m.segments.len(), 3);
        let s = &m.segments;
        assert_eq!(
            (s[0].msn, s[0].uri.as_deref()),
            (266, Some("fileSequence266.mp4"))
        );
        assert_eq!(s[0].map.as_ref().unwrap().uri, "init.mp4");
        assert!(s[0].parts.is_empty() && !s[0].discontinuity);
        assert!(s[1].discontinuity);
        assert_eq!(s[1].map.as_ref().unwrap().uri, "init2.mp4");
        assert_eq!(s[1].parts.len(), 2);
        assert_eq!(s[2].msn, 268);
        assert_eq!(s[2].uri, None);
        assert_eq!(s[2].parts.len(), 4);
        assert_eq!(
            s[2].parts[3].byterange.unwrap().http(),
            Some((2000, Some(2999)))
        );
        let h = m.preload_hint.as_ref().unwrap();
        assert_eq!(
            (h.kind.as_str(), h.uri.as_str()),
            ("PART", "filePart268.4.mp4")
        );
        assert_eq!(m.next_part(), Pos { msn: 268, part: 4 });
        // hls.js starts at the last independent part.
        assert_eq!(m.live_start(), Pos { msn: 268, part: 2 });
        assert_eq!(
            m.part(Pos { msn: 267, part: 1 }).unwrap().uri,
            "filePart267.1.mp4"
        );
        // Past the last part of a complete segment: the next segment.
        assert_eq!(
            m.normalize(Pos { msn: 267, part: 2 }),
            Pos { msn: 268, part: 0 }
        );
        assert_eq!(
            m.normalize(Pos { msn: 268, part: 4 }),
            Pos { msn: 268, part: 4 }
        );
        assert_eq!(
            m.normalize(Pos { msn: 266, part: 3 }),
            Pos { msn: 266, part: 3 },
            "a segment without parts listed stays as it is"
        );
        assert_eq!(
            m.normalize(Pos { msn: 267, part: 3 }),
            Pos { msn: 268, part: 1 }
        );
        assert_eq!(
            m.find_part("filePart268.1.mp4"),
            Some(Pos { msn: 268, part: 1 })
        );
        assert_eq!(m.find_part("filePart268.4.mp4"), None);
        assert_eq!((m.first_msn(), m.next_msn()), (266, 268));
        // Whole segments: the in-progress one does not count.
        assert_eq!(m.segment_start(3), 266);
        assert_eq!(m.segment_start(1), 267);
    }

    #[test]
    fn classic_ts_media() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXTINF:2.000,\nts/10.ts\n#EXTINF:2.000,\nts/11.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,\nts/12.ts\n\
            #EXT-X-ENDLIST\n";
        let Playlist::Media(m) = parse(text).unwrap() else {
            panic!("not a media playlist");
        };
        assert_eq!(m.segments.len(), 3);
        assert!(m
            .segments
            .iter()
            .all(|s| s.parts.is_empty() && s.map.is_none()));
        assert_eq!(m.segments[2].msn, 12);
        assert!(m.segments[2].discontinuity);
        assert_eq!(m.segments[2].duration, 1.5);
        assert!(m.endlist);
        assert_eq!(m.preload_hint, None);
        assert_eq!(m.next_part(), Pos { msn: 13, part: 0 });
        assert_eq!(m.live_start(), Pos { msn: 12, part: 0 });
        assert_eq!(m.segment_start(2), 11);
        assert_eq!(m.segment_start(9), 10);
        assert_eq!(
            parse("#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Err(ParseError::NoTargetDuration)
        );
        assert_eq!(parse("not a playlist"), Err(ParseError::NotAPlaylist));
        assert_eq!(parse(""), Err(ParseError::NotAPlaylist));
    }

    #[test]
    fn byte_ranges_continue_within_a_resource() {
        let text =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"all.mp4\",BYTERANGE=\"700@0\"\n\
            #EXT-X-BYTERANGE:1000@700\n#EXTINF:2,\nall.mp4\n\
            #EXT-X-BYTERANGE:500\n#EXTINF:2,\nall.mp4\n\
            #EXT-X-BYTERANGE:300\n#EXTINF:2,\nother.mp4\n";
        let Playlist::Media(m) = parse(text).unwrap() else {
            panic!("not a media playlist");
        };
        let r: Vec<_> = m.segments.iter().map(|s| s.byterange.unwrap()).collect();
        assert_eq!(r[0].http(), Some((700, Some(1699))));
        assert_eq!(r[1].http(), Some((1700, Some(2199))));
        assert_eq!(r[2].http(), Some((0, Some(299))), "another resource");
        let map = m.segments[0].map.as_ref().unwrap();
        assert_eq!(map.byterange.unwrap().http(), Some((0, Some(699))));
        let huge = ByteRange {
            len: 2,
            offset: Some(u64::MAX),
        };
        assert_eq!(huge.http(), None);
    }

    #[test]
    fn bad_numbers_are_read_as_zero_and_never_overflow() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:NaN\n";
        assert_eq!(parse(text), Err(ParseError::NoTargetDuration));
        let text = |sequence: u64, skipped: &str| {
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{sequence}\n\
                 #EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n#EXTINF:inf,\na.ts\n#EXTINF:-3,\nb.ts\n\
                 #EXT-X-PART:DURATION=x,URI=\"p.mp4\"\n"
            )
        };
        let Playlist::Media(m) = parse(&text(u64::MAX - 4, "x")).unwrap() else {
            panic!("not a media playlist");
        };
        assert_eq!(m.segments.len(), 3);
        assert_eq!(m.segments[2].msn, u64::MAX - 2);
        assert_eq!((m.segments[0].duration, m.segments[1].duration), (0.0, 0.0));
        assert_eq!(m.next_msn(), u64::MAX - 2);
        assert_eq!(
            m.segment(u64::MAX - 4).unwrap().uri.as_deref(),
            Some("a.ts")
        );
        // Numbers that would not fit: refused (saturated ones named several
        // segments at once, and a walk over them did not end; found by
        // libFuzzer, seed playlist/media_sequence_at_2_64).
        assert_eq!(
            parse(&text(u64::MAX - 2, "0")),
            Err(ParseError::SequenceOverflow)
        );
        assert_eq!(
            parse(&text(u64::MAX, "0")),
            Err(ParseError::SequenceOverflow)
        );
        assert_eq!(parse(&text(5, "1e300")), Err(ParseError::SequenceOverflow));
    }

    #[test]
    fn limits_bound_what_a_playlist_holds() {
        let small = Limits {
            max_bytes: 400,
            max_lines: 20,
            max_segments: 3,
            max_variants: 2,
            max_parts: 2,
        };
        let segs = |n: usize| {
            let mut t = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n".to_owned();
            for i in 0..n {
                t.push_str(&format!("#EXTINF:2,\n{i}.ts\n"));
            }
            t
        };
        assert!(parse_with(&segs(3), &small).is_ok());
        assert_eq!(
            parse_with(&segs(4), &small),
            Err(ParseError::TooManySegments(3))
        );
        assert_eq!(
            parse_with(&"\n".repeat(401), &small),
            Err(ParseError::TooLarge(400))
        );
        let mut lines = "#EXTM3U\n".to_owned();
        lines.push_str(&"#X\n".repeat(30));
        assert_eq!(
            parse_with(&lines, &small),
            Err(ParseError::TooManyLines(20))
        );
        let variants =
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n#EXT-X-STREAM-INF:BANDWIDTH=1\nb\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1\nc\n";
        assert_eq!(
            parse_with(variants, &small),
            Err(ParseError::TooManyVariants(2))
        );
        let parts = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=1,URI=\"a\"\n\
            #EXT-X-PART:DURATION=1,URI=\"b\"\n#EXT-X-PART:DURATION=1,URI=\"c\"\n";
        assert_eq!(parse_with(parts, &small), Err(ParseError::TooManyParts(2)));
        assert_eq!(
            ParseError::TooManySegments(3).to_string(),
            "playlist of more than 3 segments"
        );
    }
}
