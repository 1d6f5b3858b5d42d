//! A small Rust plugin written with the SDK: it echoes bytes back, publishes
//! and subscribes on command, answers HTTP, and muxes frames once for many
//! viewers through the frame cache. Built as a cdylib by `cargo test`, then
//! loaded by `tests/sdk.rs` (which also compiles it in-process).
//!
//! Line commands on a connection (one per `on_data` call):
//! - `pub <path>`: publish `<path>` and write one keyframe into it
//! - `sub <path>`: subscribe; frames come back prefixed with `frame:`
//! - `post`: post a message to this session from another thread
//! - `panic`: panic (the SDK turns it into `RILL_ERR_PANIC`)
//! - anything else: echoed back

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};

use rill_abi::sdk::{
    Body, Conn, Error, FrameInfo, FrameRef, Host, HttpRequest, Plugin, Publisher, Result,
    Subscriber, SubscriberId, TrackInfo,
};
use rill_abi::{rill_log, RILL_CODEC_H264, RILL_FRAME_KEY, RILL_TRACK_VIDEO};

/// The instance.
pub struct Echo {
    host: Host,
    frames_muxed: AtomicU64,
}

/// One session's state.
#[derive(Default)]
pub struct Session {
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
}

/// Cache key of "frame prefixed with `frame:`".
const CACHE_KEY: u64 = 0x6563686f_00000001;

impl Plugin for Echo {
    type Session = Session;
    const DESCRIPTION: &'static str = "SDK example: echo, publish, subscribe";

    fn create(host: &Host) -> Result<Self> {
        let config = host.config();
        let addr = config
            .lines()
            .find_map(|l| l.strip_prefix("listen:"))
            .map(str::trim)
            .unwrap_or("127.0.0.1:17000");
        host.listen(addr, 1, 0)?;
        host.http_route("GET", "/echo/*", 7)?;
        rill_log!(host, Info, "echo listening on {addr}");
        Ok(Echo {
            host: *host,
            frames_muxed: AtomicU64::new(0),
        })
    }

    fn on_conn_open(&self, _conn: &Conn, _listener_id: u32) -> Result<Session> {
        Ok(Session::default())
    }

    fn on_http_request(
        &self,
        conn: &Conn,
        route_id: u32,
        req: &HttpRequest<'_>,
    ) -> Result<Session> {
        if route_id != 7 || req.method() != "GET" {
            return Err(Error::NOT_FOUND);
        }
        let body = format!("echo {}?{}", req.path(), req.query());
        conn.http_respond(
            200,
            &[("content-type", "text/plain")],
            Body::Fixed(body.len() as u64),
        )?;
        conn.write(body.as_bytes())?;
        conn.close(rill_abi::RILL_END_NORMAL)?;
        Ok(Session::default())
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        let line = std::str::from_utf8(data)
            .map_err(|_| Error::PROTOCOL)?
            .trim_end();
        if let Some(path) = line.strip_prefix("pub ") {
            let publisher = conn.publish(path, "")?;
            let track = publisher.add_track(&TrackInfo {
                kind: RILL_TRACK_VIDEO,
                codec: RILL_CODEC_H264,
                ..TrackInfo::new()
            })?;
            let mut buf = self.host.frame_alloc(4)?;
            buf.as_mut_slice().copy_from_slice(&[0, 0, 0, 0]);
            let info = FrameInfo {
                track,
                codec: RILL_CODEC_H264,
                flags: RILL_FRAME_KEY,
                ..FrameInfo::new()
            };
            publisher.write(&buf.freeze(4, &info)?)?;
            s.publisher = Some(publisher);
        } else if let Some(path) = line.strip_prefix("sub ") {
            s.subscriber = Some(conn.subscribe(path, "", None)?);
        } else if line == "post" {
            let host = self.host;
            let to = conn.id();
            std::thread::spawn(move || {
                let msg: Box<dyn Any + Send> = Box::new(String::from("posted"));
                let _ = host.post(to, msg);
            })
            .join()
            .map_err(|_| Error::INTERNAL)?;
        } else if line == "panic" {
            panic!("asked to panic");
        } else {
            conn.write(data)?;
        }
        Ok(())
    }

    fn on_frame(
        &self,
        _s: &mut Session,
        conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let muxed = frame.cache_get_or(CACHE_KEY, |f| {
            self.frames_muxed.fetch_add(1, Ordering::Relaxed);
            let mut v = b"frame:".to_vec();
            v.extend_from_slice(f.data());
            self.host.frame_wrap(v, &FrameInfo::new())
        })?;
        conn.write_frame(&muxed).map(drop)
    }

    fn on_post(
        &self,
        session: Option<(&mut Session, &Conn)>,
        msg: Box<dyn Any + Send>,
    ) -> Result<()> {
        if let (Some((_, conn)), Ok(text)) = (session, msg.downcast::<String>()) {
            conn.write(text.as_bytes())?;
        }
        Ok(())
    }
}

rill_abi::export_plugin!(Echo, "echo", "1.0.0");
