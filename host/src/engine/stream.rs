//! A stream: its tracks, its publisher slot, its subscribers, its lifecycle
//! task and its fan-out state.
//!
//! Locks, always taken in this order and never held across an await:
//! `control` (lifecycle + publisher slot) → `ingest` (track writers,
//! timestamps) → `subscribers`. The data path takes only `ingest` (publisher)
//! and `dispatch` (its worker).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::{
    RILL_CODEC_METADATA, RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
    RILL_TRACK_DATA,
};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatch::{DispatchState, Work};
use super::error::EngineError;
use super::events::StreamEventKind;
use super::frame::Frame;
use super::lifecycle::{Action, CloseWhy, Lifecycle, Phase};
use super::manager::EngineInner;
use super::stats::Counter;
use super::subscriber::{EndReason, SubscribeEnd, SubscriberShared};
use super::timestamp::TimestampCorrector;
use super::track::{Track, TrackInfo};

/// Most tracks one stream may have.
pub const MAX_TRACKS: usize = 16;

/// Who publishes, for the management API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherInfo {
    /// Protocol name, e.g. "rtmp".
    pub protocol: String,
    /// Remote address of the encoder, if any.
    pub remote: String,
    /// The URL this server pulls the stream from, when it relays it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Pulled from its owner, another node of the cluster: this node does
    /// not claim the stream in the cluster registry.
    pub cluster_relay: bool,
}

struct PublisherSlot {
    epoch: u64,
    info: PublisherInfo,
    since: SystemTime,
    end: Arc<PublisherEnd>,
}

/// How a publisher learns it was detached (kicked, timed out, stream closed).
#[derive(Default)]
pub(crate) struct PublisherEnd {
    pub(crate) token: CancellationToken,
    pub(crate) reason: Mutex<Option<SubscribeEnd>>,
}

impl PublisherEnd {
    /// The first reason given is the one kept.
    fn end(&self, reason: EndReason, message: &str) {
        self.reason
            .lock()
            .get_or_insert_with(|| SubscribeEnd::new(reason, message));
        self.token.cancel();
    }
}

struct Control {
    lifecycle: Lifecycle,
    publisher: Option<PublisherSlot>,
    /// Writers of derived tracks (transformers), by epoch.
    derived: Vec<(u64, Arc<PublisherEnd>)>,
    /// Epochs of publishers and derived writers alike.
    next_epoch: u64,
}

struct Ingest {
    /// The epoch allowed to write; 0 when nobody publishes.
    epoch: u64,
    ts: TimestampCorrector,
    next_seq: u64,
    /// Tracks the current publisher declared (reconnects reuse tracks by kind).
    claimed: Vec<bool>,
    /// Per track: the epoch of the derived writer that owns it (0: none)
    /// and the dts it wrote last.
    derived: Vec<(u64, Option<i64>)>,
}

pub struct Stream {
    pub(crate) id: u64,
    path: String,
    created: SystemTime,
    engine: Weak<EngineInner>,
    worker: usize,
    tracks: ArcSwap<Vec<Arc<Track>>>,
    control: Mutex<Control>,
    ingest: Mutex<Ingest>,
    /// Whether `Published` was announced (its first media frame came).
    announced: AtomicBool,
    subscribers: Mutex<HashMap<u64, Arc<SubscriberShared>>>,
    /// How many of `subscribers` are transformers (not players).
    transforms: std::sync::atomic::AtomicUsize,
    dispatch: Mutex<DispatchState>,
    scheduled: AtomicBool,
    closed: AtomicBool,
    /// Wakes the lifecycle task to recompute its deadline.
    poke: Notify,
    cancel: CancellationToken,
    /// Nanoseconds since the engine's epoch of the newest frame.
    last_data: AtomicU64,
    pub(crate) frames_in: Counter,
    pub(crate) bytes_in: Counter,
}

impl Stream {
    pub(crate) fn new(
        id: u64,
        path: String,
        engine: &Arc<EngineInner>,
        worker: usize,
    ) -> Arc<Stream> {
        let settings = engine.settings.load();
        Arc::new(Stream {
            id,
            path,
            created: SystemTime::now(),
            engine: Arc::downgrade(engine),
            worker,
            tracks: ArcSwap::from_pointee(Vec::new()),
            control: Mutex::new(Control {
                lifecycle: Lifecycle::new(settings.timeouts(), Instant::now()),
                publisher: None,
                derived: Vec::new(),
                next_epoch: 1,
            }),
            ingest: Mutex::new(Ingest {
                epoch: 0,
                ts: TimestampCorrector::new(settings.max_ts_jump.as_micros() as i64),
                next_seq: 0,
                claimed: Vec::new(),
                derived: Vec::new(),
            }),
            announced: AtomicBool::new(false),
            subscribers: Mutex::new(HashMap::new()),
            transforms: Default::default(),
            dispatch: Mutex::new(DispatchState::default()),
            scheduled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            poke: Notify::new(),
            cancel: engine.root.child_token(),
            last_data: AtomicU64::new(0),
            frames_in: Counter::default(),
            bytes_in: Counter::default(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    // ---- publisher side -------------------------------------------------

    /// Attaches a publisher. Err(Busy) when one is attached and kick_existing
    /// is off; Err(Closed) when this stream is already closing (the caller
    /// retries on a new stream).
    pub(crate) fn attach_publisher(
        self: &Arc<Self>,
        info: PublisherInfo,
        kick_existing: bool,
    ) -> Result<(u64, Arc<PublisherEnd>), EngineError> {
        let mut c = self.control.lock();
        if c.lifecycle.phase() == Phase::Closed {
            return Err(EngineError::StreamClosing);
        }
        if let Some(old) = &c.publisher {
            if !kick_existing {
                return Err(EngineError::Busy(self.path.clone()));
            }
            tracing::info!(stream = %self.path, "kicking the existing publisher for a new one");
            old.end
                .end(EndReason::Kicked, "replaced by a new publisher");
        }
        let epoch = c.next_epoch;
        c.next_epoch += 1;
        let end = Arc::new(PublisherEnd::default());
        let had_timeline = c.publisher.is_some() || c.lifecycle.phase() == Phase::WaitingReconnect;
        c.publisher = Some(PublisherSlot {
            epoch,
            info,
            since: SystemTime::now(),
            end: end.clone(),
        });
        c.lifecycle.publisher_attached(Instant::now());
        {
            let mut ing = self.ingest.lock();
            ing.epoch = epoch;
            ing.claimed = vec![false; self.tracks.load().len()];
            if had_timeline {
                ing.ts.rebase();
            }
        }
        drop(c);
        self.touch_data();
        self.poke.notify_one();
        Ok((epoch, end))
    }

    /// Records where the publisher of `epoch` pulls the stream from.
    pub(crate) fn set_publisher_source(&self, epoch: u64, source: &str, cluster_relay: bool) {
        let mut c = self.control.lock();
        if let Some(p) = c.publisher.as_mut().filter(|p| p.epoch == epoch) {
            p.info.source = Some(source.to_owned());
            p.info.cluster_relay = cluster_relay;
        }
    }

    /// The publisher of `epoch` is gone (it left, or was detached).
    pub(crate) fn detach_publisher(self: &Arc<Self>, epoch: u64, reason: EndReason, message: &str) {
        let mut c = self.control.lock();
        let current = matches!(&c.publisher, Some(p) if p.epoch == epoch);
        if !current {
            return;
        }
        if let Some(p) = c.publisher.take() {
            p.end.end(reason, message);
        }
        self.ingest.lock().epoch = 0;
        let actions = c.lifecycle.publisher_detached(Instant::now());
        drop(c);
        self.poke.notify_one();
        self.execute(actions);
    }

    pub(crate) fn add_track(&self, epoch: u64, info: TrackInfo) -> Result<u32, EngineError> {
        let mut ing = self.ingest.lock();
        if ing.epoch != epoch {
            return Err(EngineError::PublisherClosed);
        }
        let tracks = self.tracks.load_full();
        // A returning publisher gets its old tracks back, matched by kind, so
        // players keep the same track ids.
        if let Some(t) = tracks.iter().find(|t| {
            !t.derived
                && t.kind() == info.kind
                && !ing.claimed.get(t.id as usize).copied().unwrap_or(false)
        }) {
            *t.info.lock() = info;
            let id = t.id;
            ing.claimed.resize(tracks.len(), false);
            ing.claimed[id as usize] = true;
            return Ok(id);
        }
        let id = self.push_track(&tracks, info, false)?;
        ing.claimed.resize(id as usize + 1, false);
        ing.claimed[id as usize] = true;
        Ok(id)
    }

    /// Appends a new track to `tracks` (the current list, read under the
    /// ingest lock the caller holds) and publishes the longer list.
    fn push_track(
        &self,
        tracks: &[Arc<Track>],
        info: TrackInfo,
        derived: bool,
    ) -> Result<u32, EngineError> {
        if tracks.len() >= MAX_TRACKS {
            return Err(EngineError::TooManyTracks(MAX_TRACKS));
        }
        let sizes = self
            .engine
            .upgrade()
            .map(|e| e.settings.load().ring_sizes())
            .ok_or(EngineError::ShuttingDown)?;
        let id = tracks.len() as u32;
        let mut next = tracks.to_vec();
        next.push(Track::new(id, info, derived, sizes));
        self.tracks.store(Arc::new(next));
        Ok(id)
    }

    // ---- derived tracks (transformers) ---------------------------------------

    /// Attaches a writer of derived tracks; the stream must have a
    /// publisher. It takes no publisher slot and leaves the lifecycle alone.
    pub(crate) fn attach_derived(&self) -> Result<(u64, Arc<PublisherEnd>), EngineError> {
        let mut c = self.control.lock();
        if c.lifecycle.phase() == Phase::Closed {
            return Err(EngineError::StreamClosing);
        }
        if c.publisher.is_none() {
            return Err(EngineError::NotPublished(self.path.clone()));
        }
        let epoch = c.next_epoch;
        c.next_epoch += 1;
        let end = Arc::new(PublisherEnd::default());
        c.derived.push((epoch, end.clone()));
        Ok((epoch, end))
    }

    /// The derived writer of `epoch` is gone: its tracks stay, unowned, for
    /// the next writer of the same codec.
    pub(crate) fn detach_derived(&self, epoch: u64) {
        let mut c = self.control.lock();
        c.derived.retain(|(e, _)| *e != epoch);
        let mut ing = self.ingest.lock();
        for d in ing.derived.iter_mut().filter(|d| d.0 == epoch) {
            d.0 = 0;
        }
    }

    /// Declares a derived track: one of the same codec nobody owns is taken
    /// back (players keep its id), else a new one. One writer a codec: a
    /// second (a transformer's new generation after a reload, while the
    /// old one still runs) gets `Busy`, so players never get the same
    /// audio twice.
    pub(crate) fn add_derived_track(
        &self,
        epoch: u64,
        info: TrackInfo,
    ) -> Result<u32, EngineError> {
        if !self.control.lock().derived.iter().any(|(e, _)| *e == epoch) {
            return Err(EngineError::PublisherClosed);
        }
        let mut ing = self.ingest.lock();
        let tracks = self.tracks.load_full();
        ing.derived.resize(tracks.len(), (0, None));
        if let Some(t) = tracks
            .iter()
            .find(|t| t.derived && t.info().codec == info.codec)
        {
            let owner = &mut ing.derived[t.id as usize].0;
            if *owner != 0 && *owner != epoch {
                return Err(EngineError::Busy(self.path.clone()));
            }
            *owner = epoch;
            *t.info.lock() = info;
            return Ok(t.id);
        }
        let id = self.push_track(&tracks, info, true)?;
        ing.derived.resize(id as usize + 1, (0, None));
        ing.derived[id as usize].0 = epoch;
        Ok(id)
    }

    /// Writes a derived frame: its timestamps are already on the stream's
    /// timeline, so they are kept; a dts that does not increase on its
    /// track is dropped (a transformer resyncing must not send players
    /// backwards).
    pub(crate) fn write_derived(
        self: &Arc<Self>,
        epoch: u64,
        mut frame: Frame,
    ) -> Result<(), EngineError> {
        if self.is_closed() {
            return Err(EngineError::PublisherClosed);
        }
        let len = frame.payload().len() as u64;
        frame.add_flags(rill_abi::RILL_FRAME_DERIVED);
        {
            let mut ing = self.ingest.lock();
            let track = frame.track() as usize;
            let slot = ing
                .derived
                .get_mut(track)
                .filter(|d| d.0 == epoch && epoch != 0)
                .ok_or(EngineError::NoSuchTrack(frame.track()))?;
            if !frame.is_config() {
                if slot.1.is_some_and(|last| frame.dts() <= last) {
                    return Ok(());
                }
                slot.1 = Some(frame.dts());
            }
            let tracks = self.tracks.load();
            let t = tracks
                .get(track)
                .ok_or(EngineError::NoSuchTrack(frame.track()))?;
            frame.seq = ing.next_seq;
            ing.next_seq += 1;
            t.frames.add(1);
            t.bytes.add(len);
            t.push(frame);
        }
        self.bytes_in.add(len);
        self.frames_in.add(1);
        self.touch_data();
        self.schedule();
        Ok(())
    }

    /// Writes a frame: corrects its timestamps, appends it to its track's ring
    /// and schedules the dispatcher. Never waits for subscribers.
    pub(crate) fn write(self: &Arc<Self>, epoch: u64, mut frame: Frame) -> Result<(), EngineError> {
        let len = frame.payload().len() as u64;
        let media = !frame.is_config();
        {
            let mut ing = self.ingest.lock();
            if ing.epoch != epoch {
                return Err(EngineError::PublisherClosed);
            }
            let tracks = self.tracks.load();
            let track = tracks
                .get(frame.track() as usize)
                .filter(|_| {
                    ing.claimed
                        .get(frame.track() as usize)
                        .copied()
                        .unwrap_or(false)
                })
                .ok_or(EngineError::NoSuchTrack(frame.track()))?;
            let c = ing
                .ts
                .correct(frame.track() as usize, frame.pts(), frame.dts(), media);
            frame.set_times(c.pts, c.dts);
            if c.discontinuity {
                frame.add_flags(RILL_FRAME_DISCONTINUITY);
            }
            frame.seq = ing.next_seq;
            ing.next_seq += 1;
            track.frames.add(1);
            track.bytes.add(len);
            track.push(frame);
        }
        self.frames_in.add(1);
        self.bytes_in.add(len);
        if let Some(e) = self.engine.upgrade() {
            e.totals.frames_in.add(1);
            e.totals.bytes_in.add(len);
        }
        self.touch_data();
        self.schedule();
        if media && !self.announced.swap(true, Ordering::AcqRel) {
            self.event(StreamEventKind::Published);
        }
        Ok(())
    }

    pub(crate) fn event(&self, kind: StreamEventKind) {
        if let Some(e) = self.engine.upgrade() {
            e.events.send(kind, &self.path);
        }
    }

    /// Metadata (an FLV onMetaData body) travels as a config frame on the
    /// stream's data track, so it reaches players in order and is part of the
    /// start set of every new subscriber.
    pub(crate) fn set_metadata(
        self: &Arc<Self>,
        epoch: u64,
        data_track: &mut Option<u32>,
        body: Bytes,
    ) -> Result<(), EngineError> {
        let track = match *data_track {
            Some(t) => t,
            None => {
                let info = TrackInfo {
                    kind: RILL_TRACK_DATA,
                    codec: RILL_CODEC_METADATA,
                    ..Default::default()
                };
                let t = self.add_track(epoch, info)?;
                *data_track = Some(t);
                t
            }
        };
        let frame = Frame::new(
            track,
            RILL_CODEC_METADATA,
            RILL_FRAME_CONFIG | RILL_FRAME_KEY,
            0,
            0,
            body,
        );
        self.write(epoch, frame)
    }

    fn touch_data(&self) {
        if let Some(e) = self.engine.upgrade() {
            let nanos = Instant::now().saturating_duration_since(e.epoch).as_nanos() as u64;
            self.last_data.store(nanos, Ordering::Relaxed);
        }
    }

    fn last_data(&self) -> Option<Instant> {
        let e = self.engine.upgrade()?;
        Some(e.epoch + Duration::from_nanos(self.last_data.load(Ordering::Relaxed)))
    }

    fn schedule(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            if let Some(e) = self.engine.upgrade() {
                e.send_work(self.worker, Work::Dispatch(self.clone()));
            }
        }
    }

    pub(crate) fn track_info(&self, track: u32) -> Option<TrackInfo> {
        self.tracks.load().get(track as usize).map(|t| t.info())
    }

    // ---- dispatcher side ---------------------------------------------------

    pub(crate) fn dispatch_now(&self) {
        // Clear before reading: a frame written after this reschedules.
        self.scheduled.store(false, Ordering::Release);
        let max_lag = self.max_lag();
        let tracks = self.tracks.load_full();
        self.dispatch.lock().run(&tracks, Instant::now(), max_lag);
    }

    pub(crate) fn join_now(&self, sub: Arc<SubscriberShared>) {
        self.scheduled.store(false, Ordering::Release);
        let max_lag = self.max_lag();
        let tracks = self.tracks.load_full();
        let mut d = self.dispatch.lock();
        d.run(&tracks, Instant::now(), max_lag);
        d.join(sub);
    }

    fn max_lag(&self) -> Duration {
        self.engine
            .upgrade()
            .map(|e| e.settings.load().max_lag)
            .unwrap_or(Duration::from_secs(10))
    }

    // ---- subscriber side -------------------------------------------------

    pub(crate) fn add_subscriber(
        self: &Arc<Self>,
        sub: Arc<SubscriberShared>,
    ) -> Result<(), EngineError> {
        let mut c = self.control.lock();
        if c.lifecycle.phase() == Phase::Closed {
            return Err(EngineError::StreamClosing);
        }
        let transform = sub.info.transform;
        match sub.info.wait_timeout {
            // A transformer keeps nothing alive and waits for nobody.
            _ if transform => {}
            Some(w) => c
                .lifecycle
                .subscriber_joined_waiting(sub.id, Instant::now(), w),
            None => c.lifecycle.subscriber_joined(sub.id, Instant::now()),
        }
        let first = {
            let mut subs = self.subscribers.lock();
            subs.insert(sub.id, sub.clone());
            if transform {
                self.transforms.fetch_add(1, Ordering::Relaxed);
            }
            !transform && subs.len() - self.transforms.load(Ordering::Relaxed) == 1
        };
        // Not while a publisher may return within its grace window.
        let waits = !transform && c.lifecycle.phase() == Phase::WaitingPublisher;
        let active = first && c.publisher.is_some() && self.announced.load(Ordering::Acquire);
        drop(c);
        if waits {
            self.event(StreamEventKind::Waiting);
        } else if active {
            self.event(StreamEventKind::Active);
        }
        self.poke.notify_one();
        if let Some(e) = self.engine.upgrade() {
            e.send_work(self.worker, Work::Join(self.clone(), sub));
        }
        Ok(())
    }

    /// A subscriber is gone (its handle dropped, or the engine closed it).
    /// Idempotent: only the first call per subscriber counts.
    pub(crate) fn subscriber_left(self: &Arc<Self>, id: u64) {
        let mut c = self.control.lock();
        let Some(sub) = self.subscribers.lock().remove(&id) else {
            return;
        };
        self.fold_totals(&sub);
        if sub.info.transform {
            self.transforms.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let actions = c.lifecycle.subscriber_left(id, Instant::now());
        let idle = c.publisher.is_some()
            && self.announced.load(Ordering::Acquire)
            && self.subscriber_count() == 0;
        drop(c);
        if idle {
            self.event(StreamEventKind::Idle);
        }
        self.poke.notify_one();
        self.execute(actions);
    }

    /// A leaving subscriber's output joins the engine's totals. (What it
    /// takes from its queue after this is not counted there.)
    fn fold_totals(&self, sub: &SubscriberShared) {
        if let Some(e) = self.engine.upgrade() {
            e.totals.frames_out.add(sub.frames.get());
            e.totals.bytes_out.add(sub.bytes.get());
            e.totals.dropped.add(sub.drops.load(Ordering::Relaxed));
        }
    }

    pub(crate) fn has_publisher(&self) -> bool {
        self.control.lock().publisher.is_some()
    }

    pub(crate) fn subscriber(&self, id: u64) -> Option<Arc<SubscriberShared>> {
        self.subscribers.lock().get(&id).cloned()
    }

    /// Players (transformers not counted).
    pub(crate) fn subscriber_count(&self) -> usize {
        let n = self.subscribers.lock().len();
        n.saturating_sub(self.transforms.load(Ordering::Relaxed))
    }

    pub(crate) fn subscriber_list(&self) -> Vec<Arc<SubscriberShared>> {
        self.subscribers.lock().values().cloned().collect()
    }

    // ---- lifecycle -------------------------------------------------------

    fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::FailWaiters(ids) => {
                    for id in ids {
                        if let Some(s) = self.subscriber(id) {
                            s.close(
                                SubscribeEnd::new(
                                    EndReason::WaitTimeout,
                                    format!("nobody published {} in time", self.path),
                                ),
                                false,
                            );
                        }
                        self.subscriber_left(id);
                    }
                }
                Action::DropPublisher(msg) => {
                    tracing::info!(stream = %self.path, "dropping publisher: {msg}");
                    let mut c = self.control.lock();
                    if let Some(p) = c.publisher.take() {
                        p.end.end(EndReason::PublishTimeout, &msg);
                    }
                    self.ingest.lock().epoch = 0;
                    // The lifecycle already moved on (DropPublisher comes with
                    // its own transition).
                    drop(c);
                }
                Action::CloseStream(why) => {
                    let (reason, msg) = match why {
                        CloseWhy::Idle => (
                            EndReason::StreamClosed,
                            "no subscriber within the idle timeout",
                        ),
                        CloseWhy::NoSubscribers => (
                            EndReason::StreamClosed,
                            "no subscriber within the delay-close timeout",
                        ),
                        CloseWhy::PublisherGone => (EndReason::PublisherGone, "the publisher left"),
                        CloseWhy::Abandoned => {
                            (EndReason::StreamClosed, "nobody publishes or waits")
                        }
                    };
                    self.close(SubscribeEnd::new(reason, msg));
                }
            }
        }
    }

    /// Closes the stream: detaches the publisher, ends every subscriber (they
    /// take what is queued first: an orderly end), leaves the registry.
    pub(crate) fn close(self: &Arc<Self>, end: SubscribeEnd) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut c = self.control.lock();
            c.lifecycle.close_now();
            if let Some(p) = c.publisher.take() {
                p.end.end(end.reason, &end.message);
            }
            for (_, d) in c.derived.drain(..) {
                d.end(end.reason, &end.message);
            }
            self.ingest.lock().epoch = 0;
        }
        let subs: Vec<_> = self.subscribers.lock().drain().map(|(_, s)| s).collect();
        for s in subs {
            s.close(end.clone(), true);
            self.fold_totals(&s);
        }
        if let Some(e) = self.engine.upgrade() {
            e.streams.remove_if(&self.path, |_, s| Arc::ptr_eq(s, self));
        }
        tracing::info!(stream = %self.path, reason = end.reason.as_str(), "stream closed: {}", end.message);
        if self.announced.load(Ordering::Acquire) {
            self.event(StreamEventKind::Unpublished);
        }
        self.cancel.cancel();
    }

    /// Kicks the publisher (management API): it is detached, and the stream
    /// waits for a reconnect like after any publisher loss.
    pub(crate) fn kick_publisher(self: &Arc<Self>) -> bool {
        let epoch = self.control.lock().publisher.as_ref().map(|p| p.epoch);
        match epoch {
            Some(e) => {
                self.detach_publisher(e, EndReason::Kicked, "kicked");
                true
            }
            None => false,
        }
    }

    /// The stream's own task: drives the lifecycle's timeouts and refreshes
    /// the rates once a second, until the stream closes or the server stops.
    pub(crate) async fn run(self: Arc<Self>) {
        let tick = Duration::from_secs(1);
        let mut last_tick = Instant::now();
        loop {
            let deadline = {
                let c = self.control.lock();
                let next = c.lifecycle.next_deadline();
                let t = last_tick + tick;
                next.map_or(t, |n| n.min(t))
            };
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            let now = Instant::now();
            if now >= last_tick + tick {
                self.tick_rates(now - last_tick);
                last_tick = now;
                if let Some(e) = self.engine.upgrade() {
                    let t = e.settings.load().timeouts();
                    self.control.lock().lifecycle.set_timeouts(t);
                }
            }
            let last = self.last_data();
            let actions = self.control.lock().lifecycle.on_timeout(now, last);
            self.execute(actions);
            if self.is_closed() {
                break;
            }
        }
        if !self.is_closed() {
            self.close(SubscribeEnd::new(
                EndReason::Shutdown,
                "the server is shutting down",
            ));
        }
    }

    fn tick_rates(&self, elapsed: Duration) {
        self.frames_in.tick(elapsed);
        self.bytes_in.tick(elapsed);
        for t in self.tracks.load().iter() {
            t.frames.tick(elapsed);
            t.bytes.tick(elapsed);
        }
        for s in self.subscribers.lock().values() {
            s.frames.tick(elapsed);
            s.bytes.tick(elapsed);
        }
    }

    // ---- snapshots ---------------------------------------------------------

    pub fn snapshot(&self) -> StreamSnapshot {
        let (phase, publisher) = {
            let c = self.control.lock();
            (
                c.lifecycle.phase(),
                c.publisher.as_ref().map(|p| (p.info.clone(), p.since)),
            )
        };
        StreamSnapshot {
            id: self.id,
            path: self.path.clone(),
            state: phase.as_str(),
            created: unix_secs(self.created),
            publisher: publisher.map(|(info, since)| PublisherSnapshot {
                protocol: info.protocol,
                remote: info.remote,
                source: info.source,
                cluster_relay: info.cluster_relay,
                since: unix_secs(since),
            }),
            tracks: self
                .tracks
                .load()
                .iter()
                .map(|t| {
                    let i = t.info();
                    TrackSnapshot {
                        id: t.id,
                        kind: match i.kind {
                            rill_abi::RILL_TRACK_VIDEO => "video",
                            rill_abi::RILL_TRACK_AUDIO => "audio",
                            _ => "data",
                        },
                        codec: super::track::fourcc_str(i.codec),
                        width: i.width,
                        height: i.height,
                        sample_rate: i.sample_rate,
                        channels: i.channels,
                        frames: t.frames.get(),
                        bytes: t.bytes.get(),
                        bitrate_bps: t.bytes.rate() * 8,
                        ring_slots: t.ring.capacity(),
                    }
                })
                .collect(),
            subscribers: self.subscriber_count(),
            frames_in: self.frames_in.get(),
            bytes_in: self.bytes_in.get(),
            bitrate_bps: self.bytes_in.rate() * 8,
        }
    }
}

pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A stream as the management API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSnapshot {
    pub id: u64,
    pub path: String,
    pub state: &'static str,
    /// Unix time, seconds.
    pub created: f64,
    pub publisher: Option<PublisherSnapshot>,
    pub tracks: Vec<TrackSnapshot>,
    pub subscribers: usize,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub bitrate_bps: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublisherSnapshot {
    pub protocol: String,
    pub remote: String,
    /// The URL pulled, for a relayed stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Pulled from the owning node of the cluster.
    pub cluster_relay: bool,
    pub since: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackSnapshot {
    pub id: u32,
    pub kind: &'static str,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u32,
    pub frames: u64,
    pub bytes: u64,
    pub bitrate_bps: u64,
    pub ring_slots: u64,
}
