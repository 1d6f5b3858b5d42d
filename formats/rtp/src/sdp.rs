//! SDP (RFC 8866) for RTSP's DESCRIBE and ANNOUNCE: written from the
//! host's tracks (codec + decoder configuration), and read back into
//! tracks from what ffmpeg, GStreamer and cameras send.
//!
//! A small bounded reader of its own rather than the `sdp-types` crate:
//! that one keeps every line of any count (no limit on media or
//! attributes) and refuses a whole description for one field it finds
//! malformed (an `o=` or `t=` line some cameras get wrong), while all that
//! is needed here is m=, a=rtpmap, a=fmtp and a=control, leniently, within
//! [`MAX_SDP_LEN`] bytes and [`MAX_TRACKS`] media.
//!
//! Written per track, as ffmpeg writes them:
//! - H.264: `H264/90000`, `packetization-mode=1;profile-level-id=…;
//!   sprop-parameter-sets=<SPS>,<PPS>` (base64).
//! - H.265: `H265/90000`, `sprop-vps=…;sprop-sps=…;sprop-pps=…`.
//! - AAC: `MPEG4-GENERIC/<rate>/<channels>`, `streamtype=5;
//!   profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;
//!   indexdeltalength=3;config=<AudioSpecificConfig in hex>`.
//! - Opus: `opus/48000/2` (`sprop-stereo=1` for stereo). PCMA / PCMU:
//!   static payload types 8 and 0.
//! - `a=control:trackID=<index>` per track, `a=control:*` for the session.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use rill_abi::{
    RILL_CODEC_AAC, RILL_CODEC_H264, RILL_CODEC_H265, RILL_CODEC_OPUS, RILL_CODEC_PCMA,
    RILL_CODEC_PCMU,
};
use rill_ts::audio::{opus_channel_code, opus_head_for_code, AacConfig};
use rill_ts::nal::{
    build_avc_record, build_hevc_record, parse_avc_record, parse_hevc_record, NalKind, VideoCodec,
};

use crate::depacketize::{AacLayout, TrackParams};
use crate::error::Error;
use crate::packetize::clock_rate;

/// Largest SDP read.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Most media (m= sections) read.
pub const MAX_TRACKS: usize = 16;
/// Most parameter sets read from one fmtp parameter.
const MAX_SPROP: usize = 16;

/// One media of an SDP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdpTrack {
    /// `video`, `audio`, `application`, ...
    pub media: String,
    /// Codec (`RILL_CODEC_*`), 0 when not one this crate carries.
    pub codec: u32,
    /// The encoding name of the rtpmap (`H264`, `MPEG4-GENERIC`, ...).
    pub encoding: String,
    /// Payload type.
    pub payload_type: u8,
    /// The m= line's port (0 in RTSP, where SETUP negotiates it).
    pub port: u16,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (from the rtpmap; 0 when not given).
    pub channels: u8,
    /// Decoder configuration: avcC/hvcC record built from the sprop
    /// parameter sets, AudioSpecificConfig, OpusHead. None when the SDP
    /// has none (video may bring it in-band).
    pub config: Option<Bytes>,
    /// AAC AU header layout.
    pub aac: AacLayout,
    /// The `a=control` value (relative or absolute URL), empty without.
    pub control: String,
    /// The fmtp parameters as given (after the payload type).
    pub fmtp: String,
}

impl SdpTrack {
    /// What a [`crate::Depacketizer`] needs, for host track `track`.
    pub fn params(&self, track: u32) -> TrackParams {
        TrackParams {
            track,
            codec: self.codec,
            clock_rate: self.clock_rate,
            config: self.config.clone(),
            aac: self.aac,
        }
    }

    /// The SDP track of a host track: codec, decoder configuration (may be
    /// None until known, except for AAC, which needs it for its clock
    /// rate) and index (payload type 96 + index for dynamic ones, control
    /// `trackID=<index>`).
    pub fn from_config(codec: u32, config: Option<&[u8]>, index: usize) -> Result<SdpTrack, Error> {
        let pt = 96 + (index.min(31) as u8);
        let control = format!("trackID={index}");
        let b64 = |n: &[u8]| STANDARD.encode(n);
        let mut t = SdpTrack {
            media: "audio".into(),
            codec,
            payload_type: pt,
            clock_rate: clock_rate(codec, config),
            control,
            config: config.map(Bytes::copy_from_slice),
            ..SdpTrack::default()
        };
        match codec {
            RILL_CODEC_H264 => {
                t.media = "video".into();
                t.encoding = "H264".into();
                let mut fmtp = String::from("packetization-mode=1");
                if let Some(c) = config {
                    let sets = parse_avc_record(c)?;
                    let sps: Vec<&Bytes> = sets
                        .nals
                        .iter()
                        .filter(|n| VideoCodec::H264.kind(n) == NalKind::Sps)
                        .collect();
                    let pps: Vec<&Bytes> = sets
                        .nals
                        .iter()
                        .filter(|n| VideoCodec::H264.kind(n) == NalKind::Pps)
                        .collect();
                    if let Some(s) = sps.first().filter(|s| s.len() >= 4) {
                        fmtp.push_str(&format!(
                            ";profile-level-id={:02X}{:02X}{:02X}",
                            s[1], s[2], s[3]
                        ));
                    }
                    let all: Vec<String> = sps.iter().chain(&pps).map(|n| b64(&n[..])).collect();
                    if !all.is_empty() {
                        fmtp.push_str(";sprop-parameter-sets=");
                        fmtp.push_str(&all.join(","));
                    }
                }
                t.fmtp = fmtp;
            }
            RILL_CODEC_H265 => {
                t.media = "video".into();
                t.encoding = "H265".into();
                let mut parts = Vec::new();
                if let Some(c) = config {
                    let sets = parse_hevc_record(c)?;
                    for (kind, name) in [
                        (NalKind::Vps, "sprop-vps"),
                        (NalKind::Sps, "sprop-sps"),
                        (NalKind::Pps, "sprop-pps"),
                    ] {
                        let v: Vec<String> = sets
                            .nals
                            .iter()
                            .filter(|n| VideoCodec::H265.kind(n) == kind)
                            .map(|n| b64(&n[..]))
                            .collect();
                        if !v.is_empty() {
                            parts.push(format!("{name}={}", v.join(",")));
                        }
                    }
                }
                t.fmtp = parts.join(";");
            }
            RILL_CODEC_AAC => {
                let c = config.ok_or(Error::MissingConfig("AAC without AudioSpecificConfig"))?;
                let aac = AacConfig::parse(c)?;
                t.encoding = "MPEG4-GENERIC".into();
                t.channels = aac.channels.max(1);
                let hex: String = c.iter().map(|b| format!("{b:02X}")).collect();
                t.fmtp = format!(
                    "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={hex}"
                );
            }
            RILL_CODEC_OPUS => {
                t.encoding = "opus".into();
                t.channels = 2;
                let stereo = opus_channel_code(config) != 1;
                t.fmtp = if stereo {
                    "sprop-stereo=1".into()
                } else {
                    "sprop-stereo=0".into()
                };
                if t.config.is_none() {
                    t.config = opus_head_for_code(2);
                }
            }
            RILL_CODEC_PCMA | RILL_CODEC_PCMU => {
                t.encoding = if codec == RILL_CODEC_PCMA {
                    "PCMA"
                } else {
                    "PCMU"
                }
                .into();
                t.payload_type = if codec == RILL_CODEC_PCMA { 8 } else { 0 };
                t.channels = 1;
            }
            _ => return Err(Error::Unsupported("codec over RTP")),
        }
        Ok(t)
    }
}

/// A session description: its name, session-level control and tracks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdp {
    /// The `s=` line.
    pub name: String,
    /// Session-level `a=control`, if any.
    pub control: Option<String>,
    /// The media, in order.
    pub tracks: Vec<SdpTrack>,
}

impl Sdp {
    /// Writes the description (CRLF line ends). `origin` is the server's
    /// address for `o=` (e.g. `127.0.0.1`); IPv6 if it contains ':'.
    pub fn write(&self, origin: &str) -> String {
        let ip = if origin.contains(':') { "IP6" } else { "IP4" };
        let any = if ip == "IP6" { "::" } else { "0.0.0.0" };
        let mut s = String::with_capacity(512);
        let clean = |v: &str| v.replace(['\r', '\n'], " ");
        s.push_str("v=0\r\n");
        s.push_str(&format!("o=- 0 0 IN {ip} {}\r\n", clean(origin)));
        let name = if self.name.is_empty() {
            "Rill"
        } else {
            &self.name
        };
        s.push_str(&format!("s={}\r\n", clean(name)));
        s.push_str(&format!("c=IN {ip} {any}\r\n"));
        s.push_str("t=0 0\r\n");
        s.push_str("a=tool:rill\r\n");
        if let Some(c) = &self.control {
            s.push_str(&format!("a=control:{}\r\n", clean(c)));
        }
        for t in &self.tracks {
            let media = if t.media.is_empty() {
                "application"
            } else {
                &t.media
            };
            s.push_str(&format!(
                "m={} {} RTP/AVP {}\r\n",
                clean(media),
                t.port,
                t.payload_type & 0x7F
            ));
            if !t.encoding.is_empty() {
                s.push_str(&format!(
                    "a=rtpmap:{} {}/{}",
                    t.payload_type & 0x7F,
                    clean(&t.encoding),
                    t.clock_rate
                ));
                if t.channels > 0 {
                    s.push_str(&format!("/{}", t.channels));
                }
                s.push_str("\r\n");
            }
            if !t.fmtp.is_empty() {
                s.push_str(&format!(
                    "a=fmtp:{} {}\r\n",
                    t.payload_type & 0x7F,
                    clean(&t.fmtp)
                ));
            }
            if !t.control.is_empty() {
                s.push_str(&format!("a=control:{}\r\n", clean(&t.control)));
            }
        }
        s
    }

    /// Reads a description. Media of codecs this crate does not carry are
    /// kept with codec 0; parameter sets or configs that do not decode are
    /// left out (config None), not an error.
    pub fn parse(data: &[u8]) -> Result<Sdp, Error> {
        if data.len() > MAX_SDP_LEN {
            return Err(Error::TooLarge {
                len: data.len(),
                max: MAX_SDP_LEN,
            });
        }
        let text = String::from_utf8_lossy(data);
        let mut sdp = Sdp::default();
        let mut saw_version = false;
        // Per media: the raw rtpmaps and fmtps by payload type.
        let mut cur: Option<Media> = None;
        for line in text.lines() {
            let line = line.trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "v" => saw_version = true,
                "s" if cur.is_none() => sdp.name = value.chars().take(256).collect(),
                "m" => {
                    if let Some(m) = cur.take() {
                        sdp.tracks.push(m.finish());
                    }
                    if sdp.tracks.len() >= MAX_TRACKS {
                        return Err(Error::TooMany("media in the SDP"));
                    }
                    cur = Some(Media::parse(value)?);
                }
                "a" => {
                    let (name, v) = value.split_once(':').unwrap_or((value, ""));
                    match &mut cur {
                        None => {
                            if name == "control" {
                                sdp.control = Some(v.trim().chars().take(1024).collect());
                            }
                        }
                        Some(m) => m.attribute(name, v.trim()),
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = cur.take() {
            sdp.tracks.push(m.finish());
        }
        if !saw_version {
            return Err(Error::Malformed("SDP without v= line"));
        }
        Ok(sdp)
    }
}

/// Most payload types of one m= line looked at.
const MAX_FORMATS: usize = 16;

struct Media {
    media: String,
    port: u16,
    formats: Vec<u8>,
    rtpmaps: Vec<(u8, String)>,
    fmtps: Vec<(u8, String)>,
    control: String,
}

impl Media {
    fn parse(value: &str) -> Result<Media, Error> {
        let mut f = value.split_ascii_whitespace();
        let media = f.next().ok_or(Error::Malformed("SDP m= line"))?;
        let port = f.next().ok_or(Error::Malformed("SDP m= port"))?;
        // `port/count`; a port that does not parse is taken as 0.
        let port = port.split('/').next().unwrap_or("").parse().unwrap_or(0);
        f.next().ok_or(Error::Malformed("SDP m= protocol"))?;
        let formats: Vec<u8> = f
            .take(MAX_FORMATS)
            .filter_map(|p| p.parse::<u8>().ok().filter(|&p| p < 128))
            .collect();
        Ok(Media {
            media: media.chars().take(32).collect(),
            port,
            formats,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            control: String::new(),
        })
    }

    fn attribute(&mut self, name: &str, v: &str) {
        let by_pt = |v: &str| -> Option<(u8, String)> {
            let (pt, rest) = v.split_once(' ').unwrap_or((v, ""));
            let pt = pt.trim().parse::<u8>().ok()?;
            Some((pt, rest.trim().chars().take(4096).collect()))
        };
        match name {
            "rtpmap" if self.rtpmaps.len() < MAX_FORMATS => {
                if let Some(x) = by_pt(v) {
                    self.rtpmaps.push(x);
                }
            }
            "fmtp" if self.fmtps.len() < MAX_FORMATS => {
                if let Some(x) = by_pt(v) {
                    self.fmtps.push(x);
                }
            }
            "control" => self.control = v.chars().take(1024).collect(),
            _ => {}
        }
    }

    fn track(&self, pt: u8) -> SdpTrack {
        let rtpmap = self.rtpmaps.iter().find(|(p, _)| *p == pt).map(|(_, s)| s);
        let fmtp = self
            .fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let (encoding, rate, channels) = match rtpmap {
            Some(m) => {
                let mut it = m.split('/');
                let enc = it.next().unwrap_or("").trim().to_string();
                let rate = it.next().and_then(|r| r.trim().parse().ok()).unwrap_or(0);
                let ch = it.next().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
                (enc, rate, ch)
            }
            None => match pt {
                0 => ("PCMU".into(), 8000, 1),
                8 => ("PCMA".into(), 8000, 1),
                _ => (String::new(), 0, 0),
            },
        };
        let params: Vec<(String, &str)> = fmtp
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_ascii_lowercase(), v.trim()))
            })
            .take(32)
            .collect();
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        let mut t = SdpTrack {
            media: self.media.clone(),
            payload_type: pt,
            port: self.port,
            clock_rate: rate,
            channels,
            control: self.control.clone(),
            ..SdpTrack::default()
        };
        match encoding.to_ascii_uppercase().as_str() {
            "H264" => {
                t.codec = RILL_CODEC_H264;
                let nals = param("sprop-parameter-sets").map_or(Vec::new(), sprops);
                let kind = |k| {
                    nals.iter()
                        .filter(|n| VideoCodec::H264.kind(n) == k)
                        .map(|n| &n[..])
                        .collect::<Vec<_>>()
                };
                t.config = build_avc_record(&kind(NalKind::Sps), &kind(NalKind::Pps)).ok();
            }
            "H265" | "HEVC" => {
                t.codec = RILL_CODEC_H265;
                let get = |k| param(k).map_or(Vec::new(), sprops);
                let (v, s, p) = (get("sprop-vps"), get("sprop-sps"), get("sprop-pps"));
                t.config = build_hevc_record(&refs(&v), &refs(&s), &refs(&p)).ok();
            }
            "MPEG4-GENERIC" => {
                let mode = param("mode").unwrap_or("").to_ascii_lowercase();
                if mode.starts_with("aac") || param("streamtype") == Some("5") {
                    t.codec = RILL_CODEC_AAC;
                }
                t.config = param("config").and_then(hex).map(Bytes::from);
                let num = |k: &str, d: u8| param(k).and_then(|v| v.parse().ok()).unwrap_or(d);
                t.aac = AacLayout {
                    size_length: num("sizelength", 13),
                    index_length: num("indexlength", 3),
                    index_delta_length: num("indexdeltalength", 3),
                };
            }
            "OPUS" => {
                t.codec = RILL_CODEC_OPUS;
                let stereo = param("sprop-stereo") != Some("0") && channels != 1;
                t.config = opus_head_for_code(if stereo { 2 } else { 1 });
            }
            "PCMA" => t.codec = RILL_CODEC_PCMA,
            "PCMU" => t.codec = RILL_CODEC_PCMU,
            _ => {}
        }
        t.encoding = encoding.chars().take(64).collect();
        t.fmtp = fmtp;
        t
    }

    fn finish(self) -> SdpTrack {
        // The first format this crate carries, else the first.
        for &pt in &self.formats {
            let t = self.track(pt);
            if t.codec != 0 {
                return t;
            }
        }
        self.track(self.formats.first().copied().unwrap_or(0))
    }
}

fn refs(x: &[Vec<u8>]) -> Vec<&[u8]> {
    x.iter().map(|n| &n[..]).collect()
}

/// Base64 parameter sets, comma-separated (padding optional).
fn sprops(v: &str) -> Vec<Vec<u8>> {
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    v.split(',')
        .take(MAX_SPROP)
        .filter_map(|p| engine.decode(p.trim()).ok())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Hex digits to bytes (at most 64 bytes).
fn hex(v: &str) -> Option<Vec<u8>> {
    let v = v.trim();
    if v.is_empty() || !v.len().is_multiple_of(2) || v.len() > 128 {
        return None;
    }
    (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_ts::fuzzing::seeds;

    #[test]
    fn round_trip_every_codec() {
        let h264 = seeds::video_config(RILL_CODEC_H264);
        let h265 = seeds::video_config(RILL_CODEC_H265);
        let opus = opus_head_for_code(2).unwrap();
        let tracks = vec![
            SdpTrack::from_config(RILL_CODEC_H264, Some(&h264), 0).unwrap(),
            SdpTrack::from_config(RILL_CODEC_H265, Some(&h265), 1).unwrap(),
            SdpTrack::from_config(RILL_CODEC_AAC, Some(&seeds::AAC_ASC), 2).unwrap(),
            SdpTrack::from_config(RILL_CODEC_OPUS, Some(&opus), 3).unwrap(),
            SdpTrack::from_config(RILL_CODEC_PCMA, None, 4).unwrap(),
            SdpTrack::from_config(RILL_CODEC_PCMU, None, 5).unwrap(),
        ];
        let sdp = Sdp {
            name: "live/cam".into(),
            control: Some("*".into()),
            tracks,
        };
        let text = sdp.write("127.0.0.1");
        assert!(text.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(text.contains("profile-level-id=64000A;"));
        assert!(text.contains("a=rtpmap:98 MPEG4-GENERIC/44100/2\r\n"));
        assert!(text.contains("config=1210\r\n"));
        assert!(text.contains("a=rtpmap:99 opus/48000/2\r\n"));
        assert!(text.contains("m=audio 0 RTP/AVP 8\r\n"));
        let back = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(back, sdp);
        assert_eq!(back.tracks[0].config.as_ref(), Some(&h264));
        assert_eq!(back.tracks[1].config.as_ref(), Some(&h265));
    }

    /// As ffmpeg 5.1 writes it for `-c:v libx264 -c:a aac -f rtsp`.
    const FFMPEG_RTSP: &str = "v=0\r\n\
o=- 0 0 IN IP4 127.0.0.1\r\n\
s=No Name\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:libavformat 59.27.100\r\n\
m=video 0 RTP/AVP 96\r\n\
b=AS:200\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QACqzZRHsBEAAAAwAQAAADAyDxIllg,aOvjyyLA; profile-level-id=64000A\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
b=AS:128\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\n\
a=control:streamid=1\r\n";

    #[test]
    fn parses_ffmpeg() {
        let sdp = Sdp::parse(FFMPEG_RTSP.as_bytes()).unwrap();
        assert_eq!(sdp.name, "No Name");
        assert_eq!(sdp.tracks.len(), 2);
        let v = &sdp.tracks[0];
        assert_eq!(
            (v.codec, v.payload_type, v.clock_rate),
            (RILL_CODEC_H264, 96, 90_000)
        );
        assert_eq!(v.control, "streamid=0");
        assert_eq!(
            v.config.as_ref(),
            Some(&seeds::video_config(RILL_CODEC_H264))
        );
        let a = &sdp.tracks[1];
        assert_eq!(
            (a.codec, a.clock_rate, a.channels),
            (RILL_CODEC_AAC, 44_100, 2)
        );
        assert_eq!(
            a.config.as_deref(),
            Some(&[0x12, 0x10, 0x56, 0xE5, 0x00][..])
        );
        assert_eq!(a.aac, AacLayout::default());
    }

    /// A camera's (Hikvision-style): LF line ends, absolute controls, an
    /// HEVC track, an unknown application track, G.711 without rtpmap.
    const CAMERA: &str = "v=0\n\
o=- 1109162014219182 1109162014219192 IN IP4 x.y.z.w\n\
s=Media Presentation\n\
e=NONE\n\
b=AS:5050\n\
t=0 0\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\n\
m=video 0 RTP/AVP 96\n\
b=AS:5000\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1\n\
a=rtpmap:96 H265/90000\n\
a=fmtp:96 sprop-vps=QAEMAf//BAgAAAMAnggAAAMAAB6VmAk=; sprop-sps=QgEBBAgAAAMAnggAAAMAAB6QBBBiyys1yZXgLcCAgAEAAAMAAQAAAwAZCA==; sprop-pps=RAHBcxgxCJA=\n\
a=Media_header:MEDIAINFO=494D4B48;\n\
m=audio 0 RTP/AVP 0\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2\n\
m=application 0 RTP/AVP 107\n\
a=rtpmap:107 vnd.onvif.metadata/90000\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=3\n";

    #[test]
    fn parses_a_camera() {
        let sdp = Sdp::parse(CAMERA.as_bytes()).unwrap();
        assert_eq!(
            sdp.control.as_deref(),
            Some("rtsp://192.168.1.64:554/Streaming/Channels/101/")
        );
        let codecs: Vec<u32> = sdp.tracks.iter().map(|t| t.codec).collect();
        assert_eq!(codecs, vec![RILL_CODEC_H265, RILL_CODEC_PCMU, 0]);
        assert_eq!(
            sdp.tracks[0].config.as_ref(),
            Some(&seeds::video_config(RILL_CODEC_H265))
        );
        assert_eq!(sdp.tracks[1].clock_rate, 8000);
        assert!(sdp.tracks[2].control.ends_with("trackID=3"));
        assert_eq!(sdp.tracks[2].encoding, "vnd.onvif.metadata");
    }

    /// What ffmpeg 5.1 writes with `-f rtp ... -sdp_file`: H.264 without
    /// global headers (no sprop: parameter sets come in-band) with mono
    /// AAC (a 5-byte config); HEVC with Opus; PCMA alone (static payload
    /// type, no rtpmap); H.264 with `-flags +global_header` (sprop, High
    /// 4:4:4).
    #[test]
    fn parses_ffmpeg_sdp_files() {
        let a = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nt=0 0\na=tool:libavformat LIBAVFORMAT_VERSION\nm=video 40000 RTP/AVP 96\nc=IN IP4 127.0.0.1\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\nm=audio 40002 RTP/AVP 97\nc=IN IP4 127.0.0.1\nb=AS:69\na=rtpmap:97 MPEG4-GENERIC/44100/1\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=120856E500\n";
        let s = Sdp::parse(a.as_bytes()).unwrap();
        assert_eq!(s.tracks[0].codec, RILL_CODEC_H264);
        assert_eq!(s.tracks[0].port, 40000);
        assert_eq!(s.tracks[0].config, None);
        let aac = &s.tracks[1];
        assert_eq!(
            (aac.codec, aac.clock_rate, aac.channels),
            (RILL_CODEC_AAC, 44_100, 1)
        );
        let asc = aac.config.clone().unwrap();
        assert_eq!(AacConfig::parse(&asc).unwrap().channels, 1);

        let b = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nt=0 0\na=tool:libavformat LIBAVFORMAT_VERSION\nm=video 40000 RTP/AVP 96\nc=IN IP4 127.0.0.1\na=rtpmap:96 H265/90000\nm=audio 40002 RTP/AVP 97\nc=IN IP4 127.0.0.1\nb=AS:64\na=rtpmap:97 opus/48000/2\n";
        let s = Sdp::parse(b.as_bytes()).unwrap();
        assert_eq!(s.tracks[0].codec, RILL_CODEC_H265);
        assert_eq!(s.tracks[0].config, None);
        assert_eq!(s.tracks[1].codec, RILL_CODEC_OPUS);
        assert_eq!(s.tracks[1].config, opus_head_for_code(2));

        let c = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\na=tool:libavformat LIBAVFORMAT_VERSION\nm=audio 40002 RTP/AVP 8\nb=AS:64\n";
        let s = Sdp::parse(c.as_bytes()).unwrap();
        let t = &s.tracks[0];
        assert_eq!(
            (t.codec, t.payload_type, t.clock_rate),
            (RILL_CODEC_PCMA, 8, 8000)
        );

        let d = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\na=tool:libavformat LIBAVFORMAT_VERSION\nm=video 40000 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z/QACpGbKI9gIgAAAwACAAADAGQeJEss,aOvjxEhE; profile-level-id=F4000A\n";
        let s = Sdp::parse(d.as_bytes()).unwrap();
        let rec = s.tracks[0].config.clone().expect("a record from sprop");
        let sets = parse_avc_record(&rec).unwrap();
        assert_eq!(sets.nals.len(), 2);
        assert_eq!(rec[1], 0xF4);
    }

    #[test]
    fn bad_and_bounded() {
        assert!(Sdp::parse(b"").is_err());
        assert!(Sdp::parse(b"v=0\r\nm=video\r\n").is_err());
        let many = format!("v=0\n{}", "m=audio 0 RTP/AVP 0\n".repeat(MAX_TRACKS + 1));
        assert_eq!(
            Sdp::parse(many.as_bytes()),
            Err(Error::TooMany("media in the SDP"))
        );
        assert!(Sdp::parse(&vec![b'a'; MAX_SDP_LEN + 1]).is_err());
        // Broken base64 and hex: tracks without config, not an error.
        let s = Sdp::parse(
            b"v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 sprop-parameter-sets=!!,??\n\
m=audio 0 RTP/AVP 97\na=rtpmap:97 mpeg4-generic/48000/2\na=fmtp:97 mode=AAC-hbr;config=1G\n",
        )
        .unwrap();
        assert_eq!(s.tracks[0].config, None);
        assert_eq!(s.tracks[1].codec, RILL_CODEC_AAC);
        assert_eq!(s.tracks[1].config, None);
    }
}
