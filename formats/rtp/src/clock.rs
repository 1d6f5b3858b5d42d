//! RTP time: 32-bit timestamps in a track's clock (90 kHz video, the
//! sample rate for audio) ↔ the host's microseconds, unwrapped across the
//! 32-bit wrap; NTP times of sender reports ↔ Unix microseconds, and the
//! SR mapping that puts the tracks of one sender on one wall clock (A/V
//! sync).

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Ticks of a `rate` Hz clock in `us` microseconds (floored; negative
/// times floor too).
pub fn us_to_ticks(us: i64, rate: u32) -> i64 {
    ((us as i128 * rate as i128).div_euclid(1_000_000)) as i64
}

/// Microseconds of `ticks` of a `rate` Hz clock (floored). A rate of 0
/// gives 0.
pub fn ticks_to_us(ticks: i64, rate: u32) -> i64 {
    if rate == 0 {
        return 0;
    }
    (ticks as i128 * 1_000_000).div_euclid(rate as i128) as i64
}

/// The 32-bit RTP timestamp of `us` (host time) in a `rate` Hz clock,
/// plus `offset` (a sender's random start), wrapped.
pub fn rtp_timestamp(us: i64, rate: u32, offset: u32) -> u32 {
    (us_to_ticks(us, rate) as u32).wrapping_add(offset)
}

/// Extends 32-bit RTP timestamps to 64 bits: each is taken as the value
/// nearest to the previous one, so a stream runs on past the wrap (13.25
/// hours at 90 kHz), and reordered packets a little behind still come out
/// right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    /// The extended value of `ts`.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let v = match self.last {
            None => ts as i64,
            Some(last) => last + (ts.wrapping_sub(last as u32) as i32) as i64,
        };
        self.last = Some(v);
        v
    }

    /// The extended value of `ts` without moving the reference.
    pub fn peek(&self, ts: u32) -> i64 {
        match self.last {
            None => ts as i64,
            Some(last) => last + (ts.wrapping_sub(last as u32) as i32) as i64,
        }
    }
}

/// One track's RTP clock as a receiver sees it: timestamps to µs from the
/// first timestamp seen (which becomes 0, plus `base_us`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackClock {
    rate: u32,
    unwrap: Unwrapper,
    first: Option<i64>,
    /// Added to every time given out (µs).
    pub base_us: i64,
}

impl TrackClock {
    /// A clock of `rate` Hz (a rate of 0 is taken as 90 kHz).
    pub fn new(rate: u32) -> TrackClock {
        TrackClock {
            rate: if rate == 0 { 90_000 } else { rate },
            unwrap: Unwrapper::default(),
            first: None,
            base_us: 0,
        }
    }

    /// The clock rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The first timestamp seen (extended), if any.
    pub fn first(&self) -> Option<i64> {
        self.first
    }

    /// Ticks of `ts` since the first timestamp (extended).
    pub fn ticks(&mut self, ts: u32) -> i64 {
        let v = self.unwrap.unwrap(ts);
        let first = *self.first.get_or_insert(v);
        v - first
    }

    /// Microseconds of `ts` since the first timestamp, plus `base_us`.
    pub fn to_us(&mut self, ts: u32) -> i64 {
        let t = self.ticks(ts);
        ticks_to_us(t, self.rate) + self.base_us
    }

    /// Forgets the timestamps seen (a new sender, a new SSRC).
    pub fn reset(&mut self) {
        self.unwrap = Unwrapper::default();
        self.first = None;
    }
}

/// NTP time (RFC 3550: 32.32 fixed point seconds since 1900) to
/// microseconds since the Unix epoch.
pub fn ntp_to_unix_us(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET as i64;
    let frac = ((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

/// Microseconds since the Unix epoch to NTP time.
pub fn unix_us_to_ntp(us: i64) -> u64 {
    let secs = us.div_euclid(1_000_000) + NTP_UNIX_OFFSET as i64;
    let frac = ((us.rem_euclid(1_000_000) as u64) << 32) / 1_000_000;
    ((secs.max(0) as u64) << 32) | frac
}

/// The middle 32 bits of an NTP time (the `last_sr` of reception reports).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// What a sender report says: RTP timestamp `rtp` of a track of `rate` Hz
/// was sampled at wall time `wall_us` (Unix µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallMap {
    /// The SR's RTP timestamp.
    pub rtp: u32,
    /// The SR's NTP time as Unix µs.
    pub wall_us: i64,
    /// The track's clock rate.
    pub rate: u32,
}

impl WallMap {
    /// From a sender report's NTP and RTP times.
    pub fn from_sr(ntp: u64, rtp: u32, rate: u32) -> WallMap {
        WallMap {
            rtp,
            wall_us: ntp_to_unix_us(ntp),
            rate: if rate == 0 { 90_000 } else { rate },
        }
    }

    /// The wall time (Unix µs) of RTP timestamp `ts`, taken as the one
    /// nearest to the SR's (±half the 32-bit range).
    pub fn wall_us(&self, ts: u32) -> i64 {
        let d = ts.wrapping_sub(self.rtp) as i32 as i64;
        self.wall_us + ticks_to_us(d, self.rate)
    }
}

/// Puts the tracks of one sender on one timeline from their sender
/// reports: each track's [`TrackClock`] starts at 0 at its own first
/// packet; once a track and the reference track (the first to have an SR)
/// both have an SR, [`AvSync::offset_us`] says how far the track's times
/// must move to line up with the reference's (add it to the track's
/// `TrackClock::base_us`, or to its frames' times).
#[derive(Debug, Clone, Default)]
pub struct AvSync {
    /// Per track: the wall time of its first timestamp, once known.
    starts: Vec<Option<i64>>,
    reference: Option<usize>,
}

/// Most tracks [`AvSync`] follows.
pub const MAX_SYNC_TRACKS: usize = 16;

impl AvSync {
    /// Records a sender report of `track`, whose clock is `clock` (it must
    /// have seen the track's first packet for the SR to be usable).
    /// Returns whether the track's offset changed.
    pub fn sender_report(&mut self, track: usize, clock: &TrackClock, ntp: u64, rtp: u32) -> bool {
        if track >= MAX_SYNC_TRACKS {
            return false;
        }
        let Some(first) = clock.first() else {
            return false;
        };
        if self.starts.len() <= track {
            self.starts.resize(track + 1, None);
        }
        let map = WallMap::from_sr(ntp, rtp, clock.rate());
        let start = map.wall_us(first as u32);
        let changed = self.starts[track] != Some(start);
        self.starts[track] = Some(start);
        if self.reference.is_none() {
            self.reference = Some(track);
        }
        changed
    }

    /// How many µs to add to `track`'s times (from its `TrackClock`) to
    /// put it on the reference track's timeline; None until both have
    /// sender reports.
    pub fn offset_us(&self, track: usize) -> Option<i64> {
        let r = self.starts.get(self.reference?).copied().flatten()?;
        let t = self.starts.get(track).copied().flatten()?;
        Some(t - r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_us() {
        assert_eq!(us_to_ticks(1_000_000, 90_000), 90_000);
        assert_eq!(us_to_ticks(-1, 90_000), -1);
        assert_eq!(ticks_to_us(3_003, 90_000), 33_366);
        assert_eq!(ticks_to_us(1024, 44_100), 23_219);
        assert_eq!(ticks_to_us(5, 0), 0);
        assert_eq!(rtp_timestamp(1_000_000, 90_000, u32::MAX), 89_999);
    }

    #[test]
    fn unwrap_across_wrap_and_reorder() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), u32::MAX as i64 + 6);
        // A little behind, across the wrap again.
        assert_eq!(u.unwrap(u32::MAX), u32::MAX as i64);
        assert_eq!(u.unwrap(100), u32::MAX as i64 + 101);
    }

    #[test]
    fn track_clock_from_first() {
        let mut c = TrackClock::new(48_000);
        assert_eq!(c.to_us(u32::MAX - 479), 0);
        assert_eq!(c.to_us(480), 20_000);
        c.base_us = 1_000;
        assert_eq!(c.to_us(1440), 41_000);
    }

    #[test]
    fn ntp_conversions() {
        let us = 1_700_000_000_123_456;
        let ntp = unix_us_to_ntp(us);
        assert!((ntp_to_unix_us(ntp) - us).abs() <= 1);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp_middle(0x1122_3344_5566_7788), 0x3344_5566);
    }

    #[test]
    fn av_sync_from_sender_reports() {
        // Video starts at RTP 1000 (90 kHz), audio at 50 (48 kHz); audio's
        // first sample is 100 ms after video's first frame.
        let wall0 = 1_700_000_000_000_000;
        let mut v = TrackClock::new(90_000);
        let mut a = TrackClock::new(48_000);
        v.to_us(1000);
        a.to_us(50);
        let mut s = AvSync::default();
        assert_eq!(s.offset_us(1), None);
        // SRs a second later.
        s.sender_report(0, &v, unix_us_to_ntp(wall0 + 1_000_000), 1000 + 90_000);
        s.sender_report(1, &a, unix_us_to_ntp(wall0 + 1_000_000), 50 + 43_200);
        assert_eq!(s.offset_us(0), Some(0));
        let off = s.offset_us(1).unwrap();
        assert!((off - 100_000).abs() <= 2, "{off}");
        assert!(!s.sender_report(99, &a, 0, 0));
    }
}
