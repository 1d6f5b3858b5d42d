//! One attempt of a pull: an outbound connection that plays the source
//! (RTMP) or reads it (HTTP-FLV), and publishes what arrives to the local
//! stream through [`FlvPublisher`].

use std::time::Duration;

use rill_abi::sdk::{Conn, Result};
use rill_abi::{rill_log, RILL_CODEC_METADATA, RILL_END_ERROR};
use rill_flv::publish::{FlvPublisher, MetaLimits};
use rill_flv::reader::Reader as FlvReader;
use rill_flv::Frame;
use rill_http::{Event as HttpEvent, Request, ResponseReader};
use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits};

use crate::source::Url;
use crate::{Relay, TIMER_SESSION};

pub struct Pull {
    pub job: u64,
    url: Url,
    stream: String,
    /// Pulled from the cluster's owner node.
    cluster: bool,
    proto: Option<Proto>,
    pub out: Option<FlvPublisher>,
    /// Monotonic µs of the last byte received.
    last_rx: i64,
    /// Why this attempt ends, when the relay decided it.
    pub why: String,
}

enum Proto {
    Rtmp(Box<ClientSession>),
    Http(Box<Http>),
}

struct Http {
    reader: ResponseReader,
    flv: Option<FlvReader>,
}

impl Pull {
    pub fn new(job: u64, url: Url, stream: String, cluster: bool) -> Pull {
        Pull {
            job,
            url,
            stream,
            cluster,
            proto: None,
            out: None,
            last_rx: 0,
            why: String::new(),
        }
    }
}

fn mono(conn_host: &rill_abi::sdk::Host) -> Duration {
    Duration::from_micros(conn_host.now_us().max(0) as u64)
}

impl Relay {
    pub(crate) fn pull_open(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        let now = mono(&self.host);
        p.last_rx = self.host.now_us();
        if p.url.scheme.is_rtmp() {
            let settings = ClientSettings {
                idle_timeout: Some(self.cfg.stall_timeout),
                ..ClientSettings::default()
            };
            let mut c = ClientSession::new(
                Limits::default(),
                settings,
                Connect::new(p.url.app.clone(), p.url.tc_url()),
                now,
            );
            if let Err(e) = c.play(now, &p.url.name) {
                return self.pull_fail(p, conn, &format!("RTMP: {e}"));
            }
            p.proto = Some(Proto::Rtmp(Box::new(c)));
        } else {
            let url = match rill_http::Url::parse(&p.url.to_string()) {
                Ok(u) => u,
                Err(e) => return self.pull_fail(p, conn, &format!("HTTP: {e}")),
            };
            let req = Request::get(&url)
                .header("User-Agent", "Rill relay")
                .header("Accept", "video/x-flv, */*");
            let bytes = match req.encode() {
                Ok(b) => b,
                Err(e) => return self.pull_fail(p, conn, &format!("HTTP: {e}")),
            };
            conn.write(&bytes)?;
            p.proto = Some(Proto::Http(Box::new(Http {
                reader: ResponseReader::new(&req, rill_http::Limits::default()),
                flv: None,
            })));
        }
        self.pump(p, conn)?;
        conn.timer_start(Duration::from_millis(500), true, TIMER_SESSION)?;
        Ok(())
    }

    pub(crate) fn pull_data(&self, p: &mut Pull, conn: &Conn, data: &[u8]) -> Result<()> {
        p.last_rx = self.host.now_us();
        self.add_bytes(p.job, data.len());
        let fed = match p.proto.as_mut() {
            Some(Proto::Rtmp(c)) => c
                .feed(mono(&self.host), data)
                .map_err(|e| format!("RTMP: {e}")),
            Some(Proto::Http(h)) => h.reader.feed(data).map_err(|e| format!("HTTP: {e}")),
            None => Ok(()),
        };
        if let Err(e) = fed {
            return self.pull_fail(p, conn, &e);
        }
        self.pump(p, conn)
    }

    pub(crate) fn pull_timer(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        let stalled = self.host.now_us() - p.last_rx >= self.cfg.stall_timeout.as_micros() as i64;
        if stalled {
            return self.pull_fail(
                p,
                conn,
                &format!("nothing received for {:?}", self.cfg.stall_timeout),
            );
        }
        if let Some(Proto::Rtmp(c)) = p.proto.as_mut() {
            c.handle_timeout(mono(&self.host));
        }
        self.pump(p, conn)
    }

    /// Sends what the protocol has to send and handles its events.
    fn pump(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        let mut frames: Vec<(Frame, bool)> = Vec::new();
        let mut failure = None;
        let mut playing = false;
        match p.proto.as_mut() {
            Some(Proto::Rtmp(c)) => {
                while let Some(b) = c.poll_transmit() {
                    conn.write(&b)?;
                }
                while let Some(ev) = c.poll_event() {
                    match ev {
                        ClientEvent::Playing { .. } => playing = true,
                        ClientEvent::Media { frame, .. } => frames.push((frame, false)),
                        ClientEvent::Metadata { frame, .. } => frames.push((frame, true)),
                        ClientEvent::Rejected {
                            code, description, ..
                        } => failure = Some(format!("refused: {code} {description}")),
                        ClientEvent::Status { code, .. }
                            if code == "NetStream.Play.UnpublishNotify"
                                || code == "NetStream.Play.Stop" =>
                        {
                            failure = Some(format!("the source ended ({code})"))
                        }
                        ClientEvent::TimedOut { deadline, waited } => {
                            failure = Some(format!("timed out ({deadline:?} after {waited:?})"))
                        }
                        ClientEvent::MediaDropped { reason, .. } => {
                            rill_log!(self.host, Debug, "relay {}: media dropped: {reason}", p.job)
                        }
                        other => rill_log!(self.host, Debug, "relay {}: {other:?}", p.job),
                    }
                }
            }
            Some(Proto::Http(h)) => {
                let Http { reader, flv } = &mut **h;
                while let Some(ev) = reader.poll_event() {
                    match ev {
                        HttpEvent::Head(h) if h.is_success() => {
                            *flv = Some(FlvReader::new());
                            playing = true;
                        }
                        HttpEvent::Head(h) => {
                            failure = Some(match rill_http::redirect_location(&h) {
                                Some(l) => {
                                    format!("HTTP {} to {l} (redirects are not followed)", h.status)
                                }
                                None => format!("HTTP {} {}", h.status, h.reason),
                            });
                            break;
                        }
                        HttpEvent::Body(b) => {
                            let Some(r) = flv.as_mut() else { continue };
                            if let Err(e) = r.feed(&b) {
                                failure = Some(format!("FLV: {e}"));
                                break;
                            }
                            while let Some(tag) = r.poll_tag() {
                                match tag.demux() {
                                    Ok(Some(f)) => {
                                        let meta = f.codec == RILL_CODEC_METADATA;
                                        frames.push((f, meta));
                                    }
                                    Ok(None) => {}
                                    // One bad tag: that frame only, as RTMP.
                                    Err(e) => rill_log!(
                                        self.host,
                                        Debug,
                                        "relay {}: FLV tag skipped: {e}",
                                        p.job
                                    ),
                                }
                            }
                        }
                        HttpEvent::End => failure = Some("the source ended".to_owned()),
                    }
                }
            }
            None => {}
        }
        if playing || !frames.is_empty() {
            self.pull_publish(p, conn)?;
        }
        if let Some(out) = p.out.as_mut() {
            let peer = p.url.to_string();
            let live = !frames.is_empty();
            for (f, meta) in frames {
                if meta {
                    out.set_metadata(&self.host, &peer, f, MetaLimits::default());
                } else {
                    out.write(&self.host, &peer, f);
                }
            }
            if live {
                self.went_live(p.job);
            }
        }
        if let Some(why) = failure {
            return self.pull_fail(p, conn, &why);
        }
        Ok(())
    }

    /// Opens the local stream once the source answers.
    fn pull_publish(&self, p: &mut Pull, conn: &Conn) -> Result<()> {
        if p.out.is_some() {
            return Ok(());
        }
        match conn.publish(&p.stream, "") {
            Ok(publisher) => {
                let _ = publisher.set_source(&p.url.to_string(), p.cluster);
                p.out = Some(FlvPublisher::new(publisher, p.stream.clone()));
                Ok(())
            }
            Err(e) => self.pull_fail(p, conn, &format!("cannot publish {}: {e}", p.stream)),
        }
    }

    fn pull_fail(&self, p: &mut Pull, conn: &Conn, why: &str) -> Result<()> {
        if p.why.is_empty() {
            rill_log!(self.host, Debug, "relay {} ({}): {why}", p.job, p.stream);
            p.why = why.to_owned();
        }
        p.out = None;
        conn.close(RILL_END_ERROR)
    }
}
