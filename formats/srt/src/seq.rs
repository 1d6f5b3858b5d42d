//! SRT sequence numbers: 31 bits, wrapping; compared within half the space.

/// The largest sequence number; the next one is 0.
pub const MAX: u32 = 0x7FFF_FFFF;

/// A packet sequence number (31 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// `n` masked to 31 bits.
    pub const fn new(n: u32) -> Seq {
        Seq(n & MAX)
    }

    /// The number `n` after this one.
    pub const fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n) & MAX)
    }

    /// The number before this one.
    pub const fn prev(self) -> Seq {
        Seq(self.0.wrapping_sub(1) & MAX)
    }

    /// Signed distance from `other` to `self` (positive: `self` is later).
    pub const fn diff(self, other: Seq) -> i32 {
        // Shift into the top 31 bits so the wrapping subtraction's sign is
        // the comparison within half the space.
        ((self.0 << 1).wrapping_sub(other.0 << 1) as i32) >> 1
    }

    /// `self` comes before `other`.
    pub const fn lt(self, other: Seq) -> bool {
        self.diff(other) < 0
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_compares() {
        assert_eq!(Seq(MAX).add(1), Seq(0));
        assert_eq!(Seq(0).prev(), Seq(MAX));
        assert_eq!(Seq(2).diff(Seq(MAX)), 3);
        assert_eq!(Seq(MAX).diff(Seq(2)), -3);
        assert!(Seq(MAX).lt(Seq(1)));
        assert!(Seq(5).lt(Seq(6)));
        assert!(!Seq(6).lt(Seq(6)));
    }
}
