//! What each player measures, and the summary of a run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sei;

/// A log-linear histogram of microsecond values (1/128 relative precision
/// above 256 µs), small enough to share by every player of a run.
pub struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const LINEAR: u64 = 256;
const SUB_BITS: u32 = 7;

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: vec![0; 256 + 56 * 128],
            count: 0,
            max: 0,
        }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // v in [2^e, 2^(e+1)), e >= 8
        let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        LINEAR as usize + (e as usize - 8) * 128 + sub as usize
    }

    fn value(i: usize) -> u64 {
        if i < LINEAR as usize {
            return i as u64;
        }
        let e = (i - LINEAR as usize) / 128 + 8;
        let sub = ((i - LINEAR as usize) % 128) as u64;
        let lo = (1u64 << e) | (sub << (e - SUB_BITS as usize));
        lo + (1u64 << (e - SUB_BITS as usize)) / 2
    }

    pub fn add(&mut self, v: u64) {
        let i = Self::index(v).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// The value at quantile `q` (0..=1), in µs.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::value(i).min(self.max));
            }
        }
        Some(self.max)
    }

    pub fn summary(&self) -> Quantiles {
        let ms = |q: f64| self.quantile(q).map(|v| v as f64 / 1000.0);
        Quantiles {
            samples: self.count,
            p50: ms(0.50),
            p90: ms(0.90),
            p99: ms(0.99),
            max: (self.count > 0).then_some(self.max as f64 / 1000.0),
        }
    }
}

/// Quantiles in milliseconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Quantiles {
    pub samples: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Exact quantiles of a small set of values (µs) in ms.
pub fn quantiles(mut v: Vec<u64>) -> Quantiles {
    v.sort_unstable();
    let q = |q: f64| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1] as f64 / 1000.0)
    };
    Quantiles {
        samples: v.len() as u64,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: v.last().map(|&x| x as f64 / 1000.0),
    }
}

/// Shared by every player of a run.
#[derive(Default)]
pub struct Shared {
    pub latency: Mutex<Hist>,
    /// LL-HLS: a frame's publication → the end of the download of the part
    /// that carries it, for parts requested before they existed (preload
    /// hint or blocking reload): how soon the server makes media available.
    pub part_latency: Mutex<Hist>,
    /// The same, for the last frame of each such part only: what the server
    /// adds after the part is complete.
    pub part_tail_latency: Mutex<Hist>,
    /// HLS request counters of every player.
    pub hls: Mutex<crate::hls::Counters>,
    /// SRT connection counters of every player.
    pub srt: Mutex<crate::srt::RecvCounters>,
    /// RTSP players' RTP counters.
    pub rtsp: Mutex<crate::rtsp::RecvCounters>,
    /// WHEP viewers' WebRTC counters.
    pub whep: Mutex<crate::whep::RecvCounters>,
}

/// Playback of a player that receives media in bursts (HLS parts and
/// segments, fMP4 fragments): the media received since the first picture
/// against the wall clock. The player starts playing `delay` after its
/// first picture; when the playhead reaches the end of what was received
/// it waits (a rebuffer), and a wait longer than [`STALL`] is a stall.
#[derive(Clone, Copy, Debug)]
pub struct Playout {
    /// How long the player buffers before it starts playing.
    pub delay: Duration,
    /// Wall-clock instant at which the playhead was (or will be) at media
    /// position 0 of `received`.
    anchor: Option<Instant>,
    /// Media time received since the first picture (sum of video frame
    /// intervals).
    received: Duration,
}

impl Playout {
    pub fn new(delay: Duration) -> Playout {
        Playout {
            delay,
            anchor: None,
            received: Duration::ZERO,
        }
    }

    /// How far the playhead is beyond what was received at `now`.
    fn underrun(&self, now: Instant) -> Duration {
        match self.anchor {
            Some(a) => now
                .saturating_duration_since(a)
                .saturating_sub(self.received),
            None => Duration::ZERO,
        }
    }
}

/// A gap between two media arrivals longer than this is a stall.
pub const STALL: Duration = Duration::from_secs(1);

/// One player's counters.
pub struct Player {
    pub start: Instant,
    start_wall_us: u64,
    pub connected: Option<Instant>,
    pub first_key: Option<Instant>,
    last_media: Option<Instant>,
    last_ts: Option<u64>,
    pub video: u64,
    pub audio: u64,
    pub data: u64,
    pub bytes: u64,
    pub stalls: u32,
    pub skips: u32,
    pub max_gap: Duration,
    pub max_latency_us: u64,
    pub nal_len: usize,
    pub error: Option<String>,
    /// Latency samples buffered before they go to the shared histogram.
    lat: Vec<u64>,
    /// A frame later than this after its publication is too late (µs):
    /// [`STALL`] for streaming protocols, more for HLS, whose media come
    /// a part or a segment at a time.
    pub late_limit_us: u64,
    /// Burst delivery: stalls are judged by playback ([`Playout`]), not by
    /// the gap between two arrivals, and skips by video timestamps only.
    pub playout: Option<Playout>,
    /// Every latency sample of this player (µs), kept with `--per-player`.
    pub own_lat: Option<Vec<u32>>,
}

impl Player {
    pub fn new() -> Self {
        Player {
            start: Instant::now(),
            start_wall_us: sei::wall_us(),
            connected: None,
            first_key: None,
            last_media: None,
            last_ts: None,
            video: 0,
            audio: 0,
            data: 0,
            bytes: 0,
            stalls: 0,
            skips: 0,
            max_gap: Duration::ZERO,
            max_latency_us: 0,
            nal_len: 4,
            error: None,
            lat: Vec::with_capacity(64),
            late_limit_us: STALL.as_micros() as u64,
            playout: None,
            own_lat: None,
        }
    }

    /// One media message (FLV tag): its type, timestamp, and at least the
    /// first 64 bytes of its body (or all of it when shorter).
    pub fn on_tag(&mut self, kind: u8, ts: u32, prefix: &[u8], now: Instant, shared: &Shared) {
        match kind {
            9 => {
                if let Some(n) = sei::avc_config_nal_len(prefix) {
                    self.nal_len = n;
                    return;
                }
                if sei::is_config(9, prefix) {
                    return;
                }
                let key = sei::is_video_key(prefix);
                let stamp = if self.first_key.is_some() || key {
                    sei::find(prefix, self.nal_len).map(|(_, us)| us)
                } else {
                    None
                };
                self.on_frame(true, key, ts as u64, stamp, now, shared);
            }
            8 => {
                if sei::is_config(8, prefix) {
                    return;
                }
                self.on_frame(false, false, ts as u64, None, now, shared);
            }
            _ => self.data += 1,
        }
    }

    /// One media frame (not a config), whatever the container: video or
    /// audio, key frame, decode time in ms, the publisher's stamp (wall
    /// clock µs) when the frame carries one. Returns the frame's latency
    /// (µs) when it has a stamp and counts.
    pub fn on_frame(
        &mut self,
        video: bool,
        key: bool,
        ts: u64,
        stamp_us: Option<u64>,
        now: Instant,
        shared: &Shared,
    ) -> Option<u64> {
        let mut latency = None;
        if video {
            self.video += 1;
            if self.first_key.is_none() {
                if !key {
                    return None; // undecodable until a key frame
                }
                self.first_key = Some(now);
                if let Some(po) = &mut self.playout {
                    po.anchor = Some(now + po.delay);
                }
            }
            if let Some(us) = stamp_us {
                // Frames published before this player started (a GOP
                // cache replay) say nothing about the server's latency.
                if us >= self.start_wall_us {
                    let lat = sei::wall_us().saturating_sub(us);
                    self.max_latency_us = self.max_latency_us.max(lat);
                    self.lat.push(lat);
                    if let Some(v) = &mut self.own_lat {
                        if v.len() < 1 << 20 {
                            v.push(lat.min(u32::MAX as u64) as u32);
                        }
                    }
                    if self.lat.len() == self.lat.capacity() {
                        self.flush(shared);
                    }
                    latency = Some(lat);
                }
            }
        } else {
            self.audio += 1;
            // Audio before the first picture is not played.
            self.first_key?;
        }
        if let Some(po) = &mut self.playout {
            // Burst delivery: the playhead against what was received, and
            // skips in the video timeline (audio and video come in separate
            // runs of samples, not interleaved).
            if !video {
                return latency;
            }
            let under = po.underrun(now);
            if under > Duration::ZERO {
                if under > STALL {
                    self.stalls += 1;
                }
                self.max_gap = self.max_gap.max(under);
                // The player waited: it plays on from here.
                if let Some(a) = &mut po.anchor {
                    *a += under;
                }
            }
            if let Some(l) = self.last_ts {
                if ts > l {
                    let d = ts - l;
                    if d > STALL.as_millis() as u64 {
                        self.skips += 1;
                    } else {
                        po.received += Duration::from_millis(d);
                    }
                }
            }
            self.last_media = Some(now);
            self.last_ts = Some(ts);
            return latency;
        }
        if let Some(last) = self.last_media {
            let gap = now - last;
            if gap > STALL {
                self.stalls += 1;
            }
            self.max_gap = self.max_gap.max(gap);
        }
        if let Some(l) = self.last_ts {
            if ts > l && ts - l > STALL.as_millis() as u64 {
                self.skips += 1;
            }
        }
        self.last_media = Some(now);
        self.last_ts = Some(ts);
        latency
    }

    /// The media timeline restarts (HLS `EXT-X-DISCONTINUITY`): the next
    /// timestamp is not compared with the last one.
    pub fn discontinuity(&mut self) {
        self.last_ts = None;
    }

    pub fn flush(&mut self, shared: &Shared) {
        if self.lat.is_empty() {
            return;
        }
        let mut h = shared.latency.lock().unwrap();
        for &v in &self.lat {
            h.add(v);
        }
        self.lat.clear();
    }

    /// Closes the books at the end of the window.
    pub fn finish(&mut self, end: Instant, shared: &Shared) {
        self.flush(shared);
        if let Some(po) = &self.playout {
            let under = po.underrun(end);
            if under > STALL {
                self.stalls += 1;
            }
            self.max_gap = self.max_gap.max(under);
            return;
        }
        if let Some(last) = self.last_media {
            let gap = end.saturating_duration_since(last);
            if gap > STALL {
                self.stalls += 1;
                self.max_gap = self.max_gap.max(gap);
            }
        }
    }

    pub fn ttff(&self) -> Option<Duration> {
        self.first_key.map(|t| t - self.start)
    }

    /// Kept up with the live stream until `end`: a picture, no stall,
    /// nothing skipped, no error, at least 90% of the video frames the
    /// stream has (`fps`, when known) since the first picture, and no
    /// frame later than [`STALL`] after it was published.
    pub fn kept_up(&self, fps: Option<f64>, end: Instant) -> bool {
        self.error.is_none()
            && self.first_key.is_some()
            && self.stalls == 0
            && self.skips == 0
            && self.enough_frames(fps, end)
            && !self.too_late()
    }

    /// A frame reached this player later than its limit after publication.
    pub fn too_late(&self) -> bool {
        self.max_latency_us > self.late_limit_us
    }

    /// At least 90% of the video frames of a stream of `fps` (when known)
    /// since the first picture.
    pub fn enough_frames(&self, fps: Option<f64>, end: Instant) -> bool {
        let Some(first) = self.first_key else {
            return false;
        };
        // Media that come late by design (HLS) may lag by their allowance.
        let lag = self.late_limit_us.saturating_sub(STALL.as_micros() as u64) as f64 / 1e6;
        fps.is_none_or(|fps| {
            let secs = end.saturating_duration_since(first).as_secs_f64();
            self.video as f64 + 2.0 + fps * lag >= 0.9 * fps * secs
        })
    }
}
