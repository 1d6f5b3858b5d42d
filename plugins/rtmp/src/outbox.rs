//! Outbound flow control of one connection, without the host: what waits to
//! be written, when writing must pause, and where a player that fell behind
//! may resume.
//!
//! The host's `conn_write` says `RILL_FULL` once its queue passes the
//! high-water mark; from then on nothing is written until it calls
//! `on_writable`. Frames that arrive meanwhile wait in the [`Outbox`], up to
//! a cap of media bytes; past it the waiting media is dropped and the
//! [`Gate`] of each player holds frames back until the next keyframe, so a
//! player loses whole GOPs, never half of one. The session's own messages,
//! decoder configurations and metadata are never dropped (they are small and
//! a player cannot do without them).

use std::collections::VecDeque;

use bytes::Bytes;
use rill_abi::{RILL_TRACK_AUDIO, RILL_TRACK_VIDEO};

/// One thing to write: bytes the session produced, or a shared frame of
/// `len` bytes (`media`: droppable when behind).
pub enum Out<F> {
    /// Protocol messages.
    Bytes(Bytes),
    /// A serialized frame.
    Frame {
        /// The frame.
        frame: F,
        /// Its length in bytes.
        len: usize,
        /// Media (not a config or metadata frame).
        media: bool,
    },
}

/// What a write reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Queued; go on.
    Ready,
    /// Queued; stop until writable.
    Full,
    /// Not queued (over the hard cap); retry when writable.
    Again,
    /// The connection is closing: nothing more will be written.
    Closed,
}

/// The FIFO of a connection's output.
pub struct Outbox<F> {
    queue: VecDeque<Out<F>>,
    media_bytes: usize,
    blocked: bool,
}

impl<F> Default for Outbox<F> {
    fn default() -> Self {
        Outbox {
            queue: VecDeque::new(),
            media_bytes: 0,
            blocked: false,
        }
    }
}

impl<F> Outbox<F> {
    /// Appends session bytes.
    pub fn push_bytes(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queue.push_back(Out::Bytes(b));
        }
    }

    /// Appends a frame.
    pub fn push_frame(&mut self, frame: F, len: usize, media: bool) {
        if media {
            self.media_bytes += len;
        }
        self.queue.push_back(Out::Frame { frame, len, media });
    }

    /// Whether writing waits for `on_writable`.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Media bytes waiting.
    pub fn media_bytes(&self) -> usize {
        self.media_bytes
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether `len` more media bytes would pass `cap` while blocked.
    pub fn over_cap(&self, len: usize, cap: usize) -> bool {
        self.blocked && self.media_bytes + len > cap
    }

    /// Drops the waiting media frames; returns how many.
    pub fn drop_media(&mut self) -> usize {
        let before = self.queue.len();
        self.queue
            .retain(|o| !matches!(o, Out::Frame { media: true, .. }));
        self.media_bytes = 0;
        before - self.queue.len()
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.media_bytes = 0;
    }

    /// The host can take more: writes resume.
    pub fn unblock(&mut self) {
        self.blocked = false;
    }

    fn pop(&mut self) -> Option<Out<F>> {
        let o = self.queue.pop_front()?;
        if let Out::Frame {
            len, media: true, ..
        } = &o
        {
            self.media_bytes -= len;
        }
        Some(o)
    }

    fn unpop(&mut self, o: Out<F>) {
        if let Out::Frame {
            len, media: true, ..
        } = &o
        {
            self.media_bytes += len;
        }
        self.queue.push_front(o);
    }

    /// Writes in order until the host's queue is full (`force`: until
    /// everything is written, for the last words before a close).
    pub fn flush(&mut self, force: bool, mut write: impl FnMut(&Out<F>) -> Written) {
        while force || !self.blocked {
            let Some(o) = self.pop() else { break };
            match write(&o) {
                Written::Ready => {}
                Written::Full => self.blocked = true,
                Written::Again if !force => {
                    self.unpop(o);
                    self.blocked = true;
                }
                Written::Again | Written::Closed => {
                    self.clear();
                    break;
                }
            }
        }
    }
}

/// Where a player may (re)start: after falling behind, only at a video
/// keyframe (or any audio frame when the stream has no video).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    has_video: bool,
    await_key: bool,
    /// Frames held back so far.
    pub skipped: u64,
}

impl Gate {
    /// Whether to send a frame of track `kind`; `key` for keyframes,
    /// `config` for decoder configurations and metadata (always sent).
    pub fn admit(&mut self, kind: u32, key: bool, config: bool) -> bool {
        if kind == RILL_TRACK_VIDEO {
            self.has_video = true;
        }
        if !self.await_key || config {
            return true;
        }
        let starts = if self.has_video {
            kind == RILL_TRACK_VIDEO && key
        } else {
            kind == RILL_TRACK_AUDIO
        };
        if starts {
            self.await_key = false;
        } else {
            self.skipped += 1;
        }
        starts
    }

    /// Media was dropped: wait for the next start.
    pub fn restart(&mut self, dropped: usize) {
        self.await_key = true;
        self.skipped += dropped as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(out: &Out<&'static str>) -> String {
        match out {
            Out::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Out::Frame { frame, .. } => frame.to_string(),
        }
    }

    #[test]
    fn writes_in_order_and_stops_when_full() {
        let mut o = Outbox::default();
        o.push_bytes(Bytes::from_static(b"ack"));
        o.push_frame("v1", 100, true);
        o.push_frame("cfg", 10, false);
        o.push_frame("v2", 100, true);
        assert_eq!(o.media_bytes(), 200);
        let mut log = Vec::new();
        o.flush(false, |x| {
            log.push(written(x));
            if log.len() == 2 {
                Written::Full
            } else {
                Written::Ready
            }
        });
        assert_eq!(log, ["ack", "v1"]);
        assert!(o.is_blocked());
        assert_eq!((o.len(), o.media_bytes()), (2, 100));
        // Nothing is written while blocked.
        o.flush(false, |_| panic!("wrote while blocked"));
        o.unblock();
        o.flush(false, |x| {
            log.push(written(x));
            Written::Ready
        });
        assert_eq!(log, ["ack", "v1", "cfg", "v2"]);
        assert!(o.is_empty() && !o.is_blocked());
    }

    #[test]
    fn refused_writes_are_retried_and_closed_ones_dropped() {
        let mut o = Outbox::default();
        o.push_frame("a", 5, true);
        o.push_frame("b", 5, true);
        let mut n = 0;
        o.flush(false, |_| {
            n += 1;
            Written::Again
        });
        assert_eq!((n, o.len(), o.media_bytes()), (1, 2, 10));
        assert!(o.is_blocked());
        o.unblock();
        o.flush(false, |_| Written::Closed);
        assert!(o.is_empty());
        assert_eq!(o.media_bytes(), 0);
    }

    #[test]
    fn the_cap_counts_media_only_and_drops_media_only() {
        let mut o = Outbox::default();
        o.push_frame("x", 1, true);
        o.flush(false, |_| Written::Full);
        assert!(!o.over_cap(1000, 1000));
        o.push_frame("cfg", 5000, false);
        o.push_bytes(Bytes::from_static(b"status"));
        o.push_frame("v", 600, true);
        assert!(!o.over_cap(400, 1000));
        assert!(o.over_cap(401, 1000));
        assert_eq!(o.drop_media(), 1);
        let mut log = Vec::new();
        o.unblock();
        o.flush(false, |x| {
            log.push(written(x));
            Written::Ready
        });
        assert_eq!(log, ["cfg", "status"]);
        // Not blocked: never over the cap.
        assert!(!o.over_cap(usize::MAX / 2, 0));
    }

    #[test]
    fn forced_flush_ignores_full() {
        let mut o = Outbox::default();
        for f in ["a", "b", "c"] {
            o.push_frame(f, 1, false);
        }
        let mut n = 0;
        o.flush(true, |_| {
            n += 1;
            Written::Full
        });
        assert_eq!(n, 3);
        assert!(o.is_empty());
    }

    #[test]
    fn a_restarted_player_waits_for_a_video_keyframe() {
        let mut g = Gate::default();
        assert!(g.admit(RILL_TRACK_VIDEO, true, false));
        assert!(g.admit(RILL_TRACK_AUDIO, true, false));
        g.restart(3);
        assert!(!g.admit(RILL_TRACK_AUDIO, true, false));
        assert!(!g.admit(RILL_TRACK_VIDEO, false, false));
        // Configs and metadata always pass.
        assert!(g.admit(RILL_TRACK_VIDEO, false, true));
        assert!(g.admit(rill_abi::RILL_TRACK_DATA, false, true));
        assert!(g.admit(RILL_TRACK_VIDEO, true, false));
        assert!(g.admit(RILL_TRACK_AUDIO, true, false));
        assert!(g.admit(RILL_TRACK_VIDEO, false, false));
        assert_eq!(g.skipped, 5);
    }

    #[test]
    fn audio_only_restarts_at_any_audio_frame() {
        let mut g = Gate::default();
        g.restart(0);
        assert!(g.admit(RILL_TRACK_AUDIO, true, false));
        assert_eq!(g.skipped, 0);
    }
}
