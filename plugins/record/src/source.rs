//! Frames out of a recording file, whatever its format: what a replay
//! reads. A file's bytes go in as they are read, from where the source
//! wants them ([`Source::position`]: the next byte, except in an MP4,
//! whose `moov` at the end is read before its samples), through
//! [`Source::feed`], then [`Source::finish`] at its end; frames come out
//! in file order, in the host's form (length-prefixed NAL units, raw AAC,
//! configuration records).
//!
//! - Tracks are the file's own, numbered as it numbers them: the (f)MP4
//!   track's index among those read, the TS demuxer's ids, video 0 and
//!   audio 1 in FLV. A recorder writes them in the same order in every
//!   file.
//! - A config frame goes out just before the next media frame, stamped
//!   with its decode time: a replay paces by decode time, and a config
//!   stamped earlier (an FLV sequence header, an init segment) would open
//!   a gap before the picture.
//! - Only audio and video: script data (FLV's `onMetaData`) is left out.

use bytes::{Bytes, BytesMut};
use rill_abi::*;
use rill_hls::segment::Mp4Init;
use rill_ts::Frame;

/// Most bytes held waiting for a whole fMP4 fragment, MP4 `moov` or
/// sample.
const MAX_BUFFER: usize = 64 << 20;
/// Most samples one MP4 file may have (32 bytes each held): over 4 hours
/// of 60 fps video with 48 kHz audio.
const MAX_MP4_SAMPLES: usize = 1_000_000;
/// Top-level boxes passed over looking for an MP4's `moov`.
const MAX_MP4_BOXES: usize = 64;
/// FLV track numbers.
const FLV_VIDEO: u32 = 0;
const FLV_AUDIO: u32 = 1;

/// A recording's frames, from its bytes.
pub struct Source {
    format: Format,
    /// Config frames waiting for the next media frame.
    held: Vec<Frame>,
    /// Bytes fed (the streaming formats read straight through).
    fed: u64,
}

enum Format {
    Fmp4 {
        /// Bytes read, not yet a whole `moof` + `mdat` (or init segment).
        buf: BytesMut,
        init: Option<Mp4Init>,
    },
    Flv(Box<rill_flv::reader::Reader>),
    Ts {
        demux: Box<rill_ts::demux::Demuxer>,
        video: Option<bool>,
    },
    Mp4(Box<Mp4>),
}

/// A progressive MP4: its `moov` found and read, then its samples cut out
/// of the bytes read from the first one on (gaps are jumped over).
struct Mp4 {
    /// Where `buf` starts in the file.
    at: u64,
    buf: BytesMut,
    stage: Mp4Stage,
}

enum Mp4Stage {
    /// Box headers at the top level, the `n`th at `at`.
    Scan { n: usize },
    /// The `moov`, `size` bytes at `at`.
    Moov { size: usize },
    Samples {
        init: Mp4Init,
        samples: Vec<rill_mp4::read::TableSample>,
        next: usize,
    },
}

impl Source {
    /// Whether a recording of `format` (the index's name) can be read.
    pub fn reads(format: &str) -> bool {
        matches!(format, "fmp4" | "flv" | "ts" | "mp4")
    }

    /// A source for a recording of `format` (the index's name: `fmp4`,
    /// `flv`, `ts`, `mp4`); `None` for a format it cannot read.
    pub fn new(format: &str) -> Option<Source> {
        let format = match format {
            "fmp4" => Format::Fmp4 {
                buf: BytesMut::new(),
                init: None,
            },
            "flv" => Format::Flv(Box::default()),
            "ts" => Format::Ts {
                demux: Box::default(),
                video: None,
            },
            "mp4" => Format::Mp4(Box::new(Mp4 {
                at: 0,
                buf: BytesMut::new(),
                stage: Mp4Stage::Scan { n: 0 },
            })),
            _ => return None,
        };
        Some(Source {
            format,
            held: Vec::new(),
            fed: 0,
        })
    }

    /// Where in the file the next bytes to feed start.
    pub fn position(&self) -> u64 {
        match &self.format {
            Format::Mp4(m) => m.at + m.buf.len() as u64,
            _ => self.fed,
        }
    }

    /// Every frame is out (an MP4's last sample; the others read to the
    /// end of the file).
    pub fn done(&self) -> bool {
        matches!(&self.format, Format::Mp4(m) if matches!(
            &m.stage,
            Mp4Stage::Samples { samples, next, .. } if *next >= samples.len()
        ))
    }

    /// Whether the file has video, once its header says (`None` before).
    pub fn has_video(&self) -> Option<bool> {
        match &self.format {
            Format::Fmp4 { init, .. } => init
                .as_ref()
                .map(|i| i.tracks().iter().any(|t| t.is_video())),
            Format::Flv(r) => r.header().map(|h| h.video),
            Format::Ts { video, .. } => *video,
            Format::Mp4(m) => match &m.stage {
                Mp4Stage::Samples { init, .. } => Some(init.tracks().iter().any(|t| t.is_video())),
                _ => None,
            },
        }
    }

    /// The next bytes of the file; its frames are appended to `out`. An
    /// error: the rest of the file cannot be read.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) -> Result<(), String> {
        let mut frames = Vec::new();
        self.fed += data.len() as u64;
        match &mut self.format {
            Format::Fmp4 { buf, init } => {
                if buf.len() + data.len() > MAX_BUFFER {
                    return Err(format!("no whole fragment in {MAX_BUFFER} bytes"));
                }
                buf.extend_from_slice(data);
                if init.is_none() {
                    let Some(end) = crate::vod::init_len(buf) else {
                        return Ok(());
                    };
                    let bytes = buf.split_to(end as usize).freeze();
                    let i = Mp4Init::parse(&bytes).map_err(|e| e.to_string())?;
                    frames.extend(i.config_frames(0));
                    *init = Some(i);
                }
                let init = init.as_ref().expect("parsed above");
                while let Some(frags) = take_fragments(buf) {
                    // A fragment that does not parse is skipped, not fatal.
                    let _ = init.frames(&frags, &mut frames);
                }
            }
            Format::Flv(reader) => {
                reader.feed(data).map_err(|e| e.to_string())?;
                while let Some(tag) = reader.poll_tag() {
                    let Ok(Some(f)) = tag.demux() else {
                        continue;
                    };
                    let track = match rill_codec_kind(f.codec) {
                        RILL_TRACK_VIDEO => FLV_VIDEO,
                        RILL_TRACK_AUDIO => FLV_AUDIO,
                        _ => continue,
                    };
                    frames.push(Frame {
                        track,
                        codec: f.codec,
                        flags: f.flags,
                        pts: f.pts,
                        dts: f.dts,
                        payload: f.payload,
                    });
                }
            }
            Format::Ts { demux, video } => {
                let mut events = Vec::new();
                demux.feed(data, &mut events);
                ts_frames(events, video, &mut frames);
            }
            Format::Mp4(m) => m.feed(data, &mut frames)?,
        }
        self.order(frames, out);
        Ok(())
    }

    /// A read of the file came back: `data` (`None`: the read failed) of
    /// a file of `len` bytes. Whether the file goes on: `Ok(false)` at its
    /// end (the last frames out), `Err` when the rest cannot be read.
    pub fn read(
        &mut self,
        data: Option<&[u8]>,
        len: u64,
        out: &mut Vec<Frame>,
    ) -> Result<bool, String> {
        let more = match data {
            Some(d) if !d.is_empty() => self
                .feed(d, out)
                .map(|()| !self.done() && self.position() < len),
            // The file ended (or went).
            _ => Ok(false),
        };
        if more != Ok(true) {
            self.finish(out);
        }
        more
    }

    /// [`read`](Self::read) on the file being read, if there is one:
    /// whether that file ended, and why when it ended on an error.
    pub fn read_on(
        source: Option<&mut Source>,
        data: Option<&[u8]>,
        len: u64,
        out: &mut Vec<Frame>,
    ) -> (bool, Option<String>) {
        match source.map(|s| s.read(data, len, out)) {
            Some(Ok(more)) => (!more, None),
            Some(Err(e)) => (true, Some(e)),
            None => (true, None),
        }
    }

    /// The file ended: what was held for more bytes.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        if let Format::Ts { demux, video } = &mut self.format {
            let mut events = Vec::new();
            demux.flush(&mut events);
            let mut frames = Vec::new();
            ts_frames(events, video, &mut frames);
            self.order(frames, out);
        }
    }

    /// Holds config frames back until the next media frame, then stamps
    /// them with its decode time.
    fn order(&mut self, frames: Vec<Frame>, out: &mut Vec<Frame>) {
        for f in frames {
            if rill_codec_kind(f.codec) != RILL_TRACK_AUDIO
                && rill_codec_kind(f.codec) != RILL_TRACK_VIDEO
            {
                continue;
            }
            if f.flags & RILL_FRAME_CONFIG != 0 {
                // A newer config of the same track replaces the held one.
                self.held.retain(|h| h.track != f.track);
                self.held.push(f);
                continue;
            }
            for mut c in self.held.drain(..) {
                c.dts = f.dts;
                c.pts = f.dts;
                out.push(c);
            }
            out.push(f);
        }
    }
}

impl Mp4 {
    fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) -> Result<(), String> {
        if self.buf.len() + data.len() > MAX_BUFFER {
            return Err(format!("more than {MAX_BUFFER} bytes held for a box"));
        }
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.stage {
                Mp4Stage::Scan { n } => {
                    if *n >= MAX_MP4_BOXES {
                        return Err("no moov in the first boxes".into());
                    }
                    let b = &self.buf[..];
                    if b.len() < 16 {
                        return Ok(());
                    }
                    let size = match u32::from_be_bytes([b[0], b[1], b[2], b[3]]) {
                        1 => u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
                        // 0 (to the end of the file) would be the last box.
                        0 => return Err("no moov before a box to the end of the file".into()),
                        s => s as u64,
                    };
                    if size < 8 {
                        return Err("a box of less than 8 bytes".into());
                    }
                    if &b[4..8] == b"moov" {
                        if size > MAX_BUFFER as u64 {
                            return Err(format!("a moov of {size} bytes"));
                        }
                        self.stage = Mp4Stage::Moov {
                            size: size as usize,
                        };
                        continue;
                    }
                    *n += 1;
                    // Jump over the box (an mdat: the whole media).
                    self.at = self.at.saturating_add(size);
                    self.buf.clear();
                    return Ok(());
                }
                Mp4Stage::Moov { size } => {
                    if self.buf.len() < *size {
                        return Ok(());
                    }
                    let moov = self.buf.split_to(*size);
                    let init = Mp4Init::parse(&moov).map_err(|e| e.to_string())?;
                    let samples = rill_mp4::read::sample_tables(&moov, MAX_MP4_SAMPLES)
                        .map_err(|e| e.to_string())?;
                    out.extend(init.config_frames(0));
                    self.at = samples.first().map_or(self.at, |s| s.offset);
                    self.buf.clear();
                    self.stage = Mp4Stage::Samples {
                        init,
                        samples,
                        next: 0,
                    };
                }
                Mp4Stage::Samples {
                    init,
                    samples,
                    next,
                } => {
                    while let Some(s) = samples.get(*next) {
                        let end = self.at + self.buf.len() as u64;
                        let track = init.tracks().iter().find(|t| t.track_id == s.track_id);
                        // Behind what was read (overlapping samples), or of
                        // a track without a frame form: passed over.
                        if s.offset < self.at || track.is_none() {
                            *next += 1;
                            continue;
                        }
                        if s.offset > end {
                            // A gap: read on from the sample.
                            self.at = s.offset;
                            self.buf.clear();
                            return Ok(());
                        }
                        if s.offset + s.size as u64 > end {
                            if s.size as usize > MAX_BUFFER {
                                return Err(format!("a sample of {} bytes", s.size));
                            }
                            return Ok(());
                        }
                        let t = track.expect("checked");
                        let _ = self.buf.split_to((s.offset - self.at) as usize);
                        let payload = self.buf.split_to(s.size as usize).freeze();
                        self.at = s.offset + s.size as u64;
                        out.push(Frame {
                            track: t.index,
                            codec: t.codec,
                            flags: if s.key || !t.is_video() {
                                RILL_FRAME_KEY
                            } else {
                                0
                            },
                            pts: s.pts,
                            dts: s.dts,
                            payload,
                        });
                        *next += 1;
                    }
                    return Ok(());
                }
            }
        }
    }
}

fn ts_frames(events: Vec<rill_ts::demux::Event>, video: &mut Option<bool>, out: &mut Vec<Frame>) {
    for e in events {
        match e {
            rill_ts::demux::Event::Tracks(t) => {
                *video = Some(
                    t.iter()
                        .any(|t| rill_codec_kind(t.codec) == RILL_TRACK_VIDEO),
                );
            }
            rill_ts::demux::Event::Frame(f) => out.push(f),
            // A damaged packet: demuxing goes on past it.
            rill_ts::demux::Event::Error { .. } => {}
        }
    }
}

/// The whole `moof` + `mdat` pairs at the front of `buf`, cut off.
fn take_fragments(buf: &mut BytesMut) -> Option<Bytes> {
    let mut end = 0usize;
    let mut at = 0usize;
    let mut moof = false;
    while at + 8 <= buf.len() {
        let b = &buf[at..];
        let size = match u32::from_be_bytes([b[0], b[1], b[2], b[3]]) {
            1 if b.len() >= 16 => u64::from_be_bytes(b[8..16].try_into().ok()?) as usize,
            1 => break,
            n => n as usize,
        };
        if size < 8 || at.saturating_add(size) > buf.len() {
            break;
        }
        match &b[4..8] {
            b"moof" => moof = true,
            b"mdat" if moof => {
                moof = false;
                end = at + size;
            }
            _ => {}
        }
        at += size;
    }
    (end > 0).then(|| buf.split_to(end).freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], len: usize) -> Vec<u8> {
        [&((len + 8) as u32).to_be_bytes()[..], kind, &vec![7; len]].concat()
    }

    #[test]
    fn whole_fragments_are_cut_off_the_front() {
        let mut buf = BytesMut::new();
        let pair = [boxed(b"moof", 20), boxed(b"mdat", 100)].concat();
        buf.extend_from_slice(&pair);
        buf.extend_from_slice(&pair);
        // The third pair only begins.
        buf.extend_from_slice(&pair[..50]);
        assert_eq!(
            take_fragments(&mut buf).map(|b| b.len()),
            Some(2 * pair.len())
        );
        assert_eq!(buf.len(), 50);
        assert_eq!(take_fragments(&mut buf), None);
        // An mdat without its moof is no fragment; a bad size stops.
        let mut b2 = BytesMut::from(&boxed(b"mdat", 10)[..]);
        assert_eq!(take_fragments(&mut b2), None);
        let mut b3 = BytesMut::from(&[0, 0, 0, 3, b'm', b'o', b'o', b'f'][..]);
        assert_eq!(take_fragments(&mut b3), None);
    }

    fn frame(track: u32, codec: u32, flags: u32, dts: i64) -> Frame {
        Frame {
            track,
            codec,
            flags,
            pts: dts,
            dts,
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn configs_wait_for_the_next_media_frame_and_take_its_time() {
        let mut s = Source::new("ts").unwrap();
        let mut out = Vec::new();
        s.order(
            vec![
                frame(0, RILL_CODEC_H264, RILL_FRAME_CONFIG, 0),
                frame(0, RILL_CODEC_H264, RILL_FRAME_CONFIG, 10),
                frame(1, RILL_CODEC_METADATA, 0, 20),
                frame(1, RILL_CODEC_AAC, RILL_FRAME_CONFIG, 30),
            ],
            &mut out,
        );
        assert!(out.is_empty());
        s.order(
            vec![frame(0, RILL_CODEC_H264, RILL_FRAME_KEY, 500)],
            &mut out,
        );
        let got: Vec<_> = out.iter().map(|f| (f.track, f.flags, f.dts)).collect();
        assert_eq!(
            got,
            [
                (0, RILL_FRAME_CONFIG, 500),
                (1, RILL_FRAME_CONFIG, 500),
                (0, RILL_FRAME_KEY, 500)
            ]
        );
    }

    /// A progressive MP4 as the recorder writes it: header, samples,
    /// `moov` last.
    fn mp4_file() -> (Vec<u8>, Vec<rill_mp4::progressive::StoredSample>) {
        use rill_mp4::progressive::{self, StoredSample};
        let v = rill_mp4::TrackInfo::new(
            RILL_CODEC_H264,
            Bytes::from_static(rill_mp4::fuzzing::seeds::AVCC_HIGH_31),
        )
        .unwrap();
        let a =
            rill_mp4::TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut file = progressive::header().to_vec();
        let mut samples = Vec::new();
        for i in 0..60i64 {
            let (track, size, dts) = if i % 2 == 0 {
                (0, 500 + i as u32, i / 2 * 40_000)
            } else {
                (1, 100, i / 2 * 21_333)
            };
            samples.push(StoredSample {
                track,
                key: track == 1 || i % 20 == 0,
                size,
                offset: file.len() as u64,
                dts,
                pts: dts,
            });
            file.extend(std::iter::repeat_n(i as u8, size as usize));
        }
        let media = file.len() as u64 - progressive::HEADER_LEN;
        let (at, size) = progressive::mdat_size(media);
        file[at as usize..at as usize + 8].copy_from_slice(&size);
        file.extend_from_slice(&progressive::moov(&[v, a], &samples).unwrap());
        (file, samples)
    }

    /// Feeds `file` as a replay reads it: `read` bytes at a time from
    /// where the source wants them.
    fn read_through(s: &mut Source, file: &[u8], read: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        while !s.done() && (s.position() as usize) < file.len() {
            let at = s.position() as usize;
            let end = (at + read).min(file.len());
            s.feed(&file[at..end], &mut out).unwrap();
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn mp4_samples_come_out_after_its_moov_is_read() {
        let (file, samples) = mp4_file();
        for read in [7, 1000, 1 << 20] {
            let mut s = Source::new("mp4").unwrap();
            let out = read_through(&mut s, &file, read);
            assert!(s.done(), "read {read}");
            assert_eq!(s.has_video(), Some(true));
            // The two configs first (at the first frame's time), then every
            // sample with its own bytes.
            assert_eq!(out.len(), samples.len() + 2, "read {read}");
            assert!(out[..2]
                .iter()
                .all(|f| f.flags == RILL_FRAME_CONFIG && f.dts == 0));
            for (f, s) in out[2..].iter().zip(&samples) {
                assert_eq!(f.track, s.track as u32);
                assert_eq!(f.payload.len(), s.size as usize);
                assert_eq!(f.payload[0], file[s.offset as usize]);
                assert_eq!(f.flags & RILL_FRAME_KEY != 0, s.key);
                assert!((f.dts - s.dts).abs() <= 25, "{} {}", f.dts, s.dts);
            }
        }
        // A file cut short anywhere: frames up to the cut, no panic.
        for cut in (0..file.len()).step_by(97) {
            let mut s = Source::new("mp4").unwrap();
            let mut out = Vec::new();
            while !s.done() && (s.position() as usize) < cut {
                let at = s.position() as usize;
                if s.feed(&file[at..cut], &mut out).is_err() {
                    break;
                }
                if s.position() as usize == cut {
                    break;
                }
            }
        }
    }

    #[test]
    fn flv_tags_become_tracks_by_kind() {
        use rill_flv::stream;
        let mut bytes = stream::header(true, true).to_vec();
        // AAC config, then an AAC frame at 23 ms.
        bytes.extend_from_slice(&stream::tag(
            stream::TAG_AUDIO,
            0,
            &[0xaf, 0x00, 0x12, 0x10],
        ));
        bytes.extend_from_slice(&stream::tag(stream::TAG_AUDIO, 23, &[0xaf, 0x01, 0x21]));
        let mut s = Source::new("flv").unwrap();
        let mut out = Vec::new();
        // Fed a byte at a time: tags span reads.
        for b in &bytes {
            s.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        s.finish(&mut out);
        assert_eq!(s.has_video(), Some(true));
        let got: Vec<_> = out
            .iter()
            .map(|f| (f.track, f.codec, f.flags, f.dts))
            .collect();
        assert_eq!(
            got,
            [
                (FLV_AUDIO, RILL_CODEC_AAC, RILL_FRAME_CONFIG, 23_000),
                (FLV_AUDIO, RILL_CODEC_AAC, RILL_FRAME_KEY, 23_000)
            ]
        );
        // Not FLV: an error, not a panic.
        let mut s = Source::new("flv").unwrap();
        assert!(s.feed(b"GIF89a and more bytes", &mut out).is_err());
        assert!(Source::new("mp3").is_none());
        for f in ["fmp4", "flv", "ts", "mp4", "mp3"] {
            assert_eq!(Source::reads(f), Source::new(f).is_some(), "{f}");
        }
    }
}
