//! Rill's transformer plugin: derives, once per stream, the audio a player
//! can carry, and writes it back into the stream as a derived track.
//!
//! A player that cannot carry the publisher's audio codec says which codecs
//! it takes (`RillSubscribeOptions.audio_codecs`); the host then raises
//! `RILL_STREAM_CODEC_WANTED`. This plugin answers with a bridge: a
//! socket-less session that subscribes to the stream's audio as a
//! transformer (it keeps nothing alive and counts as no player), decodes it
//! and encodes the other codec, and writes it with `publish_derived`:
//! - AAC → Opus, for WebRTC viewers of RTMP, RTSP and SRT publishers;
//! - Opus → AAC, for RTMP, FLV and HLS-TS players of WHIP publishers.
//!
//! Every player that asked for the codec then gets the one derived track;
//! the work is per stream, never per viewer. A bridge stops when the
//! stream's last player leaves (`RILL_STREAM_IDLE`) or the stream ends.

use std::collections::HashMap;

use parking_lot::Mutex;
use rill_abi::sdk::{
    ConnId, Error, FrameInfo, FrameRef, Host, Plugin, Publisher, PublisherId, Result, Subscriber,
    SubscriberId, TrackInfo,
};
use rill_abi::{
    rill_log, RillSubscribeOptions, RILL_CODEC_AAC, RILL_CODEC_OPUS, RILL_END_ERROR,
    RILL_END_NORMAL, RILL_FRAME_CONFIG, RILL_FRAME_DISCONTINUITY, RILL_FRAME_KEY,
    RILL_STREAM_CODEC_WANTED, RILL_STREAM_IDLE, RILL_STREAM_UNPUBLISHED, RILL_SUBSCRIBE_NO_DATA,
    RILL_SUBSCRIBE_NO_VIDEO, RILL_SUBSCRIBE_TRANSFORM, RILL_TRACK_AUDIO,
};
use rill_audio::{AacToOpus, OpusToAac};

pub mod config;

use config::Config;

/// A bridge that fails this many frames in a row gives up.
const MAX_FAILURES: u32 = 50;

/// The converter of one bridge, by the direction of the source's codec.
enum Conv {
    ToOpus(Box<AacToOpus>),
    ToAac(Box<OpusToAac>),
}

impl Conv {
    fn codec(&self) -> u32 {
        match self {
            Conv::ToOpus(_) => RILL_CODEC_OPUS,
            Conv::ToAac(_) => RILL_CODEC_AAC,
        }
    }

    fn config(&self) -> bytes::Bytes {
        match self {
            Conv::ToOpus(c) => c.config(),
            Conv::ToAac(c) => c.config(),
        }
    }

    fn push(
        &mut self,
        pts: i64,
        data: &[u8],
        out: &mut Vec<rill_audio::Frame>,
    ) -> std::result::Result<(), rill_audio::Error> {
        match self {
            Conv::ToOpus(c) => c.push(pts, data, out),
            Conv::ToAac(c) => c.push(pts, data, out),
        }
    }
}

/// One stream's bridge (a socket-less session).
pub struct Bridge {
    path: String,
    sub: Option<Subscriber>,
    out: Option<Publisher>,
    conv: Option<Conv>,
    /// The source config the converter was built from.
    source_config: Option<bytes::Bytes>,
    /// The derived track and its codec, once declared.
    track: Option<(u32, u32)>,
    failures: u32,
    frames: Vec<rill_audio::Frame>,
}

/// What a bridge is told from outside its session.
enum Msg {
    Stop,
}

pub struct Transcode {
    host: Host,
    cfg: Config,
    /// Bridges by stream path.
    active: Mutex<HashMap<String, ConnId>>,
}

impl Transcode {
    fn start(&self, path: &str) -> Result<()> {
        let mut active = self.active.lock();
        if active.contains_key(path) {
            return Ok(());
        }
        if active.len() >= self.cfg.max_bridges {
            rill_log!(
                self.host,
                Warn,
                "{path}: not bridging audio, {} bridges already run (max_bridges)",
                active.len()
            );
            return Err(Error::BUSY);
        }
        let id = self.host.session_open(Bridge {
            path: path.to_owned(),
            sub: None,
            out: None,
            conv: None,
            source_config: None,
            track: None,
            failures: 0,
            frames: Vec::new(),
        })?;
        active.insert(path.to_owned(), id);
        Ok(())
    }

    fn stop(&self, path: &str) {
        let id = self.active.lock().get(path).copied();
        if let Some(id) = id {
            let _ = self.host.post(id, Box::new(Msg::Stop));
        }
    }

    /// Builds the converter for the source's codec and config.
    fn converter(&self, codec: u32, config: Option<&[u8]>) -> Option<Result<Conv, String>> {
        Some(match codec {
            RILL_CODEC_AAC => {
                let asc = config?;
                AacToOpus::new(asc, self.cfg.opus_bitrate)
                    .map(|c| Conv::ToOpus(Box::new(c)))
                    .map_err(|e| e.to_string())
            }
            RILL_CODEC_OPUS => OpusToAac::new(config, self.cfg.aac_bitrate)
                .map(|c| Conv::ToAac(Box::new(c)))
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "no audio bridge from {}",
                String::from_utf8_lossy(&other.to_le_bytes())
            )),
        })
    }

    fn on_source_frame(&self, b: &mut Bridge, frame: &FrameRef) -> Result<()> {
        let info = frame.info();
        if info.flags & RILL_FRAME_CONFIG != 0 {
            if b.source_config.as_deref() == Some(frame.data()) {
                return Ok(());
            }
            b.source_config = Some(bytes::Bytes::copy_from_slice(frame.data()));
            b.conv = None;
        }
        if b.conv.is_none() {
            match self.converter(info.codec, b.source_config.as_deref()) {
                // AAC needs its config first.
                None => return Ok(()),
                Some(Ok(c)) => {
                    self.declare(b, &c, info.pts)?;
                    b.conv = Some(c);
                }
                Some(Err(why)) => {
                    rill_log!(self.host, Warn, "{}: {why}", b.path);
                    return Err(Error::UNSUPPORTED);
                }
            }
        }
        if info.flags & RILL_FRAME_CONFIG != 0 {
            return Ok(());
        }
        let (Some(conv), Some((track, codec))) = (b.conv.as_mut(), b.track) else {
            return Ok(());
        };
        b.frames.clear();
        match conv.push(info.pts, frame.data(), &mut b.frames) {
            Ok(()) => b.failures = 0,
            Err(e) => {
                b.failures += 1;
                let level_warn = b.failures == 1;
                if level_warn {
                    rill_log!(self.host, Warn, "{}: audio bridge: {e}", b.path);
                }
                if b.failures >= MAX_FAILURES {
                    rill_log!(
                        self.host,
                        Warn,
                        "{}: audio bridge gave up after {MAX_FAILURES} failed frames",
                        b.path
                    );
                    return Err(Error::INVALID);
                }
                return Ok(());
            }
        }
        let Some(out) = b.out.as_ref() else {
            return Ok(());
        };
        for f in b.frames.drain(..) {
            let mut fi = FrameInfo::new();
            fi.track = track;
            fi.codec = codec;
            fi.flags = RILL_FRAME_KEY;
            if f.discontinuity {
                fi.flags |= RILL_FRAME_DISCONTINUITY;
            }
            fi.pts = f.pts_us;
            fi.dts = f.pts_us;
            let fr = self.host.frame_wrap(f.data, &fi)?;
            out.write(&fr)?;
        }
        Ok(())
    }

    /// Declares (or takes back) the derived track for `conv` and writes its
    /// config.
    fn declare(&self, b: &mut Bridge, conv: &Conv, pts: i64) -> Result<()> {
        let Some(out) = b.out.as_ref() else {
            return Err(Error::CLOSED);
        };
        let codec = conv.codec();
        let track = match b.track {
            Some((t, c)) if c == codec => t,
            _ => {
                let mut ti = TrackInfo::new();
                ti.kind = RILL_TRACK_AUDIO;
                ti.codec = codec;
                ti.sample_rate = 48_000;
                let t = out.add_track(&ti)?;
                b.track = Some((t, codec));
                t
            }
        };
        let mut fi = FrameInfo::new();
        fi.track = track;
        fi.codec = codec;
        fi.flags = RILL_FRAME_CONFIG | RILL_FRAME_KEY;
        fi.pts = pts;
        fi.dts = pts;
        let fr = self.host.frame_wrap(conv.config(), &fi)?;
        out.write(&fr)?;
        rill_log!(
            self.host,
            Info,
            "{}: bridging audio to {}",
            b.path,
            if codec == RILL_CODEC_AAC {
                "AAC"
            } else {
                "Opus"
            }
        );
        Ok(())
    }
}

impl Plugin for Transcode {
    type Session = Bridge;
    const DESCRIPTION: &'static str =
        "Transformers: AAC to Opus and Opus to AAC, once per stream, for players that need them";
    const WANTS_STREAM_EVENTS: bool = true;

    fn create(host: &Host) -> Result<Self> {
        let cfg = host.parse_config(Config::parse)?;
        Ok(Transcode {
            host: *host,
            cfg,
            active: Mutex::new(HashMap::new()),
        })
    }

    fn on_session_open(
        &self,
        b: &mut Bridge,
        conn: &rill_abi::sdk::Conn,
        _kind: u32,
    ) -> Result<()> {
        let mut opts = RillSubscribeOptions::new();
        opts.flags = RILL_SUBSCRIBE_TRANSFORM | RILL_SUBSCRIBE_NO_VIDEO | RILL_SUBSCRIBE_NO_DATA;
        opts.wait_timeout_us = -1;
        b.out = Some(conn.publish_derived(&b.path)?);
        b.sub = Some(conn.subscribe(&b.path, "", Some(&opts))?);
        Ok(())
    }

    fn on_frame(
        &self,
        b: &mut Bridge,
        conn: &rill_abi::sdk::Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        if self.on_source_frame(b, frame).is_err() {
            conn.close(RILL_END_ERROR)?;
        }
        Ok(())
    }

    fn on_publish_end(
        &self,
        _b: &mut Bridge,
        conn: &rill_abi::sdk::Conn,
        _publisher: PublisherId,
        _reason: u32,
        _why: &str,
    ) -> Result<()> {
        conn.close(RILL_END_NORMAL)
    }

    fn on_post(
        &self,
        session: Option<(&mut Bridge, &rill_abi::sdk::Conn)>,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<()> {
        if let (Some((_, conn)), Ok(m)) = (session, msg.downcast::<Msg>()) {
            match *m {
                Msg::Stop => conn.close(RILL_END_NORMAL)?,
            }
        }
        Ok(())
    }

    fn on_close(&self, b: Bridge, conn: &rill_abi::sdk::Conn, _reason: u32, why: &str) {
        let mut active = self.active.lock();
        if active.get(&b.path) == Some(&conn.id()) {
            active.remove(&b.path);
        }
        drop(active);
        rill_log!(self.host, Info, "{}: audio bridge ended ({why})", b.path);
    }

    fn on_stream_event(&self, event: u32, path: &str) -> Result<()> {
        match event {
            RILL_STREAM_CODEC_WANTED => {
                let _ = self.start(path);
            }
            RILL_STREAM_IDLE | RILL_STREAM_UNPUBLISHED => self.stop(path),
            _ => {}
        }
        Ok(())
    }
}

rill_abi::export_plugin!(Transcode, "transcode");
