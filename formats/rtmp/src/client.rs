//! The client side of one RTMP connection as a sans-IO state machine: what a
//! publisher (an encoder, a relay pushing out) or a player (a relay pulling,
//! the load generator) speaks. The same shape as the server
//! [`Session`](crate::Session): bytes and time in, events and bytes out.
//!
//! ```text
//! client = ClientSession::new(limits, settings, Connect::new(app, tc_url), now);
//! client.publish("stream")?;          // or play("stream"); may come before Connected
//! loop {
//!     while let Some(b) = client.poll_transmit() { socket.write_all(&b)? }   // C0+C1 first
//!     wait for input or client.poll_timeout(), whichever is first;
//!     on input:   client.feed(now, &buf[..n])?;
//!     on timeout: client.handle_timeout(now);
//!     while let Some(ev) = client.poll_event() { handle(ev) }   // Publishing → send_frame ...
//! }
//! ```
//!
//! The client does the handshake (digest form, as ffmpeg), sends `connect`
//! once it is done, and for every [`ClientSession::publish`] or
//! [`ClientSession::play`] (queued until the connection is up) makes a
//! stream (`createStream`) and asks for it, as ffmpeg does. The server's
//! answers become [`ClientEvent`]s; pings and acknowledgements are answered
//! here.
//!
//! Deadlines (see [`ClientSettings`]): the handshake and `connect` must be
//! answered within `response_timeout` of the start ([`Deadline::Handshake`]),
//! each publish or play within `response_timeout` of being asked
//! ([`Deadline::Response`]), and, if set, something must arrive every
//! `idle_timeout` ([`Deadline::Idle`]).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rill_abi::RILL_CODEC_METADATA;

use crate::amf0::Value;
use crate::chunk::{self, csid, ChunkReader, RawMessage};
use crate::error::Error;
use crate::flv::{self, Frame};
use crate::handshake::{ClientHandshake, Mode, Scheme};
use crate::limits::Limits;
use crate::message::{split_aggregate, Command, Message, UserControl};
use crate::session::Deadline;
use crate::wire::Wire;

/// How a player receives media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaMode {
    /// Demuxed: [`ClientEvent::Media`] and [`ClientEvent::Metadata`] frames.
    Frames,
    /// As sent: [`ClientEvent::Tag`] with the FLV tag body of every audio,
    /// video and data message (aggregates split), no parsing (load testing).
    Tags,
}

/// Client behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// Handshake form; the digest form (scheme 1) is what ffmpeg sends and
    /// what servers that check for Flash expect.
    pub handshake: Mode,
    /// Outbound chunk size, set once connected (128 keeps the default).
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced once connected (how often the
    /// server should acknowledge what we send); `None`: not announced.
    pub window_ack_size: Option<u32>,
    /// Buffer length a player announces (Set Buffer Length), milliseconds.
    pub buffer_ms: u32,
    /// How a player receives media.
    pub media: MediaMode,
    /// The handshake and `connect`, and then each publish or play, must be
    /// answered within this; `None`: wait for ever.
    pub response_timeout: Option<Duration>,
    /// Nothing received for this long: [`Deadline::Idle`]. `None`: never (a
    /// publisher hears little from the server).
    pub idle_timeout: Option<Duration>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            handshake: Mode::Digest(Scheme::Scheme1),
            chunk_size: 4096,
            window_ack_size: None,
            buffer_ms: 1000,
            media: MediaMode::Frames,
            response_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
        }
    }
}

/// What the client says in `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// Application (the first path segment of `rtmp://host/app/stream`).
    pub app: String,
    /// `tcUrl`: `rtmp://host[:port]/app`.
    pub tc_url: String,
    /// `flashVer`.
    pub flash_ver: String,
    /// Enhanced RTMP `fourCcList` (codecs we handle); empty: not sent.
    pub fourcc_list: Vec<String>,
}

impl Connect {
    /// `connect` to `app` at `tc_url`, presenting as ffmpeg does on Linux.
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> Self {
        Connect {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: "LNX 9,0,124,2".to_owned(),
            fourcc_list: Vec::new(),
        }
    }

    fn command_object(&self) -> Value {
        let mut props = vec![
            ("app".to_owned(), Value::string(self.app.as_str())),
            (
                "flashVer".to_owned(),
                Value::string(self.flash_ver.as_str()),
            ),
            ("tcUrl".to_owned(), Value::string(self.tc_url.as_str())),
            ("fpad".to_owned(), Value::Boolean(false)),
            ("capabilities".to_owned(), Value::Number(15.0)),
            ("audioCodecs".to_owned(), Value::Number(4071.0)),
            ("videoCodecs".to_owned(), Value::Number(252.0)),
            ("videoFunction".to_owned(), Value::Number(1.0)),
        ];
        if !self.fourcc_list.is_empty() {
            let list = self
                .fourcc_list
                .iter()
                .map(|s| Value::string(s.as_str()))
                .collect();
            props.push(("fourCcList".to_owned(), Value::StrictArray(list)));
        }
        Value::Object(props)
    }
}

/// A request the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `connect` (the session is failed afterwards).
    Connect,
    /// Publishing this stream name.
    Publish(String),
    /// Playing this stream name.
    Play(String),
}

/// What happened, for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted `connect`.
    Connected {
        /// Its properties (`fmsVer`, `capabilities`, `fourCcList`, ...).
        properties: Value,
        /// Its information object (`code` `NetConnection.Connect.Success`).
        info: Value,
    },
    /// A publish started (`NetStream.Publish.Start`): send media on
    /// `stream_id` ([`ClientSession::send_frame`]).
    Publishing {
        /// Message stream.
        stream_id: u32,
        /// The name asked for.
        name: String,
    },
    /// A play started (`NetStream.Play.Start`): media follows.
    Playing {
        /// Message stream.
        stream_id: u32,
        /// The name asked for.
        name: String,
    },
    /// The server refused a request (`_error`, or an error `onStatus` in
    /// answer to publish or play; the stream is deleted).
    Rejected {
        /// What was refused.
        request: Request,
        /// The status code (`NetStream.Publish.BadName`, ...).
        code: String,
        /// The server's description.
        description: String,
    },
    /// Any other `onStatus` (`NetStream.Play.Reset`, `...UnpublishNotify`,
    /// `...Play.Stop`, an error ending a publish, ...).
    Status {
        /// Message stream.
        stream_id: u32,
        /// `status` or `error`.
        level: String,
        /// The code.
        code: String,
        /// The description.
        description: String,
    },
    /// A media frame of a played stream ([`MediaMode::Frames`]).
    Media {
        /// Message stream.
        stream_id: u32,
        /// The frame.
        frame: Frame,
    },
    /// Metadata (`onMetaData`) of a played stream ([`MediaMode::Frames`]): a
    /// frame of codec `RILL_CODEC_METADATA`.
    Metadata {
        /// Message stream.
        stream_id: u32,
        /// The metadata frame.
        frame: Frame,
    },
    /// A message of a played stream as sent ([`MediaMode::Tags`]).
    Tag {
        /// Message stream.
        stream_id: u32,
        /// FLV tag type = message type: 8 audio, 9 video, 18 data.
        tag_type: u8,
        /// Timestamp, milliseconds.
        timestamp: u32,
        /// The FLV tag body.
        body: Bytes,
    },
    /// A media message could not be demuxed. Reported once per stream and
    /// reason.
    MediaDropped {
        /// Message stream.
        stream_id: u32,
        /// Why.
        reason: Error,
    },
    /// A deadline passed (see [`ClientSettings`]): the session is failed.
    TimedOut {
        /// Which one.
        deadline: Deadline,
        /// Since the start, the request, or the last input.
        waited: Duration,
    },
    /// [`ClientSession::close`] was called.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Publish(String),
    Play(String),
}

impl Op {
    fn request(&self) -> Request {
        match self {
            Op::Publish(n) => Request::Publish(n.clone()),
            Op::Play(n) => Request::Play(n.clone()),
        }
    }
}

#[derive(Debug)]
enum Call {
    Connect,
    CreateStream(Op),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    name: String,
    role: Role,
    /// When it was asked for (the response deadline runs from here).
    since: Duration,
    /// Drop reasons already reported.
    warned: Vec<Error>,
}

/// At most this many distinct drop reasons are reported per stream.
const MAX_WARNINGS: usize = 8;

/// `@setDataFrame` as an AMF0 string: what a publisher puts before
/// `onMetaData`.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

enum Phase {
    Handshake(Box<ClientHandshake>),
    /// `connect` sent, its answer awaited.
    Connecting,
    Connected,
    Failed,
    Closed,
}

/// One client-side RTMP connection. See the module documentation for the
/// calling pattern.
pub struct ClientSession {
    limits: Limits,
    settings: ClientSettings,
    connect: Connect,
    phase: Phase,
    reader: ChunkReader,
    wire: Wire,
    events: VecDeque<ClientEvent>,
    /// Requests made before the connection was up, with when.
    queued: Vec<(Op, Duration)>,
    /// Calls awaiting `_result`: transaction id, call, when it was asked.
    calls: Vec<(f64, Call, Duration)>,
    next_txn: f64,
    streams: Vec<Stream>,
    started: Duration,
    last_input: Duration,
}

impl ClientSession {
    /// A client that connects with `connect`, started at `now`; its C0+C1
    /// are ready for [`ClientSession::poll_transmit`].
    pub fn new(limits: Limits, settings: ClientSettings, connect: Connect, now: Duration) -> Self {
        let hs = ClientHandshake::new(settings.handshake);
        Self::with_handshake(limits, settings, connect, hs, now)
    }

    /// As [`ClientSession::new`] with a prepared handshake and its C0+C1
    /// (deterministic randomness for tests).
    pub fn with_handshake(
        limits: Limits,
        settings: ClientSettings,
        connect: Connect,
        (handshake, c0c1): (ClientHandshake, Vec<u8>),
        now: Duration,
    ) -> Self {
        let mut wire = Wire::new(2_500_000);
        wire.push_out(Bytes::from(c0c1));
        ClientSession {
            reader: ChunkReader::new(&limits),
            limits,
            settings,
            connect,
            phase: Phase::Handshake(Box::new(handshake)),
            wire,
            events: VecDeque::new(),
            queued: Vec::new(),
            calls: Vec::new(),
            next_txn: 1.0,
            streams: Vec::new(),
            started: now,
            last_input: now,
        }
    }

    /// Whether the server accepted `connect`.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// Feeds bytes read from the socket at `now`. After an error the session
    /// is failed: every later call returns [`Error::Closed`].
    pub fn feed(&mut self, now: Duration, data: &[u8]) -> Result<(), Error> {
        if self.check_open().is_ok() {
            self.last_input = self.last_input.max(now);
        }
        let result = self.feed_inner(now, data);
        if result.is_err() {
            self.fail();
        }
        result
    }

    fn feed_inner(&mut self, now: Duration, mut data: &[u8]) -> Result<(), Error> {
        if let Phase::Handshake(hs) = &mut self.phase {
            let mut c2 = Vec::new();
            let used = hs.feed(data, &mut c2)?;
            let done = hs.is_done();
            if !c2.is_empty() {
                self.wire.push_out(Bytes::from(c2));
            }
            data = &data[used..];
            if done {
                self.phase = Phase::Connecting;
                let object = self.connect.command_object();
                self.call("connect", Call::Connect, object, vec![], now)?;
            }
        }
        match self.phase {
            Phase::Connecting | Phase::Connected => {}
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
            self.handle(m, now)?;
        }
        Ok(())
    }

    fn fail(&mut self) {
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Failed;
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Failed | Phase::Closed => Err(Error::Closed),
            _ => Ok(()),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next bytes to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.wire.poll_transmit()
    }

    /// Bytes queued for the socket.
    pub fn pending_transmit_bytes(&self) -> usize {
        self.wire.pending_bytes()
    }

    /// When [`ClientSession::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next_deadline().map(|(at, _, _)| at)
    }

    /// The earliest deadline: when, which, and since when it runs.
    fn next_deadline(&self) -> Option<(Duration, Deadline, Duration)> {
        if self.check_open().is_err() {
            return None;
        }
        let mut best: Option<(Duration, Deadline, Duration)> = None;
        let mut consider = |timeout: Option<Duration>, which: Deadline, since: Duration| {
            if let Some(t) = timeout {
                let at = since + t;
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, which, since));
                }
            }
        };
        let rt = self.settings.response_timeout;
        if !self.is_connected() {
            consider(rt, Deadline::Handshake, self.started);
        }
        for (_, since) in &self.queued {
            consider(rt, Deadline::Response, *since);
        }
        for (_, call, since) in &self.calls {
            if let Call::CreateStream(_) = call {
                consider(rt, Deadline::Response, *since);
            }
        }
        for st in &self.streams {
            if matches!(st.role, Role::PublishPending | Role::PlayPending) {
                consider(rt, Deadline::Response, st.since);
            }
        }
        consider(self.settings.idle_timeout, Deadline::Idle, self.last_input);
        best
    }

    /// Tells the session the time: a deadline that passed queues
    /// [`ClientEvent::TimedOut`] and fails the session.
    pub fn handle_timeout(&mut self, now: Duration) {
        let Some((at, deadline, since)) = self.next_deadline() else {
            return;
        };
        if now < at {
            return;
        }
        self.fail();
        self.events.push_back(ClientEvent::TimedOut {
            deadline,
            waited: now.saturating_sub(since),
        });
    }

    /// Asks to publish `name` (type `live`) at `now`; queued until the
    /// connection is up. [`ClientEvent::Publishing`] or
    /// [`ClientEvent::Rejected`] follows.
    pub fn publish(&mut self, now: Duration, name: &str) -> Result<(), Error> {
        self.request(Op::Publish(name.to_owned()), now)
    }

    /// Asks to play `name` (live) at `now`; queued until the connection is
    /// up. [`ClientEvent::Playing`] or [`ClientEvent::Rejected`] follows.
    pub fn play(&mut self, now: Duration, name: &str) -> Result<(), Error> {
        self.request(Op::Play(name.to_owned()), now)
    }

    fn request(&mut self, op: Op, now: Duration) -> Result<(), Error> {
        self.check_open()?;
        if !self.is_connected() {
            self.queued.push((op, now));
            return Ok(());
        }
        self.start(op, now)
    }

    /// Sends what precedes `createStream` and `createStream` itself.
    fn start(&mut self, op: Op, since: Duration) -> Result<(), Error> {
        if let Op::Publish(name) = &op {
            // What ffmpeg and OBS send first; no answer is needed.
            let name = Value::string(name.as_str());
            self.notify("releaseStream", 0, vec![name.clone()])?;
            self.notify("FCPublish", 0, vec![name])?;
        }
        self.call(
            "createStream",
            Call::CreateStream(op),
            Value::Null,
            vec![],
            since,
        )
    }

    /// Sends one frame of a publishing stream (metadata frames become
    /// `@setDataFrame onMetaData`).
    pub fn send_frame(&mut self, stream_id: u32, frame: &Frame) -> Result<(), Error> {
        self.publishing(stream_id)?;
        let prefix = flv::mux_prefix(frame)?;
        let lead: &[u8] = if frame.codec == RILL_CODEC_METADATA {
            SET_DATA_FRAME
        } else {
            prefix.as_bytes()
        };
        self.wire.send_media(
            prefix.tag_type,
            prefix.timestamp,
            stream_id,
            &[lead, &frame.payload],
        )
    }

    /// Sends an FLV tag body as is on a publishing stream: `tag_type` 8
    /// audio, 9 video, 18 data (a data body is sent unchanged: put
    /// `@setDataFrame` before `onMetaData` yourself).
    pub fn send_tag(
        &mut self,
        stream_id: u32,
        tag_type: u8,
        timestamp: u32,
        body: &[u8],
    ) -> Result<(), Error> {
        self.publishing(stream_id)?;
        self.wire
            .send_media(tag_type, timestamp, stream_id, &[body])
    }

    fn publishing(&self, stream_id: u32) -> Result<(), Error> {
        self.check_open()?;
        match self.stream(stream_id) {
            Some(st) if st.role == Role::Publishing => Ok(()),
            _ => Err(Error::InvalidState("stream is not publishing")),
        }
    }

    /// Ends a publish or a play: `FCUnpublish` (publishers), then
    /// `deleteStream`.
    pub fn close_stream(&mut self, stream_id: u32) -> Result<(), Error> {
        self.check_open()?;
        let i = self
            .streams
            .iter()
            .position(|s| s.id == stream_id)
            .ok_or(Error::InvalidState("no such stream"))?;
        let st = self.streams.swap_remove(i);
        if st.role == Role::Publishing {
            self.notify("FCUnpublish", 0, vec![Value::string(st.name)])?;
        }
        self.notify("deleteStream", 0, vec![Value::Number(stream_id as f64)])
    }

    /// Ends the session (socket closed or given up): queues
    /// [`ClientEvent::Closed`]. Idempotent.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.phase = Phase::Closed;
        self.queued.clear();
        self.calls.clear();
        self.streams.clear();
        self.events.push_back(ClientEvent::Closed);
    }

    // ---- inbound ----

    fn stream(&self, id: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    fn handle(&mut self, raw: RawMessage, now: Duration) -> Result<(), Error> {
        match raw.type_id {
            chunk::AUDIO | chunk::VIDEO => {
                self.on_media(raw.stream_id, raw.type_id, raw.payload, raw.timestamp);
                Ok(())
            }
            chunk::AGGREGATE => {
                if !self.is_playing(raw.stream_id) {
                    return Ok(());
                }
                match split_aggregate(&raw.payload, raw.timestamp) {
                    Ok(subs) => {
                        for s in subs {
                            self.on_media(raw.stream_id, s.type_id, s.payload, s.timestamp);
                        }
                    }
                    Err(e) => self.drop_media(raw.stream_id, e),
                }
                Ok(())
            }
            chunk::DATA_AMF0 | chunk::DATA_AMF3 => {
                let body = if raw.type_id == chunk::DATA_AMF3 {
                    raw.payload.slice(1.min(raw.payload.len())..)
                } else {
                    raw.payload
                };
                self.on_media(raw.stream_id, flv::TAG_SCRIPT, body, raw.timestamp);
                Ok(())
            }
            _ => {
                let l = &self.limits;
                let msg = Message::decode_limited(&raw, l.max_amf_depth, l.max_amf_values)?;
                match self.wire.on_control(msg)? {
                    Some(cmd) => self.on_command(raw.stream_id, cmd, now),
                    None => Ok(()),
                }
            }
        }
    }

    fn is_playing(&self, stream_id: u32) -> bool {
        self.stream(stream_id)
            .is_some_and(|s| matches!(s.role, Role::Playing | Role::PlayPending))
    }

    fn on_media(&mut self, stream_id: u32, tag_type: u8, body: Bytes, timestamp: u32) {
        let stream_id = if self.is_playing(stream_id) {
            stream_id
        } else {
            // ffmpeg's listening server sends media on a message stream of
            // its own, not the one `createStream` gave: with one play, the
            // media is that play's (as ffmpeg's own client takes it).
            let mut playing = self
                .streams
                .iter()
                .filter(|s| matches!(s.role, Role::Playing | Role::PlayPending));
            match (playing.next(), playing.next()) {
                (Some(s), None) => s.id,
                _ => return,
            }
        };
        if self.settings.media == MediaMode::Tags {
            self.events.push_back(ClientEvent::Tag {
                stream_id,
                tag_type,
                timestamp,
                body,
            });
            return;
        }
        let l = &self.limits;
        match flv::demux(
            tag_type,
            &body,
            timestamp,
            l.max_amf_depth,
            l.max_amf_values,
        ) {
            Ok(Some(frame)) if frame.codec == RILL_CODEC_METADATA => self
                .events
                .push_back(ClientEvent::Metadata { stream_id, frame }),
            Ok(Some(frame)) => self
                .events
                .push_back(ClientEvent::Media { stream_id, frame }),
            Ok(None) => {}
            Err(e) => self.drop_media(stream_id, e.into()),
        }
    }

    fn drop_media(&mut self, stream_id: u32, reason: Error) {
        if let Some(st) = self.streams.iter_mut().find(|s| s.id == stream_id) {
            if st.warned.len() < MAX_WARNINGS && !st.warned.contains(&reason) {
                st.warned.push(reason.clone());
                self.events
                    .push_back(ClientEvent::MediaDropped { stream_id, reason });
            }
        }
    }

    fn on_command(&mut self, stream_id: u32, cmd: Command, now: Duration) -> Result<(), Error> {
        match cmd.name.as_str() {
            "_result" | "_error" => {
                let Some(i) = self
                    .calls
                    .iter()
                    .position(|(t, _, _)| *t == cmd.transaction_id)
                else {
                    return Ok(());
                };
                let (_, call, since) = self.calls.remove(i);
                let info = cmd.args.into_iter().next().unwrap_or(Value::Null);
                if cmd.name == "_error" {
                    let request = match call {
                        Call::Connect => Request::Connect,
                        Call::CreateStream(op) => op.request(),
                    };
                    self.reject(request, &info);
                    if matches!(self.phase, Phase::Connecting) {
                        self.fail();
                    }
                    return Ok(());
                }
                match call {
                    Call::Connect => self.on_connected(cmd.object, info, now),
                    Call::CreateStream(op) => {
                        let id = info
                            .as_f64()
                            .filter(|n| *n >= 1.0 && *n <= u32::MAX as f64)
                            .ok_or(Error::Malformed("createStream result"))?
                            as u32;
                        self.on_stream_created(id, op, since)
                    }
                }
            }
            "onStatus" => {
                let info = cmd.args.first().cloned().unwrap_or(Value::Null);
                self.on_status(stream_id, &info);
                Ok(())
            }
            // onBWDone, onFCPublish, |RtmpSampleAccess-like calls, ...
            _ => Ok(()),
        }
    }

    fn on_connected(&mut self, properties: Value, info: Value, now: Duration) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Connecting) {
            return Ok(());
        }
        self.phase = Phase::Connected;
        if let Some(n) = self.settings.window_ack_size {
            self.wire.send_window_ack(n)?;
        }
        if self.settings.chunk_size != self.wire.writer.chunk_size() {
            let (writer, tail) = (&mut self.wire.writer, &mut self.wire.tail);
            writer.set_chunk_size(self.settings.chunk_size, tail);
        }
        self.events
            .push_back(ClientEvent::Connected { properties, info });
        for (op, since) in std::mem::take(&mut self.queued) {
            self.start(op, since.min(now))?;
        }
        Ok(())
    }

    fn on_stream_created(&mut self, id: u32, op: Op, since: Duration) -> Result<(), Error> {
        if self.stream(id).is_some() {
            return Err(Error::Protocol("createStream returned a stream in use"));
        }
        if self.streams.len() as u32 >= self.limits.max_streams {
            return Err(Error::TooManyStreams(self.limits.max_streams));
        }
        let (role, name, cmd) = match op {
            Op::Publish(name) => {
                let args = vec![Value::string(name.as_str()), Value::string("live")];
                (
                    Role::PublishPending,
                    name,
                    Command::new("publish", 0.0, Value::Null, args),
                )
            }
            Op::Play(name) => {
                let buffer = UserControl::SetBufferLength {
                    stream_id: id,
                    millis: self.settings.buffer_ms,
                };
                self.wire
                    .send(&Message::UserControl(buffer), csid::CONTROL, 0)?;
                // Start -1000: live only, as ffmpeg asks.
                let args = vec![Value::string(name.as_str()), Value::Number(-1000.0)];
                (
                    Role::PlayPending,
                    name,
                    Command::new("play", 0.0, Value::Null, args),
                )
            }
        };
        self.wire.send(&Message::Command(cmd), csid::STREAM, id)?;
        self.streams.push(Stream {
            id,
            name,
            role,
            since,
            warned: Vec::new(),
        });
        Ok(())
    }

    fn on_status(&mut self, stream_id: u32, info: &Value) {
        let field = |k: &str| info.get(k).and_then(Value::as_str).unwrap_or_default();
        let (level, code, description) = (field("level"), field("code"), field("description"));
        let i = self.streams.iter().position(|s| s.id == stream_id);
        if let Some(i) = i {
            let st = &mut self.streams[i];
            let started = match (st.role, code) {
                (Role::PublishPending, "NetStream.Publish.Start") => Some(Role::Publishing),
                (Role::PlayPending, "NetStream.Play.Start") => Some(Role::Playing),
                _ => None,
            };
            if let Some(role) = started {
                st.role = role;
                let name = st.name.clone();
                self.events.push_back(match role {
                    Role::Publishing => ClientEvent::Publishing { stream_id, name },
                    _ => ClientEvent::Playing { stream_id, name },
                });
                return;
            }
            let pending = matches!(st.role, Role::PublishPending | Role::PlayPending);
            if pending && level == "error" {
                let st = self.streams.swap_remove(i);
                let op = match st.role {
                    Role::PublishPending => Op::Publish(st.name),
                    _ => Op::Play(st.name),
                };
                self.reject(op.request(), info);
                let _ = self.notify("deleteStream", 0, vec![Value::Number(stream_id as f64)]);
                return;
            }
        }
        self.events.push_back(ClientEvent::Status {
            stream_id,
            level: level.to_owned(),
            code: code.to_owned(),
            description: description.to_owned(),
        });
    }

    fn reject(&mut self, request: Request, info: &Value) {
        let field = |k: &str| {
            info.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        self.events.push_back(ClientEvent::Rejected {
            request,
            code: field("code"),
            description: field("description"),
        });
    }

    // ---- outbound ----

    fn call(
        &mut self,
        name: &str,
        call: Call,
        object: Value,
        args: Vec<Value>,
        since: Duration,
    ) -> Result<(), Error> {
        let txn = self.next_txn;
        self.next_txn += 1.0;
        self.calls.push((txn, call, since));
        let cmd = Command::new(name, txn, object, args);
        self.wire.send(&Message::Command(cmd), csid::COMMAND, 0)
    }

    fn notify(&mut self, name: &str, stream_id: u32, args: Vec<Value>) -> Result<(), Error> {
        let cmd = Command::new(name, 0.0, Value::Null, args);
        self.wire
            .send(&Message::Command(cmd), csid::COMMAND, stream_id)
    }
}
