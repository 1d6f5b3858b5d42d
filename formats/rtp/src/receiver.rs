//! One received track, assembled: RTP datagrams in (any order, from UDP
//! or a TCP interleaved channel), frames out, through a [`Reorder`] buffer
//! and a [`Depacketizer`], with the [`Reception`] statistics its receiver
//! reports need. RTCP for the track goes to
//! [`TrackReceiver::sender_report`]; the SR's mapping, with an
//! [`crate::AvSync`] over the session's tracks, lines tracks up.

use bytes::Bytes;
use rill_ts::Frame;

use crate::depacketize::{Depacketizer, Limits, TrackParams};
use crate::error::Error;
use crate::packet::{RtcpPacket, RtpPacket, SenderReport};
use crate::reception::Reception;
use crate::reorder::{Out, Reorder};

/// How a [`TrackReceiver`] waits for reordered packets, and its frame
/// limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Packets held while waiting for a missing one (default 64; 1 for
    /// TCP, where nothing is reordered).
    pub reorder_window: usize,
    /// Longest wait for a missing packet, µs (default 50 ms).
    pub reorder_timeout_us: u64,
    /// The depacketizer's limits.
    pub limits: Limits,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            reorder_window: 64,
            reorder_timeout_us: 50_000,
            limits: Limits::default(),
        }
    }
}

/// A received track (see the module docs).
#[derive(Debug)]
pub struct TrackReceiver {
    reorder: Reorder<Bytes>,
    depack: Depacketizer,
    reception: Option<Reception>,
    rate: u32,
    ready: Vec<Out<Bytes>>,
    /// Datagrams that were not RTP or not of this track's payload type.
    pub ignored: u64,
    payload_type: Option<u8>,
}

impl TrackReceiver {
    /// A receiver for a track (its SDP's [`crate::SdpTrack::params`]);
    /// `payload_type`, when given, filters the datagrams taken.
    pub fn new(
        params: &TrackParams,
        payload_type: Option<u8>,
        config: ReceiverConfig,
    ) -> Result<TrackReceiver, Error> {
        Ok(TrackReceiver {
            reorder: Reorder::new(config.reorder_window, config.reorder_timeout_us),
            depack: Depacketizer::new(params, config.limits)?,
            reception: None,
            rate: params.clock_rate.max(1),
            ready: Vec::new(),
            ignored: 0,
            payload_type,
        })
    }

    /// An RTP datagram arrived at `now_us`; complete frames go to `out`.
    /// An error is about this datagram (it was dropped, or a packet given
    /// out with it was).
    pub fn rtp(&mut self, now_us: u64, datagram: Bytes, out: &mut Vec<Frame>) -> Result<(), Error> {
        let p = match RtpPacket::parse(&datagram) {
            Ok(p) => p,
            Err(e) => {
                self.ignored += 1;
                return Err(e);
            }
        };
        if self
            .payload_type
            .is_some_and(|pt| pt != p.header.payload_type)
        {
            self.ignored += 1;
            return Err(Error::Malformed("RTP payload type of another track"));
        }
        let r = self
            .reception
            .get_or_insert_with(|| Reception::new(p.header.ssrc));
        r.packet(p.header.seq, p.header.timestamp, now_us, self.rate);
        let seq = p.header.seq;
        self.reorder.push(now_us, seq, datagram, &mut self.ready);
        self.drain(out)
    }

    /// Gives up on missing packets that waited too long.
    pub fn poll(&mut self, now_us: u64, out: &mut Vec<Frame>) -> Result<(), Error> {
        self.reorder.poll(now_us, &mut self.ready);
        self.drain(out)
    }

    /// When [`TrackReceiver::poll`] has something to do, if anything is
    /// held.
    pub fn deadline(&self) -> Option<u64> {
        self.reorder.deadline()
    }

    /// Everything held goes out (the end of the stream).
    pub fn flush(&mut self, out: &mut Vec<Frame>) -> Result<(), Error> {
        self.reorder.flush(&mut self.ready);
        let r = self.drain(out);
        self.depack.flush(out);
        r
    }

    fn drain(&mut self, out: &mut Vec<Frame>) -> Result<(), Error> {
        let mut result = Ok(());
        for o in self.ready.drain(..) {
            if let Out::Packet(_, d) = o {
                // It parsed on the way in.
                if let Ok(p) = RtpPacket::parse(&d) {
                    if let Err(e) = self.depack.push(&p, out) {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// The sender's report arrived at `now_us` (for the receiver report's
    /// LSR/DLSR).
    pub fn sender_report(&mut self, sr: &SenderReport, now_us: u64) {
        if let Some(r) = &mut self.reception {
            r.sender_report(sr.ntp, now_us);
        }
    }

    /// A receiver report from `own_ssrc` about this track's source, once
    /// a packet came.
    pub fn receiver_report(&mut self, own_ssrc: u32, now_us: u64) -> Option<RtcpPacket> {
        let block = self.reception.as_mut()?.report(now_us);
        Some(RtcpPacket::ReceiverReport {
            ssrc: own_ssrc,
            reports: vec![block],
        })
    }

    /// The source's SSRC, once a packet came.
    pub fn ssrc(&self) -> Option<u32> {
        self.reception.map(|r| r.ssrc)
    }

    /// The depacketizer (its clock, for A/V sync; its counters).
    pub fn depacketizer(&self) -> &Depacketizer {
        &self.depack
    }

    /// The depacketizer, to set its clock's `base_us`.
    pub fn depacketizer_mut(&mut self) -> &mut Depacketizer {
        &mut self.depack
    }

    /// The reorder buffer's counters.
    pub fn reorder_stats(&self) -> crate::reorder::ReorderStats {
        self.reorder.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::depacketize::AacLayout;
    use crate::packetize::{Packetizer, Stamp};
    use rill_abi::{RILL_CODEC_H264, RILL_FRAME_KEY};
    use rill_ts::fuzzing::seeds;

    #[test]
    fn reordered_lossy_udp_to_frames_and_reports() {
        let codec = RILL_CODEC_H264;
        let config = seeds::video_config(codec);
        let mut p = Packetizer::new(codec, Some(&config), 1200).unwrap();
        let mut s = Stamp::new(0xABCD, 96, 65_500, 7);
        let mut dgrams = Vec::new();
        for i in 0..8 {
            let key = i % 4 == 0;
            let f = Frame {
                track: 0,
                codec,
                flags: if key { RILL_FRAME_KEY } else { 0 },
                pts: i * 40_000,
                dts: i * 40_000,
                payload: seeds::video_au(codec, key, if key { 5000 } else { 900 }, false, &[3]),
            };
            let pk = p.packetize(&f).unwrap();
            for j in 0..pk.len() {
                let mut d = Vec::new();
                s.write(&pk, j, &mut d);
                dgrams.push(Bytes::from(d));
            }
        }
        // Swap two; lose frame 6 (one packet).
        dgrams.swap(2, 3);
        let lost_at = dgrams.len() - 2;
        dgrams.remove(lost_at);
        let params = TrackParams {
            track: 0,
            codec,
            clock_rate: 90_000,
            config: Some(config),
            aac: AacLayout::default(),
        };
        let mut r = TrackReceiver::new(&params, Some(96), ReceiverConfig::default()).unwrap();
        let mut frames = Vec::new();
        for (i, d) in dgrams.into_iter().enumerate() {
            let _ = r.rtp(i as u64 * 1000, d, &mut frames);
        }
        r.poll(1_000_000, &mut frames).unwrap();
        let _ = r.flush(&mut frames);
        let pics: Vec<i64> = frames
            .iter()
            .filter(|f| !f.is_config())
            .map(|f| f.pts)
            .collect();
        // Frames 0-5 whole; the loss hits frame 6 (dropped) and 7 waits
        // for a key frame.
        assert_eq!(pics, (0..6).map(|i| i * 40_000).collect::<Vec<_>>());
        assert_eq!(r.reorder_stats().reordered, 1);
        assert_eq!(r.ssrc(), Some(0xABCD));
        let Some(RtcpPacket::ReceiverReport { ssrc, reports }) = r.receiver_report(1, 2_000_000)
        else {
            panic!("a report")
        };
        assert_eq!(ssrc, 1);
        assert_eq!(reports[0].cumulative_lost, 1);
        assert_eq!(reports[0].ssrc, 0xABCD);
        // Another payload type is not this track's.
        let mut other = crate::packet::RtpHeader {
            payload_type: 97,
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        other.push(1);
        assert!(r.rtp(0, Bytes::from(other), &mut frames).is_err());
        assert_eq!(r.ignored, 1);
    }
}
