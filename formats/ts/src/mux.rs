//! The muxer: frames in the host's model (AVCC/HVCC video, raw AAC) to
//! 188-byte transport packets (Annex-B video, ADTS AAC).
//!
//! One program, one PES per frame. Each frame's packets are written
//! straight into the caller's buffer: the Annex-B conversion (start codes,
//! AUD, parameter sets before key frames) and the ADTS header are emitted
//! as pieces on the way, so a frame's bytes are copied once, into the
//! output, and nothing is allocated per packet.

use bytes::{BufMut, Bytes};
use rill_abi::{
    rill_codec_kind, RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3,
    RILL_CODEC_OPUS, RILL_FRAME_CONFIG, RILL_FRAME_KEY, RILL_TRACK_VIDEO,
};

use crate::audio::{opus_channel_code, opus_control_header, AacConfig};
use crate::error::Error;
use crate::nal::{
    length_prefixed_nals, parse_avc_record, parse_hevc_record, NalKind, ParamSets, VideoCodec,
    START_CODE,
};
use crate::packet::{write_af_only, AfFlags, Packetizer, PAT_PID};
use crate::pes::{self, STREAM_ID_AUDIO, STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO};
use crate::psi::{self, descriptor, stream_type, EsEntry};
use crate::time::{us_to_pcr, us_to_ticks, wrap33};
use crate::Frame;

/// Most tracks one muxer carries (the PMT must fit one packet).
pub const MAX_TRACKS: usize = 8;

/// One track of the program, as given to [`Muxer::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxTrack {
    /// `RILL_CODEC_H264`, `RILL_CODEC_H265`, `RILL_CODEC_AAC`,
    /// `RILL_CODEC_MP3` or `RILL_CODEC_OPUS`.
    pub codec: u32,
    /// The decoder configuration (AVCDecoderConfigurationRecord,
    /// HEVCDecoderConfigurationRecord, AudioSpecificConfig, OpusHead), or
    /// empty when it comes later as a config frame.
    pub config: Bytes,
    /// The elementary PID; None takes `MuxerConfig::first_pid` + the
    /// track's index.
    pub pid: Option<u16>,
}

impl MuxTrack {
    /// A track with the default PID.
    pub fn new(codec: u32, config: impl Into<Bytes>) -> Self {
        MuxTrack {
            codec,
            config: config.into(),
            pid: None,
        }
    }
}

/// Program-wide settings. Times are in the frames' clock (µs), not wall
/// clock: the muxer never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxerConfig {
    /// transport_stream_id of the PAT.
    pub transport_stream_id: u16,
    /// program_number of the one program.
    pub program_number: u16,
    /// PID of the PMT.
    pub pmt_pid: u16,
    /// PID of track 0 when the track does not set one; track i gets
    /// `first_pid + i`.
    pub first_pid: u16,
    /// Added to every PTS/DTS (not to the PCR), so that the PCR, taken from
    /// the frames' DTS, runs this far ahead of the decode times: the room
    /// a decoder gets to receive a frame before decoding it, and the slack
    /// for audio and video arriving slightly out of step.
    pub delay_us: i64,
    /// A PCR is written at least this often (in frame time): in every
    /// frame of the PCR track, and in a packet of its own before a frame of
    /// another track when this much time has passed since the last one.
    pub pcr_interval_us: i64,
    /// PAT and PMT are repeated at least this often (in frame time), and
    /// before every key frame of the first video track.
    pub psi_interval_us: i64,
}

impl Default for MuxerConfig {
    fn default() -> Self {
        MuxerConfig {
            transport_stream_id: 1,
            program_number: 1,
            pmt_pid: 0x1000,
            first_pid: 0x100,
            delay_us: 700_000,
            pcr_interval_us: 40_000,
            psi_interval_us: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video(VideoCodec),
    Aac,
    Mp3,
    Opus,
}

#[derive(Debug)]
struct Track {
    codec: u32,
    kind: Kind,
    pid: u16,
    stream_id: u8,
    stream_type: u8,
    cc: u8,
    params: Option<ParamSets>,
    aac: Option<AacConfig>,
    descriptors: Vec<u8>,
}

impl Track {
    fn set_config(&mut self, config: &[u8]) -> Result<(), Error> {
        match self.kind {
            Kind::Video(codec) => {
                self.params = if config.is_empty() {
                    None
                } else if codec == VideoCodec::H264 {
                    Some(parse_avc_record(config)?)
                } else {
                    Some(parse_hevc_record(config)?)
                };
            }
            Kind::Aac => {
                self.aac = if config.is_empty() {
                    None
                } else {
                    Some(AacConfig::parse(config)?)
                };
            }
            Kind::Mp3 => {}
            Kind::Opus => {
                let code = opus_channel_code((!config.is_empty()).then_some(config));
                self.descriptors = vec![
                    descriptor::REGISTRATION,
                    4,
                    b'O',
                    b'p',
                    b'u',
                    b's',
                    descriptor::DVB_EXTENSION,
                    2,
                    descriptor::OPUS_EXTENSION,
                    code,
                ];
            }
        }
        Ok(())
    }
}

/// The MPEG-TS muxer of one program. See the crate documentation for the
/// layout it writes.
#[derive(Debug)]
pub struct Muxer {
    cfg: MuxerConfig,
    tracks: Vec<Track>,
    /// The track that carries the PCR: the first video track, else track 0.
    pcr_track: usize,
    /// The first video track, whose key frames repeat PAT/PMT.
    video_track: Option<usize>,
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pmt_version: u8,
    pat_cc: u8,
    pmt_cc: u8,
    /// Largest DTS written so far (µs): the PCR clock.
    clock: Option<i64>,
    last_pcr: Option<i64>,
    last_psi: Option<i64>,
    /// Nothing was written since the last PAT/PMT.
    psi_fresh: bool,
    /// The PMT changed and must go out before the next frame.
    psi_dirty: bool,
    /// The next frame must be preceded by (or carry) a PCR.
    pcr_due: bool,
    scratch: Vec<u8>,
}

impl Muxer {
    /// A muxer for `tracks` (at most [`MAX_TRACKS`]), in this order: track
    /// index i of [`Frame::track`] is `tracks[i]`.
    pub fn new(tracks: &[MuxTrack], cfg: MuxerConfig) -> Result<Muxer, Error> {
        if tracks.is_empty() {
            return Err(Error::InvalidConfig("no tracks"));
        }
        if tracks.len() > MAX_TRACKS {
            return Err(Error::InvalidConfig("more than 8 tracks"));
        }
        let valid_pid = |p: u16| (0x0010..=0x1FFE).contains(&p);
        if !valid_pid(cfg.pmt_pid) {
            return Err(Error::InvalidConfig("PMT PID outside 0x0010..=0x1FFE"));
        }
        let (mut videos, mut audios) = (0u8, 0u8);
        let mut out: Vec<Track> = Vec::with_capacity(tracks.len());
        for (i, t) in tracks.iter().enumerate() {
            let pid = match t.pid {
                Some(p) => p,
                None => cfg
                    .first_pid
                    .checked_add(i as u16)
                    .ok_or(Error::InvalidConfig("PID out of range"))?,
            };
            if !valid_pid(pid) {
                return Err(Error::InvalidConfig(
                    "elementary PID outside 0x0010..=0x1FFE",
                ));
            }
            if pid == cfg.pmt_pid || out.iter().any(|o| o.pid == pid) {
                return Err(Error::InvalidConfig("PID used twice"));
            }
            let (kind, stream_type, stream_id) = match t.codec {
                RILL_CODEC_H264 => (
                    Kind::Video(VideoCodec::H264),
                    stream_type::H264,
                    STREAM_ID_VIDEO + videos,
                ),
                RILL_CODEC_H265 => (
                    Kind::Video(VideoCodec::H265),
                    stream_type::H265,
                    STREAM_ID_VIDEO + videos,
                ),
                RILL_CODEC_AAC => (Kind::Aac, stream_type::AAC_ADTS, STREAM_ID_AUDIO + audios),
                RILL_CODEC_MP3 => (
                    Kind::Mp3,
                    stream_type::MPEG1_AUDIO,
                    STREAM_ID_AUDIO + audios,
                ),
                RILL_CODEC_OPUS => (Kind::Opus, stream_type::PRIVATE_PES, STREAM_ID_PRIVATE_1),
                _ => return Err(Error::Unsupported("codec not carried in TS by this muxer")),
            };
            match kind {
                Kind::Video(_) => videos += 1,
                Kind::Aac | Kind::Mp3 => audios += 1,
                Kind::Opus => {}
            }
            let mut track = Track {
                codec: t.codec,
                kind,
                pid,
                stream_id,
                stream_type,
                cc: 15,
                params: None,
                aac: None,
                descriptors: Vec::new(),
            };
            track.set_config(&t.config)?;
            out.push(track);
        }
        let video_track = out.iter().position(|t| matches!(t.kind, Kind::Video(_)));
        let mut m = Muxer {
            pat: psi::build_pat(cfg.transport_stream_id, cfg.program_number, cfg.pmt_pid),
            pmt: Vec::new(),
            pmt_version: 0,
            pat_cc: 15,
            pmt_cc: 15,
            pcr_track: video_track.unwrap_or(0),
            video_track,
            tracks: out,
            cfg,
            clock: None,
            last_pcr: None,
            last_psi: None,
            psi_fresh: false,
            psi_dirty: true,
            pcr_due: true,
            scratch: Vec::new(),
        };
        m.pmt = m.build_pmt();
        Ok(m)
    }

    fn build_pmt(&self) -> Vec<u8> {
        let entries: Vec<EsEntry<'_>> = self
            .tracks
            .iter()
            .map(|t| EsEntry {
                stream_type: t.stream_type,
                pid: t.pid,
                descriptors: &t.descriptors,
            })
            .collect();
        psi::build_pmt(
            self.cfg.program_number,
            self.pmt_version,
            self.tracks[self.pcr_track].pid,
            &entries,
        )
    }

    /// The elementary PID of a track.
    pub fn pid(&self, track: u32) -> Option<u16> {
        self.tracks.get(track as usize).map(|t| t.pid)
    }

    /// The PID whose packets carry the PCR.
    pub fn pcr_pid(&self) -> u16 {
        self.tracks[self.pcr_track].pid
    }

    /// The PID of the PMT.
    pub fn pmt_pid(&self) -> u16 {
        self.cfg.pmt_pid
    }

    /// Replaces a track's decoder configuration (what a config frame does).
    /// A malformed configuration is an error and the previous one stays.
    pub fn set_config(&mut self, track: u32, config: &[u8]) -> Result<(), Error> {
        let t = self
            .tracks
            .get_mut(track as usize)
            .ok_or(Error::UnknownTrack(track))?;
        let before = t.descriptors.clone();
        t.set_config(config)?;
        if t.descriptors != before {
            self.pmt_version = (self.pmt_version + 1) & 0x1F;
            self.pmt = self.build_pmt();
            self.psi_dirty = true;
        }
        Ok(())
    }

    /// Writes PAT and PMT now.
    pub fn write_psi(&mut self, out: &mut impl BufMut) {
        psi::write_section_packet(out, PAT_PID, &mut self.pat_cc, &self.pat);
        psi::write_section_packet(out, self.cfg.pmt_pid, &mut self.pmt_cc, &self.pmt);
        self.last_psi = self.clock;
        self.psi_fresh = true;
        self.psi_dirty = false;
    }

    /// Starts a segment (an HLS media segment, a new file): PAT and PMT now
    /// (unless nothing was written since the last ones), and a PCR with the
    /// next frame. Call it right before the key frame that opens the
    /// segment; continuity counters and timestamps carry on.
    pub fn start_segment(&mut self, out: &mut impl BufMut) {
        if !self.psi_fresh {
            self.write_psi(out);
        }
        self.pcr_due = true;
    }

    /// Writes one frame of the host's model: a config frame
    /// (`RILL_FRAME_CONFIG`) replaces the track's configuration and writes
    /// nothing; a media frame becomes one PES. `frame.track` is the track's
    /// index and `frame.codec` must be the track's codec. On error nothing
    /// is written.
    pub fn write(&mut self, frame: &Frame, out: &mut impl BufMut) -> Result<(), Error> {
        let t = self
            .tracks
            .get(frame.track as usize)
            .ok_or(Error::UnknownTrack(frame.track))?;
        if t.codec != frame.codec {
            return Err(Error::Unsupported("frame codec differs from its track's"));
        }
        self.write_parts(
            frame.track,
            frame.flags,
            frame.pts,
            frame.dts,
            &frame.payload,
            out,
        )
    }

    /// [`write`](Self::write) from borrowed parts: for callers holding the
    /// payload as a slice (a host frame borrowed for the call).
    pub fn write_parts(
        &mut self,
        track: u32,
        flags: u32,
        pts: i64,
        dts: i64,
        payload: &[u8],
        out: &mut impl BufMut,
    ) -> Result<(), Error> {
        let index = track as usize;
        if index >= self.tracks.len() {
            return Err(Error::UnknownTrack(track));
        }
        if flags & RILL_FRAME_CONFIG != 0 {
            return self.set_config(track, payload);
        }
        let key = flags & RILL_FRAME_KEY != 0;
        let is_video = rill_codec_kind(self.tracks[index].codec) == RILL_TRACK_VIDEO;

        // Validate and measure before writing anything.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut es_len = 0usize;
        let measured = self.pieces(index, key, payload, &mut scratch, &mut |p| {
            es_len += p.len()
        });
        if let Err(e) = measured {
            self.scratch = scratch;
            return Err(e);
        }

        let now = self.clock.map_or(dts, |c| c.max(dts));
        self.clock = Some(now);
        let pcr_now = us_to_pcr(now.max(0));

        let psi_due = self.psi_dirty
            || self
                .last_psi
                .is_none_or(|l| now.saturating_sub(l) >= self.cfg.psi_interval_us)
            || (key && Some(index) == self.video_track);
        if psi_due && !self.psi_fresh {
            self.write_psi(out);
        } else if psi_due {
            self.last_psi = Some(now);
        }

        let pcr_in_frame = index == self.pcr_track;
        if !pcr_in_frame
            && (self.pcr_due
                || self
                    .last_pcr
                    .is_none_or(|l| now.saturating_sub(l) >= self.cfg.pcr_interval_us))
        {
            let t = &self.tracks[self.pcr_track];
            let flags = AfFlags {
                pcr: Some(pcr_now),
                ..Default::default()
            };
            write_af_only(out, t.pid, t.cc, &flags);
            self.last_pcr = Some(now);
            self.pcr_due = false;
        }
        let af = AfFlags {
            pcr: pcr_in_frame.then_some(pcr_now),
            random_access: key && (is_video || self.video_track.is_none()),
            discontinuity: false,
        };
        if pcr_in_frame {
            self.last_pcr = Some(now);
            self.pcr_due = false;
        }

        let delay = us_to_ticks(self.cfg.delay_us);
        // A PTS before its DTS is not valid TS: it is raised to the DTS.
        let pts90 = wrap33(us_to_ticks(pts.max(dts)) + delay);
        let dts90 = wrap33(us_to_ticks(dts) + delay);
        let t = &self.tracks[index];
        let mut header = [0u8; pes::MAX_HEADER];
        let hlen = pes::write_header(t.stream_id, pts90, Some(dts90), es_len, &mut header);
        let (pid, mut cc) = (t.pid, t.cc);
        {
            let mut p = Packetizer::new(out, pid, &mut cc, hlen + es_len, af);
            p.push(&header[..hlen]);
            // Cannot fail: the same pieces were measured above.
            let _ = self.pieces(index, key, payload, &mut scratch, &mut |piece| {
                p.push(piece)
            });
            p.finish();
        }
        self.tracks[index].cc = cc;
        self.scratch = scratch;
        self.psi_fresh = false;
        Ok(())
    }

    /// The elementary stream bytes of a frame, as pieces.
    fn pieces(
        &self,
        index: usize,
        key: bool,
        payload: &[u8],
        scratch: &mut Vec<u8>,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Error> {
        let t = &self.tracks[index];
        match t.kind {
            Kind::Video(codec) => video_pieces(codec, t.params.as_ref(), key, payload, f),
            Kind::Aac => {
                let cfg = t.aac.ok_or(Error::MissingConfig(
                    "AAC frame before its AudioSpecificConfig",
                ))?;
                let h = cfg.adts_header(payload.len())?;
                f(&h);
                f(payload);
                Ok(())
            }
            Kind::Mp3 => {
                f(payload);
                Ok(())
            }
            Kind::Opus => {
                opus_control_header(payload.len(), scratch);
                f(scratch);
                f(payload);
                Ok(())
            }
        }
    }
}

/// Annex-B pieces of a length-prefixed access unit: an AUD first (unless
/// the unit starts with one), then on key frames the configuration's
/// parameter sets (unless the unit carries its own), then every NAL unit
/// behind a 4-byte start code. Empty NAL units are dropped (Annex-B cannot
/// carry them).
fn video_pieces(
    codec: VideoCodec,
    params: Option<&ParamSets>,
    key: bool,
    payload: &[u8],
    f: &mut dyn FnMut(&[u8]),
) -> Result<(), Error> {
    let length_size = params.map_or(4, |p| p.length_size);
    let mut has_aud = false;
    let mut has_ps = false;
    for (i, nal) in length_prefixed_nals(payload, length_size).enumerate() {
        match codec.kind(nal?) {
            NalKind::Aud if i == 0 => has_aud = true,
            NalKind::Sps | NalKind::Vps => has_ps = true,
            _ => {}
        }
    }
    let mut insert = key && !has_ps;
    let emit_params = |f: &mut dyn FnMut(&[u8])| {
        for ps in params.map_or(&[][..], |p| &p.nals[..]) {
            f(&START_CODE);
            f(ps);
        }
    };
    if !has_aud {
        f(codec.aud());
    }
    for nal in length_prefixed_nals(payload, length_size) {
        let nal = nal?;
        if nal.is_empty() {
            continue;
        }
        if insert && codec.kind(nal) != NalKind::Aud {
            emit_params(f);
            insert = false;
        }
        f(&START_CODE);
        f(nal);
    }
    if insert {
        emit_params(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nal::annexb_nals;

    fn annexb(codec: VideoCodec, params: Option<&ParamSets>, key: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        video_pieces(codec, params, key, payload, &mut |p| {
            out.extend_from_slice(p)
        })
        .unwrap();
        out
    }

    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn annexb_conversion_inserts_aud_and_parameter_sets() {
        let params = ParamSets {
            length_size: 4,
            nals: vec![
                Bytes::from_static(&[0x67, 1]),
                Bytes::from_static(&[0x68, 2]),
            ],
        };
        let h = VideoCodec::H264;
        let nals = |b: &[u8]| annexb_nals(b).map(|n| n.to_vec()).collect::<Vec<_>>();
        // Key frame: AUD, SPS, PPS, then SEI and IDR.
        let out = annexb(h, Some(&params), true, &avcc(&[&[0x06, 5], &[0x65, 9]]));
        assert_eq!(
            nals(&out),
            vec![
                vec![0x09, 0xF0],
                vec![0x67, 1],
                vec![0x68, 2],
                vec![0x06, 5],
                vec![0x65, 9]
            ]
        );
        // Not key: no parameter sets.
        let out = annexb(h, Some(&params), false, &avcc(&[&[0x41, 9]]));
        assert_eq!(nals(&out), vec![vec![0x09, 0xF0], vec![0x41, 9]]);
        // The frame's own AUD and SPS are kept and nothing is added; an
        // empty NAL unit is dropped.
        let out = annexb(
            h,
            Some(&params),
            true,
            &avcc(&[&[0x09, 0x10], &[0x67, 7], &[], &[0x65, 9]]),
        );
        assert_eq!(
            nals(&out),
            vec![vec![0x09, 0x10], vec![0x67, 7], vec![0x65, 9]]
        );
        // Its AUD first, then the configuration's parameter sets.
        let out = annexb(h, Some(&params), true, &avcc(&[&[0x09, 0x10], &[0x65, 9]]));
        assert_eq!(
            nals(&out),
            vec![
                vec![0x09, 0x10],
                vec![0x67, 1],
                vec![0x68, 2],
                vec![0x65, 9]
            ]
        );
        // HEVC AUD; 2-byte NAL lengths from the record.
        let two = ParamSets {
            length_size: 2,
            nals: vec![],
        };
        let out = annexb(VideoCodec::H265, Some(&two), false, &[0, 3, 0x02, 0x01, 7]);
        assert_eq!(
            nals(&out),
            vec![vec![0x46, 0x01, 0x50], vec![0x02, 0x01, 7]]
        );
        // Lengths past the end.
        assert!(video_pieces(h, None, false, &[0, 0, 1, 0, 5], &mut |_| {}).is_err());
    }

    #[test]
    fn pids_and_pcr_track() {
        let m = Muxer::new(
            &[
                MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&[0x12, 0x10])),
                MuxTrack::new(RILL_CODEC_H264, Bytes::new()),
            ],
            MuxerConfig::default(),
        )
        .unwrap();
        assert_eq!(
            (m.pid(0), m.pid(1), m.pid(2)),
            (Some(0x100), Some(0x101), None)
        );
        // The video track carries the PCR even when it is not first.
        assert_eq!(m.pcr_pid(), 0x101);
        assert_eq!(m.pmt_pid(), 0x1000);
        let bad = MuxerConfig {
            pmt_pid: 0x1FFF,
            ..MuxerConfig::default()
        };
        assert!(Muxer::new(&[MuxTrack::new(RILL_CODEC_MP3, Bytes::new())], bad).is_err());
    }

    #[test]
    fn pcr_only_packets_keep_the_clock_between_video_frames() {
        let mut m = Muxer::new(
            &[
                MuxTrack::new(RILL_CODEC_H264, Bytes::new()),
                MuxTrack::new(RILL_CODEC_MP3, Bytes::new()),
            ],
            MuxerConfig::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        // Audio only for 200 ms (video has not started): PCR-only packets
        // on the video PID every 40 ms.
        for i in 0..10 {
            m.write_parts(
                1,
                RILL_FRAME_KEY,
                i * 20_000,
                i * 20_000,
                &[0xFF, 0xFB, 0x90, 0],
                &mut out,
            )
            .unwrap();
        }
        let pcrs: Vec<u64> = out
            .chunks(188)
            .filter_map(|p| crate::packet::parse(p).unwrap().pcr)
            .collect();
        assert_eq!(pcrs.len(), 5, "{pcrs:?}");
        assert!(pcrs.windows(2).all(|w| w[1] - w[0] == 40 * 27_000));
    }
}
