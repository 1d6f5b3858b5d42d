//! A publisher that loops an FLV file in real time, over RTMP, as raw FLV
//! over TCP (Rill's C template plugin), as MPEG-TS over SRT or as RTP
//! over RTSP (TCP interleaved), stamping every H.264 frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::flvsrc::{FlvFile, Looper};
use crate::rtmp::{self, RtmpUrl};
use crate::rtsp::{self, RtspUrl};
use crate::srt::{self, SrtUrl};

pub type Res<T> = Result<T, String>;

#[derive(Clone, Debug)]
pub enum Target {
    Rtmp(RtmpUrl),
    /// `tcp://host:port`: the FLV byte stream, as `ffmpeg -f flv tcp://`.
    FlvTcp(String),
    /// `srt://host:port?streamid=publish:app/stream`: MPEG-TS over SRT.
    Srt(SrtUrl),
    /// `rtsp://host:port/app/stream`: ANNOUNCE, RECORD, RTP interleaved.
    Rtsp(RtspUrl),
}

impl Target {
    pub fn parse(url: &str) -> Res<Target> {
        if url.starts_with("rtmp://") {
            Ok(Target::Rtmp(RtmpUrl::parse(url)?))
        } else if let Some(a) = url.strip_prefix("tcp://") {
            Ok(Target::FlvTcp(a.trim_end_matches('/').to_owned()))
        } else if url.starts_with("srt://") {
            Ok(Target::Srt(SrtUrl::parse(url)?))
        } else if url.starts_with("rtsp://") {
            let u = RtspUrl::parse(url, false)?;
            if u.udp {
                return Err(format!("{url}: the RTSP publisher sends over TCP only"));
            }
            Ok(Target::Rtsp(u))
        } else {
            Err(format!(
                "{url}: publish to rtmp://, tcp://, srt:// or rtsp://"
            ))
        }
    }
}

impl Target {
    /// Publisher `i` of `m`: the stream name (SRT: the stream id's path) +
    /// "-i" (FLV over TCP has one stream only).
    pub fn nth(&self, i: usize, m: usize) -> Res<Target> {
        match self {
            _ if m <= 1 => Ok(self.clone()),
            Target::Rtmp(u) => Ok(Target::Rtmp(u.with_stream(&format!("{}-{i}", u.stream)))),
            Target::FlvTcp(_) => Err("FLV over TCP publishes one stream only".into()),
            Target::Srt(u) => Ok(Target::Srt(u.nth(i))),
            Target::Rtsp(u) => Ok(Target::Rtsp(u.nth(i))),
        }
    }
}

#[derive(Serialize, serde::Deserialize, Default, Debug, Clone)]
pub struct PubStats {
    pub frames: u64,
    pub bytes: u64,
    /// Worst lateness of a send against the file's clock, ms.
    pub max_late_ms: f64,
    pub error: Option<String>,
    /// SRT publishers: their connections' counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<srt::SendCounters>,
    /// RTSP publishers: RTP sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<rtsp::SendCounters>,
}

enum Sink {
    Rtmp(Box<rtmp::Conn>, u32),
    Tcp(TcpStream, BytesMut),
    Srt(Box<srt::Publisher>),
    Rtsp(Box<rtsp::Publisher>),
}

impl Sink {
    fn queue(&mut self, kind: u8, ts: u32, body: &[u8]) -> Res<()> {
        match self {
            Sink::Rtmp(c, sid) => c.queue_tag(kind, ts, *sid, body),
            Sink::Tcp(_, out) => {
                out.extend_from_slice(&rill_flv::stream::tag_header(kind, ts, body.len()));
                out.extend_from_slice(body);
                out.extend_from_slice(&((11 + body.len()) as u32).to_be_bytes());
                Ok(())
            }
            Sink::Srt(p) => p.queue(kind, ts as u64, body),
            Sink::Rtsp(p) => p.queue(kind, ts as u64, body),
        }
    }

    async fn flush(&mut self) -> Res<()> {
        match self {
            Sink::Rtmp(c, _) => c.flush().await,
            Sink::Tcp(s, out) => {
                s.write_all(out).await.map_err(|e| format!("write: {e}"))?;
                out.clear();
                Ok(())
            }
            Sink::Srt(p) => p.flush().await,
            Sink::Rtsp(p) => p.flush().await,
        }
    }

    /// SRT, RTSP: when its timers are next due.
    fn timer(&self) -> Option<Instant> {
        match self {
            Sink::Srt(p) => Some(p.timer()),
            Sink::Rtsp(p) => Some(p.timer()),
            _ => None,
        }
    }

    /// SRT, RTSP: runs its timers when due (the end of the connection is
    /// an error).
    fn service(&mut self) -> Res<()> {
        match self {
            Sink::Srt(p) => p.service(),
            Sink::Rtsp(p) => p.service(),
            _ => Ok(()),
        }
    }
}

/// Connects and starts the stream (metadata, sequence headers).
async fn open(target: &Target, file: &FlvFile) -> Res<Sink> {
    let mut sink = match target {
        Target::Rtmp(url) => {
            let (c, sid) = rtmp::publish_open(url).await?;
            Sink::Rtmp(Box::new(c), sid)
        }
        Target::FlvTcp(addr) => {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            s.set_nodelay(true).ok();
            let mut out = BytesMut::new();
            out.extend_from_slice(&rill_flv::stream::header(file.has_audio, file.has_video));
            Sink::Tcp(s, out)
        }
        Target::Srt(url) => Sink::Srt(Box::new(srt::Publisher::open(url, file).await?)),
        Target::Rtsp(url) => Sink::Rtsp(Box::new(rtsp::Publisher::open(url, file).await?)),
    };
    if let Some(md) = &file.metadata {
        match sink {
            Sink::Rtmp(..) => {
                let mut body = vec![0x02, 0x00, 13];
                body.extend_from_slice(b"@setDataFrame");
                body.extend_from_slice(md);
                sink.queue(18, 0, &body)?;
            }
            Sink::Tcp(..) => sink.queue(18, 0, md)?,
            // TS and RTP carry no metadata.
            Sink::Srt(_) | Sink::Rtsp(_) => {}
        }
    }
    if let Some(v) = &file.video_config {
        sink.queue(9, 0, v)?;
    }
    if let Some(a) = &file.audio_config {
        sink.queue(8, 0, a)?;
    }
    sink.flush().await?;
    Ok(sink)
}

/// Publishes until `stop` changes. `ready` is told once the server
/// accepted the stream (or why not).
pub async fn run(
    target: Target,
    file: Arc<FlvFile>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<Res<()>>,
) -> PubStats {
    let mut st = PubStats::default();
    let mut sink = match open(&target, &file).await {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            st.error = Some(e);
            return st;
        }
    };
    if let Err(e) = pump(&mut sink, file, &mut stop, &mut st).await {
        st.error = Some(e);
    }
    if let Sink::Srt(p) = &mut sink {
        st.srt = Some(p.close().await);
    }
    if let Sink::Rtsp(p) = &mut sink {
        st.rtsp = Some(p.close().await);
    }
    st
}

async fn readable(sink: &Sink) -> std::io::Result<()> {
    match sink {
        Sink::Rtmp(c, _) => c.sock.readable().await,
        Sink::Tcp(..) => std::future::pending().await,
        Sink::Srt(p) => p.readable().await,
        Sink::Rtsp(p) => p.readable().await,
    }
}

async fn pump(
    sink: &mut Sink,
    file: Arc<FlvFile>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    st: &mut PubStats,
) -> Res<()> {
    let mut looper = Looper::new(file);
    let start = Instant::now();
    loop {
        let due = start + Duration::from_millis(looper.next_ts());
        let due_t = tokio::time::Instant::from_std(due);
        // Wait for the next frame's time; meanwhile read what the server
        // sends (acks, pings; SRT: ACKs, NAKs) so that it never blocks on
        // us, and run SRT's timers.
        loop {
            let wake = sink.timer().map_or(due_t, |t| due_t.min(t.into()));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    if wake == due_t {
                        break;
                    }
                }
                _ = stop.changed() => return Ok(()),
                r = readable(sink) => {
                    r.map_err(|e| format!("read: {e}"))?;
                    match sink {
                        Sink::Rtmp(c, _) => c.try_drain()?,
                        Sink::Srt(p) => p.drain()?,
                        Sink::Rtsp(p) => p.drain()?,
                        Sink::Tcp(..) => {}
                    }
                }
            }
            if let Sink::Srt(_) | Sink::Rtsp(_) = sink {
                // Answers (ACKACKs), retransmissions, keep-alives.
                sink.service()?;
                sink.flush().await?;
            }
        }
        let now = Instant::now();
        st.max_late_ms = st
            .max_late_ms
            .max(now.saturating_duration_since(due).as_secs_f64() * 1000.0);
        while start + Duration::from_millis(looper.next_ts()) <= now {
            let t = looper.next();
            st.frames += 1;
            st.bytes += t.body.len() as u64;
            sink.queue(t.kind, t.ts as u32, &t.body)?;
        }
        sink.flush().await?;
    }
}
