//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! the stable smoke test (`tests/fuzz_smoke.rs`), so both exercise the same
//! properties. Each function must never panic on any input; the assertions
//! inside are the properties being checked.

use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_AV1, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS,
    RILL_CODEC_VP9,
};

use crate::mux::to_timescale;
use crate::read::{self, SampleInfo};
use crate::{init_segment, Muxer, Sample, TrackInfo};

/// The box reader: whatever it returns lies inside the input, and an init
/// segment whose sample entries parse as configurations is written again
/// with the same configurations.
pub fn boxes(data: &[u8]) {
    let _ = read::walk(data, &mut |b, _| {
        assert!(b.body_offset() + b.body.len() <= data.len());
    });
    if let Ok(frags) = read::parse_fragments(data) {
        for f in &frags {
            for t in &f.trafs {
                for s in &t.samples {
                    assert!(s.data.start <= s.data.end && s.data.end <= data.len());
                    assert_eq!(s.data.len(), s.size as usize);
                }
                let _ = t.decode_times();
            }
        }
    }
    // Retiming a moof changes its tfdt values and nothing else.
    if let Some(at) = crate::retime::first_moof(data) {
        let mut moof = data[at].to_vec();
        if let Ok(times) = crate::retime::decode_times(&moof) {
            crate::retime::retime(&mut moof, |_, t| t / 2).expect("halved times fit");
            let halved: Vec<_> = times.iter().map(|&(id, t)| (id, t / 2)).collect();
            assert_eq!(crate::retime::decode_times(&moof).unwrap(), halved);
            assert_eq!(
                moof.len(),
                data[crate::retime::first_moof(data).unwrap()].len()
            );
        }
    }
    // Sample tables: bounded, ordered by offset.
    if let Ok(samples) = read::sample_tables(data, 100_000) {
        assert!(samples.len() <= 100_000);
        assert!(samples.windows(2).all(|w| w[0].offset <= w[1].offset));
        assert!(samples.iter().all(|s| s.pts >= s.dts));
    }
    let Ok(init) = read::parse_init(data) else {
        return;
    };
    let mut tracks = Vec::new();
    for t in &init.tracks {
        let Some((kind, body)) = &t.entry.config else {
            return;
        };
        let (codec, config) = match kind {
            b"avcC" => (RILL_CODEC_H264, body.clone()),
            b"hvcC" => (RILL_CODEC_H265, body.clone()),
            b"av1C" => (RILL_CODEC_AV1, body.clone()),
            b"vpcC" => (RILL_CODEC_VP9, body.clone()),
            b"esds" => match &t.entry.asc {
                Some(asc) => (RILL_CODEC_AAC, asc.clone()),
                None => return,
            },
            _ => return,
        };
        match TrackInfo::new(codec, Bytes::from(config)) {
            Ok(info) => tracks.push(info),
            Err(_) => return,
        }
    }
    let Ok(again) = init_segment(&tracks) else {
        return;
    };
    let back = read::parse_init(&again).expect("a written init segment parses");
    assert_eq!(back.tracks.len(), tracks.len());
    for (t, b) in tracks.iter().zip(&back.tracks) {
        assert_eq!(b.timescale, t.timescale);
        let (_, body) = b.entry.config.as_ref().expect("config box written");
        match t.codec {
            RILL_CODEC_AAC => assert_eq!(b.entry.asc.as_deref(), Some(&t.config[..])),
            RILL_CODEC_VP9 => assert_eq!(
                &body[4..],
                crate::codec::vp9::Vp9Config::parse(&t.config)
                    .unwrap()
                    .record(&t.config)
            ),
            RILL_CODEC_H265 => {
                assert_eq!(body, &crate::codec::hevc::hvc1_record(&t.config).unwrap())
            }
            _ => assert_eq!(&body[..], &t.config[..]),
        }
    }
}

/// A sample the fuzz input pushed and the muxer accepted.
struct Pushed {
    dts: i64,
    pts: i64,
    key: bool,
    data: Bytes,
}

/// The track sets the first input byte picks from.
fn track_set(i: u8) -> Vec<TrackInfo> {
    let t = |codec, config: &'static [u8]| {
        TrackInfo::new(codec, Bytes::from_static(config)).expect("seed configs parse")
    };
    let h264 = || t(RILL_CODEC_H264, seeds::AVCC_HIGH_31);
    let aac = || t(RILL_CODEC_AAC, seeds::ASC_LC_44100_MONO);
    let opus = || t(RILL_CODEC_OPUS, seeds::OPUS_HEAD_MONO);
    match i % 7 {
        0 => vec![h264()],
        1 => vec![aac()],
        2 => vec![h264(), aac()],
        3 => vec![t(RILL_CODEC_H265, seeds::HVCC_MAIN), opus()],
        4 => vec![t(RILL_CODEC_AV1, seeds::AV1C_MAIN), opus()],
        5 => vec![t(RILL_CODEC_VP9, seeds::VPCC_FULL_BOX), aac()],
        _ => vec![h264(), aac(), opus()],
    }
}

/// Mux and parse back. The input is a track-set byte, then records of
/// five bytes and a payload: track selector (low bits: track; 0x80: a
/// huge gap; 0x40: going backwards; bits 4-5: how to cut), a 16-bit dts
/// step in 10 µs, a signed composition offset in ms, and a byte of flags
/// (key, given duration, cut after) and payload length. What comes back
/// must be what was accepted: per track the same samples in order, sizes
/// and bytes, decode times and composition offsets exactly the frames'
/// times in the track's timescale, sync flags from the key flags, and
/// sequence numbers counting from 1.
pub fn roundtrip(data: &[u8]) {
    let Some((&set, mut rest)) = data.split_first() else {
        return;
    };
    let tracks = track_set(set);
    let n = tracks.len();
    let scales: Vec<u32> = tracks.iter().map(|t| t.timescale).collect();
    let video: Vec<bool> = tracks.iter().map(TrackInfo::is_video).collect();
    let av1: Vec<bool> = tracks.iter().map(|t| t.codec == RILL_CODEC_AV1).collect();
    let mut mux = Muxer::new(tracks).expect("muxer");
    let init = mux.init_segment().expect("init segment");
    let parsed_init = read::parse_init(&init).expect("init parses");
    assert_eq!(parsed_init.tracks.len(), n);
    for (t, &scale) in parsed_init.tracks.iter().zip(&scales) {
        assert_eq!(t.timescale, scale);
    }

    let mut pushed: Vec<Vec<Pushed>> = (0..n).map(|_| Vec::new()).collect();
    let mut last_dts = vec![0i64; n];
    let mut out = Vec::new();
    let mut fragments = Vec::new();
    let cut = |mux: &mut Muxer, how: u8, dts: i64| match how {
        0 => mux.fragment(),
        1 => mux.fragment_before(dts),
        2 => mux.flush(Some(dts.saturating_add(1000))),
        _ => mux.flush(None),
    };
    while rest.len() >= 5 {
        let (h, tail) = rest.split_at(5);
        let len = (h[4] >> 3) as usize;
        let (payload, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        let track = (h[0] & 0x0f) as usize % n;
        let step = u16::from_be_bytes([h[1], h[2]]) as i64;
        let step = if h[0] & 0x80 != 0 {
            step << 24
        } else {
            step * 10
        };
        let dts = if h[0] & 0x40 != 0 {
            last_dts[track] - step
        } else {
            last_dts[track] + step
        };
        let pts = dts + (h[3] as i8) as i64 * 1000;
        let key = h[4] & 1 != 0;
        let mut sample = Sample::new(dts, pts, key, Bytes::copy_from_slice(payload));
        if h[4] & 2 != 0 {
            sample = sample.with_duration(h[1] as i64 * 100);
        }
        if mux.push(track, sample).is_ok() {
            assert!(dts >= 0 && dts >= last_dts[track], "accepted a bad dts");
            last_dts[track] = dts;
            let data = Bytes::copy_from_slice(payload);
            pushed[track].push(Pushed {
                dts,
                pts,
                key: key || !video[track],
                // The muxer leaves AV1's temporal delimiters out.
                data: if av1[track] {
                    crate::codec::av1::strip_temporal_delimiters(&data)
                } else {
                    data
                },
            });
        }
        if h[4] & 4 != 0 {
            if let Some(f) = cut(&mut mux, (h[0] >> 4) & 3, dts) {
                fragments.push(f);
            }
        }
    }
    if let Some(f) = mux.flush(None) {
        fragments.push(f);
    }
    for f in &fragments {
        out.extend_from_slice(&f.to_bytes());
    }

    let parsed = read::parse_fragments(&out).expect("fragments parse");
    assert_eq!(parsed.len(), fragments.len());
    let mut got: Vec<Vec<(u64, &SampleInfo)>> = (0..n).map(|_| Vec::new()).collect();
    for (i, (p, f)) in parsed.iter().zip(&fragments).enumerate() {
        assert_eq!(p.sequence as usize, i + 1);
        assert_eq!(f.sequence as usize, i + 1);
        let mdat = p.mdat.clone().expect("mdat follows moof");
        assert_eq!(p.trafs.len(), f.tracks.len());
        for (traf, summary) in p.trafs.iter().zip(&f.tracks) {
            let track = traf.track_id as usize - 1;
            assert_eq!(track, summary.track);
            assert_eq!(traf.samples.len(), summary.samples);
            assert_eq!(traf.base_decode_time, Some(summary.base_decode_time));
            for (t, s) in traf.decode_times().into_iter().zip(&traf.samples) {
                assert!(mdat.start <= s.data.start && s.data.end <= mdat.end);
                got[track].push((t, s));
            }
        }
    }
    for track in 0..n {
        assert_eq!(got[track].len(), pushed[track].len(), "track {track}");
        let scale = scales[track];
        for ((t, s), p) in got[track].iter().zip(&pushed[track]) {
            let dts = to_timescale(p.dts, scale);
            assert_eq!(*t as i128, dts);
            assert_eq!(
                s.composition_offset as i128,
                to_timescale(p.pts, scale) - dts
            );
            assert_eq!(&out[s.data.clone()], &p.data[..]);
            assert_eq!(s.is_sync(), p.key);
        }
    }
}

/// Typical inputs the seed corpora and the tests are built from: real
/// encoders' decoder configurations.
pub mod seeds {
    /// x264 High@3.1, 320x240 (ffmpeg -profile:v high -level 3.1).
    pub const AVCC_HIGH_31: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x41,
        0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1,
        0x83, 0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8,
        0x00,
    ];

    /// x264 baseline 320x240 (rill-flv's fixture).
    pub const AVCC_BASELINE: &[u8] = &[
        0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41,
        0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42,
        0x99, 0x20, 0x01, 0x00, 0x04, 0x68, 0xcb, 0x83, 0xcb, 0x20,
    ];

    /// The hvcC ffmpeg 9 + x265 4.3 write for 320x240 yuv420p Main (the
    /// SEI array cut off: it carries only x265's banner).
    pub const HVCC_MAIN: &[u8] = &[
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0xf0, 0x00,
        0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, // 3 arrays: VPS, SPS, PPS
        0x20, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00,
        0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09, //
        0x21, 0x00, 0x01, 0x00, 0x2a, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90,
        0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59,
        0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00,
        0x32, 0x10, //
        0x22, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40,
    ];

    /// What ffmpeg 9 + SVT-AV1 write for 320x240 yuv420p.
    pub const AV1C_MAIN: &[u8] = &[
        0x81, 0x00, 0x0c, 0x00, 0x0a, 0x0b, 0x02, 0x00, 0x00, 0x05, 0x61, 0xe7, 0xfd, 0xe0, 0x17,
        0xc0, 0x02,
    ];

    /// ffmpeg 9's Enhanced RTMP sequence start for libvpx-vp9 yuv420p
    /// (with the box's version and flags).
    pub const VPCC_FULL_BOX: &[u8] = &[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0x82, 0x02, 0x02, 0x02, 0x00, 0x00,
    ];

    /// ffmpeg's AAC-LC, 44.1 kHz mono (with its SBR sync extension).
    pub const ASC_LC_44100_MONO: &[u8] = &[0x12, 0x08, 0x56, 0xe5, 0x00];

    /// libopus through ffmpeg: mono, pre-skip 312, 48 kHz.
    pub const OPUS_HEAD_MONO: &[u8] = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00";
}

/// The progressive MP4 sidecar index: whatever parses has tracks that
/// init segments accept and samples of those tracks, and the `moov` built
/// from it is boxes the reader walks end to end.
pub fn progressive(data: &[u8]) {
    let Ok((tracks, samples)) = crate::progressive::Index::parse(data) else {
        return;
    };
    assert!(!tracks.is_empty() && tracks.len() <= crate::MAX_TRACKS);
    assert!(samples.iter().all(|s| (s.track as usize) < tracks.len()));
    if let Ok(moov) = crate::progressive::moov(&tracks, &samples) {
        let mut seen = 0usize;
        read::walk(&moov, &mut |b, _| {
            assert!(b.body_offset() + b.body.len() <= moov.len());
            seen += 1;
        })
        .expect("a moov the reader cannot walk");
        assert!(seen > 0);
        // It reads back as as many samples as it was written for.
        let back = read::sample_tables(&moov, crate::progressive::MAX_SAMPLES)
            .expect("a moov the sample reader refuses");
        assert_eq!(back.len(), samples.len());
    }
}
