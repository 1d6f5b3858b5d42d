//! Relays: pulls bring a stream from elsewhere into a local stream, pushes
//! forward a local stream elsewhere.
//!
//! - **Pulls** read `rtmp(s)://` (as a player), `http(s)://….flv`,
//!   `http(s)://….m3u8` (HLS: TS or fMP4 segments), `rtsp://` (DESCRIBE,
//!   SETUP over TCP interleaved, PLAY) and `srt://` (a caller receiving
//!   MPEG-TS) sources: from the config (for ever), the
//!   management API (kept in
//!   `state_dir/relay/jobs.json`), `on_demand` rules (when a player waits
//!   for a stream nobody publishes; stopped `stop_on_idle` after the last
//!   player), and the cluster (a player waits for a stream another node
//!   owns: pulled from that node over HTTP-FLV, marked as the owner's so
//!   this node does not claim it).
//! - **Pushes** publish a local stream to `rtmp(s)://`, `srt://` (a caller
//!   sending MPEG-TS) and `rtsp://` (ANNOUNCE, RECORD) targets: by rule
//!   when a matching stream is published, or through the API.
//! - Every attempt is one session of its own: an outbound TCP connection
//!   (RTMP, HTTP-FLV, RTSP), or a socket-less session: for SRT with a UDP
//!   socket of its own, for HLS with a connection per request (each a
//!   session that posts its response back); the protocols are the
//!   formats/ crates'. A
//!   failure (refused, garbage, a stall past `stall_timeout`, the far end
//!   gone) ends it with a reason, and the job retries after a backoff that
//!   doubles up to `retry_max`. A pull that fails leaves its stream in the
//!   host's reconnect grace, so players stay while the next attempt runs.
//! - One instance timer ticks the jobs (attempts due, idle pulls to stop).

#![forbid(unsafe_code)]

mod api;
mod config;
mod hls;
mod jobs;
mod pull;
mod push;
mod rtsp;
mod source;
mod srt;
mod store;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rill_abi::sdk::{
    ClusterOwner, Conn, ConnId, Error, FrameRef, Host, HttpRequest, Plugin, Result, SubscriberId,
};
use rill_abi::*;

use config::Config;
use jobs::{Jobs, Kind, Origin};
use source::Url;

/// The management routes (`/api/v1/plugins/relay/*`).
const ROUTE_API: u32 = 1;
/// The instance timer that ticks the jobs.
const TIMER_TICK: u64 = 1;
const TICK: Duration = Duration::from_millis(250);
/// A session's timer: the stall check and the protocol's clocks (every
/// 500 ms; every 10 ms for SRT).
const TIMER_SESSION: u64 = 2;
/// Cluster pulls retry at least this often: an owner that moved must be
/// found again within the publisher's reconnect grace.
const CLUSTER_RETRY_MAX: Duration = Duration::from_secs(1);

pub struct Relay {
    host: Host,
    cfg: Config,
    jobs: Mutex<Jobs>,
    /// Instance-level completions: what each token was for.
    pending: Mutex<HashMap<u64, Pending>>,
    next_token: std::sync::atomic::AtomicU64,
    store: store::Store,
    /// Bytes pulled and pushed since start, for the metrics.
    bytes_total: [std::sync::atomic::AtomicU64; 2],
}

enum Pending {
    /// The owner of job `0`'s stream.
    Locate(u64),
    Store(store::Step),
}

/// A session: one attempt of a job, one request of an HLS attempt, or an
/// API request.
pub enum Session {
    Pull(Box<pull::Pull>),
    Push(Box<push::Push>),
    Fetch(Box<hls::Fetch>),
    Api,
}

/// Ends a job's session (posted to it).
struct Stop(&'static str);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    fn token(&self, p: Pending) -> u64 {
        let n = self
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        lock(&self.pending).insert(n, p);
        n
    }

    fn wall_us(&self) -> i64 {
        self.host.wall_us()
    }

    /// Adds a job and starts it at the next tick. `Err` when a cap is reached.
    fn add_job(
        &self,
        kind: Kind,
        origin: Origin,
        url: Option<Url>,
        stream: &str,
        stop_on_idle: Duration,
    ) -> std::result::Result<u64, String> {
        let mut jobs = lock(&self.jobs);
        let cap = match kind {
            Kind::Pull => self.cfg.max_pulls,
            Kind::Push => self.cfg.max_pushes,
        };
        if jobs.count(kind) >= cap {
            return Err(format!("at most {cap} {kind:?}s (max_pulls, max_pushes)").to_lowercase());
        }
        if kind == Kind::Pull && jobs.pull_of(stream).is_some() {
            return Err(format!("{stream} is already pulled"));
        }
        let id = jobs.add(kind, origin, url, stream, self.wall_us());
        if let Some(j) = jobs.by_id.get_mut(&id) {
            j.stop_on_idle = stop_on_idle;
        }
        Ok(id)
    }

    /// Ends job `id`: its session closes, then it is gone.
    fn stop_job(&self, id: u64, why: &'static str) -> bool {
        let mut jobs = lock(&self.jobs);
        let Some(j) = jobs.by_id.get_mut(&id) else {
            return false;
        };
        rill_log!(self.host, Info, "relay {id} ({}): stopped: {why}", j.stream);
        match (j.conn, j.busy) {
            (Some(c), _) => {
                j.stopping = true;
                let _ = self.host.post(c, Box::new(Stop(why)));
            }
            // Its session is not known yet: stopped when it is.
            (None, true) => j.stopping = true,
            (None, false) => {
                jobs.by_id.remove(&id);
            }
        }
        true
    }

    /// Starts the attempts that are due, and stops idle pulls.
    fn tick(&self) {
        let now = self.wall_us();
        let mut idle = Vec::new();
        let mut due = Vec::new();
        {
            let jobs = lock(&self.jobs);
            for j in jobs.by_id.values() {
                let on_demand = matches!(j.origin, Origin::OnDemand | Origin::Cluster);
                // Idle: no player for stop_on_idle. Down as long: nothing
                // to play (the owner is gone, a local publisher took the
                // stream over, the source stays down); a new player asks
                // again.
                let limit = j.stop_on_idle.as_micros() as i64;
                if on_demand && !j.stopping {
                    if j.idle_since_us.is_some_and(|t| now - t >= limit) {
                        idle.push((j.id, "no player"));
                        continue;
                    }
                    if j.down_since_us.is_some_and(|t| now - t >= limit) {
                        idle.push((j.id, "nothing to pull"));
                        continue;
                    }
                }
                if j.due(now) {
                    due.push(j.id);
                }
            }
        }
        for (id, why) in idle {
            self.stop_job(id, why);
        }
        self.publish_metrics();
        for id in due {
            self.attempt(id);
        }
    }

    /// Starts one attempt of job `id`.
    fn attempt(&self, id: u64) {
        let mut jobs = lock(&self.jobs);
        let Some(j) = jobs.by_id.get_mut(&id) else {
            return;
        };
        j.attempts += 1;
        j.bytes = 0;
        j.busy = true;
        if j.origin == Origin::Cluster {
            // The owner may have moved: ask again every attempt.
            let stream = j.stream.clone();
            drop(jobs);
            let t = self.token(Pending::Locate(id));
            if let Err(e) = self.host.cluster_locate(ConnId::INSTANCE, &stream, t) {
                lock(&self.pending).remove(&t);
                self.failed(id, &format!("cluster lookup: {e}"));
            }
            return;
        }
        let Some(url) = j.url.clone() else {
            j.busy = false;
            return;
        };
        let (kind, stream) = (j.kind, j.stream.clone());
        drop(jobs);
        self.connect(id, kind, url, stream, false);
    }

    fn connect(&self, id: u64, kind: Kind, url: Url, stream: String, cluster: bool) {
        let flags = if url.scheme.tls() {
            RILL_CONNECT_TLS
        } else {
            0
        };
        let addr = url.addr.clone();
        let sessionless = url.sessionless();
        let state = match kind {
            Kind::Pull => Session::Pull(Box::new(pull::Pull::new(id, url, stream, cluster))),
            Kind::Push => Session::Push(Box::new(push::Push::new(id, url, stream))),
        };
        // SRT binds its own UDP socket in a session without a connection;
        // HLS opens a connection per request from one.
        let opened = if sessionless {
            self.host.session_open(state)
        } else {
            self.host.connect(&addr, flags, state)
        };
        match opened {
            Ok(conn) => {
                let mut jobs = lock(&self.jobs);
                // The attempt may have failed already (on another thread).
                if let Some(j) = jobs.by_id.get_mut(&id).filter(|j| j.busy) {
                    j.state = jobs::State::Connecting;
                    j.conn = Some(conn);
                    if j.stopping {
                        let _ = self.host.post(conn, Box::new(Stop("stopped")));
                    }
                }
            }
            Err(e) => self.failed(id, &format!("connect to {addr}: {e}")),
        }
    }

    /// The attempt of job `id` ended with `why`.
    fn failed(&self, id: u64, why: &str) {
        let now = self.wall_us();
        let mut jobs = lock(&self.jobs);
        let Some(j) = jobs.by_id.get_mut(&id) else {
            return;
        };
        if j.stopping {
            jobs.by_id.remove(&id);
            return;
        }
        let max = if j.origin == Origin::Cluster {
            CLUSTER_RETRY_MAX.min(self.cfg.retry_max)
        } else {
            self.cfg.retry_max
        };
        let initial = self.cfg.retry_initial.min(max);
        j.failed(why, now, initial, max);
        rill_log!(
            self.host,
            Warn,
            "relay {id} ({}): {why}; retrying in {:?}",
            j.stream,
            j.backoff
        );
    }

    /// The attempt of job `id` carries media.
    fn went_live(&self, id: u64) {
        let now = self.wall_us();
        if let Some(j) = lock(&self.jobs).by_id.get_mut(&id) {
            if j.state != jobs::State::Live {
                rill_log!(
                    self.host,
                    Info,
                    "relay {id}: {} {} {}",
                    j.stream,
                    if j.kind == Kind::Pull {
                        "pulled from"
                    } else {
                        "pushed to"
                    },
                    j.url.as_ref().map(|u| u.to_string()).unwrap_or_default()
                );
            }
            j.live(now);
        }
    }

    /// Whether job `id` still wants its attempt to run.
    fn wanted(&self, id: u64) -> bool {
        lock(&self.jobs).by_id.get(&id).is_some_and(|j| !j.stopping)
    }

    fn add_bytes(&self, id: u64, n: usize) {
        if let Some(j) = lock(&self.jobs).by_id.get_mut(&id) {
            j.bytes += n as u64;
            self.bytes_total[j.kind as usize]
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `rill_plugin_relay_jobs{kind, state}` and
    /// `rill_plugin_relay_bytes_total{kind}` at `/metrics`.
    fn publish_metrics(&self) {
        use jobs::State;
        let mut counts = [[0u32; 3]; 2];
        for j in lock(&self.jobs).by_id.values().filter(|j| !j.stopping) {
            let state = match j.state {
                State::Connecting => 0,
                State::Live => 1,
                State::Retrying => 2,
            };
            counts[j.kind as usize][state] += 1;
        }
        for (k, kind) in ["pull", "push"].into_iter().enumerate() {
            for (i, state) in ["connecting", "live", "retrying"].into_iter().enumerate() {
                let _ = self.host.metric_set(
                    "jobs",
                    &[("kind", kind), ("state", state)],
                    false,
                    counts[k][i] as f64,
                );
            }
            let bytes = self.bytes_total[k].load(std::sync::atomic::Ordering::Relaxed);
            let _ = self
                .host
                .metric_set("bytes", &[("kind", kind)], true, bytes as f64);
        }
    }

    /// A player waits for `path`, which nobody publishes: an on-demand
    /// rule, else the cluster, may bring it.
    fn waiting(&self, path: &str) {
        if lock(&self.jobs).pull_of(path).is_some() {
            return;
        }
        for rule in &self.cfg.on_demand {
            match rule.url_for(path) {
                Some(Ok(url)) => {
                    if let Ok(id) = self.add_job(
                        Kind::Pull,
                        Origin::OnDemand,
                        Some(url),
                        path,
                        rule.stop_on_idle,
                    ) {
                        rill_log!(self.host, Info, "relay {id}: {path} pulled on demand");
                        self.attempt(id);
                    }
                    return;
                }
                Some(Err(e)) => {
                    rill_log!(self.host, Warn, "on_demand rule for {path}: {e}");
                    return;
                }
                None => {}
            }
        }
        if self.cfg.cluster {
            let idle = self.cfg.cluster_stop_on_idle;
            if let Ok(id) = self.add_job(Kind::Pull, Origin::Cluster, None, path, idle) {
                self.attempt(id);
            }
        }
    }

    /// The owner of job `id`'s stream, from the cluster.
    fn located(&self, id: u64, result: Result<i64>, data: &[u8]) {
        let (stream, stopping) = match lock(&self.jobs).by_id.get(&id) {
            Some(j) => (j.stream.clone(), j.stopping),
            None => return,
        };
        if stopping {
            return self.failed(id, "stopped");
        }
        match result {
            Ok(_) => match ClusterOwner::parse(data)
                .and_then(|o| Url::parse(&format!("http://{}/{stream}.flv", o.advertise)).ok())
            {
                Some(url) => {
                    if let Some(j) = lock(&self.jobs).by_id.get_mut(&id) {
                        j.url = Some(url.clone());
                    }
                    self.connect(id, Kind::Pull, url, stream, true);
                }
                None => self.failed(id, "the cluster's answer is not an owner"),
            },
            Err(Error::NOT_FOUND) => {
                // Nobody has it (any more): an on-demand cluster pull with
                // no player waiting ends; the waiting players time out.
                self.failed(id, "no node of the cluster publishes it");
            }
            Err(e) => self.failed(id, &format!("cluster lookup: {e}")),
        }
    }
}

impl Plugin for Relay {
    type Session = Session;
    const DESCRIPTION: &'static str =
        "Relays: pulls (RTMP, HTTP-FLV, HLS, RTSP, SRT), pushes (RTMP, SRT, RTSP), on-demand and cluster pulls";
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(Config::parse)?;
        host.http_route("", api::PREFIX_PATTERN, ROUTE_API)?;
        host.timer_start(TICK, true, TIMER_TICK)?;
        let relay = Relay {
            host: *host,
            cfg,
            jobs: Mutex::new(Jobs::default()),
            pending: Mutex::new(HashMap::new()),
            next_token: Default::default(),
            store: store::Store::default(),
            bytes_total: Default::default(),
        };
        for (url, stream) in relay.cfg.pulls.clone() {
            if let Err(e) = relay.add_job(
                Kind::Pull,
                Origin::Config,
                Some(url),
                &stream,
                Duration::ZERO,
            ) {
                rill_log!(host, Warn, "relay pull of {stream}: {e}");
            }
        }
        relay.load();
        Ok(relay)
    }

    fn drain(&self) {
        // A new generation takes the jobs over: it starts them again, and
        // the streams wait in the host's grace meanwhile.
        let ids: Vec<u64> = lock(&self.jobs).by_id.keys().copied().collect();
        for id in ids {
            self.stop_job(id, "the plugin is reloading");
        }
    }

    fn on_http_request(&self, conn: &Conn, _route: u32, req: &HttpRequest<'_>) -> Result<Session> {
        self.api(conn, req)?;
        Ok(Session::Api)
    }

    fn on_session_open(&self, s: &mut Session, conn: &Conn, _kind: u32) -> Result<()> {
        let job = match s {
            Session::Pull(p) => p.job,
            Session::Push(p) => p.job,
            Session::Fetch(f) => f.job,
            Session::Api => 0,
        };
        if job != 0 && !self.wanted(job) {
            return conn.close(RILL_END_NORMAL);
        }
        match s {
            Session::Pull(p) => self.pull_open(p, conn),
            Session::Push(p) => self.push_open(p, conn),
            Session::Fetch(f) => self.fetch_open(f, conn),
            Session::Api => Ok(()),
        }
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        match s {
            Session::Pull(p) => self.pull_data(p, conn, data),
            Session::Push(p) => self.push_data(p, conn, data),
            Session::Fetch(f) => self.fetch_data(f, conn, data),
            Session::Api => Ok(()),
        }
    }

    fn on_udp_data(
        &self,
        s: &mut Session,
        conn: &Conn,
        _socket_id: u32,
        from: &str,
        data: &[u8],
    ) -> Result<()> {
        match s {
            Session::Pull(p) => self.pull_udp(p, conn, from, data),
            Session::Push(p) => self.push_udp(p, conn, from, data),
            Session::Fetch(_) | Session::Api => Ok(()),
        }
    }

    fn on_writable(&self, s: &mut Session, conn: &Conn) -> Result<()> {
        match s {
            Session::Push(p) => self.push_writable(p, conn),
            _ => Ok(()),
        }
    }

    fn on_frame(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        match s {
            Session::Push(p) => self.push_frame(p, conn, frame),
            _ => Ok(()),
        }
    }

    fn on_subscribe_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        _reason: u32,
        why: &str,
    ) -> Result<()> {
        if let Session::Push(p) = s {
            p.why = format!("the local stream ended: {why}");
            p.sub = None;
        }
        conn.close(RILL_END_NORMAL)
    }

    fn on_publish_end(
        &self,
        s: &mut Session,
        conn: &Conn,
        _publisher: rill_abi::sdk::PublisherId,
        _reason: u32,
        why: &str,
    ) -> Result<()> {
        if let Session::Pull(p) = s {
            p.why = format!("the local stream refused it: {why}");
            p.out = None;
            if let Some(h) = p.hls() {
                h.close(conn.host());
            }
        }
        conn.close(RILL_END_NORMAL)
    }

    fn on_timer(&self, session: Option<(&mut Session, &Conn)>, timer_id: u64) -> Result<()> {
        match (session, timer_id) {
            (None, TIMER_TICK) => self.tick(),
            (Some((Session::Pull(p), conn)), TIMER_SESSION) => self.pull_timer(p, conn)?,
            (Some((Session::Push(p), conn)), TIMER_SESSION) => self.push_timer(p, conn)?,
            (Some((Session::Fetch(f), conn)), TIMER_SESSION) => self.fetch_timer(f, conn)?,
            _ => {}
        }
        Ok(())
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        let Some((s, conn)) = session else {
            return Ok(());
        };
        let msg = match msg.downcast::<hls::Fetched>() {
            Ok(fetched) => {
                return match s {
                    Session::Pull(p) => self.hls_fetched(p, conn, *fetched),
                    _ => Ok(()),
                }
            }
            Err(msg) => msg,
        };
        if let Ok(stop) = msg.downcast::<Stop>() {
            let now = pull::now_us(&self.host);
            match s {
                Session::Pull(p) => {
                    p.why = stop.0.to_owned();
                    p.goodbye(conn, now);
                }
                Session::Push(p) => {
                    p.why = stop.0.to_owned();
                    p.goodbye(conn, now);
                }
                Session::Fetch(_) | Session::Api => {}
            }
            return conn.close(RILL_END_NORMAL);
        }
        Ok(())
    }

    fn on_close(&self, s: Session, _conn: &Conn, _reason: u32, why: &str) {
        let s = match s {
            // A request of an HLS attempt: its end is the attempt's news.
            Session::Fetch(f) => return self.fetch_closed(*f, why),
            s => s,
        };
        let stats = match &s {
            Session::Pull(p) => p.srt_stats(),
            Session::Push(p) => p.srt_stats(),
            Session::Fetch(_) | Session::Api => None,
        };
        let (id, mine) = match &s {
            Session::Pull(p) => (p.job, p.why.clone()),
            Session::Push(p) => (p.job, p.why.clone()),
            Session::Fetch(_) | Session::Api => return,
        };
        if let Some(h) = match &s {
            Session::Pull(p) => p.hls_stats(),
            _ => None,
        } {
            rill_log!(
                self.host,
                Info,
                "relay {id}: HLS read {} playlists, {} segments ({} skipped), {} bytes; {} frames",
                h.playlists,
                h.segments,
                h.skipped,
                h.bytes,
                h.frames
            );
        }
        let why = if mine.is_empty() {
            why.to_owned()
        } else {
            mine
        };
        let why = if why.is_empty() {
            "closed".to_owned()
        } else {
            why
        };
        if let Some(st) = stats {
            rill_log!(
                self.host,
                Info,
                "relay {id}: SRT received {} packets, {} lost, {} retransmitted, {} dropped too \
                 late; sent {} packets, {} retransmitted, {} unsent; rtt {} ms",
                st.recv_packets,
                st.recv_lost,
                st.recv_retransmitted,
                st.recv_dropped,
                st.sent_packets,
                st.sent_retransmitted,
                st.sent_unsent,
                st.rtt / 1000
            );
        }
        self.failed(id, &why);
    }

    fn on_io(
        &self,
        session: Option<(&mut Session, &Conn)>,
        token: u64,
        result: Result<i64>,
        data: &[u8],
    ) -> Result<()> {
        if session.is_some() {
            return Ok(());
        }
        // Taken out first: the handlers queue new work under this lock.
        let pending = lock(&self.pending).remove(&token);
        match pending {
            Some(Pending::Locate(id)) => self.located(id, result, data),
            Some(Pending::Store(step)) => self.store_io(step, result, data),
            None => {}
        }
        Ok(())
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        match event {
            RILL_STREAM_WAITING => self.waiting(path),
            RILL_STREAM_IDLE => {
                let now = self.wall_us();
                if let Some(j) = lock(&self.jobs).pull_of(path) {
                    if matches!(j.origin, Origin::OnDemand | Origin::Cluster) {
                        j.idle_since_us = Some(now);
                    }
                }
            }
            RILL_STREAM_ACTIVE => {
                if let Some(j) = lock(&self.jobs).pull_of(path) {
                    j.idle_since_us = None;
                }
            }
            RILL_STREAM_PUBLISHED => self.published(path),
            RILL_STREAM_UNPUBLISHED => self.unpublished(path),
            _ => {}
        }
        Ok(())
    }
}

impl Relay {
    /// Push rules for a new stream.
    fn published(&self, path: &str) {
        for rule in &self.cfg.pushes {
            match rule.url_for(path) {
                Some(Ok(url)) => {
                    match self.add_job(Kind::Push, Origin::Rule, Some(url), path, Duration::ZERO) {
                        Ok(id) => self.attempt(id),
                        Err(e) => rill_log!(self.host, Warn, "push of {path}: {e}"),
                    }
                }
                Some(Err(e)) => rill_log!(self.host, Warn, "push rule for {path}: {e}"),
                None => {}
            }
        }
    }

    /// Rule pushes of a gone stream end; so do on-demand and cluster pulls
    /// that never brought it back within the grace.
    fn unpublished(&self, path: &str) {
        let ids: Vec<u64> = lock(&self.jobs)
            .by_id
            .values()
            .filter(|j| {
                j.stream == path
                    && match (j.kind, &j.origin) {
                        (Kind::Push, Origin::Rule) => true,
                        (Kind::Pull, Origin::OnDemand | Origin::Cluster) => {
                            j.state != jobs::State::Live
                        }
                        _ => false,
                    }
            })
            .map(|j| j.id)
            .collect();
        for id in ids {
            self.stop_job(id, "the stream is gone");
        }
    }
}

rill_abi::export_plugin!(Relay, "relay");
