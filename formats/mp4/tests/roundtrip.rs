//! The muxer through its public API, read back with `rill_mp4::read`:
//! init segment layout, fragment layout, durations, cuts, errors.

use bytes::Bytes;
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_OPUS, RILL_CODEC_VP9};
use rill_mp4::fuzzing::seeds;
use rill_mp4::read::{self, FragmentInfo};
use rill_mp4::{Error, Fragment, Muxer, Sample, TrackInfo};

fn h264() -> TrackInfo {
    TrackInfo::new(RILL_CODEC_H264, Bytes::from_static(seeds::AVCC_HIGH_31)).unwrap()
}

fn aac() -> TrackInfo {
    TrackInfo::new(RILL_CODEC_AAC, Bytes::from_static(seeds::ASC_LC_44100_MONO)).unwrap()
}

fn payload(n: u8) -> Bytes {
    Bytes::from(vec![0, 0, 0, 2, 0x41, n])
}

fn parse(f: &Fragment) -> FragmentInfo {
    let bytes = f.to_bytes();
    let mut all = read::parse_fragments(&bytes).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[test]
fn init_segment_layout() {
    let mux = Muxer::new(vec![h264(), aac()]).unwrap();
    assert_eq!(mux.codecs(), "avc1.64001f,mp4a.40.2");
    let init = read::parse_init(&mux.init_segment().unwrap()).unwrap();
    assert_eq!(&init.major_brand, b"iso6");
    // Two tracks: not a CMAF track file.
    assert!(!init.compatible_brands.contains(b"cmfc"));
    assert_eq!(init.trex, [1, 2]);
    let (v, a) = (&init.tracks[0], &init.tracks[1]);
    assert_eq!((v.track_id, &v.handler, v.timescale), (1, b"vide", 90000));
    assert_eq!((v.tkhd_size, v.entry.size), ((320, 240), (320, 240)));
    assert_eq!(&v.entry.kind, b"avc1");
    assert_eq!(
        v.entry.config,
        Some((*b"avcC", seeds::AVCC_HIGH_31.to_vec()))
    );
    assert_eq!((a.track_id, &a.handler, a.timescale), (2, b"soun", 44100));
    assert_eq!((&a.entry.kind, a.entry.audio), (b"mp4a", (1, 44100)));
    assert_eq!(a.entry.asc.as_deref(), Some(seeds::ASC_LC_44100_MONO));

    // One track: cmfc. Opus: dOps, 48 kHz.
    let opus = TrackInfo::new(RILL_CODEC_OPUS, Bytes::from_static(seeds::OPUS_HEAD_MONO)).unwrap();
    let init = read::parse_init(&rill_mp4::init_segment(&[opus]).unwrap()).unwrap();
    assert!(init.compatible_brands.contains(b"cmfc"));
    let e = &init.tracks[0].entry;
    assert_eq!(
        (&e.kind, e.audio, init.tracks[0].timescale),
        (b"Opus", (1, 48000), 48000)
    );
    assert_eq!(
        e.config,
        Some((*b"dOps", vec![0, 1, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]))
    );

    // VP9: vpcC is a version 1 full box around the bare record; the size
    // comes from a key frame.
    let mut vp9 = TrackInfo::new(RILL_CODEC_VP9, Bytes::from_static(seeds::VPCC_FULL_BOX)).unwrap();
    assert!(vp9.learn_from_keyframe(&[0x82, 0x49, 0x83, 0x42, 0x40, 0x13, 0xf0, 0x0e, 0xf0]));
    let init = read::parse_init(&rill_mp4::init_segment(&[vp9]).unwrap()).unwrap();
    let e = &init.tracks[0].entry;
    assert_eq!((&e.kind, e.size), (b"vp09", (320, 240)));
    assert_eq!(e.config, Some((*b"vpcC", seeds::VPCC_FULL_BOX.to_vec())));
}

#[test]
fn durations_come_from_the_next_sample() {
    let mut mux = Muxer::new(vec![h264()]).unwrap();
    mux.push(0, Sample::new(1_000_000, 1_080_000, true, payload(0)))
        .unwrap();
    assert!(
        mux.fragment().is_none(),
        "the only sample waits for its successor"
    );
    mux.push(0, Sample::new(1_040_000, 1_040_000, false, payload(1)))
        .unwrap();
    mux.push(0, Sample::new(1_080_000, 1_120_000, false, payload(2)))
        .unwrap();
    assert_eq!(mux.ready_end(0), Some(1_080_000));
    let f = mux.fragment().unwrap();
    assert_eq!((f.sequence, f.start(), f.end()), (1, 1_000_000, 1_080_000));
    assert!(f.independent());
    let p = parse(&f);
    let t = &p.trafs[0];
    assert_eq!((t.track_id, t.base_decode_time), (1, Some(90_000)));
    assert_eq!(t.decode_times(), [90_000, 93_600]);
    let d: Vec<_> = t
        .samples
        .iter()
        .map(|s| (s.duration, s.composition_offset, s.is_sync()))
        .collect();
    assert_eq!(d, [(3600, 7200, true), (3600, 0, false)]);
    // Payloads are referenced and laid out in mdat in order.
    let bytes = f.to_bytes();
    assert_eq!(f.chunks().count(), 3);
    assert_eq!(&bytes[t.samples[1].data.clone()], &payload(1)[..]);
    assert_eq!(p.mdat.unwrap().end, bytes.len());

    // The last sample: flushed with an end time, then nothing is left.
    let f = mux.flush(Some(1_100_000)).unwrap();
    assert_eq!(f.sequence, 2);
    assert!(!f.independent());
    let t = &parse(&f).trafs[0];
    assert_eq!(
        (t.base_decode_time, t.samples[0].duration),
        (Some(97_200), 1800)
    );
    assert!(mux.flush(None).is_none());
}

#[test]
fn cut_before_a_key_frame() {
    let mut mux = Muxer::new(vec![h264(), aac()]).unwrap();
    // 25 fps video, 23 ms audio frames, a key frame at 80 ms.
    for i in 0..3 {
        mux.push(
            0,
            Sample::new(i * 40_000, i * 40_000, i != 1, payload(i as u8)),
        )
        .unwrap();
    }
    for i in 0..5 {
        mux.push(
            1,
            Sample::new(
                i * 23_000,
                i * 23_000,
                false,
                Bytes::from_static(b"\x21\x00"),
            ),
        )
        .unwrap();
    }
    // Audio at 0, 23, 46, 69 are before the key frame and ready; 92 is not.
    let f = mux.fragment_before(80_000).unwrap();
    assert_eq!(f.tracks.len(), 2);
    assert_eq!((f.tracks[0].samples, f.tracks[1].samples), (2, 4));
    assert!(f.independent());
    let p = parse(&f);
    assert_eq!(p.trafs[1].decode_times(), [0, 1014, 2028, 3042]);
    // Audio: every sample sync (tfhd default flags), no per-sample flags.
    assert!(p.trafs[1].samples.iter().all(|s| s.is_sync()));
    // The key frame starts the next one.
    mux.push(0, Sample::new(120_000, 120_000, false, payload(3)))
        .unwrap();
    mux.push(
        1,
        Sample::new(115_000, 115_000, true, Bytes::from_static(b"\x21")),
    )
    .unwrap();
    let f = mux.fragment().unwrap();
    assert_eq!(f.tracks[0].start, 80_000);
    assert!(f.tracks[0].starts_with_sync && f.independent());
    assert_eq!(parse(&f).trafs[1].base_decode_time, Some(4057));
}

#[test]
fn given_durations_and_fallbacks() {
    let mut mux = Muxer::new(vec![aac()]).unwrap();
    // A given duration makes the sample ready at once ...
    mux.push(
        0,
        Sample::new(0, 0, true, Bytes::from_static(b"a")).with_duration(23_220),
    )
    .unwrap();
    assert_eq!(mux.ready_end(0), Some(23_220));
    // ... and the next sample's time still wins while it is buffered.
    mux.push(
        0,
        Sample::new(23_000, 23_000, true, Bytes::from_static(b"b")),
    )
    .unwrap();
    mux.push(
        0,
        Sample::new(46_000, 46_000, true, Bytes::from_static(b"c")).with_duration(23_220),
    )
    .unwrap();
    let f = mux.fragment().unwrap();
    let t = &parse(&f).trafs[0];
    let d: Vec<u32> = t.samples.iter().map(|s| s.duration).collect();
    assert_eq!(d, [1014, 1014, 1024]);
    assert_eq!(f.end(), 69_220);
    // Flushed without an end: the previous duration, or the codec's.
    mux.push(
        0,
        Sample::new(70_000, 70_000, true, Bytes::from_static(b"d")),
    )
    .unwrap();
    let f = mux.flush(None).unwrap();
    assert_eq!(parse(&f).trafs[0].samples[0].duration, 1024);
    let mut lone = Muxer::new(vec![h264()]).unwrap();
    lone.push(0, Sample::new(0, 0, true, payload(0))).unwrap();
    let f = lone.flush(Some(0)).unwrap();
    assert_eq!(parse(&f).trafs[0].samples[0].duration, 3000);
}

#[test]
fn refused_samples_change_nothing() {
    let mut mux = Muxer::new(vec![h264()]).unwrap();
    assert_eq!(
        mux.push(0, Sample::new(-1, 0, true, payload(0))),
        Err(Error::Timestamp("negative dts"))
    );
    assert!(mux.push(1, Sample::new(0, 0, true, payload(0))).is_err());
    mux.push(0, Sample::new(1_000, 1_000, true, payload(0)))
        .unwrap();
    assert_eq!(
        mux.push(0, Sample::new(999, 999, true, payload(1))),
        Err(Error::Timestamp("dts going backwards"))
    );
    // 2^32 ticks of 90 kHz is 13.25 hours.
    assert!(mux
        .push(
            0,
            Sample::new(48_000_000_000, 48_000_000_000, true, payload(1))
        )
        .is_err());
    assert!(mux
        .push(0, Sample::new(2_000, 1 << 40, true, payload(1)))
        .is_err());
    assert!(mux
        .push(
            0,
            Sample::new(2_000, 2_000, true, payload(1)).with_duration(-5)
        )
        .is_err());
    assert_eq!(mux.buffered(0), 1);
    mux.push(0, Sample::new(41_000, 41_000, false, payload(1)))
        .unwrap();
    let f = mux.flush(None).unwrap();
    let t = &parse(&f).trafs[0];
    assert_eq!(t.decode_times(), [90, 3690]);
    assert!(Muxer::new(vec![]).is_err());
}
