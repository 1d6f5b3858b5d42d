//! Against the real ffmpeg (Debian's): TS written by ffmpeg demuxes into
//! the frames it holds (counts, key frames, monotonic DTS, configurations
//! found), and those frames muxed again by this crate decode in ffmpeg
//! without an error, frame for frame.
//!
//! Skipped when ffmpeg/ffprobe are missing, failed then under
//! `RILL_REQUIRE_TOOLS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_MP3, RILL_CODEC_OPUS};
use rill_testsupport::{require_tool, runs};
use rill_ts::nal::{parse_avc_record, parse_hevc_record};
use rill_ts::{Demuxer, Event, Frame, MuxTrack, Muxer, MuxerConfig, TrackInfo};

fn have_tools(test: &str) -> bool {
    let missing =
        |tool: &str| (!runs(tool, &["-version"])).then(|| format!("{tool} -version failed"));
    require_tool(test, "ffmpeg", missing("ffmpeg"))
        && require_tool(test, "ffprobe", missing("ffprobe"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rill-ts-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decodes every stream of `file` with ffmpeg; returns its error output
/// (empty when the decode was clean).
fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Frames ffprobe decodes in stream `sel` (`v:0`, `a:0`) of `file`.
fn probe_count(file: &Path, sel: &str) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", sel])
        .args([
            "-show_entries",
            "stream=nb_read_frames,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let count = text.trim().rsplit(',').next().unwrap_or("");
    count
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe said {text:?}"))
}

struct Demuxed {
    tracks: Vec<TrackInfo>,
    configs: Vec<Option<Frame>>,
    media: Vec<Vec<Frame>>,
}

/// Demuxes in 1316-byte chunks (7 packets, what SRT carries), asserting
/// no error.
fn demux(ts: &[u8]) -> Demuxed {
    let mut d = Demuxer::default();
    let mut events = Vec::new();
    for chunk in ts.chunks(1316) {
        d.feed(chunk, &mut events);
    }
    d.flush(&mut events);
    let mut out = Demuxed {
        tracks: Vec::new(),
        configs: Vec::new(),
        media: Vec::new(),
    };
    for e in events {
        match e {
            Event::Tracks(t) => {
                assert!(out.tracks.is_empty(), "tracks once");
                out.configs = vec![None; t.len()];
                out.media = vec![Vec::new(); t.len()];
                out.tracks = t;
            }
            Event::Frame(f) if f.is_config() => {
                let slot = &mut out.configs[f.track as usize];
                assert!(slot.is_none(), "one config per track");
                *slot = Some(f);
            }
            Event::Frame(f) => out.media[f.track as usize].push(f),
            Event::Error { pid, error } => panic!("demux error on {pid:?}: {error}"),
        }
    }
    out
}

/// Checks timing: DTS never goes back, PTS never before DTS.
fn check_times(frames: &[Frame], strictly: bool) {
    for w in frames.windows(2) {
        if strictly {
            assert!(
                w[1].dts > w[0].dts,
                "DTS increases: {} then {}",
                w[0].dts,
                w[1].dts
            );
        } else {
            assert!(w[1].dts >= w[0].dts, "DTS monotonic");
        }
    }
    assert!(frames.iter().all(|f| f.pts >= f.dts), "PTS >= DTS");
}

/// Muxes demuxed frames again (configs as the tracks' initial ones, media
/// in DTS order) into `file`.
fn remux(d: &Demuxed, file: &Path) -> Vec<u8> {
    let tracks: Vec<MuxTrack> = d
        .tracks
        .iter()
        .zip(&d.configs)
        .map(|(t, c)| {
            MuxTrack::new(
                t.codec,
                c.as_ref().map(|c| c.payload.clone()).unwrap_or_default(),
            )
        })
        .collect();
    let mut mux = Muxer::new(&tracks, MuxerConfig::default()).unwrap();
    let mut all: Vec<&Frame> = d.media.iter().flatten().collect();
    all.sort_by_key(|f| f.dts);
    let mut ts = Vec::new();
    for f in all {
        mux.write(f, &mut ts).unwrap();
    }
    std::fs::write(file, &ts).unwrap();
    ts
}

fn video_round_trip(test: &str, encoder: &[&str], codec: u32) {
    if !have_tools(test) {
        return;
    }
    let dir = TempDir::new(test);
    let input = dir.path("in.ts");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(encoder);
    args.extend_from_slice(&["-c:a", "aac", "-f", "mpegts"]);
    let input_s = input.to_str().unwrap();
    args.push(input_s);
    ffmpeg(&args);
    let ts = std::fs::read(&input).unwrap();
    let d = demux(&ts);

    assert_eq!(d.tracks.len(), 2, "{:?}", d.tracks);
    assert_eq!(d.tracks[0].codec, codec);
    assert_eq!(d.tracks[1].codec, RILL_CODEC_AAC);
    let video = &d.media[0];
    assert!(
        (49..=51).contains(&video.len()),
        "video frames: {}",
        video.len()
    );
    assert!(video[0].is_key(), "first video frame is a key frame");
    assert!(video.iter().filter(|f| f.is_key()).count() >= 1);
    assert!(video.iter().any(|f| f.pts != f.dts), "B-frames reorder");
    check_times(video, true);
    let vconfig = d.configs[0].as_ref().expect("video config");
    let nals = if codec == RILL_CODEC_H264 {
        parse_avc_record(&vconfig.payload).unwrap().nals
    } else {
        parse_hevc_record(&vconfig.payload).unwrap().nals
    };
    assert!(nals.len() >= if codec == RILL_CODEC_H264 { 2 } else { 3 });
    // Mono 44.1 kHz AAC-LC.
    assert_eq!(
        &d.configs[1].as_ref().expect("AAC config").payload[..],
        &[0x12, 0x08]
    );
    let audio = &d.media[1];
    assert!(
        (84..=90).contains(&audio.len()),
        "audio frames: {}",
        audio.len()
    );
    check_times(audio, true);
    assert!(audio.iter().all(|f| f.is_key()));

    let output = dir.path("out.ts");
    let ts2 = remux(&d, &output);
    assert_eq!(decode_errors(&output), "", "ffmpeg decodes our TS cleanly");
    assert_eq!(probe_count(&output, "v:0"), video.len());
    assert_eq!(probe_count(&input, "v:0"), video.len());
    assert_eq!(probe_count(&output, "a:0"), probe_count(&input, "a:0"));
    // And our demuxer reads our own output back to the same frames.
    let again = demux(&ts2);
    for t in 0..2 {
        let a: Vec<_> = d.media[t].iter().map(|f| (&f.payload, f.flags)).collect();
        let b: Vec<_> = again.media[t]
            .iter()
            .map(|f| (&f.payload, f.flags))
            .collect();
        assert_eq!(a, b, "track {t} survives a second round");
    }
}

#[test]
fn h264_aac_from_ffmpeg_and_back() {
    video_round_trip(
        "h264_aac_from_ffmpeg_and_back",
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25",
        ],
        RILL_CODEC_H264,
    );
}

#[test]
fn hevc_aac_from_ffmpeg_and_back() {
    video_round_trip(
        "hevc_aac_from_ffmpeg_and_back",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-x265-params",
            "log-level=none:bframes=2:keyint=25",
        ],
        RILL_CODEC_H265,
    );
}

fn audio_round_trip(
    test: &str,
    encoder: &[&str],
    codec: u32,
    frames: std::ops::RangeInclusive<usize>,
) -> Demuxed {
    let dir = TempDir::new(test);
    let input = dir.path("in.ts");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "2",
    ];
    args.extend_from_slice(encoder);
    args.extend_from_slice(&["-f", "mpegts", input.to_str().unwrap()]);
    ffmpeg(&args);
    let d = demux(&std::fs::read(&input).unwrap());
    assert_eq!(d.tracks.len(), 1);
    assert_eq!(d.tracks[0].codec, codec);
    assert!(
        frames.contains(&d.media[0].len()),
        "frames: {}",
        d.media[0].len()
    );
    check_times(&d.media[0], true);
    let output = dir.path("out.ts");
    remux(&d, &output);
    assert_eq!(decode_errors(&output), "");
    assert_eq!(probe_count(&output, "a:0"), probe_count(&input, "a:0"));
    d
}

#[test]
fn opus_from_ffmpeg_and_back() {
    if !have_tools("opus_from_ffmpeg_and_back") {
        return;
    }
    // 2 s of 20 ms packets.
    let d = audio_round_trip(
        "opus",
        &["-c:a", "libopus", "-ac", "2"],
        RILL_CODEC_OPUS,
        99..=102,
    );
    let head = &d.configs[0]
        .as_ref()
        .expect("OpusHead from the descriptor")
        .payload;
    assert!(head.starts_with(b"OpusHead"));
    assert_eq!(head[9], 2, "stereo");
    let steps: Vec<i64> = d.media[0].windows(2).map(|w| w[1].dts - w[0].dts).collect();
    assert!(
        steps.iter().all(|&s| (19_990..=20_010).contains(&s)),
        "{steps:?}"
    );
}

#[test]
fn mp3_from_ffmpeg_and_back() {
    if !have_tools("mp3_from_ffmpeg_and_back") {
        return;
    }
    // 2 s of 1152-sample frames at 48 kHz: 83 or 84.
    let d = audio_round_trip(
        "mp3",
        &["-c:a", "libmp3lame", "-b:a", "128k"],
        RILL_CODEC_MP3,
        82..=86,
    );
    assert!(d.configs[0].is_none());
    let steps: Vec<i64> = d.media[0].windows(2).map(|w| w[1].dts - w[0].dts).collect();
    assert!(
        steps.iter().all(|&s| (23_990..=24_010).contains(&s)),
        "{steps:?}"
    );
}
