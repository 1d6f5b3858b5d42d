//! End-to-end tests on a generated 440 Hz sine: AAC made with FDK's
//! encoder, Opus with libopus, both bridges, and decodes of their output.

use bytes::Bytes;
use fdk_aac::dec::{Decoder, Transport as DecTransport};
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use super::*;

const TONE: f64 = 440.0;

/// `secs` of a 440 Hz sine at `rate`, `ch` channels, interleaved, at about
/// -10 dBFS.
fn sine(rate: u32, ch: usize, secs: f64) -> Vec<i16> {
    let n = (rate as f64 * secs) as usize;
    let mut v = Vec::with_capacity(n * ch);
    for i in 0..n {
        let s = (i as f64 * TONE * 2.0 * std::f64::consts::PI / rate as f64).sin() * 10_000.0;
        for _ in 0..ch {
            v.push(s as i16);
        }
    }
    v
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&s| (s as f64).powi(2)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

/// Power of the first channel at `freq` (Goertzel), per sample.
fn power_at(pcm: &[i16], ch: usize, rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut n = 0usize;
    for frame in pcm.chunks_exact(ch) {
        let s = frame[0] as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
        n += 1;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n.max(1) as f64).powi(2)
}

/// Checks that `pcm` is mostly a 440 Hz tone with an RMS near `want_rms`.
fn assert_tone(pcm: &[i16], ch: usize, rate: u32, want_rms: f64) {
    let skip = (rate as usize / 10) * ch; // the first 100 ms: priming, resampler ramp
    assert!(pcm.len() > skip * 3, "only {} samples decoded", pcm.len());
    let body = &pcm[skip..pcm.len() - skip];
    let r = rms(body);
    assert!(
        r > want_rms / 2.0 && r < want_rms * 2.0,
        "rms {r}, input's {want_rms}"
    );
    let tone = power_at(body, ch, rate, TONE);
    for other in [220.0, 1000.0, 3000.0] {
        let p = power_at(body, ch, rate, other);
        assert!(tone > p * 100.0, "440 Hz {tone} vs {other} Hz {p}");
    }
}

/// Encodes `pcm` to raw AAC access units with FDK; pts of unit k is
/// k * 1024 / rate (the stream's own timeline, as a source would stamp it),
/// offset by `start_us`. Returns the ASC and exactly `units` units.
fn make_aac(
    pcm: &[i16],
    rate: u32,
    ch: usize,
    aot: AudioObjectType,
    units: usize,
    start_us: i64,
) -> (Vec<u8>, Vec<(i64, Vec<u8>)>) {
    let enc = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(if ch == 1 { 64_000 } else { 128_000 }),
        sample_rate: rate,
        transport: Transport::Raw,
        channels: if ch == 1 {
            ChannelMode::Mono
        } else {
            ChannelMode::Stereo
        },
        audio_object_type: aot,
    })
    .unwrap();
    let info = enc.info().unwrap();
    let asc = info.confBuf[..info.confSize as usize].to_vec();
    let frame_len = info.frameLength as usize;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut at = 0;
    while out.len() < units {
        let end = (at + frame_len * ch).min(pcm.len());
        assert!(at < end, "ran out of input PCM");
        let r = enc.encode(&pcm[at..end], &mut buf).unwrap();
        at += r.input_consumed;
        if r.output_size > 0 {
            let pts = start_us + (out.len() * frame_len) as i64 * 1_000_000 / rate as i64;
            out.push((pts, buf[..r.output_size].to_vec()));
        }
    }
    (asc, out)
}

/// Encodes 48 kHz `pcm` to 20 ms Opus packets with pts from `start_us`.
fn make_opus(pcm: &[i16], ch: usize, start_us: i64) -> Vec<(i64, Vec<u8>)> {
    let mut enc = ::opus::Encoder::new(
        48_000,
        if ch == 1 {
            ::opus::Channels::Mono
        } else {
            ::opus::Channels::Stereo
        },
        ::opus::Application::Audio,
    )
    .unwrap();
    pcm.chunks_exact(960 * ch)
        .enumerate()
        .map(|(k, f)| {
            (
                start_us + k as i64 * 20_000,
                enc.encode_vec(f, 4000).unwrap(),
            )
        })
        .collect()
}

fn decode_opus(frames: &[Frame], ch: usize) -> Vec<i16> {
    let mut dec = ::opus::Decoder::new(
        48_000,
        if ch == 1 {
            ::opus::Channels::Mono
        } else {
            ::opus::Channels::Stereo
        },
    )
    .unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760 * ch];
    for f in frames {
        let n = dec.decode(&f.data, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n * ch]);
    }
    pcm
}

/// Decodes AAC units; returns PCM, channels, rate.
fn decode_aac(asc: &[u8], frames: &[Frame]) -> (Vec<i16>, usize, u32) {
    let mut dec = Decoder::new(DecTransport::Raw);
    dec.config_raw(asc).unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 2048 * 8];
    let (mut ch, mut rate) = (0, 0);
    for f in frames {
        dec.fill(&f.data).unwrap();
        dec.decode_frame(&mut buf).unwrap();
        let n = dec.decoded_frame_size();
        ch = dec.stream_info().numChannels as usize;
        rate = dec.stream_info().sampleRate as u32;
        pcm.extend_from_slice(&buf[..n]);
    }
    (pcm, ch, rate)
}

fn assert_spacing(frames: &[Frame], step_us: f64) {
    for w in frames.windows(2) {
        let d = w[1].pts_us - w[0].pts_us;
        assert!(
            (d as f64 - step_us).abs() <= 1.0,
            "pts step {d} µs, want {step_us} ({} -> {})",
            w[0].pts_us,
            w[1].pts_us
        );
    }
}

fn aac_to_opus_all(bridge: &mut AacToOpus, units: &[(i64, Vec<u8>)]) -> Vec<Frame> {
    let mut out = Vec::new();
    for (pts, au) in units {
        bridge.push(*pts, au, &mut out).unwrap();
    }
    out
}

#[test]
fn aac_to_opus_sine_44100_stereo() {
    let input = sine(44_100, 2, 2.0);
    // 43 units: one second of 44.1 kHz AAC.
    let (asc, units) = make_aac(
        &input,
        44_100,
        2,
        AudioObjectType::Mpeg4LowComplexity,
        43,
        5_000_000,
    );
    let mut b = AacToOpus::new(&asc, 64_000).unwrap();
    assert_eq!(b.channels(), 2);
    let head = b.config();
    assert_eq!(&head[..8], b"OpusHead");
    assert_eq!(head[9], 2);
    let pre_skip = u16::from_le_bytes([head[10], head[11]]);
    let out = aac_to_opus_all(&mut b, &units);
    eprintln!(
        "AAC->Opus: {} packets, first pts {} (input {}), pre-skip {pre_skip}",
        out.len(),
        out[0].pts_us,
        units[0].0
    );
    assert!((47..=52).contains(&out.len()), "{} packets", out.len());
    assert_spacing(&out, 20_000.0);
    assert!(out.iter().all(|f| !f.discontinuity));
    // First output pts: the input's, less the pipeline delay: FDK's
    // decoder output delay (1685 samples at 44.1 kHz: one frame plus its
    // 15 ms limiter), the resampler's 560 and libopus's 312 at 48 kHz.
    let lead = units[0].0 - out[0].pts_us;
    assert!(
        (40_000..=60_000).contains(&lead),
        "first pts leads by {lead} µs"
    );
    let pcm = decode_opus(&out, 2);
    assert_tone(&pcm, 2, 48_000, rms(&input));
}

#[test]
fn aac_to_opus_mono_48k_and_he_aac() {
    // Mono 48 kHz LC: no resampling, mono Opus.
    let input = sine(48_000, 1, 2.0);
    let (asc, units) = make_aac(
        &input,
        48_000,
        1,
        AudioObjectType::Mpeg4LowComplexity,
        47,
        0,
    );
    let mut b = AacToOpus::new(&asc, 32_000).unwrap();
    assert_eq!(b.channels(), 1);
    assert_eq!(b.config()[9], 1);
    let out = aac_to_opus_all(&mut b, &units);
    assert!((48..=51).contains(&out.len()), "{} packets", out.len());
    assert_spacing(&out, 20_000.0);
    assert_tone(&decode_opus(&out, 1), 1, 48_000, rms(&input));

    // HE-AAC at 44.1 kHz (22.05 kHz core + SBR): 2048-sample units; the
    // decoder's output rate, not the ASC's core rate, drives resampling.
    let input = sine(44_100, 2, 3.0);
    let (asc, units) = make_aac(&input, 44_100, 2, AudioObjectType::Mpeg4HeAac, 21, 0);
    let mut b = AacToOpus::new(&asc, 64_000).unwrap();
    let out = aac_to_opus_all(&mut b, &units);
    eprintln!("HE-AAC->Opus: {} packets, asc {asc:02x?}", out.len());
    assert!((45..=51).contains(&out.len()), "{} packets", out.len());
    assert_spacing(&out, 20_000.0);
    assert_tone(&decode_opus(&out, 2), 2, 48_000, rms(&input));
}

#[test]
fn opus_to_aac_sine_stereo() {
    let input = sine(48_000, 2, 1.0);
    let packets = make_opus(&input, 2, 1_000_000);
    assert_eq!(packets.len(), 50);
    let head = head::opus_head(2, 312);
    let mut b = OpusToAac::new(Some(&head), 128_000).unwrap();
    assert_eq!(b.channels(), 2);
    let asc = b.config();
    let parsed = asc::Asc::parse(&asc).unwrap();
    assert_eq!(
        (
            parsed.object_type,
            parsed.sample_rate,
            parsed.channel_config
        ),
        (2, 48_000, 2)
    );
    let mut out = Vec::new();
    for (pts, p) in &packets {
        b.push(*pts, p, &mut out).unwrap();
    }
    eprintln!(
        "Opus->AAC: {} units, first pts {} (input {})",
        out.len(),
        out[0].pts_us,
        packets[0].0
    );
    // 48000 samples make 46.9 units, FDK holds back its lookahead.
    assert!((43..=47).contains(&out.len()), "{} units", out.len());
    assert_spacing(&out, 1024.0 * 1e6 / 48_000.0);
    // Lead: FDK's nDelay (encoder lookahead plus decoder overlap, about
    // two frames), under three frames.
    let lead = packets[0].0 - out[0].pts_us;
    assert!((0..=64_000).contains(&lead), "first pts leads by {lead} µs");
    let (pcm, ch, rate) = decode_aac(&asc, &out);
    assert_eq!((ch, rate), (2, 48_000));
    assert_tone(&pcm, 2, 48_000, rms(&input));
    // No OpusHead: stereo.
    assert_eq!(OpusToAac::new(None, 128_000).unwrap().channels(), 2);
}

#[test]
fn round_trip_opus_aac_opus() {
    let input = sine(48_000, 2, 2.0);
    let packets = make_opus(&input, 2, 0);
    let mut to_aac = OpusToAac::new(None, 128_000).unwrap();
    let mut aac = Vec::new();
    for (pts, p) in &packets {
        to_aac.push(*pts, p, &mut aac).unwrap();
    }
    let mut to_opus = AacToOpus::new(&to_aac.config(), 64_000).unwrap();
    let mut opus = Vec::new();
    for f in &aac {
        to_opus.push(f.pts_us, &f.data, &mut opus).unwrap();
    }
    eprintln!(
        "Opus->AAC->Opus: {} -> {} -> {}, first pts {} / {} / {}",
        packets.len(),
        aac.len(),
        opus.len(),
        packets[0].0,
        aac[0].pts_us,
        opus[0].pts_us
    );
    assert!((90..=100).contains(&opus.len()), "{} packets", opus.len());
    assert_spacing(&opus, 20_000.0);
    assert!(opus.iter().all(|f| !f.discontinuity));
    // Both hops' delays: under 150 ms together.
    assert!(opus[0].pts_us > -150_000 && opus[0].pts_us <= 0);
    assert_tone(&decode_opus(&opus, 2), 2, 48_000, rms(&input));
}

#[test]
fn pts_jump_resyncs() {
    let input = sine(44_100, 2, 3.0);
    let (asc, units) = make_aac(
        &input,
        44_100,
        2,
        AudioObjectType::Mpeg4LowComplexity,
        100,
        0,
    );
    let mut b = AacToOpus::new(&asc, 64_000).unwrap();
    let mut out = Vec::new();
    // 30 units as stamped, then 30 a minute later, then 40 stepped back to
    // near zero.
    for (i, (pts, au)) in units.iter().enumerate() {
        let pts = match i {
            0..30 => *pts,
            30..60 => *pts + 60_000_000,
            _ => *pts - 1_000_000,
        };
        b.push(pts, au, &mut out).unwrap();
    }
    let flagged: Vec<usize> = (0..out.len()).filter(|&i| out[i].discontinuity).collect();
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    for (seg, &i) in flagged.iter().enumerate() {
        let want = [units[30].0 + 60_000_000, units[60].0 - 1_000_000][seg];
        let lead = want - out[i].pts_us;
        assert!(
            (40_000..=60_000).contains(&lead),
            "segment {seg} leads by {lead}"
        );
    }
    // Within each segment: evenly spaced, increasing.
    let bounds = [0, flagged[0], flagged[1], out.len()];
    for w in bounds.windows(2) {
        assert_spacing(&out[w[0]..w[1]], 20_000.0);
    }
    assert!(out[flagged[0]].pts_us > out[flagged[0] - 1].pts_us);
    assert!(out[flagged[1]].pts_us < out[flagged[1] - 1].pts_us);
}

#[test]
fn lost_frame_is_filled_not_resynced() {
    let input = sine(48_000, 2, 1.0);
    let packets = make_opus(&input, 2, 0);
    let mut b = OpusToAac::new(None, 128_000).unwrap();
    let mut out = Vec::new();
    for (i, (pts, p)) in packets.iter().enumerate() {
        if i == 20 {
            continue; // lost
        }
        b.push(*pts, p, &mut out).unwrap();
    }
    assert!(out.iter().all(|f| !f.discontinuity));
    assert_spacing(&out, 1024.0 * 1e6 / 48_000.0);
    // The same count as without the loss: the gap became silence.
    assert!((43..=47).contains(&out.len()), "{} units", out.len());
}

#[test]
fn garbage_and_oversized_input_are_refused_and_the_bridge_goes_on() {
    let input = sine(44_100, 2, 2.0);
    let (asc, units) = make_aac(
        &input,
        44_100,
        2,
        AudioObjectType::Mpeg4LowComplexity,
        60,
        0,
    );
    let mut b = AacToOpus::new(&asc, 64_000).unwrap();
    let mut out = Vec::new();
    for (pts, au) in &units[..20] {
        b.push(*pts, au, &mut out).unwrap();
    }
    let before = out.len();
    let e = b.push(units[20].0, &[0xff; 300], &mut out).unwrap_err();
    eprintln!("garbage AU: {e}");
    assert!(b.push(units[20].0, &[], &mut out).is_err());
    let big = vec![0u8; MAX_INPUT_BYTES + 1];
    assert!(matches!(
        b.push(units[20].0, &big, &mut out),
        Err(Error::BadInput(_))
    ));
    assert_eq!(out.len(), before);
    for (pts, au) in &units[21..] {
        b.push(*pts, au, &mut out).unwrap();
    }
    assert!(out.len() > before + 40);
    assert!(out.windows(2).all(|w| w[1].pts_us > w[0].pts_us));

    let input = sine(48_000, 2, 1.0);
    let packets = make_opus(&input, 2, 0);
    let mut b = OpusToAac::new(None, 128_000).unwrap();
    let mut out = Vec::new();
    for (pts, p) in &packets[..10] {
        b.push(*pts, p, &mut out).unwrap();
    }
    // TOC code 3 with 63 frames of 20 ms: over Opus's 120 ms.
    let e = b
        .push(packets[10].0, &[0xff, 0xff, 0, 0], &mut out)
        .unwrap_err();
    eprintln!("garbage Opus packet: {e}");
    assert!(b.push(packets[10].0, &[], &mut out).is_err());
    assert!(b.push(packets[10].0, &big, &mut out).is_err());
    for (pts, p) in &packets[10..] {
        b.push(*pts, p, &mut out).unwrap();
    }
    assert!(out.len() > 40);
    assert!(out.windows(2).all(|w| w[1].pts_us > w[0].pts_us));
}

/// A fuzz-style smoke run over the only parsing here: configs (and, with
/// a valid config, access units and packets). Nothing may panic.
#[test]
fn random_configs_and_payloads_do_not_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let good_asc = [0x12u8, 0x10];
    let good_head = head::opus_head(2, 312);
    // Truncations of valid configs are refused.
    for n in 0..good_asc.len() {
        assert!(AacToOpus::new(&good_asc[..n], 64_000).is_err());
    }
    for n in 0..good_head.len() {
        assert!(OpusToAac::new(Some(&good_head[..n]), 128_000).is_err());
    }
    // Bad bitrates are refused, not panicked on.
    assert!(matches!(
        AacToOpus::new(&good_asc, 0),
        Err(Error::Encode(_))
    ));
    // (FDK clamps an out-of-range AAC bitrate instead of refusing it.)
    let _ = OpusToAac::new(None, u32::MAX);
    let mut accepted = 0;
    for round in 0..3000 {
        let len = (next() % 24) as usize;
        let mut cfg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && len >= 2 {
            // Mutations of valid ones reach deeper.
            cfg[..2].copy_from_slice(&good_asc);
            let i = (next() % len as u64) as usize;
            cfg[i] ^= 1 << (next() % 8);
        }
        if let Ok(mut b) = AacToOpus::new(&cfg, 64_000) {
            accepted += 1;
            let mut out = Vec::new();
            for k in 0..4 {
                let au: Vec<u8> = (0..(next() % 800) as usize).map(|_| next() as u8).collect();
                let _ = b.push(k * 21_000, &au, &mut out);
            }
        }
        let mut head = good_head.clone();
        if round % 3 == 0 {
            head = cfg.clone();
        } else {
            let i = (next() % head.len() as u64) as usize;
            head[i] = next() as u8;
        }
        if let Ok(mut b) = OpusToAac::new(Some(&head), 128_000) {
            let mut out = Vec::new();
            for k in 0..4 {
                let p: Vec<u8> = (0..(next() % 400) as usize).map(|_| next() as u8).collect();
                let _ = b.push(k * 20_000, &p, &mut out);
            }
        }
    }
    eprintln!("{accepted} of 3000 random ASCs accepted");
}

#[test]
fn bridges_are_send() {
    fn send<T: Send>() {}
    send::<AacToOpus>();
    send::<OpusToAac>();
    send::<std::sync::Mutex<AacToOpus>>();
    fn sync<T: Sync>() {}
    sync::<std::sync::Mutex<OpusToAac>>();
    let _ = Bytes::new();
}

/// A chirp, so a cross-correlation finds one lag, not a sine's period.
fn chirp(t: f64) -> f64 {
    (2.0 * std::f64::consts::PI * (200.0 * t + 400.0 * t * t)).sin() * 10_000.0
}

/// The lag, in samples at `rate`, of `pcm` (first channel of stereo, its
/// sample `n` presented at `t0 + n / rate`) behind the chirp.
fn chirp_lag(pcm: &[i16], rate: u32, t0: f64) -> i64 {
    let mut best = (0i64, f64::MIN);
    for lag in -500..4000i64 {
        let mut acc = 0.0;
        for n in (rate as usize / 2..rate as usize * 2).step_by(13) {
            acc += pcm[n * 2] as f64 * chirp(t0 + (n as f64 - lag as f64) / rate as f64);
        }
        if acc > best.1 {
            best = (lag, acc);
        }
    }
    best.0
}

/// Sync: the output, played at its pts, lags the original PCM exactly as
/// much as the source stream does when a delay-free decoder (FFmpeg's,
/// checked by hand: 2048 samples for FDK-made AAC, 312 for libopus-made
/// Opus) plays it at its pts. That is, the bridge's own delays (decoder,
/// resampler, encoder) are all taken out of the pts.
#[test]
fn output_is_aligned_with_the_source_timeline() {
    let rate = 44_100u32;
    let input: Vec<i16> = (0..rate as usize * 3)
        .flat_map(|i| [chirp(i as f64 / rate as f64) as i16; 2])
        .collect();
    let (asc, units) = make_aac(&input, rate, 2, AudioObjectType::Mpeg4LowComplexity, 100, 0);
    let src_delay = 2048.0; // FDK's nDelay for AAC-LC (encoder side)
    let mut b = AacToOpus::new(&asc, 96_000).unwrap();
    let out = aac_to_opus_all(&mut b, &units);
    let lag = chirp_lag(&decode_opus(&out, 2), 48_000, out[0].pts_us as f64 / 1e6);
    let want = (src_delay * 48_000.0 / rate as f64).round() as i64;
    assert!((lag - want).abs() <= 3, "AAC->Opus lag {lag}, want {want}");

    let pcm48: Vec<i16> = (0..48_000 * 3)
        .flat_map(|i| [chirp(i as f64 / 48_000.0) as i16; 2])
        .collect();
    let packets = make_opus(&pcm48, 2, 0);
    let mut b = OpusToAac::new(None, 128_000).unwrap();
    let mut out = Vec::new();
    for (pts, p) in &packets {
        b.push(*pts, p, &mut out).unwrap();
    }
    let (pcm, _, _) = decode_aac(&b.config(), &out);
    // FDK's decoder (used here to check) adds its own output delay.
    let mut dec = Decoder::new(DecTransport::Raw);
    dec.config_raw(&b.config()).unwrap();
    dec.fill(&out[0].data).unwrap();
    dec.decode_frame(&mut vec![0; 4096]).unwrap();
    let fdk_delay = dec.stream_info().outputDelay as i64;
    let lag = chirp_lag(&pcm, 48_000, out[0].pts_us as f64 / 1e6) - fdk_delay;
    assert!((lag - 312).abs() <= 3, "Opus->AAC lag {lag}, want 312");
}
