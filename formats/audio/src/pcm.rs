//! Interleaved 16-bit PCM between decoder and encoder: fitting the decoded
//! channel count to the encoder's, and the bounded queue that turns decoder
//! frames into encoder frames.

/// Appends `input` (interleaved, `in_ch` channels) to `out` with `out_ch`
/// channels. FDK already downmixes multichannel AAC to stereo and libopus
/// decodes to the channel count it is opened with, so this only bridges
/// what is left: mono to stereo (copy), stereo to mono (average), and, as a
/// fallback, more than two channels to stereo (the first two) or mono.
pub fn fit_channels(input: &[i16], in_ch: usize, out_ch: usize, out: &mut Vec<i16>) {
    if in_ch == 0 || out_ch == 0 {
        return;
    }
    if in_ch == out_ch {
        out.extend_from_slice(input);
        return;
    }
    for frame in input.chunks_exact(in_ch) {
        match out_ch {
            1 => {
                let sum: i32 = frame.iter().map(|&s| s as i32).sum();
                out.push((sum / in_ch as i32) as i16);
            }
            _ => {
                let l = frame[0];
                let r = frame.get(1).copied().unwrap_or(l);
                out.push(l);
                out.push(r);
                out.extend(std::iter::repeat_n(0, out_ch - 2));
            }
        }
    }
}

/// A FIFO of interleaved samples with a hard cap, so a misbehaving input
/// cannot grow it without bound.
#[derive(Debug)]
pub struct PcmQueue {
    buf: Vec<i16>,
    cap: usize,
}

impl PcmQueue {
    /// A queue of at most `cap_samples` interleaved samples.
    pub fn new(cap_samples: usize) -> Self {
        PcmQueue {
            buf: Vec::new(),
            cap: cap_samples,
        }
    }

    /// Appends samples; false (and nothing appended) if that would pass
    /// the cap.
    pub fn push(&mut self, samples: &[i16]) -> bool {
        if self.buf.len() + samples.len() > self.cap {
            return false;
        }
        self.buf.extend_from_slice(samples);
        true
    }

    /// The first `n` samples, if there are that many.
    pub fn front(&self, n: usize) -> Option<&[i16]> {
        self.buf.get(..n)
    }

    /// Drops the first `n` samples (or all).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_fits() {
        let mut out = Vec::new();
        fit_channels(&[1, 2, 3], 1, 2, &mut out);
        assert_eq!(out, [1, 1, 2, 2, 3, 3]);
        out.clear();
        fit_channels(&[10, 20, -4, 4], 2, 1, &mut out);
        assert_eq!(out, [15, 0]);
        out.clear();
        fit_channels(&[1, 2, 3, 4, 5, 6], 6, 2, &mut out);
        assert_eq!(out, [1, 2]);
        out.clear();
        fit_channels(&[i16::MAX, i16::MAX], 2, 1, &mut out);
        assert_eq!(out, [i16::MAX]);
    }

    #[test]
    fn queue_is_capped() {
        let mut q = PcmQueue::new(4);
        assert!(q.push(&[1, 2, 3]));
        assert!(!q.push(&[4, 5]));
        assert_eq!(q.front(2), Some(&[1, 2][..]));
        assert_eq!(q.front(4), None);
        q.consume(2);
        assert!(q.push(&[4, 5]));
        assert_eq!(q.front(3), Some(&[3, 4, 5][..]));
    }
}
