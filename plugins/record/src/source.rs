//! Frames out of a recording file, whatever its format: what a replay
//! reads. A file's bytes go in as they are read ([`Source::feed`], then
//! [`Source::finish`] at its end); frames come out in file order, in the
//! host's form (length-prefixed NAL units, raw AAC, configuration records).
//!
//! - Tracks are the file's own, numbered as it numbers them: the fMP4 init
//!   segment's order, the TS demuxer's ids, video 0 and audio 1 in FLV. A
//!   recorder writes them in the same order in every file.
//! - A config frame goes out just before the next media frame, stamped
//!   with its decode time: a replay paces by decode time, and a config
//!   stamped earlier (an FLV sequence header, an init segment) would open
//!   a gap before the picture.
//! - Only audio and video: script data (FLV's `onMetaData`) is left out.

use bytes::{Bytes, BytesMut};
use rill_abi::*;
use rill_hls::segment::Mp4Init;
use rill_ts::Frame;

/// Most bytes held waiting for a whole fMP4 fragment.
const MAX_BUFFER: usize = 64 << 20;
/// FLV track numbers.
const FLV_VIDEO: u32 = 0;
const FLV_AUDIO: u32 = 1;

/// A recording's frames, from its bytes.
pub struct Source {
    format: Format,
    /// Config frames waiting for the next media frame.
    held: Vec<Frame>,
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
}

impl Source {
    /// A source for a recording of `format` (the index's name: `fmp4`,
    /// `flv`, `ts`); `None` for a format it cannot read.
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
            _ => return None,
        };
        Some(Source {
            format,
            held: Vec::new(),
        })
    }

    /// Whether the file has video, once its header says (`None` before).
    pub fn has_video(&self) -> Option<bool> {
        match &self.format {
            Format::Fmp4 { init, .. } => init
                .as_ref()
                .map(|i| i.tracks().iter().any(|t| t.is_video())),
            Format::Flv(r) => r.header().map(|h| h.video),
            Format::Ts { video, .. } => *video,
        }
    }

    /// The next bytes of the file; its frames are appended to `out`. An
    /// error: the rest of the file cannot be read.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) -> Result<(), String> {
        let mut frames = Vec::new();
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
        }
        self.order(frames, out);
        Ok(())
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
    }
}
