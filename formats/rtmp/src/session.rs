//! The server side of one RTMP connection as a sans-IO state machine.
//!
//! Bytes and time in, events and bytes out:
//!
//! ```text
//! session = Session::new(limits, now);
//! loop {
//!     wait for input or session.poll_timeout(), whichever is first;
//!     on input:   n = socket.read(buf)?;           // 0 → session.close()
//!                 session.feed(now, &buf[..n])?;   // Err → log, session.close()
//!     on timeout: session.handle_timeout(now);     // may queue Event::TimedOut
//!     while let Some(ev) = session.poll_event() { handle(ev) }   // may call accept_*/reject_*/send_*
//!     while let Some(b) = session.poll_transmit() { socket.write_all(&b)? }
//! }
//! ```
//!
//! `now` is a [`Duration`] since an epoch of the caller's choosing (monotonic);
//! the session never reads a clock. Two deadlines exist, both in
//! [`Settings`]: the handshake and `connect` must be done within
//! `handshake_timeout` of the start, and a session that received nothing for
//! `idle_timeout` while it neither plays nor waits for the host's answer times
//! out ([`Event::TimedOut`]; the session is failed afterwards, close it).
//!
//! The handshake and connect are answered by the session itself. A publish or
//! play request becomes [`Event::PublishRequested`] / [`Event::PlayRequested`]
//! and waits for the host's answer ([`Session::accept_publish`],
//! [`Session::reject_publish`], ...). While an answer is pending the session
//! stops processing further inbound messages (they are queued, up to
//! [`Limits::max_queued_bytes`]), so media that a client sends right after
//! `publish` is neither lost nor delivered before the stream is accepted, and
//! the host may decide asynchronously.
//!
//! Media to players goes through [`Session::send_frame`], or, to chunk a frame
//! once for many players, [`serialize_frame`] with the [`ChunkParams`] of
//! [`Session::chunk_params`] (equal params ⇒ identical bytes) and
//! [`Session::send_serialized`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_abi::RILL_CODEC_METADATA;

use crate::amf0::Value;
use crate::chunk::{self, csid, ChunkReader, MessageHeader, RawMessage};
use crate::error::Error;
use crate::flv::{self, Frame};
use crate::handshake::ServerHandshake;
use crate::limits::Limits;
use crate::message::{self, split_aggregate, Command, Message, UserControl};
use crate::wire::Wire;

/// Outbound parameters the server announces at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Outbound chunk size, set right after connect. Large chunks cut
    /// per-chunk overhead on media; 4096 is what most servers use.
    pub chunk_size: u32,
    /// Window Acknowledgement Size sent to the client; also the window after
    /// which we acknowledge, until the client announces its own.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth sent to the client (dynamic limit).
    pub peer_bandwidth: u32,
    /// The handshake and `connect` must be done within this of the start
    /// ([`Deadline::Handshake`]); `None`: no deadline.
    pub handshake_timeout: Option<Duration>,
    /// Nothing received for this long, while no stream plays and no request
    /// awaits the host's answer: [`Deadline::Idle`]. `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            handshake_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The handshake and `connect` took too long.
    Handshake,
    /// A client's publish or play was not answered in time.
    Response,
    /// Nothing was received for the idle timeout.
    Idle,
}

/// What the client said in `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    /// Application name, without query string or surrounding slashes
    /// (falls back to the path of `tc_url` when `app` is empty).
    pub app: String,
    /// Query string of `app` (or of `tc_url`), without the `?`.
    pub query: Option<String>,
    /// `tcUrl` as sent.
    pub tc_url: Option<String>,
    /// `flashVer` (e.g. `FMLE/3.0 (compatible; FMSc/1.0)`).
    pub flash_ver: Option<String>,
    /// `swfUrl`.
    pub swf_url: Option<String>,
    /// `pageUrl`.
    pub page_url: Option<String>,
    /// `objectEncoding` (0 = AMF0, 3 = AMF3).
    pub object_encoding: f64,
    /// Enhanced RTMP `fourCcList` (codecs the client supports).
    pub fourcc_list: Vec<String>,
}

/// What happened, for the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `connect` was accepted (the session answered it already).
    Connected(ConnectInfo),
    /// The client wants to publish `path` = `app/name`. Answer with
    /// [`Session::accept_publish`] or [`Session::reject_publish`].
    PublishRequested {
        /// Message stream of the publish.
        stream_id: u32,
        /// `app/name`, query strings removed.
        path: String,
        /// The stream name's query, then the app's, joined with `&`.
        query: Option<String>,
        /// `live`, `record` or `append`.
        publish_type: String,
    },
    /// The client wants to play `path`. Answer with [`Session::accept_play`]
    /// or [`Session::reject_play`].
    PlayRequested {
        /// Message stream of the play.
        stream_id: u32,
        /// `app/name`, query strings removed.
        path: String,
        /// The stream name's query, then the app's, joined with `&`.
        query: Option<String>,
    },
    /// A media frame from an accepted publisher.
    Media {
        /// Message stream.
        stream_id: u32,
        /// The frame.
        frame: Frame,
    },
    /// Stream metadata (`@setDataFrame onMetaData`) from an accepted
    /// publisher: a frame of codec `RILL_CODEC_METADATA` whose payload is the
    /// `onMetaData` body to resend to players as a data message.
    Metadata {
        /// Message stream.
        stream_id: u32,
        /// The metadata frame.
        frame: Frame,
    },
    /// A publisher stopped (FCUnpublish, closeStream, deleteStream or close).
    Unpublished {
        /// Message stream.
        stream_id: u32,
        /// Its path.
        path: String,
    },
    /// A player stopped (closeStream, deleteStream or close).
    PlayStopped {
        /// Message stream.
        stream_id: u32,
        /// Its path.
        path: String,
    },
    /// A media message was dropped (unsupported codec, multitrack, malformed
    /// tag). Reported once per stream and reason.
    MediaDropped {
        /// Message stream.
        stream_id: u32,
        /// Why.
        reason: Error,
    },
    /// A deadline passed (see [`Settings`]): the session is failed, every
    /// later call returns [`Error::Closed`]; close the connection.
    TimedOut {
        /// Which one.
        deadline: Deadline,
        /// Since the start (handshake) or the last input (idle).
        waited: Duration,
    },
    /// [`Session::close`] was called; the cleanup events precede this one.
    Closed,
}

/// Everything that determines the chunked bytes of a media message besides
/// the frame itself. Players with equal params can share serialized frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkParams {
    /// Outbound chunk size.
    pub chunk_size: u32,
    /// Message stream id of the play.
    pub stream_id: u32,
}

/// Chunks one frame as an RTMP message for `params`: the unit of a per-frame
/// cache ("mux once, send to many"). Audio goes on csid 4, video on 6,
/// metadata on 5; each message is self-contained, so the bytes are valid at any
/// point of any connection with the same params.
pub fn serialize_frame(params: &ChunkParams, frame: &Frame) -> Result<Bytes, Error> {
    let mut out = BytesMut::new();
    encode_frame(params, frame, &mut out)?;
    Ok(out.freeze())
}

fn encode_frame(params: &ChunkParams, frame: &Frame, out: &mut BytesMut) -> Result<(), Error> {
    let prefix = flv::mux_prefix(frame)?;
    let header = MessageHeader::media(prefix.tag_type, prefix.timestamp, params.stream_id);
    chunk::encode_message(
        params.chunk_size,
        &header,
        &[prefix.as_bytes(), &frame.payload],
        out,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Idle,
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
}

#[derive(Debug)]
struct Stream {
    role: Role,
    path: String,
    /// Stream name as the client gave it (FCUnpublish refers to it).
    name: String,
    /// Drop reasons already reported.
    warned: Vec<Error>,
}

impl Stream {
    fn idle() -> Self {
        Stream {
            role: Role::Idle,
            path: String::new(),
            name: String::new(),
            warned: Vec::new(),
        }
    }
}

/// A connection's streams by id. A connection has one or two, so a small
/// vector: a `BTreeMap`'s first node cost each player most of a kilobyte.
#[derive(Debug, Default)]
struct Streams(Vec<(u32, Stream)>);

impl Streams {
    fn get(&self, id: &u32) -> Option<&Stream> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, s)| s)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Stream> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, s)| s)
    }

    fn contains_key(&self, id: &u32) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: u32, st: Stream) {
        match self.get_mut(&id) {
            Some(old) => *old = st,
            None => {
                self.0.reserve_exact(1);
                self.0.push((id, st));
            }
        }
    }

    fn remove(&mut self, id: &u32) -> Option<Stream> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(i).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Ids in ascending order.
    fn keys(&self) -> impl Iterator<Item = &u32> {
        let mut ids: Vec<&u32> = self.0.iter().map(|(k, _)| k).collect();
        ids.sort();
        ids.into_iter()
    }

    fn iter(&self) -> impl Iterator<Item = &(u32, Stream)> {
        self.0.iter()
    }
}

/// At most this many distinct drop reasons are reported per stream.
const MAX_WARNINGS: usize = 8;

enum Phase {
    Handshake(Box<ServerHandshake>),
    Chunks,
    Failed,
    Closed,
}

/// One server-side RTMP connection. See the module documentation for the
/// calling pattern.
pub struct Session {
    limits: Limits,
    settings: Settings,
    phase: Phase,
    reader: ChunkReader,
    wire: Wire,
    /// Parsed messages not yet processed (non-empty only while a decision is
    /// pending) and the payload bytes they hold.
    inbox: VecDeque<RawMessage>,
    inbox_bytes: usize,
    /// The stream whose publish/play awaits the host's answer.
    pending: Option<u32>,
    events: VecDeque<Event>,
    connect: Option<ConnectInfo>,
    streams: Streams,
    next_stream_id: u32,
    /// When the session started and last received bytes.
    started: Duration,
    last_input: Duration,
}

impl Session {
    /// A server session with default [`Settings`], started at `now`.
    pub fn new(limits: Limits, now: Duration) -> Self {
        Self::with_settings(limits, Settings::default(), now)
    }

    /// A server session with explicit settings, started at `now`.
    pub fn with_settings(limits: Limits, settings: Settings, now: Duration) -> Self {
        Self::with_handshake(limits, settings, ServerHandshake::new(), now)
    }

    /// A server session with a prepared handshake (deterministic randomness
    /// for tests and fuzzing), started at `now`.
    pub fn with_handshake(
        limits: Limits,
        settings: Settings,
        handshake: ServerHandshake,
        now: Duration,
    ) -> Self {
        Session {
            reader: ChunkReader::new(&limits),
            wire: Wire::new(settings.window_ack_size),
            limits,
            settings,
            phase: Phase::Handshake(Box::new(handshake)),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            pending: None,
            events: VecDeque::new(),
            connect: None,
            streams: Streams::default(),
            next_stream_id: 1,
            started: now,
            last_input: now,
        }
    }

    /// The client's `connect`, once received.
    pub fn connect_info(&self) -> Option<&ConnectInfo> {
        self.connect.as_ref()
    }

    /// Feeds bytes read from the socket at `now`. Protocol replies are
    /// queued for [`Session::poll_transmit`], happenings for
    /// [`Session::poll_event`].
    ///
    /// After an error the session is failed: every later call returns
    /// [`Error::Closed`]; call [`Session::close`] for the cleanup events.
    pub fn feed(&mut self, now: Duration, data: &[u8]) -> Result<(), Error> {
        if self.check_open().is_ok() {
            self.last_input = self.last_input.max(now);
        }
        let result = self.feed_inner(data);
        self.fail_on(result)
    }

    /// When [`Session::handle_timeout`] must be called next (a deadline of
    /// [`Settings`]), if ever. Calling it earlier is harmless.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.check_open().is_err() {
            return None;
        }
        let handshake = match self.connect {
            None => self.settings.handshake_timeout.map(|t| self.started + t),
            Some(_) => None,
        };
        let idle = match self.is_busy() {
            false => self.settings.idle_timeout.map(|t| self.last_input + t),
            true => None,
        };
        match (handshake, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tells the session the time: a deadline that passed queues
    /// [`Event::TimedOut`] and fails the session. Does nothing before
    /// [`Session::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.check_open().is_err() {
            return;
        }
        let due = |t: Option<Duration>, from: Duration| t.is_some_and(|t| now >= from + t);
        let (deadline, from) =
            if self.connect.is_none() && due(self.settings.handshake_timeout, self.started) {
                (Deadline::Handshake, self.started)
            } else if !self.is_busy() && due(self.settings.idle_timeout, self.last_input) {
                (Deadline::Idle, self.last_input)
            } else {
                return;
            };
        let _ = self.fail_on(Err(Error::Closed));
        self.events.push_back(Event::TimedOut {
            deadline,
            waited: now.saturating_sub(from),
        });
    }

    /// Whether the session waits on the host (a decision) or serves a
    /// player: then silence from the peer is not idleness.
    fn is_busy(&self) -> bool {
        self.pending.is_some() || self.streams.iter().any(|(_, s)| s.role == Role::Playing)
    }

    fn feed_inner(&mut self, mut data: &[u8]) -> Result<(), Error> {
        if let Phase::Handshake(hs) = &mut self.phase {
            let mut reply = Vec::new();
            let used = hs.feed(data, &mut reply)?;
            let done = hs.is_done();
            if !reply.is_empty() {
                self.push_out(Bytes::from(reply));
            }
            data = &data[used..];
            if done {
                self.phase = Phase::Chunks;
            }
        }
        match self.phase {
            Phase::Chunks => {}
            Phase::Handshake(_) => return Ok(()),
            Phase::Failed | Phase::Closed => return Err(Error::Closed),
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::new();
        self.reader.feed(data, &mut msgs)?;
        self.wire.count_received(data.len());
        for m in msgs {
            self.inbox_bytes += m.payload.len();
            self.inbox.push_back(m);
        }
        if self.inbox_bytes > self.limits.max_queued_bytes {
            return Err(Error::QueueFull);
        }
        self.process()
    }

    fn fail_on(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        if result.is_err() && !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Failed;
            self.inbox.clear();
            self.inbox_bytes = 0;
        }
        result
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.wire.poll_transmit()
    }

    /// Bytes queued for the socket (for the host's backpressure).
    pub fn pending_transmit_bytes(&self) -> usize {
        self.wire.pending_bytes()
    }

    /// Accepts a requested publish: answers `NetStream.Publish.Start` and
    /// resumes processing (media events follow).
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), Error> {
        let path = self.decide(stream_id, Role::PublishPending, Role::Publishing)?;
        self.send_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{path} is now published."),
        )?;
        let r = self.process();
        self.fail_on(r)
    }

    /// Rejects a requested publish with `NetStream.Publish.BadName` (the code
    /// clients understand for "name taken or not allowed").
    pub fn reject_publish(&mut self, stream_id: u32, description: &str) -> Result<(), Error> {
        self.reject_publish_as(stream_id, "NetStream.Publish.BadName", description)
    }

    /// Rejects a requested publish with status `code` (an error-level
    /// `onStatus`): `NetStream.Publish.Unauthorized` for missing or wrong
    /// credentials, `NetStream.Publish.BadName` for a name taken or not
    /// allowed.
    pub fn reject_publish_as(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        self.decide(stream_id, Role::PublishPending, Role::Idle)?;
        self.send_status(stream_id, "error", code, description)?;
        let r = self.process();
        self.fail_on(r)
    }

    /// Accepts a requested play: Stream Begin, `NetStream.Play.Reset`,
    /// `NetStream.Play.Start`, `|RtmpSampleAccess`. Send metadata and frames
    /// afterwards.
    pub fn accept_play(&mut self, stream_id: u32) -> Result<(), Error> {
        let path = self.decide(stream_id, Role::PlayPending, Role::Playing)?;
        self.send_message(
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
            csid::CONTROL,
            0,
        )?;
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {path}."),
        )?;
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {path}."),
        )?;
        let access = Message::Data(vec![
            Value::string("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true),
        ]);
        self.send_message(&access, csid::STREAM, stream_id)?;
        let r = self.process();
        self.fail_on(r)
    }

    /// Rejects a requested play with `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, description: &str) -> Result<(), Error> {
        self.reject_play_as(stream_id, "NetStream.Play.StreamNotFound", description)
    }

    /// Rejects a requested play with status `code` (an error-level
    /// `onStatus`, e.g. `NetStream.Play.Failed` for a refusal).
    pub fn reject_play_as(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        self.decide(stream_id, Role::PlayPending, Role::Idle)?;
        self.send_status(stream_id, "error", code, description)?;
        let r = self.process();
        self.fail_on(r)
    }

    fn decide(&mut self, stream_id: u32, from: Role, to: Role) -> Result<String, Error> {
        self.check_open()?;
        if self.pending != Some(stream_id) {
            return Err(Error::InvalidState("no such request pending"));
        }
        let st = self
            .streams
            .get_mut(&stream_id)
            .filter(|s| s.role == from)
            .ok_or(Error::InvalidState("no such request pending"))?;
        st.role = to;
        self.pending = None;
        Ok(st.path.clone())
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Failed | Phase::Closed => Err(Error::Closed),
            _ => Ok(()),
        }
    }

    /// Chunk parameters of a playing stream, the key of a per-frame cache.
    pub fn chunk_params(&self, stream_id: u32) -> Option<ChunkParams> {
        let st = self.streams.get(&stream_id)?;
        (st.role == Role::Playing).then_some(ChunkParams {
            chunk_size: self.wire.writer.chunk_size(),
            stream_id,
        })
    }

    /// Muxes and queues one frame (metadata frames become `onMetaData` data
    /// messages) for a playing stream.
    pub fn send_frame(&mut self, stream_id: u32, frame: &Frame) -> Result<(), Error> {
        self.check_open()?;
        let params = self
            .chunk_params(stream_id)
            .ok_or(Error::InvalidState("stream is not playing"))?;
        encode_frame(&params, frame, &mut self.wire.tail)
    }

    /// Queues bytes made by [`serialize_frame`] with this session's
    /// [`Session::chunk_params`] (the bytes are not inspected).
    pub fn send_serialized(&mut self, bytes: Bytes) {
        if self.check_open().is_ok() {
            self.push_out(bytes);
        }
    }

    /// Returns a playing stream to idle because the host ended the play (its
    /// stream went away, the player fell too far behind): no more frames, and
    /// no [`Event::PlayStopped`] (the caller knows). Send the player its
    /// `onStatus` first ([`Session::send_status`]).
    pub fn end_play(&mut self, stream_id: u32) {
        if let Some(st) = self.streams.get_mut(&stream_id) {
            if st.role == Role::Playing {
                st.role = Role::Idle;
                st.path.clear();
                st.warned.clear();
            }
        }
    }

    /// Tells a player its stream's publisher left (`NetStream.Play.
    /// UnpublishNotify`, Stream EOF). The play stays open: if the publisher
    /// returns, frames may simply continue.
    pub fn notify_unpublished(&mut self, stream_id: u32) -> Result<(), Error> {
        let path = match self.streams.get(&stream_id) {
            Some(st) if st.role == Role::Playing => st.path.clone(),
            _ => return Err(Error::InvalidState("stream is not playing")),
        };
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{path} is now unpublished."),
        )?;
        self.send_message(
            &Message::UserControl(UserControl::StreamEof(stream_id)),
            csid::CONTROL,
            0,
        )
    }

    /// Sends an `onStatus` on a message stream.
    pub fn send_status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        self.check_open()?;
        let cmd = Command::new(
            "onStatus",
            0.0,
            Value::Null,
            vec![message::status(level, code, description)],
        );
        self.send_message(&Message::Command(cmd), csid::STREAM, stream_id)
    }

    /// Ends the session (socket closed, or after an error): queues
    /// [`Event::Unpublished`] / [`Event::PlayStopped`] for every active stream,
    /// then [`Event::Closed`]. Idempotent.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.phase = Phase::Closed;
        self.inbox.clear();
        self.inbox_bytes = 0;
        self.pending = None;
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.end_stream(id);
        }
        self.events.push_back(Event::Closed);
    }

    // ---- inbound processing ----

    fn process(&mut self) -> Result<(), Error> {
        while self.pending.is_none() {
            let Some(raw) = self.inbox.pop_front() else {
                break;
            };
            self.inbox_bytes -= raw.payload.len();
            self.handle(raw)?;
        }
        Ok(())
    }

    fn handle(&mut self, raw: RawMessage) -> Result<(), Error> {
        match raw.type_id {
            chunk::AUDIO | chunk::VIDEO => {
                self.on_media(raw.stream_id, raw.type_id, &raw.payload, raw.timestamp);
                Ok(())
            }
            chunk::AGGREGATE => {
                if !self.is_publishing(raw.stream_id) {
                    return Ok(());
                }
                match split_aggregate(&raw.payload, raw.timestamp) {
                    Ok(subs) => {
                        for s in subs {
                            self.on_media(raw.stream_id, s.type_id, &s.payload, s.timestamp);
                        }
                    }
                    Err(e) => self.drop_media(raw.stream_id, e),
                }
                Ok(())
            }
            chunk::DATA_AMF0 | chunk::DATA_AMF3 => {
                if self.is_publishing(raw.stream_id) {
                    let body = if raw.type_id == chunk::DATA_AMF3 {
                        raw.payload.slice(1.min(raw.payload.len())..)
                    } else {
                        raw.payload.clone()
                    };
                    self.on_media(raw.stream_id, flv::TAG_SCRIPT, &body, raw.timestamp);
                }
                Ok(())
            }
            _ => {
                let l = &self.limits;
                let msg = Message::decode_limited(&raw, l.max_amf_depth, l.max_amf_values)?;
                match self.wire.on_control(msg)? {
                    Some(cmd) => self.on_command(raw.stream_id, cmd),
                    None => Ok(()),
                }
            }
        }
    }

    fn is_publishing(&self, stream_id: u32) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|s| s.role == Role::Publishing)
    }

    fn on_media(&mut self, stream_id: u32, tag_type: u8, body: &Bytes, timestamp: u32) {
        if !self.is_publishing(stream_id) {
            return;
        }
        let l = &self.limits;
        match flv::demux(tag_type, body, timestamp, l.max_amf_depth, l.max_amf_values) {
            Ok(Some(frame)) if frame.codec == RILL_CODEC_METADATA => {
                self.events.push_back(Event::Metadata { stream_id, frame })
            }
            Ok(Some(frame)) => self.events.push_back(Event::Media { stream_id, frame }),
            Ok(None) => {}
            Err(e) => self.drop_media(stream_id, e.into()),
        }
    }

    fn drop_media(&mut self, stream_id: u32, reason: Error) {
        if let Some(st) = self.streams.get_mut(&stream_id) {
            if st.warned.len() < MAX_WARNINGS && !st.warned.contains(&reason) {
                st.warned.push(reason.clone());
                self.events
                    .push_back(Event::MediaDropped { stream_id, reason });
            }
        }
    }

    fn on_command(&mut self, msg_stream: u32, cmd: Command) -> Result<(), Error> {
        let txn = cmd.transaction_id;
        if cmd.name == "connect" {
            return self.on_connect(cmd);
        }
        if self.connect.is_none() {
            return Err(Error::Protocol("command before connect"));
        }
        let arg_str = |i: usize| cmd.args.get(i).and_then(Value::as_str).map(str::to_owned);
        match cmd.name.as_str() {
            "createStream" => {
                // Bound the live streams, not the calls: a client may create
                // and delete streams for as long as it is connected.
                if self.streams.len() as u32 >= self.limits.max_streams {
                    return Err(Error::TooManyStreams(self.limits.max_streams));
                }
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.checked_add(1).unwrap_or(1);
                self.streams.insert(id, Stream::idle());
                self.reply(txn, "_result", vec![Value::Number(id as f64)])
            }
            "publish" => {
                let name = arg_str(0).unwrap_or_default();
                let kind = arg_str(1).unwrap_or_else(|| "live".to_owned());
                self.on_publish(msg_stream, &name, kind)
            }
            "play" => {
                let name = arg_str(0).unwrap_or_default();
                self.on_play(msg_stream, &name)
            }
            "play2" => {
                let name = cmd
                    .args
                    .first()
                    .and_then(|o| o.get("streamName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.on_play(msg_stream, &name)
            }
            "FCPublish" => {
                let name = arg_str(0).unwrap_or_default();
                self.call(
                    "onFCPublish",
                    csid::COMMAND,
                    0,
                    "NetStream.Publish.Start",
                    &name,
                )?;
                self.reply_if_asked(txn, vec![Value::Undefined])
            }
            "FCUnpublish" => {
                let name = arg_str(0).unwrap_or_default();
                let (bare, _) = split_query(&name);
                let bare = bare.trim_matches('/');
                let ids: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.role == Role::Publishing && s.name == bare)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.end_stream(id);
                }
                self.call(
                    "onFCUnpublish",
                    csid::COMMAND,
                    0,
                    "NetStream.Unpublish.Success",
                    &name,
                )?;
                self.reply_if_asked(txn, vec![Value::Undefined])
            }
            "closeStream" => {
                self.end_stream(msg_stream);
                Ok(())
            }
            "deleteStream" => {
                if let Some(id) = cmd.args.first().and_then(Value::as_f64) {
                    let id = id as u32;
                    self.end_stream(id);
                    self.streams.remove(&id);
                }
                Ok(())
            }
            "getStreamLength" => self.reply_if_asked(txn, vec![Value::Number(0.0)]),
            "releaseStream" | "FCSubscribe" | "FCUnsubscribe" | "checkbw" | "_checkbw" => {
                self.reply_if_asked(txn, vec![Value::Undefined])
            }
            // Answers to calls we never make, and notifications.
            "_result" | "_error" | "onStatus" | "onBWDone" => Ok(()),
            _ if txn != 0.0 => {
                let info = message::status(
                    "error",
                    "NetConnection.Call.Failed",
                    &format!("Method not found ({}).", cmd.name),
                );
                self.reply(txn, "_error", vec![info])
            }
            // Fire-and-forget calls we do not implement (pause, seek,
            // receiveAudio, ...) need no answer.
            _ => Ok(()),
        }
    }

    fn on_connect(&mut self, cmd: Command) -> Result<(), Error> {
        if self.connect.is_some() {
            return Err(Error::Protocol("connect sent twice"));
        }
        let obj = &cmd.object;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let tc_url = text("tcUrl");
        let raw_app = text("app").unwrap_or_default();
        let (app_part, mut query) = split_query(&raw_app);
        let mut app = app_part.trim_matches('/').to_owned();
        if app.is_empty() {
            if let Some(url) = &tc_url {
                let (path, q) = split_query(tc_url_path(url));
                app = path.trim_matches('/').to_owned();
                query = query.or(q);
            }
        } else if query.is_none() {
            query = tc_url.as_deref().and_then(|u| split_query(u).1);
        }
        let query = query.map(str::to_owned);
        let object_encoding = obj
            .get("objectEncoding")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let fourcc_list: Vec<String> = match obj.get("fourCcList") {
            Some(Value::StrictArray(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };

        self.send_window_ack(self.settings.window_ack_size)?;
        let bw = Message::SetPeerBandwidth {
            size: self.settings.peer_bandwidth,
            limit: 2,
        };
        self.send_message(&bw, csid::CONTROL, 0)?;
        self.send_message(
            &Message::SetChunkSize(self.settings.chunk_size),
            csid::CONTROL,
            0,
        )?;

        let mut props = vec![
            ("fmsVer".to_owned(), Value::string("FMS/3,0,1,123")),
            ("capabilities".to_owned(), Value::Number(31.0)),
        ];
        if !fourcc_list.is_empty() {
            // Enhanced RTMP: the server states the codecs it accepts; a relay
            // forwards any, so echo the client's list.
            let list = fourcc_list
                .iter()
                .map(|s| Value::string(s.as_str()))
                .collect();
            props.push(("fourCcList".to_owned(), Value::StrictArray(list)));
        }
        let mut info = message::status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Value::Object(p) = &mut info {
            p.push(("objectEncoding".to_owned(), Value::Number(object_encoding)));
        }
        let result = Command::new(
            "_result",
            cmd.transaction_id,
            Value::Object(props),
            vec![info],
        );
        self.send_message(&Message::Command(result), csid::COMMAND, 0)?;

        let info = ConnectInfo {
            app,
            query,
            tc_url,
            flash_ver: text("flashVer"),
            swf_url: text("swfUrl"),
            page_url: text("pageUrl"),
            object_encoding,
            fourcc_list,
        };
        self.connect = Some(info.clone());
        self.events.push_back(Event::Connected(info));
        Ok(())
    }

    /// Looks up (or, for clients that skip createStream, creates) the stream
    /// a publish/play names, and checks it is free.
    fn claim_stream(&mut self, stream_id: u32) -> Result<Option<&mut Stream>, Error> {
        if stream_id == 0 {
            return Err(Error::Protocol("publish or play on stream 0"));
        }
        if !self.streams.contains_key(&stream_id) {
            if self.streams.len() as u32 >= self.limits.max_streams {
                return Err(Error::TooManyStreams(self.limits.max_streams));
            }
            self.streams.insert(stream_id, Stream::idle());
        }
        let st = self.streams.get_mut(&stream_id).expect("inserted above");
        Ok((st.role == Role::Idle).then_some(st))
    }

    fn stream_path(&self, name: &str) -> (String, String, Option<String>) {
        let (bare, q) = split_query(name);
        let bare = bare.trim_matches('/').to_owned();
        let app = self
            .connect
            .as_ref()
            .map(|c| c.app.as_str())
            .unwrap_or_default();
        let app_query = self.connect.as_ref().and_then(|c| c.query.as_deref());
        let path = if app.is_empty() {
            bare.clone()
        } else {
            format!("{app}/{bare}")
        };
        let query = match (q, app_query) {
            (Some(a), Some(b)) => Some(format!("{a}&{b}")),
            (a, b) => a.or(b).map(str::to_owned),
        };
        (bare, path, query)
    }

    fn on_publish(
        &mut self,
        stream_id: u32,
        name: &str,
        publish_type: String,
    ) -> Result<(), Error> {
        let (bare, path, query) = self.stream_path(name);
        if bare.is_empty() {
            return self.send_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "Empty stream name.",
            );
        }
        let Some(st) = self.claim_stream(stream_id)? else {
            return self.send_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "Stream already in use.",
            );
        };
        st.role = Role::PublishPending;
        st.path = path.clone();
        st.name = bare;
        self.pending = Some(stream_id);
        self.events.push_back(Event::PublishRequested {
            stream_id,
            path,
            query,
            publish_type,
        });
        Ok(())
    }

    fn on_play(&mut self, stream_id: u32, name: &str) -> Result<(), Error> {
        let (bare, path, query) = self.stream_path(name);
        if bare.is_empty() {
            return self.send_status(
                stream_id,
                "error",
                "NetStream.Play.StreamNotFound",
                "Empty stream name.",
            );
        }
        let Some(st) = self.claim_stream(stream_id)? else {
            return self.send_status(
                stream_id,
                "error",
                "NetStream.Play.Failed",
                "Stream already in use.",
            );
        };
        st.role = Role::PlayPending;
        st.path = path.clone();
        st.name = bare;
        self.pending = Some(stream_id);
        self.events.push_back(Event::PlayRequested {
            stream_id,
            path,
            query,
        });
        Ok(())
    }

    /// Returns an active stream to idle, reporting its end.
    fn end_stream(&mut self, stream_id: u32) {
        let Some(st) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let path = std::mem::take(&mut st.path);
        let event = match st.role {
            Role::Publishing => Some(Event::Unpublished { stream_id, path }),
            Role::Playing => Some(Event::PlayStopped { stream_id, path }),
            _ => None,
        };
        st.role = Role::Idle;
        st.warned.clear();
        self.events.extend(event);
    }

    // ---- outbound ----

    fn push_out(&mut self, bytes: Bytes) {
        self.wire.push_out(bytes);
    }

    fn send_message(&mut self, msg: &Message, csid: u32, stream_id: u32) -> Result<(), Error> {
        self.wire.send(msg, csid, stream_id)
    }

    fn send_window_ack(&mut self, size: u32) -> Result<(), Error> {
        self.wire.send_window_ack(size)
    }

    fn reply(&mut self, txn: f64, name: &str, args: Vec<Value>) -> Result<(), Error> {
        let cmd = Command::new(name, txn, Value::Null, args);
        self.send_message(&Message::Command(cmd), csid::COMMAND, 0)
    }

    fn reply_if_asked(&mut self, txn: f64, args: Vec<Value>) -> Result<(), Error> {
        if txn == 0.0 {
            return Ok(());
        }
        self.reply(txn, "_result", args)
    }

    fn call(
        &mut self,
        name: &str,
        csid: u32,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), Error> {
        let cmd = Command::new(
            name,
            0.0,
            Value::Null,
            vec![message::status("status", code, description)],
        );
        self.send_message(&Message::Command(cmd), csid, stream_id)
    }
}

/// Splits `a?b` into `("a", Some("b"))`; an empty query is `None`.
fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((a, q)) => (a, (!q.is_empty()).then_some(q)),
        None => (s, None),
    }
}

/// The path part of `rtmp://host[:port]/path`.
fn tc_url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/').map_or("", |(_, p)| p)
}
