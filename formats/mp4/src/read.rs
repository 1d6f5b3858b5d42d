//! A small ISO BMFF reader: iterate boxes, and parse back what this crate
//! writes — the init segment's tracks and sample entries, and fragments'
//! `moof` (`mfhd`, `tfhd`, `tfdt`, `trun`) with their `mdat` — for tests,
//! fuzzing and tools. Every parser bounds its work by the input and the
//! limits below, and returns errors, never panics.

use std::ops::Range;

use crate::error::Error;

/// Deepest box nesting [`walk`] descends into.
pub const MAX_DEPTH: usize = 16;
/// Most boxes one parse visits.
pub const MAX_BOXES: usize = 100_000;
/// Most samples one parse returns.
pub const MAX_SAMPLES: usize = 1 << 20;

/// A box: its type, where it starts in the input given to [`boxes`], and
/// its body (after the header, the 64-bit size and a `uuid` user type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef<'a> {
    /// The four-character type.
    pub kind: [u8; 4],
    /// Offset of the box's first byte.
    pub offset: usize,
    /// Header length (8, 16, or more with a `uuid` type).
    pub header_len: usize,
    /// The body.
    pub body: &'a [u8],
}

impl BoxRef<'_> {
    /// Offset of the body's first byte.
    pub fn body_offset(&self) -> usize {
        self.offset + self.header_len
    }

    /// Total size of the box.
    pub fn size(&self) -> usize {
        self.header_len + self.body.len()
    }
}

/// An iterator over the boxes laid end to end in `data`; after an error
/// it stops.
#[derive(Debug, Clone)]
pub struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    done: bool,
}

/// The boxes of `data`; offsets count from `base` (the position of `data`
/// in a larger buffer, or 0).
pub fn boxes(data: &[u8], base: usize) -> Boxes<'_> {
    Boxes {
        data,
        pos: 0,
        base,
        done: false,
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<BoxRef<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let r = self.read();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

impl<'a> Boxes<'a> {
    fn read(&mut self) -> Result<BoxRef<'a>, Error> {
        let rest = &self.data[self.pos..];
        if rest.len() < 8 {
            return Err(Error::Truncated("box header"));
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let mut header_len = 8;
        let size = match size32 {
            0 => rest.len() as u64,
            1 => {
                let b = rest.get(8..16).ok_or(Error::Truncated("box largesize"))?;
                header_len = 16;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            s => s,
        };
        if &kind == b"uuid" {
            header_len += 16;
        }
        if size < header_len as u64 {
            return Err(Error::Malformed("box size below its header"));
        }
        if size > rest.len() as u64 {
            return Err(Error::Truncated("box"));
        }
        let size = size as usize;
        let b = BoxRef {
            kind,
            offset: self.base + self.pos,
            header_len,
            body: &rest[header_len..size],
        };
        self.pos += size;
        Ok(b)
    }
}

/// Visits every box of `data` depth first (containers known to this crate
/// are descended into), calling `f` with each box and its depth. Stops at
/// [`MAX_DEPTH`] and [`MAX_BOXES`] with an error.
pub fn walk(data: &[u8], f: &mut dyn FnMut(&BoxRef, usize)) -> Result<(), Error> {
    let mut count = 0;
    walk_in(data, 0, 0, &mut count, f)
}

const CONTAINERS: [&[u8; 4]; 11] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"mvex", b"moof", b"traf", b"edts",
    b"udta",
];

fn walk_in(
    data: &[u8],
    base: usize,
    depth: usize,
    count: &mut usize,
    f: &mut dyn FnMut(&BoxRef, usize),
) -> Result<(), Error> {
    if depth >= MAX_DEPTH {
        return Err(Error::Limit("box nesting"));
    }
    for b in boxes(data, base) {
        let b = b?;
        *count += 1;
        if *count > MAX_BOXES {
            return Err(Error::Limit("boxes"));
        }
        f(&b, depth);
        if CONTAINERS.contains(&&b.kind) {
            walk_in(b.body, b.body_offset(), depth + 1, count, f)?;
        } else if &b.kind == b"stsd" && b.body.len() >= 8 {
            // Sample entries: descend past each entry's fixed fields.
            for e in boxes(&b.body[8..], b.body_offset() + 8) {
                let e = e?;
                *count += 1;
                if *count > MAX_BOXES {
                    return Err(Error::Limit("boxes"));
                }
                f(&e, depth + 1);
                if let Some(skip) = entry_fields_len(&e.kind) {
                    if e.body.len() >= skip {
                        walk_in(&e.body[skip..], e.body_offset() + skip, depth + 2, count, f)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The length of a sample entry's fixed fields before its child boxes.
fn entry_fields_len(kind: &[u8; 4]) -> Option<usize> {
    match kind {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"av01" | b"vp09" => Some(78),
        b"mp4a" | b"Opus" => Some(28),
        _ => None,
    }
}

/// Reads big-endian fields from a box body.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, pos: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let s = self
            .data
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(Error::Truncated(self.what))?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn fourcc(&mut self) -> Result<[u8; 4], Error> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// A full box's version and flags.
    fn full(&mut self) -> Result<(u8, u32), Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0xff_ffff))
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}

/// The first child of `body` of type `kind`.
fn child<'a>(body: &'a [u8], base: usize, kind: &[u8; 4]) -> Result<Option<BoxRef<'a>>, Error> {
    for b in boxes(body, base) {
        let b = b?;
        if &b.kind == kind {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn need<'a>(b: Option<BoxRef<'a>>, what: &'static str) -> Result<BoxRef<'a>, Error> {
    b.ok_or(Error::Malformed(what))
}

/// An init segment, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// `ftyp` major brand.
    pub major_brand: [u8; 4],
    /// `ftyp` compatible brands.
    pub compatible_brands: Vec<[u8; 4]>,
    /// One per `trak`.
    pub tracks: Vec<InitTrack>,
    /// Track IDs with a `trex` in `mvex` (fragmented: every track).
    pub trex: Vec<u32>,
}

/// One `trak` of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTrack {
    /// `tkhd` track ID.
    pub track_id: u32,
    /// `tkhd` width and height (integer part of 16.16).
    pub tkhd_size: (u32, u32),
    /// `hdlr` handler type (`vide`, `soun`).
    pub handler: [u8; 4],
    /// `mdhd` timescale.
    pub timescale: u32,
    /// The first sample entry of `stsd`.
    pub entry: SampleEntry,
}

/// A sample entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEntry {
    /// `avc1`, `hvc1`, `av01`, `vp09`, `mp4a`, `Opus`, or another type
    /// (its fields then left at 0).
    pub kind: [u8; 4],
    /// Visual entries: width and height.
    pub size: (u16, u16),
    /// Audio entries: channel count and the integer part of the rate.
    pub audio: (u16, u32),
    /// The decoder configuration box (`avcC`, `hvcC`, `av1C`, `vpcC`,
    /// `esds`, `dOps`): its type and body.
    pub config: Option<([u8; 4], Vec<u8>)>,
    /// For `mp4a`: the AudioSpecificConfig found in `esds`.
    pub asc: Option<Vec<u8>>,
}

/// Parses an init segment (`ftyp` and `moov`; other top-level boxes are
/// skipped).
pub fn parse_init(data: &[u8]) -> Result<Init, Error> {
    let mut init = Init {
        major_brand: [0; 4],
        compatible_brands: Vec::new(),
        tracks: Vec::new(),
        trex: Vec::new(),
    };
    let mut moov_seen = false;
    for b in boxes(data, 0) {
        let b = b?;
        match &b.kind {
            b"ftyp" => {
                let mut r = Reader::new(b.body, "ftyp");
                init.major_brand = r.fourcc()?;
                r.u32()?;
                while r.remaining() >= 4 {
                    init.compatible_brands.push(r.fourcc()?);
                }
            }
            b"moov" => {
                moov_seen = true;
                for c in boxes(b.body, b.body_offset()) {
                    let c = c?;
                    match &c.kind {
                        b"trak" => {
                            if init.tracks.len() >= crate::MAX_TRACKS * 16 {
                                return Err(Error::Limit("tracks"));
                            }
                            init.tracks.push(parse_trak(&c)?);
                        }
                        b"mvex" => {
                            for t in boxes(c.body, c.body_offset()) {
                                let t = t?;
                                if &t.kind == b"trex" && init.trex.len() < 4096 {
                                    let mut r = Reader::new(t.body, "trex");
                                    r.full()?;
                                    init.trex.push(r.u32()?);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !moov_seen {
        return Err(Error::Malformed("init segment without moov"));
    }
    Ok(init)
}

/// What every reader of a `trak` needs: its `tkhd`, `mdia` and `stbl`.
struct Trak<'a> {
    track_id: u32,
    tkhd_size: (u32, u32),
    mdia: BoxRef<'a>,
    /// `mdhd`'s.
    timescale: u32,
    stbl: BoxRef<'a>,
}

fn trak_parts<'a>(trak: &BoxRef<'a>) -> Result<Trak<'a>, Error> {
    let tkhd = need(
        child(trak.body, trak.body_offset(), b"tkhd")?,
        "trak without tkhd",
    )?;
    let mut r = Reader::new(tkhd.body, "tkhd");
    let (version, _) = r.full()?;
    r.take(if version == 1 { 16 } else { 8 })?;
    let track_id = r.u32()?;
    r.take(4)?;
    r.take(if version == 1 { 8 } else { 4 })?;
    r.take(8 + 8 + 36)?;
    let tkhd_size = (r.u32()? >> 16, r.u32()? >> 16);

    let mdia = need(
        child(trak.body, trak.body_offset(), b"mdia")?,
        "trak without mdia",
    )?;
    let mdhd = need(
        child(mdia.body, mdia.body_offset(), b"mdhd")?,
        "mdia without mdhd",
    )?;
    let mut r = Reader::new(mdhd.body, "mdhd");
    let (version, _) = r.full()?;
    r.take(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    let minf = need(
        child(mdia.body, mdia.body_offset(), b"minf")?,
        "mdia without minf",
    )?;
    let stbl = need(
        child(minf.body, minf.body_offset(), b"stbl")?,
        "minf without stbl",
    )?;
    Ok(Trak {
        track_id,
        tkhd_size,
        mdia,
        timescale,
        stbl,
    })
}

fn parse_trak(trak: &BoxRef) -> Result<InitTrack, Error> {
    let Trak {
        track_id,
        tkhd_size,
        mdia,
        timescale,
        stbl,
    } = trak_parts(trak)?;
    let hdlr = need(
        child(mdia.body, mdia.body_offset(), b"hdlr")?,
        "mdia without hdlr",
    )?;
    let mut r = Reader::new(hdlr.body, "hdlr");
    r.full()?;
    r.u32()?;
    let handler = r.fourcc()?;
    let stsd = need(
        child(stbl.body, stbl.body_offset(), b"stsd")?,
        "stbl without stsd",
    )?;
    let mut r = Reader::new(stsd.body, "stsd");
    r.full()?;
    if r.u32()? == 0 {
        return Err(Error::Malformed("stsd without entries"));
    }
    let entry = boxes(&stsd.body[8..], stsd.body_offset() + 8)
        .next()
        .ok_or(Error::Truncated("stsd entry"))??;
    Ok(InitTrack {
        track_id,
        tkhd_size,
        handler,
        timescale,
        entry: parse_entry(&entry)?,
    })
}

fn parse_entry(e: &BoxRef) -> Result<SampleEntry, Error> {
    let mut entry = SampleEntry {
        kind: e.kind,
        size: (0, 0),
        audio: (0, 0),
        config: None,
        asc: None,
    };
    let Some(skip) = entry_fields_len(&e.kind) else {
        return Ok(entry);
    };
    let mut r = Reader::new(e.body, "sample entry");
    let fields = r.take(skip)?;
    if skip == 78 {
        entry.size = (
            u16::from_be_bytes([fields[24], fields[25]]),
            u16::from_be_bytes([fields[26], fields[27]]),
        );
    } else {
        entry.audio = (
            u16::from_be_bytes([fields[16], fields[17]]),
            u32::from_be_bytes([fields[24], fields[25], fields[26], fields[27]]) >> 16,
        );
    }
    for c in boxes(&e.body[skip..], e.body_offset() + skip) {
        let c = c?;
        if matches!(
            &c.kind,
            b"avcC" | b"hvcC" | b"av1C" | b"vpcC" | b"esds" | b"dOps"
        ) {
            if &c.kind == b"esds" {
                entry.asc = Some(esds_asc(c.body)?.to_vec());
            }
            entry.config = Some((c.kind, c.body.to_vec()));
            break;
        }
    }
    Ok(entry)
}

/// A descriptor: tag, body.
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), Error> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = r.u8()?;
        len = len << 7 | (b & 0x7f) as usize;
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(Error::Malformed("descriptor size"));
        }
    }
    Ok((tag, r.take(len)?))
}

/// The AudioSpecificConfig inside an `esds` body.
fn esds_asc(body: &[u8]) -> Result<&[u8], Error> {
    let mut r = Reader::new(body, "esds");
    r.full()?;
    let (tag, es) = descriptor(&mut r)?;
    if tag != 3 {
        return Err(Error::Malformed("esds without ES_Descriptor"));
    }
    let mut r = Reader::new(es, "ES_Descriptor");
    r.u16()?;
    let flags = r.u8()?;
    if flags & 0x80 != 0 {
        r.u16()?;
    }
    if flags & 0x40 != 0 {
        let n = r.u8()? as usize;
        r.take(n)?;
    }
    if flags & 0x20 != 0 {
        r.u16()?;
    }
    while r.remaining() > 0 {
        let (tag, d) = descriptor(&mut r)?;
        if tag == 4 {
            let mut r = Reader::new(d, "DecoderConfigDescriptor");
            r.take(13)?;
            while r.remaining() > 0 {
                let (tag, d) = descriptor(&mut r)?;
                if tag == 5 {
                    return Ok(d);
                }
            }
        }
    }
    Err(Error::Malformed("esds without DecoderSpecificInfo"))
}

/// A `moof` and its `mdat`, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// Offset of `moof` in the input.
    pub moof_offset: usize,
    /// The body of the `mdat` that follows, if one does.
    pub mdat: Option<Range<usize>>,
    /// One per `traf`.
    pub trafs: Vec<TrafInfo>,
}

/// A `traf`, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafInfo {
    /// `tfhd` track ID.
    pub track_id: u32,
    /// `tfdt` baseMediaDecodeTime, if present.
    pub base_decode_time: Option<u64>,
    /// The samples of every `trun`, in order.
    pub samples: Vec<SampleInfo>,
}

impl TrafInfo {
    /// Decode time of each sample: `tfdt` plus the durations before it.
    pub fn decode_times(&self) -> Vec<u64> {
        let mut t = self.base_decode_time.unwrap_or(0);
        self.samples
            .iter()
            .map(|s| {
                let now = t;
                t = t.wrapping_add(s.duration as u64);
                now
            })
            .collect()
    }
}

/// One sample of a `trun`, with the defaults of `tfhd` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleInfo {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
    /// `sample_flags`.
    pub flags: u32,
    /// Composition time offset (signed for `trun` version 1).
    pub composition_offset: i64,
    /// Where its bytes are in the input (checked to lie inside it).
    pub data: Range<usize>,
}

impl SampleInfo {
    /// Whether the flags mark a sync sample.
    pub fn is_sync(&self) -> bool {
        self.flags & 0x0001_0000 == 0
    }
}

/// Parses every `moof` in `data` (a fragment, a segment of several, with
/// `styp`, `sidx` or other boxes between them) with the `mdat` that
/// follows each.
pub fn parse_fragments(data: &[u8]) -> Result<Vec<FragmentInfo>, Error> {
    let mut out: Vec<FragmentInfo> = Vec::new();
    let mut samples = 0usize;
    let mut count = 0usize;
    for b in boxes(data, 0) {
        let b = b?;
        count += 1;
        if count > MAX_BOXES {
            return Err(Error::Limit("boxes"));
        }
        match &b.kind {
            b"moof" => out.push(parse_moof(&b, data.len(), &mut samples)?),
            b"mdat" => {
                if let Some(f) = out.last_mut() {
                    if f.mdat.is_none() {
                        f.mdat = Some(b.body_offset()..b.body_offset() + b.body.len());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn parse_moof(moof: &BoxRef, input_len: usize, total: &mut usize) -> Result<FragmentInfo, Error> {
    let mfhd = need(
        child(moof.body, moof.body_offset(), b"mfhd")?,
        "moof without mfhd",
    )?;
    let mut r = Reader::new(mfhd.body, "mfhd");
    r.full()?;
    let mut info = FragmentInfo {
        sequence: r.u32()?,
        moof_offset: moof.offset,
        mdat: None,
        trafs: Vec::new(),
    };
    // Where the previous traf's data ended (the implicit base of the next
    // traf without default-base-is-moof).
    let mut data_end = moof.offset;
    for traf in boxes(moof.body, moof.body_offset()) {
        let traf = traf?;
        if &traf.kind != b"traf" {
            continue;
        }
        let tfhd = need(
            child(traf.body, traf.body_offset(), b"tfhd")?,
            "traf without tfhd",
        )?;
        let mut r = Reader::new(tfhd.body, "tfhd");
        let (_, flags) = r.full()?;
        let track_id = r.u32()?;
        let base_offset = if flags & 0x01 != 0 {
            Some(r.u64()?)
        } else {
            None
        };
        if flags & 0x02 != 0 {
            r.u32()?;
        }
        let default_duration = if flags & 0x08 != 0 { r.u32()? } else { 0 };
        let default_size = if flags & 0x10 != 0 { r.u32()? } else { 0 };
        let default_flags = if flags & 0x20 != 0 { r.u32()? } else { 0 };
        let base = match base_offset {
            Some(b) => usize::try_from(b).map_err(|_| Error::Malformed("tfhd base offset"))?,
            None if flags & 0x02_0000 != 0 || info.trafs.is_empty() => moof.offset,
            None => data_end,
        };
        let mut t = TrafInfo {
            track_id,
            base_decode_time: None,
            samples: Vec::new(),
        };
        let mut pos = base;
        for c in boxes(traf.body, traf.body_offset()) {
            let c = c?;
            match &c.kind {
                b"tfdt" => {
                    let mut r = Reader::new(c.body, "tfdt");
                    let (version, _) = r.full()?;
                    t.base_decode_time = Some(if version == 1 {
                        r.u64()?
                    } else {
                        r.u32()? as u64
                    });
                }
                b"trun" => {
                    let mut r = Reader::new(c.body, "trun");
                    let (version, flags) = r.full()?;
                    let count = r.u32()? as usize;
                    if flags & 0x001 != 0 {
                        let off = r.u32()? as i32 as i128;
                        pos = usize::try_from(base as i128 + off)
                            .map_err(|_| Error::Malformed("trun data offset"))?;
                    }
                    let first_flags = if flags & 0x004 != 0 {
                        Some(r.u32()?)
                    } else {
                        None
                    };
                    let per = [0x100, 0x200, 0x400, 0x800]
                        .iter()
                        .filter(|&&f| flags & f != 0)
                        .count()
                        * 4;
                    // The table must fit in the box: bounds the count.
                    if count.saturating_mul(per) > r.remaining() {
                        return Err(Error::Truncated("trun samples"));
                    }
                    if per == 0 && count > 0 {
                        // Nothing per sample: the count alone is not
                        // bounded by the input.
                        if count > MAX_SAMPLES {
                            return Err(Error::Limit("samples"));
                        }
                    }
                    *total += count;
                    if *total > MAX_SAMPLES {
                        return Err(Error::Limit("samples"));
                    }
                    for i in 0..count {
                        let duration = if flags & 0x100 != 0 {
                            r.u32()?
                        } else {
                            default_duration
                        };
                        let size = if flags & 0x200 != 0 {
                            r.u32()?
                        } else {
                            default_size
                        };
                        let mut sflags = if flags & 0x400 != 0 {
                            r.u32()?
                        } else {
                            default_flags
                        };
                        if i == 0 {
                            if let Some(f) = first_flags {
                                sflags = f;
                            }
                        }
                        let composition_offset = if flags & 0x800 != 0 {
                            let v = r.u32()?;
                            if version == 0 {
                                v as i64
                            } else {
                                v as i32 as i64
                            }
                        } else {
                            0
                        };
                        let end = pos
                            .checked_add(size as usize)
                            .filter(|&e| e <= input_len)
                            .ok_or(Error::Malformed("sample data outside the input"))?;
                        t.samples.push(SampleInfo {
                            duration,
                            size,
                            flags: sflags,
                            composition_offset,
                            data: pos..end,
                        });
                        pos = end;
                    }
                }
                _ => {}
            }
        }
        data_end = pos;
        info.trafs.push(t);
    }
    Ok(info)
}

/// One sample of a progressive MP4, from its `moov`'s sample tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSample {
    /// Its track's `tkhd` track ID.
    pub track_id: u32,
    /// A sync sample (`stss` lists it, or there is no `stss`).
    pub key: bool,
    /// Where its bytes are, from the start of the file.
    pub offset: u64,
    /// Bytes of the sample.
    pub size: u32,
    /// Decode time in µs: the track's `stts` sums after its empty edit
    /// (a track that starts late keeps its delay).
    pub dts: i64,
    /// Presentation time in µs (`ctts` added; never before `dts`).
    pub pts: i64,
}

/// Every sample the `moov` in `data` describes (`data`: the `moov` box,
/// alone or among other top-level boxes), ordered by file offset. At most
/// `max_samples` in all, or [`Error::Limit`]; a table shorter than the
/// sample count is an error, never read past.
pub fn sample_tables(data: &[u8], max_samples: usize) -> Result<Vec<TableSample>, Error> {
    let mut moov = None;
    for b in boxes(data, 0) {
        let b = b?;
        if &b.kind == b"moov" {
            moov = Some(b);
            break;
        }
    }
    let moov = need(moov, "file without moov")?;
    let mvhd = need(
        child(moov.body, moov.body_offset(), b"mvhd")?,
        "moov without mvhd",
    )?;
    let mut r = Reader::new(mvhd.body, "mvhd");
    let (version, _) = r.full()?;
    r.take(if version == 1 { 16 } else { 8 })?;
    let movie_timescale = r.u32()?.max(1);
    let mut out = Vec::new();
    let mut traks = 0;
    for c in boxes(moov.body, moov.body_offset()) {
        let c = c?;
        if &c.kind != b"trak" {
            continue;
        }
        traks += 1;
        if traks > crate::MAX_TRACKS * 16 {
            return Err(Error::Limit("tracks"));
        }
        trak_samples(&c, movie_timescale, max_samples - out.len(), &mut out)?;
    }
    out.sort_by_key(|s| (s.offset, s.track_id));
    Ok(out)
}

/// A table's entry count, checked against the bytes it needs.
fn entries(r: &mut Reader, each: usize) -> Result<usize, Error> {
    let n = r.u32()? as usize;
    if n.saturating_mul(each) > r.remaining() {
        return Err(Error::Truncated(r.what));
    }
    Ok(n)
}

fn trak_samples(
    trak: &BoxRef,
    movie_timescale: u32,
    max_samples: usize,
    out: &mut Vec<TableSample>,
) -> Result<(), Error> {
    let base = trak.body_offset();
    let Trak {
        track_id,
        timescale,
        stbl,
        ..
    } = trak_parts(trak)?;
    let timescale = timescale.max(1) as i128;
    // An empty edit first: the track starts that late.
    let mut delay_us = 0i128;
    if let Some(edts) = child(trak.body, base, b"edts")? {
        if let Some(elst) = child(edts.body, edts.body_offset(), b"elst")? {
            let mut r = Reader::new(elst.body, "elst");
            let (version, _) = r.full()?;
            if r.u32()? > 0 {
                let (duration, media_time) = if version == 1 {
                    (r.u64()?, r.u64()? as i64)
                } else {
                    (r.u32()? as u64, r.u32()? as i32 as i64)
                };
                if media_time == -1 {
                    delay_us = duration as i128 * 1_000_000 / movie_timescale as i128;
                }
            }
        }
    }
    let table = |kind: &[u8; 4]| child(stbl.body, stbl.body_offset(), kind);

    // Sizes: the sample count.
    let stsz = need(table(b"stsz")?, "stbl without stsz")?;
    let mut r = Reader::new(stsz.body, "stsz");
    r.full()?;
    let fixed = r.u32()?;
    let n = if fixed == 0 {
        entries(&mut r, 4)?
    } else {
        r.u32()? as usize
    };
    if n > max_samples {
        return Err(Error::Limit("samples"));
    }
    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        sizes.push(if fixed == 0 { r.u32()? } else { fixed });
    }

    // Decode times.
    let stts = need(table(b"stts")?, "stbl without stts")?;
    let mut r = Reader::new(stts.body, "stts");
    r.full()?;
    let mut dts = Vec::with_capacity(n);
    let mut t = 0i128;
    for _ in 0..entries(&mut r, 8)? {
        let (count, delta) = (r.u32()?, r.u32()?);
        for _ in 0..count {
            if dts.len() == n {
                break;
            }
            dts.push(t);
            t += delta as i128;
        }
    }
    if dts.len() < n {
        return Err(Error::Malformed("stts shorter than stsz"));
    }

    // Composition offsets.
    let mut cts = vec![0i128; n];
    if let Some(ctts) = table(b"ctts")? {
        let mut r = Reader::new(ctts.body, "ctts");
        let (version, _) = r.full()?;
        let mut i = 0usize;
        for _ in 0..entries(&mut r, 8)? {
            let count = r.u32()?;
            let raw = r.u32()?;
            let off = if version == 1 {
                raw as i32 as i128
            } else {
                raw as i128
            };
            for _ in 0..count {
                if i == n {
                    break;
                }
                cts[i] = off;
                i += 1;
            }
        }
    }

    // Sync samples: none listed means every one.
    let mut key = vec![true; n];
    if let Some(stss) = table(b"stss")? {
        key.iter_mut().for_each(|k| *k = false);
        let mut r = Reader::new(stss.body, "stss");
        r.full()?;
        for _ in 0..entries(&mut r, 4)? {
            let i = r.u32()? as usize;
            if (1..=n).contains(&i) {
                key[i - 1] = true;
            }
        }
    }

    // Chunks: their offsets, and how many samples each holds.
    let (co, wide) = match (table(b"stco")?, table(b"co64")?) {
        (Some(b), _) => (b, false),
        (None, Some(b)) => (b, true),
        (None, None) => return Err(Error::Malformed("stbl without stco or co64")),
    };
    let mut r = Reader::new(co.body, "stco");
    r.full()?;
    let chunks = entries(&mut r, if wide { 8 } else { 4 })?;
    let mut chunk_offsets = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        chunk_offsets.push(if wide { r.u64()? } else { r.u32()? as u64 });
    }
    let stsc = need(table(b"stsc")?, "stbl without stsc")?;
    let mut r = Reader::new(stsc.body, "stsc");
    r.full()?;
    let mut runs = Vec::new();
    for _ in 0..entries(&mut r, 12)? {
        let (first, per_chunk) = (r.u32()? as usize, r.u32()? as usize);
        r.u32()?;
        // Runs start at increasing chunks (1 first): the walk below then
        // visits each chunk once.
        if first <= runs.last().map_or(0, |r: &(usize, usize)| r.0) {
            return Err(Error::Malformed("stsc"));
        }
        runs.push((first, per_chunk));
    }
    let mut i = 0usize;
    for (k, &(first, per_chunk)) in runs.iter().enumerate() {
        let end = runs.get(k + 1).map_or(chunks + 1, |r| r.0.min(chunks + 1));
        for chunk in first..end {
            let Some(&start) = chunk_offsets.get(chunk - 1) else {
                break;
            };
            let mut at = start;
            for _ in 0..per_chunk {
                if i == n {
                    break;
                }
                let dts_us = delay_us + dts[i] * 1_000_000 / timescale;
                let pts_us = delay_us + (dts[i] + cts[i]) * 1_000_000 / timescale;
                let clamp = |t: i128| t.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                out.push(TableSample {
                    track_id,
                    key: key[i],
                    offset: at,
                    size: sizes[i],
                    dts: clamp(dts_us),
                    pts: clamp(pts_us.max(dts_us)),
                });
                at = at.saturating_add(sizes[i] as u64);
                i += 1;
            }
        }
    }
    if i < n {
        return Err(Error::Malformed("chunks hold fewer samples than stsz"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_tables_of_an_ffmpeg_mp4() {
        // ffmpeg 5.1: 0.5 s of H.264 (B-frames) and AAC, its ftyp and moov
        // (several samples a chunk, stco, ctts, stss, edit lists).
        let moov = include_bytes!("../fuzz/corpus/boxes/7cbe4d1b4ceb6f80b051d5b13d0ac1d06ab4e59d");
        let got: Vec<_> = sample_tables(moov, 100)
            .unwrap()
            .iter()
            .map(|s| (s.track_id, s.offset, s.size, s.key))
            .collect();
        // As ffprobe lists the packets.
        let want = [
            (1, 48, 1631, true),
            (2, 1679, 601, true),
            (1, 2280, 56, false),
            (1, 2336, 43, false),
            (2, 2379, 580, true),
            (1, 2959, 27, false),
            (2, 2986, 393, true),
            (1, 3379, 26, false),
            (2, 3405, 421, true),
            (2, 3826, 481, true),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn box_headers() {
        // size 0 (to the end), largesize, uuid, and a too-small size.
        let mut data = vec![0, 0, 0, 12, b'f', b'r', b'e', b'e', 1, 2, 3, 4];
        data.extend_from_slice(&[0, 0, 0, 1, b'b', b'i', b'g', b'!']);
        data.extend_from_slice(&17u64.to_be_bytes());
        data.push(9);
        data.extend_from_slice(&[0, 0, 0, 0, b'u', b'u', b'i', b'd']);
        data.extend_from_slice(&[7; 16]);
        data.extend_from_slice(b"tail");
        let all: Vec<BoxRef> = boxes(&data, 0).map(Result::unwrap).collect();
        assert_eq!(all.len(), 3);
        assert_eq!((&all[0].kind, all[0].body), (b"free", &[1u8, 2, 3, 4][..]));
        assert_eq!(
            (&all[1].kind, all[1].body, all[1].offset),
            (b"big!", &[9u8][..], 12)
        );
        assert_eq!(
            (&all[2].kind, all[2].body, all[2].header_len),
            (b"uuid", &b"tail"[..], 24)
        );
        let bad = [0, 0, 0, 4, b'b', b'a', b'd', b'!'];
        let r: Vec<_> = boxes(&bad, 0).collect();
        assert_eq!(r, [Err(Error::Malformed("box size below its header"))]);
        let cut = [0, 0, 0, 40, b'c', b'u', b't', b'!'];
        assert_eq!(boxes(&cut, 0).next(), Some(Err(Error::Truncated("box"))));
        assert_eq!(
            boxes(&[0, 0, 0], 0).next(),
            Some(Err(Error::Truncated("box header")))
        );
    }

    #[test]
    fn nesting_is_bounded() {
        // 40 nested moov boxes.
        let mut data = Vec::new();
        for _ in 0..40 {
            let mut outer = ((data.len() + 8) as u32).to_be_bytes().to_vec();
            outer.extend_from_slice(b"moov");
            outer.extend_from_slice(&data);
            data = outer;
        }
        assert_eq!(
            walk(&data, &mut |_, _| {}),
            Err(Error::Limit("box nesting"))
        );
    }
}
