//! rill-loadgen: players and publishers by the thousand from one process,
//! a null server (the floor), and the benchmark report.
//!
//! ```text
//! rill-loadgen run --play rtmp://127.0.0.1:1935/live/test --players 1000 \
//!     --publish rtmp://127.0.0.1:1935/live/test --file stream.flv \
//!     --duration 30 --server-pid 1234 --json out.json
//! rill-loadgen run --proto hls --url http://127.0.0.1:8080/live/test.m3u8 \
//!     --players 100 --publish rtmp://127.0.0.1:1935/live/test --file stream.flv
//! rill-loadgen run --play 'srt://127.0.0.1:9000?streamid=read:live/test' \
//!     --players 100 --file stream.flv \
//!     --publish 'srt://127.0.0.1:9000?streamid=publish:live/test&latency=120'
//! rill-loadgen run --play rtsp://127.0.0.1:8554/live/test --players 100 \
//!     --file stream.flv --publish rtsp://127.0.0.1:8554/live/test
//! rill-loadgen run --play 'rtsp://127.0.0.1:8554/live/test?transport=udp' ...
//! rill-loadgen run --play http://127.0.0.1:8080/live/test/whep --players 100 \
//!     --file stream.flv --publish rtmp://127.0.0.1:1935/live/test
//! rill-loadgen null --listen 127.0.0.1:19400 --file stream.flv [--hls]
//! rill-loadgen soak --server-pid 1234 --http 127.0.0.1:8080 --rtmp 127.0.0.1:1935 \
//!     --file stream.flv --minutes 10 --json soak.json --svg soak.svg
//! rill-loadgen report target/bench/runs/*.json --out-dir target/bench
//! ```

mod flvsrc;
mod fmp4;
mod hls;
mod http;
mod httpflv;
mod media;
#[cfg(test)]
mod mockhls;
mod null;
mod nullhls;
mod procstat;
mod publish;
mod report;
mod rtmp;
mod rtsp;
mod sei;
mod soak;
mod srt;
mod stats;
mod udp;
mod whep;

/// mimalloc, as the server (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::flvsrc::FlvFile;
use crate::stats::{Player, Quantiles, Shared};

#[derive(Parser)]
#[command(
    name = "rill-loadgen",
    about = "Load generator and benchmark report for Rill"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N players (and optionally a publisher) against a server.
    Run(RunArgs),
    /// The null server: the same pre-muxed bytes to every player (the floor).
    Null {
        /// Address to listen on (RTMP and HTTP-FLV on the same port).
        #[arg(long, default_value = "127.0.0.1:19400")]
        listen: String,
        /// Port on 127.0.0.1 (overrides --listen).
        #[arg(long)]
        port: Option<u16>,
        /// The FLV file to loop.
        #[arg(long)]
        file: PathBuf,
        /// TCP_NODELAY on players' sockets (Rill sets it; nginx-rtmp
        /// leaves Nagle on).
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
        nodelay: bool,
        /// Serve Low-Latency HLS instead (the floor for `--proto hls`): the
        /// stream muxed once by `rill-hls`, playlists rendered once.
        #[arg(long)]
        hls: bool,
    },
    /// UDP echo load against `target`: answers per second (one JSON line).
    Udp {
        #[arg(long)]
        target: String,
        /// Client sockets.
        #[arg(long, default_value_t = 8)]
        sockets: usize,
        /// Datagrams in flight per socket.
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Bytes per datagram.
        #[arg(long, default_value_t = 1200)]
        size: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A plain tokio UDP echo server: the peer for `udp`.
    UdpEcho {
        #[arg(long, default_value = "127.0.0.1:19500")]
        listen: String,
    },
    /// A bounded churn run against a running server: streams re-published,
    /// players joining and leaving over every protocol, plugin reloads;
    /// fails when the server grows after the warm-up (scripts/soak).
    Soak(soak::SoakArgs),
    /// Table, ratios and chart from the JSON files of `run`.
    Report {
        /// JSON files written by `run --json`.
        files: Vec<PathBuf>,
        /// Where summary.json, table.md and chart.svg go.
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
        /// A line describing the machine, for table.md.
        #[arg(long, default_value = "")]
        machine: String,
    },
}

/// The kind of player.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    /// RTMP play (rtmp://host:port/app/stream).
    Rtmp,
    /// HTTP-FLV (http://host:port/app/stream.flv).
    HttpFlv,
    /// LL-HLS over fMP4 (http://host:port/app/stream.m3u8): parts, preload
    /// hints and blocking playlist reloads, as hls.js plays it.
    Hls,
    /// Classic HLS over MPEG-TS (the same .m3u8; `?format=ts` is added):
    /// the playlist polled every half target duration, whole segments.
    HlsTs,
    /// HTTP progressive fragmented MP4 (http://host:port/app/stream.mp4).
    Fmp4,
    /// MPEG-TS over SRT, as a caller
    /// (srt://host:port?streamid=read:app/stream&passphrase=..&latency=ms).
    Srt,
    /// RTSP over TCP interleaved (rtsp://host:port/app/stream): DESCRIBE,
    /// SETUP, PLAY, RTP depacketized.
    Rtsp,
    /// RTSP with RTP over UDP (a socket pair per track); also
    /// `rtsp://...?transport=udp`.
    RtspUdp,
    /// WebRTC viewers over WHEP (http://host:port/app/stream/whep): an SDP
    /// offer POSTed, ICE, DTLS and SRTP with str0m on a UDP socket each.
    Whep,
}

impl Proto {
    /// The kind a URL implies: rtmp://, srt://, rtsp:// (rtsp-udp with
    /// `transport=udp`), .../whep, .m3u8, .mp4, else HTTP-FLV.
    fn of_url(url: &str) -> Proto {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if url.starts_with("rtmp://") {
            Proto::Rtmp
        } else if url.starts_with("srt://") {
            Proto::Srt
        } else if url.starts_with("rtsp://") {
            if rtsp::RtspUrl::asks_udp(url) {
                Proto::RtspUdp
            } else {
                Proto::Rtsp
            }
        } else if path.ends_with("/whep") {
            Proto::Whep
        } else if path.ends_with(".m3u8") {
            Proto::Hls
        } else if path.ends_with(".mp4") {
            Proto::Fmp4
        } else {
            Proto::HttpFlv
        }
    }

    /// Its name in the JSON and the report.
    fn name(self) -> &'static str {
        match self {
            Proto::Rtmp => "rtmp",
            Proto::HttpFlv => "http-flv",
            Proto::Hls => "hls",
            Proto::HlsTs => "hls-ts",
            Proto::Fmp4 => "fmp4",
            Proto::Srt => "srt",
            Proto::Rtsp => "rtsp",
            Proto::RtspUdp => "rtsp-udp",
            Proto::Whep => "whep",
        }
    }
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// rtmp://host:port/app/stream, http://host:port/app/stream.flv,
    /// http://host:port/app/stream.m3u8 (HLS),
    /// http://host:port/app/stream.mp4 (fMP4) or
    /// srt://host:port?streamid=read:app/stream (SRT; also &passphrase=,
    /// &pbkeylen=, &latency= in ms) or
    /// rtsp://[user:pass@]host:port/app/stream (RTSP over TCP interleaved;
    /// `?transport=udp`, or --proto rtsp-udp, for RTP over UDP) or
    /// http://host:port/app/stream/whep (WebRTC viewers over WHEP).
    #[arg(long, alias = "url")]
    play: String,
    /// The kind of player (default: from the URL: rtmp://, srt://, rtsp://
    /// (rtsp-udp with ?transport=udp), /whep → whep, .m3u8 → hls, .mp4 →
    /// fmp4, else http-flv).
    #[arg(long, value_enum)]
    proto: Option<Proto>,
    /// Keep every player's figures (TTFF, frames, bytes, stalls, latency
    /// p50/p99, error) in the JSON (`per_player`).
    #[arg(long)]
    per_player: bool,
    /// Number of players.
    #[arg(long, default_value_t = 100)]
    players: usize,
    /// Publish the file first: rtmp://host:port/app/stream, tcp://host:port
    /// for FLV over TCP (Rill's C template plugin), or
    /// srt://host:port?streamid=publish:app/stream for MPEG-TS over SRT,
    /// or rtsp://host:port/app/stream (ANNOUNCE, RECORD, RTP over TCP
    /// interleaved).
    #[arg(long)]
    publish: Option<String>,
    /// Publishers (each its own stream): with M > 1, publisher i sends to
    /// the stream name + "-i" and player j plays stream j mod M.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// The FLV file to publish (H.264 frames get the latency stamp); without
    /// --publish, it still gives the ramp (one GOP at least) and bit rate.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Measurement window in seconds, after the ramp and settle.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds between the publish and the first player (fills the GOP).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Players started per second (the ramp lasts one GOP at least).
    #[arg(long, default_value_t = 500.0)]
    ramp_rate: f64,
    /// Seconds after the last player started before the window opens.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Server process to measure (its direct children too, e.g. nginx
    /// workers); repeatable.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Name of this run in the report, e.g. rill-rtmp.
    #[arg(long, default_value = "")]
    label: String,
    /// Server name (rill, nginx, null) for ratios.
    #[arg(long, default_value = "")]
    server: String,
    /// Name of the stream (e.g. 2500k) for grouping in the report.
    #[arg(long, default_value = "")]
    stream: String,
    /// Write the result here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Read buffer per player, bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    read_buf: usize,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ServerCost {
    pub pids: Vec<u32>,
    /// CPU seconds in the measurement window.
    pub cpu_s: f64,
    /// CPU seconds while players connected (ramp + settle).
    pub cpu_s_ramp: f64,
    /// CPU seconds per player-minute in the window.
    pub cpu_s_per_player_min: f64,
    /// CPU share of one core in the window.
    pub cpu_util: f64,
    pub pss_idle_kib: u64,
    pub pss_loaded_kib: u64,
    pub mem_per_player_kib: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct RunResult {
    pub label: String,
    pub server: String,
    pub proto: String,
    pub stream: String,
    pub stream_kbps: f64,
    pub players: usize,
    pub duration_s: f64,
    pub ramp_s: f64,
    pub connected: usize,
    pub got_picture: usize,
    pub kept_up: usize,
    pub stalls: u64,
    pub skips: u64,
    /// Players with a frame later than 1 s after its publication.
    pub too_late: usize,
    /// Players that received fewer than 90% of the stream's video frames.
    pub too_few_frames: usize,
    pub errors: BTreeMap<String, usize>,
    pub ttff_ms: Quantiles,
    pub latency_ms: Quantiles,
    /// Received bit rate per player (whole connection), Mbit/s.
    pub mbit_per_player: f64,
    pub video_fps_per_player: f64,
    pub server_cost: Option<ServerCost>,
    pub client_cpu_s: f64,
    pub publisher: Option<publish::PubStats>,
    pub publishers: usize,
    /// HLS runs (hls, hls-ts): requests, targets, part availability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<HlsResult>,
    /// SRT runs: the players' connections' counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srt: Option<srt::RecvCounters>,
    /// RTSP runs (rtsp, rtsp-udp): the players' RTP counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<rtsp::RecvCounters>,
    /// WHEP runs: the viewers' WebRTC counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whep: Option<whep::RecvCounters>,
    /// With `--per-player`: one row per player.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_player: Vec<PlayerRow>,
}

/// What an HLS run adds.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct HlsResult {
    /// Request counts and the playlists' targets, over all players.
    pub counters: hls::Counters,
    /// LL-HLS part availability latency: a frame's publication (its
    /// stamp) → the end of the download of its part, for the parts
    /// requested before they existed (preload hint, blocking reload).
    pub part_latency_ms: Quantiles,
    /// The same for the last frame of each such part: what comes after
    /// the part is complete (server and delivery).
    pub part_tail_latency_ms: Quantiles,
    /// The issue's goal for `part_latency_ms` p99: part target + 50 ms.
    pub part_goal_ms: Option<f64>,
    pub part_goal_met: Option<bool>,
    /// A frame later than this after its publication made its player
    /// "too late" (1 s more than the delivery allows: a part, or a segment
    /// and a half).
    pub late_limit_ms: f64,
}

/// One player's figures (`--per-player`).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct PlayerRow {
    pub ttff_ms: Option<f64>,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    pub stalls: u32,
    pub skips: u32,
    pub max_gap_ms: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub kept_up: bool,
    pub error: Option<String>,
}

#[derive(Clone)]
enum PlayUrl {
    Rtmp(rtmp::RtmpUrl),
    Http(httpflv::HttpUrl),
    /// An HLS entry URL (multivariant or media playlist); `true`: classic.
    Hls(httpflv::HttpUrl, bool),
    Fmp4(httpflv::HttpUrl),
    Srt(srt::SrtUrl),
    Rtsp(rtsp::RtspUrl),
    Whep(whep::WhepUrl),
}

/// `/app/stream.ext?q` → `/app/stream-i.ext?q`.
fn nth_path(path: &str, i: usize) -> String {
    let (p, q) = http::split_query(path);
    let name_start = p.rfind('/').map_or(0, |s| s + 1);
    match p[name_start..].rfind('.') {
        Some(dot) => {
            let dot = name_start + dot;
            format!("{}-{i}{}{q}", &p[..dot], &p[dot..])
        }
        None => format!("{p}-{i}{q}"),
    }
}

impl PlayUrl {
    fn parse(url: &str, proto: Proto) -> Result<PlayUrl, String> {
        Ok(match proto {
            Proto::Rtmp => PlayUrl::Rtmp(rtmp::RtmpUrl::parse(url)?),
            Proto::HttpFlv => PlayUrl::Http(httpflv::HttpUrl::parse(url)?),
            Proto::Hls => PlayUrl::Hls(httpflv::HttpUrl::parse(url)?, false),
            Proto::HlsTs => {
                let u = httpflv::HttpUrl::parse(url)?;
                // The server's contract: TS segments when asked for.
                let u = if u.query("format").is_some() {
                    u
                } else {
                    u.with_query("format", "ts")
                };
                PlayUrl::Hls(u, true)
            }
            Proto::Fmp4 => PlayUrl::Fmp4(httpflv::HttpUrl::parse(url)?),
            Proto::Srt => PlayUrl::Srt(srt::SrtUrl::parse(url)?),
            Proto::Rtsp => PlayUrl::Rtsp(rtsp::RtspUrl::parse(url, false)?),
            Proto::RtspUdp => PlayUrl::Rtsp(rtsp::RtspUrl::parse(url, true)?),
            Proto::Whep => PlayUrl::Whep(whep::WhepUrl::parse(url)?),
        })
    }

    /// Plays until `end` (or an error), into `p` and `shared`; `rb`: read
    /// buffer bytes.
    async fn play(
        &self,
        p: &mut Player,
        shared: &Shared,
        end: Instant,
        rb: usize,
    ) -> Result<(), String> {
        match self {
            PlayUrl::Rtmp(u) => rtmp::play(u.clone(), p, shared, end).await,
            PlayUrl::Http(u) => httpflv::play(u.clone(), p, shared, end, rb).await,
            PlayUrl::Hls(u, classic) => hls::play(u.clone(), *classic, p, shared, end, rb).await,
            PlayUrl::Fmp4(u) => fmp4::play(u.clone(), p, shared, end, rb).await,
            PlayUrl::Srt(u) => srt::play(u.clone(), p, shared, end).await,
            PlayUrl::Rtsp(u) => rtsp::play(u.clone(), p, shared, end, rb).await,
            PlayUrl::Whep(u) => whep::play(u.clone(), p, shared, end).await,
        }
    }

    /// The URL of stream `i` of `m` (itself when m == 1).
    fn nth(&self, i: usize, m: usize) -> PlayUrl {
        if m <= 1 {
            return self.clone();
        }
        let with = |u: &httpflv::HttpUrl| httpflv::HttpUrl {
            path: nth_path(&u.path, i),
            ..u.clone()
        };
        match self {
            PlayUrl::Rtmp(u) => PlayUrl::Rtmp(u.with_stream(&format!("{}-{i}", u.stream))),
            PlayUrl::Http(u) => PlayUrl::Http(with(u)),
            PlayUrl::Hls(u, classic) => PlayUrl::Hls(with(u), *classic),
            PlayUrl::Fmp4(u) => PlayUrl::Fmp4(with(u)),
            PlayUrl::Srt(u) => PlayUrl::Srt(u.nth(i)),
            PlayUrl::Rtsp(u) => PlayUrl::Rtsp(u.nth(i)),
            PlayUrl::Whep(u) => PlayUrl::Whep(u.nth(i)),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(a) => run_cmd(a),
        Cmd::Null {
            listen,
            port,
            file,
            nodelay,
            hls,
        } => {
            let listen = port.map_or(listen, |p| format!("127.0.0.1:{p}"));
            FlvFile::load(&file).and_then(|f| {
                if hls {
                    nullhls::run(&listen, f)
                } else {
                    null::run(&listen, f, nodelay)
                }
            })
        }
        Cmd::Report {
            files,
            out_dir,
            machine,
        } => report::report(&files, &out_dir, &machine),
        Cmd::Udp {
            target,
            sockets,
            window,
            size,
            seconds,
        } => udp::load(&target, sockets, window, size, seconds),
        Cmd::UdpEcho { listen } => udp::echo_server(&listen),
        Cmd::Soak(a) => soak::run(a),
    };
    if let Err(e) = r {
        eprintln!("rill-loadgen: {e}");
        std::process::exit(1);
    }
}

fn run_cmd(a: RunArgs) -> Result<(), String> {
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    let res = rt.block_on(run(a.clone()))?;
    print_result(&res);
    if let Some(p) = &a.json {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).ok();
        }
        let text = serde_json::to_string_pretty(&res).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

async fn run(a: RunArgs) -> Result<RunResult, String> {
    let proto = a.proto.unwrap_or_else(|| Proto::of_url(&a.play));
    let url = PlayUrl::parse(&a.play, proto)?;
    let file = a.file.as_ref().map(|f| FlvFile::load(f)).transpose()?;
    let n = a.players;
    // Players arrive spread over at least one GOP, so that they meet every
    // phase of it (a server without a GOP cache makes them wait for the
    // next key frame).
    let gop = file.as_ref().map_or(0.0, |f| f.gop_ms() as f64 / 1000.0);
    let ramp = Duration::from_secs_f64((n as f64 / a.ramp_rate.max(1.0)).max(gop));
    let settle = Duration::from_secs_f64(a.settle);
    let window = Duration::from_secs_f64(a.duration);

    // 1. The publisher, then the warm-up (the GOP cache fills).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut publishers = Vec::new();
    let m = if a.publish.is_some() {
        a.publishers.max(1)
    } else {
        1
    };
    if let Some(url) = &a.publish {
        let file = file.clone().ok_or("--publish needs --file")?;
        let target = publish::Target::parse(url)?;
        for i in 0..m {
            let t = target.nth(i, m)?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            publishers.push(tokio::spawn(publish::run(
                t,
                file.clone(),
                stop_rx.clone(),
                tx,
            )));
            match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(format!("publish {i}: {e}")),
                _ => return Err(format!("publish {i}: no answer within 10 s")),
            }
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;

    // 2. The idle server.
    let pids = procstat::with_children(&a.server_pid);
    let pss_idle = procstat::pss_kib(&pids);
    let cpu_idle = procstat::cpu_seconds(&pids);

    // 3. The players, ramped.
    let shared = Arc::new(Shared::default());
    let t0 = Instant::now();
    let win_start = t0 + ramp + settle;
    let end = win_start + window;
    let urls: Vec<Arc<PlayUrl>> = (0..m).map(|i| Arc::new(url.nth(i, m))).collect();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let at = t0 + ramp.mul_f64(i as f64 / n as f64);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let (url, shared) = (urls[i % m].clone(), shared.clone());
        let rb = a.read_buf;
        let per_player = a.per_player;
        handles.push(tokio::spawn(async move {
            let mut p = Player::new();
            if per_player {
                p.own_lat = Some(Vec::new());
            }
            let r = url.play(&mut p, &shared, end, rb).await;
            if let Err(e) = r {
                p.error = Some(e);
            }
            p.finish(Instant::now().min(end), &shared);
            p
        }));
    }

    // 4. The window.
    tokio::time::sleep_until(tokio::time::Instant::from_std(win_start)).await;
    let pids = procstat::with_children(&a.server_pid);
    let cpu0 = procstat::cpu_seconds(&pids);
    let client0 = procstat::self_cpu_seconds();
    tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    let cpu1 = procstat::cpu_seconds(&pids);
    let client1 = procstat::self_cpu_seconds();
    let pss_loaded = procstat::pss_kib(&pids);
    let elapsed = Instant::now() - win_start;

    // 5. The books.
    let mut players = Vec::with_capacity(n);
    for h in handles {
        players.push(h.await.map_err(|e| e.to_string())?);
    }
    let _ = stop_tx.send(true);
    let mut pub_stats: Option<publish::PubStats> = None;
    for h in publishers {
        if let Ok(st) = h.await {
            // One line for all: totals, the worst lateness, the first error.
            let t = pub_stats.get_or_insert_with(Default::default);
            t.frames += st.frames;
            t.bytes += st.bytes;
            t.max_late_ms = t.max_late_ms.max(st.max_late_ms);
            if t.error.is_none() {
                t.error = st.error;
            }
            if let Some(s) = &st.srt {
                t.srt.get_or_insert_with(Default::default).add(s);
            }
            if let Some(s) = &st.rtsp {
                t.rtsp.get_or_insert_with(Default::default).add(s);
            }
        }
    }
    let mut res = RunResult {
        label: a.label.clone(),
        server: a.server.clone(),
        publishers: m,
        proto: proto.name().into(),
        stream: a.stream.clone(),
        stream_kbps: file.as_ref().map_or(0.0, |f| f.bitrate / 1000.0),
        players: n,
        duration_s: elapsed.as_secs_f64(),
        ramp_s: (ramp + settle).as_secs_f64(),
        client_cpu_s: client1 - client0,
        publisher: pub_stats,
        ..Default::default()
    };
    let fps = file.as_ref().and_then(|f| f.video_fps());
    let mut ttff = Vec::new();
    let mut bits = 0.0;
    let mut rate = 0.0;
    for p in &players {
        res.connected += p.connected.is_some() as usize;
        res.got_picture += p.first_key.is_some() as usize;
        res.kept_up += p.kept_up(fps, end) as usize;
        res.too_late += p.too_late() as usize;
        res.too_few_frames += !p.enough_frames(fps, end) as usize;
        res.stalls += p.stalls as u64;
        res.skips += p.skips as u64;
        if let Some(e) = &p.error {
            *res.errors.entry(e.clone()).or_default() += 1;
        }
        if let Some(t) = p.ttff() {
            ttff.push(t.as_micros() as u64);
        }
        let secs = end
            .saturating_duration_since(p.start)
            .as_secs_f64()
            .max(1e-3);
        bits += p.bytes as f64 * 8.0 / secs;
        rate += p.video as f64 / secs;
        if let Some(lat) = &p.own_lat {
            let q = stats::quantiles(lat.iter().map(|&v| v as u64).collect());
            res.per_player.push(PlayerRow {
                ttff_ms: p.ttff().map(|t| t.as_secs_f64() * 1000.0),
                video_frames: p.video,
                audio_frames: p.audio,
                bytes: p.bytes,
                stalls: p.stalls,
                skips: p.skips,
                max_gap_ms: p.max_gap.as_secs_f64() * 1000.0,
                latency_p50_ms: q.p50,
                latency_p99_ms: q.p99,
                latency_max_ms: q.max,
                kept_up: p.kept_up(fps, end),
                error: p.error.clone(),
            });
        }
    }
    if matches!(url, PlayUrl::Hls(..)) {
        let counters = shared.hls.lock().unwrap().clone();
        let part_latency_ms = shared.part_latency.lock().unwrap().summary();
        let goal = counters.part_target_ms.map(|t| t + 50.0);
        res.hls = Some(HlsResult {
            part_goal_met: goal.zip(part_latency_ms.p99).map(|(g, p99)| p99 <= g),
            part_goal_ms: goal,
            part_tail_latency_ms: shared.part_tail_latency.lock().unwrap().summary(),
            part_latency_ms,
            late_limit_ms: players.iter().map(|p| p.late_limit_us).max().unwrap_or(0) as f64
                / 1000.0,
            counters,
        });
    }
    if matches!(url, PlayUrl::Srt(..)) {
        res.srt = Some(shared.srt.lock().unwrap().clone());
    }
    if matches!(url, PlayUrl::Rtsp(..)) {
        res.rtsp = Some(shared.rtsp.lock().unwrap().clone());
    }
    if matches!(url, PlayUrl::Whep(..)) {
        let mut c = shared.whep.lock().unwrap().clone();
        c.finish();
        res.whep = Some(c);
    }
    res.mbit_per_player = bits / n.max(1) as f64 / 1e6;
    res.video_fps_per_player = rate / n.max(1) as f64;
    res.ttff_ms = stats::quantiles(ttff);
    res.latency_ms = shared.latency.lock().unwrap().summary();
    if !pids.is_empty() {
        let cpu = cpu1 - cpu0;
        let minutes = elapsed.as_secs_f64() / 60.0;
        res.server_cost = Some(ServerCost {
            pids,
            cpu_s: cpu,
            cpu_s_ramp: cpu0 - cpu_idle,
            cpu_s_per_player_min: cpu / (n.max(1) as f64 * minutes),
            cpu_util: cpu / elapsed.as_secs_f64(),
            pss_idle_kib: pss_idle,
            pss_loaded_kib: pss_loaded,
            mem_per_player_kib: (pss_loaded as f64 - pss_idle as f64) / n.max(1) as f64,
        });
    }
    Ok(res)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

fn print_result(r: &RunResult) {
    println!(
        "{} [{} {} {}]: {} players, {:.0} s window",
        r.label, r.server, r.proto, r.stream, r.players, r.duration_s
    );
    println!(
        "  connected {}  picture {}  kept up {} (late {}, short {})  stalls {}  skips {}  {:.2} Mbit/s/player  {:.1} fps/player",
        r.connected,
        r.got_picture,
        r.kept_up,
        r.too_late,
        r.too_few_frames,
        r.stalls,
        r.skips,
        r.mbit_per_player,
        r.video_fps_per_player
    );
    println!(
        "  time to first frame ms: p50 {} p99 {} max {}",
        opt(r.ttff_ms.p50),
        opt(r.ttff_ms.p99),
        opt(r.ttff_ms.max)
    );
    println!(
        "  latency ms ({} samples): p50 {} p99 {} max {}",
        r.latency_ms.samples,
        opt(r.latency_ms.p50),
        opt(r.latency_ms.p99),
        opt(r.latency_ms.max)
    );
    if let Some(c) = &r.server_cost {
        println!(
            "  server: {:.2} CPU s in window ({:.0}% of a core), {:.4} CPU s per player-minute, PSS {} → {} KiB, {:.1} KiB per player",
            c.cpu_s,
            c.cpu_util * 100.0,
            c.cpu_s_per_player_min,
            c.pss_idle_kib,
            c.pss_loaded_kib,
            c.mem_per_player_kib
        );
    }
    if let Some(h) = &r.hls {
        let c = &h.counters;
        println!(
            "  HLS: target {} s, part target {} ms, {} of {} players low-latency; late after {:.0} ms",
            opt(c.target_duration_s),
            opt(c.part_target_ms),
            c.low_latency_players,
            r.players,
            h.late_limit_ms
        );
        println!(
            "  requests: {} multivariant, {} playlists, {} blocking reloads, {} inits, {} parts ({} hinted, {} live), {} segments; {} HTTP errors, {} fell behind the window",
            c.multivariant,
            c.playlists,
            c.blocking_reloads,
            c.inits,
            c.parts,
            c.hinted_parts,
            c.live_parts,
            c.segments,
            c.http_errors,
            c.behind_window
        );
        if h.part_latency_ms.samples > 0 {
            println!(
                "  part availability latency ms ({} frames): p50 {} p99 {} max {}; last frame of a part p50 {} p99 {}; goal p99 <= {} ms: {}",
                h.part_latency_ms.samples,
                opt(h.part_latency_ms.p50),
                opt(h.part_latency_ms.p99),
                opt(h.part_latency_ms.max),
                opt(h.part_tail_latency_ms.p50),
                opt(h.part_tail_latency_ms.p99),
                opt(h.part_goal_ms),
                match h.part_goal_met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "-",
                }
            );
        }
    }
    if let Some(s) = &r.srt {
        println!(
            "  SRT: {} connections, {} packets, {} lost, {} recovered, {} dropped too late, {} duplicates, {} undecryptable, {} NAKs sent, {} TS errors",
            s.connections,
            s.packets,
            s.lost,
            s.recovered,
            s.dropped,
            s.duplicates,
            s.undecryptable,
            s.naks_sent,
            s.ts_errors
        );
    }
    if let Some(s) = &r.rtsp {
        println!(
            "  RTSP ({}): {} playing, {} tracks, {} RTP packets, {} lost (+{} before the first), {} reordered, {} late or duplicate, {} bad, {} frames dropped; {} RTCP received, {} receiver reports sent",
            if s.udp { "UDP" } else { "TCP interleaved" },
            s.connections,
            s.tracks,
            s.packets,
            s.lost,
            s.lost_at_start,
            s.reordered,
            s.late_or_duplicate,
            s.bad_packets,
            s.dropped_frames,
            s.rtcp,
            s.reports_sent
        );
    }
    if let Some(w) = &r.whep {
        println!(
            "  WHEP: {} answered (POST → answer ms p50 {} p99 {}), {} connected (ICE+DTLS ms p50 {} p99 {}), {} with audio; {} datagrams, {} RTP packets in frames, {} sequence gaps, {} discontinuities, {} NACKs and {} PLIs sent; {} DELETEs failed",
            w.answered,
            opt(w.answer_ms.p50),
            opt(w.answer_ms.p99),
            w.connected,
            opt(w.connect_ms.p50),
            opt(w.connect_ms.p99),
            w.with_audio,
            w.datagrams,
            w.rtp_packets,
            w.seq_gaps,
            w.discontinuities,
            w.nacks_sent,
            w.plis_sent,
            w.delete_failed
        );
    }
    println!("  client CPU s in window: {:.2}", r.client_cpu_s);
    for (e, k) in &r.errors {
        println!("  error ×{k}: {e}");
    }
    if let Some(p) = &r.publisher {
        if let Some(e) = &p.error {
            println!("  publisher error: {e}");
        }
        println!(
            "  publishers: {}, {} frames, max late {:.1} ms",
            r.publishers, p.frames, p.max_late_ms
        );
        if let Some(s) = &p.srt {
            println!(
                "  SRT publishing: {} packets, {} retransmitted, {} dropped unacknowledged, {} NAKs received, RTT {:.1} ms",
                s.packets, s.retransmitted, s.dropped, s.naks_received, s.rtt_ms
            );
        }
        if let Some(s) = &p.rtsp {
            println!(
                "  RTSP publishing: {} RTP packets, {} payload bytes",
                s.packets, s.octets
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny synthetic FLV: 2 s of 25 fps "H.264" (key frame every 25) and
    /// AAC every 23 ms. Nothing decodes it; servers and players only look at
    /// the headers.
    pub(crate) fn synthetic_flv() -> Vec<u8> {
        use rill_flv::stream::{header, tag};
        let mut f = header(true, true).to_vec();
        let mut md = vec![0x02, 0x00, 10];
        md.extend_from_slice(b"onMetaData");
        md.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        f.extend_from_slice(&tag(18, 0, &md));
        // A real avcC (the TS muxer of the SRT publisher reads it).
        let mut avcc = vec![0x17, 0, 0, 0, 0];
        avcc.extend_from_slice(&media::tests::avcc());
        f.extend_from_slice(&tag(9, 0, &avcc));
        f.extend_from_slice(&tag(8, 0, &[0xaf, 0, 0x12, 0x10]));
        let mut frames: Vec<(u32, u8, Vec<u8>)> = Vec::new();
        for i in 0..50u32 {
            let key = i % 25 == 0;
            let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 200];
            b.push(if key { 0x65 } else { 0x41 });
            b.extend(std::iter::repeat_n(0x5a, 199));
            frames.push((i * 40, 9, b));
        }
        for i in 0..87u32 {
            frames.push((i * 23, 8, vec![0xaf, 1, 0x21, 0x10, 0x04]));
        }
        frames.sort_by_key(|f| (f.0, f.1));
        for (ts, k, b) in frames {
            f.extend_from_slice(&tag(k, ts, &b));
        }
        f
    }

    #[test]
    fn file_loops_with_stamps() {
        let file = FlvFile::parse(bytes::Bytes::from(synthetic_flv())).unwrap();
        // Audio's next frame is due at 2001 ms, video's at 2000 ms.
        assert_eq!(file.period_ms, 2001);
        assert_eq!(file.gop_ms(), 1001);
        let mut l = flvsrc::Looper::new(file.clone());
        let n = file.frames.len();
        let mut last = 0;
        for i in 0..2 * n + 1 {
            let ts = l.next_ts();
            assert!(ts >= last, "timestamps go on across laps");
            last = ts;
            let t = l.next();
            if i == n {
                assert_eq!(t.ts, 2001);
            }
            if t.kind == 9 {
                assert!(sei::find(&t.body[..64.min(t.body.len())], 4).is_some());
            }
        }
    }

    #[test]
    fn hist_quantiles() {
        let mut h = stats::Hist::default();
        for v in 1..=10_000u64 {
            h.add(v);
        }
        let q = h.summary();
        assert!((q.p50.unwrap() - 5.0).abs() < 0.05, "{q:?}");
        assert!((q.p99.unwrap() - 9.9).abs() < 0.1, "{q:?}");
        assert_eq!(q.max, Some(10.0));
    }

    /// The null server and players over RTMP and HTTP-FLV, for real, on
    /// loopback: everyone gets a picture at once (GOP cache) and keeps up.
    #[test]
    fn null_server_feeds_players() {
        let dir = std::env::temp_dir().join(format!("rill-loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.flv");
        std::fs::write(&path, synthetic_flv()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = FlvFile::load(&path).unwrap();
        std::thread::spawn(move || null::run(&format!("127.0.0.1:{port}"), file, false));
        std::thread::sleep(Duration::from_millis(300));
        for play in [
            format!("rtmp://127.0.0.1:{port}/live/test"),
            format!("http://127.0.0.1:{port}/live/test.flv"),
        ] {
            let a = RunArgs::parse_from([
                "run",
                "--play",
                &play,
                "--players",
                "5",
                "--duration",
                "1.5",
                "--warmup",
                "0.2",
                "--settle",
                "0.2",
                "--ramp-rate",
                "50",
                "--file",
                path.to_str().unwrap(),
            ]);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(run(a)).unwrap();
            assert_eq!(r.kept_up, 5, "{play}: {r:?}");
            assert!(r.ttff_ms.p99.unwrap() < 500.0, "{play}: {r:?}");
            assert!(r.latency_ms.samples > 50, "{play}: {r:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The null HLS server and LL-HLS and classic HLS players, for real,
    /// on loopback: everyone starts from the running muxer and keeps up,
    /// the LL-HLS ones through preload hints and blocking reloads, and
    /// their part latency is measured.
    #[test]
    fn null_hls_server_feeds_players() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = FlvFile::parse(bytes::Bytes::from(synthetic_flv())).unwrap();
        std::thread::spawn(move || nullhls::run(&format!("127.0.0.1:{port}"), file));
        let url = format!("http://127.0.0.1:{port}/live/test.m3u8");
        for proto in ["hls", "hls-ts"] {
            let a = RunArgs::parse_from([
                "run",
                "--proto",
                proto,
                "--url",
                &url,
                "--players",
                "4",
                "--duration",
                "3",
                "--warmup",
                "2.5",
                "--settle",
                "0.5",
                "--ramp-rate",
                "50",
            ]);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(run(a)).unwrap();
            assert!(r.errors.is_empty(), "{proto}: {r:?}");
            assert_eq!(r.kept_up, 4, "{proto}: {r:?}");
            assert!(r.latency_ms.samples > 50, "{proto}: {r:?}");
            let h = r.hls.as_ref().unwrap();
            let c = &h.counters;
            if proto == "hls-ts" {
                assert!(c.segments > 0 && c.low_latency_players == 0, "{c:?}");
                continue;
            }
            assert_eq!(c.low_latency_players, 4, "{c:?}");
            assert!(c.hinted_parts > 20 && c.blocking_reloads > 20, "{c:?}");
            assert!(h.part_latency_ms.samples > 50, "{h:?}");
            // A part's first frame waits for its part (200 ms) at least.
            assert!(h.part_latency_ms.p99.unwrap() >= 150.0, "{h:?}");
        }
    }

    #[test]
    fn proto_from_url_and_nth_stream() {
        assert_eq!(Proto::of_url("rtmp://h/live/x"), Proto::Rtmp);
        assert_eq!(Proto::of_url("http://h/live/x.flv"), Proto::HttpFlv);
        assert_eq!(Proto::of_url("http://h/live/x.m3u8?format=ts"), Proto::Hls);
        assert_eq!(Proto::of_url("http://h/live/x.mp4"), Proto::Fmp4);
        assert_eq!(
            Proto::of_url("srt://h:9000?streamid=read:live/x.m3u8"),
            Proto::Srt
        );
        assert_eq!(Proto::Srt.name(), "srt");
        assert_eq!(Proto::of_url("http://h:8080/live/x/whep"), Proto::Whep);
        assert_eq!(Proto::of_url("http://h/live/x/whep?token=t"), Proto::Whep);
        assert_eq!(Proto::of_url("http://h/live/whep.flv"), Proto::HttpFlv);
        assert_eq!(Proto::Whep.name(), "whep");
        let PlayUrl::Whep(u) = PlayUrl::parse("http://h:1/live/x", Proto::Whep)
            .unwrap()
            .nth(3, 4)
        else {
            panic!("not WHEP");
        };
        assert_eq!(u.http.path, "/live/x-3/whep");
        let PlayUrl::Srt(u) = PlayUrl::parse(
            "srt://h:9000?streamid=read:live/x&latency=200",
            Proto::of_url("srt://h:9000"),
        )
        .unwrap()
        .nth(1, 2) else {
            panic!("not SRT");
        };
        assert_eq!(u.stream_id.as_deref(), Some("read:live/x-1"));
        assert_eq!(u.latency_ms, Some(200));
        assert!(PlayUrl::parse("srt://h/live/x", Proto::Srt).is_err());
        assert_eq!(
            nth_path("/live/x.m3u8?format=ts", 2),
            "/live/x-2.m3u8?format=ts"
        );
        assert_eq!(nth_path("/live/x", 1), "/live/x-1");
        assert_eq!(nth_path("/a.b/x.flv", 0), "/a.b/x-0.flv");
        let PlayUrl::Hls(u, true) = PlayUrl::parse("http://h:1/live/x.m3u8", Proto::HlsTs).unwrap()
        else {
            panic!("not classic HLS");
        };
        assert_eq!(u.path, "/live/x.m3u8?format=ts");
    }

    /// The HLS (LL and classic) and fMP4 players, end to end, against the
    /// test server of `mockhls` (the contract of Rill's HLS plugin): all
    /// keep up, the LL-HLS ones through preload hints and blocking
    /// reloads, and the part availability latency is measured.
    #[test]
    fn hls_and_fmp4_players_against_a_mock_server() {
        let port = mockhls::start();
        for (proto, url) in [
            ("hls", format!("http://127.0.0.1:{port}/live/x.m3u8")),
            (
                "hls",
                format!("http://127.0.0.1:{port}/live/x.m3u8?nohint=1"),
            ),
            ("hls-ts", format!("http://127.0.0.1:{port}/live/x.m3u8")),
            ("fmp4", format!("http://127.0.0.1:{port}/live/x.mp4")),
        ] {
            let a = RunArgs::parse_from([
                "run",
                "--proto",
                proto,
                "--url",
                &url,
                "--players",
                "4",
                "--duration",
                "3",
                "--warmup",
                "1.5",
                "--settle",
                "0.5",
                "--ramp-rate",
                "50",
                "--per-player",
            ]);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(run(a)).unwrap();
            print_result(&r);
            assert_eq!(r.proto, proto);
            assert!(r.errors.is_empty(), "{proto}: {r:?}");
            assert_eq!(r.kept_up, 4, "{proto}: {r:?}");
            assert!(r.latency_ms.samples > 20, "{proto}: {r:?}");
            assert_eq!(r.per_player.len(), 4);
            assert!(r.per_player.iter().all(|p| p.latency_p99_ms.is_some()));
            match proto {
                "hls" => {
                    let h = r.hls.as_ref().unwrap();
                    let c = &h.counters;
                    assert_eq!(c.low_latency_players, 4, "{c:?}");
                    assert_eq!(c.part_target_ms, Some(200.0));
                    assert!(c.live_parts > 20 && c.blocking_reloads > 20, "{c:?}");
                    if url.contains("nohint") {
                        // Blocking reloads only, then each part.
                        assert_eq!(c.hinted_parts, 0, "{c:?}");
                    } else {
                        assert!(c.hinted_parts > 20, "{c:?}");
                    }
                    assert_eq!(c.segments, 0, "{c:?}");
                    assert!(h.part_latency_ms.samples > 50, "{h:?}");
                    // Parts of 200 ms: the first frame of a part waits for
                    // the part; a loaded test machine gets slack.
                    let p99 = h.part_latency_ms.p99.unwrap();
                    assert!((150.0..1000.0).contains(&p99), "{h:?}");
                    assert!(h.part_tail_latency_ms.p50.unwrap() < p99);
                    assert_eq!(h.part_goal_ms, Some(250.0));
                }
                "hls-ts" => {
                    let c = &r.hls.as_ref().unwrap().counters;
                    assert_eq!(c.low_latency_players, 0);
                    assert!(c.segments >= 8 && c.parts == 0, "{c:?}");
                    assert!(c.playlists > c.segments, "{c:?}");
                }
                _ => assert!(r.hls.is_none()),
            }
        }
    }
}
