//! Mux → demux round trips of H.264+AAC and HEVC+AAC (and the other
//! codecs), in chunks of every size, across the 33-bit wrap; and the
//! demuxer's behaviour on damaged input.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS,
    RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
};
use rill_ts::fuzzing::{self, check_ts, demux_chunked, seeds};
use rill_ts::time::{us_to_ticks, TS_WRAP};
use rill_ts::{Demuxer, Error, Event, Frame, Limits, MuxTrack, Muxer, MuxerConfig};

/// 2 s of 25 fps video (key frame every second, PTS 80 ms after DTS) and
/// 44.1 kHz AAC, interleaved by DTS, starting at `start_us`.
fn av_frames(video: u32, start_us: i64) -> Vec<Frame> {
    let mut frames = Vec::new();
    for i in 0..50i64 {
        let key = i % 25 == 0;
        let dts = start_us + i * 40_000;
        frames.push(Frame {
            track: 0,
            codec: video,
            flags: if key { RILL_FRAME_KEY } else { 0 },
            pts: dts + 80_000,
            dts,
            payload: seeds::video_au(
                video,
                key,
                if key { 20_000 } else { 100 + i as usize * 37 },
                i % 7 == 0,
                &[i as u8 + 1, 0xAB],
            ),
        });
    }
    for i in 0..86i64 {
        let t = start_us + i * 1024 * 1_000_000 / 44_100;
        frames.push(Frame {
            track: 1,
            codec: RILL_CODEC_AAC,
            flags: RILL_FRAME_KEY,
            pts: t,
            dts: t,
            payload: Bytes::from(vec![i as u8; 200 + i as usize]),
        });
    }
    frames.sort_by_key(|f| f.dts);
    frames
}

fn mux_all(tracks: &[MuxTrack], frames: &[Frame]) -> (Muxer, Vec<u8>) {
    let mut mux = Muxer::new(tracks, MuxerConfig::default()).unwrap();
    let mut out = Vec::new();
    for f in frames {
        mux.write(f, &mut out).unwrap();
    }
    (mux, out)
}

fn frames_of(events: &[Event]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn errors_of(events: &[Event]) -> Vec<&Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(error),
            _ => None,
        })
        .collect()
}

fn check_round_trip(video: u32, start_us: i64) {
    let tracks = [
        MuxTrack::new(video, seeds::video_config(video)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let frames = av_frames(video, start_us);
    let (mux, ts) = mux_all(&tracks, &frames);
    let mut d = Demuxer::default();
    let mut events = Vec::new();
    d.feed(&ts, &mut events);
    assert_eq!(d.track_config(0), Some(tracks[0].config.clone()));
    assert_eq!(d.track_config(1), Some(tracks[1].config.clone()));
    assert_eq!(d.track_config(2), None);
    let stats = check_ts(&ts, mux.pcr_pid(), Some(40_000));
    assert!(stats.pcrs >= 50, "a PCR per video frame at least");
    // Every 100 ms of frame time, at the first frame past it.
    assert!((17..=22).contains(&stats.pats), "PATs: {}", stats.pats);
    let delay = us_to_ticks(MuxerConfig::default().delay_us);

    for sizes in [&[0u8][..], &[1], &[3, 200, 1, 27], &[255, 100]] {
        let events = demux_chunked(&ts, sizes, Limits::default());
        assert!(errors_of(&events).is_empty(), "{:?}", errors_of(&events));
        let Event::Tracks(t) = &events[0] else {
            panic!("tracks first, got {:?}", events[0]);
        };
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].codec, t[0].pid, t[0].stream_type),
            (
                video,
                0x100,
                if video == RILL_CODEC_H264 { 0x1b } else { 0x24 }
            )
        );
        assert_eq!(
            (t[1].codec, t[1].pid, t[1].stream_type),
            (RILL_CODEC_AAC, 0x101, 0x0f)
        );
        let got = frames_of(&events);
        for track in 0..2u32 {
            let sent: Vec<&Frame> = frames.iter().filter(|f| f.track == track).collect();
            let back: Vec<&&Frame> = got.iter().filter(|f| f.track == track).collect();
            // One config frame first, then the media.
            assert_eq!(back[0].flags, RILL_FRAME_CONFIG);
            assert_eq!(back[0].payload, tracks[track as usize].config);
            let media: Vec<_> = back[1..].iter().collect();
            assert_eq!(media.len(), sent.len());
            for (a, b) in sent.iter().zip(media) {
                assert_eq!(a.payload, b.payload);
                assert_eq!(a.flags, b.flags);
                assert_eq!(a.codec, b.codec);
                for (x, y) in [(a.pts, b.pts), (a.dts, b.dts)] {
                    let d = us_to_ticks(y) - us_to_ticks(x) - delay;
                    assert_eq!(d.rem_euclid(TS_WRAP), 0, "{x} -> {y}");
                    assert!((y - x - MuxerConfig::default().delay_us).abs() <= 6 || start_us > 0);
                }
            }
        }
    }
}

#[test]
fn h264_aac_round_trip() {
    check_round_trip(RILL_CODEC_H264, 0);
}

#[test]
fn hevc_aac_round_trip() {
    check_round_trip(RILL_CODEC_H265, 0);
}

#[test]
fn round_trip_across_the_33_bit_wrap() {
    // Starts 1 s before the wrap (with the 0.7 s delay: 0.3 s before).
    let start = (TS_WRAP - 90_000) * 100 / 9;
    check_round_trip(RILL_CODEC_H264, start);
    let frames = av_frames(RILL_CODEC_H264, start);
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let (_, ts) = mux_all(&tracks, &frames);
    let events = demux_chunked(&ts, &[0], Limits::default());
    // Demuxed time keeps going forward through the wrap.
    let video: Vec<i64> = frames_of(&events)
        .iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .map(|f| f.dts)
        .collect();
    assert_eq!(video.len(), 50);
    assert!(video.windows(2).all(|w| w[1] - w[0] == 40_000), "{video:?}");
}

#[test]
fn other_codecs_round_trip() {
    // Every combination the fuzz target knows, through its body.
    for sel in 0u8..=255 {
        let mut input = vec![sel, 0x12, 0x34];
        for i in 0..60u8 {
            input.extend_from_slice(&[i.wrapping_mul(37) ^ sel, i, i.wrapping_mul(3), 40, i]);
            input.extend_from_slice(&[i ^ 0x55; 16]);
        }
        input.extend_from_slice(&[5, 1, 0, 9]);
        fuzzing::roundtrip(&input);
    }
}

#[test]
fn opus_track_carries_its_descriptor_and_control_headers() {
    let head = rill_ts::audio::opus_head_for_code(6).unwrap();
    let tracks = [MuxTrack::new(RILL_CODEC_OPUS, head.clone())];
    let frames: Vec<Frame> = (0..10)
        .map(|i| Frame {
            track: 0,
            codec: RILL_CODEC_OPUS,
            flags: RILL_FRAME_KEY,
            pts: i * 20_000,
            dts: i * 20_000,
            payload: Bytes::from(vec![0xFC; 100 + 60 * i as usize]),
        })
        .collect();
    let (mux, ts) = mux_all(&tracks, &frames);
    check_ts(&ts, mux.pcr_pid(), Some(40_000));
    let events = demux_chunked(&ts, &[0], Limits::default());
    assert!(errors_of(&events).is_empty());
    let got = frames_of(&events);
    assert_eq!(got[0].flags, RILL_FRAME_CONFIG);
    assert_eq!(got[0].payload, head);
    assert_eq!(got.len(), 11);
    for (a, b) in frames.iter().zip(&got[1..]) {
        assert_eq!(a.payload, b.payload);
    }
}

#[test]
fn mp3_frames_split_out_of_a_pes() {
    // A PES holding three MP3 frames (as ffmpeg writes them) comes back as
    // three frames, timed 1152 samples apart.
    let tracks = [MuxTrack::new(RILL_CODEC_MP3, Bytes::new())];
    let mut three = Vec::new();
    for p in [false, true, false] {
        three.extend_from_slice(&seeds::mp3_frame(p, 7));
    }
    let frame = Frame {
        track: 0,
        codec: RILL_CODEC_MP3,
        flags: RILL_FRAME_KEY,
        pts: 0,
        dts: 0,
        payload: Bytes::from(three),
    };
    let (_, ts) = mux_all(&tracks, &[frame]);
    let events = demux_chunked(&ts, &[0], Limits::default());
    let got = frames_of(&events);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got.iter().map(|f| f.payload.len()).collect::<Vec<_>>(),
        vec![417, 418, 417]
    );
    assert_eq!(got[1].pts - got[0].pts, 26_122);
}

#[test]
fn garbage_is_skipped_and_reported() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let frames = av_frames(RILL_CODEC_H264, 0);
    let (_, ts) = mux_all(&tracks, &frames);
    let clean = frames_of(&demux_chunked(&ts, &[0], Limits::default())).len();
    let mut dirty = b"\x47garbage before the stream\x47\x00".to_vec();
    dirty.extend_from_slice(&ts);
    for sizes in [&[0u8][..], &[1], &[5, 3]] {
        let events = demux_chunked(&dirty, sizes, Limits::default());
        let errors = errors_of(&events);
        assert!(matches!(errors[..], [Error::SyncLost(_)]), "{errors:?}");
        assert_eq!(frames_of(&events).len(), clean);
    }
}

#[test]
fn lost_packets_are_reported_and_flagged() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let frames = av_frames(RILL_CODEC_H264, 0);
    let (_, ts) = mux_all(&tracks, &frames);
    // Drop one packet in the middle of the first key frame (PID 0x100).
    let video_packets: Vec<usize> = (0..ts.len() / 188)
        .filter(|&i| ts[i * 188 + 1] & 0x1F == 0x01 && ts[i * 188 + 2] == 0x00)
        .collect();
    let victim = video_packets[20];
    let mut damaged = ts[..victim * 188].to_vec();
    damaged.extend_from_slice(&ts[(victim + 1) * 188..]);
    let events = demux_chunked(&damaged, &[0], Limits::default());
    let errors = errors_of(&events);
    assert!(
        matches!(errors[..], [Error::Continuity { .. }]),
        "{errors:?}"
    );
    let video: Vec<&Frame> = frames_of(&events)
        .into_iter()
        .filter(|f| f.track == 0 && !f.is_config())
        .collect();
    // The broken key frame is gone; the next frame says something was lost.
    assert_eq!(video.len(), 49);
    assert_ne!(video[0].flags & RILL_FRAME_DISCONTINUITY, 0);
    assert_eq!(video[0].flags & RILL_FRAME_KEY, 0);
}

#[test]
fn oversized_pes_is_dropped_not_buffered() {
    let tracks = [MuxTrack::new(
        RILL_CODEC_H264,
        seeds::video_config(RILL_CODEC_H264),
    )];
    let big = Frame {
        track: 0,
        codec: RILL_CODEC_H264,
        flags: RILL_FRAME_KEY,
        pts: 0,
        dts: 0,
        payload: seeds::video_au(RILL_CODEC_H264, true, 300_000, false, &[1]),
    };
    let small = Frame {
        pts: 40_000,
        dts: 40_000,
        payload: seeds::video_au(RILL_CODEC_H264, true, 1000, false, &[1]),
        ..big.clone()
    };
    let (_, ts) = mux_all(&tracks, &[big, small]);
    let limits = Limits {
        max_pes_size: 100_000,
        ..Limits::default()
    };
    let events = demux_chunked(&ts, &[0], limits);
    assert_eq!(errors_of(&events), vec![&Error::PesTooLarge(100_000)]);
    let media: Vec<_> = frames_of(&events)
        .into_iter()
        .filter(|f| !f.is_config())
        .collect();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].dts, 40_000 + 700_000);
}

#[test]
fn config_change_mid_stream_is_emitted_again() {
    let tracks = [MuxTrack::new(
        RILL_CODEC_H264,
        seeds::video_config(RILL_CODEC_H264),
    )];
    let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
    let mut ts = Vec::new();
    let key = |t: i64| Frame {
        track: 0,
        codec: RILL_CODEC_H264,
        flags: RILL_FRAME_KEY,
        pts: t,
        dts: t,
        payload: seeds::video_au(RILL_CODEC_H264, true, 50, false, &[3]),
    };
    mux.write(&key(0), &mut ts).unwrap();
    // A second PPS (id 1): x264's PPS with pic_parameter_set_id 1.
    let pps1: &[u8] = &[0x68, 0x75, 0xf8, 0xf2, 0xc8, 0xb0];
    let new_config =
        rill_ts::nal::build_avc_record(&[seeds::H264_SPS], &[seeds::H264_PPS, pps1]).unwrap();
    mux.write(
        &Frame {
            flags: RILL_FRAME_CONFIG,
            payload: new_config.clone(),
            ..key(40_000)
        },
        &mut ts,
    )
    .unwrap();
    mux.write(&key(40_000), &mut ts).unwrap();
    mux.write(&key(80_000), &mut ts).unwrap();
    let events = demux_chunked(&ts, &[0], Limits::default());
    assert!(errors_of(&events).is_empty(), "{:?}", errors_of(&events));
    let configs: Vec<Bytes> = frames_of(&events)
        .iter()
        .filter(|f| f.is_config())
        .map(|f| f.payload.clone())
        .collect();
    assert_eq!(
        configs,
        vec![seeds::video_config(RILL_CODEC_H264), new_config]
    );
}

#[test]
fn muxer_refuses_what_it_cannot_write() {
    assert!(Muxer::new(&[], MuxerConfig::default()).is_err());
    assert!(Muxer::new(
        &[MuxTrack::new(rill_abi::RILL_CODEC_VP9, Bytes::new())],
        MuxerConfig::default()
    )
    .is_err());
    assert!(Muxer::new(
        &[MuxTrack::new(
            RILL_CODEC_H264,
            Bytes::from_static(b"\x02junk")
        )],
        MuxerConfig::default()
    )
    .is_err());
    let dup = MuxTrack {
        pid: Some(0x1000),
        ..MuxTrack::new(RILL_CODEC_AAC, Bytes::new())
    };
    assert!(Muxer::new(&[dup], MuxerConfig::default()).is_err());
    let mut mux = Muxer::new(
        &[MuxTrack::new(RILL_CODEC_AAC, Bytes::new())],
        MuxerConfig::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    let f = Frame {
        track: 0,
        codec: RILL_CODEC_AAC,
        flags: RILL_FRAME_KEY,
        pts: 0,
        dts: 0,
        payload: Bytes::from_static(b"raw"),
    };
    assert!(matches!(
        mux.write(&f, &mut out),
        Err(Error::MissingConfig(_))
    ));
    assert!(out.is_empty(), "nothing written on error");
    assert!(matches!(
        mux.write(
            &Frame {
                track: 3,
                ..f.clone()
            },
            &mut out
        ),
        Err(Error::UnknownTrack(3))
    ));
    assert!(mux
        .write(
            &Frame {
                codec: RILL_CODEC_H265,
                ..f.clone()
            },
            &mut out
        )
        .is_err());
    // AVCC lengths running past the payload.
    let mut v = Muxer::new(
        &[MuxTrack::new(RILL_CODEC_H264, Bytes::new())],
        MuxerConfig::default(),
    )
    .unwrap();
    let bad = Frame {
        codec: RILL_CODEC_H264,
        payload: Bytes::from_static(&[0, 0, 0, 9, 0x65]),
        ..f
    };
    assert!(v.write(&bad, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn segments_start_with_pat_pmt_and_pcr() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let frames = av_frames(RILL_CODEC_H264, 0);
    let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut seg = Vec::new();
    for f in &frames {
        if f.track == 0 && f.is_key() {
            if !seg.is_empty() {
                segments.push(std::mem::take(&mut seg));
            }
            mux.start_segment(&mut seg);
        }
        mux.write(f, &mut seg).unwrap();
    }
    segments.push(seg);
    assert_eq!(segments.len(), 2);
    for s in &segments {
        // PAT, PMT, then the key frame's first packet with PCR and RAI.
        assert_eq!(&s[1..3], &[0x40, 0x00], "PAT first");
        assert_eq!(&s[189..191], &[0x50, 0x00], "PMT second");
        let third = rill_ts::packet::parse(&s[376..564]).unwrap();
        assert_eq!(third.pid, 0x100);
        assert!(third.unit_start && third.random_access && third.pcr.is_some());
        // Each segment demuxes on its own, config included.
        let mut d = Demuxer::default();
        let mut events = Vec::new();
        d.feed(s, &mut events);
        d.flush(&mut events);
        let f = frames_of(&events);
        let first_video = f.iter().find(|f| f.track == 0).unwrap();
        assert!(first_video.is_config());
    }
}

#[test]
fn tracks_beyond_the_limit_are_ignored() {
    let tracks = [
        MuxTrack::new(RILL_CODEC_H264, seeds::video_config(RILL_CODEC_H264)),
        MuxTrack::new(RILL_CODEC_AAC, Bytes::from_static(&seeds::AAC_ASC)),
    ];
    let (_, ts) = mux_all(&tracks, &av_frames(RILL_CODEC_H264, 0));
    let limits = Limits {
        max_tracks: 1,
        ..Limits::default()
    };
    let events = demux_chunked(&ts, &[0], limits);
    assert_eq!(errors_of(&events), vec![&Error::TooManyTracks(1)]);
    assert!(frames_of(&events).iter().all(|f| f.track == 0));
    assert_eq!(frames_of(&events).len(), 51);
}
