//! The muxer's output read by an independent parser, `mpeg2ts-reader`:
//! PAT and PMT (CRC, program, stream types, descriptors), continuity
//! counters, PCR present, monotonic, frequent and never after the DTS it
//! precedes, every PES with a PTS and DTS <= PTS, random access points on
//! key frames.

use bytes::Bytes;
use mpeg2ts_reader::descriptor::CoreDescriptors;
use mpeg2ts_reader::mpegts_crc;
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{PesContents, PesHeader, PtsDts};
use mpeg2ts_reader::psi::pat::PatSection;
use mpeg2ts_reader::psi::pmt::PmtSection;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_FRAME_KEY};
use rill_ts::fuzzing::seeds;
use rill_ts::{Frame, MuxTrack, Muxer, MuxerConfig};

const WRAP: u64 = 1 << 33;

/// `frames` of video (25 fps, key every 12) and audio (every 21.3 ms),
/// interleaved by DTS, for the given tracks (video first if any).
fn frames(tracks: &[MuxTrack]) -> Vec<Frame> {
    let mut out = Vec::new();
    for (t, track) in tracks.iter().enumerate() {
        let video = matches!(track.codec, RILL_CODEC_H264 | RILL_CODEC_H265);
        let (count, step) = if video { (75, 40_000) } else { (140, 21_333) };
        for i in 0..count as i64 {
            let key = !video || i % 12 == 0;
            let dts = 1_000_000 + i * step;
            let payload = match track.codec {
                RILL_CODEC_H264 | RILL_CODEC_H265 => {
                    seeds::video_au(track.codec, key, if key { 9_000 } else { 700 }, false, &[7])
                }
                RILL_CODEC_OPUS => Bytes::from(vec![0xFC; 160]),
                _ => Bytes::from(vec![0x21; 300]),
            };
            out.push(Frame {
                track: t as u32,
                codec: track.codec,
                flags: if key { RILL_FRAME_KEY } else { 0 },
                // B-frame-like reordering: PTS two frames after DTS.
                pts: if video { dts + 80_000 } else { dts },
                dts,
                payload,
            });
        }
    }
    out.sort_by_key(|f| f.dts);
    out
}

struct Pes {
    pid: u16,
    random_access: bool,
    /// The last PCR before the PES started, in 90 kHz units.
    pcr_before: Option<u64>,
    data: Vec<u8>,
}

fn check(tracks: &[MuxTrack], expect_types: &[u8], pcr_pid: u16) {
    let mut mux = Muxer::new(tracks, MuxerConfig::default()).unwrap();
    let mut ts = Vec::new();
    let frames = frames(tracks);
    for f in &frames {
        mux.write(f, &mut ts).unwrap();
    }
    assert_eq!(ts.len() % 188, 0);

    let mut cc: Vec<(u16, u8)> = Vec::new();
    let mut pmt_pid = None;
    let mut pmt_seen = false;
    let mut last_pcr: Option<u64> = None;
    let mut pcr_count = 0;
    let mut open: Vec<Pes> = Vec::new();
    let mut done: Vec<Pes> = Vec::new();
    for chunk in ts.chunks(188) {
        let pk = Packet::new(chunk);
        let pid = u16::from(pk.pid());
        assert!(!pk.transport_error_indicator());
        // Continuity: +1 per packet with payload, unchanged without.
        let count = pk.continuity_counter().count();
        match cc.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, last)) => {
                let want = if pk.adaptation_control().has_payload() {
                    (*last + 1) & 15
                } else {
                    *last
                };
                assert_eq!(count, want, "CC on PID {pid:#x}");
                *last = count;
            }
            None => cc.push((pid, count)),
        }
        let af = pk.adaptation_field();
        if let Some(Ok(pcr)) = af.as_ref().map(|a| a.pcr()) {
            assert_eq!(pid, pcr_pid, "PCR only on the PCR PID");
            let pcr = u64::from(pcr);
            if let Some(last) = last_pcr {
                assert!(pcr >= last, "PCR monotonic");
                assert!(
                    pcr - last <= 40 * 27_000,
                    "PCR at least every 40 ms: {}",
                    pcr - last
                );
            }
            last_pcr = Some(pcr);
            pcr_count += 1;
        }
        let Some(payload) = pk.payload() else {
            continue;
        };
        if pid == 0 {
            assert!(pk.payload_unit_start_indicator());
            let section = &payload[1 + payload[0] as usize..];
            let len = 3 + (u16::from_be_bytes([section[1], section[2]]) & 0xFFF) as usize;
            let section = &section[..len];
            assert_eq!(mpegts_crc::sum32(section), 0, "PAT CRC");
            assert_eq!(section[0], 0);
            let programs: Vec<_> = PatSection::new(&section[8..len - 4]).programs().collect();
            assert_eq!(programs.len(), 1);
            pmt_pid = Some(u16::from(programs[0].pid()));
        } else if Some(pid) == pmt_pid {
            let section = &payload[1 + payload[0] as usize..];
            let len = 3 + (u16::from_be_bytes([section[1], section[2]]) & 0xFFF) as usize;
            let section = &section[..len];
            assert_eq!(mpegts_crc::sum32(section), 0, "PMT CRC");
            assert_eq!(section[0], 2);
            let pmt = PmtSection::from_bytes(&section[8..len - 4]).unwrap();
            assert_eq!(u16::from(pmt.pcr_pid()), pcr_pid);
            let streams: Vec<_> = pmt.streams().collect();
            let types: Vec<u8> = streams.iter().map(|s| u8::from(s.stream_type())).collect();
            assert_eq!(types, expect_types);
            for (i, s) in streams.iter().enumerate() {
                assert_eq!(Some(u16::from(s.elementary_pid())), mux.pid(i as u32));
                if types[i] == 0x06 {
                    let opus = s.descriptors::<CoreDescriptors<'_>>().any(|d| {
                        matches!(d, Ok(CoreDescriptors::Registration(r)) if r.format_identifier() == mpeg2ts_reader::smptera::FormatIdentifier::from(&b"Opus"[..]))
                    });
                    assert!(opus, "Opus registration descriptor");
                }
            }
            pmt_seen = true;
        } else {
            assert!(pmt_seen, "elementary packets only after the PMT");
            if pk.payload_unit_start_indicator() {
                if let Some(i) = open.iter().position(|p| p.pid == pid) {
                    done.push(open.swap_remove(i));
                }
                open.push(Pes {
                    pid,
                    random_access: af.as_ref().is_some_and(|a| a.random_access_indicator()),
                    pcr_before: last_pcr.map(|p| p / 300),
                    data: Vec::new(),
                });
            }
            open.iter_mut()
                .find(|p| p.pid == pid)
                .expect("payload after a unit start")
                .data
                .extend_from_slice(payload);
        }
    }
    done.append(&mut open);
    assert!(pcr_count > 0, "PCR present");
    assert_eq!(done.len(), frames.len(), "one PES per frame");
    let mut keys = 0;
    for pes in &done {
        let h = PesHeader::from_bytes(&pes.data).expect("PES header");
        let PesContents::Parsed(Some(parsed)) = h.contents() else {
            panic!("PES without optional header");
        };
        let (pts, dts) = match parsed.pts_dts().unwrap() {
            PtsDts::PtsOnly(Ok(p)) => (p.value(), p.value()),
            PtsDts::Both {
                pts: Ok(p),
                dts: Ok(d),
            } => (p.value(), d.value()),
            other => panic!("PES without PTS: {other:?}"),
        };
        assert!((pts + WRAP - dts) % WRAP < WRAP / 2, "DTS <= PTS");
        let pcr = pes.pcr_before.expect("a PCR before every PES");
        assert!(
            pcr <= dts,
            "PCR {pcr} after the DTS {dts} of the PES it precedes"
        );
        let len = u16::from_be_bytes([pes.data[4], pes.data[5]]) as usize;
        if len != 0 {
            assert_eq!(len + 6, pes.data.len(), "PES_packet_length");
        }
        let first = parsed.payload();
        let is_video = pes.data[3] & 0xF0 == 0xE0;
        if is_video {
            assert_eq!(&first[..4], &[0, 0, 0, 1], "Annex-B");
            let nal_type = if pes.data[3] == 0xE0 && expect_types[0] == 0x1b {
                first[4] & 0x1F
            } else {
                (first[4] >> 1) & 0x3F
            };
            assert!(nal_type == 9 || nal_type == 35, "AUD first");
            let is_key = pes
                .data
                .windows(5)
                .any(|w| w == [0, 0, 0, 1, 0x65] || w == [0, 0, 0, 1, 0x26]);
            assert_eq!(pes.random_access, is_key, "RAI on key frames");
            keys += is_key as usize;
        }
    }
    if expect_types.contains(&0x1b) || expect_types.contains(&0x24) {
        assert_eq!(keys, 7);
    }
}

#[test]
fn h264_aac() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    check(&tracks, &[0x1b, 0x0f], 0x100);
}

#[test]
fn hevc_opus() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H265, seeds::video_config(RILL_CODEC_H265)),
        MuxTrack::new(
            RILL_CODEC_OPUS,
            rill_ts::audio::opus_head_for_code(2).unwrap(),
        ),
    ];
    check(&tracks, &[0x24, 0x06], 0x100);
}

#[test]
fn audio_only_carries_the_pcr_on_audio() {
    let tracks = [MuxTrack {
        pid: Some(0x44),
        ..MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC))
    }];
    check(&tracks, &[0x0f], 0x44);
}
