//! Opus through libopus (the `opus` crate), always at 48 kHz with 20 ms
//! frames.
//!
//! `opus::Encoder` and `opus::Decoder` are `Send` (libopus states may move
//! between threads; only concurrent use is forbidden) but not `Sync`; the
//! bridges use them only through `&mut self`, so a bridge is `Send`, and a
//! `Mutex` around it is `Sync`. No `unsafe` needed here.

use ::opus::{Application, Bitrate, Channels};
use bytes::Bytes;

use crate::{Error, OUTPUT_RATE};

/// Samples per channel in a 20 ms Opus frame at 48 kHz.
pub const OPUS_FRAME: usize = 960;
/// The most samples per channel one Opus packet decodes to (120 ms).
const MAX_PACKET_SAMPLES: usize = 5760;
/// libopus's recommended output buffer size for one packet.
const MAX_PACKET_BYTES: usize = 4000;

fn channels(n: u8) -> Channels {
    if n == 1 {
        Channels::Mono
    } else {
        Channels::Stereo
    }
}

/// An Opus decoder at 48 kHz.
#[derive(Debug)]
pub struct OpusDecoder {
    dec: ::opus::Decoder,
    channels: usize,
    pcm: Vec<i16>,
}

impl OpusDecoder {
    /// A decoder giving `ch` (1 or 2) channels: libopus converts packets
    /// coded with the other count itself.
    pub fn new(ch: u8) -> Result<Self, Error> {
        let dec = ::opus::Decoder::new(OUTPUT_RATE, channels(ch))
            .map_err(|e| Error::Decode(format!("Opus decoder setup: {e}")))?;
        Ok(OpusDecoder {
            dec,
            channels: ch as usize,
            pcm: vec![0; MAX_PACKET_SAMPLES * ch as usize],
        })
    }

    /// Decodes one packet to interleaved 48 kHz samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16], Error> {
        // Check the packet's declared length first: libopus would refuse an
        // over-long one too, but this gives a clearer message.
        let n = ::opus::packet::get_nb_samples(packet, OUTPUT_RATE)
            .map_err(|e| Error::Decode(format!("Opus packet: {e}")))?;
        if n == 0 || n > MAX_PACKET_SAMPLES {
            return Err(Error::Decode(format!("Opus packet of {n} samples")));
        }
        let got = self
            .dec
            .decode(packet, &mut self.pcm, false)
            .map_err(|e| Error::Decode(format!("Opus: {e}")))?;
        Ok(&self.pcm[..(got * self.channels).min(self.pcm.len())])
    }
}

/// An Opus encoder at 48 kHz producing 20 ms packets.
#[derive(Debug)]
pub struct OpusEncoder {
    enc: ::opus::Encoder,
    lookahead: u32,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder for `ch` (1 or 2) channels at `bitrate` bit/s.
    pub fn new(ch: u8, bitrate: u32) -> Result<Self, Error> {
        let mut enc = ::opus::Encoder::new(OUTPUT_RATE, channels(ch), Application::Audio)
            .map_err(|e| Error::Encode(format!("Opus encoder setup: {e}")))?;
        let bits = i32::try_from(bitrate)
            .map_err(|_| Error::Encode(format!("Opus bitrate {bitrate} out of range")))?;
        enc.set_bitrate(Bitrate::Bits(bits))
            .map_err(|e| Error::Encode(format!("Opus bitrate {bitrate}: {e}")))?;
        let lookahead = enc
            .get_lookahead()
            .map_err(|e| Error::Encode(format!("Opus lookahead: {e}")))?;
        Ok(OpusEncoder {
            enc,
            lookahead: u32::try_from(lookahead).unwrap_or(0),
            out: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The encoder's lookahead in 48 kHz samples (312 for libopus's
    /// "audio" application): the `OpusHead` pre-skip, and the delay between
    /// an input sample and the same sample in the decoded output.
    pub fn lookahead(&self) -> u32 {
        self.lookahead
    }

    /// Encodes exactly one 20 ms frame (interleaved).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<Bytes>) -> Result<(), Error> {
        let n = self
            .enc
            .encode(pcm, &mut self.out)
            .map_err(|e| Error::Encode(format!("Opus: {e}")))?;
        out.push(Bytes::copy_from_slice(&self.out[..n.min(self.out.len())]));
        Ok(())
    }

    /// Starts over (a resync).
    pub fn reset(&mut self) -> Result<(), Error> {
        self.enc
            .reset_state()
            .map_err(|e| Error::Encode(format!("Opus reset: {e}")))
    }
}
