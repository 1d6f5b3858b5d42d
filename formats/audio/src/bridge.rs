//! The two bridges, and the pipeline they share: decoded PCM in, channel
//! fit, resample to 48 kHz, queue, fixed-size encoder frames out with pts
//! from the [`SampleClock`].

use bytes::Bytes;

use crate::aac::{AacDecoder, AacEncoder};
use crate::asc::Asc;
use crate::clock::{SampleClock, Step};
use crate::head::{opus_head, OpusHeadInfo};
use crate::opus::{OpusDecoder, OpusEncoder, OPUS_FRAME};
use crate::pcm::{fit_channels, PcmQueue};
use crate::resample::Resampler;
use crate::{check_input, Error, Frame, OUTPUT_RATE};

/// The encoder end of a pipeline.
trait FrameEncoder {
    /// Samples per channel per frame.
    fn frame_len(&self) -> usize;
    /// Encoder delay in 48 kHz samples.
    fn delay(&self) -> u32;
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), Error>;
    fn reset(&mut self) -> Result<(), Error>;
}

impl FrameEncoder for OpusEncoder {
    fn frame_len(&self) -> usize {
        OPUS_FRAME
    }
    fn delay(&self) -> u32 {
        self.lookahead()
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), Error> {
        OpusEncoder::encode(self, pcm, out)
    }
    fn reset(&mut self) -> Result<(), Error> {
        OpusEncoder::reset(self)
    }
}

impl FrameEncoder for AacEncoder {
    fn frame_len(&self) -> usize {
        AacEncoder::frame_len(self)
    }
    fn delay(&self) -> u32 {
        AacEncoder::delay(self)
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), Error> {
        AacEncoder::encode(self, pcm, out)
    }
    fn reset(&mut self) -> Result<(), Error> {
        AacEncoder::reset(self)
    }
}

/// Decoded PCM to encoded frames.
#[derive(Debug)]
struct Pipeline<E> {
    channels: usize,
    encoder: E,
    /// Input rate of the current segment (0 before the first frame).
    rate: u32,
    /// `None` when the input is already at 48 kHz.
    resampler: Option<Resampler>,
    clock: SampleClock,
    queue: PcmQueue,
    /// Whether the encoder has seen input since it was made or reset.
    dirty: bool,
    fitted: Vec<i16>,
    resampled: Vec<i16>,
    packets: Vec<Bytes>,
}

impl<E: FrameEncoder> Pipeline<E> {
    fn new(channels: u8, encoder: E) -> Self {
        let channels = channels as usize;
        let frame_len = encoder.frame_len();
        Pipeline {
            channels,
            rate: 0,
            resampler: None,
            clock: SampleClock::new(OUTPUT_RATE, frame_len as u32),
            // One second at 48 kHz: far more than the queue ever holds
            // (under one encoder frame plus one decoded frame).
            queue: PcmQueue::new(OUTPUT_RATE as usize * channels),
            encoder,
            dirty: false,
            fitted: Vec::new(),
            resampled: Vec::new(),
            packets: Vec::new(),
        }
    }

    /// Drops buffered audio and codec state and starts a segment at `pts`.
    /// `extra_delay` is the decoder's own output delay, at `rate`.
    fn restart(&mut self, pts: i64, rate: u32, extra_delay: u32) -> Result<(), Error> {
        self.queue.clear();
        if rate != self.rate || self.resampler.is_none() {
            self.resampler = if rate == OUTPUT_RATE {
                None
            } else {
                Some(Resampler::new(rate, OUTPUT_RATE, self.channels)?)
            };
            self.rate = rate;
        } else if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        if self.dirty {
            self.encoder.reset()?;
            self.dirty = false;
        }
        let resampler_delay = self.resampler.as_ref().map_or(0, Resampler::delay);
        let decoder_delay = (extra_delay as u64 * OUTPUT_RATE as u64 / rate as u64) as u32;
        let delay = resampler_delay + self.encoder.delay() + decoder_delay;
        self.clock.start(pts, rate, delay);
        Ok(())
    }

    /// Feeds one decoded frame: `pcm` interleaved with `in_ch` channels at
    /// `rate`, first sample at `pts`.
    fn push(
        &mut self,
        pts: i64,
        pcm: &[i16],
        in_ch: usize,
        rate: u32,
        extra_delay: u32,
        out: &mut Vec<Frame>,
    ) -> Result<(), Error> {
        if in_ch == 0 || pcm.is_empty() {
            return Ok(());
        }
        let samples = (pcm.len() / in_ch) as u64;
        self.fitted.clear();
        let step = self.clock.input(pts, rate, samples);
        match step {
            Step::Resync => {
                self.restart(pts, rate, extra_delay)?;
                self.clock.counted(samples);
            }
            Step::Gap(n) => {
                // Silence where the missing input would have been.
                self.fitted.resize(n as usize * self.channels, 0);
            }
            Step::Continue => {}
        }
        fit_channels(pcm, in_ch, self.channels, &mut self.fitted);
        self.resampled.clear();
        let ready: &[i16] = match self.resampler.as_mut() {
            Some(r) => {
                r.process(&self.fitted, &mut self.resampled)?;
                &self.resampled
            }
            None => &self.fitted,
        };
        if !self.queue.push(ready) {
            // Cannot happen with sane frame sizes (the queue is drained
            // below every time); if it does, start over at this frame
            // rather than grow.
            self.restart(pts, rate, extra_delay)?;
            return Err(Error::BadInput(
                "PCM queue over one second; resynced".into(),
            ));
        }
        self.dirty = true;
        let n = self.encoder.frame_len() * self.channels;
        while let Some(frame) = self.queue.front(n) {
            self.packets.clear();
            self.encoder.encode(frame, &mut self.packets)?;
            self.queue.consume(n);
            for data in self.packets.drain(..) {
                if let Some((pts_us, discontinuity)) = self.clock.output() {
                    out.push(Frame {
                        pts_us,
                        data,
                        discontinuity,
                    });
                }
            }
        }
        Ok(())
    }
}

/// AAC in, Opus out: for WebRTC viewers of an AAC source.
///
/// Output is Opus at 48 kHz in 20 ms packets, mono for mono AAC and stereo
/// otherwise (multichannel AAC is downmixed by FDK). HE-AAC (SBR, PS) is
/// decoded at its full output rate, which is taken from the decoder after
/// each frame, not from the AudioSpecificConfig.
#[derive(Debug)]
pub struct AacToOpus {
    decoder: AacDecoder,
    pipeline: Pipeline<OpusEncoder>,
    config: Bytes,
    channels: u8,
}

impl AacToOpus {
    /// From the source's AudioSpecificConfig, encoding Opus at
    /// `bitrate_bps` (e.g. 64000 for stereo).
    pub fn new(asc: &[u8], bitrate_bps: u32) -> Result<Self, Error> {
        let parsed = Asc::parse(asc)?;
        let decoder = AacDecoder::new(asc)?;
        // Parametric stereo (object type 29) decodes a mono core to stereo.
        let channels = if parsed.object_type == 29 {
            2
        } else {
            parsed.output_channels()
        };
        let encoder = OpusEncoder::new(channels, bitrate_bps)?;
        // Pre-skip: the encoder's lookahead, as RFC 7845 asks.
        let config = Bytes::from(opus_head(
            channels,
            u16::try_from(encoder.lookahead()).unwrap_or(u16::MAX),
        ));
        Ok(AacToOpus {
            decoder,
            pipeline: Pipeline::new(channels, encoder),
            config,
            channels,
        })
    }

    /// The `OpusHead` to publish as the derived track's config.
    pub fn config(&self) -> Bytes {
        self.config.clone()
    }

    /// Output channel count (1 or 2).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Decodes one AAC access unit (first sample at `pts_us`) and appends
    /// the Opus packets that became complete to `out` (0..n, 20 ms each).
    /// On `Err` nothing of this unit is used and the bridge stays usable.
    pub fn push(&mut self, pts_us: i64, au: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        check_input(au)?;
        let d = self.decoder.decode(au)?;
        self.pipeline
            .push(pts_us, d.pcm, d.channels, d.rate, d.delay, out)
    }
}

/// Opus in, AAC-LC out: for RTMP, HLS and TS players of an Opus source.
///
/// Output is AAC-LC at 48 kHz (Opus decodes at 48 kHz, so nothing is
/// resampled), 1024-sample access units, the source's channel count.
#[derive(Debug)]
pub struct OpusToAac {
    decoder: OpusDecoder,
    pipeline: Pipeline<AacEncoder>,
    config: Bytes,
    channels: u8,
}

impl OpusToAac {
    /// From the source's `OpusHead` (channel count from it; `None` means
    /// stereo), encoding AAC-LC at `bitrate_bps` (e.g. 128000 for stereo).
    ///
    /// The source's pre-skip is not applied: sources that set one (files)
    /// put it in their timestamps already, and WebRTC has none; at 48 kHz
    /// it is about 6.5 ms anyway.
    pub fn new(opus_head: Option<&[u8]>, bitrate_bps: u32) -> Result<Self, Error> {
        let channels = match opus_head {
            Some(h) => OpusHeadInfo::parse(h)?.channels,
            None => 2,
        };
        let decoder = OpusDecoder::new(channels)?;
        let encoder = AacEncoder::new(channels, OUTPUT_RATE, bitrate_bps)?;
        let config = encoder.asc();
        Ok(OpusToAac {
            decoder,
            pipeline: Pipeline::new(channels, encoder),
            config,
            channels,
        })
    }

    /// The AudioSpecificConfig of the output.
    pub fn config(&self) -> Bytes {
        self.config.clone()
    }

    /// Output channel count (1 or 2).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Decodes one Opus packet (first sample at `pts_us`) and appends the
    /// AAC access units that became complete to `out` (0..n, 1024 samples
    /// each). On `Err` nothing of this packet is used and the bridge stays
    /// usable.
    pub fn push(&mut self, pts_us: i64, packet: &[u8], out: &mut Vec<Frame>) -> Result<(), Error> {
        check_input(packet)?;
        let channels = self.channels as usize;
        let pcm = self.decoder.decode(packet)?;
        self.pipeline
            .push(pts_us, pcm, channels, OUTPUT_RATE, 0, out)
    }
}
