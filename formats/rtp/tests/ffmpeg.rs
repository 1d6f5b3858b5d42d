//! Interop with ffmpeg over real UDP sockets: ffmpeg sends H.264 and AAC as
//! RTP (`-f rtp`, with its SDP file and RTCP sender reports), this crate
//! reads them back into frames; and this crate's packetizer sends H.264
//! that ffmpeg reads through the SDP written here.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rill_abi::{RILL_CODEC_AAC, RILL_CODEC_H264, RILL_FRAME_KEY};
use rill_rtp::clock::TrackClock;
use rill_rtp::{
    parse_rtcp, AvSync, Depacketizer, Frame, Limits, Packetizer, RtcpPacket, RtpPacket, Sdp,
    SdpTrack, Stamp, DEFAULT_MAX_PAYLOAD,
};
use rill_testsupport::{require_tool, runs};
use rill_ts::nal::{annexb_nals, build_avc_record, build_hevc_record, NalKind, VideoCodec};

fn have_ffmpeg(test: &str) -> bool {
    require_tool(
        test,
        "ffmpeg",
        (!runs("ffmpeg", &["-version"]) || !runs("ffprobe", &["-version"]))
            .then(|| "ffmpeg/ffprobe not on PATH".to_string()),
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rill-rtp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    c.stdout(Stdio::null());
    c
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Collects what arrives on `s` until `done` is set and it goes quiet.
fn collect(s: UdpSocket, done: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Vec<u8>>> {
    thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match s.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(_) if done.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        got
    })
}

fn depacketize(sdp: &SdpTrack, datagrams: &[Vec<u8>]) -> (Vec<Frame>, Depacketizer) {
    let mut d = Depacketizer::new(&sdp.params(0), Limits::default()).unwrap();
    let mut frames = Vec::new();
    for g in datagrams {
        let p = RtpPacket::parse(g).expect("ffmpeg's RTP parses");
        assert_eq!(p.header.payload_type, sdp.payload_type);
        d.push(&p, &mut frames).expect("ffmpeg's payloads read");
    }
    d.flush(&mut frames);
    (frames, d)
}

/// The same datagrams with 2% lost and some pairs swapped, through a
/// reorder buffer: frames keep coming, each loss is found, and what
/// follows a loss starts at a key frame.
fn lossy(sdp: &SdpTrack, datagrams: &[Vec<u8>]) {
    let mut sent: Vec<Vec<u8>> = datagrams
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 50 != 25)
        .map(|(_, d)| d.clone())
        .collect();
    let dropped = (datagrams.len() - sent.len()) as u64;
    for i in (3..sent.len() - 1).step_by(7) {
        sent.swap(i, i + 1);
    }
    let mut reorder = rill_rtp::Reorder::new(64, 100_000);
    let mut d = Depacketizer::new(&sdp.params(0), Limits::default()).unwrap();
    let (mut ready, mut frames) = (Vec::new(), Vec::new());
    for (i, g) in sent.into_iter().enumerate() {
        let seq = RtpPacket::parse(&g).unwrap().header.seq;
        reorder.push(i as u64 * 1000, seq, g, &mut ready);
        for o in ready.drain(..) {
            if let rill_rtp::Out::Packet(_, g) = o {
                let _ = d.push(&RtpPacket::parse(&g).unwrap(), &mut frames);
            }
        }
    }
    reorder.flush(&mut ready);
    for o in ready.drain(..) {
        if let rill_rtp::Out::Packet(_, g) = o {
            let _ = d.push(&RtpPacket::parse(&g).unwrap(), &mut frames);
        }
    }
    d.flush(&mut frames);
    assert_eq!(reorder.stats.lost, dropped);
    assert!(reorder.stats.reordered > 0);
    assert_eq!(d.stats.lost, dropped);
    let pics: Vec<&Frame> = frames.iter().filter(|f| !f.is_config()).collect();
    assert!(!pics.is_empty());
    assert!(pics[0].is_key());
    for f in &pics {
        if f.flags & rill_abi::RILL_FRAME_DISCONTINUITY != 0 {
            assert!(f.is_key(), "after a loss, a key frame first");
        }
    }
}

fn sender_report(datagrams: &[Vec<u8>]) -> (u64, u32) {
    let mut v = Vec::new();
    for g in datagrams {
        parse_rtcp(g, &mut v).expect("ffmpeg's RTCP parses");
        for p in &v {
            if let RtcpPacket::SenderReport(sr) = p {
                return (sr.ntp, sr.rtp_time);
            }
        }
    }
    panic!("no sender report from ffmpeg");
}

#[test]
fn ffmpeg_sends_h264_and_aac() {
    if !have_ffmpeg("ffmpeg_sends_h264_and_aac") {
        return;
    }
    let dir = scratch("in");
    let sdp_path = dir.join("in.sdp");
    let socks: Vec<UdpSocket> = (0..4).map(|_| socket()).collect();
    let ports: Vec<u16> = socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = socks
        .into_iter()
        .map(|s| collect(s, done.clone()))
        .collect();
    let status = ffmpeg()
        .args([
            "-re",
            "-t",
            "3",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-re",
            "-t",
            "3",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
        ])
        .args([
            "-map",
            "0:v",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
        ])
        .args(["-g", "25", "-pix_fmt", "yuv420p", "-f", "rtp"])
        .arg(format!(
            "rtp://127.0.0.1:{}?rtcpport={}",
            ports[0], ports[1]
        ))
        .args(["-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-f", "rtp"])
        .arg(format!(
            "rtp://127.0.0.1:{}?rtcpport={}",
            ports[2], ports[3]
        ))
        .arg("-sdp_file")
        .arg(&sdp_path)
        .status()
        .unwrap();
    assert!(status.success());
    done.store(true, Ordering::SeqCst);
    let got: Vec<Vec<Vec<u8>>> = readers.into_iter().map(|r| r.join().unwrap()).collect();

    let sdp = Sdp::parse(&std::fs::read(&sdp_path).unwrap()).unwrap();
    assert_eq!(sdp.tracks.len(), 2);
    let (v, a) = (&sdp.tracks[0], &sdp.tracks[1]);
    assert_eq!((v.codec, v.clock_rate), (RILL_CODEC_H264, 90_000));
    assert_eq!((a.codec, a.clock_rate), (RILL_CODEC_AAC, 44_100));
    assert!(a.config.is_some(), "AAC config from the SDP");
    assert_eq!(v.port, ports[0]);

    // Video: 75 frames, a key frame every 25, 40 ms apart.
    let (vf, vd) = depacketize(v, &got[0]);
    assert!(vf[0].is_config(), "config first");
    let pics: Vec<&Frame> = vf.iter().filter(|f| !f.is_config()).collect();
    assert!(
        (73..=76).contains(&pics.len()),
        "{} video frames",
        pics.len()
    );
    assert!(pics[0].is_key());
    let keys: Vec<usize> = pics
        .iter()
        .enumerate()
        .filter(|(_, f)| f.flags & RILL_FRAME_KEY != 0)
        .map(|(i, _)| i)
        .collect();
    for k in [0, 25, 50] {
        assert!(keys.contains(&k), "key frames at {keys:?}");
    }
    for w in pics.windows(2) {
        assert!((w[1].pts - w[0].pts - 40_000).abs() <= 1, "{:?}", w[1].pts);
    }
    assert_eq!(vd.stats.lost, 0);
    lossy(v, &got[0]);

    // Audio: 3 s of 1024-sample frames, 23.2 ms apart.
    let (af, _) = depacketize(a, &got[2]);
    assert!(af[0].is_config());
    assert_eq!(Some(&af[0].payload), a.config.as_ref());
    let n = af.len() - 1;
    assert!((124..=132).contains(&n), "{n} AAC frames");
    for w in af[1..].windows(2) {
        assert!((w[1].pts - w[0].pts - 23_220).abs() <= 1);
    }

    // Sender reports put both on one wall clock: they start together.
    let mut vc = TrackClock::new(90_000);
    vc.ticks(RtpPacket::parse(&got[0][0]).unwrap().header.timestamp);
    let mut ac = TrackClock::new(44_100);
    ac.ticks(RtpPacket::parse(&got[2][0]).unwrap().header.timestamp);
    let mut sync = AvSync::default();
    let (ntp, rtp) = sender_report(&got[1]);
    sync.sender_report(0, &vc, ntp, rtp);
    let (ntp, rtp) = sender_report(&got[3]);
    sync.sender_report(1, &ac, ntp, rtp);
    let off = sync.offset_us(1).unwrap();
    assert!(off.abs() < 100_000, "audio {off} µs from video");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The access units of an H.264 or H.265 Annex-B stream (split at AUDs),
/// length-prefixed and flagged key, and the decoder configuration record.
fn access_units(codec: VideoCodec, annexb: &[u8]) -> (Bytes, Vec<(bool, Bytes)>) {
    let (mut vps, mut sps, mut pps) = (None, None, None);
    let mut aus = Vec::new();
    let mut cur = BytesMut::new();
    let mut key = false;
    for nal in annexb_nals(annexb) {
        match codec.kind(nal) {
            NalKind::Aud => {
                if !cur.is_empty() {
                    aus.push((key, cur.split().freeze()));
                }
                key = false;
                continue;
            }
            NalKind::Vps => vps = vps.or(Some(nal.to_vec())),
            NalKind::Sps => sps = sps.or(Some(nal.to_vec())),
            NalKind::Pps => pps = pps.or(Some(nal.to_vec())),
            NalKind::Idr => key = true,
            _ => {}
        }
        cur.put_u32(nal.len() as u32);
        cur.put_slice(nal);
    }
    if !cur.is_empty() {
        aus.push((key, cur.freeze()));
    }
    let (sps, pps) = (sps.unwrap(), pps.unwrap());
    let record = match codec {
        VideoCodec::H264 => build_avc_record(&[&sps], &[&pps]).unwrap(),
        VideoCodec::H265 => build_hevc_record(&[&vps.unwrap()], &[&sps], &[&pps]).unwrap(),
    };
    (record, aus)
}

fn video_frames(codec: u32, aus: Vec<(bool, Bytes)>) -> Vec<Frame> {
    aus.into_iter()
        .enumerate()
        .map(|(i, (key, au))| Frame {
            track: 0,
            codec,
            flags: if key { RILL_FRAME_KEY } else { 0 },
            pts: i as i64 * 40_000,
            dts: i as i64 * 40_000,
            payload: au,
        })
        .collect()
}

fn count_frames(file: &Path, stream: &str) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Sends `frames` (`interval` apart) with this crate's packetizer to an
/// ffmpeg reading the SDP written here for `config`, which copies them to
/// `out` in `format`; returns the frames ffprobe counts there.
fn send_to_ffmpeg(
    dir: &Path,
    codec: u32,
    config: &[u8],
    frames: &[Frame],
    interval: Duration,
    format: &str,
    out: &Path,
) -> usize {
    // A free port for ffmpeg (and the one after it, for RTCP).
    let port = loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p.is_multiple_of(2) && p < 65_000 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let mut track = SdpTrack::from_config(codec, Some(config), 0).unwrap();
    track.port = port;
    let pt = track.payload_type;
    let sdp = Sdp {
        name: "rill".into(),
        control: None,
        tracks: vec![track],
    }
    .write("127.0.0.1")
    .replace("c=IN IP4 0.0.0.0", "c=IN IP4 127.0.0.1");
    let sdp_path = dir.join("out.sdp");
    std::fs::write(&sdp_path, &sdp).unwrap();
    let mut child = ffmpeg()
        .args(["-protocol_whitelist", "file,udp,rtp", "-i"])
        .arg(&sdp_path)
        .args(["-c", "copy", "-f", format])
        .arg(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut p = Packetizer::new(codec, Some(config), DEFAULT_MAX_PAYLOAD).unwrap();
    let mut stamp = Stamp::new(0x5EED, pt, 40_000, 123_456);
    for f in frames {
        let pk = p.packetize(f).unwrap();
        for j in 0..pk.len() {
            let mut d = Vec::new();
            stamp.write(&pk, j, &mut d);
            sock.send_to(&d, ("127.0.0.1", port)).unwrap();
        }
        thread::sleep(interval);
    }
    thread::sleep(Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    count_frames(out, if format == "adts" { "a:0" } else { "v:0" })
}

#[test]
fn ffmpeg_reads_what_rill_sends() {
    if !have_ffmpeg("ffmpeg_reads_what_rill_sends") {
        return;
    }
    let dir = scratch("out");
    let src = dir.join("src.h264");
    let status = ffmpeg()
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
            "-g",
            "25",
        ])
        .args(["-x264-params", "aud=1", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let (record, aus) = access_units(VideoCodec::H264, &std::fs::read(&src).unwrap());
    assert_eq!(aus.len(), 50);
    let frames = video_frames(RILL_CODEC_H264, aus);
    let got = dir.join("got.h264");
    let n = send_to_ffmpeg(
        &dir,
        RILL_CODEC_H264,
        &record,
        &frames,
        Duration::from_millis(10),
        "h264",
        &got,
    );
    assert!((48..=50).contains(&n), "ffmpeg read {n} of 50 frames");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_reads_rill_aac() {
    if !have_ffmpeg("ffmpeg_reads_rill_aac") {
        return;
    }
    let dir = scratch("out-aac");
    let src = dir.join("src.aac");
    let status = ffmpeg()
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
        ])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "adts"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let adts = std::fs::read(&src).unwrap();
    let mut frames = Vec::new();
    let mut config = None;
    let mut rest = &adts[..];
    while let Ok(h) = rill_ts::audio::parse_adts(rest) {
        config.get_or_insert(h.config.to_asc());
        let i = frames.len() as i64;
        frames.push(Frame {
            track: 0,
            codec: RILL_CODEC_AAC,
            flags: 0,
            pts: i * 1024 * 1_000_000 / 48_000,
            dts: i * 1024 * 1_000_000 / 48_000,
            payload: Bytes::copy_from_slice(&rest[h.header_len..h.frame_len]),
        });
        rest = &rest[h.frame_len..];
    }
    let total = frames.len();
    assert!(total > 90, "{total} ADTS frames");
    let got = dir.join("got.aac");
    let n = send_to_ffmpeg(
        &dir,
        RILL_CODEC_AAC,
        &config.unwrap(),
        &frames,
        Duration::from_millis(5),
        "adts",
        &got,
    );
    assert!(
        n + 2 >= total && n <= total,
        "ffmpeg read {n} of {total} AAC frames"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_sends_h264_with_b_frames() {
    if !have_ffmpeg("ffmpeg_sends_h264_with_b_frames") {
        return;
    }
    let dir = scratch("bframes");
    let sdp_path = dir.join("b.sdp");
    let sock = socket();
    let port = sock.local_addr().unwrap().port();
    let done = Arc::new(AtomicBool::new(false));
    let reader = collect(sock, done.clone());
    let status = ffmpeg()
        .args([
            "-re",
            "-t",
            "2",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "25",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{port}"))
        .arg("-sdp_file")
        .arg(&sdp_path)
        .status()
        .unwrap();
    assert!(status.success());
    done.store(true, Ordering::SeqCst);
    let got = reader.join().unwrap();
    let sdp = Sdp::parse(&std::fs::read(&sdp_path).unwrap()).unwrap();
    let (frames, _) = depacketize(&sdp.tracks[0], &got);
    let pics: Vec<&Frame> = frames.iter().filter(|f| !f.is_config()).collect();
    assert_eq!(pics.len(), 50);
    // Decode order differs from presentation order ...
    assert!(pics.windows(2).any(|w| w[1].pts < w[0].pts), "no B-frames");
    // ... yet DTS never goes back and never passes PTS.
    for w in pics.windows(2) {
        assert!(w[1].dts >= w[0].dts, "{} after {}", w[1].dts, w[0].dts);
    }
    assert!(pics.iter().all(|f| f.dts <= f.pts));
    let mut pts: Vec<i64> = pics.iter().map(|f| f.pts).collect();
    pts.sort();
    for (i, p) in pts.iter().enumerate() {
        assert!((p - i as i64 * 40_000).abs() <= 1, "{p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_sends_hevc_and_opus() {
    if !have_ffmpeg("ffmpeg_sends_hevc_and_opus") {
        return;
    }
    let dir = scratch("hevc");
    let sdp_path = dir.join("h.sdp");
    let (vs, as_) = (socket(), socket());
    let (vp, ap) = (
        vs.local_addr().unwrap().port(),
        as_.local_addr().unwrap().port(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let readers = [collect(vs, done.clone()), collect(as_, done.clone())];
    let status = ffmpeg()
        .args([
            "-re",
            "-t",
            "2",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-re",
            "-t",
            "2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-map",
            "0:v",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ])
        .args([
            "-x265-params",
            "log-level=error:bframes=0",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{vp}"))
        .args(["-map", "1:a", "-c:a", "libopus", "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{ap}"))
        .arg("-sdp_file")
        .arg(&sdp_path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    done.store(true, Ordering::SeqCst);
    let [v, a] = readers.map(|r| r.join().unwrap());
    let sdp = Sdp::parse(&std::fs::read(&sdp_path).unwrap()).unwrap();
    assert_eq!(sdp.tracks[0].codec, rill_abi::RILL_CODEC_H265);
    assert_eq!(sdp.tracks[1].codec, rill_abi::RILL_CODEC_OPUS);

    let (vf, vd) = depacketize(&sdp.tracks[0], &v);
    assert!(vf[0].is_config(), "hvcC from in-band VPS/SPS/PPS");
    rill_ts::nal::parse_hevc_record(&vf[0].payload).unwrap();
    let pics: Vec<&Frame> = vf.iter().filter(|f| !f.is_config()).collect();
    assert_eq!(pics.len(), 50);
    assert!(pics[0].is_key() && pics[25].is_key());
    assert_eq!(vd.stats.lost, 0);

    // Opus: 20 ms packets for 2 s.
    let (af, _) = depacketize(&sdp.tracks[1], &a);
    assert!(af[0].is_config());
    let n = af.len() - 1;
    assert!((98..=102).contains(&n), "{n} Opus frames");
    for w in af[1..].windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 20_000);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_reads_rill_hevc() {
    if !have_ffmpeg("ffmpeg_reads_rill_hevc") {
        return;
    }
    let dir = scratch("out-hevc");
    let src = dir.join("src.hevc");
    let status = ffmpeg()
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480:rate=25",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx265", "-preset", "ultrafast", "-g", "25"])
        .args(["-x265-params", "log-level=error:aud=1:bframes=0"])
        .args(["-pix_fmt", "yuv420p", "-f", "hevc"])
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (record, aus) = access_units(VideoCodec::H265, &std::fs::read(&src).unwrap());
    assert_eq!(aus.len(), 50);
    assert!(aus[0].0 && aus[25].0);
    // Key frames of 640x480 are larger than a packet: FU; the parameter
    // sets go in one AP.
    assert!(aus[0].1.len() > 2 * DEFAULT_MAX_PAYLOAD);
    let frames = video_frames(rill_abi::RILL_CODEC_H265, aus);
    let got = dir.join("got.hevc");
    let n = send_to_ffmpeg(
        &dir,
        rill_abi::RILL_CODEC_H265,
        &record,
        &frames,
        Duration::from_millis(10),
        "hevc",
        &got,
    );
    assert!((48..=50).contains(&n), "ffmpeg read {n} of 50 HEVC frames");
    let _ = std::fs::remove_dir_all(&dir);
}
