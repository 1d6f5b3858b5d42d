//! One attempt of a push: an outbound RTMP connection that publishes the
//! local stream. The local subscription starts once the server accepted
//! the publish, so the far end gets the configurations and the cached
//! GOP first; a far end that reads slower than the stream loses media up
//! to the next key frame rather than growing a queue.

use std::time::Duration;

use rill_abi::sdk::{Conn, FrameRef, Result, Subscriber};
use rill_abi::{rill_log, RILL_END_ERROR, RILL_FRAME_CONFIG, RILL_FRAME_KEY, RILL_TRACK_VIDEO};
use rill_flv::publish::kind_of;
use rill_flv::Frame;
use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits};

use crate::source::Url;
use crate::{Relay, TIMER_SESSION};

/// Past this many bytes queued toward the far end, media waits for the
/// next key frame.
const MAX_PENDING: u64 = 8 << 20;

pub struct Push {
    pub job: u64,
    url: Url,
    stream: String,
    client: Option<Box<ClientSession>>,
    /// The server's stream id once publishing.
    stream_id: Option<u32>,
    pub sub: Option<Subscriber>,
    /// Media is skipped until a video key frame.
    skipping: bool,
    has_video: bool,
    pub why: String,
}

impl Push {
    pub fn new(job: u64, url: Url, stream: String) -> Push {
        Push {
            job,
            url,
            stream,
            client: None,
            stream_id: None,
            sub: None,
            skipping: false,
            has_video: false,
            why: String::new(),
        }
    }
}

impl Relay {
    fn mono(&self) -> Duration {
        Duration::from_micros(self.host.now_us().max(0) as u64)
    }

    pub(crate) fn push_open(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        let now = self.mono();
        let mut c = ClientSession::new(
            Limits::default(),
            ClientSettings::default(),
            Connect::new(p.url.app.clone(), p.url.tc_url()),
            now,
        );
        if let Err(e) = c.publish(now, &p.url.name) {
            return self.push_fail(p, conn, &format!("RTMP: {e}"));
        }
        p.client = Some(Box::new(c));
        conn.timer_start(Duration::from_millis(500), true, TIMER_SESSION)?;
        self.push_pump(p, conn)
    }

    pub(crate) fn push_data(&self, p: &mut Push, conn: &Conn, data: &[u8]) -> Result<()> {
        let now = self.mono();
        if let Some(c) = p.client.as_mut() {
            if let Err(e) = c.feed(now, data) {
                return self.push_fail(p, conn, &format!("RTMP: {e}"));
            }
        }
        self.push_pump(p, conn)
    }

    pub(crate) fn push_timer(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        let now = self.mono();
        if let Some(c) = p.client.as_mut() {
            c.handle_timeout(now);
        }
        self.push_pump(p, conn)
    }

    pub(crate) fn push_writable(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        self.push_pump(p, conn)
    }

    pub(crate) fn push_frame(&self, p: &mut Push, conn: &Conn, frame: &FrameRef) -> Result<()> {
        let (Some(c), Some(sid)) = (p.client.as_mut(), p.stream_id) else {
            return Ok(());
        };
        let info = frame.info();
        let config = info.flags & RILL_FRAME_CONFIG != 0;
        let video = kind_of(info.codec) == RILL_TRACK_VIDEO;
        p.has_video |= video;
        if !config {
            if conn.pending() > MAX_PENDING && !p.skipping {
                p.skipping = true;
                rill_log!(
                    self.host,
                    Debug,
                    "push of {} to {}: behind, skipping to the next key frame",
                    p.stream,
                    p.url
                );
            }
            if p.skipping {
                let key = info.flags & RILL_FRAME_KEY != 0;
                if (video || !p.has_video) && key && conn.pending() <= MAX_PENDING / 2 {
                    p.skipping = false;
                } else {
                    return Ok(());
                }
            }
        }
        let f = Frame {
            codec: info.codec,
            flags: info.flags,
            pts: info.pts,
            dts: info.dts,
            payload: frame.to_bytes(),
        };
        if let Err(e) = c.send_frame(sid, &f) {
            // A codec RTMP cannot carry: that frame only.
            rill_log!(
                self.host,
                Debug,
                "push of {}: frame not sent: {e}",
                p.stream
            );
        }
        let mut n = 0;
        while let Some(b) = c.poll_transmit() {
            n += b.len();
            conn.write(&b)?;
        }
        self.add_bytes(p.job, n);
        Ok(())
    }

    fn push_pump(&self, p: &mut Push, conn: &Conn) -> Result<()> {
        let Some(c) = p.client.as_mut() else {
            return Ok(());
        };
        let mut failure = None;
        while let Some(b) = c.poll_transmit() {
            conn.write(&b)?;
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Publishing { stream_id, .. } => {
                    p.stream_id = Some(stream_id);
                    match conn.subscribe(&p.stream, "", None) {
                        Ok(sub) => p.sub = Some(sub),
                        Err(e) => failure = Some(format!("cannot play {}: {e}", p.stream)),
                    }
                    self.went_live(p.job);
                }
                ClientEvent::Rejected {
                    code, description, ..
                } => failure = Some(format!("refused: {code} {description}")),
                ClientEvent::Status { level, code, .. } if level == "error" => {
                    failure = Some(format!("the server ended it ({code})"))
                }
                ClientEvent::TimedOut { deadline, waited } => {
                    failure = Some(format!("timed out ({deadline:?} after {waited:?})"))
                }
                _ => {}
            }
        }
        match failure {
            Some(why) => self.push_fail(p, conn, &why),
            None => Ok(()),
        }
    }

    fn push_fail(&self, p: &mut Push, conn: &Conn, why: &str) -> Result<()> {
        if p.why.is_empty() {
            p.why = why.to_owned();
        }
        p.sub = None;
        conn.close(RILL_END_ERROR)
    }
}
