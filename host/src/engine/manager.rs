//! The stream manager: the registry of streams, publish and subscribe, the
//! dispatcher pool, and shutdown.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::{self, Work};
use super::error::EngineError;
use super::frame::Frame;
use super::settings::EngineSettings;
use super::stream::{PublisherEnd, PublisherInfo, Stream, StreamSnapshot};
use super::subscriber::{EndReason, SubscribeEnd, Subscriber, SubscriberInfo, SubscriberShared};
use super::track::TrackInfo;

/// Longest stream path accepted.
pub const MAX_PATH_LEN: usize = 255;

pub(crate) struct EngineInner {
    pub(crate) settings: ArcSwap<EngineSettings>,
    pub(crate) streams: DashMap<String, Arc<Stream>>,
    workers: Vec<mpsc::UnboundedSender<Work>>,
    pub(crate) root: CancellationToken,
    tasks: TaskTracker,
    next_id: AtomicU64,
    next_worker: AtomicUsize,
    accepting: AtomicBool,
    /// Reference point for the stream's atomic "last data" timestamps.
    pub(crate) epoch: Instant,
    pub(crate) totals: Totals,
    pub(crate) events: super::events::Events,
}

/// Engine-wide totals: ingest counted as it happens; subscribers' output
/// folded in when they leave (live ones are summed at read).
#[derive(Default)]
pub(crate) struct Totals {
    pub frames_in: super::stats::Counter,
    pub bytes_in: super::stats::Counter,
    pub frames_out: super::stats::Counter,
    pub bytes_out: super::stats::Counter,
    pub dropped: super::stats::Counter,
}

/// Engine-wide counters, for metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineTotals {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub frames_dropped: u64,
    pub streams: usize,
    pub publishers: usize,
    /// Live subscribers by protocol.
    pub subscribers: std::collections::BTreeMap<String, usize>,
}

impl EngineInner {
    /// Hands work to a stream's worker. Without workers (manual dispatch, for
    /// benchmarks) joins run inline and dispatch waits for `dispatch_now`.
    pub(crate) fn send_work(&self, worker: usize, work: Work) {
        if self.workers.is_empty() {
            if let Work::Join(stream, sub) = work {
                stream.join_now(sub);
            }
            return;
        }
        // A closed worker means shutdown; the work no longer matters.
        let _ = self.workers[worker % self.workers.len()].send(work);
    }
}

/// The stream engine. Cheap to clone; all clones are the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl Engine {
    /// Starts the engine and its dispatch workers on the current tokio runtime.
    pub fn new(settings: EngineSettings) -> Engine {
        let n = match settings.dispatcher_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Self::with_workers(settings, n)
    }

    /// An engine whose streams are dispatched only by `dispatch_now`, on the
    /// caller's thread (benchmarks measure dispatch this way).
    #[doc(hidden)]
    pub fn manual(settings: EngineSettings) -> Engine {
        Self::with_workers(settings, 0)
    }

    fn with_workers(settings: EngineSettings, n: usize) -> Engine {
        let tasks = TaskTracker::new();
        let root = CancellationToken::new();
        let workers = (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.spawn(dispatch::worker(rx, root.clone()));
                tx
            })
            .collect();
        Engine {
            inner: Arc::new(EngineInner {
                settings: ArcSwap::from_pointee(settings),
                streams: DashMap::new(),
                workers,
                root,
                tasks,
                next_id: AtomicU64::new(1),
                next_worker: AtomicUsize::new(0),
                accepting: AtomicBool::new(true),
                epoch: Instant::now(),
                totals: Totals::default(),
                events: Default::default(),
            }),
        }
    }

    pub fn settings(&self) -> Arc<EngineSettings> {
        self.inner.settings.load_full()
    }

    /// Stream events from now on, in order.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<super::StreamEvent> {
        self.inner.events.subscribe()
    }

    /// Applies new settings to running streams (the worker count stays).
    pub fn update_settings(&self, settings: EngineSettings) {
        self.inner.settings.store(Arc::new(settings));
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The stream at `path`, created (with its lifecycle task) when missing.
    /// Retries when it raced with the stream's closing.
    fn with_stream<T>(
        &self,
        path: &str,
        mut f: impl FnMut(&Arc<Stream>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        validate_path(path)?;
        loop {
            if !self.inner.accepting.load(Ordering::Acquire) {
                return Err(EngineError::ShuttingDown);
            }
            let stream = self
                .inner
                .streams
                .entry(path.to_string())
                .or_insert_with(|| {
                    let worker = self.inner.next_worker.fetch_add(1, Ordering::Relaxed);
                    let s = Stream::new(self.next_id(), path.to_string(), &self.inner, worker);
                    self.inner.tasks.spawn(s.clone().run());
                    s
                })
                .clone();
            match f(&stream) {
                Err(EngineError::StreamClosing) => {
                    // It is leaving the registry; make sure, then retry.
                    self.inner
                        .streams
                        .remove_if(path, |_, s| Arc::ptr_eq(s, &stream));
                }
                other => return other,
            }
        }
    }

    /// Starts publishing `path`. With `publish.kick_existing` a current
    /// publisher is replaced; otherwise a second publisher gets `Busy`. A
    /// publisher returning within `publish.reconnect_grace` continues the same
    /// stream: its players keep playing, with timestamps that stay monotonic.
    pub fn publish(&self, path: &str, info: PublisherInfo) -> Result<Publisher, EngineError> {
        let kick = self.inner.settings.load().kick_existing;
        let mut info = Some(info);
        let (stream, (epoch, end)) = self.with_stream(path, |s| {
            let i = info.take().unwrap_or_default();
            match s.attach_publisher(i.clone(), kick) {
                Ok(r) => Ok((s.clone(), r)),
                Err(e) => {
                    info = Some(i);
                    Err(e)
                }
            }
        })?;
        tracing::info!(stream = %path, "publisher attached");
        Ok(Publisher {
            stream,
            epoch,
            end,
            data_track: None,
            derived: false,
        })
    }

    /// Opens a writer of derived tracks on the published stream `path` (a
    /// transformer's output): it keeps the stream's timeline and takes no
    /// publisher slot. Players see its tracks only when they ask for their
    /// codec.
    pub fn derive(&self, path: &str) -> Result<Publisher, EngineError> {
        let stream = self
            .inner
            .streams
            .get(path)
            .map(|s| s.clone())
            .ok_or_else(|| EngineError::NotPublished(path.to_owned()))?;
        let (epoch, end) = stream.attach_derived()?;
        tracing::debug!(stream = %path, "derived writer attached");
        Ok(Publisher {
            stream,
            epoch,
            end,
            data_track: None,
            derived: true,
        })
    }

    /// Subscribes to `path`. When nobody publishes it yet, the subscriber
    /// waits up to `subscribe.wait_timeout` (its `recv` then reports
    /// `WaitTimeout`). It starts at the newest keyframe, after the metadata and
    /// decoder configs.
    pub fn subscribe(&self, path: &str, info: SubscriberInfo) -> Result<Subscriber, EngineError> {
        let queue = self.inner.settings.load().queue_frames;
        let id = self.next_id();
        let shared = SubscriberShared::new(id, info, queue);
        let stream = self.with_stream(path, |s| {
            s.add_subscriber(shared.clone()).map(|_| s.clone())
        })?;
        Ok(Subscriber { shared, stream })
    }

    pub fn stream(&self, path: &str) -> Option<StreamSnapshot> {
        self.inner.streams.get(path).map(|s| s.snapshot())
    }

    pub fn streams(&self) -> Vec<StreamSnapshot> {
        let mut v: Vec<_> = self.inner.streams.iter().map(|s| s.snapshot()).collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Subscribers of a stream, for the management API: its players
    /// (transformers are the server's own work).
    pub fn subscribers(&self, path: &str) -> Option<Vec<SubscriberSnapshot>> {
        let s = self.inner.streams.get(path)?.clone();
        let mut v: Vec<_> = s
            .subscriber_list()
            .iter()
            .filter(|sub| !sub.info.transform)
            .map(|sub| SubscriberSnapshot::of(sub, path))
            .collect();
        v.sort_by_key(|s| s.id);
        Some(v)
    }

    /// How many streams have a publisher, and whether `path` has one: what
    /// the `limits.max_streams` check needs (a publisher replacing one is
    /// not a new stream).
    pub fn publisher_count(&self, path: &str) -> (usize, bool) {
        let (mut n, mut this) = (0, false);
        for s in self.inner.streams.iter() {
            if s.has_publisher() {
                n += 1;
                this |= s.key() == path;
            }
        }
        (n, this)
    }

    /// Subscribers of `path`, and of every stream: what the player limits
    /// need.
    pub fn subscriber_count(&self, path: &str) -> (usize, usize) {
        let (mut this, mut all) = (0, 0);
        for s in self.inner.streams.iter() {
            let n = s.subscriber_count();
            all += n;
            if s.key() == path {
                this = n;
            }
        }
        (this, all)
    }

    /// Engine-wide counters (live subscribers included).
    pub fn totals(&self) -> EngineTotals {
        let t = &self.inner.totals;
        let mut out = EngineTotals {
            frames_in: t.frames_in.get(),
            bytes_in: t.bytes_in.get(),
            frames_out: t.frames_out.get(),
            bytes_out: t.bytes_out.get(),
            frames_dropped: t.dropped.get(),
            ..Default::default()
        };
        for s in self.inner.streams.iter() {
            out.streams += 1;
            out.publishers += s.has_publisher() as usize;
            for sub in s.subscriber_list() {
                out.frames_out += sub.frames.get();
                out.bytes_out += sub.bytes.get();
                out.frames_dropped += sub.drops.load(Ordering::Relaxed);
                if sub.info.transform {
                    continue;
                }
                *out.subscribers
                    .entry(sub.info.protocol.clone())
                    .or_default() += 1;
            }
        }
        out
    }

    /// Detaches the publisher of `path`; the stream then waits for it to come
    /// back within the reconnect grace, as after any publisher loss.
    pub fn kick_publisher(&self, path: &str) -> bool {
        let s = self.inner.streams.get(path).map(|s| s.clone());
        s.is_some_and(|s| s.kick_publisher())
    }

    /// Ends one subscriber.
    pub fn kick_subscriber(&self, id: u64) -> bool {
        let streams: Vec<_> = self.inner.streams.iter().map(|s| s.clone()).collect();
        for s in streams {
            if let Some(sub) = s.subscriber(id) {
                sub.close(SubscribeEnd::new(EndReason::Kicked, "kicked"), false);
                s.subscriber_left(id);
                return true;
            }
        }
        false
    }

    /// Stops the engine, in order: refuse new publishers and subscribers, close
    /// every stream (players get what is queued, then the end), stop the
    /// dispatch workers, and wait for every engine task.
    pub async fn shutdown(&self) {
        self.inner.accepting.store(false, Ordering::Release);
        let streams: Vec<_> = self.inner.streams.iter().map(|s| s.clone()).collect();
        for s in streams {
            s.close(SubscribeEnd::new(
                EndReason::Shutdown,
                "the server is shutting down",
            ));
        }
        self.inner.root.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Runs the dispatcher of `path` on the calling thread (benchmarks).
    #[doc(hidden)]
    pub fn dispatch_now(&self, path: &str) {
        if let Some(s) = self.inner.streams.get(path).map(|s| s.clone()) {
            s.dispatch_now();
        }
    }
}

/// A publisher's handle on its stream. Dropping it detaches the publisher
/// (the stream waits for a reconnect within the grace).
pub struct Publisher {
    stream: Arc<Stream>,
    epoch: u64,
    end: Arc<PublisherEnd>,
    data_track: Option<u32>,
    /// A transformer's writer of derived tracks (`Engine::derive`).
    derived: bool,
}

impl Publisher {
    pub fn path(&self) -> &str {
        self.stream.path()
    }

    /// Declares a track; returns its id for `Frame::new`. A returning
    /// publisher gets its previous track of the same kind back.
    pub fn add_track(&mut self, info: TrackInfo) -> Result<u32, EngineError> {
        match self.derived {
            true => self.stream.add_derived_track(self.epoch, info),
            false => self.stream.add_track(self.epoch, info),
        }
    }

    /// Publishes a frame. Never blocks on subscribers.
    pub fn write(&self, frame: Frame) -> Result<(), EngineError> {
        match self.derived {
            true => self.stream.write_derived(self.epoch, frame),
            false => self.stream.write(self.epoch, frame),
        }
    }

    /// Sets the stream's metadata (an FLV onMetaData body).
    pub fn set_metadata(&mut self, body: Bytes) -> Result<(), EngineError> {
        if self.derived {
            return Err(EngineError::NotForDerived);
        }
        self.stream
            .set_metadata(self.epoch, &mut self.data_track, body)
    }

    /// Records where this publisher pulls the stream from (a relay), and
    /// whether it is the cluster's owner node (then not claimed here).
    pub fn set_source(&self, source: &str, cluster_relay: bool) {
        if self.derived {
            return;
        }
        self.stream
            .set_publisher_source(self.epoch, source, cluster_relay)
    }

    /// Whether the engine detached this publisher, and why.
    pub fn closed_reason(&self) -> Option<SubscribeEnd> {
        self.end.reason.lock().clone()
    }

    /// Resolves when the engine detaches this publisher (kick, timeout, close).
    pub async fn closed(&self) {
        self.end.token.cancelled().await
    }

    /// `closed` as an owned future, for hosts that poll it next to others.
    pub fn closed_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.end.token.clone().cancelled_owned()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        match self.derived {
            true => self.stream.detach_derived(self.epoch),
            false => self
                .stream
                .detach_publisher(self.epoch, EndReason::Closed, "publisher left"),
        }
    }
}

/// A subscriber as the management API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubscriberSnapshot {
    pub id: u64,
    pub path: String,
    pub protocol: String,
    pub remote: String,
    pub created: f64,
    pub frames: u64,
    pub bytes: u64,
    pub bitrate_bps: u64,
    pub drops: u64,
    pub queued: usize,
}

impl SubscriberSnapshot {
    fn of(s: &SubscriberShared, path: &str) -> Self {
        SubscriberSnapshot {
            id: s.id,
            path: path.to_string(),
            protocol: s.info.protocol.clone(),
            remote: s.info.remote.clone(),
            created: super::stream::unix_secs(s.created),
            frames: s.frames.get(),
            bytes: s.bytes.get(),
            bitrate_bps: s.bytes.rate() * 8,
            drops: s.drops.load(Ordering::Relaxed),
            queued: s.queued(),
        }
    }
}

/// A stream path is `app/name` (more segments allowed), each segment of
/// letters, digits and `-_.~`, not `.` or `..`.
pub fn validate_path(path: &str) -> Result<(), EngineError> {
    let bad = |why: &str| Err(EngineError::InvalidPath(format!("{path:?}: {why}")));
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return bad("must be 1 to 255 bytes");
    }
    let segments: Vec<_> = path.split('/').collect();
    if segments.len() < 2 {
        return bad("expected app/name");
    }
    for s in segments {
        if s.is_empty() || s == "." || s == ".." {
            return bad("empty, '.' or '..' segment");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return bad("only letters, digits and -_.~ are allowed");
        }
    }
    Ok(())
}
