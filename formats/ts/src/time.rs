//! Time: the host's microseconds ↔ the 90 kHz, 33-bit PTS/DTS clock and
//! the 27 MHz PCR, and the unwrapping of the 33-bit wrap (every 26.5 hours).

/// The PTS/DTS clock rate.
pub const TS_CLOCK_HZ: i64 = 90_000;
/// PTS/DTS values are 33 bits: they wrap at this many ticks.
pub const TS_WRAP: i64 = 1 << 33;
const MASK: i64 = TS_WRAP - 1;

/// Microseconds to 90 kHz ticks, rounded to the nearest tick (not wrapped).
pub fn us_to_ticks(us: i64) -> i64 {
    ((us as i128 * 9 + 50).div_euclid(100)) as i64
}

/// 90 kHz ticks to microseconds, rounded to the nearest microsecond. A
/// round trip µs → ticks → µs is off by at most 6 µs; ticks → µs → ticks
/// is exact.
pub fn ticks_to_us(ticks: i64) -> i64 {
    ((ticks as i128 * 100 + 4).div_euclid(9)) as i64
}

/// A tick count reduced to the 33 bits a PES header carries.
pub fn wrap33(ticks: i64) -> u64 {
    (ticks & MASK) as u64
}

/// The PCR (base at 90 kHz, 33 bits; extension at 27 MHz, 0..300) of a
/// time in microseconds, wrapped.
pub fn us_to_pcr(us: i64) -> (u64, u16) {
    let t27 = us as i128 * 27;
    let base = t27.div_euclid(300);
    let ext = t27.rem_euclid(300);
    ((base as i64 & MASK) as u64, ext as u16)
}

/// Turns 33-bit timestamps back into a monotonic line: each value is
/// placed at the point of its 2^33 cycle nearest the previous reference,
/// so a wrap moves forward instead of back 26.5 hours, and a small step
/// back (B-frame PTS, audio slightly behind video) stays a small step back.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    /// An unwrapper with no reference yet.
    pub fn new() -> Self {
        Unwrapper::default()
    }

    /// Places the 33-bit `raw` near the reference, without moving the
    /// reference.
    pub fn place(&self, raw: u64) -> i64 {
        let raw = raw as i64 & MASK;
        match self.last {
            None => raw,
            Some(last) => {
                let mut diff = (raw - last).rem_euclid(TS_WRAP);
                if diff >= TS_WRAP / 2 {
                    diff -= TS_WRAP;
                }
                last + diff
            }
        }
    }

    /// Places `raw` and makes it the new reference.
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let v = self.place(raw);
        self.last = Some(v);
        v
    }

    /// Forgets the reference (the next value starts a new line).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        for us in [
            0,
            1,
            5,
            11,
            23_219,
            40_000,
            1_000_000,
            -40_000,
            95_443_717_688,
        ] {
            let back = ticks_to_us(us_to_ticks(us));
            assert!((back - us).abs() <= 6, "{us} -> {back}");
        }
        for t in [0, 1, 2, 3599, 3600, 90_000, TS_WRAP - 1, -7] {
            assert_eq!(us_to_ticks(ticks_to_us(t)), t);
        }
        assert_eq!(us_to_ticks(40_000), 3600);
        assert_eq!(ticks_to_us(3600), 40_000);
        assert_eq!(wrap33(TS_WRAP + 5), 5);
        assert_eq!(wrap33(-1), (TS_WRAP - 1) as u64);
        assert_eq!(us_to_pcr(1_000_000), (90_000, 0));
        assert_eq!(us_to_pcr(1), (0, 27));
    }

    #[test]
    fn unwrapper_crosses_the_wrap_and_allows_small_steps_back() {
        let mut u = Unwrapper::new();
        assert_eq!(u.unwrap((TS_WRAP - 100) as u64), TS_WRAP - 100);
        assert_eq!(u.unwrap(50), TS_WRAP + 50);
        assert_eq!(u.place((TS_WRAP - 10) as u64), TS_WRAP - 10);
        assert_eq!(u.unwrap(3650), TS_WRAP + 3650);
        // Many wraps later, still continuous.
        let mut t = TS_WRAP + 3650;
        for _ in 0..10 {
            t += TS_WRAP / 3;
            assert_eq!(u.unwrap(wrap33(t)), t);
        }
        u.reset();
        assert_eq!(u.unwrap(7), 7);
    }
}
