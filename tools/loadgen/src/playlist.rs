//! Just enough of an HLS playlist reader for the players: multivariant
//! playlists (`EXT-X-STREAM-INF`) and media playlists, classic and
//! low-latency (RFC 8216bis: `EXT-X-PART`, `EXT-X-PART-INF`,
//! `EXT-X-SERVER-CONTROL`, `EXT-X-PRELOAD-HINT`, `EXT-X-MAP`,
//! `EXT-X-DISCONTINUITY`, `EXT-X-BYTERANGE`, `EXT-X-SKIP`). Unknown tags
//! are skipped.

/// A byte range: length and offset (the offset may be implied by the
/// previous range of the same resource; it is then `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub len: u64,
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

    /// The HTTP range (first and last byte), when the offset is known.
    pub fn http(&self) -> Option<(u64, Option<u64>)> {
        let o = self.offset?;
        Some((o, Some(o + self.len.max(1) - 1)))
    }
}

/// One variant of a multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub bandwidth: u64,
    pub codecs: Option<String>,
    pub resolution: Option<(u32, u32)>,
    pub uri: String,
}

/// An `EXT-X-MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    pub uri: String,
    pub byterange: Option<ByteRange>,
}

/// An `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
    pub byterange: Option<ByteRange>,
    pub gap: bool,
}

/// A media segment: complete (it has a URI and an `EXTINF`), or the one
/// in progress at the end of a low-latency playlist (parts only).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    pub duration: f64,
    /// None while the segment is in progress.
    pub uri: Option<String>,
    pub byterange: Option<ByteRange>,
    pub parts: Vec<Part>,
    /// The `EXT-X-MAP` in force for it.
    pub map: Option<Map>,
    /// `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// `PART` or `MAP`.
    pub kind: String,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
}

/// `EXT-X-SERVER-CONTROL`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    pub part_hold_back: Option<f64>,
    pub hold_back: Option<f64>,
    pub can_skip_until: Option<f64>,
}

/// A media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Media {
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: f64,
    /// `EXT-X-MEDIA-SEQUENCE`: the number of the first segment.
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    pub server_control: ServerControl,
    /// In order, numbered from `media_sequence` (plus skipped ones).
    pub segments: Vec<Segment>,
    pub preload_hint: Option<Hint>,
    pub endlist: bool,
}

/// What a playlist turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    Multivariant(Vec<Variant>),
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

fn num(a: &[(&str, &str)], key: &str) -> Option<f64> {
    attr(a, key)?.parse().ok()
}

/// Parses a playlist. Errors when it is not one (`#EXTM3U` missing) or a
/// media playlist lacks `EXT-X-TARGETDURATION`.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("playlist without #EXTM3U".into());
    }
    let mut variants = Vec::new();
    let mut pending_variant: Option<Variant> = None;
    let mut m = Media::default();
    let mut is_media = false;
    let mut target = None;
    // Per segment, while it is being read.
    let mut parts: Vec<Part> = Vec::new();
    let mut duration: Option<f64> = None;
    let mut byterange: Option<ByteRange> = None;
    let mut discontinuity = false;
    let mut map: Option<Map> = None;
    let mut skipped = 0u64;
    for line in lines {
        let Some(tag) = line.strip_prefix('#') else {
            // A URI.
            if let Some(mut v) = pending_variant.take() {
                v.uri = line.to_owned();
                variants.push(v);
                continue;
            }
            if duration.is_none() {
                continue; // a URI without EXTINF: not ours to guess
            }
            let msn = m.media_sequence + skipped + m.segments.len() as u64;
            m.segments.push(Segment {
                msn,
                duration: duration.take().unwrap_or(0.0),
                uri: Some(line.to_owned()),
                byterange: byterange.take(),
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
                target = value.trim().parse::<f64>().ok();
            }
            "EXT-X-MEDIA-SEQUENCE" => {
                is_media = true;
                m.media_sequence = value.trim().parse().unwrap_or(0);
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
            "EXT-X-SKIP" => {
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
                let d = value.split(',').next().unwrap_or("").trim();
                duration = Some(d.parse().unwrap_or(0.0));
            }
            "EXT-X-BYTERANGE" => byterange = ByteRange::parse(value),
            "EXT-X-PART" => {
                let a = attributes(value);
                if let Some(uri) = attr(&a, "URI") {
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
    m.target_duration = target.ok_or("media playlist without EXT-X-TARGETDURATION")?;
    if !parts.is_empty() {
        let msn = m.media_sequence + skipped + m.segments.len() as u64;
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
    pub msn: u64,
    pub part: usize,
}

impl Media {
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
            .map_or(self.first_msn(), |s| s.msn + 1)
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
                msn: pos.msn + 1,
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
    #[cfg(test)]
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
                msn: s.msn + 1,
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
    }

    #[test]
    fn classic_ts_media() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXTINF:2.000,\nts/10.ts\n#EXTINF:2.000,\nts/11.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,\nts/12.ts\n";
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
        assert_eq!(m.preload_hint, None);
        assert_eq!(m.next_part(), Pos { msn: 13, part: 0 });
        assert_eq!(m.live_start(), Pos { msn: 12, part: 0 });
        assert!(parse("#EXTM3U\n#EXTINF:2,\na.ts\n").is_err());
        assert!(parse("not a playlist").is_err());
    }
}
