//! A small reorder buffer for RTP over UDP: packets come out in sequence
//! order; a gap is waited for until the buffer holds `window` packets past
//! it or its oldest waiting packet is `timeout_us` old, then skipped and
//! reported as lost. Sequence numbers wrap at 16 bits; duplicates and
//! packets older than what was already given out are dropped.

/// Largest window a [`Reorder`] accepts.
pub const MAX_WINDOW: usize = 1024;

/// What comes out of the buffer, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<T> {
    /// The next packet, with its sequence number.
    Packet(u16, T),
    /// This many packets were given up for lost before the next one.
    Lost(u32),
}

/// Counters of a [`Reorder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets given out.
    pub delivered: u64,
    /// Packets given up for lost.
    pub lost: u64,
    /// Packets dropped as duplicates or too late.
    pub dropped: u64,
    /// Packets that came after one with a later sequence number (and were
    /// put back in order).
    pub reordered: u64,
    /// Times the sender jumped far away and the buffer started over.
    pub resets: u64,
}

/// The reorder buffer (see the module docs).
#[derive(Debug)]
pub struct Reorder<T> {
    /// Slots by `seq % window`.
    slots: Vec<Option<(u16, u64, T)>>,
    window: usize,
    timeout_us: u64,
    /// The sequence number expected next; None before the first packet.
    next: Option<u16>,
    held: usize,
    /// The latest sequence number taken.
    highest: Option<u16>,
    /// Counters.
    pub stats: ReorderStats,
}

impl<T> Reorder<T> {
    /// A buffer holding at most `window` packets (1..=[`MAX_WINDOW`];
    /// clamped), waiting at most `timeout_us` for a missing one.
    pub fn new(window: usize, timeout_us: u64) -> Reorder<T> {
        let window = window.clamp(1, MAX_WINDOW);
        Reorder {
            slots: (0..window).map(|_| None).collect(),
            window,
            timeout_us,
            next: None,
            held: 0,
            highest: None,
            stats: ReorderStats::default(),
        }
    }

    /// Packets waiting for a gap to fill.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes a packet that arrived at `now_us`; what can go out now goes to
    /// `out`.
    pub fn push(&mut self, now_us: u64, seq: u16, item: T, out: &mut Vec<Out<T>>) {
        let next = *self.next.get_or_insert(seq);
        let d = seq.wrapping_sub(next) as i16;
        if d < 0 {
            if (d as i32) < -(MAX_WINDOW as i32) * 2 && self.held == 0 {
                // Far behind with nothing waiting: the sender restarted.
                self.stats.resets += 1;
                self.next = Some(seq);
                self.highest = None;
                return self.push(now_us, seq, item, out);
            }
            self.stats.dropped += 1;
            return;
        }
        let d = d as usize;
        if d >= self.window + MAX_WINDOW * 2 {
            // Far ahead: the sender jumped; give out what is held and
            // start over here.
            self.stats.resets += 1;
            self.flush(out);
            self.next = Some(seq);
            self.highest = None;
            return self.push(now_us, seq, item, out);
        }
        match self.highest {
            Some(h) if (seq.wrapping_sub(h) as i16) < 0 => self.stats.reordered += 1,
            _ => self.highest = Some(seq),
        }
        if d == 0 && self.held == 0 {
            self.stats.delivered += 1;
            self.next = Some(seq.wrapping_add(1));
            out.push(Out::Packet(seq, item));
            return;
        }
        // Make room: skip gaps until `seq` fits in the window.
        while seq.wrapping_sub(self.next.unwrap_or(seq)) as usize >= self.window {
            self.skip_gap(out);
        }
        let i = seq as usize % self.window;
        if self.slots[i].is_some() {
            self.stats.dropped += 1;
            return;
        }
        self.slots[i] = Some((seq, now_us, item));
        self.held += 1;
        self.drain(out);
        self.poll(now_us, out);
    }

    /// Gives up on gaps whose packets after them waited `timeout_us`.
    pub fn poll(&mut self, now_us: u64, out: &mut Vec<Out<T>>) {
        while self.held > 0 {
            let oldest = self
                .slots
                .iter()
                .flatten()
                .map(|(_, t, _)| *t)
                .min()
                .unwrap_or(now_us);
            if now_us.saturating_sub(oldest) < self.timeout_us {
                break;
            }
            self.skip_gap(out);
        }
    }

    /// The time at which [`Reorder::poll`] will have something to do, if
    /// anything is held.
    pub fn deadline(&self) -> Option<u64> {
        self.slots
            .iter()
            .flatten()
            .map(|(_, t, _)| t.saturating_add(self.timeout_us))
            .min()
    }

    /// Gives out everything held, gaps reported as lost.
    pub fn flush(&mut self, out: &mut Vec<Out<T>>) {
        while self.held > 0 {
            self.skip_gap(out);
        }
    }

    /// Skips the missing packets before the next held one (or the whole
    /// window when nothing is held), then drains.
    fn skip_gap(&mut self, out: &mut Vec<Out<T>>) {
        let Some(next) = self.next else { return };
        let mut lost = 0u32;
        let mut s = next;
        for _ in 0..self.window {
            if self.slot_has(s) {
                break;
            }
            lost += 1;
            s = s.wrapping_add(1);
        }
        if lost > 0 {
            self.stats.lost += lost as u64;
            out.push(Out::Lost(lost));
        }
        self.next = Some(s);
        self.drain(out);
    }

    fn slot_has(&self, seq: u16) -> bool {
        matches!(&self.slots[seq as usize % self.window], Some((s, _, _)) if *s == seq)
    }

    /// Gives out the held packets that follow on without a gap.
    fn drain(&mut self, out: &mut Vec<Out<T>>) {
        while let Some(next) = self.next {
            let i = next as usize % self.window;
            match self.slots[i].take() {
                Some((s, _, item)) if s == next => {
                    self.held -= 1;
                    self.stats.delivered += 1;
                    out.push(Out::Packet(s, item));
                    self.next = Some(next.wrapping_add(1));
                }
                other => {
                    self.slots[i] = other;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(out: &[Out<u16>]) -> Vec<i64> {
        out.iter()
            .map(|o| match o {
                Out::Packet(s, v) => {
                    assert_eq!(s, v);
                    *s as i64
                }
                Out::Lost(n) => -(*n as i64),
            })
            .collect()
    }

    #[test]
    fn in_order_passes_through_across_wrap() {
        let mut r = Reorder::new(8, 50_000);
        let mut out = Vec::new();
        for s in 65530..=65535u16 {
            r.push(0, s, s, &mut out);
        }
        for s in 0..5u16 {
            r.push(0, s, s, &mut out);
        }
        assert_eq!(
            seqs(&out),
            vec![65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4]
        );
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn reordered_across_wrap() {
        let mut r = Reorder::new(8, 50_000);
        let mut out = Vec::new();
        for s in [65534u16, 0, 65535, 2, 1, 3] {
            r.push(0, s, s, &mut out);
        }
        assert_eq!(seqs(&out), vec![65534, 65535, 0, 1, 2, 3]);
        assert_eq!(r.stats.reordered, 2);
        assert_eq!(r.stats.lost, 0);
    }

    #[test]
    fn gap_given_up_after_timeout() {
        let mut r = Reorder::new(8, 50_000);
        let mut out = Vec::new();
        r.push(0, 65535, 65535, &mut out);
        r.push(1_000, 2, 2, &mut out);
        r.push(2_000, 3, 3, &mut out);
        assert_eq!(seqs(&out), vec![65535]);
        assert_eq!(r.deadline(), Some(51_000));
        r.poll(50_999, &mut out);
        assert_eq!(seqs(&out), vec![65535]);
        r.poll(51_000, &mut out);
        assert_eq!(seqs(&out), vec![65535, -2, 2, 3]);
        assert_eq!(r.stats.lost, 2);
        // A late packet is dropped.
        r.push(60_000, 1, 1, &mut out);
        assert_eq!(r.stats.dropped, 1);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn gap_given_up_when_window_full() {
        let mut r = Reorder::new(4, 1_000_000);
        let mut out = Vec::new();
        r.push(0, 10, 10, &mut out);
        for s in 12..=15u16 {
            r.push(0, s, s, &mut out);
        }
        // 15 does not fit with 11 missing: 11 is given up.
        assert_eq!(seqs(&out), vec![10, -1, 12, 13, 14, 15]);
    }

    #[test]
    fn duplicates_and_jumps() {
        let mut r = Reorder::new(8, 1_000);
        let mut out = Vec::new();
        r.push(0, 100, 100, &mut out);
        r.push(0, 102, 102, &mut out);
        r.push(0, 102, 102, &mut out);
        r.push(0, 100, 100, &mut out);
        assert_eq!(r.stats.dropped, 2);
        // The sender jumps far ahead: what is held goes out, then the new.
        r.push(0, 30_000, 30_000, &mut out);
        r.push(0, 30_001, 30_001, &mut out);
        assert_eq!(seqs(&out), vec![100, -1, 102, 30_000, 30_001]);
        assert_eq!(r.stats.resets, 1);
    }
}
