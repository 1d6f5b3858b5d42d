//! Per-track timestamp correction at ingest.
//!
//! Publishers send what they send: timestamps that start anywhere, step
//! backwards, jump after an encoder hiccup, or restart at zero when the
//! publisher reconnects. Players must see one monotonic timeline per track. The
//! corrector maps input dts to output dts with an offset shared by the tracks
//! of a stream (so audio and video keep their relative timing), and per track:
//! - output dts of media frames strictly increase;
//! - a step backwards or a jump larger than `max_jump` is a discontinuity: the
//!   shared offset is rebased so the frame lands one frame-duration after the
//!   track's previous frame;
//! - after a publisher reconnects, the first frame rebases the offset so the new
//!   timeline continues where the old one stopped.
//!
//! pts keeps its distance from dts (the composition offset), clamped to
//! `0..=MAX_CTS`.

/// Largest composition offset (pts - dts) kept, in µs.
pub const MAX_CTS: i64 = 10_000_000;

/// Guess for a frame's duration before two frames were seen, in µs.
const DEFAULT_DURATION: i64 = 20_000;

#[derive(Debug, Clone, Copy, Default)]
struct TrackClock {
    /// Last output dts, None before the track's first frame on this timeline.
    last_out: Option<i64>,
    /// Last input dts.
    last_in: i64,
    /// Estimated frame duration (last sane delta).
    duration: i64,
}

/// The result of correcting one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrected {
    pub pts: i64,
    pub dts: i64,
    /// The input jumped or stepped back, or the publisher reconnected.
    pub discontinuity: bool,
}

/// The timestamp corrector of one stream, with a clock per track.
#[derive(Debug)]
pub struct TimestampCorrector {
    max_jump: i64,
    /// Output = input + offset, None until the first frame of a timeline.
    offset: Option<i64>,
    /// Where the next timeline starts (after a reconnect).
    resume_at: i64,
    rebased: bool,
    tracks: Vec<TrackClock>,
}

impl TimestampCorrector {
    pub fn new(max_jump_us: i64) -> Self {
        TimestampCorrector {
            max_jump: max_jump_us.max(1),
            offset: None,
            resume_at: 0,
            rebased: false,
            tracks: Vec::new(),
        }
    }

    /// A new publisher takes over: its timestamps start anywhere, and the next
    /// frame continues the timeline one frame after the newest output so far.
    pub fn rebase(&mut self) {
        let end = self
            .tracks
            .iter()
            .filter_map(|t| t.last_out.map(|o| o + t.duration.max(1)))
            .max();
        if let Some(end) = end {
            self.resume_at = end;
            self.rebased = true;
        }
        self.offset = None;
        for t in &mut self.tracks {
            t.last_in = 0;
        }
    }

    /// Corrects one frame of `track`. `is_media` is false for config and
    /// metadata frames, which take a timestamp but need not advance it.
    pub fn correct(&mut self, track: usize, pts: i64, dts: i64, is_media: bool) -> Corrected {
        if self.tracks.len() <= track {
            self.tracks.resize(track + 1, TrackClock::default());
        }
        let cts = (pts.saturating_sub(dts)).clamp(0, MAX_CTS);
        let mut discontinuity = false;
        let offset = match self.offset {
            Some(o) => o,
            None => {
                // First frame of a timeline: it starts at resume_at.
                let o = self.resume_at.saturating_sub(dts);
                self.offset = Some(o);
                discontinuity = std::mem::take(&mut self.rebased);
                o
            }
        };
        let clock = self.tracks[track];
        let mut out = dts.saturating_add(offset);
        if !is_media {
            // Config and metadata apply "now": they never move the clocks, so
            // a sequence header resent with timestamp 0 cannot rebase a stream.
            if let Some(last) = clock.last_out {
                out = last;
            }
            return Corrected {
                pts: out + cts,
                dts: out,
                discontinuity,
            };
        }
        if let Some(last) = clock.last_out {
            let delta = out - last;
            let duration = if clock.duration > 0 {
                clock.duration
            } else {
                DEFAULT_DURATION
            };
            if delta < 0 || delta > self.max_jump {
                // Rebase the shared offset so this track continues smoothly;
                // the other tracks follow the same input clock.
                out = last + duration;
                self.offset = Some(out - dts);
                discontinuity = true;
            } else if delta == 0 {
                // Same dts twice: keep strict order with the smallest step.
                out = last + 1;
            } else {
                self.tracks[track].duration = delta;
            }
        }
        let t = &mut self.tracks[track];
        t.last_out = Some(out);
        t.last_in = dts;
        Corrected {
            pts: out + cts,
            dts: out,
            discontinuity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1000;

    #[test]
    fn starts_at_zero_and_keeps_spacing() {
        let mut c = TimestampCorrector::new(1000 * MS);
        let a = c.correct(0, 5_000 * MS, 5_000 * MS, true);
        let b = c.correct(0, 5_033 * MS, 5_033 * MS, true);
        assert_eq!((a.dts, b.dts), (0, 33 * MS));
        assert!(!a.discontinuity && !b.discontinuity);
    }

    #[test]
    fn keeps_composition_offset() {
        let mut c = TimestampCorrector::new(1000 * MS);
        let a = c.correct(0, 1_080 * MS, 1_000 * MS, true);
        assert_eq!(a.pts - a.dts, 80 * MS);
        let b = c.correct(0, 900 * MS, 1_040 * MS, true); // negative cts clamped
        assert_eq!(b.pts, b.dts);
    }

    #[test]
    fn audio_and_video_keep_relative_timing() {
        let mut c = TimestampCorrector::new(1000 * MS);
        let v = c.correct(0, 100 * MS, 100 * MS, true);
        let a = c.correct(1, 123 * MS, 123 * MS, true);
        assert_eq!(a.dts - v.dts, 23 * MS);
    }

    #[test]
    fn backwards_and_jumps_are_smoothed() {
        let mut c = TimestampCorrector::new(1000 * MS);
        c.correct(0, 0, 0, true);
        c.correct(0, 40 * MS, 40 * MS, true);
        let back = c.correct(0, 10 * MS, 10 * MS, true);
        assert_eq!(back.dts, 80 * MS);
        assert!(back.discontinuity);
        let next = c.correct(0, 50 * MS, 50 * MS, true);
        assert_eq!(next.dts, 120 * MS, "continues on the rebased offset");
        let jump = c.correct(0, 3_600_000 * MS, 3_600_000 * MS, true);
        assert_eq!(jump.dts, 160 * MS);
        assert!(jump.discontinuity);
    }

    #[test]
    fn reconnect_continues_the_timeline() {
        let mut c = TimestampCorrector::new(1000 * MS);
        for i in 0..10 {
            c.correct(0, i * 40 * MS, i * 40 * MS, true);
            c.correct(1, i * 20 * MS + 5 * MS, i * 20 * MS + 5 * MS, true);
        }
        c.rebase();
        // The new publisher starts at 0 again.
        let v = c.correct(0, 0, 0, true);
        assert!(v.discontinuity);
        assert_eq!(v.dts, 9 * 40 * MS + 40 * MS);
        let a = c.correct(1, 10 * MS, 10 * MS, true);
        assert_eq!(a.dts, v.dts + 10 * MS);
    }

    proptest! {
        /// Whatever the input (jitter, steps back, huge jumps, reconnects), each
        /// track's media dts strictly increase, pts ≥ dts, and sane input
        /// deltas pass through unchanged.
        #[test]
        fn monotonic_under_any_input(
            max_jump_ms in 1i64..5000,
            ops in prop::collection::vec((0usize..3, -5_000i64..5_000, 0i64..200, any::<bool>(), 0u8..40), 1..400)
        ) {
            let mut c = TimestampCorrector::new(max_jump_ms * MS);
            let mut input = [0i64; 3];
            let mut last: [Option<i64>; 3] = [None; 3];
            for (track, step_ms, cts_ms, media, event) in ops {
                if event == 0 {
                    c.rebase();
                    input = [0; 3];
                }
                let step = if event == 1 { step_ms * 1_000_000 } else { step_ms };
                input[track] = input[track].saturating_add(step * MS);
                let dts = input[track];
                let out = c.correct(track, dts + cts_ms * MS, dts, media);
                prop_assert!(out.pts >= out.dts);
                if media {
                    if let Some(l) = last[track] {
                        prop_assert!(out.dts > l, "track {} went from {} to {}", track, l, out.dts);
                        if !out.discontinuity && step > 0 && step * MS <= max_jump_ms * MS {
                            // Pass-through when nothing odd happened on this
                            // track's own clock.
                            prop_assert!(out.dts - l <= max_jump_ms * MS);
                        }
                    }
                    last[track] = Some(out.dts);
                }
            }
        }
    }
}
