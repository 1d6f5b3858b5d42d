//! The demuxer: transport packets (in chunks of any size and alignment) to
//! frames in the host's model: Annex-B video becomes length-prefixed NAL
//! units with the decoder configuration record built from the in-band
//! parameter sets; ADTS becomes raw AAC with its AudioSpecificConfig.

use bytes::{BufMut, Bytes, BytesMut};
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
};

use crate::audio::{
    opus_head_for_code, opus_packet_samples, parse_adts, parse_mpeg_audio, parse_opus_control,
};
use crate::error::Error;
use crate::nal::{
    annexb_nals, build_avc_record, build_hevc_record, param_set_id, NalKind, VideoCodec,
};
use crate::packet::{self, NULL_PID, PACKET_SIZE, PAT_PID, SYNC_BYTE};
use crate::pes;
use crate::psi::{self, descriptor, stream_type, SectionReader, TABLE_PAT, TABLE_PMT};
use crate::time::{ticks_to_us, Unwrapper, TS_WRAP};
use crate::Frame;

/// The demuxer's bounds: everything a hostile stream could make it hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest PES assembled; a larger one is dropped with
    /// [`Error::PesTooLarge`].
    pub max_pes_size: usize,
    /// Largest number of bytes held in PES being assembled, summed over all
    /// tracks; past it the PES that would grow is dropped.
    pub max_buffered: usize,
    /// Largest number of elementary streams followed.
    pub max_tracks: usize,
    /// Largest number of parameter sets of each kind (VPS, SPS, PPS) kept
    /// per video track.
    pub max_param_sets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pes_size: 8 << 20,
            max_buffered: 32 << 20,
            max_tracks: 16,
            max_param_sets: 32,
        }
    }
}

/// A track the PMT announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The id its frames carry in [`Frame::track`]: tracks are numbered
    /// from 0 in the order they first appear, and a PID keeps its id.
    pub id: u32,
    /// The elementary PID.
    pub pid: u16,
    /// The PMT's stream_type.
    pub stream_type: u8,
    /// The codec (`RILL_CODEC_*`).
    pub codec: u32,
}

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The program's tracks (every track, not just new ones): when the PMT
    /// is first read and whenever its tracks change. Elementary streams of
    /// a type this crate does not carry are left out.
    Tracks(Vec<TrackInfo>),
    /// A media frame, or a config frame (`RILL_FRAME_CONFIG`) before the
    /// first frame that needs it and again whenever it changes.
    Frame(Frame),
    /// Something was wrong in the input (on this PID, where there is one);
    /// demuxing goes on.
    Error {
        /// The PID of the packet at fault.
        pid: Option<u16>,
        /// What was wrong.
        error: Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PesState {
    /// Waiting for a payload_unit_start_indicator.
    Idle,
    Collecting,
    /// The PES being received is lost; wait for the next start.
    Dropping,
}

#[derive(Debug, Default)]
struct ParamStore {
    vps: Vec<(u32, Bytes)>,
    sps: Vec<(u32, Bytes)>,
    pps: Vec<(u32, Bytes)>,
}

#[derive(Debug)]
enum Es {
    Video {
        codec: VideoCodec,
        params: ParamStore,
        dirty: bool,
        config: Option<Bytes>,
        last: Option<(i64, i64)>,
    },
    Aac {
        config: Option<[u8; 2]>,
        next: Option<i64>,
    },
    Mp3 {
        next: Option<i64>,
    },
    Opus {
        head: Option<Bytes>,
        sent: bool,
        next: Option<i64>,
    },
}

#[derive(Debug)]
struct Stream {
    info: TrackInfo,
    cc: Option<u8>,
    buf: BytesMut,
    state: PesState,
    random_access: bool,
    /// Packets were lost since the last frame.
    lost: bool,
    /// Size of the last PES: the capacity reserved for the next.
    size_hint: usize,
    es: Es,
}

/// The MPEG-TS demuxer: follows the first program of the PAT.
#[derive(Debug)]
pub struct Demuxer {
    limits: Limits,
    /// Undecided bytes from the last feed (at most a packet and a byte).
    stash: Vec<u8>,
    /// The last packet ended where the next is expected.
    in_sync: bool,
    skipped: usize,
    pat: SectionReader,
    pat_cc: Option<u8>,
    pmt_pid: Option<u16>,
    program: u16,
    pmt: SectionReader,
    pmt_cc: Option<u8>,
    last_pmt: Vec<u8>,
    streams: Vec<Stream>,
    ids: Vec<(u16, u32)>,
    next_id: u32,
    clock: Unwrapper,
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer::new(Limits::default())
    }
}

fn err(out: &mut Vec<Event>, pid: Option<u16>, error: Error) {
    out.push(Event::Error { pid, error });
}

/// A 33-bit difference as a signed value.
fn signed33(d: i64) -> i64 {
    let d = d.rem_euclid(TS_WRAP);
    if d >= TS_WRAP / 2 {
        d - TS_WRAP
    } else {
        d
    }
}

/// Ticks for `samples` at `rate` Hz, rounded.
fn samples_to_ticks(samples: u64, rate: u32) -> i64 {
    if rate == 0 {
        return 0;
    }
    ((samples * 90_000 + rate as u64 / 2) / rate as u64) as i64
}

impl Demuxer {
    /// A demuxer with these limits.
    pub fn new(limits: Limits) -> Self {
        Demuxer {
            limits,
            stash: Vec::with_capacity(3 * PACKET_SIZE),
            in_sync: false,
            skipped: 0,
            pat: SectionReader::new(),
            pat_cc: None,
            pmt_pid: None,
            program: 0,
            pmt: SectionReader::new(),
            pmt_cc: None,
            last_pmt: Vec::new(),
            streams: Vec::new(),
            ids: Vec::new(),
            next_id: 0,
            clock: Unwrapper::new(),
        }
    }

    /// The tracks currently followed.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.streams.iter().map(|s| &s.info)
    }

    /// The decoder configuration last delivered (or, for Opus, implied by
    /// the PMT) for a track: what a plugin needs when it adds the track to
    /// its publisher only once the configuration is known.
    pub fn track_config(&self, id: u32) -> Option<Bytes> {
        let s = self.streams.iter().find(|s| s.info.id == id)?;
        match &s.es {
            Es::Video { config, .. } => config.clone(),
            Es::Aac { config, .. } => config.map(|c| Bytes::copy_from_slice(&c)),
            Es::Opus { head, .. } => head.clone(),
            Es::Mp3 { .. } => None,
        }
    }

    /// Feeds bytes of the transport stream, split anywhere; events are
    /// appended to `out`. Bytes that are not packets are skipped (reported
    /// as [`Error::SyncLost`]): out of sync, a 0x47 counts as a packet start
    /// only when another one follows 188 bytes later.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Event>) {
        // Bytes left from the last call (less than a packet and a byte)
        // are joined with the start of this one, a few packets at most.
        while !self.stash.is_empty() && !data.is_empty() {
            let old = self.stash.len();
            let take = data.len().min(2 * PACKET_SIZE);
            let mut stash = std::mem::take(&mut self.stash);
            stash.extend_from_slice(&data[..take]);
            let n = self.consume(&stash, false, out);
            if n >= old {
                data = &data[n - old..];
                stash.clear();
            } else {
                stash.drain(..n);
                data = &data[take..];
            }
            self.stash = stash;
        }
        if self.stash.is_empty() && !data.is_empty() {
            let n = self.consume(data, false, out);
            self.stash.extend_from_slice(&data[n..]);
        }
    }

    /// Processes the packets of `buf`; returns how many bytes were used
    /// (the rest is too short to decide on, unless `last`).
    fn consume(&mut self, buf: &[u8], last: bool, out: &mut Vec<Event>) -> usize {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            if self.in_sync {
                if rest.len() < PACKET_SIZE {
                    return pos;
                }
                if rest[0] == SYNC_BYTE {
                    self.packet(&rest[..PACKET_SIZE], out);
                    pos += PACKET_SIZE;
                    continue;
                }
                self.in_sync = false;
            }
            match rest.iter().position(|&b| b == SYNC_BYTE) {
                None => {
                    self.skipped += rest.len();
                    return buf.len();
                }
                Some(i) => {
                    self.skipped += i;
                    pos += i;
                }
            }
            let rest = &buf[pos..];
            if rest.len() <= PACKET_SIZE {
                if last && rest.len() == PACKET_SIZE {
                    self.in_sync = true;
                    continue;
                }
                return pos;
            }
            if rest[PACKET_SIZE] == SYNC_BYTE {
                self.in_sync = true;
            } else {
                // A 0x47 inside some packet, not a packet start.
                self.skipped += 1;
                pos += 1;
            }
        }
    }

    /// Ends the input: a last packet that could not be confirmed yet is
    /// taken, and PES still open (video PES often have no length, so they
    /// end only when the next one starts) are demuxed.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        let stash = std::mem::take(&mut self.stash);
        let n = self.consume(&stash, true, out);
        self.skipped += stash.len() - n;
        self.report_skipped(out);
        for i in 0..self.streams.len() {
            if self.streams[i].state == PesState::Collecting {
                self.finish_pes(i, out);
            }
        }
    }

    fn report_skipped(&mut self, out: &mut Vec<Event>) {
        if self.skipped > 0 {
            err(out, None, Error::SyncLost(self.skipped));
            self.skipped = 0;
        }
    }

    fn packet(&mut self, pkt: &[u8], out: &mut Vec<Event>) {
        self.report_skipped(out);
        let info = match packet::parse(pkt) {
            Ok(i) => i,
            Err(e) => return err(out, None, e),
        };
        if info.transport_error {
            if let Some(s) = self.streams.iter_mut().find(|s| s.info.pid == info.pid) {
                s.lost = true;
            }
            return err(out, Some(info.pid), Error::TransportError);
        }
        if info.pid == NULL_PID || info.scrambling != 0 {
            return;
        }
        let payload = &pkt[info.payload_start.min(PACKET_SIZE)..];
        if info.pid == PAT_PID {
            if !check_cc(&mut self.pat_cc, &info, out) {
                self.pat.reset();
            }
            if !info.has_payload {
                return;
            }
            let mut sections = Vec::new();
            let r = self
                .pat
                .push(payload, info.unit_start, |s| sections.push(s.to_vec()));
            if let Err(e) = r {
                err(out, Some(PAT_PID), e);
            }
            for s in sections {
                self.on_pat(&s, out);
            }
        } else if Some(info.pid) == self.pmt_pid {
            if !check_cc(&mut self.pmt_cc, &info, out) {
                self.pmt.reset();
            }
            if !info.has_payload {
                return;
            }
            let mut sections = Vec::new();
            let r = self
                .pmt
                .push(payload, info.unit_start, |s| sections.push(s.to_vec()));
            if let Err(e) = r {
                err(out, Some(info.pid), e);
            }
            for s in sections {
                self.on_pmt(info.pid, &s, out);
            }
        } else if let Some(i) = self.streams.iter().position(|s| s.info.pid == info.pid) {
            self.es_packet(i, &info, payload, out);
        }
    }

    fn on_pat(&mut self, section: &[u8], out: &mut Vec<Event>) {
        let (h, body) = match psi::parse_section(section) {
            Ok(x) => x,
            Err(e) => return err(out, Some(PAT_PID), e),
        };
        if h.table_id != TABLE_PAT || !h.current {
            return;
        }
        let Some((number, pid)) = psi::pat_programs(body).find(|&(n, _)| n != 0) else {
            return;
        };
        if self.pmt_pid != Some(pid) || self.program != number {
            self.pmt_pid = Some(pid);
            self.program = number;
            self.pmt.reset();
            self.pmt_cc = None;
            self.last_pmt.clear();
        }
    }

    fn on_pmt(&mut self, pid: u16, section: &[u8], out: &mut Vec<Event>) {
        if section == self.last_pmt.as_slice() {
            return;
        }
        let (h, body) = match psi::parse_section(section) {
            Ok(x) => x,
            Err(e) => return err(out, Some(pid), e),
        };
        if h.table_id != TABLE_PMT || !h.current || h.id_ext != self.program {
            return;
        }
        // A section holds ~200 entries at most; the limit applies to the
        // streams this crate carries, below.
        let (_pcr_pid, entries, _) = match psi::parse_pmt(body, usize::MAX) {
            Ok(x) => x,
            Err(e) => return err(out, Some(pid), e),
        };
        self.last_pmt.clear();
        self.last_pmt.extend_from_slice(section);

        let before: Vec<TrackInfo> = self.streams.iter().map(|s| s.info.clone()).collect();
        let mut old = std::mem::take(&mut self.streams);
        for e in entries {
            let Some((codec, opus_head)) = classify(e.stream_type, e.descriptors) else {
                continue;
            };
            if self.streams.len() >= self.limits.max_tracks {
                err(out, Some(pid), Error::TooManyTracks(self.limits.max_tracks));
                break;
            }
            if self.streams.iter().any(|s| s.info.pid == e.pid)
                || e.pid == PAT_PID
                || e.pid == NULL_PID
                || Some(e.pid) == self.pmt_pid
            {
                continue;
            }
            if let Some(i) = old.iter().position(|s| {
                s.info.pid == e.pid && s.info.codec == codec && s.info.stream_type == e.stream_type
            }) {
                let mut s = old.swap_remove(i);
                if let Es::Opus { head, sent, .. } = &mut s.es {
                    if *head != opus_head {
                        *head = opus_head;
                        *sent = false;
                    }
                }
                self.streams.push(s);
                continue;
            }
            let id = match self.ids.iter().find(|(p, _)| *p == e.pid) {
                Some(&(_, id)) => id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.ids.push((e.pid, id));
                    id
                }
            };
            let es = match codec {
                RILL_CODEC_H264 | RILL_CODEC_H265 => Es::Video {
                    codec: if codec == RILL_CODEC_H264 {
                        VideoCodec::H264
                    } else {
                        VideoCodec::H265
                    },
                    params: ParamStore::default(),
                    dirty: false,
                    config: None,
                    last: None,
                },
                RILL_CODEC_AAC => Es::Aac {
                    config: None,
                    next: None,
                },
                RILL_CODEC_MP3 => Es::Mp3 { next: None },
                _ => Es::Opus {
                    head: opus_head,
                    sent: false,
                    next: None,
                },
            };
            self.streams.push(Stream {
                info: TrackInfo {
                    id,
                    pid: e.pid,
                    stream_type: e.stream_type,
                    codec,
                },
                cc: None,
                buf: BytesMut::new(),
                state: PesState::Idle,
                random_access: false,
                lost: false,
                size_hint: 0,
                es,
            });
        }
        let after: Vec<TrackInfo> = self.streams.iter().map(|s| s.info.clone()).collect();
        if after != before {
            out.push(Event::Tracks(after));
        }
    }

    fn buffered(&self) -> usize {
        self.streams.iter().map(|s| s.buf.len()).sum()
    }

    fn es_packet(
        &mut self,
        i: usize,
        info: &packet::PacketInfo,
        payload: &[u8],
        out: &mut Vec<Event>,
    ) {
        if !info.has_payload {
            return;
        }
        let s = &mut self.streams[i];
        if let Some(last) = s.cc {
            if !info.discontinuity {
                if info.cc == last {
                    return; // a duplicate packet
                }
                let expected = (last + 1) & 0x0F;
                if info.cc != expected {
                    s.lost = true;
                    if s.state == PesState::Collecting {
                        s.state = PesState::Dropping;
                        s.buf.clear();
                    }
                    err(
                        out,
                        Some(info.pid),
                        Error::Continuity {
                            expected,
                            got: info.cc,
                        },
                    );
                }
            }
        }
        let s = &mut self.streams[i];
        s.cc = Some(info.cc);
        if info.unit_start {
            if s.state == PesState::Collecting {
                self.finish_pes(i, out);
            }
            let s = &mut self.streams[i];
            s.state = PesState::Collecting;
            s.random_access = info.random_access;
            s.buf.clear();
            s.buf.reserve(s.size_hint.min(self.limits.max_pes_size));
        }
        if self.streams[i].state != PesState::Collecting {
            return;
        }
        let total = self.buffered();
        let s = &mut self.streams[i];
        if s.buf.len() + payload.len() > self.limits.max_pes_size
            || total + payload.len() > self.limits.max_buffered
        {
            s.state = PesState::Dropping;
            s.buf = BytesMut::new();
            s.lost = true;
            return err(
                out,
                Some(info.pid),
                Error::PesTooLarge(self.limits.max_pes_size),
            );
        }
        s.buf.extend_from_slice(payload);
        if s.buf.len() >= 6 {
            let len = u16::from_be_bytes([s.buf[4], s.buf[5]]) as usize;
            if len != 0 && s.buf.len() >= 6 + len {
                self.finish_pes(i, out);
                self.streams[i].state = PesState::Idle;
            }
        }
    }

    fn finish_pes(&mut self, i: usize, out: &mut Vec<Event>) {
        let s = &mut self.streams[i];
        s.state = PesState::Idle;
        let data = s.buf.split().freeze();
        s.size_hint = data.len();
        let pid = s.info.pid;
        let h = match pes::parse_header(&data) {
            Ok(h) => h,
            Err(e) => {
                s.lost = true;
                return err(out, Some(pid), e);
            }
        };
        let end = if h.packet_length != 0 {
            let end = 6 + h.packet_length as usize;
            if data.len() < end {
                s.lost = true;
                return err(
                    out,
                    Some(pid),
                    Error::Truncated("PES shorter than its length"),
                );
            }
            end
        } else {
            data.len()
        };
        if h.payload_start > end {
            s.lost = true;
            return err(
                out,
                Some(pid),
                Error::Malformed("PES header longer than the PES"),
            );
        }
        let payload = data.slice(h.payload_start..end);
        let ts = h.pts.map(|pts| {
            let dts_raw = h.dts.unwrap_or(pts);
            let dts = self.clock.unwrap(dts_raw);
            (dts + signed33(pts as i64 - dts_raw as i64), dts)
        });
        let s = &mut self.streams[i];
        let flags = if s.lost { RILL_FRAME_DISCONTINUITY } else { 0 };
        s.lost = false;
        let track = s.info.id;
        let codec = s.info.codec;
        let rai = s.random_access;
        let max_ps = self.limits.max_param_sets;
        let emit = |out: &mut Vec<Event>, flags: u32, pts: i64, dts: i64, payload: Bytes| {
            out.push(Event::Frame(Frame {
                track,
                codec,
                flags,
                pts: ticks_to_us(pts),
                dts: ticks_to_us(dts),
                payload,
            }))
        };
        match &mut s.es {
            Es::Video {
                codec: vc,
                params,
                dirty,
                config,
                last,
            } => {
                let mut errors = Vec::new();
                let mut au_len = 0usize;
                let mut idr = false;
                let mut has_sps = false;
                for nal in annexb_nals(&payload) {
                    match vc.kind(nal) {
                        NalKind::Aud => {}
                        k @ (NalKind::Vps | NalKind::Sps | NalKind::Pps) => {
                            has_sps |= k == NalKind::Sps;
                            match store_param_set(params, *vc, k, nal, max_ps) {
                                Ok(changed) => *dirty |= changed,
                                Err(e) => errors.push(e),
                            }
                        }
                        k => {
                            idr |= k == NalKind::Idr;
                            au_len += 4 + nal.len();
                        }
                    }
                }
                for e in errors {
                    err(out, Some(pid), e);
                }
                let Some((pts, dts)) = ts.or(*last) else {
                    return err(out, Some(pid), Error::Malformed("video PES without PTS"));
                };
                *last = Some((pts, dts));
                if *dirty {
                    match build_config(params, *vc) {
                        Ok(rec) => {
                            *dirty = false;
                            if config.as_ref() != Some(&rec) {
                                *config = Some(rec.clone());
                                emit(out, RILL_FRAME_CONFIG, pts, dts, rec);
                            }
                        }
                        Err(Error::MissingConfig(_)) => {}
                        Err(e) => {
                            *dirty = false;
                            err(out, Some(pid), e);
                        }
                    }
                }
                if au_len == 0 {
                    return;
                }
                let key = idr || (*vc == VideoCodec::H264 && rai && has_sps);
                let mut avcc = BytesMut::with_capacity(au_len);
                for nal in annexb_nals(&payload) {
                    if matches!(
                        vc.kind(nal),
                        NalKind::Aud | NalKind::Vps | NalKind::Sps | NalKind::Pps
                    ) {
                        continue;
                    }
                    avcc.put_u32(nal.len() as u32);
                    avcc.put_slice(nal);
                }
                let flags = flags | if key { RILL_FRAME_KEY } else { 0 };
                emit(out, flags, pts, dts, avcc.freeze());
            }
            Es::Aac { config, next } => {
                let Some(base) = ts.map(|t| t.1).or(*next) else {
                    return err(out, Some(pid), Error::Malformed("audio PES without PTS"));
                };
                let mut pos = 0;
                let mut samples = 0u64;
                let mut rate = 0;
                let mut flags = flags;
                while pos < payload.len() {
                    let h = match parse_adts(&payload[pos..]) {
                        Ok(h) => h,
                        Err(e) => {
                            err(out, Some(pid), e);
                            break;
                        }
                    };
                    if pos + h.frame_len > payload.len() {
                        err(out, Some(pid), Error::Truncated("ADTS frame"));
                        break;
                    }
                    rate = h.config.rate();
                    let t = base + samples_to_ticks(samples, rate);
                    let asc = h.config.to_asc();
                    if *config != Some(asc) {
                        *config = Some(asc);
                        emit(out, RILL_FRAME_CONFIG, t, t, Bytes::copy_from_slice(&asc));
                    }
                    let raw = payload.slice(pos + h.header_len..pos + h.frame_len);
                    emit(out, flags | RILL_FRAME_KEY, t, t, raw);
                    flags = 0;
                    samples += 1024 * h.blocks as u64;
                    pos += h.frame_len;
                }
                *next = Some(base + samples_to_ticks(samples, rate));
            }
            Es::Mp3 { next } => {
                let Some(base) = ts.map(|t| t.1).or(*next) else {
                    return err(out, Some(pid), Error::Malformed("audio PES without PTS"));
                };
                let mut pos = 0;
                let mut elapsed = 0i64;
                let mut flags = flags;
                while pos < payload.len() {
                    let t = base + elapsed;
                    let len = match parse_mpeg_audio(&payload[pos..]) {
                        Ok(h) if pos + h.frame_len <= payload.len() => {
                            elapsed += samples_to_ticks(h.samples as u64, h.rate);
                            h.frame_len
                        }
                        // Free format, a cut frame, or no header: the rest
                        // goes as one frame.
                        _ => payload.len() - pos,
                    };
                    emit(
                        out,
                        flags | RILL_FRAME_KEY,
                        t,
                        t,
                        payload.slice(pos..pos + len),
                    );
                    flags = 0;
                    pos += len;
                }
                *next = Some(base + elapsed);
            }
            Es::Opus { head, sent, next } => {
                let Some(base) = ts.map(|t| t.1).or(*next) else {
                    return err(out, Some(pid), Error::Malformed("audio PES without PTS"));
                };
                let mut pos = 0;
                let mut elapsed = 0i64;
                let mut flags = flags;
                while pos < payload.len() {
                    let c = match parse_opus_control(&payload[pos..]) {
                        Ok(c) => c,
                        Err(e) => {
                            err(out, Some(pid), e);
                            break;
                        }
                    };
                    let start = pos + c.header_len;
                    if start + c.au_size > payload.len() {
                        err(out, Some(pid), Error::Truncated("Opus packet"));
                        break;
                    }
                    let t = base + elapsed;
                    if !*sent {
                        *sent = true;
                        if let Some(h) = head.clone() {
                            emit(out, RILL_FRAME_CONFIG, t, t, h);
                        }
                    }
                    let packet = payload.slice(start..start + c.au_size);
                    let samples = opus_packet_samples(&packet).unwrap_or(960);
                    emit(out, flags | RILL_FRAME_KEY, t, t, packet);
                    flags = 0;
                    elapsed += samples as i64 * 15 / 8;
                    pos = start + c.au_size;
                }
                *next = Some(base + elapsed);
            }
        }
    }
}

/// Checks a PSI PID's continuity counter; false when packets were lost.
fn check_cc(last: &mut Option<u8>, info: &packet::PacketInfo, out: &mut Vec<Event>) -> bool {
    if !info.has_payload {
        return true;
    }
    let prev = last.replace(info.cc);
    match prev {
        Some(p) if !info.discontinuity && info.cc != p && info.cc != (p + 1) & 0x0F => {
            err(
                out,
                Some(info.pid),
                Error::Continuity {
                    expected: (p + 1) & 0x0F,
                    got: info.cc,
                },
            );
            false
        }
        _ => true,
    }
}

/// The codec of a PMT entry, and for Opus the OpusHead its descriptor
/// implies; None for streams this crate does not carry.
fn classify(st: u8, descriptors: &[u8]) -> Option<(u32, Option<Bytes>)> {
    match st {
        stream_type::H264 => Some((RILL_CODEC_H264, None)),
        stream_type::H265 => Some((RILL_CODEC_H265, None)),
        stream_type::AAC_ADTS => Some((RILL_CODEC_AAC, None)),
        stream_type::MPEG1_AUDIO | stream_type::MPEG2_AUDIO => Some((RILL_CODEC_MP3, None)),
        stream_type::PRIVATE_PES => {
            let mut opus = false;
            let mut head = None;
            for (tag, body) in psi::descriptors(descriptors) {
                match tag {
                    descriptor::REGISTRATION if body.starts_with(b"Opus") => opus = true,
                    descriptor::DVB_EXTENSION
                        if body.len() >= 2 && body[0] == descriptor::OPUS_EXTENSION =>
                    {
                        head = opus_head_for_code(body[1]);
                    }
                    _ => {}
                }
            }
            opus.then_some((RILL_CODEC_OPUS, head))
        }
        _ => None,
    }
}

/// Keeps a parameter set by id; true when it is new or changed.
fn store_param_set(
    store: &mut ParamStore,
    codec: VideoCodec,
    kind: NalKind,
    nal: &[u8],
    max: usize,
) -> Result<bool, Error> {
    let id = param_set_id(codec, nal)?;
    let list = match kind {
        NalKind::Vps => &mut store.vps,
        NalKind::Sps => &mut store.sps,
        _ => &mut store.pps,
    };
    if let Some(entry) = list.iter_mut().find(|(i, _)| *i == id) {
        if entry.1 == nal {
            return Ok(false);
        }
        entry.1 = Bytes::copy_from_slice(nal);
        return Ok(true);
    }
    if list.len() >= max {
        return Err(Error::TooManyParameterSets(max));
    }
    list.push((id, Bytes::copy_from_slice(nal)));
    list.sort_by_key(|(i, _)| *i);
    Ok(true)
}

fn build_config(store: &ParamStore, codec: VideoCodec) -> Result<Bytes, Error> {
    fn refs(l: &[(u32, Bytes)]) -> Vec<&[u8]> {
        l.iter().map(|(_, b)| &b[..]).collect()
    }
    match codec {
        VideoCodec::H264 => build_avc_record(&refs(&store.sps), &refs(&store.pps)),
        VideoCodec::H265 => {
            build_hevc_record(&refs(&store.vps), &refs(&store.sps), &refs(&store.pps))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AacConfig;
    use crate::mux::{MuxTrack, Muxer, MuxerConfig};

    #[test]
    fn one_byte_at_a_time() {
        let asc = [0x12, 0x10];
        let mut m = Muxer::new(
            &[MuxTrack::new(RILL_CODEC_AAC, Bytes::copy_from_slice(&asc))],
            MuxerConfig::default(),
        )
        .unwrap();
        let mut ts = Vec::new();
        for i in 0..5 {
            m.write_parts(
                0,
                RILL_FRAME_KEY,
                i * 23_220,
                i * 23_220,
                &[i as u8; 300],
                &mut ts,
            )
            .unwrap();
        }
        let mut d = Demuxer::default();
        let mut events = Vec::new();
        for b in &ts {
            d.feed(std::slice::from_ref(b), &mut events);
        }
        d.flush(&mut events);
        let frames: Vec<&Frame> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 6);
        assert_eq!(&frames[0].payload[..], &asc);
        assert_eq!(frames[5].payload, Bytes::from(vec![4u8; 300]));
        assert!(events.iter().all(|e| !matches!(e, Event::Error { .. })));
    }

    #[test]
    fn adts_frames_of_one_pes_are_timed_apart() {
        // One PES with three ADTS frames (what ffmpeg writes), built by hand.
        let cfg = AacConfig::parse(&[0x11, 0x90]).unwrap(); // LC, 48 kHz, stereo
        let mut es = Vec::new();
        for i in 0..3u8 {
            es.extend_from_slice(&cfg.adts_header(10).unwrap());
            es.extend_from_slice(&[i; 10]);
        }
        let mut m = Muxer::new(
            &[MuxTrack::new(RILL_CODEC_MP3, Bytes::new())],
            MuxerConfig::default(),
        )
        .unwrap();
        let mut ts = Vec::new();
        m.write_parts(0, RILL_FRAME_KEY, 0, 0, &es, &mut ts)
            .unwrap();
        // Relabel the stream as AAC in the PMT: stream_type 0x03 -> 0x0F
        // (and fix the CRC).
        let pmt = &mut ts[188..376];
        let section_len = 3 + (u16::from_be_bytes([pmt[6], pmt[7]]) & 0xFFF) as usize;
        let section = &mut pmt[5..5 + section_len];
        let at = section.iter().position(|&b| b == 0x03).unwrap();
        section[at] = 0x0F;
        let crc = crate::packet::crc32(&section[..section_len - 4]);
        section[section_len - 4..].copy_from_slice(&crc.to_be_bytes());
        let mut d = Demuxer::default();
        let mut events = Vec::new();
        d.feed(&ts, &mut events);
        d.flush(&mut events);
        let times: Vec<(u32, i64)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some((f.flags, f.pts - 700_000)),
                _ => None,
            })
            .collect();
        assert_eq!(
            times,
            vec![
                (RILL_FRAME_CONFIG, 0),
                (RILL_FRAME_KEY, 0),
                (RILL_FRAME_KEY, 21_333),
                (RILL_FRAME_KEY, 42_667)
            ]
        );
    }
}
