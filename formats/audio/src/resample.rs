//! Fixed-ratio resampling to 48 kHz with rubato's FFT resampler, which
//! works on fixed chunks (about 1024 input frames; the exact size is a
//! multiple of the reduced ratio, e.g. 1029 in / 1120 out for 44.1 kHz).
//! Input that does not fill a chunk waits for the next call.

use rubato::{FftFixedInOut, Resampler as _};

use crate::Error;

/// Interleaved i16 at some rate in, interleaved i16 at 48 kHz out.
pub struct Resampler {
    inner: FftFixedInOut<f32>,
    channels: usize,
    /// Per channel, input not yet resampled (less than a chunk between
    /// calls).
    pending: Vec<Vec<f32>>,
    out: Vec<Vec<f32>>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("channels", &self.channels)
            .field("chunk_in", &self.inner.input_frames_next())
            .finish()
    }
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` for `channels` channels.
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Result<Self, Error> {
        let inner = FftFixedInOut::<f32>::new(in_rate as usize, out_rate as usize, 1024, channels)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let out = inner.output_buffer_allocate(true);
        let pending = (0..channels)
            .map(|_| Vec::with_capacity(inner.input_frames_max() * 2))
            .collect();
        Ok(Resampler {
            inner,
            channels,
            pending,
            out,
        })
    }

    /// The resampler's delay in output samples.
    pub fn delay(&self) -> u32 {
        self.inner.output_delay() as u32
    }

    /// Forgets buffered input and filter state (a resync).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.iter_mut().for_each(Vec::clear);
    }

    /// Resamples `input` (interleaved), appending every whole chunk's output
    /// to `output` (interleaved) and keeping the remainder.
    pub fn process(&mut self, input: &[i16], output: &mut Vec<i16>) -> Result<(), Error> {
        for frame in input.chunks_exact(self.channels) {
            for (ch, &s) in self.pending.iter_mut().zip(frame) {
                ch.push(s as f32 / 32768.0);
            }
        }
        let chunk = self.inner.input_frames_next();
        while self.pending[0].len() >= chunk {
            let (used, made) = self
                .inner
                .process_into_buffer(&self.pending, &mut self.out, None)
                .map_err(|e| Error::Resample(e.to_string()))?;
            for i in 0..made {
                for ch in &self.out {
                    output.push((ch[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
                }
            }
            self.pending.iter_mut().for_each(|ch| {
                ch.drain(..used);
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_lengths() {
        for rate in [8000, 11025, 16000, 22050, 24000, 32000, 44100, 88200, 96000] {
            let mut r = Resampler::new(rate, 48_000, 2).unwrap();
            let input = vec![1000i16; rate as usize * 2]; // one second, stereo
            let mut out = Vec::new();
            r.process(&input, &mut out).unwrap();
            let frames = out.len() / 2;
            // All but the last partial chunk (a few tens of ms) comes out.
            assert!(frames <= 48_000 && frames > 40_000, "{rate}: {frames}");
            // Steady state keeps the level.
            let mid = out[frames] as i32;
            assert!((mid - 1000).abs() < 20, "{rate}: {mid}");
        }
    }
}
