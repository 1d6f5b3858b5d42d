//! AAC through FDK AAC (the `fdk-aac` crate): a raw-access-unit decoder
//! configured by an AudioSpecificConfig, and an AAC-LC encoder producing
//! raw access units.
//!
//! Both crate types are `Send` (and `Sync`) already; we only ever use them
//! through `&mut self`, so no extra wrapping is needed.

use bytes::Bytes;
use fdk_aac::dec::{Decoder, Transport as DecTransport};
use fdk_aac::enc::{
    AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport as EncTransport,
};

use crate::Error;

/// The most PCM one access unit decodes to: 2048 samples per channel
/// (HE-AAC), 8 channels before FDK's downmix, with room to spare.
const MAX_DECODED: usize = 2048 * 8 * 2;

/// What one access unit decoded to.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Interleaved samples.
    pub pcm: &'a [i16],
    pub channels: usize,
    pub rate: u32,
    /// FDK's decoder output delay (SBR's QMF), in samples at `rate`.
    pub delay: u32,
}

/// A raw AAC decoder.
pub struct AacDecoder {
    dec: Decoder,
    asc: Vec<u8>,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacDecoder")
            .field("asc", &self.asc)
            .finish()
    }
}

fn open_decoder(asc: &[u8]) -> Result<Decoder, Error> {
    let mut dec = Decoder::new(DecTransport::Raw);
    // Ask FDK for at most two output channels: it then downmixes 5.1 and
    // other layouts to stereo itself.
    dec.set_max_output_channels(2)
        .map_err(|e| Error::BadConfig(format!("FDK downmix setting: {e}")))?;
    dec.config_raw(asc)
        .map_err(|e| Error::BadConfig(format!("AudioSpecificConfig rejected by FDK: {e}")))?;
    Ok(dec)
}

impl AacDecoder {
    /// A decoder for the stream `asc` describes (FDK validates it).
    pub fn new(asc: &[u8]) -> Result<Self, Error> {
        Ok(AacDecoder {
            dec: open_decoder(asc)?,
            asc: asc.to_vec(),
            pcm: vec![0; MAX_DECODED],
        })
    }

    /// Decodes one access unit. After a failure the decoder is reopened, so
    /// no half-consumed bits of the bad unit linger into the next one.
    pub fn decode(&mut self, au: &[u8]) -> Result<Decoded<'_>, Error> {
        match self.decode_inner(au) {
            Ok((n, channels, rate, delay)) => Ok(Decoded {
                pcm: &self.pcm[..n],
                channels,
                rate,
                delay,
            }),
            Err(e) => {
                self.dec = open_decoder(&self.asc)?;
                Err(e)
            }
        }
    }

    fn decode_inner(&mut self, au: &[u8]) -> Result<(usize, usize, u32, u32), Error> {
        let taken = self
            .dec
            .fill(au)
            .map_err(|e| Error::Decode(format!("AAC: {e}")))?;
        if taken != au.len() {
            return Err(Error::Decode(format!(
                "AAC access unit of {} bytes does not fit FDK's input buffer",
                au.len()
            )));
        }
        self.dec
            .decode_frame(&mut self.pcm)
            .map_err(|e| Error::Decode(format!("AAC: {e}")))?;
        let info = self.dec.stream_info();
        let channels = usize::try_from(info.numChannels).unwrap_or(0);
        let frame = usize::try_from(info.frameSize).unwrap_or(0);
        let rate = u32::try_from(info.sampleRate).unwrap_or(0);
        let n = channels * frame;
        if channels == 0 || frame == 0 || n > self.pcm.len() {
            return Err(Error::Decode(format!(
                "AAC: FDK reported {channels} channels x {frame} samples"
            )));
        }
        if !(8000..=96000).contains(&rate) {
            return Err(Error::UnsupportedRate(rate));
        }
        Ok((n, channels, rate, info.outputDelay))
    }
}

/// An AAC-LC encoder producing raw access units of 1024 samples.
pub struct AacEncoder {
    enc: Encoder,
    channels: u8,
    rate: u32,
    bitrate: u32,
    asc: Bytes,
    delay: u32,
    frame_len: usize,
    out: Vec<u8>,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("channels", &self.channels)
            .field("rate", &self.rate)
            .field("bitrate", &self.bitrate)
            .field("delay", &self.delay)
            .finish()
    }
}

fn open_encoder(channels: u8, rate: u32, bitrate: u32) -> Result<Encoder, Error> {
    Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(bitrate),
        sample_rate: rate,
        transport: EncTransport::Raw,
        channels: if channels == 1 {
            ChannelMode::Mono
        } else {
            ChannelMode::Stereo
        },
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| Error::Encode(format!("FDK AAC encoder setup ({bitrate} bit/s): {e}")))
}

impl AacEncoder {
    /// An AAC-LC encoder for `channels` (1 or 2) at `rate`, CBR `bitrate`.
    pub fn new(channels: u8, rate: u32, bitrate: u32) -> Result<Self, Error> {
        let enc = open_encoder(channels, rate, bitrate)?;
        let info = enc
            .info()
            .map_err(|e| Error::Encode(format!("FDK AAC encoder info: {e}")))?;
        let conf_len = (info.confSize as usize).min(info.confBuf.len());
        if conf_len == 0 {
            return Err(Error::Encode("FDK gave no AudioSpecificConfig".into()));
        }
        let frame_len = info.frameLength as usize;
        if frame_len == 0 {
            return Err(Error::Encode("FDK reported a 0 frame length".into()));
        }
        Ok(AacEncoder {
            enc,
            channels,
            rate,
            bitrate,
            asc: Bytes::copy_from_slice(&info.confBuf[..conf_len]),
            delay: info.nDelay,
            frame_len,
            out: vec![0; (info.maxOutBufBytes as usize).max(8192)],
        })
    }

    /// The AudioSpecificConfig of the output.
    pub fn asc(&self) -> Bytes {
        self.asc.clone()
    }

    /// Samples per channel per access unit (1024).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// FDK's `nDelay`: samples between an input sample and the same sample
    /// in the decoded output, the encoder's lookahead and the decoder's
    /// MDCT overlap together.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    /// Encodes `pcm` (interleaved, normally exactly one frame), appending
    /// the access units FDK hands back (it holds some input back for its
    /// lookahead, so the first calls may give none).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), Error> {
        let mut at = 0;
        // FDK consumes what fits its internal buffer and emits at most one
        // unit per call; bound the loop anyway.
        for _ in 0..8 {
            let info = self
                .enc
                .encode(&pcm[at..], &mut self.out)
                .map_err(|e| Error::Encode(format!("AAC: {e}")))?;
            at += info.input_consumed.min(pcm.len() - at);
            if info.output_size > 0 {
                let n = info.output_size.min(self.out.len());
                out.push(Bytes::copy_from_slice(&self.out[..n]));
            }
            if at == pcm.len() || (info.input_consumed == 0 && info.output_size == 0) {
                break;
            }
        }
        Ok(())
    }

    /// Starts over (a resync): a fresh encoder, so no old audio comes out
    /// of its lookahead buffer into the new segment.
    pub fn reset(&mut self) -> Result<(), Error> {
        self.enc = open_encoder(self.channels, self.rate, self.bitrate)?;
        Ok(())
    }
}
