//! The plugin glue: the sans-IO [`Session`] driven by the host through the
//! SDK. One [`Conn`] per TCP connection; the host never runs two callbacks of
//! one connection at once, so each connection's state is plain data.
//!
//! - Input: `on_data` feeds the session, handles its events, and queues its
//!   replies. Bad input logs a reason and closes this connection only.
//! - Publish: `admit` (the host's auth; a webhook answers later at
//!   `on_admit`), then `publish_open` (`BUSY` → `BadName`, a refusal by
//!   policy → `Unauthorized` and the connection closes),
//!   tracks declared from the first frame of each kind, frames handed over
//!   without a copy (`frame_wrap` of the received bytes), metadata through
//!   `publisher_set_metadata`.
//! - Play: `subscribe_open` (the host's wait queue holds a player that comes
//!   before its publisher), `Play.Start` at once, then every frame chunked
//!   once per chunk settings and shared through the host's per-frame cache.
//! - Output: a FIFO of byte buffers and shared frames. After the host reports
//!   its queue full (`RILL_FULL`) nothing is written until `on_writable`;
//!   frames arriving meanwhile wait here, up to `max_pending_bytes` of media,
//!   past which the player skips to the next keyframe.
//! - Time: the session keeps its deadlines (handshake + connect, idle) and
//!   says when it next needs the time (`poll_timeout`); one host timer is
//!   armed for that moment and fires `handle_timeout` with the host's
//!   monotonic clock. A timer armed for a later moment than a new deadline
//!   is replaced; one armed earlier is kept (it finds nothing due, and
//!   re-arms), so input never costs a timer call.

use std::time::Duration;

use bytes::Bytes;
use rill_abi::sdk::{
    Admission, Conn, Error as SdkError, Flow, FrameInfo, FrameRef, Host, Plugin, PublisherId,
    Result, Subscriber, SubscriberId, TimerHandle,
};
use rill_abi::{
    rill_log, RILL_CODEC_METADATA, RILL_END_ERROR, RILL_END_KICKED, RILL_END_NORMAL,
    RILL_END_PUBLISHER_GONE, RILL_END_SHUTDOWN, RILL_END_TIMEOUT, RILL_END_TOO_SLOW,
    RILL_FRAME_CONFIG, RILL_FRAME_KEY,
};
use rill_abi::{
    RillSubscribeOptions, RILL_CODEC_AAC, RILL_CODEC_MP3, RILL_CODEC_PCMA, RILL_CODEC_PCMU,
};

use rill_rtmp::{
    serialize_frame, ChunkParams, Deadline, Error, Event, Frame, Limits, Session, Settings,
};

use rill_flv::publish::{fourcc_name, kind_of, FlvPublisher, MetaLimits};

use crate::config::Config;
use crate::outbox::{Gate, Out, Outbox, Written};

/// The one timer of a connection: the session's next deadline.
const TIMER_DEADLINE: u64 = 1;
/// Timers are armed at most this far ahead (the session's deadline may be
/// further; the timer then finds nothing due and re-arms).
const MAX_TIMER_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The plugin instance.
pub struct Rtmp {
    host: Host,
    config: Config,
}

impl Plugin for Rtmp {
    type Session = Connection;
    const DESCRIPTION: &'static str = "RTMP and Enhanced RTMP: publish and play";

    fn create(host: &Host) -> Result<Self> {
        let config = host.parse_config(|y| Config::parse(y).map_err(|e| e.in_plugin("rtmp")))?;
        if let Err(e) = host.listen(&config.listen, 1, 0) {
            rill_log!(host, Error, "cannot listen on {}: {e}", config.listen);
            return Err(e);
        }
        if let Some(addr) = &config.tls_listen {
            // The host terminates TLS: sessions see plain RTMP.
            if let Err(e) = host.listen(addr, 2, rill_abi::RILL_LISTEN_TLS) {
                rill_log!(
                    host,
                    Error,
                    "cannot listen for RTMPS on {addr}: {e} (is http.tls.cert/key set?)"
                );
                return Err(e);
            }
            rill_log!(host, Info, "RTMPS listening on {addr}");
        }
        rill_log!(
            host,
            Info,
            "RTMP listening on {} (chunk size {})",
            config.listen,
            config.chunk_size
        );
        Ok(Rtmp {
            host: *host,
            config,
        })
    }

    fn on_conn_open(&self, conn: &Conn, _listener_id: u32) -> Result<Connection> {
        let idle = self.config.idle_timeout;
        let settings = Settings {
            chunk_size: self.config.chunk_size,
            handshake_timeout: Some(self.config.handshake_timeout),
            idle_timeout: (!idle.is_zero()).then_some(idle),
            ..Settings::default()
        };
        let mut c = Connection {
            core: Session::with_settings(self.config.limits.clone(), settings, self.now()),
            peer: conn.peer_addr().to_owned(),
            pubs: Vec::new(),
            players: Vec::new(),
            out: Outbox::default(),
            timer: None,
            closing: false,
            admitting: Vec::new(),
            refused: false,
        };
        self.arm(&mut c, conn)?;
        Ok(c)
    }

    fn on_data(&self, s: &mut Connection, conn: &Conn, data: &[u8]) -> Result<()> {
        if let Err(e) = s.core.feed(self.now(), data) {
            // Events queued before the error (a publish that was accepted,
            // media) still count; then the connection goes.
            self.pump(s, conn);
            return self.fail(s, conn, &e);
        }
        self.pump(s, conn);
        Ok(())
    }

    fn on_writable(&self, s: &mut Connection, conn: &Conn) -> Result<()> {
        s.out.unblock();
        flush(&mut s.out, conn, false);
        Ok(())
    }

    fn on_close(&self, mut s: Connection, _conn: &Conn, reason: u32, why: &str) {
        s.core.close();
        while s.core.poll_event().is_some() {}
        for p in &s.pubs {
            rill_log!(
                self.host,
                Info,
                "{}: {} unpublished ({why})",
                s.peer,
                p.out.path()
            );
        }
        for p in &s.players {
            rill_log!(
                self.host,
                Info,
                "{}: stopped playing {} ({why}): {}",
                s.peer,
                p.path,
                p.counts()
            );
        }
        if reason != RILL_END_NORMAL {
            rill_log!(self.host, Debug, "{}: closed ({why})", s.peer);
        }
        // Dropping the state closes its publishers and subscribers.
    }

    fn on_frame(
        &self,
        s: &mut Connection,
        conn: &Conn,
        sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let Some(i) = s.players.iter().position(|p| p.sub.id() == sub) else {
            return Ok(());
        };
        let info = frame.info();
        let config = info.flags & RILL_FRAME_CONFIG != 0 || info.codec == RILL_CODEC_METADATA;
        let key = info.flags & RILL_FRAME_KEY != 0;
        let p = &mut s.players[i];
        if !p.gate.admit(kind_of(info.codec), key, config) {
            return Ok(());
        }
        let Some(params) = s.core.chunk_params(p.stream_id) else {
            return Ok(());
        };
        let serialized = frame.cache_get_or(cache_key(&params), |f| {
            p.muxed += 1;
            let bytes = serialize(&params, f, &info).map_err(|e| {
                if !p.warned_codec {
                    p.warned_codec = true;
                    rill_log!(
                        self.host,
                        Warn,
                        "{}: cannot send {} to an RTMP player of {}: {e}",
                        s.peer,
                        fourcc_name(info.codec),
                        p.path
                    );
                }
                SdkError::UNSUPPORTED
            })?;
            self.host.frame_wrap(bytes, &info)
        });
        let Ok(serialized) = serialized else {
            return Ok(());
        };
        // Replies of the session (acks, pings) go first, in order.
        s.take_transmit();
        let len = serialized.data().len();
        if !config && s.out.over_cap(len, self.config.max_pending_bytes) {
            // Behind by the cap while the host's queue is full: the waiting
            // media goes, and every player here resumes at a keyframe.
            let dropped = s.out.drop_media();
            for p in &mut s.players {
                p.gate.restart(0);
            }
            let p = &mut s.players[i];
            p.gate.restart(dropped);
            rill_log!(
                self.host,
                Debug,
                "{}: player of {} behind by {} bytes, skipping to the next keyframe",
                s.peer,
                p.path,
                self.config.max_pending_bytes
            );
            // This frame may be where it resumes.
            if !p.gate.admit(kind_of(info.codec), key, config) {
                return Ok(());
            }
        }
        s.players[i].sent += 1;
        s.out.push_frame(serialized, len, !config);
        flush(&mut s.out, conn, false);
        Ok(())
    }

    fn on_subscribe_end(
        &self,
        s: &mut Connection,
        conn: &Conn,
        sub: SubscriberId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        let Some(i) = s.players.iter().position(|p| p.sub.id() == sub) else {
            return Ok(());
        };
        let p = s.players.remove(i);
        let id = p.stream_id;
        let path = &p.path;
        // Media still waiting for the socket is moot now; what is said
        // below must reach the player before the close.
        s.out.drop_media();
        let r = match reason {
            RILL_END_TIMEOUT => s.core.send_status(
                id,
                "error",
                "NetStream.Play.StreamNotFound",
                &format!("No one published {path} in time."),
            ),
            RILL_END_PUBLISHER_GONE => s.core.notify_unpublished(id).and_then(|_| {
                s.core.send_status(
                    id,
                    "status",
                    "NetStream.Play.Stop",
                    &format!("Stopped playing {path}."),
                )
            }),
            _ => s.core.send_status(
                id,
                "status",
                "NetStream.Play.Stop",
                &format!("Stopped playing {path}: {why}."),
            ),
        };
        // No more frames for it; a connection left with nothing playing may
        // go idle again.
        s.core.end_play(id);
        rill_log!(
            self.host,
            Info,
            "{}: play of {path} ended ({why}): {}",
            s.peer,
            p.counts()
        );
        drop(p);
        if r.is_err() || (s.players.is_empty() && s.pubs.is_empty()) {
            let code = match reason {
                RILL_END_TIMEOUT | RILL_END_KICKED | RILL_END_TOO_SLOW | RILL_END_SHUTDOWN => {
                    reason
                }
                _ => RILL_END_NORMAL,
            };
            self.finish(s, conn, code);
        } else {
            s.take_transmit();
            flush(&mut s.out, conn, false);
            self.arm(s, conn)?;
        }
        Ok(())
    }

    fn on_publish_end(
        &self,
        s: &mut Connection,
        conn: &Conn,
        publisher: PublisherId,
        reason: u32,
        why: &str,
    ) -> Result<()> {
        let Some(i) = s
            .pubs
            .iter()
            .position(|p| p.out.publisher().id() == publisher)
        else {
            return Ok(());
        };
        let p = s.pubs.remove(i);
        rill_log!(
            self.host,
            Info,
            "{}: publishing {} ended by the host ({why})",
            s.peer,
            p.out.path()
        );
        let _ = s.core.send_status(
            p.stream_id,
            "error",
            "NetStream.Publish.BadName",
            &format!("Publishing {} ended: {why}.", p.out.path()),
        );
        drop(p);
        self.finish(s, conn, reason);
        Ok(())
    }

    fn on_admit(
        &self,
        s: &mut Connection,
        conn: &Conn,
        ticket: u64,
        result: Result<()>,
    ) -> Result<()> {
        let Some(i) = s
            .admitting
            .iter()
            .position(|p| self::ticket(p.stream_id, p.ask) == ticket)
        else {
            return Ok(());
        };
        let p = s.admitting.remove(i);
        if s.closing {
            return Ok(());
        }
        let done = match (result, p.ask) {
            (Ok(()), Ask::Publish) => self.publish(s, conn, p.stream_id, p.path, &p.query),
            (Ok(()), Ask::Play) => self.play(s, conn, p.stream_id, p.path, &p.query),
            (Err(e), ask) => self.refuse(s, p.stream_id, &p.path, ask, e),
        };
        if let Err(e) = done {
            return self.fail(s, conn, &e);
        }
        self.pump(s, conn);
        Ok(())
    }

    fn on_timer(&self, session: Option<(&mut Connection, &Conn)>, timer_id: u64) -> Result<()> {
        let Some((s, conn)) = session else {
            return Ok(());
        };
        if timer_id != TIMER_DEADLINE {
            return Ok(());
        }
        s.timer = None;
        if s.closing {
            return Ok(());
        }
        // A deadline that passed queues Event::TimedOut (handled in pump);
        // otherwise this re-arms for the next one.
        s.core.handle_timeout(self.now());
        self.pump(s, conn);
        Ok(())
    }
}

impl Rtmp {
    /// The host's monotonic clock: the session's time.
    fn now(&self) -> Duration {
        Duration::from_micros(self.host.now_us().max(0) as u64)
    }

    /// Arms the host timer for the session's next deadline, unless one is
    /// armed for that moment or earlier.
    fn arm(&self, s: &mut Connection, conn: &Conn) -> Result<()> {
        let Some(deadline) = s.core.poll_timeout() else {
            return Ok(());
        };
        if let Some((t, at)) = s.timer {
            if at <= deadline {
                return Ok(());
            }
            let _ = self.host.timer_cancel(t);
            s.timer = None;
        }
        let now = self.now();
        let delay = deadline
            .saturating_sub(now)
            .clamp(Duration::from_millis(1), MAX_TIMER_DELAY);
        let t = conn.timer_start(delay, false, TIMER_DEADLINE)?;
        s.timer = Some((t, now + delay));
        Ok(())
    }

    /// Handles the session's events, then sends what it queued.
    fn pump(&self, s: &mut Connection, conn: &Conn) {
        while let Some(ev) = s.core.poll_event() {
            if let Err(e) = self.on_event(s, conn, ev) {
                let _ = self.fail(s, conn, &e);
                return;
            }
        }
        if s.closing {
            return;
        }
        if s.refused {
            // Refused by policy: the client gets the answer, then the end.
            self.finish(s, conn, RILL_END_NORMAL);
            return;
        }
        s.take_transmit();
        flush(&mut s.out, conn, false);
        if let Err(e) = self.arm(s, conn) {
            rill_log!(self.host, Warn, "{}: cannot arm a timer: {e}", s.peer);
        }
    }

    fn on_event(&self, s: &mut Connection, conn: &Conn, ev: Event) -> Result<(), Error> {
        match ev {
            Event::Connected(info) => {
                rill_log!(
                    self.host,
                    Debug,
                    "{}: connect app={:?} flashVer={:?} fourCcList={:?}",
                    s.peer,
                    info.app,
                    info.flash_ver.as_deref().unwrap_or(""),
                    info.fourcc_list
                );
            }
            Event::PublishRequested {
                stream_id,
                path,
                query,
                ..
            } => {
                let query = query.unwrap_or_default();
                let ask = Admission::publish(&path, &query);
                match conn.admit(&ask, ticket(stream_id, Ask::Publish)) {
                    Ok(true) => self.publish(s, conn, stream_id, path, &query)?,
                    Ok(false) => s.admitting.push(Pending {
                        stream_id,
                        path,
                        query,
                        ask: Ask::Publish,
                    }),
                    Err(e) => self.refuse(s, stream_id, &path, Ask::Publish, e)?,
                }
            }
            Event::PlayRequested {
                stream_id,
                path,
                query,
            } => {
                let query = query.unwrap_or_default();
                let ask = Admission::play(&path, &query);
                match conn.admit(&ask, ticket(stream_id, Ask::Play)) {
                    Ok(true) => self.play(s, conn, stream_id, path, &query)?,
                    Ok(false) => s.admitting.push(Pending {
                        stream_id,
                        path,
                        query,
                        ask: Ask::Play,
                    }),
                    Err(e) => self.refuse(s, stream_id, &path, Ask::Play, e)?,
                }
            }
            Event::Media { stream_id, frame } => {
                if let Some(p) = s.pubs.iter_mut().find(|p| p.stream_id == stream_id) {
                    p.out.write(&self.host, &s.peer, frame);
                }
            }
            Event::Metadata { stream_id, frame } => {
                if let Some(p) = s.pubs.iter_mut().find(|p| p.stream_id == stream_id) {
                    p.out.set_metadata(
                        &self.host,
                        &s.peer,
                        frame,
                        meta_limits(&self.config.limits),
                    );
                }
            }
            Event::Unpublished { stream_id, path } => {
                if let Some(i) = s.pubs.iter().position(|p| p.stream_id == stream_id) {
                    s.pubs.remove(i);
                    rill_log!(self.host, Info, "{}: {path} unpublished", s.peer);
                }
            }
            Event::PlayStopped { stream_id, path } => {
                if let Some(i) = s.players.iter().position(|p| p.stream_id == stream_id) {
                    let p = s.players.remove(i);
                    rill_log!(
                        self.host,
                        Info,
                        "{}: stopped playing {path}: {}",
                        s.peer,
                        p.counts()
                    );
                }
            }
            Event::MediaDropped { stream_id, reason } => {
                let path = s
                    .pubs
                    .iter()
                    .find(|p| p.stream_id == stream_id)
                    .map_or("?", |p| p.out.path());
                rill_log!(
                    self.host,
                    Warn,
                    "{}: media of {path} dropped: {reason}",
                    s.peer
                );
            }
            Event::TimedOut { deadline, waited } => {
                if !s.closing {
                    match deadline {
                        Deadline::Handshake => rill_log!(
                            self.host,
                            Info,
                            "{}: no handshake and connect within {:?}; closing",
                            s.peer,
                            self.config.handshake_timeout
                        ),
                        // A server session has no other deadline.
                        Deadline::Idle | Deadline::Response => rill_log!(
                            self.host,
                            Info,
                            "{}: nothing received for {waited:?}; closing",
                            s.peer
                        ),
                    }
                    s.closing = true;
                    s.out.clear();
                    let _ = conn.close(RILL_END_TIMEOUT);
                }
            }
            Event::Closed => {}
        }
        Ok(())
    }

    /// Bad input or a failed answer: log why, close this connection.
    /// Opens an admitted publish, or refuses it the RTMP way.
    fn publish(
        &self,
        s: &mut Connection,
        conn: &Conn,
        stream_id: u32,
        path: String,
        query: &str,
    ) -> Result<(), Error> {
        match conn.publish(&path, query) {
            Ok(publisher) => {
                rill_log!(self.host, Info, "{}: publishing {path}", s.peer);
                s.pubs.push(Pub {
                    stream_id,
                    out: FlvPublisher::new(publisher, path),
                });
                s.core.accept_publish(stream_id)
            }
            Err(e) => self.refuse(s, stream_id, &path, Ask::Publish, e),
        }
    }

    /// Opens an admitted play, or refuses it the RTMP way.
    fn play(
        &self,
        s: &mut Connection,
        conn: &Conn,
        stream_id: u32,
        path: String,
        query: &str,
    ) -> Result<(), Error> {
        let opts = (!takes_opus(&s.core)).then(legacy_audio);
        match conn.subscribe(&path, query, opts.as_ref()) {
            Ok(sub) => {
                rill_log!(self.host, Info, "{}: playing {path}", s.peer);
                s.players.push(Play {
                    stream_id,
                    path,
                    sub,
                    gate: Gate::default(),
                    sent: 0,
                    muxed: 0,
                    warned_codec: false,
                });
                s.core.accept_play(stream_id)
            }
            Err(e) => self.refuse(s, stream_id, &path, Ask::Play, e),
        }
    }

    /// Answers a refused publish or play with its `onStatus` error. A
    /// refusal by policy (credentials, rules, a webhook) ends the
    /// connection once the answer is out; a busy name or a missing stream
    /// leaves it open for another try.
    fn refuse(
        &self,
        s: &mut Connection,
        stream_id: u32,
        path: &str,
        ask: Ask,
        e: SdkError,
    ) -> Result<(), Error> {
        rill_log!(
            self.host,
            Info,
            "{}: {} {path} refused: {e}",
            s.peer,
            ask.verb()
        );
        let policy = matches!(
            e,
            SdkError::UNAUTHORIZED | SdkError::DENIED | SdkError::TIMEOUT
        );
        let (code, why) = match (ask, e) {
            (Ask::Publish, SdkError::BUSY) => (
                "NetStream.Publish.BadName",
                "Stream already publishing or too many streams.",
            ),
            (Ask::Publish, SdkError::UNAUTHORIZED) => (
                "NetStream.Publish.Unauthorized",
                "Authentication required or failed.",
            ),
            (Ask::Publish, _) if policy => {
                ("NetStream.Publish.Unauthorized", "Publishing not allowed.")
            }
            (Ask::Publish, _) => ("NetStream.Publish.BadName", "Cannot publish."),
            (Ask::Play, SdkError::UNAUTHORIZED) => (
                "NetStream.Play.Failed",
                "Authentication required or failed.",
            ),
            (Ask::Play, SdkError::BUSY) => ("NetStream.Play.Failed", "Too many players."),
            (Ask::Play, _) if policy => ("NetStream.Play.Failed", "Playing not allowed."),
            (Ask::Play, _) => ("NetStream.Play.StreamNotFound", "No such stream."),
        };
        match ask {
            Ask::Publish => s.core.reject_publish_as(stream_id, code, why)?,
            Ask::Play => s.core.reject_play_as(stream_id, code, why)?,
        }
        s.refused |= policy;
        Ok(())
    }

    fn fail(&self, s: &mut Connection, conn: &Conn, e: &Error) -> Result<()> {
        if !s.closing {
            rill_log!(self.host, Warn, "{}: {e}; closing the connection", s.peer);
            s.closing = true;
            s.out.clear();
            conn.close(RILL_END_ERROR)?;
        }
        Ok(())
    }

    /// Sends the session's last words (even past backpressure: they are
    /// small and the host leaves room), then closes.
    fn finish(&self, s: &mut Connection, conn: &Conn, reason: u32) {
        if s.closing {
            return;
        }
        s.closing = true;
        s.out.drop_media();
        s.take_transmit();
        flush(&mut s.out, conn, true);
        let _ = conn.close(reason);
    }
}

/// One connection's state.
pub struct Connection {
    core: Session,
    peer: String,
    pubs: Vec<Pub>,
    players: Vec<Play>,
    out: Outbox<FrameRef>,
    /// The armed deadline timer and when it fires (host clock).
    timer: Option<(TimerHandle, Duration)>,
    closing: bool,
    /// Requests waiting for the host's admission (a webhook).
    admitting: Vec<Pending>,
    /// A request was refused by policy: close once the answer is out.
    refused: bool,
}

/// Whether the client announced Opus in its Enhanced RTMP `fourCcList`
/// (or `*`, every codec). Others know only legacy FLV audio.
fn takes_opus(core: &Session) -> bool {
    core.connect_info()
        .is_some_and(|c| c.fourcc_list.iter().any(|f| f == "Opus" || f == "*"))
}

/// The audio codecs of legacy FLV: a WHIP stream's Opus reaches such a
/// player as AAC, derived once per stream by a transformer.
fn legacy_audio() -> RillSubscribeOptions {
    RillSubscribeOptions::new().with_audio_codecs(&[
        RILL_CODEC_AAC,
        RILL_CODEC_MP3,
        RILL_CODEC_PCMA,
        RILL_CODEC_PCMU,
    ])
}

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Publish,
    Play,
}

impl Ask {
    fn verb(self) -> &'static str {
        match self {
            Ask::Publish => "publish",
            Ask::Play => "play",
        }
    }
}

/// A publish or play waiting for `on_admit`.
struct Pending {
    stream_id: u32,
    path: String,
    query: String,
    ask: Ask,
}

/// The admission ticket of a request: its stream id and what it asks.
fn ticket(stream_id: u32, ask: Ask) -> u64 {
    (stream_id as u64) << 1 | (ask == Ask::Play) as u64
}

impl Connection {
    /// Moves the session's queued messages to the outbox.
    fn take_transmit(&mut self) {
        while let Some(b) = self.core.poll_transmit() {
            self.out.push_bytes(b);
        }
    }
}

/// Writes what the outbox lets through (`force`: all of it).
fn flush(out: &mut Outbox<FrameRef>, conn: &Conn, force: bool) {
    out.flush(force, |o| {
        let r = match o {
            Out::Bytes(b) => conn.write(b),
            Out::Frame { frame, .. } => conn.write_frame(frame),
        };
        match r {
            Ok(Flow::Ready) => Written::Ready,
            Ok(Flow::Full) => Written::Full,
            Err(SdkError::AGAIN) => Written::Again,
            Err(_) => Written::Closed,
        }
    });
}

/// A stream this connection publishes.
struct Pub {
    stream_id: u32,
    out: FlvPublisher,
}

/// A stream this connection plays.
struct Play {
    stream_id: u32,
    path: String,
    sub: Subscriber,
    /// Where it may resume after falling behind.
    gate: Gate,
    /// Frames queued for sending.
    sent: u64,
    /// Frames this player chunked itself (the rest came from the per-frame
    /// cache, chunked by another player with the same settings).
    muxed: u64,
    warned_codec: bool,
}

impl Play {
    fn counts(&self) -> String {
        format!(
            "{} frames sent, {} muxed here, {} skipped",
            self.sent, self.muxed, self.gate.skipped
        )
    }
}

/// Wraps a host frame as the owner of a [`Bytes`] (no copy).
struct FrameBytes(FrameRef);

impl AsRef<[u8]> for FrameBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}

/// Chunks one host frame as an RTMP message for `params`.
fn serialize(params: &ChunkParams, f: &FrameRef, info: &FrameInfo) -> Result<Bytes, Error> {
    let frame = Frame {
        codec: info.codec,
        flags: info.flags,
        pts: info.pts,
        dts: info.dts,
        payload: Bytes::from_owner(FrameBytes(f.clone())),
    };
    serialize_frame(params, &frame)
}

/// The per-frame cache key of serialized bytes for `params`: FNV-1a over
/// the wire-format version and the parameters.
fn cache_key(params: &ChunkParams) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(b"rtmp-chunked/1");
    eat(&params.chunk_size.to_le_bytes());
    eat(&params.stream_id.to_le_bytes());
    h
}

fn meta_limits(l: &Limits) -> MetaLimits {
    MetaLimits {
        max_depth: l.max_amf_depth,
        max_values: l.max_amf_values,
    }
}

rill_abi::export_plugin!(Rtmp, "rtmp");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_differ_by_params_only() {
        let a = ChunkParams {
            chunk_size: 4096,
            stream_id: 1,
        };
        let b = ChunkParams {
            chunk_size: 4096,
            stream_id: 2,
        };
        let c = ChunkParams {
            chunk_size: 8192,
            stream_id: 1,
        };
        assert_eq!(cache_key(&a), cache_key(&a.clone()));
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_ne!(cache_key(&a), cache_key(&c));
    }
}
