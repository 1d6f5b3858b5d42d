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
    last_ts: Option<u32>,
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
                self.video += 1;
                if self.first_key.is_none() {
                    if !sei::is_video_key(prefix) {
                        return; // undecodable until a key frame
                    }
                    self.first_key = Some(now);
                }
                if let Some((_, us)) = sei::find(prefix, self.nal_len) {
                    // Frames published before this player started (a GOP
                    // cache replay) say nothing about the server's latency.
                    if us >= self.start_wall_us {
                        let lat = sei::wall_us().saturating_sub(us);
                        self.max_latency_us = self.max_latency_us.max(lat);
                        self.lat.push(lat);
                        if self.lat.len() == self.lat.capacity() {
                            self.flush(shared);
                        }
                    }
                }
            }
            8 => {
                if sei::is_config(8, prefix) {
                    return;
                }
                self.audio += 1;
                if self.first_key.is_none() {
                    return;
                }
            }
            _ => {
                self.data += 1;
                return;
            }
        }
        if let Some(last) = self.last_media {
            let gap = now - last;
            if gap > STALL {
                self.stalls += 1;
            }
            self.max_gap = self.max_gap.max(gap);
        }
        if let Some(l) = self.last_ts {
            if ts > l && ts - l > STALL.as_millis() as u32 {
                self.skips += 1;
            }
        }
        self.last_media = Some(now);
        self.last_ts = Some(ts);
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
            && self.max_latency_us <= STALL.as_micros() as u64
    }

    /// At least 90% of the video frames of a stream of `fps` (when known)
    /// since the first picture.
    pub fn enough_frames(&self, fps: Option<f64>, end: Instant) -> bool {
        let Some(first) = self.first_key else {
            return false;
        };
        fps.is_none_or(|fps| {
            let secs = end.saturating_duration_since(first).as_secs_f64();
            self.video as f64 + 2.0 >= 0.9 * fps * secs
        })
    }
}
