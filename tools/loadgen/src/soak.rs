//! `soak`: a bounded churn run against a running server (scripts/soak
//! starts one). Streams are re-published every few seconds (RTMP, and SRT
//! and RTSP when given), players join and leave over every protocol given,
//! and a plugin is reloaded every few seconds. The server's resident
//! memory, open descriptors, runtime tasks and threads are sampled, and,
//! apart, the plugin library copies it maps (never unmapped, by design).
//! After the warm-up, growth past the tolerance fails the run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::flvsrc::FlvFile;
use crate::stats::{Player, Shared};
use crate::{publish, PlayUrl, Proto};

#[derive(clap::Parser, Clone)]
pub struct SoakArgs {
    /// The server's process id.
    #[arg(long)]
    pub server_pid: u32,
    /// The server's HTTP address (API, HTTP-FLV, HLS, fMP4), host:port.
    #[arg(long)]
    pub http: String,
    /// RTMP address, host:port (publishers, and players).
    #[arg(long)]
    pub rtmp: String,
    /// RTSP address, host:port: RTSP publishers and players (TCP and UDP).
    #[arg(long)]
    pub rtsp: Option<String>,
    /// SRT address, host:port: SRT publishers and players.
    #[arg(long)]
    pub srt: Option<String>,
    /// The FLV file published (looped).
    #[arg(long)]
    pub file: PathBuf,
    /// Length of the run.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Streams, each re-published every 4–12 s.
    #[arg(long, default_value_t = 6)]
    pub streams: usize,
    /// Players, each playing a random stream over a random protocol for
    /// 2–10 s, then the next.
    #[arg(long, default_value_t = 30)]
    pub players: usize,
    /// Seconds between plugin reloads (0: none).
    #[arg(long, default_value_t = 10.0)]
    pub reload_every: f64,
    /// Publish each stream once for the whole run (players still churn):
    /// then a player that ends early with an error counts as lost, and a
    /// lost player fails the run (the reload storm).
    #[arg(long)]
    pub steady: bool,
    /// The server's plugins dir: a reload drops a new build there (the
    /// library's bytes and a marker: another file, the same code) before
    /// asking for the reload; without it, the reload of an unchanged file
    /// changes nothing.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Plugins reloaded in turn.
    #[arg(long, value_delimiter = ',', default_value = "rtmp,flv,hls")]
    pub reload: Vec<String>,
    /// Growth allowed after the warm-up, percent (plus a small absolute
    /// slack per figure: 8 MiB, 16 descriptors, 64 tasks, 2 threads).
    #[arg(long, default_value_t = 10.0)]
    pub tolerance: f64,
    /// Samples written here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The chart (SVG).
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// One sample of the server.
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct Sample {
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub tasks: u64,
    pub threads: u64,
    /// Plugin library copies mapped (one per generation ever loaded).
    pub plugin_copies: u64,
    /// Their resident pages, KiB (part of rss_kib).
    pub plugin_rss_kib: u64,
    /// Plugin instances created and not destroyed.
    pub instances_alive: u64,
    pub players: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Counters {
    pub publishes: u64,
    pub publish_failures: u64,
    pub plays: u64,
    pub plays_with_picture: u64,
    /// Plays that ended with an error before their time.
    pub plays_lost: u64,
    /// Plays with a stall (no media for longer than a stall).
    pub plays_stalled: u64,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// Plugin instances at the end, after every player and publisher left.
#[derive(Serialize, Debug, Default)]
pub struct Instances {
    pub plugins: u64,
    pub created: u64,
    pub destroyed: u64,
    pub freed: u64,
    pub alive: u64,
    /// One alive per plugin, and every destroyed one freed.
    pub ok: bool,
}

/// A figure's level after the warm-up and at the end, and the verdict.
#[derive(Serialize, Debug)]
pub struct Growth {
    pub figure: &'static str,
    pub start: f64,
    pub end: f64,
    pub allowed: f64,
    pub ok: bool,
}

#[derive(Serialize, Debug)]
pub struct SoakResult {
    pub minutes: f64,
    pub warmup_s: f64,
    pub protocols: Vec<&'static str>,
    pub counters: Counters,
    pub growth: Vec<Growth>,
    pub plugin_copies: (u64, u64),
    pub instances: Instances,
    pub ok: bool,
    pub samples: Vec<Sample>,
}

/// A small xorshift: the run needs variety, not statistics.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_secs_f64(lo + (hi - lo) * self.below(1000) as f64 / 1000.0)
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

pub fn run(a: SoakArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let res = rt.block_on(soak(a.clone()))?;
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&res).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.svg {
        std::fs::write(p, chart(&res)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!("{}", summary(&res));
    if res.ok {
        Ok(())
    } else {
        Err("the run failed (see the line above: growth past the tolerance, lost players or instances left)".into())
    }
}

/// The players' protocols the addresses given allow.
fn protocols(a: &SoakArgs) -> Vec<Proto> {
    let mut p = vec![
        Proto::Rtmp,
        Proto::HttpFlv,
        Proto::Hls,
        Proto::HlsTs,
        Proto::Fmp4,
    ];
    if a.rtsp.is_some() {
        p.extend([Proto::Rtsp, Proto::RtspUdp]);
    }
    if a.srt.is_some() {
        p.push(Proto::Srt);
    }
    p
}

fn play_url(a: &SoakArgs, proto: Proto, stream: usize) -> String {
    let path = format!("live/soak{stream}");
    match proto {
        Proto::Rtmp => format!("rtmp://{}/{path}", a.rtmp),
        Proto::HttpFlv => format!("http://{}/{path}.flv", a.http),
        Proto::Hls | Proto::HlsTs => format!("http://{}/{path}.m3u8", a.http),
        Proto::Fmp4 => format!("http://{}/{path}.mp4", a.http),
        // Not among the soak's players; the URL all the same.
        Proto::Whep => format!("http://{}/{path}/whep", a.http),
        Proto::Rtsp => format!("rtsp://{}/{path}", a.rtsp.as_deref().unwrap_or_default()),
        Proto::RtspUdp => format!(
            "rtsp://{}/{path}?transport=udp",
            a.rtsp.as_deref().unwrap_or_default()
        ),
        Proto::Srt => format!(
            "srt://{}?streamid=read:{path}",
            a.srt.as_deref().unwrap_or_default()
        ),
    }
}

/// Publisher `stream`'s URL: RTMP for most, SRT and RTSP for some.
fn publish_url(a: &SoakArgs, stream: usize) -> String {
    let path = format!("live/soak{stream}");
    match (stream % 4, &a.srt, &a.rtsp) {
        (2, Some(srt), _) => format!("srt://{srt}?streamid=publish:{path}"),
        (3, _, Some(rtsp)) => format!("rtsp://{rtsp}/{path}"),
        _ => format!("rtmp://{}/{path}", a.rtmp),
    }
}

#[derive(Default)]
struct Live {
    publishes: AtomicU64,
    publish_failures: AtomicU64,
    plays: AtomicU64,
    plays_with_picture: AtomicU64,
    plays_lost: AtomicU64,
    plays_stalled: AtomicU64,
    players: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

async fn soak(a: SoakArgs) -> Result<SoakResult, String> {
    let file = FlvFile::load(&a.file)?;
    let protos = protocols(&a);
    let total = Duration::from_secs_f64(a.minutes * 60.0);
    let t0 = Instant::now();
    let end = t0 + total;
    // A fifth of the run, at least 20 s, warms up: the pools, caches and
    // rings reach their working size.
    let warmup = (total / 5).max(Duration::from_secs(20)).min(total / 2);
    let live = Arc::new(Live::default());
    let mut tasks = Vec::new();

    for s in 0..a.streams {
        let (a, file, live) = (a.clone(), file.clone(), live.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed() ^ (s as u64) << 32);
            let target = match publish::Target::parse(&publish_url(&a, s)) {
                Ok(t) => t,
                Err(e) => return eprintln!("soak: {e}"),
            };
            while Instant::now() + Duration::from_secs(1) < end {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let h = tokio::spawn(publish::run(
                    target.clone(),
                    file.clone(),
                    stop_rx,
                    ready_tx,
                ));
                match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
                    Ok(Ok(Ok(()))) => {
                        live.publishes.fetch_add(1, Ordering::Relaxed);
                        let until = match a.steady {
                            true => end,
                            false => (Instant::now() + rng.secs(4.0, 12.0)).min(end),
                        };
                        tokio::time::sleep_until(until.into()).await;
                    }
                    _ => {
                        live.publish_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = stop_tx.send(true);
                let _ = h.await;
                tokio::time::sleep(rng.secs(0.2, 1.0)).await;
            }
        }));
    }

    for j in 0..a.players {
        let (a, live, protos) = (a.clone(), live.clone(), protos.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed() ^ (j as u64) << 20);
            let shared = Shared::default();
            tokio::time::sleep(rng.secs(0.5, 3.0)).await;
            while Instant::now() + Duration::from_secs(1) < end {
                let proto = protos[rng.below(protos.len() as u64) as usize];
                let stream = rng.below(a.streams as u64) as usize;
                let until = (Instant::now() + rng.secs(2.0, 10.0)).min(end);
                let Ok(url) = PlayUrl::parse(&play_url(&a, proto, stream), proto) else {
                    continue;
                };
                let mut p = Player::new();
                live.players.fetch_add(1, Ordering::Relaxed);
                // Republishing, a player may find its stream between two
                // publishes or see it end: churn, not a failure. Steady,
                // an early end is a lost player.
                let r = url.play(&mut p, &shared, until, 32 * 1024).await;
                live.players.fetch_sub(1, Ordering::Relaxed);
                live.plays.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = r {
                    if Instant::now() + Duration::from_millis(500) < until {
                        live.plays_lost.fetch_add(1, Ordering::Relaxed);
                        if a.steady {
                            eprintln!("soak: a {} player lost: {e}", proto.name());
                        }
                    }
                }
                if p.stalls > 0 {
                    live.plays_stalled.fetch_add(1, Ordering::Relaxed);
                }
                if p.first_key.is_some() {
                    live.plays_with_picture.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(rng.secs(0.1, 0.5)).await;
            }
        }));
    }

    if a.reload_every > 0.0 && !a.reload.is_empty() {
        let (a, live) = (a.clone(), live.clone());
        tasks.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(a.reload_every);
            let mut i = 0;
            // The builds as installed, before any marker.
            let builds: Vec<Option<Vec<u8>>> = a
                .reload
                .iter()
                .map(|n| {
                    let dir = a.plugins_dir.as_ref()?;
                    std::fs::read(dir.join(format!("librill_plugin_{n}.so"))).ok()
                })
                .collect();
            while Instant::now() + every < end {
                tokio::time::sleep(every).await;
                let k = i % a.reload.len();
                let name = &a.reload[k];
                i += 1;
                if let (Some(dir), Some(bytes)) = (&a.plugins_dir, &builds[k]) {
                    if let Err(e) = install_build(dir, name, bytes, i) {
                        eprintln!("soak: new build of {name}: {e}");
                    }
                }
                match post(&a.http, &format!("/api/v1/plugins/{name}/reload")).await {
                    Ok(200) => live.reloads.fetch_add(1, Ordering::Relaxed),
                    Ok(st) => {
                        eprintln!("soak: reload {name}: HTTP {st}");
                        live.reload_failures.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("soak: reload {name}: {e}");
                        live.reload_failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    // Samples: about 200 over the run, one a second at most.
    let every = (total / 200).max(Duration::from_secs(1));
    let mut samples = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        samples.push(sample(&a, t0, live.players.load(Ordering::Relaxed)).await?);
        tokio::time::sleep(every.min(end - now)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    // After the last player and publisher: what is left. Old generations
    // are destroyed when their last session ends: give them 10 s.
    let mut instances = Instances::default();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        instances = instance_counts(&a.http).await;
        if instances.ok {
            break;
        }
    }
    samples.push(sample(&a, t0, 0).await?);

    let after: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t_s >= warmup.as_secs_f64())
        .collect();
    let q = (after.len() / 4).max(1);
    let (head, tail) = (
        &after[..q.min(after.len())],
        &after[after.len().saturating_sub(q)..],
    );
    let tol = a.tolerance / 100.0;
    type Get = fn(&Sample) -> u64;
    let figures: [(&'static str, Get, f64); 4] = [
        // The plugin copies' pages apart: they stay by design.
        (
            "rss_kib",
            |s| s.rss_kib.saturating_sub(s.plugin_rss_kib),
            8192.0,
        ),
        ("fds", |s| s.fds, 16.0),
        ("tasks", |s| s.tasks, 64.0),
        ("threads", |s| s.threads, 2.0),
    ];
    let growth: Vec<Growth> = figures
        .iter()
        .map(|&(figure, get, slack)| {
            let start = median(head.iter().map(get));
            let end = median(tail.iter().map(get));
            let allowed = start * (1.0 + tol) + slack;
            Growth {
                figure,
                start,
                end,
                allowed,
                ok: end <= allowed,
            }
        })
        .collect();
    let lost = live.plays_lost.load(Ordering::Relaxed);
    let ok =
        !after.is_empty() && growth.iter().all(|g| g.ok) && instances.ok && !(a.steady && lost > 0);
    let l = &live;
    Ok(SoakResult {
        minutes: a.minutes,
        warmup_s: warmup.as_secs_f64(),
        protocols: protos.iter().map(|p| p.name()).collect(),
        counters: Counters {
            publishes: l.publishes.load(Ordering::Relaxed),
            publish_failures: l.publish_failures.load(Ordering::Relaxed),
            plays: l.plays.load(Ordering::Relaxed),
            plays_with_picture: l.plays_with_picture.load(Ordering::Relaxed),
            plays_lost: lost,
            plays_stalled: l.plays_stalled.load(Ordering::Relaxed),
            reloads: l.reloads.load(Ordering::Relaxed),
            reload_failures: l.reload_failures.load(Ordering::Relaxed),
        },
        growth,
        plugin_copies: (
            samples.first().map_or(0, |s| s.plugin_copies),
            samples.last().map_or(0, |s| s.plugin_copies),
        ),
        instances,
        ok,
        samples,
    })
}

fn median(v: impl Iterator<Item = u64>) -> f64 {
    let mut v: Vec<u64> = v.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[v.len() / 2] as f64
}

async fn sample(a: &SoakArgs, t0: Instant, players: u64) -> Result<Sample, String> {
    let pid = a.server_pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("the server (pid {pid}) is gone: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    // The private copies of plugin libraries: removed once mapped, so
    // "(deleted)" .so mappings, one path per generation.
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut copies: Vec<&str> = Vec::new();
    let mut plugin_rss_kib = 0;
    let mut in_copy = false;
    for l in smaps.lines() {
        // A mapping's first line starts with its address range.
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_copy = l.ends_with(".so (deleted)");
            if in_copy {
                copies.extend(l.split_whitespace().nth(5));
            }
        } else if in_copy {
            if let Some(v) = l.strip_prefix("Rss:") {
                plugin_rss_kib += v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    copies.sort_unstable();
    copies.dedup();
    let server = get_json(&a.http, "/api/v1/server")
        .await
        .unwrap_or_default();
    Ok(Sample {
        t_s: t0.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
        tasks: server["tasks"].as_u64().unwrap_or(0),
        plugin_copies: copies.len() as u64,
        plugin_rss_kib,
        instances_alive: server["plugin_instances"]["alive"].as_u64().unwrap_or(0),
        players,
    })
}

async fn instance_counts(http: &str) -> Instances {
    let server = get_json(http, "/api/v1/server").await.unwrap_or_default();
    let plugins = get_json(http, "/api/v1/plugins").await.unwrap_or_default();
    let n = |k: &str| server["plugin_instances"][k].as_u64().unwrap_or(0);
    let mut i = Instances {
        plugins: plugins["plugins"].as_array().map_or(0, |p| p.len() as u64),
        created: n("created"),
        destroyed: n("destroyed"),
        freed: n("freed"),
        alive: n("alive"),
        ok: false,
    };
    i.ok = i.created > 0 && i.alive == i.plugins && i.freed == i.destroyed;
    i
}

/// Writes `bytes` and a marker beside the plugin and renames it over the
/// plugin's file (a running server has the old one mapped: never rewrite
/// in place).
fn install_build(dir: &std::path::Path, name: &str, bytes: &[u8], i: usize) -> std::io::Result<()> {
    let file = dir.join(format!("librill_plugin_{name}.so"));
    let tmp = dir.join(format!(".librill_plugin_{name}.so.soak"));
    let mut b = bytes.to_vec();
    b.extend_from_slice(format!("rill-soak-build-{i}").as_bytes());
    std::fs::write(&tmp, b)?;
    std::fs::rename(&tmp, &file)
}

/// One HTTP/1.1 exchange on its own connection: (status, body).
async fn exchange(addr: &str, head: &str) -> Result<(u16, Vec<u8>), String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{addr}: no HTTP answer"))?;
        let body = text
            .find("\r\n\r\n")
            .map_or(Vec::new(), |i| buf[i + 4..].to_vec());
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| format!("{addr}: no answer within 10 s"))?
}

async fn post(addr: &str, path: &str) -> Result<u16, String> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Ok(exchange(addr, &head).await?.0)
}

async fn get_json(addr: &str, path: &str) -> Result<serde_json::Value, String> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let (_, body) = exchange(addr, &head).await?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// The one line the run ends with.
pub fn summary(r: &SoakResult) -> String {
    let mut line = format!("soak: {:.1} min", r.minutes);
    for g in &r.growth {
        let (s, e) = if g.figure == "rss_kib" {
            (g.start / 1024.0, g.end / 1024.0)
        } else {
            (g.start, g.end)
        };
        let name = if g.figure == "rss_kib" {
            "RSS MiB (plugin copies apart)"
        } else {
            g.figure
        };
        let _ = write!(
            line,
            ", {name} {s:.1}→{e:.1}{}",
            if g.ok { "" } else { " (TOO MUCH)" }
        );
    }
    let c = &r.counters;
    let _ = write!(
        line,
        ", plugin copies mapped {}→{} (apart), {} plays ({} with picture, {} lost, {} stalled) over {}, {} publishes ({} failed), {} reloads ({} failed), instances {} created, {} destroyed, {} freed, {} alive for {} plugins: {}",
        r.plugin_copies.0,
        r.plugin_copies.1,
        c.plays,
        c.plays_with_picture,
        c.plays_lost,
        c.plays_stalled,
        r.protocols.join("/"),
        c.publishes,
        c.publish_failures,
        c.reloads,
        c.reload_failures,
        r.instances.created,
        r.instances.destroyed,
        r.instances.freed,
        r.instances.alive,
        r.instances.plugins,
        if r.ok { "ok" } else { "FAILED" }
    );
    line
}

/// Four panels (RSS, descriptors, tasks, threads) and the plugin copies,
/// over time; the warm-up shaded.
pub fn chart(r: &SoakResult) -> String {
    type Get = fn(&Sample) -> f64;
    let panels: [(&str, Get); 6] = [
        ("RSS without the plugin copies (MiB)", |s| {
            s.rss_kib.saturating_sub(s.plugin_rss_kib) as f64 / 1024.0
        }),
        ("open descriptors", |s| s.fds as f64),
        ("runtime tasks", |s| s.tasks as f64),
        ("threads", |s| s.threads as f64),
        ("plugin copies mapped", |s| s.plugin_copies as f64),
        ("their resident pages (MiB)", |s| {
            s.plugin_rss_kib as f64 / 1024.0
        }),
    ];
    let (w, ph, pad) = (720.0, 120.0, 40.0);
    let h = panels.len() as f64 * (ph + pad) + pad;
    let t_max = r.samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="20" font-size="13">{}</text>"#,
        xml(&summary(r).chars().take(110).collect::<String>())
    );
    for (i, (title, get)) in panels.iter().enumerate() {
        let top = pad + i as f64 * (ph + pad);
        let (x0, x1) = (pad + 40.0, w - pad);
        let vmax = r.samples.iter().map(get).fold(0.0, f64::max).max(1.0) * 1.1;
        let x = |t: f64| x0 + (x1 - x0) * t / t_max;
        let y = |v: f64| top + ph - ph * v / vmax;
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{top}" width="{}" height="{ph}" fill="#eee"/><text x="{x0}" y="{}">{title}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"##,
            x(r.warmup_s) - x0,
            top - 4.0,
            x0 - 4.0,
            top + 10.0,
            sig(vmax),
            x0 - 4.0,
            top + ph
        );
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{top}" width="{}" height="{ph}" fill="none" stroke="#888"/>"##,
            x1 - x0
        );
        let pts: Vec<String> = r
            .samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.t_s), y(get(s))))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{}"/>"##,
            pts.join(" ")
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">time: {:.0} s (warm-up shaded)</text></svg>"#,
        w - pad,
        h - 8.0,
        t_max
    );
    svg.push('\n');
    svg
}

fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
