//! The relay's jobs: every pull and push, with its state, its backoff and
//! where it came from. Plain data behind the instance's lock; the sessions
//! that do the work report here.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_abi::sdk::ConnId;
use serde::Serialize;

use crate::source::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Pull = 0,
    Push = 1,
}

/// Why the job exists (and so when it ends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `plugins.relay.pulls`: for ever.
    Config,
    /// The management API: until deleted there (and kept across restarts).
    Api,
    /// An `on_demand` rule: until idle for `stop_on_idle`.
    OnDemand,
    /// The cluster's owner node: until idle.
    Cluster,
    /// A `pushes` rule: while the stream is published.
    Rule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Looking the owner up, connecting, or waiting for the far end.
    Connecting,
    /// Media flows.
    Live,
    /// Failed; the next attempt is due at `retry_at`.
    Retrying,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub kind: Kind,
    pub origin: Origin,
    /// The far end (None for a cluster pull until the owner is known).
    #[serde(serialize_with = "ser_url")]
    pub url: Option<Url>,
    /// The local stream.
    pub stream: String,
    pub state: State,
    /// The last failure.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub attempts: u64,
    /// Bytes received (pull) or sent (push) by the current attempt.
    pub bytes: u64,
    /// Wall-clock µs of the current state.
    pub since_us: i64,
    #[serde(skip)]
    pub retry_at_us: i64,
    #[serde(skip)]
    pub backoff: Duration,
    /// The session of the current attempt.
    #[serde(skip)]
    pub conn: Option<ConnId>,
    /// An attempt is in flight (a cluster lookup, a connection), even
    /// before its session is known.
    #[serde(skip)]
    pub busy: bool,
    /// No player since (on-demand and cluster pulls).
    #[serde(skip)]
    pub idle_since_us: Option<i64>,
    #[serde(skip)]
    pub stop_on_idle: Duration,
    /// Not live since (failing or never live); None while live.
    #[serde(skip)]
    pub down_since_us: Option<i64>,
    /// Ended: removed when its session is gone.
    #[serde(skip)]
    pub stopping: bool,
}

fn ser_url<S: serde::Serializer>(u: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(&u.to_string()),
        None => s.serialize_none(),
    }
}

/// Every job, by id.
#[derive(Default)]
pub struct Jobs {
    pub by_id: BTreeMap<u64, Job>,
    next: u64,
}

impl Jobs {
    pub fn add(
        &mut self,
        kind: Kind,
        origin: Origin,
        url: Option<Url>,
        stream: &str,
        now_us: i64,
    ) -> u64 {
        self.next += 1;
        let id = self.next;
        self.by_id.insert(
            id,
            Job {
                id,
                kind,
                origin,
                url,
                stream: stream.to_owned(),
                state: State::Connecting,
                reason: String::new(),
                attempts: 0,
                bytes: 0,
                since_us: now_us,
                retry_at_us: now_us,
                backoff: Duration::ZERO,
                conn: None,
                busy: false,
                idle_since_us: None,
                stop_on_idle: Duration::ZERO,
                down_since_us: Some(now_us),
                stopping: false,
            },
        );
        id
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.by_id.values().filter(|j| j.kind == kind).count()
    }

    /// The pull that feeds `stream`, if any.
    pub fn pull_of(&mut self, stream: &str) -> Option<&mut Job> {
        self.by_id
            .values_mut()
            .find(|j| j.kind == Kind::Pull && j.stream == stream && !j.stopping)
    }
}

impl Job {
    /// The attempt failed or ended: the next is due after the backoff,
    /// which doubles up to `max` (and starts over after a live spell).
    pub fn failed(&mut self, why: &str, now_us: i64, initial: Duration, max: Duration) {
        let was_live = self.state == State::Live;
        self.conn = None;
        self.busy = false;
        self.state = State::Retrying;
        self.reason = why.to_owned();
        self.backoff = if was_live || self.backoff.is_zero() {
            initial
        } else {
            (self.backoff * 2).min(max)
        };
        self.retry_at_us = now_us + self.backoff.as_micros() as i64;
        self.since_us = now_us;
        self.down_since_us.get_or_insert(now_us);
    }

    pub fn live(&mut self, now_us: i64) {
        self.down_since_us = None;
        if self.state != State::Live {
            self.state = State::Live;
            self.since_us = now_us;
        }
    }

    /// Whether an attempt should start now.
    pub fn due(&self, now_us: i64) -> bool {
        !self.stopping && !self.busy && now_us >= self.retry_at_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_resets_after_live() {
        let mut jobs = Jobs::default();
        let id = jobs.add(Kind::Pull, Origin::Config, None, "a/b", 0);
        let j = jobs.by_id.get_mut(&id).unwrap();
        assert!(j.due(0));
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(4));
        j.failed("x", 0, i, m);
        assert_eq!(j.retry_at_us, 1_000_000);
        assert!(!j.due(999_999));
        j.failed("x", 0, i, m);
        j.failed("x", 0, i, m);
        j.failed("x", 0, i, m);
        assert_eq!(j.backoff, m);
        j.live(5);
        j.failed("x", 10, i, m);
        assert_eq!(j.backoff, i);
        assert_eq!(j.state, State::Retrying);
        assert_eq!(j.reason, "x");
    }
}
