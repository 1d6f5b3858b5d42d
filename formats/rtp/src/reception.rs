//! What a receiver reports about a source (RFC 3550 §6.4.1, A.3, A.8):
//! extended highest sequence number, cumulative and fractional loss,
//! interarrival jitter, and the last SR's time, as a [`ReportBlock`] for
//! receiver reports.

use crate::clock::ntp_middle;
use crate::packet::ReportBlock;

/// Reception statistics of one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reception {
    /// The source.
    pub ssrc: u32,
    started: bool,
    base_seq: u32,
    /// Extended highest sequence number (cycles << 16 | seq).
    max_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Jitter in timestamp units, times 16 (RFC 3550 A.8).
    jitter16: u64,
    last_transit: Option<i64>,
    last_sr: u32,
    last_sr_at_us: Option<u64>,
}

impl Reception {
    /// Statistics of source `ssrc`.
    pub fn new(ssrc: u32) -> Reception {
        Reception {
            ssrc,
            ..Reception::default()
        }
    }

    /// A packet with `seq` and `timestamp` arrived at `now_us`; `rate` is
    /// the track's clock rate.
    pub fn packet(&mut self, seq: u16, timestamp: u32, now_us: u64, rate: u32) {
        if !self.started {
            self.started = true;
            self.base_seq = seq as u32;
            self.max_seq = seq as u32;
        } else {
            let max = self.max_seq as u16;
            let d = seq.wrapping_sub(max);
            if d != 0 && d < 0x8000 {
                if seq < max {
                    // Wrapped: a new cycle.
                    self.max_seq = self.max_seq.wrapping_add(0x1_0000);
                }
                self.max_seq = (self.max_seq & 0xFFFF_0000) | seq as u32;
            }
        }
        self.received += 1;
        let arrival = (now_us as i128 * rate as i128 / 1_000_000) as i64;
        let transit = arrival - timestamp as i64;
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).unsigned_abs();
            // A timestamp wrap between two packets is not jitter.
            d %= 1 << 32;
            let d = d.min((1 << 32) - d);
            // J += (|D| - J) / 16, kept times 16.
            self.jitter16 = self.jitter16 + d - (self.jitter16 + 8) / 16;
        }
        self.last_transit = Some(transit);
    }

    /// A sender report with NTP time `ntp` arrived at `now_us`.
    pub fn sender_report(&mut self, ntp: u64, now_us: u64) {
        self.last_sr = ntp_middle(ntp);
        self.last_sr_at_us = Some(now_us);
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.max_seq as u64).wrapping_sub(self.base_seq as u64) + 1
    }

    /// The report block at `now_us`; starts a new interval for the
    /// fraction lost.
    pub fn report(&mut self, now_us: u64) -> ReportBlock {
        let expected = self.expected();
        let lost = expected as i64 - self.received as i64;
        let exp_int = expected.saturating_sub(self.expected_prior);
        let rec_int = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_int = exp_int.saturating_sub(rec_int);
        let fraction = (lost_int << 8).checked_div(exp_int).unwrap_or(0).min(255) as u8;
        let dlsr = self.last_sr_at_us.map_or(0, |t| {
            ((now_us.saturating_sub(t) as u128 * 65_536 / 1_000_000).min(u32::MAX as u128)) as u32
        });
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: fraction,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: self.max_seq,
            jitter: (self.jitter16 / 16).min(u32::MAX as u64) as u32,
            last_sr: self.last_sr,
            delay_since_last_sr: dlsr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_wrap_and_jitter() {
        let mut r = Reception::new(7);
        // 65530..=65535, 0..=9 with 3 missing, evenly spaced: no jitter.
        for (k, s) in (65530u32..65546).map(|s| s as u16).enumerate() {
            let k = k as u64;
            if s != 3 {
                r.packet(s, (k * 3600) as u32, k * 40_000, 90_000);
            }
        }
        r.sender_report(0x0000_1234_5678_0000, 600_000);
        let b = r.report(700_000);
        assert_eq!(b.highest_seq, 0x1_0009);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.fraction_lost, 16); // 1/16 of 16
        assert_eq!(b.jitter, 0);
        assert_eq!(b.last_sr, 0x1234_5678);
        assert_eq!(b.delay_since_last_sr, 6553);
        // The next interval has no loss.
        r.packet(10, 16 * 3600, 16 * 40_000, 90_000);
        assert_eq!(r.report(800_000).fraction_lost, 0);
    }

    #[test]
    fn jitter_grows_with_uneven_arrival() {
        let mut r = Reception::new(1);
        for k in 0..32u64 {
            let late = if k % 2 == 0 { 0 } else { 10_000 };
            r.packet(k as u16, (k * 900) as u32, k * 10_000 + late, 90_000);
        }
        let j = r.report(0).jitter;
        assert!((700..=900).contains(&j), "{j}");
    }
}
