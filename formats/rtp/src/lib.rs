//! RTP for Rill's plugins (RTSP now, WebRTC later): RTP and RTCP packets,
//! packetizers and depacketizers between the host's frames and RTP
//! payloads for H.264, H.265, AAC, Opus and G.711, a reorder buffer for
//! UDP ingest, RTP clocks and sender-report A/V sync, and SDP. All
//! sans-IO: packets and frames in, packets and frames out, time as an
//! input, no sockets, no `unsafe`.
//!
//! Frames follow the host's model ([`Frame`] is `rill_ts::Frame`): video
//! payloads are 4-byte length-prefixed NAL units with the avcC / hvcC
//! record as a separate config frame; AAC is raw with its
//! AudioSpecificConfig as config; Opus packets with an OpusHead as config;
//! G.711 raw samples; times in microseconds. RTP carries NAL units without
//! lengths or start codes and its parameter sets in-band or in the SDP:
//! both directions convert at this edge.
//!
//! # Modules
//!
//! - [`packet`]: RTP header and packet, RTCP compound packets (SR, RR,
//!   SDES CNAME, BYE).
//! - [`packetize`]: frames → [`Packets`] (payloads built once per frame,
//!   shared by all players) and a per-player [`Stamp`] for the headers
//!   (and its sender reports).
//! - [`depacketize`]: packets → frames, with loss handling and [`Limits`].
//! - [`reorder`]: the UDP reorder buffer.
//! - [`receiver`]: a received track assembled: reorder buffer,
//!   depacketizer and reception statistics behind one call per datagram.
//! - [`reception`]: a receiver's statistics of a source, for its RTCP
//!   receiver reports (loss, jitter, last SR).
//! - [`clock`]: µs ↔ RTP ticks, 32-bit unwrapping, NTP, [`AvSync`].
//! - [`sdp`]: [`Sdp`] written from tracks and read from ANNOUNCE/DESCRIBE.
//! - [`fanout`]: a stream's packetizers shared by its players through the
//!   host's per-frame cache.
//! - [`publish`]: depacketized frames written to a host publisher.
//!
//! # Limits
//!
//! Everything read is bounded: RTCP compounds to
//! [`packet::MAX_RTCP_PACKETS`] packets (and the format's 31 blocks,
//! chunks, sources), frames to [`Limits::max_frame_size`] (8 MiB) and
//! [`Limits::max_nals`] (1024), parameter sets to 32 of each kind, AAC to
//! 64 access units a packet, the reorder window to
//! [`reorder::MAX_WINDOW`] packets, SDP to [`sdp::MAX_SDP_LEN`] bytes and
//! [`sdp::MAX_TRACKS`] media. Nothing in the input can make this crate
//! panic or grow without bound (checked by the fuzz targets in `fuzz/`,
//! whose bodies are [`fuzzing`], run over a corpus by
//! `tests/fuzz_smoke.rs`).
//!
//! # Use
//!
//! An RTSP player: the frame's packets are built once, each player stamps
//! its own headers.
//!
//! ```
//! use rill_abi::RILL_CODEC_H264;
//! use rill_rtp::{Packetizer, Sdp, SdpTrack, Stamp, DEFAULT_MAX_PAYLOAD};
//! # let record = rill_ts::fuzzing::seeds::video_config(RILL_CODEC_H264);
//! # let frames: Vec<rill_rtp::Frame> = Vec::new();
//! let track = SdpTrack::from_config(RILL_CODEC_H264, Some(&record), 0)?;
//! let describe = Sdp { name: "live/cam".into(), control: Some("*".into()), tracks: vec![track] }
//!     .write("192.0.2.1");
//! let mut packetizer = Packetizer::new(RILL_CODEC_H264, Some(&record), DEFAULT_MAX_PAYLOAD)?;
//! let mut players = vec![Stamp::new(0x1234_5678, 96, 1000, 0xCAFE_0000)];
//! for frame in &frames {
//!     let packets = packetizer.packetize(frame)?; // once per frame
//!     for player in &mut players {
//!         for i in 0..packets.len() {
//!             let header = player.header(&packets, i); // 12 bytes per player
//!             let payload = packets.payload(i); // shared, no copy
//! #           drop((header, payload));
//!         }
//!     }
//! }
//! # Ok::<(), rill_rtp::Error>(())
//! ```
//!
//! An RTSP publisher over UDP (ANNOUNCE's SDP, then RTP datagrams):
//!
//! ```
//! use rill_rtp::{Depacketizer, Limits, Out, Reorder, RtpPacket, Sdp};
//! # let announce = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
//! # let datagrams: Vec<(u64, Vec<u8>)> = Vec::new();
//! let sdp = Sdp::parse(announce)?;
//! let mut depack = Depacketizer::new(&sdp.tracks[0].params(0), Limits::default())?;
//! let mut reorder = Reorder::new(64, 100_000);
//! let (mut ready, mut frames) = (Vec::new(), Vec::new());
//! for (now_us, datagram) in datagrams {
//!     let Ok(p) = RtpPacket::parse(&datagram) else { continue };
//!     reorder.push(now_us, p.header.seq, datagram.clone(), &mut ready);
//!     for out in ready.drain(..) {
//!         if let Out::Packet(_, d) = out {
//!             if let Ok(p) = RtpPacket::parse(&d) {
//!                 let _ = depack.push(&p, &mut frames); // errors: count, go on
//!             }
//!         }
//!     }
//!     for frame in frames.drain(..) { /* publish */ }
//! }
//! # Ok::<(), rill_rtp::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod av1;
pub mod clock;
pub mod depacketize;
pub mod error;
pub mod fanout;
#[doc(hidden)]
pub mod fuzzing;
pub mod packet;
pub mod packetize;
pub mod publish;
pub mod receiver;
pub mod reception;
pub mod reorder;
pub mod sdp;
mod vp8;
mod vp9;

pub use clock::{AvSync, TrackClock, Unwrapper, WallMap};
pub use depacketize::{AacLayout, Depacketizer, DepacketizerStats, Limits, TrackParams};
pub use error::Error;
pub use fanout::{interleaved_packets, renumber_interleaved, SharedPacketizers, TrackStamp};
pub use packet::{
    is_rtcp, parse_rtcp, write_rtcp, ReportBlock, RtcpPacket, RtpHeader, RtpPacket, SdesChunk,
    SenderReport,
};
pub use packetize::{Packetizer, Packets, Stamp, DEFAULT_MAX_PAYLOAD};
pub use receiver::{ReceiverConfig, TrackReceiver};
pub use reception::Reception;
pub use reorder::{Out, Reorder};
pub use rill_ts::Frame;
pub use sdp::{Sdp, SdpTrack};
