//! Real encoders in, real decoders out: ffmpeg encodes a test pattern and
//! a tone to FLV, rill-flv turns the tags into frames, the muxer cuts them
//! like an LL-HLS packager (a part every 200 ms of video, a new one at each
//! key frame), and ffprobe/ffmpeg read the init segment + fragments back:
//! codecs, picture size, every frame decoded, no decoder errors; the
//! fragments from the second key frame on play on their own (a segment a
//! player joins at).
//!
//! H.264 + AAC use Debian's ffmpeg; HEVC, AV1 and VP9 with Opus need
//! Enhanced RTMP in FLV, so the static modern ffmpeg
//! (`target/tools/ffmpeg9`, from scripts/install-deps). A missing tool
//! skips locally and fails under `RILL_REQUIRE_TOOLS=1`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::Bytes;
use rill_abi::RILL_CODEC_OPUS;
use rill_flv::{amf0, tag, Frame};
use rill_mp4::{Fragment, Muxer, Sample, TrackInfo};
use rill_testsupport::{require_tool, runs};

const FFMPEG: &str = "ffmpeg";
const FFPROBE: &str = "ffprobe";

fn ffmpeg9() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/ffmpeg9")
}

fn tool_missing(path: &Path) -> Option<String> {
    let p = path.to_string_lossy();
    (!runs(&p, &["-version"])).then(|| format!("{p} -version does not run"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-mp4-{}-{name}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes a scratch directory, unless `RILL_KEEP_TEST_FILES` is set (to
/// look at the files).
fn cleanup(dir: &Path) {
    if std::env::var_os("RILL_KEEP_TEST_FILES").is_none() {
        fs::remove_dir_all(dir).unwrap();
    } else {
        eprintln!("kept {}", dir.display());
    }
}

/// Encodes 2 s of 320x240 at 25 fps (a key frame each second) and a tone
/// to FLV with `ffmpeg`, using the given encoder arguments.
fn encode_flv(ffmpeg: &Path, dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = dir.join("in.flv");
    let status = Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440", "-t", "2"])
        .args(["-pix_fmt", "yuv420p", "-g", "25"])
        .args(args)
        .args(["-f", "flv"])
        .arg(&out)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{} {args:?} failed", ffmpeg.display());
    fs::read(out).unwrap()
}

/// The FLV file's tags as frames (rill-flv's demuxer).
fn flv_frames(flv: &[u8]) -> Vec<Frame> {
    assert_eq!(&flv[..3], b"FLV");
    let mut pos = u32::from_be_bytes([flv[5], flv[6], flv[7], flv[8]]) as usize + 4;
    let mut frames = Vec::new();
    while pos + 11 <= flv.len() {
        let h = &flv[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = Bytes::copy_from_slice(&flv[pos + 11..pos + 11 + size]);
        if let Some(f) = tag::demux(h[0], &body, ts, 32, amf0::DEFAULT_MAX_VALUES).unwrap() {
            if rill_abi::rill_codec_kind(f.codec) != rill_abi::RILL_TRACK_DATA {
                frames.push(f);
            }
        }
        pos += 11 + size + 4;
    }
    frames
}

/// What the muxer made of a stream.
struct Muxed {
    tracks: Vec<TrackInfo>,
    codecs: String,
    init: Bytes,
    fragments: Vec<Fragment>,
    /// Frames pushed per track.
    counts: Vec<usize>,
}

/// Tracks from the config frames (video first), then every frame pushed
/// and cut like an LL-HLS packager: at each video key frame, and when
/// 200 ms of video have gathered since the last cut.
fn mux(frames: &[Frame]) -> Muxed {
    let mut tracks: Vec<TrackInfo> = Vec::new();
    for f in frames.iter().filter(|f| f.is_config()) {
        if !tracks.iter().any(|t| t.codec == f.codec) {
            tracks.push(TrackInfo::new(f.codec, f.payload.clone()).unwrap());
        }
    }
    // Opus may come without an OpusHead.
    if frames.iter().any(|f| f.codec == RILL_CODEC_OPUS)
        && !tracks.iter().any(|t| t.codec == RILL_CODEC_OPUS)
    {
        tracks.push(TrackInfo::new(RILL_CODEC_OPUS, Bytes::new()).unwrap());
    }
    tracks.sort_by_key(|t| !t.is_video());
    // VP9 has its size only in key frames.
    for t in tracks.iter_mut().filter(|t| t.is_video()) {
        let key = frames
            .iter()
            .find(|f| f.codec == t.codec && f.is_key() && !f.is_config())
            .unwrap();
        assert!(
            t.learn_from_keyframe(&key.payload),
            "{}: no size",
            t.codec_string
        );
    }
    let mut muxer = Muxer::new(tracks.clone()).unwrap();
    let init = muxer.init_segment().unwrap();
    let mut fragments = Vec::new();
    let mut counts = vec![0; tracks.len()];
    let mut part_start = 0;
    for f in frames.iter().filter(|f| !f.is_config()) {
        let track = tracks.iter().position(|t| t.codec == f.codec).unwrap();
        muxer
            .push(
                track,
                Sample::from_frame(f.flags, f.pts, f.dts, f.payload.clone()),
            )
            .unwrap();
        counts[track] += 1;
        if tracks[track].is_video() && (f.is_key() || f.dts - part_start >= 200_000) {
            fragments.extend(muxer.fragment_before(f.dts));
            part_start = f.dts;
        }
    }
    fragments.extend(muxer.flush(None));
    Muxed {
        codecs: muxer.codecs(),
        tracks,
        init,
        fragments,
        counts,
    }
}

fn write(path: &Path, init: &Bytes, fragments: &[Fragment]) {
    let mut out = init.to_vec();
    for f in fragments {
        for c in f.chunks() {
            out.extend_from_slice(c);
        }
    }
    fs::write(path, out).unwrap();
}

/// ffprobe's streams: `field → value` per stream, frames counted.
fn probe(file: &Path) -> Vec<HashMap<String, String>> {
    let out = Command::new(FFPROBE)
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,nb_read_frames,width,height,sample_rate,channels")
        .args(["-of", "flat"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut streams: Vec<HashMap<String, String>> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // streams.stream.0.codec_name="h264"
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let parts: Vec<&str> = key.split('.').collect();
        let (Some(i), Some(field)) = (
            parts.get(2).and_then(|i| i.parse::<usize>().ok()),
            parts.get(3),
        ) else {
            continue;
        };
        if streams.len() <= i {
            streams.resize(i + 1, HashMap::new());
        }
        streams[i].insert(field.to_string(), value.trim_matches('"').to_string());
    }
    streams
}

/// Decoder errors of a full decode (empty when clean).
fn decode_errors(ffmpeg: &Path, file: &Path) -> String {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Muxes the FLV, writes `out.mp4` (all) and `joined.mp4` (from the
/// second independent fragment), and checks them with the decoders.
fn check(name: &str, dir: &Path, flv: &[u8], codec_names: [&str; 2]) -> Muxed {
    let m = mux(&flv_frames(flv));
    assert_eq!(m.tracks.len(), 2, "{name}");
    let out = dir.join("out.mp4");
    write(&out, &m.init, &m.fragments);

    let streams = probe(&out);
    assert_eq!(streams.len(), 2, "{name}: {streams:?}");
    let (v, a) = (&streams[0], &streams[1]);
    assert_eq!(v["codec_name"], codec_names[0], "{name}");
    assert_eq!(a["codec_name"], codec_names[1], "{name}");
    assert_eq!(
        (&v["width"][..], &v["height"][..]),
        ("320", "240"),
        "{name}"
    );
    assert_eq!(
        (m.tracks[0].width, m.tracks[0].height),
        (320, 240),
        "{name}"
    );
    let video_frames: usize = v["nb_read_frames"].parse().unwrap();
    assert!(
        (49..=51).contains(&video_frames),
        "{name}: {video_frames} video frames"
    );
    assert_eq!(
        video_frames, m.counts[0],
        "{name}: every video frame pushed decodes"
    );
    let audio_frames: usize = a["nb_read_frames"].parse().unwrap();
    assert!(
        audio_frames.abs_diff(m.counts[1]) <= 1 && audio_frames > 40,
        "{name}: {audio_frames} audio frames decoded of {} pushed",
        m.counts[1]
    );
    assert_eq!(
        a["sample_rate"],
        m.tracks[1].sample_rate.to_string(),
        "{name}"
    );
    let errors = decode_errors(Path::new(FFMPEG), &out);
    assert!(errors.is_empty(), "{name}: decoder errors:\n{errors}");

    // Parts: ~200 ms of video each (but the last, flushed with the audio
    // the encoder ran on with), sequence numbers from 1, key frames
    // starting independent ones.
    assert!(
        m.fragments.len() >= 8,
        "{name}: {} fragments",
        m.fragments.len()
    );
    for (i, f) in m.fragments.iter().enumerate() {
        assert_eq!(f.sequence as usize, i + 1);
        let last = i + 1 == m.fragments.len();
        assert!(
            last || f.end() - f.start() <= 300_000,
            "{name}: part {i} too long: {:?}",
            f.tracks
        );
    }
    let independent: Vec<usize> = (0..m.fragments.len())
        .filter(|&i| m.fragments[i].independent())
        .collect();
    assert!(independent.len() >= 2, "{name}: {independent:?}");

    // Joining at the second key frame, as a player joining the live edge.
    let joined = dir.join("joined.mp4");
    write(&joined, &m.init, &m.fragments[independent[1]..]);
    let errors = decode_errors(Path::new(FFMPEG), &joined);
    assert!(
        errors.is_empty(),
        "{name}: joined: decoder errors:\n{errors}"
    );
    let streams = probe(&joined);
    let frames: usize = streams[0]["nb_read_frames"].parse().unwrap();
    assert!(
        (24..=26).contains(&frames),
        "{name}: joined: {frames} video frames"
    );
    m
}

#[test]
fn h264_aac_from_debian_ffmpeg() {
    for tool in [FFMPEG, FFPROBE] {
        if !require_tool(
            "h264_aac_from_debian_ffmpeg",
            tool,
            tool_missing(Path::new(tool)),
        ) {
            return;
        }
    }
    let dir = scratch("h264");
    let flv = encode_flv(
        Path::new(FFMPEG),
        &dir,
        &[
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-level",
            "3.1",
            "-c:a",
            "aac",
        ],
    );
    let m = check("h264+aac", &dir, &flv, ["h264", "aac"]);
    assert_eq!(m.codecs, "avc1.64001f,mp4a.40.2");
    // x264 uses B-frames: composition offsets were written and survived.
    cleanup(&dir);
}

/// HEVC, AV1 and VP9, each with Opus, from the modern ffmpeg.
#[test]
fn hevc_av1_vp9_with_opus_from_ffmpeg9() {
    let modern = ffmpeg9();
    for (tool, path) in [
        ("ffmpeg9", modern.as_path()),
        (FFPROBE, Path::new(FFPROBE)),
        (FFMPEG, Path::new(FFMPEG)),
    ] {
        if !require_tool(
            "hevc_av1_vp9_with_opus_from_ffmpeg9",
            tool,
            tool_missing(path),
        ) {
            return;
        }
    }
    let cases: [(&str, &[&str], &str, &str); 3] = [
        (
            "hevc",
            &["-c:v", "libx265", "-x265-params", "log-level=error"],
            "hevc",
            "hvc1.1.6.L",
        ),
        (
            "av1",
            &["-c:v", "libsvtav1", "-svtav1-params", "verbosity=0"],
            "av1",
            "av01.0.",
        ),
        (
            "vp9",
            &["-c:v", "libvpx-vp9", "-deadline", "realtime"],
            "vp9",
            "vp09.00.",
        ),
    ];
    for (name, args, decoder_name, codec_prefix) in cases {
        let dir = scratch(name);
        let mut args = args.to_vec();
        args.extend(["-c:a", "libopus"]);
        let flv = encode_flv(&modern, &dir, &args);
        let m = check(name, &dir, &flv, [decoder_name, "opus"]);
        assert!(m.codecs.starts_with(codec_prefix), "{name}: {}", m.codecs);
        assert!(m.codecs.ends_with(",opus"), "{name}: {}", m.codecs);
        // The modern decoder agrees.
        let errors = decode_errors(&modern, &dir.join("out.mp4"));
        assert!(
            errors.is_empty(),
            "{name}: ffmpeg9: decoder errors:\n{errors}"
        );
        cleanup(&dir);
    }
}
