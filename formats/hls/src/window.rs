//! The sliding window of segments both HLS flavours keep, and what a
//! blocking playlist request asks of it.

use std::collections::VecDeque;

/// One part of a segment (LL-HLS), or a whole TS segment.
#[derive(Debug, Clone)]
pub struct Part<P> {
    /// µs.
    pub duration_us: i64,
    /// Starts with a key frame of the driving track.
    pub independent: bool,
    /// Bytes, for the bandwidth figure.
    pub len: usize,
    /// The muxed bytes, as the caller keeps them.
    pub data: P,
}

/// A media segment: its parts so far, and whether it is complete.
#[derive(Debug, Clone)]
pub struct Segment<P> {
    /// Media sequence number.
    pub msn: u64,
    /// Its parts (one for a TS segment).
    pub parts: Vec<Part<P>>,
    /// No more parts come.
    pub complete: bool,
    /// Starts after a discontinuity.
    pub discontinuity: bool,
    /// The init segment it needs (fMP4).
    pub init: u32,
    /// Wall-clock time of its first frame (Unix µs), for
    /// `EXT-X-PROGRAM-DATE-TIME`: its dts on the stream's clock (see
    /// [`Window::observe`]).
    pub wall_us: Option<i64>,
    /// Its first frame's dts.
    pub start_dts: i64,
    /// Which run of the stream's clock it belongs to (a new one after a
    /// discontinuity).
    epoch: u32,
}

impl<P> Segment<P> {
    /// Sum of its parts, µs.
    pub fn duration_us(&self) -> i64 {
        self.parts.iter().map(|p| p.duration_us).sum()
    }

    /// Sum of its parts' sizes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// No parts yet.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// Whether a blocking playlist request can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The playlist holds what was asked (or it is gone already).
    Ready,
    /// Not yet: hold the request.
    Wait,
    /// Too far ahead (more than two segments past the last one): 400.
    TooFar,
}

/// Complete segments (at most `keep`) and the open one.
#[derive(Debug)]
pub struct Window<P> {
    segs: VecDeque<Segment<P>>,
    keep: usize,
    next_msn: u64,
    /// Discontinuity tags that slid out (`EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_seq: u64,
    /// Longest complete segment seen, whole seconds rounded up (the
    /// `EXT-X-TARGETDURATION`, which never shrinks).
    target_s: u64,
    /// An empty segment that was dropped started a discontinuity: the
    /// next one does.
    carry_discontinuity: bool,
    /// Wall clock minus dts, the least seen in this epoch: frames arrive
    /// late, never early, so the least is the live edge's (a burst of
    /// cached frames at the start looks older than it is and is corrected
    /// as live frames come).
    offset: Option<i64>,
    epoch: u32,
    last_dts: i64,
}

impl<P> Window<P> {
    /// A window of `keep` complete segments; `target_us` is the configured
    /// segment target (the least `EXT-X-TARGETDURATION`).
    /// The first segment gets `first_msn`.
    pub fn new(keep: usize, target_us: i64, first_msn: u64) -> Window<P> {
        Window {
            segs: VecDeque::new(),
            keep: keep.max(1),
            next_msn: first_msn,
            discontinuity_seq: 0,
            target_s: round_s(target_us),
            carry_discontinuity: false,
            offset: None,
            epoch: 0,
            last_dts: 0,
        }
    }

    /// Takes a frame's arrival: `wall_us` now, its `dts`. Dates the
    /// segments (`EXT-X-PROGRAM-DATE-TIME`) of this epoch.
    pub fn observe(&mut self, wall_us: i64, dts: i64) {
        self.last_dts = dts;
        let o = wall_us.saturating_sub(dts);
        if self.offset.is_some_and(|x| x <= o) {
            return;
        }
        self.offset = Some(o);
        let epoch = self.epoch;
        for s in self.segs.iter_mut().filter(|s| s.epoch == epoch) {
            s.wall_us = Some(s.start_dts.saturating_add(o));
        }
    }

    /// Opens a segment starting at `start_dts` (closing the open one
    /// first, if any). A discontinuity starts a new epoch of the clock.
    pub fn open(&mut self, discontinuity: bool, init: u32, start_dts: i64) {
        self.close();
        let discontinuity = discontinuity || std::mem::take(&mut self.carry_discontinuity);
        if discontinuity {
            self.epoch += 1;
            self.offset = None;
        }
        self.segs.push_back(Segment {
            msn: self.next_msn,
            parts: Vec::new(),
            complete: false,
            discontinuity,
            init,
            wall_us: self.offset.map(|o| start_dts.saturating_add(o)),
            start_dts,
            epoch: self.epoch,
        });
        self.next_msn += 1;
    }

    /// Adds a part to the open segment (opens one when there is none).
    pub fn push(&mut self, part: Part<P>, init: u32) {
        if self.open_segment().is_none() {
            self.open(false, init, self.last_dts);
        }
        if let Some(s) = self.segs.back_mut() {
            s.parts.push(part);
        }
    }

    /// Completes the open segment (an empty one is dropped) and slides
    /// the window.
    pub fn close(&mut self) {
        let Some(last) = self.segs.back_mut().filter(|s| !s.complete) else {
            return;
        };
        if last.parts.is_empty() {
            // Nothing to list: forget it, keeping its discontinuity for
            // the next segment.
            let disc = last.discontinuity;
            self.segs.pop_back();
            self.next_msn -= 1;
            self.carry_discontinuity = self.carry_discontinuity || disc;
            return;
        }
        last.complete = true;
        self.target_s = self.target_s.max(round_s(last.duration_us()));
        while self.segs.iter().filter(|s| s.complete).count() > self.keep {
            if let Some(gone) = self.segs.pop_front() {
                if gone.discontinuity {
                    self.discontinuity_seq += 1;
                }
            }
        }
    }

    /// The segment being filled.
    pub fn open_segment(&self) -> Option<&Segment<P>> {
        self.segs.back().filter(|s| !s.complete)
    }

    /// Every segment, oldest first (the open one last).
    pub fn segments(&self) -> impl Iterator<Item = &Segment<P>> {
        self.segs.iter()
    }

    /// Segment `msn`, if held.
    pub fn segment(&self, msn: u64) -> Option<&Segment<P>> {
        let first = self.segs.front()?.msn;
        self.segs.get(msn.checked_sub(first)? as usize)
    }

    /// Part `index` of segment `msn`, if held.
    pub fn part(&self, msn: u64, index: usize) -> Option<&Part<P>> {
        self.segment(msn)?.parts.get(index)
    }

    /// Complete segments held.
    pub fn complete_count(&self) -> usize {
        self.segs.iter().filter(|s| s.complete).count()
    }

    /// The media sequence number of the first segment listed.
    pub fn first_msn(&self) -> u64 {
        self.segs.front().map_or(self.next_msn, |s| s.msn)
    }

    /// The msn the next part goes to, and its index there: the preload
    /// hint.
    pub fn next_part(&self) -> (u64, usize) {
        match self.open_segment() {
            Some(s) => (s.msn, s.parts.len()),
            None => (self.next_msn, 0),
        }
    }

    /// `EXT-X-TARGETDURATION`, seconds.
    pub fn target_s(&self) -> u64 {
        self.target_s
    }

    /// The highest bitrate of a complete segment, bits/s.
    pub fn peak_bps(&self) -> u64 {
        self.segs
            .iter()
            .filter(|s| s.complete && s.duration_us() > 0)
            .map(|s| s.len() as u64 * 8_000_000 / s.duration_us() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Whether the playlist holds segment `msn` (complete, or, with
    /// `part`, that part of it), as a blocking reload asks. A request
    /// for something already gone is ready (the player gets the current
    /// playlist); one more than two segments past the last is too far.
    pub fn readiness(&self, msn: u64, part: Option<usize>) -> Readiness {
        let (next_msn, next_part) = self.next_part();
        if msn > next_msn + 1 {
            return Readiness::TooFar;
        }
        match (self.segment(msn), part) {
            _ if msn < self.first_msn() => Readiness::Ready,
            (Some(s), _) if s.complete => Readiness::Ready,
            (Some(_), Some(p)) if msn < next_msn || p < next_part => Readiness::Ready,
            _ => Readiness::Wait,
        }
    }
}

/// Whole seconds, rounded to the nearest: the spec compares each EXTINF
/// rounded to the nearest integer with the target duration.
fn round_s(us: i64) -> u64 {
    ((us.max(0) as u64 + 500_000) / 1_000_000).max(1)
}
