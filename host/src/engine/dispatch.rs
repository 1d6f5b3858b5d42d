//! The dispatcher: reads each frame of a stream from its track rings once, in
//! ingest order, and offers the shared frame to every subscriber's queue.
//!
//! A fixed pool of workers serves all streams; a stream is pinned to one worker,
//! so its dispatch state is only ever touched by that worker (its lock is never
//! contended in steady state). A publisher schedules its stream at most once
//! until the worker picks it up, so a burst of frames costs one wake-up.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::FrameRef;
use super::ring::Read;
use super::stream::Stream;
use super::subscriber::{DeliverCtx, SubscriberShared};
use super::track::Track;
use rill_abi::{RILL_TRACK_AUDIO, RILL_TRACK_DATA, RILL_TRACK_VIDEO};

pub(crate) enum Work {
    /// New frames were published.
    Dispatch(Arc<Stream>),
    /// A subscriber joins the fan-out (after what is pending was dispatched).
    Join(Arc<Stream>, Arc<SubscriberShared>),
}

pub(crate) async fn worker(mut rx: mpsc::UnboundedReceiver<Work>, stop: CancellationToken) {
    loop {
        let work = tokio::select! {
            biased;
            w = rx.recv() => match w { Some(w) => w, None => break },
            _ = stop.cancelled() => break,
        };
        match work {
            Work::Dispatch(stream) => stream.dispatch_now(),
            Work::Join(stream, sub) => stream.join_now(sub),
        }
    }
}

/// Per-stream fan-out state, owned by the stream's worker.
#[derive(Default)]
pub(crate) struct DispatchState {
    tracks: Arc<Vec<Arc<Track>>>,
    /// Next ring position to read, per track.
    cursors: Vec<u64>,
    subs: Vec<Arc<SubscriberShared>>,
    /// Reused between runs: no allocation per frame once warmed up.
    batch: Vec<FrameRef>,
    /// The newest config frame per track (metadata on data tracks).
    configs: Vec<Option<FrameRef>>,
    /// Metadata first, then the decoder configs: what a (re)starting
    /// subscriber gets before its keyframe.
    start_set: Vec<FrameRef>,
    primary: u32,
}

impl DispatchState {
    fn refresh_tracks(&mut self, tracks: &Arc<Vec<Arc<Track>>>) {
        if Arc::ptr_eq(&self.tracks, tracks) {
            return;
        }
        self.tracks = tracks.clone();
        self.cursors.resize(tracks.len(), 0);
        self.configs.resize(tracks.len(), None);
        let first = |kind| tracks.iter().find(|t| t.kind() == kind).map(|t| t.id);
        self.primary = first(RILL_TRACK_VIDEO)
            .or_else(|| first(RILL_TRACK_AUDIO))
            .unwrap_or(0);
    }

    fn rebuild_start_set(&mut self) {
        self.start_set.clear();
        let tracks = &self.tracks;
        let is_data = |f: &FrameRef| {
            tracks
                .get(f.track() as usize)
                .is_some_and(|t| t.kind() == RILL_TRACK_DATA)
        };
        let configs = self.configs.iter().flatten();
        self.start_set
            .extend(configs.clone().filter(|f| is_data(f)).cloned());
        self.start_set
            .extend(configs.filter(|f| !is_data(f)).cloned());
    }

    /// Reads everything new and offers it to every subscriber.
    pub(crate) fn run(
        &mut self,
        tracks: &Arc<Vec<Arc<Track>>>,
        now: Instant,
        max_lag: std::time::Duration,
    ) {
        self.refresh_tracks(tracks);
        self.batch.clear();
        let mut lapped = false;
        for (i, t) in self.tracks.iter().enumerate() {
            loop {
                match t.ring.read(self.cursors[i]) {
                    Read::Item(f) => {
                        self.batch.push(f);
                        self.cursors[i] += 1;
                    }
                    Read::NotYet => break,
                    Read::Lapped { oldest } => {
                        // This worker fell a whole ring behind: everyone lost
                        // frames and restarts at the next keyframe.
                        self.cursors[i] = oldest;
                        lapped = true;
                    }
                }
            }
        }
        if lapped {
            for s in &self.subs {
                s.resync();
            }
        }
        if self.batch.len() > 1 {
            self.batch.sort_unstable_by_key(|f| f.seq);
        }
        let batch = std::mem::take(&mut self.batch);
        for f in &batch {
            if f.is_config() {
                if let Some(slot) = self.configs.get_mut(f.track() as usize) {
                    *slot = Some(f.clone());
                }
                self.rebuild_start_set();
            }
            let ctx = DeliverCtx {
                primary: self.primary,
                start_set: &self.start_set,
                now,
                max_lag,
            };
            for s in &self.subs {
                if let Some(w) = s.deliver(f, &ctx) {
                    w.wake();
                }
            }
        }
        self.batch = batch;
        self.batch.clear();
        self.subs.retain(|s| !s.is_closed());
    }

    /// Adds a subscriber: it starts at the newest keyframe already dispatched,
    /// with the frames of every track from there, or waits for the next one.
    pub(crate) fn join(&mut self, sub: Arc<SubscriberShared>) {
        if sub.is_closed() {
            return;
        }
        if sub.info.live_edge {
            self.subs.push(sub);
            return;
        }
        let key = self
            .tracks
            .get(self.primary as usize)
            .and_then(|t| t.ring.last_key())
            .filter(|k| k.pos < self.cursors[self.primary as usize]);
        if let Some(key) = key {
            let mut frames = Vec::new();
            for (i, t) in self.tracks.iter().enumerate() {
                let end = self.cursors[i];
                let mut pos = first_at_or_after(t, key.seq, end);
                while pos < end {
                    match t.ring.read(pos) {
                        Read::Item(f) => {
                            if !f.is_config() {
                                frames.push(f);
                            }
                            pos += 1;
                        }
                        Read::Lapped { oldest } => pos = oldest.max(pos + 1),
                        Read::NotYet => break,
                    }
                }
            }
            frames.sort_unstable_by_key(|f| f.seq);
            sub.start_at(&self.start_set, &frames);
        }
        self.subs.push(sub);
    }
}

/// The first ring position of `t` below `end` whose frame has `seq >= seq`
/// (binary search: seq grows with position).
fn first_at_or_after(t: &Track, seq: u64, end: u64) -> u64 {
    let (mut lo, mut hi) = (t.ring.oldest(), end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match t.ring.read(mid) {
            Read::Item(f) if f.seq < seq => lo = mid + 1,
            Read::Item(_) => hi = mid,
            Read::Lapped { oldest } => lo = oldest.max(mid + 1),
            Read::NotYet => hi = mid,
        }
    }
    lo
}
