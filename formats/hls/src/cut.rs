//! Where parts and segments end, decided on the driving track's frames
//! (video if the stream has any, else its first audio track).

use crate::MAX_SEGMENT_US;

/// What to do before a driving frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    None,
    /// End the part (LL-HLS).
    Part,
    /// End the part and the segment; the frame starts the next.
    Segment,
}

#[derive(Debug)]
pub(crate) struct Cutter {
    part_target: i64,
    segment_target: i64,
    segment_start: Option<i64>,
    part_start: i64,
    last_dts: Option<i64>,
    /// The driving track's latest frame interval: a part ends before the
    /// frame that would carry it past the target.
    interval: i64,
}

impl Cutter {
    /// `part_target` 0: no parts.
    pub(crate) fn new(part_target: i64, segment_target: i64) -> Cutter {
        Cutter {
            part_target,
            segment_target,
            segment_start: None,
            part_start: 0,
            last_dts: None,
            interval: 0,
        }
    }

    /// Starts over (a new muxer after a configuration change).
    pub(crate) fn reset(&mut self) {
        self.segment_start = None;
        self.last_dts = None;
    }

    /// Where the part being filled started.
    pub(crate) fn part_start(&self) -> i64 {
        self.part_start
    }

    /// Decides before driving frame `dts` (a key frame: `key`).
    pub(crate) fn before(&mut self, dts: i64, key: bool) -> Cut {
        if let Some(last) = self.last_dts {
            if dts > last {
                self.interval = dts - last;
            }
        }
        self.last_dts = Some(dts);
        let Some(start) = self.segment_start else {
            self.segment_start = Some(dts);
            self.part_start = dts;
            return Cut::None;
        };
        let in_segment = dts - start;
        // Half a frame of slack: a GOP of exactly the target whose
        // timestamps were rounded (ms in RTMP) still ends the segment.
        if (key && in_segment + self.interval / 2 >= self.segment_target)
            || in_segment >= MAX_SEGMENT_US
        {
            self.segment_start = Some(dts);
            self.part_start = dts;
            return Cut::Segment;
        }
        if self.part_target > 0 && dts - self.part_start + self.interval > self.part_target {
            self.part_start = dts;
            return Cut::Part;
        }
        Cut::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_the_target_and_segments_start_on_keys() {
        let mut c = Cutter::new(200_000, 2_000_000);
        let mut cuts = Vec::new();
        // 25 fps, a key frame every second.
        for i in 0..100i64 {
            let dts = i * 40_000;
            let cut = c.before(dts, i % 25 == 0);
            if cut != Cut::None {
                cuts.push((dts, cut));
            }
        }
        let parts: Vec<_> = cuts
            .iter()
            .filter(|c| c.1 == Cut::Part)
            .map(|c| c.0)
            .collect();
        let segs: Vec<_> = cuts
            .iter()
            .filter(|c| c.1 == Cut::Segment)
            .map(|c| c.0)
            .collect();
        assert_eq!(segs, vec![2_000_000]);
        assert_eq!(parts[..3], [200_000, 400_000, 600_000]);
        assert!(!parts.contains(&2_000_000));
    }

    #[test]
    fn a_gop_of_the_target_with_rounded_times_ends_the_segment() {
        let mut c = Cutter::new(0, 2_000_000);
        // 30 fps in whole milliseconds: the key frame 60 frames on is at
        // 1 999 ms.
        let mut cut_at = None;
        for i in 0..=60i64 {
            let dts = i * 100_000 / 3 / 1000 * 1000;
            if c.before(dts, i % 60 == 0) == Cut::Segment {
                cut_at = Some(i);
            }
        }
        assert_eq!(cut_at, Some(60));
    }

    #[test]
    fn no_key_frames_still_cut_at_the_cap() {
        let mut c = Cutter::new(0, 2_000_000);
        c.before(0, true);
        assert_eq!(c.before(MAX_SEGMENT_US - 1, false), Cut::None);
        assert_eq!(c.before(MAX_SEGMENT_US, false), Cut::Segment);
    }
}
