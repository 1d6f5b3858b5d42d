//! The cluster: which node publishes which stream, shared by every node
//! (issue 17, docs/cluster.md).
//!
//! A node claims each stream it gets a publisher for (engine event
//! `Published`), unless that publisher is a relay pulling the stream from
//! its owner; it renews its claims and its node record every third of
//! `cluster.ttl`, and removes a claim when the stream is unpublished. The
//! claims it holds are tracked here, so a heartbeat, and the re-registration
//! after a Redis outage (the same heartbeat: the keys are simply absent),
//! never scan the engine. Nothing in the engine waits for the registry: with
//! Redis down every node keeps serving its local streams and reports the
//! cluster `degraded`.

pub mod redis_registry;
pub mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::engine::{Engine, StreamEvent, StreamEventKind};
use registry::{Claim, NodeRecord, NodeView, Registry};

/// Another node that publishes a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// The owner's `cluster.node_id`.
    pub node_id: String,
    /// `host:port` of the owner's HTTP server (`cluster.advertise`).
    pub advertise: String,
}

/// Completion of [`Cluster::locate`]: `Ok(None)` when no other node has
/// the stream, `Err` when the registry cannot be reached.
pub type Located = Box<dyn FnOnce(Result<Option<Owner>, String>) + Send>;

/// How long a shutdown spends leaving the registry.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The host's view of the cluster; cheap to clone.
#[derive(Clone, Default)]
pub struct Cluster {
    inner: Option<Arc<Inner>>,
}

/// What `GET /api/v1/cluster` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub node_id: Option<String>,
    pub advertise: Option<String>,
    /// `up`, `degraded` (the registry cannot be reached) or `disabled`.
    pub state: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub nodes: Vec<NodeView>,
    /// The registry holds more than one listing reads.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// For `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterStats {
    pub up: bool,
    /// Streams this node claims.
    pub owned: usize,
    /// Registry calls that failed, since start.
    pub errors: u64,
}

/// A stream published here, as the cluster tracks it.
#[derive(Debug, Clone, PartialEq)]
enum Tracked {
    /// This node's claim; `registered` once an unconditional claim has
    /// reached the registry (until then the heartbeat retries it).
    Owned { since: String, registered: bool },
    /// Published here but not claimed: pulled from its owner (a relay), or
    /// taken by another node. `publisher` is the publisher seen then (its
    /// `since`, as bits); a different, non-relay one (a publisher that came
    /// back here) claims the stream again.
    Standby { publisher: Option<u64> },
}

/// Whether the registry answers.
#[derive(Debug, Default)]
struct Health {
    up: bool,
    reason: Option<String>,
    /// The warning for the current outage was logged.
    warned: bool,
}

struct Inner {
    node_id: String,
    advertise: String,
    started: String,
    ttl: Duration,
    registry: Box<dyn Registry>,
    engine: Engine,
    rt: tokio::runtime::Handle,
    health: Mutex<Health>,
    streams: Mutex<HashMap<String, Tracked>>,
    errors: AtomicU64,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Cluster {
    /// A host without a cluster.
    pub fn disabled() -> Cluster {
        Cluster::default()
    }

    /// The cluster `config` describes (disabled when `cluster.redis` is
    /// empty), on Redis. Call inside the runtime, before publishers come:
    /// it follows the engine's events from now on. Redis need not be up.
    pub fn start(config: &ClusterConfig, engine: &Engine) -> Result<Cluster, String> {
        if !config.enabled() {
            return Ok(Cluster::disabled());
        }
        let node_id = config.node_id();
        let registry =
            redis_registry::RedisRegistry::new(&config.redis, node_id.clone(), config.ttl)?;
        Ok(Cluster::with_registry(
            Box::new(registry),
            node_id,
            config.advertise.clone(),
            config.ttl,
            engine,
        ))
    }

    /// A cluster on any [`Registry`]. Call inside the runtime.
    pub fn with_registry(
        registry: Box<dyn Registry>,
        node_id: String,
        advertise: String,
        ttl: Duration,
        engine: &Engine,
    ) -> Cluster {
        let inner = Arc::new(Inner {
            node_id,
            advertise,
            started: now_rfc3339(),
            ttl,
            registry,
            engine: engine.clone(),
            rt: tokio::runtime::Handle::current(),
            health: Mutex::new(Health {
                up: false,
                reason: Some("not connected yet".to_owned()),
                warned: false,
            }),
            streams: Mutex::new(HashMap::new()),
            errors: AtomicU64::new(0),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let events = engine.events();
        let task = tokio::spawn(inner.clone().run(events));
        *inner.task.lock() = Some(task);
        tracing::info!(
            node_id = %inner.node_id,
            advertise = %inner.advertise,
            ttl = ?inner.ttl,
            "cluster: joining"
        );
        Cluster { inner: Some(inner) }
    }

    /// Whether this host runs in a cluster.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Looks up which other node publishes `path`; `done` runs once, on a
    /// runtime thread. Never this node itself.
    pub fn locate(&self, path: &str, done: Located) {
        let Some(inner) = &self.inner else {
            return done(Ok(None));
        };
        // Should the runtime drop the task (shutting down), `done` still
        // runs, with an error.
        let done = OnceDone(Some(done));
        let (inner2, path) = (inner.clone(), path.to_owned());
        inner.rt.spawn(async move {
            let r = inner2.locate(&path).await;
            done.finish(r);
        });
    }

    /// This node and every other one, for `GET /api/v1/cluster`.
    pub async fn view(&self) -> ClusterView {
        let Some(inner) = &self.inner else {
            return ClusterView {
                node_id: None,
                advertise: None,
                state: "disabled",
                reason: None,
                nodes: Vec::new(),
                truncated: false,
            };
        };
        let (nodes, truncated) = match inner.registry.nodes().await {
            Ok(n) => (n.nodes, n.truncated),
            Err(e) => {
                inner.failed(&e);
                // What this node knows without the registry: itself.
                (vec![inner.local_view()], false)
            }
        };
        let (state, reason) = {
            let h = inner.health.lock();
            (if h.up { "up" } else { "degraded" }, h.reason.clone())
        };
        ClusterView {
            node_id: Some(inner.node_id.clone()),
            advertise: Some(inner.advertise.clone()),
            state,
            reason,
            nodes,
            truncated,
        }
    }

    /// For `/metrics`; None without a cluster.
    pub fn stats(&self) -> Option<ClusterStats> {
        let inner = self.inner.as_ref()?;
        let owned = inner
            .streams
            .lock()
            .values()
            .filter(|t| matches!(t, Tracked::Owned { .. }))
            .count();
        Some(ClusterStats {
            up: inner.health.lock().up,
            owned,
            errors: inner.errors.load(Ordering::Relaxed),
        })
    }

    /// Leaves the cluster: stops the heartbeat and removes this node's
    /// claims and record, best effort within a short deadline (else they
    /// expire after `cluster.ttl`).
    pub async fn shutdown(&self) {
        let Some(inner) = &self.inner else { return };
        inner.stop.cancel();
        let task = inner.task.lock().take();
        if let Some(mut task) = task {
            // The loop ends after its current call (bounded), so that no
            // claim of it lands after the leave; if not, it is cut short.
            if tokio::time::timeout(redis_registry::CALL_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let paths = inner.owned_paths();
        match tokio::time::timeout(LEAVE_TIMEOUT, inner.registry.leave(&paths)).await {
            Ok(Ok(())) => tracing::info!(streams = paths.len(), "cluster: left"),
            Ok(Err(e)) => tracing::warn!(
                "cluster: could not leave ({e}); this node's entries expire within {:?}",
                inner.ttl
            ),
            Err(_) => tracing::warn!(
                "cluster: leaving timed out; this node's entries expire within {:?}",
                inner.ttl
            ),
        }
    }
}

/// A [`Located`] that runs exactly once: with the answer, or with an error
/// if dropped unanswered.
struct OnceDone(Option<Located>);

impl OnceDone {
    fn finish(mut self, r: Result<Option<Owner>, String>) {
        if let Some(done) = self.0.take() {
            done(r);
        }
    }
}

impl Drop for OnceDone {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err("the server is shutting down".to_owned()));
        }
    }
}

impl Inner {
    async fn run(self: Arc<Self>, mut events: tokio::sync::broadcast::Receiver<StreamEvent>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tick.tick() => self.heartbeat().await,
                ev = events.recv() => match ev {
                    Ok(e) => self.on_event(e).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("cluster: {n} stream events missed; re-reading the engine");
                        self.resync();
                    }
                    // The engine is gone: the process is ending.
                    Err(RecvError::Closed) => break,
                },
            }
        }
    }

    fn claim(&self, since: &str) -> Claim {
        Claim {
            node_id: self.node_id.clone(),
            advertise: self.advertise.clone(),
            since: since.to_owned(),
        }
    }

    fn is_up(&self) -> bool {
        self.health.lock().up
    }

    /// A registry call failed: degraded, warned once per outage.
    fn failed(&self, reason: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut h = self.health.lock();
        if !h.warned {
            tracing::warn!("cluster: registry unreachable, serving local streams only: {reason}");
            h.warned = true;
        }
        h.up = false;
        h.reason = Some(reason.to_owned());
    }

    /// A heartbeat went through.
    fn succeeded(&self) {
        let mut h = self.health.lock();
        if !h.up {
            if h.warned {
                tracing::info!(
                    "cluster: registry reachable again; this node's streams are registered"
                );
            } else {
                tracing::info!(node_id = %self.node_id, "cluster: joined");
            }
        }
        *h = Health {
            up: true,
            reason: None,
            warned: false,
        };
    }

    /// The publisher of `path` now: (its `since` as bits, whether a relay);
    /// None without a stream; Some((None, false)) while it has no publisher.
    fn publisher_of(&self, path: &str) -> Option<(Option<u64>, bool)> {
        let s = self.engine.stream(path)?;
        Some(match s.publisher {
            Some(p) => (Some(p.since.to_bits()), p.cluster_relay),
            None => (None, false),
        })
    }

    async fn on_event(&self, e: StreamEvent) {
        match e.kind {
            StreamEventKind::Published => self.published(&e.path).await,
            StreamEventKind::Unpublished => self.unpublished(&e.path).await,
            // Players coming and going do not move a stream's owner.
            _ => {}
        }
    }

    async fn published(&self, path: &str) {
        let Some((publisher, relay)) = self.publisher_of(path) else {
            // Already gone; its Unpublished follows.
            return;
        };
        if relay {
            self.streams
                .lock()
                .insert(path.to_owned(), Tracked::Standby { publisher });
            return;
        }
        let since = now_rfc3339();
        self.streams.lock().insert(
            path.to_owned(),
            Tracked::Owned {
                since: since.clone(),
                registered: false,
            },
        );
        // While the registry is down, the heartbeat registers it later.
        if self.is_up() {
            self.register(path, &since).await;
        }
    }

    /// Claims `path` now, replacing any other node's claim.
    async fn register(&self, path: &str, since: &str) {
        match self.registry.register(path, &self.claim(since)).await {
            Ok(()) => {
                tracing::debug!(stream = %path, "cluster: claimed");
                if let Some(Tracked::Owned { registered, .. }) = self.streams.lock().get_mut(path) {
                    *registered = true;
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    async fn unpublished(&self, path: &str) {
        let was = self.streams.lock().remove(path);
        if matches!(was, Some(Tracked::Owned { .. })) && self.is_up() {
            // Else the claim expires after the ttl.
            if let Err(e) = self.registry.unregister(path).await {
                self.failed(&e);
            }
        }
    }

    /// After missed events: tracks what the engine publishes now.
    fn resync(&self) {
        let live: HashMap<String, (Option<u64>, bool)> = self
            .engine
            .streams()
            .into_iter()
            .filter(|s| s.frames_in > 0)
            .map(|s| {
                let p = s.publisher.map_or((None, false), |p| {
                    (Some(p.since.to_bits()), p.cluster_relay)
                });
                (s.path, p)
            })
            .collect();
        let now = now_rfc3339();
        let mut streams = self.streams.lock();
        // Streams gone while events were missed: their claims expire.
        streams.retain(|path, _| live.contains_key(path));
        for (path, (publisher, relay)) in live {
            streams.entry(path).or_insert_with(|| {
                if relay {
                    Tracked::Standby { publisher }
                } else {
                    Tracked::Owned {
                        since: now.clone(),
                        registered: false,
                    }
                }
            });
        }
    }

    fn owned_paths(&self) -> Vec<String> {
        self.streams
            .lock()
            .iter()
            .filter(|(_, t)| matches!(t, Tracked::Owned { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn local_view(&self) -> NodeView {
        let mut streams = self.owned_paths();
        streams.sort_unstable();
        NodeView {
            node_id: self.node_id.clone(),
            advertise: self.advertise.clone(),
            started: Some(self.started.clone()),
            streams,
        }
    }

    /// Every third of the ttl: claims what is pending, renews the node
    /// record and every claim (re-creating those the registry lost), and
    /// notes the streams another node took.
    async fn heartbeat(&self) {
        let plan = self.plan();
        let node = NodeRecord {
            advertise: self.advertise.clone(),
            started: self.started.clone(),
            streams: plan.renew.len() + plan.claim.len(),
        };
        let taken = match self.registry.refresh(&node, &plan.renew).await {
            Ok(t) => t,
            Err(e) => return self.failed(&e),
        };
        for (path, since) in &plan.claim {
            if let Err(e) = self.registry.register(path, &self.claim(since)).await {
                return self.failed(&e);
            }
        }
        {
            let mut streams = self.streams.lock();
            // Claimed outright, or renewed (the key is ours now): registered.
            let renewed = plan.renew.iter().map(|(p, _)| p);
            for path in plan.claim.iter().map(|(p, _)| p).chain(renewed) {
                if let Some(Tracked::Owned { registered, .. }) = streams.get_mut(path) {
                    *registered = true;
                }
            }
            for path in &taken {
                if streams.contains_key(path) {
                    let publisher = self.publisher_of(path).and_then(|(p, _)| p);
                    tracing::info!(stream = %path, "cluster: another node publishes this stream now");
                    streams.insert(path.clone(), Tracked::Standby { publisher });
                }
            }
        }
        self.succeeded();
    }

    /// What one heartbeat does, decided under the lock.
    fn plan(&self) -> Plan {
        let mut plan = Plan::default();
        let mut streams = self.streams.lock();
        let now = now_rfc3339();
        streams.retain(|path, t| match t {
            Tracked::Standby { publisher } => {
                let Some((current, relay)) = self.publisher_of(path) else {
                    // The stream is gone (its Unpublished comes or came).
                    return false;
                };
                if current.is_some() && !relay && current != *publisher {
                    // A new publisher here, not a relay: it wins.
                    *t = Tracked::Owned {
                        since: now.clone(),
                        registered: false,
                    };
                    plan.claim.push((path.clone(), now.clone()));
                } else {
                    *publisher = current;
                }
                true
            }
            Tracked::Owned {
                since,
                registered: false,
            } => {
                // Unconditionally only while the publisher is here: one in
                // its grace may have moved to another node, whose claim
                // stands (renewed only where absent or ours).
                match self.publisher_of(path) {
                    Some((Some(_), false)) => plan.claim.push((path.clone(), since.clone())),
                    _ => plan.renew.push((path.clone(), self.claim(since))),
                }
                true
            }
            Tracked::Owned { since, .. } => {
                plan.renew.push((path.clone(), self.claim(since)));
                true
            }
        });
        plan
    }

    async fn locate(&self, path: &str) -> Result<Option<Owner>, String> {
        match self.registry.locate(path).await {
            Ok(Some(c)) if c.node_id != self.node_id => Ok(Some(Owner {
                node_id: c.node_id,
                advertise: c.advertise,
            })),
            Ok(_) => Ok(None),
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }
}

/// One heartbeat's work.
#[derive(Default)]
struct Plan {
    /// Claims to renew where absent or ours.
    renew: Vec<(String, Claim)>,
    /// Streams to claim outright: (path, since).
    claim: Vec<(String, String)>,
}

#[cfg(test)]
mod tests;
