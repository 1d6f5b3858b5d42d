//! A stream's lifecycle as a state machine without I/O: inputs with the time
//! they happened, actions out, and the next deadline. The stream's task feeds
//! it and carries the actions out; tests drive it with plain instants.

use std::time::Duration;

use tokio::time::Instant;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Subscribers wait for a publisher (the wait queue).
    WaitingPublisher,
    /// A publisher is attached.
    Publishing,
    /// The publisher left; it may come back within the reconnect grace.
    WaitingReconnect,
    /// The stream is gone.
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::WaitingPublisher => "waiting_publisher",
            Phase::Publishing => "publishing",
            Phase::WaitingReconnect => "waiting_reconnect",
            Phase::Closed => "closed",
        }
    }
}

/// The timeouts of `publish.*` and `subscribe.wait_timeout`; zero disables one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub publish: Duration,
    pub idle: Duration,
    pub delay_close: Duration,
    pub reconnect_grace: Duration,
    pub wait: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// These waiting subscribers gave up: nobody published in time.
    FailWaiters(Vec<u64>),
    /// Detach the publisher (it sent nothing for too long); the stream then
    /// waits for a reconnect.
    DropPublisher(String),
    /// Close the stream, its publisher and its subscribers.
    CloseStream(CloseWhy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseWhy {
    /// Nobody ever subscribed within `publish.idle_timeout`.
    Idle,
    /// No subscriber came back within `publish.delay_close_timeout`.
    NoSubscribers,
    /// The publisher did not return within `publish.reconnect_grace`.
    PublisherGone,
    /// Nobody publishes and nobody waits any more.
    Abandoned,
}

#[derive(Debug)]
pub struct Lifecycle {
    t: Timeouts,
    phase: Phase,
    /// When the current phase began.
    since: Instant,
    /// Subscribers waiting for a publisher, with their deadlines.
    waiting: Vec<(u64, Instant)>,
    subscribers: usize,
    ever_subscribed: bool,
    /// When the subscriber count last dropped to zero.
    empty_since: Option<Instant>,
    /// Newest data from the publisher known here (refreshed at timeouts).
    last_data: Instant,
}

impl Lifecycle {
    /// A stream created by a subscriber waits for a publisher; one created by a
    /// publisher starts publishing (call `publisher_attached`).
    pub fn new(t: Timeouts, now: Instant) -> Self {
        Lifecycle {
            t,
            phase: Phase::WaitingPublisher,
            since: now,
            waiting: Vec::new(),
            subscribers: 0,
            ever_subscribed: false,
            empty_since: Some(now),
            last_data: now,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.t = t;
    }

    pub fn publisher_attached(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Publishing;
        self.since = now;
        self.last_data = now;
        self.waiting.clear();
    }

    pub fn publisher_detached(&mut self, now: Instant) -> Vec<Action> {
        if self.phase != Phase::Publishing {
            return Vec::new();
        }
        if self.t.reconnect_grace.is_zero() {
            return self.close(CloseWhy::PublisherGone);
        }
        self.phase = Phase::WaitingReconnect;
        self.since = now;
        Vec::new()
    }

    pub fn subscriber_joined(&mut self, id: u64, now: Instant) {
        self.subscriber_joined_waiting(id, now, self.t.wait);
    }

    /// A subscriber joined that waits `wait` for a publisher (if none yet).
    pub fn subscriber_joined_waiting(&mut self, id: u64, now: Instant, wait: Duration) {
        if self.phase == Phase::Closed {
            return;
        }
        self.subscribers += 1;
        self.ever_subscribed = true;
        self.empty_since = None;
        if self.phase == Phase::WaitingPublisher {
            self.waiting.push((id, now + wait));
        }
    }

    pub fn subscriber_left(&mut self, id: u64, now: Instant) -> Vec<Action> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        self.waiting.retain(|(w, _)| *w != id);
        self.subscribers = self.subscribers.saturating_sub(1);
        if self.subscribers == 0 {
            self.empty_since = Some(now);
            if self.phase == Phase::WaitingPublisher {
                return self.close(CloseWhy::Abandoned);
            }
        }
        Vec::new()
    }

    /// The earliest instant at which `on_timeout` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let nz = |d: Duration| (!d.is_zero()).then_some(d);
        let mut next: Option<Instant> = None;
        let mut consider = |i: Instant| next = Some(next.map_or(i, |n: Instant| n.min(i)));
        match self.phase {
            Phase::WaitingPublisher => {
                if let Some(&(_, d)) = self.waiting.iter().min_by_key(|(_, d)| *d) {
                    consider(d);
                }
            }
            Phase::Publishing => {
                if let Some(p) = nz(self.t.publish) {
                    consider(self.last_data + p);
                }
                if let Some(i) = nz(self.t.idle) {
                    if !self.ever_subscribed {
                        consider(self.since + i);
                    }
                }
                if let (Some(d), Some(e)) = (nz(self.t.delay_close), self.empty_since) {
                    if self.ever_subscribed {
                        consider(e + d);
                    }
                }
            }
            Phase::WaitingReconnect => consider(self.since + self.t.reconnect_grace),
            Phase::Closed => {}
        }
        next
    }

    /// Time passed. `last_data` is when the publisher last sent a frame.
    pub fn on_timeout(&mut self, now: Instant, last_data: Option<Instant>) -> Vec<Action> {
        if let Some(d) = last_data {
            self.last_data = self.last_data.max(d);
        }
        match self.phase {
            Phase::WaitingPublisher => {
                let (expired, kept): (Vec<_>, Vec<_>) =
                    self.waiting.drain(..).partition(|(_, d)| *d <= now);
                self.waiting = kept;
                if expired.is_empty() {
                    Vec::new()
                } else {
                    // The stream task reports each one left, which closes an
                    // abandoned stream.
                    vec![Action::FailWaiters(
                        expired.into_iter().map(|(id, _)| id).collect(),
                    )]
                }
            }
            Phase::Publishing => {
                let t = self.t;
                if !t.publish.is_zero() && now >= self.last_data + t.publish {
                    let msg = format!("no data for {:?}", t.publish);
                    let mut out = vec![Action::DropPublisher(msg)];
                    out.extend(self.publisher_detached(now));
                    return out;
                }
                if !t.idle.is_zero() && !self.ever_subscribed && now >= self.since + t.idle {
                    return self.close(CloseWhy::Idle);
                }
                if let Some(e) = self.empty_since {
                    if !t.delay_close.is_zero() && self.ever_subscribed && now >= e + t.delay_close
                    {
                        return self.close(CloseWhy::NoSubscribers);
                    }
                }
                Vec::new()
            }
            Phase::WaitingReconnect => {
                if now >= self.since + self.t.reconnect_grace {
                    self.close(CloseWhy::PublisherGone)
                } else {
                    Vec::new()
                }
            }
            Phase::Closed => Vec::new(),
        }
    }

    /// Marks the stream closed from outside (shutdown, kick).
    pub fn close_now(&mut self) {
        self.phase = Phase::Closed;
        self.waiting.clear();
    }

    fn close(&mut self, why: CloseWhy) -> Vec<Action> {
        self.phase = Phase::Closed;
        self.waiting.clear();
        vec![Action::CloseStream(why)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn t() -> Timeouts {
        Timeouts {
            publish: 10 * S,
            idle: Duration::ZERO,
            delay_close: Duration::ZERO,
            reconnect_grace: 5 * S,
            wait: 3 * S,
        }
    }

    #[test]
    fn waiter_times_out_then_stream_is_abandoned() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t(), t0);
        l.subscriber_joined(1, t0);
        l.subscriber_joined(2, t0 + S);
        assert_eq!(l.next_deadline(), Some(t0 + 3 * S));
        assert_eq!(
            l.on_timeout(t0 + 3 * S, None),
            vec![Action::FailWaiters(vec![1])]
        );
        assert_eq!(l.subscriber_left(1, t0 + 3 * S), vec![]);
        assert_eq!(
            l.on_timeout(t0 + 4 * S, None),
            vec![Action::FailWaiters(vec![2])]
        );
        assert_eq!(
            l.subscriber_left(2, t0 + 4 * S),
            vec![Action::CloseStream(CloseWhy::Abandoned)]
        );
    }

    #[test]
    fn publisher_arrival_cancels_wait_deadlines() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t(), t0);
        l.subscriber_joined(1, t0);
        l.publisher_attached(t0 + S);
        assert_eq!(l.phase(), Phase::Publishing);
        assert_eq!(
            l.next_deadline(),
            Some(t0 + 11 * S),
            "only the publish timeout"
        );
        assert_eq!(l.on_timeout(t0 + 5 * S, Some(t0 + 5 * S)), vec![]);
    }

    #[test]
    fn publish_timeout_drops_publisher_then_grace_closes() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t(), t0);
        l.publisher_attached(t0);
        // Data kept coming until t0+4s.
        assert_eq!(l.on_timeout(t0 + 10 * S, Some(t0 + 4 * S)), vec![]);
        assert_eq!(l.next_deadline(), Some(t0 + 14 * S));
        let a = l.on_timeout(t0 + 14 * S, Some(t0 + 4 * S));
        assert!(matches!(&a[..], [Action::DropPublisher(_)]));
        assert_eq!(l.phase(), Phase::WaitingReconnect);
        assert_eq!(
            l.on_timeout(t0 + 19 * S, None),
            vec![Action::CloseStream(CloseWhy::PublisherGone)]
        );
    }

    #[test]
    fn reconnect_within_grace_keeps_stream() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t(), t0);
        l.publisher_attached(t0);
        l.subscriber_joined(7, t0);
        assert_eq!(l.publisher_detached(t0 + S), vec![]);
        assert_eq!(l.on_timeout(t0 + 5 * S, None), vec![]);
        l.publisher_attached(t0 + 5 * S);
        assert_eq!(l.phase(), Phase::Publishing);
        assert_eq!(l.on_timeout(t0 + 7 * S, Some(t0 + 7 * S)), vec![]);
    }

    #[test]
    fn idle_timeout_only_without_any_subscriber() {
        let t0 = Instant::now();
        let mut tt = t();
        tt.idle = 30 * S;
        tt.publish = Duration::ZERO;
        let mut l = Lifecycle::new(tt, t0);
        l.publisher_attached(t0);
        assert_eq!(l.next_deadline(), Some(t0 + 30 * S));
        assert_eq!(
            l.on_timeout(t0 + 30 * S, None),
            vec![Action::CloseStream(CloseWhy::Idle)]
        );
        let mut l = Lifecycle::new(tt, t0);
        l.publisher_attached(t0);
        l.subscriber_joined(1, t0 + S);
        l.subscriber_left(1, t0 + 2 * S);
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn delay_close_after_last_subscriber_left() {
        let t0 = Instant::now();
        let mut tt = t();
        tt.delay_close = 20 * S;
        tt.publish = Duration::ZERO;
        let mut l = Lifecycle::new(tt, t0);
        l.publisher_attached(t0);
        l.subscriber_joined(1, t0);
        assert_eq!(l.next_deadline(), None);
        l.subscriber_left(1, t0 + 5 * S);
        assert_eq!(l.next_deadline(), Some(t0 + 25 * S));
        l.subscriber_joined(2, t0 + 10 * S);
        assert_eq!(l.next_deadline(), None, "a subscriber came back");
        l.subscriber_left(2, t0 + 12 * S);
        assert_eq!(
            l.on_timeout(t0 + 32 * S, None),
            vec![Action::CloseStream(CloseWhy::NoSubscribers)]
        );
    }

    #[test]
    fn zero_grace_closes_at_once() {
        let t0 = Instant::now();
        let mut tt = t();
        tt.reconnect_grace = Duration::ZERO;
        let mut l = Lifecycle::new(tt, t0);
        l.publisher_attached(t0);
        assert_eq!(
            l.publisher_detached(t0),
            vec![Action::CloseStream(CloseWhy::PublisherGone)]
        );
    }
}
