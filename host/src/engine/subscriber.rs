//! Subscribers: a bounded queue per player, filled by the dispatcher, drained by
//! the player's session.
//!
//! The queue is the slow-viewer policy: when it is full, the subscriber stops
//! taking frames until the next keyframe of the stream's primary track (so it
//! loses whole GOPs, never half of one), and resumes there with the current
//! metadata and decoder configs in front. A subscriber that stays behind longer
//! than `max_lag` is closed. None of this ever blocks the dispatcher: each
//! queue has its own short lock, and a full queue costs a counter increment.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rill_abi::RILL_FRAME_DISCONTINUITY;
use tokio::time::Instant;

use super::events::StreamEventKind;
use super::frame::FrameRef;
use super::stats::Counter;
use super::stream::Stream;

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Nobody published the stream within `subscribe.wait_timeout`.
    WaitTimeout,
    /// The publisher left and did not come back within the reconnect grace.
    PublisherGone,
    /// The stream was closed (idle or delay-close timeout, or kicked).
    StreamClosed,
    /// The subscriber was kicked through the API.
    Kicked,
    /// The subscriber stayed behind longer than `subscribe.max_lag`.
    TooSlow,
    /// The server is shutting down.
    Shutdown,
    /// A publisher sent nothing for `publish.publish_timeout`.
    PublishTimeout,
    /// The subscriber closed itself.
    Closed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::WaitTimeout => "wait_timeout",
            EndReason::PublisherGone => "publisher_gone",
            EndReason::StreamClosed => "stream_closed",
            EndReason::Kicked => "kicked",
            EndReason::TooSlow => "too_slow",
            EndReason::Shutdown => "shutdown",
            EndReason::PublishTimeout => "publish_timeout",
            EndReason::Closed => "closed",
        }
    }
}

/// The end of a subscription: a reason and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEnd {
    pub reason: EndReason,
    pub message: String,
}

impl SubscribeEnd {
    pub fn new(reason: EndReason, message: impl Into<String>) -> Self {
        SubscribeEnd {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for SubscribeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)
    }
}

/// Who is subscribing (for the management API), and how.
#[derive(Debug, Clone, Default)]
pub struct SubscriberInfo {
    /// Protocol name, e.g. "rtmp", "http-flv".
    pub protocol: String,
    /// Remote address of the player, if any.
    pub remote: String,
    /// Start at the next keyframe instead of the newest one in the GOP
    /// cache: lower latency, slower start.
    pub live_edge: bool,
    /// How long to wait for a publisher; None = `subscribe.wait_timeout`.
    pub wait_timeout: Option<Duration>,
    /// A transformer, not a player: it neither keeps the stream alive nor
    /// counts as one of its players.
    pub transform: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for a keyframe to start (or restart after drops) at.
    AwaitKey { started: bool },
    /// Taking every frame.
    Live,
}

struct Queue {
    frames: VecDeque<FrameRef>,
    cap: usize,
    mode: Mode,
    lag_since: Option<Instant>,
    waker: Option<Waker>,
    end: Option<SubscribeEnd>,
    /// Deliver what is queued before reporting the end (an orderly end of
    /// stream); false drops the queue (kicked, too slow).
    drain_on_end: bool,
}

/// The part of a subscriber the engine shares between the dispatcher, the
/// stream and the subscriber's handle.
pub struct SubscriberShared {
    pub(crate) id: u64,
    pub(crate) info: SubscriberInfo,
    pub(crate) created: SystemTime,
    queue: Mutex<Queue>,
    closed: AtomicBool,
    pub(crate) frames: Counter,
    pub(crate) bytes: Counter,
    pub(crate) drops: AtomicU64,
}

/// What the dispatcher hands every subscriber along with the frame.
pub(crate) struct DeliverCtx<'a> {
    /// The track whose keyframes start GOPs (first video track, else audio).
    pub primary: u32,
    /// Metadata and the current decoder configs, sent in front of a (re)start.
    pub start_set: &'a [FrameRef],
    pub now: Instant,
    pub max_lag: Duration,
}

impl SubscriberShared {
    pub(crate) fn new(id: u64, info: SubscriberInfo, queue_frames: usize) -> Arc<Self> {
        Arc::new(SubscriberShared {
            id,
            info,
            created: SystemTime::now(),
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                cap: queue_frames.max(2),
                mode: Mode::AwaitKey { started: false },
                lag_since: None,
                waker: None,
                end: None,
                drain_on_end: false,
            }),
            closed: AtomicBool::new(false),
            frames: Counter::default(),
            bytes: Counter::default(),
            drops: AtomicU64::new(0),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.queue.lock().frames.len()
    }

    /// Ends the subscription. The first end wins. `drain` lets the player take
    /// what is queued first.
    pub(crate) fn close(&self, end: SubscribeEnd, drain: bool) {
        let waker = {
            let mut q = self.queue.lock();
            if q.end.is_some() {
                return;
            }
            q.end = Some(end);
            q.drain_on_end = drain;
            if !drain {
                q.frames.clear();
            }
            q.waker.take()
        };
        self.closed.store(true, Ordering::Release);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The frames before the next keyframe were lost to this subscriber:
    /// restart it there.
    pub(crate) fn resync(&self) {
        let mut q = self.queue.lock();
        if q.mode == Mode::Live {
            q.mode = Mode::AwaitKey { started: true };
        }
    }

    /// Starts the subscriber at a GOP: the start set, then `frames` (from a
    /// keyframe of the primary track, in stream order).
    pub(crate) fn start_at(&self, start_set: &[FrameRef], frames: &[FrameRef]) {
        let waker = {
            let mut q = self.queue.lock();
            if q.end.is_some() {
                return;
            }
            q.frames.extend(start_set.iter().cloned());
            q.frames.extend(frames.iter().cloned());
            q.mode = Mode::Live;
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Offers one frame. Returns a waker to wake once the lock is released, and
    /// closes the subscriber itself when it lagged too long.
    pub(crate) fn deliver(&self, frame: &FrameRef, ctx: &DeliverCtx<'_>) -> Option<Waker> {
        let mut q = self.queue.lock();
        if q.end.is_some() {
            return None;
        }
        let was_empty = q.frames.is_empty();
        match q.mode {
            Mode::Live => {
                if q.frames.len() < q.cap {
                    q.frames.push_back(frame.clone());
                } else {
                    // Full: give up on this GOP.
                    q.mode = Mode::AwaitKey { started: true };
                    self.drops.fetch_add(1, Ordering::Relaxed);
                }
            }
            Mode::AwaitKey { started } => {
                let can_start = frame.is_key()
                    && !frame.is_config()
                    && frame.track() == ctx.primary
                    && q.frames.len() <= q.cap / 2;
                if can_start {
                    q.frames.extend(ctx.start_set.iter().cloned());
                    if started {
                        // Frames were lost before this one: say so, to this
                        // subscriber only (a rare shallow copy).
                        q.frames
                            .push_back(Arc::new(frame.with_flags(RILL_FRAME_DISCONTINUITY)));
                    } else {
                        q.frames.push_back(frame.clone());
                    }
                    q.mode = Mode::Live;
                } else if started && !frame.is_config() {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Behind = dropping, or more than half a queue to catch up on.
        let behind =
            matches!(q.mode, Mode::AwaitKey { started: true }) || q.frames.len() > q.cap / 2;
        if !behind {
            q.lag_since = None;
        } else {
            let since = *q.lag_since.get_or_insert(ctx.now);
            if ctx.now.saturating_duration_since(since) > ctx.max_lag {
                drop(q);
                self.close(
                    SubscribeEnd::new(
                        EndReason::TooSlow,
                        format!("behind the stream for more than {:?}", ctx.max_lag),
                    ),
                    false,
                );
                return None;
            }
        }
        if was_empty && !q.frames.is_empty() {
            q.waker.take()
        } else {
            None
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<FrameRef, SubscribeEnd>> {
        let mut q = self.queue.lock();
        if let Some(end) = &q.end {
            if !q.drain_on_end || q.frames.is_empty() {
                return Poll::Ready(Err(end.clone()));
            }
        }
        if let Some(f) = q.frames.pop_front() {
            // The first GOP arrives as a burst; give its room back.
            if q.frames.is_empty() && q.frames.capacity() > 64 {
                q.frames.shrink_to(8);
            }
            drop(q);
            self.frames.add(1);
            self.bytes.add(f.payload().len() as u64);
            return Poll::Ready(Ok(f));
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn try_recv(&self) -> Option<Result<FrameRef, SubscribeEnd>> {
        let mut q = self.queue.lock();
        if let Some(f) = q.frames.pop_front() {
            drop(q);
            self.frames.add(1);
            self.bytes.add(f.payload().len() as u64);
            return Some(Ok(f));
        }
        q.end.clone().map(Err)
    }
}

/// A player's subscription to a stream. Dropping it unsubscribes.
pub struct Subscriber {
    pub(crate) shared: Arc<SubscriberShared>,
    pub(crate) stream: Arc<Stream>,
}

impl Subscriber {
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The stream path this subscriber plays.
    pub fn path(&self) -> &str {
        self.stream.path()
    }

    /// The next frame, waiting for one; or why the subscription ended.
    pub async fn recv(&self) -> Result<FrameRef, SubscribeEnd> {
        poll_fn(|cx| self.shared.poll_recv(cx)).await
    }

    /// `recv` as a poll function, for hand-written futures and host glue.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<FrameRef, SubscribeEnd>> {
        self.shared.poll_recv(cx)
    }

    /// A frame if one is queued, the end if it ended, or None.
    pub fn try_recv(&self) -> Option<Result<FrameRef, SubscribeEnd>> {
        self.shared.try_recv()
    }

    /// Whether the engine ended this subscription (its end is then what
    /// `recv` returns once the queue is drained).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Frames dropped because this subscriber was too slow.
    pub fn drops(&self) -> u64 {
        self.shared.drops.load(Ordering::Relaxed)
    }

    /// What the stream's track `track` carries, if it exists.
    pub fn track_info(&self, track: u32) -> Option<super::track::TrackInfo> {
        self.stream.track_info(track)
    }

    /// Frames queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Tells the stream's listeners that this player leaves out audio it
    /// cannot carry (a transformer may derive a codec it can).
    pub fn want_codec(&self) {
        self.stream.event(StreamEventKind::CodecWanted);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared
            .close(SubscribeEnd::new(EndReason::Closed, "unsubscribed"), false);
        self.stream.subscriber_left(self.shared.id);
    }
}
