//! An FLV file loaded once and played as an endless live stream: the
//! metadata and sequence headers, then the frames in a loop, timestamps
//! continuing across laps, each H.264 frame stamped (see [`crate::sei`]) at
//! the moment it is sent.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::sei;

/// One FLV tag: type (8 audio, 9 video, 18 script), timestamp (ms), body.
#[derive(Clone, Debug)]
pub struct Tag {
    pub kind: u8,
    pub ts: u64,
    pub body: Bytes,
}

/// An FLV file split into what a live stream needs.
#[derive(Debug)]
pub struct FlvFile {
    /// `onMetaData` script body (starting with the "onMetaData" string).
    pub metadata: Option<Bytes>,
    pub video_config: Option<Bytes>,
    pub audio_config: Option<Bytes>,
    /// Media frames, timestamps rebased to start at 0.
    pub frames: Vec<Tag>,
    /// Length of one lap in ms (last timestamp + one frame interval).
    pub period_ms: u64,
    /// AVC NAL length size (from the sequence header; 4 when unknown).
    pub nal_len: usize,
    pub has_audio: bool,
    pub has_video: bool,
    /// Average media bitrate of the file, bits per second.
    pub bitrate: f64,
}

impl FlvFile {
    pub fn load(path: &Path) -> Result<Arc<FlvFile>, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(Bytes::from(data)).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(data: Bytes) -> Result<Arc<FlvFile>, String> {
        if data.len() < 13 || &data[..3] != b"FLV" {
            return Err("not an FLV file".into());
        }
        let hlen = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
        let mut pos = hlen + 4;
        let mut f = FlvFile {
            metadata: None,
            video_config: None,
            audio_config: None,
            frames: Vec::new(),
            period_ms: 0,
            nal_len: 4,
            has_audio: false,
            has_video: false,
            bitrate: 0.0,
        };
        let mut first_ts: Option<u64> = None;
        // Per kind (audio, video): last timestamp and last step.
        let mut last: [Option<u64>; 2] = [None; 2];
        let mut step = [0u64; 2];
        let mut bytes = 0usize;
        while pos + 11 <= data.len() {
            let h = &data[pos..pos + 11];
            let kind = h[0] & 0x1f;
            let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
            let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]) as u64;
            let start = pos + 11;
            if start + size > data.len() {
                break; // truncated last tag
            }
            let body = data.slice(start..start + size);
            pos = start + size + 4;
            match kind {
                18 if f.metadata.is_none() && body.get(3..13) == Some(b"onMetaData") => {
                    f.metadata = Some(body);
                }
                18 => {}
                8 | 9 if body.is_empty() => {}
                8 | 9 if sei::is_config(kind, &body) => {
                    if kind == 9 {
                        if let Some(n) = sei::avc_config_nal_len(&body) {
                            f.nal_len = n;
                        }
                        f.video_config.get_or_insert(body);
                    } else {
                        f.audio_config.get_or_insert(body);
                    }
                }
                8 | 9 => {
                    let base = *first_ts.get_or_insert(ts);
                    let ts = ts.saturating_sub(base);
                    let k = (kind == 9) as usize;
                    if let Some(l) = last[k] {
                        if ts > l {
                            step[k] = ts - l;
                        }
                    }
                    last[k] = Some(ts);
                    if kind == 9 {
                        f.has_video = true;
                    } else {
                        f.has_audio = true;
                    }
                    bytes += body.len();
                    f.frames.push(Tag { kind, ts, body });
                }
                _ => {}
            }
        }
        if f.frames.is_empty() {
            return Err("no audio or video frames".into());
        }
        // A lap must start on a video key frame, so that a loop never
        // splices a GOP.
        let mut cut = 0;
        if f.has_video {
            let k = f
                .frames
                .iter()
                .position(|t| t.kind == 9 && sei::is_video_key(&t.body))
                .ok_or("no video key frame")?;
            if k > 0 {
                cut = f.frames[k].ts;
                f.frames.drain(..k);
                for t in &mut f.frames {
                    t.ts = t.ts.saturating_sub(cut);
                }
            }
        }
        // A lap lasts until each track's next frame would be due.
        f.period_ms = (0..2)
            .filter_map(|k| last[k].map(|l| l.saturating_sub(cut) + step[k].max(1)))
            .max()
            .unwrap_or(1);
        f.bitrate = bytes as f64 * 8.0 / (f.period_ms as f64 / 1000.0);
        Ok(Arc::new(f))
    }

    /// Video frames per second (None without video).
    pub fn video_fps(&self) -> Option<f64> {
        let n = self.frames.iter().filter(|t| t.kind == 9).count();
        (n > 0).then(|| n as f64 * 1000.0 / self.period_ms as f64)
    }

    /// Longest distance between two video key frames (a whole lap when
    /// there is one key frame), ms: the longest a player of a server
    /// without a GOP cache waits for a picture.
    pub fn gop_ms(&self) -> u64 {
        let keys: Vec<u64> = self
            .frames
            .iter()
            .filter(|t| t.kind == 9 && sei::is_video_key(&t.body))
            .map(|t| t.ts)
            .collect();
        let mut gop = 0;
        for (i, k) in keys.iter().enumerate() {
            let next = keys.get(i + 1).copied().unwrap_or(self.period_ms + keys[0]);
            gop = gop.max(next - k);
        }
        gop
    }
}

/// The frames of an [`FlvFile`] in an endless loop.
pub struct Looper {
    pub file: Arc<FlvFile>,
    idx: usize,
    lap: u64,
    seq: u32,
}

impl Looper {
    pub fn new(file: Arc<FlvFile>) -> Self {
        Looper {
            file,
            idx: 0,
            lap: 0,
            seq: 0,
        }
    }

    /// Timestamp (ms since the stream start) of the next frame.
    pub fn next_ts(&self) -> u64 {
        self.lap * self.file.period_ms + self.file.frames[self.idx].ts
    }

    /// The next frame with its stream timestamp; H.264 frames carry a
    /// fresh wall-clock stamp.
    pub fn next(&mut self) -> Tag {
        let t = &self.file.frames[self.idx];
        let ts = self.next_ts();
        let body = if t.kind == 9 && sei::is_avc_nalu(&t.body) {
            self.seq = self.seq.wrapping_add(1);
            Bytes::from(sei::stamp(
                &t.body,
                self.file.nal_len,
                self.seq,
                sei::wall_us(),
            ))
        } else {
            t.body.clone()
        };
        let kind = t.kind;
        self.idx += 1;
        if self.idx == self.file.frames.len() {
            self.idx = 0;
            self.lap += 1;
        }
        Tag { kind, ts, body }
    }
}
