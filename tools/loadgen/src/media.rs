//! Media containers the HLS and fMP4 players read, parsed by the
//! workspace's own crates: fMP4 through `rill_hls::segment` (on
//! `rill_mp4::read`: init segments, `moof`/`mdat` fragments; samples are
//! length-prefixed NAL units) and
//! MPEG-TS through `rill_ts::Demuxer` (frames with AVCC payloads). Each
//! frame goes to the [`Player`] with its latency stamp, if it has one.

use std::time::Instant;

use rill_abi::{RILL_CODEC_H264, RILL_CODEC_H265};
use rill_hls::segment::Mp4Init;

use crate::httpflv::Res;
use crate::sei;
use crate::stats::{Player, Shared};

/// The tracks of an fMP4 init segment, read by rill-hls's segment reader
/// (the relay's too).
pub type Mp4Tracks = Mp4Init;

/// Reads an init segment.
pub fn parse_init(init: &[u8]) -> Res<Mp4Tracks> {
    Mp4Init::parse(init).map_err(|e| format!("init segment: {e}"))
}

/// The frames of `data` (one or more `moof`+`mdat`, as an LL-HLS part, a
/// segment or a fragment of a progressive stream carries them) to `p`.
/// The publication times of the stamped video frames are appended to
/// `stamps`. Returns the number of samples.
pub fn fmp4_frames(
    data: &[u8],
    tracks: &Mp4Tracks,
    p: &mut Player,
    shared: &Shared,
    now: Instant,
    stamps: &mut Vec<u64>,
) -> Res<usize> {
    tracks
        .samples(data, &mut |s| {
            let ms = (s.dts.max(0) / 1000) as u64;
            let stamp = if s.track.codec == RILL_CODEC_H264 {
                data.get(s.range.clone())
                    .and_then(|b| sei::find_avcc(b, s.track.nal_len))
                    .map(|(_, us)| us)
            } else {
                None
            };
            if let Some(us) = stamp {
                stamps.push(us);
            }
            p.on_frame(s.track.is_video(), s.key, ms, stamp, now, shared);
        })
        .map_err(|e| format!("fragment: {e}"))
}

/// The frames of a whole MPEG-TS segment to `p` (a demuxer of its own:
/// each segment starts with its PAT and PMT, and the last frame of a
/// segment comes out at its end, not with the next one). Returns the
/// number of frames.
pub fn ts_frames(
    data: &[u8],
    p: &mut Player,
    shared: &Shared,
    now: Instant,
    stamps: &mut Vec<u64>,
) -> Res<usize> {
    let mut demux = rill_ts::Demuxer::default();
    let mut events = Vec::new();
    demux.feed(data, &mut events);
    demux.flush(&mut events);
    let mut n = 0;
    for e in events {
        let rill_ts::Event::Frame(f) = e else {
            continue;
        };
        if f.is_config() {
            continue;
        }
        n += 1;
        if let Some(us) = ts_frame(&f, p, shared, now) {
            stamps.push(us);
        }
    }
    if n == 0 && !data.is_empty() && data[0] != 0x47 {
        return Err("segment is not MPEG-TS".into());
    }
    Ok(n)
}

/// One frame of the TS demuxer (a config frame is skipped) to `p`:
/// returns its latency stamp (publication, wall-clock µs) if it has one.
/// The demuxer gives H.264 with 4-byte length prefixes.
pub fn ts_frame(f: &rill_ts::Frame, p: &mut Player, shared: &Shared, now: Instant) -> Option<u64> {
    if f.is_config() {
        return None;
    }
    let video = f.codec == RILL_CODEC_H264 || f.codec == RILL_CODEC_H265;
    let stamp = if f.codec == RILL_CODEC_H264 {
        sei::find_avcc(&f.payload, 4).map(|(_, us)| us)
    } else {
        None
    };
    let ms = (f.dts.max(0) / 1000) as u64;
    p.on_frame(video, f.is_key(), ms, stamp, now, shared);
    stamp
}

/// The largest box a progressive stream may send (an `mdat` of a
/// fragment).
const MAX_BOX: u64 = 64 << 20;

/// A progressive fMP4 body cut into its top-level boxes as bytes arrive:
/// the init segment's `moov` gives the tracks, each `moof` is kept until
/// its `mdat` is whole, then the fragment is read and dropped. Memory per
/// player: one fragment.
#[derive(Default)]
pub struct Mp4Stream {
    buf: Vec<u8>,
    /// A `moof` (and whatever followed it) waits at the start of `buf`
    /// up to here.
    held: usize,
    pub tracks: Option<Mp4Tracks>,
    /// Fragments read.
    pub fragments: u64,
}

impl Mp4Stream {
    pub fn feed(&mut self, d: &[u8], p: &mut Player, shared: &Shared, now: Instant) -> Res<()> {
        self.buf.extend_from_slice(d);
        loop {
            let rest = &self.buf[self.held..];
            if rest.len() < 8 {
                return Ok(());
            }
            let mut size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
            let kind = [rest[4], rest[5], rest[6], rest[7]];
            if size == 1 {
                let Some(b) = rest.get(8..16) else {
                    return Ok(());
                };
                size = u64::from_be_bytes(b.try_into().unwrap_or_default());
            }
            if size == 0 {
                return Err("fMP4: a box to the end of the stream".into());
            }
            if !(8..=MAX_BOX).contains(&size) {
                return Err("fMP4: bad box size".into());
            }
            let size = size as usize;
            if rest.len() < size {
                return Ok(());
            }
            let end = self.held + size;
            match &kind {
                b"moov" => {
                    self.tracks = Some(parse_init(&self.buf[self.held..end])?);
                    self.buf.drain(self.held..end);
                }
                b"moof" => self.held = end,
                b"mdat" if self.held > 0 => {
                    let tracks = self.tracks.as_ref().ok_or("fMP4: fragment before moov")?;
                    let mut stamps = Vec::new();
                    fmp4_frames(&self.buf[..end], tracks, p, shared, now, &mut stamps)?;
                    self.fragments += 1;
                    self.buf.drain(..end);
                    self.held = 0;
                }
                // Between a moof and its mdat: kept with them.
                _ if self.held > 0 => self.held = end,
                // ftyp, styp, sidx, free, a stray mdat: nothing to read.
                _ => {
                    self.buf.drain(self.held..end);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    /// An avcC of a real 320×240 High-profile SPS/PPS.
    pub fn avcc() -> Bytes {
        Bytes::from_static(&[
            1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41,
            0xfb, 0x01, 0x10, 0, 0, 3, 0, 0x10, 0, 0, 3, 3, 0x20, 0xf1, 0x42, 0x99, 0x20, 1, 0, 4,
            0x68, 0xcb, 0x83, 0xcb, 0x20,
        ])
    }

    /// A stamped AVCC video frame: the stamp NAL, then a slice.
    pub fn stamped_frame(seq: u32, us: u64, key: bool) -> Bytes {
        let mut f = (sei::NAL_LEN as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&sei::nal(seq, us));
        f.extend_from_slice(&[0, 0, 0, 4, if key { 0x65 } else { 0x41 }, 0x88, 0x84, 0x21]);
        Bytes::from(f)
    }

    /// An fMP4 muxer (video, AAC) and its init segment.
    pub fn mp4_muxer() -> (rill_mp4::Muxer, Bytes) {
        let v = rill_mp4::TrackInfo::new(RILL_CODEC_H264, avcc()).unwrap();
        let a =
            rill_mp4::TrackInfo::new(rill_abi::RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10]))
                .unwrap();
        let mux = rill_mp4::Muxer::new(vec![v, a]).unwrap();
        let init = mux.init_segment().unwrap();
        (mux, init)
    }

    /// Pushes video frames `from..to` (25 fps, key every 25) with stamps
    /// `base_us + i`, and AAC every 20 ms, into `mux`.
    pub fn push_frames(mux: &mut rill_mp4::Muxer, from: u32, to: u32, base_us: u64) {
        for i in from..to {
            let t = i as i64 * 40_000;
            let f = stamped_frame(i, base_us + i as u64, i % 25 == 0);
            mux.push(0, rill_mp4::Sample::new(t, t, i % 25 == 0, f))
                .unwrap();
            for k in 0..2 {
                let ta = t + k * 20_000;
                mux.push(
                    1,
                    rill_mp4::Sample::new(ta, ta, true, Bytes::from_static(&[0x21, 0x10, 4])),
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn stamps_in_fmp4_fragments() {
        let (mut mux, init) = mp4_muxer();
        let tracks = parse_init(&init).unwrap();
        let t = tracks.tracks();
        assert_eq!(t.len(), 2);
        assert!(t[0].is_video() && t[0].codec == RILL_CODEC_H264);
        assert_eq!(t[0].nal_len, 4);
        assert!(!t[1].is_video());
        let base = sei::wall_us();
        push_frames(&mut mux, 0, 11, base);
        let frag = mux.fragment_before(400_000).unwrap().to_bytes();
        let shared = Shared::default();
        let mut p = Player::new();
        let mut stamps = Vec::new();
        let n = fmp4_frames(&frag, &tracks, &mut p, &shared, Instant::now(), &mut stamps).unwrap();
        assert_eq!((p.video, p.audio), (10, 20));
        assert_eq!(n, 30);
        assert!(p.first_key.is_some());
        assert_eq!(stamps, (0..10).map(|i| base + i).collect::<Vec<_>>());
        // The same fragment in a progressive stream, fed in small pieces
        // after the init segment and a styp.
        let mut body = init.to_vec();
        body.extend_from_slice(&[0, 0, 0, 12, b's', b't', b'y', b'p', b'm', b's', b'd', b'h']);
        body.extend_from_slice(&frag);
        let mut s = Mp4Stream::default();
        let mut q = Player::new();
        for piece in body.chunks(7) {
            s.feed(piece, &mut q, &shared, Instant::now()).unwrap();
        }
        assert_eq!((q.video, q.audio, s.fragments), (10, 20, 1));
        assert!(s.buf.is_empty());
        assert!(Mp4Stream::default()
            .feed(
                &[0, 0, 0, 2, b'b', b'a', b'd', b'!'],
                &mut q,
                &shared,
                Instant::now()
            )
            .is_err());
    }

    #[test]
    fn stamps_in_ts_frames() {
        use rill_ts::{Frame, MuxTrack, Muxer, MuxerConfig};
        let tracks = [
            MuxTrack::new(RILL_CODEC_H264, avcc()),
            MuxTrack::new(rill_abi::RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
        ];
        let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
        let mut seg = Vec::new();
        let base = sei::wall_us();
        for i in 0..10u32 {
            let t = i as i64 * 40_000;
            let key = i == 0;
            mux.write(
                &Frame {
                    track: 0,
                    codec: RILL_CODEC_H264,
                    flags: if key { rill_abi::RILL_FRAME_KEY } else { 0 },
                    pts: t,
                    dts: t,
                    payload: stamped_frame(i, base + i as u64, key),
                },
                &mut seg,
            )
            .unwrap();
            mux.write(
                &Frame {
                    track: 1,
                    codec: rill_abi::RILL_CODEC_AAC,
                    flags: 0,
                    pts: t,
                    dts: t,
                    payload: Bytes::from_static(&[0x21, 0x10, 4, 5]),
                },
                &mut seg,
            )
            .unwrap();
        }
        let shared = Shared::default();
        let mut p = Player::new();
        let mut stamps = Vec::new();
        let n = ts_frames(&seg, &mut p, &shared, Instant::now(), &mut stamps).unwrap();
        assert_eq!(n, 20);
        assert_eq!((p.video, p.audio), (10, 10));
        assert_eq!(stamps, (0..10).map(|i| base + i).collect::<Vec<_>>());
        assert!(ts_frames(b"<html>", &mut p, &shared, Instant::now(), &mut stamps).is_err());
    }
}
