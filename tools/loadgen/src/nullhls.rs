//! The null HLS server: the floor of serving Low-Latency HLS (and classic
//! HLS over MPEG-TS) to N players, for the part availability latency and
//! the CPU of `rill-hls` (and `rill-hls-ts`).
//! The stream is muxed once by the crate Rill's HLS plugin uses
//! (`rill-hls`: the same parts, the same cuts), each playlist is rendered
//! once per change, and one thread answers every request with one
//! vectored write of those bytes. Requests that must wait (a blocking
//! reload, a hinted part) park on a watch channel the muxer bumps, media
//! first (as Rill's plugin wakes them: a part's release answers the
//! hinted parts before the blocked playlist reloads). No
//! admission, no per-request state beyond the connection's task: what is
//! left is the HTTP exchange and the kernel's sends.
//!
//! URLs follow Rill's HLS plugin: `/{app}/{stream}.m3u8` (multivariant),
//! `/{app}/{stream}/llhls.m3u8` (`_HLS_msn`/`_HLS_part`), `init{n}.m4s`,
//! `p{msn}.{i}.m4s`, `s{msn}.m4s`; `?format=ts` on the multivariant
//! playlist for `ts.m3u8` and its `t{msn}.ts`. Every path serves the one
//! stream.

use std::io::IoSlice;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rill_hls::{BlockingRequest, LlHls, Object, Readiness, TsHls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::flvsrc::{FlvFile, Looper};
use crate::sei;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
/// The longest request head read.
const MAX_HEAD: usize = 16 << 10;

/// What the muxer made, and the playlists rendered from it.
struct Muxed {
    ll: LlHls<Bytes>,
    ts: TsHls<Bytes>,
    /// The media playlists as of the latest change: LL-HLS, classic.
    media: Bytes,
    ts_media: Bytes,
}

/// What a request gets.
enum Answer {
    Ok(&'static str, Vec<Bytes>),
    Fail(u16, &'static str),
    /// Not yet: park until the muxer changes something.
    Wait,
}

pub fn run(listen: &str, file: Arc<FlvFile>) -> Result<(), String> {
    let cfg = rill_hls::Config {
        first_msn: sei::wall_us() / 1_000_000,
        ..Default::default()
    };
    let shared = Arc::new(Mutex::new(Muxed {
        ll: LlHls::new(cfg),
        ts: TsHls::new(cfg),
        media: Bytes::new(),
        ts_media: Bytes::new(),
    }));
    let (media_tx, media_rx) = watch::channel(0u64);
    let (playlist_tx, playlist_rx) = watch::channel(0u64);
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("mux".into())
        .spawn(move || mux(file, sh, [media_tx, playlist_tx]))
        .map_err(|e| e.to_string())?;
    eprintln!("null LL-HLS server on {listen}");
    crate::null::accept(listen, move |s| {
        serve(s, shared.clone(), [media_rx.clone(), playlist_rx.clone()])
    })
}

fn lock(m: &Mutex<Muxed>) -> MutexGuard<'_, Muxed> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Plays the file in real time into the muxer; every new part renders the
/// playlist once and wakes the parked requests.
fn mux(file: Arc<FlvFile>, shared: Arc<Mutex<Muxed>>, tx: [watch::Sender<u64>; 2]) {
    let mut mk = |b: Bytes| b;
    {
        let mut g = lock(&shared);
        for (kind, body) in [(9, &file.video_config), (8, &file.audio_config)] {
            if let Some(f) = body.as_ref().and_then(|b| frame(kind, 0, b)) {
                g.ll.push(&f, sei::wall_us() as i64, &mut mk);
                g.ts.push(&f, sei::wall_us() as i64, &mut mk);
            }
        }
    }
    let mut looper = Looper::new(file);
    let start = Instant::now();
    loop {
        let due = start + Duration::from_millis(looper.next_ts());
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let t = looper.next();
        let Some(f) = frame(t.kind, t.ts, &t.body) else {
            continue;
        };
        let mut g = lock(&shared);
        let wall = sei::wall_us() as i64;
        let ll = g.ll.push(&f, wall, &mut mk).any();
        let ts = g.ts.push(&f, wall, &mut mk).any();
        if ll {
            g.media = Bytes::from(g.ll.playlist(""));
        }
        if ts {
            g.ts_media = Bytes::from(g.ts.playlist(""));
        }
        if ll || ts {
            drop(g);
            for t in &tx {
                t.send_modify(|v| *v += 1);
            }
        }
    }
}

/// An FLV tag body as the muxer's frame: video track 0, audio track 1.
fn frame(kind: u8, ts_ms: u64, body: &Bytes) -> Option<rill_hls::Frame> {
    let ts = ts_ms as u32;
    let f = match kind {
        9 => rill_flv::tag::demux_video(body, ts),
        _ => rill_flv::tag::demux_audio(body, ts),
    }
    .ok()??;
    Some(rill_hls::Frame {
        track: (kind == 8) as u32,
        codec: f.codec,
        flags: f.flags,
        pts: f.pts,
        dts: f.dts,
        payload: f.payload,
    })
}

/// One connection: requests in order, kept alive.
async fn serve(mut s: TcpStream, shared: Arc<Mutex<Muxed>>, mut rx: [watch::Receiver<u64>; 2]) {
    s.set_nodelay(true).ok();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = buf.split_to(end);
        let line = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split(' ');
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let rx = &mut rx[usize::from(path.ends_with(".m3u8"))];
        rx.borrow_and_update();
        // A blocked reload or a hinted part waits at most three targets.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        let answer = loop {
            let a = answer(path, query, &lock(&shared));
            if !matches!(a, Answer::Wait) {
                break a;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break Answer::Fail(503, "not available in time\n");
            }
        };
        let (status, kind, body) = match answer {
            Answer::Ok(kind, body) => (200, kind, body),
            Answer::Fail(status, why) => (status, "text/plain", vec![Bytes::from(why)]),
            Answer::Wait => unreachable!("waited above"),
        };
        let len: usize = body.iter().map(Bytes::len).sum();
        let reason = if status == 200 { "OK" } else { "Error" };
        let mut out = vec![Bytes::from(format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\n\r\n"
        ))];
        if method != "HEAD" {
            out.extend(body);
        }
        if write_all(&mut s, &out).await.is_err() {
            return;
        }
    }
}

/// What the stream allows for a request now (the rules of Rill's plugin).
fn answer(path: &str, query: &str, g: &Muxed) -> Answer {
    let w = g.ll.window();
    if let Some(stem) = path.strip_suffix(".m3u8") {
        if !g.ll.has_segment() || !g.ts.has_segment() {
            return Answer::Wait;
        }
        if stem.ends_with("/ts") {
            return Answer::Ok(PLAYLIST, vec![g.ts_media.clone()]);
        }
        if stem.ends_with("/llhls") {
            let Ok(b) = BlockingRequest::parse(query) else {
                return Answer::Fail(400, "bad blocking request\n");
            };
            if let Some(msn) = b.msn {
                match w.readiness(msn, b.part) {
                    Readiness::TooFar => return Answer::Fail(400, "_HLS_msn is too far ahead\n"),
                    Readiness::Wait => return Answer::Wait,
                    Readiness::Ready => {}
                }
            }
            return Answer::Ok(PLAYLIST, vec![g.media.clone()]);
        }
        let last = stem.rsplit('/').next().unwrap_or(stem);
        let (name, w) = match query.contains("format=ts") {
            true => ("ts", g.ts.window()),
            false => ("llhls", w),
        };
        let body = rill_hls::playlist::multivariant(
            &format!("{last}/{name}.m3u8"),
            w.peak_bps(),
            g.ll.codecs(),
            g.ll.resolution(),
        );
        return Answer::Ok(PLAYLIST, vec![Bytes::from(body)]);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    match Object::parse(name) {
        Some(Object::Init(id)) => match g.ll.init(id) {
            Some(b) => Answer::Ok("video/mp4", vec![b.clone()]),
            None => Answer::Fail(404, "no such init segment\n"),
        },
        Some(Object::Part(m, i)) => {
            if let Some(p) = w.part(m, i) {
                return Answer::Ok("video/mp4", vec![p.data.clone()]);
            }
            let (nm, ni) = w.next_part();
            if (m == nm && i >= ni && i <= ni + 1) || (m == nm + 1 && i == 0) {
                return Answer::Wait;
            }
            Answer::Fail(404, "no such part\n")
        }
        Some(Object::Ts(m)) => match g.ts.window().segment(m) {
            Some(s) if s.complete => Answer::Ok(
                "video/mp2t",
                s.parts.iter().map(|p| p.data.clone()).collect(),
            ),
            Some(_) => Answer::Wait,
            None => Answer::Fail(404, "no such segment\n"),
        },
        Some(Object::Segment(m)) => match w.segment(m) {
            Some(s) if s.complete => Answer::Ok(
                "video/mp4",
                s.parts.iter().map(|p| p.data.clone()).collect(),
            ),
            Some(_) => Answer::Wait,
            None if m == w.next_part().0 => Answer::Wait,
            None => Answer::Fail(404, "no such segment\n"),
        },
        _ => Answer::Fail(404, "not found\n"),
    }
}

/// Writes every buffer, as few calls as the socket allows.
async fn write_all(s: &mut TcpStream, bufs: &[Bytes]) -> std::io::Result<()> {
    let mut skip = 0usize;
    let total: usize = bufs.iter().map(Bytes::len).sum();
    while skip < total {
        let mut left = skip;
        let slices: Vec<IoSlice<'_>> = bufs
            .iter()
            .filter_map(|b| {
                if left >= b.len() {
                    left -= b.len();
                    None
                } else {
                    let s = IoSlice::new(&b[left..]);
                    left = 0;
                    Some(s)
                }
            })
            .collect();
        let n = s.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        skip += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_flag_is_what_the_muxer_cuts_on() {
        // The muxer starts at a video key frame: FLV's frame type 1 must
        // come out as RILL_FRAME_KEY.
        let body = bytes::Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        let f = super::frame(9, 40, &body).unwrap();
        assert_ne!(f.flags & rill_abi::RILL_FRAME_KEY, 0);
        assert_eq!((f.track, f.dts), (0, 40_000));
    }
}
