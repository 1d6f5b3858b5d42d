//! The sample clock: output pts from counting samples.
//!
//! A bridge's output frames do not line up with its input frames (1024 AAC
//! samples at 44.1 kHz in, 960 Opus samples at 48 kHz out), so their pts are
//! computed, not copied. A *segment* starts at the pts of an input frame;
//! from then on input is trusted to be contiguous, and output frame `k` of
//! the segment gets
//!
//! ```text
//! pts = segment_start + (k * frame_len - delay) / 48 kHz
//! ```
//!
//! where `delay` is everything the pipeline adds between an input sample
//! and the same sample in the *decoded* output, in 48 kHz samples: the
//! resampler's filter delay, the encoder's lookahead/priming (libopus's
//! `OPUS_GET_LOOKAHEAD`, FDK's `nDelay`) and FDK's decoder output delay
//! (SBR). Subtracting it makes a player that decodes the output and plays
//! sample `i` of frame `k` at `pts + i / rate` hear each sound at the same
//! time as the input put it, so audio stays in sync with the untouched
//! video. The price: the first frames of a segment have pts *before* the
//! segment's first input pts (by the delay, about 7-60 ms); they carry the
//! encoder's priming.
//!
//! Each input frame's pts is checked against what the sample count
//! predicts. Within [`MAX_DRIFT_US`] the input pts is ignored (RTMP rounds
//! to milliseconds; sources jitter), except that a forward gap of more than
//! half the frame is filled with silence so later audio keeps its place (a
//! lost frame). Beyond it, forward or back, the clock asks for a resync:
//! the caller drops what it buffered and starts a new segment at the new
//! pts, whose first frame is flagged as a discontinuity. Within a segment
//! pts strictly increase (frames are at least 20 ms apart); a new segment
//! after a forward jump starts later than the last frame; only a step back
//! in the input moves output pts back, and that frame is flagged.

/// How far an input pts may stray from the sample count before the clock
/// resyncs.
pub const MAX_DRIFT_US: i64 = 100_000;

/// What to do with the next input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start (the first frame) or restart (a jump, a rate change) a segment
    /// at this frame's pts: drop what is buffered, reset codec state, then
    /// call [`SampleClock::start`].
    Resync,
    /// Contiguous: feed the frame.
    Continue,
    /// Feed this many input-rate samples (per channel) of silence, then
    /// the frame: a small gap, typically a lost frame.
    Gap(u64),
}

#[derive(Debug, Clone)]
struct Segment {
    start_us: i64,
    in_rate: u32,
    in_samples: u64,
    out_frames: u64,
    delay: i64,
    first: bool,
}

/// Counts input and output samples of the current segment; see the module
/// documentation.
#[derive(Debug, Clone)]
pub struct SampleClock {
    out_rate: u32,
    frame_len: u32,
    seg: Option<Segment>,
    last_pts: Option<i64>,
}

fn samples_to_us(samples: i128, rate: u32) -> i128 {
    (samples * 1_000_000).div_euclid(rate as i128)
}

impl SampleClock {
    /// A clock for output frames of `frame_len` samples at `out_rate`.
    pub fn new(out_rate: u32, frame_len: u32) -> Self {
        SampleClock {
            out_rate,
            frame_len,
            seg: None,
            last_pts: None,
        }
    }

    /// Checks an input frame of `samples` (per channel) at `rate` with
    /// `pts_us` against the count, and counts it unless the answer is
    /// [`Step::Resync`] (then [`start`](Self::start) counts nothing yet; feed
    /// the frame after it and call [`counted`](Self::counted)).
    pub fn input(&mut self, pts_us: i64, rate: u32, samples: u64) -> Step {
        let Some(seg) = self.seg.as_mut() else {
            return Step::Resync;
        };
        if seg.in_rate != rate {
            return Step::Resync;
        }
        let expected = seg.start_us as i128 + samples_to_us(seg.in_samples as i128, seg.in_rate);
        let diff = pts_us as i128 - expected;
        if diff.abs() > MAX_DRIFT_US as i128 {
            return Step::Resync;
        }
        let gap = (diff * rate as i128 / 1_000_000).max(0) as u64;
        let step = if gap > samples / 2 && gap > 0 {
            seg.in_samples += gap;
            Step::Gap(gap)
        } else {
            Step::Continue
        };
        seg.in_samples += samples;
        step
    }

    /// Starts a segment at `pts_us` with input at `rate` and a pipeline
    /// delay of `delay` output-rate samples.
    pub fn start(&mut self, pts_us: i64, rate: u32, delay: u32) {
        self.seg = Some(Segment {
            start_us: pts_us,
            in_rate: rate,
            in_samples: 0,
            out_frames: 0,
            delay: delay as i64,
            first: self.last_pts.is_some(),
        });
    }

    /// Counts `samples` input samples fed after [`start`](Self::start).
    pub fn counted(&mut self, samples: u64) {
        if let Some(seg) = self.seg.as_mut() {
            seg.in_samples += samples;
        }
    }

    /// The pts and discontinuity flag of the next output frame, or `None`
    /// when it would not be after the previous one (it cannot happen within
    /// a segment; a guard, the caller drops the frame).
    pub fn output(&mut self) -> Option<(i64, bool)> {
        let seg = self.seg.as_mut()?;
        let at = seg.out_frames as i128 * self.frame_len as i128 - seg.delay as i128;
        seg.out_frames += 1;
        let pts = (seg.start_us as i128 + samples_to_us(at, self.out_rate))
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let discontinuity = std::mem::take(&mut seg.first);
        if let Some(last) = self.last_pts {
            if pts <= last && !discontinuity {
                return None;
            }
        }
        self.last_pts = Some(pts);
        Some((pts, discontinuity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_samples_not_pts() {
        let mut c = SampleClock::new(48_000, 960);
        assert_eq!(c.input(1_000_000, 44_100, 1024), Step::Resync);
        c.start(1_000_000, 44_100, 0);
        c.counted(1024);
        // RTMP-style millisecond rounding is absorbed.
        assert_eq!(c.input(1_023_000, 44_100, 1024), Step::Continue);
        let pts: Vec<_> = (0..3).map(|_| c.output().unwrap()).collect();
        assert_eq!(
            pts,
            [(1_000_000, false), (1_020_000, false), (1_040_000, false)]
        );
    }

    #[test]
    fn delay_is_subtracted() {
        let mut c = SampleClock::new(48_000, 1024);
        c.start(0, 48_000, 2048);
        assert_eq!(c.output(), Some((-42_667, false)));
        assert_eq!(c.output(), Some((-21_334, false)));
        assert_eq!(c.output(), Some((0, false)));
    }

    #[test]
    fn small_gap_is_filled_big_jump_resyncs() {
        let mut c = SampleClock::new(48_000, 960);
        c.start(0, 48_000, 0);
        c.counted(960);
        // One lost 20 ms frame: fill it.
        assert_eq!(c.input(40_000, 48_000, 960), Step::Gap(960));
        // Back on track.
        assert_eq!(c.input(60_000, 48_000, 960), Step::Continue);
        // A jump of a second, and a step back: resync.
        assert_eq!(c.input(1_080_000, 48_000, 960), Step::Resync);
        assert_eq!(c.input(-200_000, 48_000, 960), Step::Resync);
        // A rate change: resync.
        assert_eq!(c.input(80_000, 44_100, 960), Step::Resync);
    }

    #[test]
    fn output_never_goes_back_within_a_segment() {
        let mut c = SampleClock::new(48_000, 960);
        c.start(0, 48_000, 0);
        assert_eq!(c.output(), Some((0, false)));
        c.start(500_000, 48_000, 0);
        assert_eq!(c.output(), Some((500_000, true)));
        assert_eq!(c.output(), Some((520_000, false)));
        // A step back is allowed once, flagged.
        c.start(100_000, 48_000, 0);
        assert_eq!(c.output(), Some((100_000, true)));
    }
}
