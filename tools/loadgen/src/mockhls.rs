//! Tests only: a small live HLS and fMP4 server following the URL contract
//! of Rill's HLS plugin, so that the players can be run end to end before
//! the plugin exists. It makes its own stream (25 fps H.264-like frames
//! with the latency stamp, a key frame every second, AAC in the fMP4),
//! cut into 200 ms parts and 1 s segments, and serves:
//!
//! - `/live/x.m3u8`: the multivariant playlist (`x/llhls.m3u8`, or
//!   `x/ts.m3u8` with `?format=ts`);
//! - `/live/x/llhls.m3u8`: LL-HLS with parts, a preload hint, blocking
//!   reloads (`_HLS_msn`/`_HLS_part`); `init.mp4`, parts `p{msn}.{i}.m4s`
//!   (a hinted part is answered once it exists), segments `s{msn}.m4s`;
//!   with `?nohint=1` on the multivariant URL, playlists without hints;
//! - `/live/x/ts.m3u8`: classic HLS over TS, segments `t{msn}.ts`;
//! - `/live/x.mp4`: progressive fMP4 (chunked) from the last key frame.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_abi::{RILL_CODEC_H264, RILL_FRAME_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

use crate::media::tests::{mp4_muxer, push_frames, stamped_frame};
use crate::sei;

const PARTS_PER_SEGMENT: usize = 5;
const FRAMES_PER_PART: u32 = 5;
const WINDOW: usize = 6;

struct Seg {
    msn: u64,
    parts: Vec<Bytes>,
    ts: Bytes,
}

struct State {
    init: Bytes,
    /// Complete segments, then the one in progress (last, `done` false).
    segs: VecDeque<Seg>,
    /// Whether the last segment of `segs` is complete.
    last_done: bool,
}

impl State {
    /// The position of the next part to be made.
    fn next(&self) -> (u64, usize) {
        match self.segs.back() {
            Some(s) if self.last_done => (s.msn + 1, 0),
            Some(s) => (s.msn, s.parts.len()),
            None => (0, 0),
        }
    }

    fn has_part(&self, msn: u64, i: usize) -> bool {
        let (nm, ni) = self.next();
        (msn, i) < (nm, ni)
    }

    fn seg(&self, msn: u64) -> Option<&Seg> {
        self.segs.iter().find(|s| s.msn == msn)
    }

    fn ll_playlist(&self, hint: bool) -> String {
        let mut s = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n\
             #EXT-X-PART-INF:PART-TARGET=0.2\n",
        );
        let first = self.segs.front().map_or(0, |s| s.msn);
        s += &format!("#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init.mp4\"\n");
        let n = self.segs.len();
        for (k, seg) in self.segs.iter().enumerate() {
            let done = k + 1 < n || self.last_done;
            if k + 3 >= n {
                for i in 0..seg.parts.len() {
                    let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
                    s += &format!(
                        "#EXT-X-PART:DURATION=0.2,URI=\"p{}.{i}.m4s\"{ind}\n",
                        seg.msn
                    );
                }
            }
            if done {
                s += &format!("#EXTINF:1.0,\ns{}.m4s\n", seg.msn);
            }
        }
        if hint {
            let (m, i) = self.next();
            s += &format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p{m}.{i}.m4s\"\n");
        }
        s
    }

    fn ts_playlist(&self) -> String {
        let done: Vec<&Seg> = self
            .segs
            .iter()
            .take(self.segs.len().saturating_sub(usize::from(!self.last_done)))
            .collect();
        let first = done.first().map_or(0, |s| s.msn);
        let mut s = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for seg in done {
            s += &format!("#EXTINF:1.0,\nt{}.ts\n", seg.msn);
        }
        s
    }
}

struct Server {
    state: Mutex<State>,
    /// Parts made so far: waiters watch it.
    made: watch::Sender<u64>,
    /// Every new part, for progressive players.
    parts: broadcast::Sender<Bytes>,
}

/// Starts the server on a thread of its own; returns its port.
pub fn start() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mux, init) = mp4_muxer();
            let srv = Arc::new(Server {
                state: Mutex::new(State {
                    init,
                    segs: VecDeque::new(),
                    last_done: false,
                }),
                made: watch::channel(0).0,
                parts: broadcast::channel(64).0,
            });
            tokio::spawn(produce(srv.clone(), mux));
            let l = TcpListener::from_std(l).unwrap();
            loop {
                let (sock, _) = l.accept().await.unwrap();
                sock.set_nodelay(true).ok();
                tokio::spawn(serve(srv.clone(), sock));
            }
        });
    });
    port
}

/// Makes the stream in real time: a part every 200 ms.
async fn produce(srv: Arc<Server>, mut mux: rill_mp4::Muxer) {
    let tracks = [rill_ts::MuxTrack::new(
        RILL_CODEC_H264,
        crate::media::tests::avcc(),
    )];
    let mut ts = rill_ts::Muxer::new(&tracks, rill_ts::MuxerConfig::default()).unwrap();
    let mut ts_buf: Vec<u8> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    for i in 0u32.. {
        tick.tick().await;
        let t = i as i64 * 40_000;
        let key = i % 25 == 0;
        let now = sei::wall_us();
        // The frame into the fMP4 muxer, stamped now (its predecessor's
        // duration is known from here on).
        push_frames(&mut mux, i, i + 1, now - i as u64);
        if i > 0 && i % FRAMES_PER_PART == 0 {
            let part = mux.fragment_before(t).unwrap().to_bytes();
            let ts_done = (i % 25 == 0).then(|| Bytes::from(std::mem::take(&mut ts_buf)));
            let mut st = srv.state.lock().unwrap();
            let (msn, idx) = st.next();
            if idx == 0 {
                st.segs.push_back(Seg {
                    msn,
                    parts: Vec::new(),
                    ts: Bytes::new(),
                });
                st.last_done = false;
                while st.segs.len() > WINDOW + 1 {
                    st.segs.pop_front();
                }
            }
            let seg = st.segs.back_mut().unwrap();
            seg.parts.push(part.clone());
            if seg.parts.len() == PARTS_PER_SEGMENT {
                seg.ts = ts_done.unwrap_or_default();
                st.last_done = true;
            }
            drop(st);
            srv.parts.send(part).ok();
            srv.made.send_modify(|n| *n += 1);
        }
        // And into TS.
        if key {
            ts.start_segment(&mut ts_buf);
        }
        let frame = rill_ts::Frame {
            track: 0,
            codec: RILL_CODEC_H264,
            flags: if key { RILL_FRAME_KEY } else { 0 },
            pts: t,
            dts: t,
            payload: stamped_frame(i, now, key),
        };
        ts.write(&frame, &mut ts_buf).unwrap();
    }
}

fn response(status: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn query(path: &str, key: &str) -> Option<u64> {
    path.split_once('?')?
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)?
        .1
        .parse()
        .ok()
}

/// `p{msn}.{i}.m4s` → (msn, i).
fn part_name(name: &str) -> Option<(u64, usize)> {
    let (m, i) = name
        .strip_prefix('p')?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// Waits until `ready` holds (at most 3 s).
async fn wait_for(srv: &Server, ready: impl Fn(&State) -> bool) -> bool {
    let mut rx = srv.made.subscribe();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        if ready(&srv.state.lock().unwrap()) {
            return true;
        }
        if tokio::time::timeout_at(give_up, rx.changed())
            .await
            .is_err()
        {
            return false;
        }
    }
}

async fn serve(srv: Arc<Server>, mut sock: TcpStream) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (file, _) = path.split_once('?').unwrap_or((&path, ""));
        let out = match file {
            "/live/x.m3u8" => {
                let media = if path.contains("format=ts") {
                    "x/ts.m3u8"
                } else if path.contains("nohint") {
                    "x/llhls.m3u8?nohint=1"
                } else {
                    "x/llhls.m3u8"
                };
                let text = format!(
                    "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS=\"avc1.42c00d,mp4a.40.2\",RESOLUTION=320x240\n{media}\n"
                );
                response("200 OK", "application/vnd.apple.mpegurl", text.as_bytes())
            }
            "/live/x/llhls.m3u8" => {
                if let Some(msn) = query(&path, "_HLS_msn") {
                    let part = query(&path, "_HLS_part").unwrap_or(0) as usize;
                    let (msn, part) = if part >= PARTS_PER_SEGMENT {
                        (msn + 1, 0)
                    } else {
                        (msn, part)
                    };
                    wait_for(&srv, |st| st.has_part(msn, part)).await;
                }
                let hint = !path.contains("nohint");
                let text = srv.state.lock().unwrap().ll_playlist(hint);
                response("200 OK", "application/vnd.apple.mpegurl", text.as_bytes())
            }
            "/live/x/ts.m3u8" => {
                let text = srv.state.lock().unwrap().ts_playlist();
                response("200 OK", "application/vnd.apple.mpegurl", text.as_bytes())
            }
            "/live/x/init.mp4" => {
                let init = srv.state.lock().unwrap().init.clone();
                response("200 OK", "video/mp4", &init)
            }
            "/live/x.mp4" => {
                progressive(&srv, &mut sock).await;
                return;
            }
            f => {
                let name = f.strip_prefix("/live/x/").unwrap_or("");
                let body: Option<Bytes> = if let Some((msn, i)) = part_name(name) {
                    let next = srv.state.lock().unwrap().next();
                    if (msn, i) == next {
                        // The hinted part: answered once it exists.
                        wait_for(&srv, |st| st.has_part(msn, i)).await;
                    }
                    let st = srv.state.lock().unwrap();
                    st.seg(msn).and_then(|s| s.parts.get(i).cloned())
                } else if let Some(m) = name.strip_prefix('s').and_then(|n| n.strip_suffix(".m4s"))
                {
                    let st = srv.state.lock().unwrap();
                    m.parse()
                        .ok()
                        .and_then(|m| st.seg(m))
                        .filter(|s| s.parts.len() == PARTS_PER_SEGMENT)
                        .map(|s| Bytes::from(s.parts.concat()))
                } else if let Some(m) = name.strip_prefix('t').and_then(|n| n.strip_suffix(".ts")) {
                    let st = srv.state.lock().unwrap();
                    m.parse()
                        .ok()
                        .and_then(|m| st.seg(m))
                        .filter(|s| !s.ts.is_empty())
                        .map(|s| s.ts.clone())
                } else {
                    None
                };
                match body {
                    Some(b) => response("200 OK", "video/mp4", &b),
                    None => response("404 Not Found", "text/plain", b"no"),
                }
            }
        };
        if sock.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The progressive fMP4 response: init, the parts of the segment in
/// progress, then every new part, chunked.
async fn progressive(srv: &Server, sock: &mut TcpStream) {
    let (first, mut rx) = {
        let st = srv.state.lock().unwrap();
        let mut first = vec![st.init.clone()];
        if let Some(s) = st.segs.back().filter(|_| !st.last_done) {
            first.extend(s.parts.iter().cloned());
        }
        (first, srv.parts.subscribe())
    };
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n";
    if sock.write_all(head).await.is_err() {
        return;
    }
    let chunk = |b: &Bytes| {
        let mut c = format!("{:x}\r\n", b.len()).into_bytes();
        c.extend_from_slice(b);
        c.extend_from_slice(b"\r\n");
        c
    };
    for b in &first {
        if sock.write_all(&chunk(b)).await.is_err() {
            return;
        }
    }
    while let Ok(b) = rx.recv().await {
        if sock.write_all(&chunk(&b)).await.is_err() {
            return;
        }
    }
}
