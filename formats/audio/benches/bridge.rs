//! What a bridge costs per second of audio: one second of a 440 Hz stereo
//! tone through AAC → Opus (48 kHz AAC as `OpusToAac` makes it: decode,
//! encode) and Opus → AAC (decode, encode at 48 kHz). A bridge runs once per stream,
//! so this is the CPU a stream's WebRTC (or legacy RTMP) audio costs.
//! Compare with ffmpeg doing the same (docs/benchmarks.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rill_audio::{AacToOpus, OpusToAac};

/// One second of a 440 Hz tone at 48 kHz, as 20 ms stereo Opus packets.
fn opus_second() -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(96_000)).unwrap();
    let mut packets = Vec::new();
    for k in 0..50 {
        let pcm: Vec<i16> = (0..960)
            .flat_map(|i| {
                let t = (k * 960 + i) as f64 / 48_000.0;
                let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16;
                [v, v]
            })
            .collect();
        let mut out = vec![0u8; 1500];
        let n = enc.encode(&pcm, &mut out).unwrap();
        out.truncate(n);
        packets.push(out);
    }
    packets
}

fn bench(c: &mut Criterion) {
    let opus = opus_second();
    // Real AAC of the same tone, from the other bridge.
    let mut to_aac = OpusToAac::new(None, 128_000).unwrap();
    let mut frames = Vec::new();
    for (i, p) in opus.iter().chain(opus.iter()).enumerate() {
        to_aac.push(i as i64 * 20_000, p, &mut frames).unwrap();
    }
    let asc = to_aac.config();
    let aac: Vec<_> = frames.iter().map(|f| f.data.clone()).collect();
    let aac = &aac[aac.len() - 47..];

    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(1));
    g.bench_function("aac_to_opus_1s", |b| {
        let mut br = AacToOpus::new(&asc, 96_000).unwrap();
        let mut out = Vec::new();
        let mut pts = 0i64;
        b.iter(|| {
            for au in aac {
                out.clear();
                br.push(pts, au, &mut out).unwrap();
                pts += 21_333;
            }
        })
    });
    g.bench_function("opus_to_aac_1s", |b| {
        let mut br = OpusToAac::new(None, 128_000).unwrap();
        let mut out = Vec::new();
        let mut pts = 0i64;
        b.iter(|| {
            for p in &opus {
                out.clear();
                br.push(pts, p, &mut out).unwrap();
                pts += 20_000;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
