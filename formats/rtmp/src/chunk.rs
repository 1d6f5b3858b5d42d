//! The chunk stream: messages cut into chunks, interleaved by chunk stream id
//! (csid), with compressed headers (formats 0–3).
//!
//! [`ChunkReader`] reassembles messages from any byte split; it applies Set
//! Chunk Size and Abort itself, because both change how the very next bytes
//! must be parsed. Memory follows the bytes that arrive, never the lengths
//! headers claim, and the bytes held in unfinished messages are bounded per
//! connection ([`Limits::max_partial_bytes`]).
//!
//! [`encode_message`] writes a message self-contained (format 0 first chunk,
//! format 3 continuations, no state shared with earlier messages), so a media
//! message chunked once can be sent as the same bytes to every player with the
//! same chunk size and message stream id.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;
use crate::limits::Limits;

/// Message type: Set Chunk Size.
pub const SET_CHUNK_SIZE: u8 = 1;
/// Message type: Abort.
pub const ABORT: u8 = 2;
/// Message type: Acknowledgement.
pub const ACKNOWLEDGEMENT: u8 = 3;
/// Message type: User Control.
pub const USER_CONTROL: u8 = 4;
/// Message type: Window Acknowledgement Size.
pub const WINDOW_ACK_SIZE: u8 = 5;
/// Message type: Set Peer Bandwidth.
pub const SET_PEER_BANDWIDTH: u8 = 6;
/// Message type: audio (an FLV audio tag body).
pub const AUDIO: u8 = 8;
/// Message type: video (an FLV video tag body).
pub const VIDEO: u8 = 9;
/// Message type: data in AMF3 (a format byte, then AMF0 in practice).
pub const DATA_AMF3: u8 = 15;
/// Message type: command in AMF3 (a format byte, then AMF0 in practice).
pub const COMMAND_AMF3: u8 = 17;
/// Message type: data (script) in AMF0.
pub const DATA_AMF0: u8 = 18;
/// Message type: command in AMF0.
pub const COMMAND_AMF0: u8 = 20;
/// Message type: aggregate (a run of FLV tags).
pub const AGGREGATE: u8 = 22;

/// The chunk size every connection starts with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Timestamps at or above this are sent in the extended field.
const EXTENDED: u32 = 0xFF_FFFF;
/// Largest csid expressible (3-byte basic header).
pub const MAX_CSID: u32 = 65599;

/// Chunk stream ids this implementation writes on.
pub mod csid {
    /// Protocol control and user control messages (fixed by the spec).
    pub const CONTROL: u32 = 2;
    /// NetConnection commands.
    pub const COMMAND: u32 = 3;
    /// Audio.
    pub const AUDIO: u32 = 4;
    /// NetStream commands and data (onStatus, onMetaData).
    pub const STREAM: u32 = 5;
    /// Video.
    pub const VIDEO: u32 = 6;
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (32-bit, wrapping).
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

/// What a chunk stream remembers from its last header.
#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    /// Delta applied when a format 3 chunk starts a new message. A format 0
    /// header sets it to its absolute timestamp, as ffmpeg and SRS read it.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last format 0/1/2 header used the extended timestamp field...
    extended: bool,
    /// ...with this raw value, which format 3 chunks may repeat.
    extended_value: u32,
    /// Bytes of the message being reassembled.
    payload: BytesMut,
    /// A message is partially read.
    in_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Header,
    Body { csid: u32, remaining: usize },
}

/// Reassembles messages from chunk bytes.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: u32,
    streams: HashMap<u32, StreamState>,
    /// Bytes of an incomplete chunk header (at most 18).
    header: Vec<u8>,
    state: ReadState,
    max_message_size: u32,
    max_chunk_streams: usize,
    chunk_size_bounds: (u32, u32),
    /// Payload bytes held in unfinished messages, over all chunk streams...
    partial: usize,
    /// ...and their bound.
    max_partial_bytes: usize,
}

/// Longest chunk header: 3 (basic) + 11 (format 0) + 4 (extended timestamp).
const MAX_HEADER: usize = 18;

/// A parsed chunk header.
struct Header {
    len: usize,
    fmt: u8,
    csid: u32,
    /// Timestamp or delta field, already resolved through the extended field.
    time: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

impl ChunkReader {
    /// A reader at the default chunk size of 128.
    pub fn new(limits: &Limits) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            header: Vec::with_capacity(MAX_HEADER),
            state: ReadState::Header,
            max_message_size: limits.max_message_size,
            max_chunk_streams: limits.max_chunk_streams,
            chunk_size_bounds: (limits.min_chunk_size, limits.max_chunk_size),
            partial: 0,
            max_partial_bytes: limits.max_partial_bytes,
        }
    }

    /// Payload bytes held in unfinished messages (at most
    /// [`Limits::max_partial_bytes`]).
    pub fn partial_bytes(&self) -> usize {
        self.partial
    }

    /// Bytes allocated for unfinished messages: at most twice
    /// [`ChunkReader::partial_bytes`] (plus a few bytes per chunk stream),
    /// whatever lengths the headers announced.
    pub fn partial_capacity(&self) -> usize {
        self.streams.values().map(|st| st.payload.capacity()).sum()
    }

    /// The inbound chunk size currently in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Parses `data`, pushing every completed message to `out`. Partial
    /// headers and message bodies are kept for the next call.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<RawMessage>) -> Result<(), Error> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                ReadState::Header => {
                    // Copy up to a full header's worth; give back whatever the
                    // header turns out not to need.
                    let before = self.header.len();
                    let take = (MAX_HEADER - before).min(data.len() - pos);
                    self.header.extend_from_slice(&data[pos..pos + take]);
                    match self.parse_header()? {
                        None => {
                            pos += take;
                        }
                        Some(h) if h.len >= before => {
                            pos += h.len - before;
                            self.header.clear();
                            if let Some(msg) = self.start_chunk(h)? {
                                self.complete(msg, out)?;
                            }
                        }
                        Some(h) => {
                            // Only the optional extended field of a format 3
                            // chunk can make an earlier attempt keep bytes
                            // (at most 3) that turn out to be payload: replay
                            // them before going on with `data`.
                            let carry = self.header[h.len..before].to_vec();
                            self.header.clear();
                            if let Some(msg) = self.start_chunk(h)? {
                                self.complete(msg, out)?;
                            }
                            self.feed(&carry, out)?;
                        }
                    }
                }
                ReadState::Body { csid, remaining } => {
                    let n = remaining.min(data.len() - pos);
                    if n > self.max_partial_bytes - self.partial {
                        return Err(Error::TooManyPartialBytes(self.max_partial_bytes));
                    }
                    let st = self
                        .streams
                        .get_mut(&csid)
                        .ok_or(Error::MissingChunkHeader(csid))?;
                    append(&mut st.payload, &data[pos..pos + n], st.length as usize);
                    self.partial += n;
                    pos += n;
                    if n < remaining {
                        self.state = ReadState::Body {
                            csid,
                            remaining: remaining - n,
                        };
                    } else {
                        self.state = ReadState::Header;
                        if st.payload.len() == st.length as usize {
                            let msg = Self::take_message(csid, st, &mut self.partial);
                            self.complete(msg, out)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the protocol control messages that change parsing, then hands
    /// the message on.
    fn complete(&mut self, msg: RawMessage, out: &mut Vec<RawMessage>) -> Result<(), Error> {
        // Protocol control belongs on csid 2 / stream 0; accept it anywhere,
        // as other servers do.
        {
            match msg.type_id {
                SET_CHUNK_SIZE => {
                    let size = read_u32(&msg.payload, "Set Chunk Size")? & 0x7FFF_FFFF;
                    let (min, max) = self.chunk_size_bounds;
                    if !(min..=max).contains(&size) {
                        return Err(Error::ChunkSizeOutOfRange(size));
                    }
                    self.chunk_size = size;
                }
                ABORT => {
                    let id = read_u32(&msg.payload, "Abort")?;
                    // Messages complete only at chunk boundaries, so no body
                    // of `id` is being read right now.
                    if let Some(st) = self.streams.get_mut(&id) {
                        self.partial -= st.payload.len();
                        st.payload = BytesMut::new();
                        st.in_progress = false;
                    }
                }
                _ => {}
            }
        }
        out.push(msg);
        Ok(())
    }

    /// The message of `st`, whose bytes no longer count as `partial`.
    fn take_message(csid: u32, st: &mut StreamState, partial: &mut usize) -> RawMessage {
        *partial -= st.payload.len();
        st.in_progress = false;
        RawMessage {
            csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            payload: std::mem::take(&mut st.payload).freeze(),
        }
    }

    /// Parses the buffered header bytes; `None` when more are needed.
    fn parse_header(&self) -> Result<Option<Header>, Error> {
        let b = &self.header;
        let fmt = b[0] >> 6;
        let (csid, mut pos) = match b[0] & 0x3F {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&x), Some(&y)) => (64 + x as u32 + ((y as u32) << 8), 3),
                _ => return Ok(None),
            },
            n => (n as u32, 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(Error::MissingChunkHeader(csid));
        }
        let header_len = [11, 7, 3, 0][fmt as usize];
        if b.len() < pos + header_len {
            return Ok(None);
        }
        let h = &b[pos..pos + header_len];
        let prev = prev.map(|p| {
            (
                p.length,
                p.type_id,
                p.stream_id,
                p.extended,
                p.extended_value,
            )
        });
        let (plen, ptype, psid, pext, pextv) = prev.unwrap_or_default();
        let mut header = Header {
            len: 0,
            fmt,
            csid,
            time: 0,
            extended: false,
            length: plen,
            type_id: ptype,
            stream_id: psid,
        };
        if fmt <= 2 {
            header.time = u24(&h[0..3]);
        }
        if fmt <= 1 {
            header.length = u24(&h[3..6]);
            header.type_id = h[6];
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        pos += header_len;
        if fmt <= 2 && header.time == EXTENDED {
            let Some(ext) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            header.time = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            header.extended = true;
            pos += 4;
        } else if fmt == 3 && pext {
            // After an extended header, ffmpeg and OBS repeat the extended
            // field on every format 3 chunk; some other encoders do not.
            // Consume it only when it carries the value the header had, as
            // SRS and nginx-rtmp do. A mismatch in the bytes at hand settles
            // it early, so a short final chunk never waits for bytes that
            // may not come.
            let seen = &b[pos..b.len().min(pos + 4)];
            if seen != &pextv.to_be_bytes()[..seen.len()] {
                // Absent: the bytes are payload.
            } else if seen.len() == 4 {
                pos += 4;
            } else {
                return Ok(None);
            }
            header.extended = true;
            header.time = pextv;
        }
        header.len = pos;
        Ok(Some(header))
    }

    /// Applies a parsed header; returns a message if it is complete already
    /// (zero-length messages have no body).
    fn start_chunk(&mut self, h: Header) -> Result<Option<RawMessage>, Error> {
        if !self.streams.contains_key(&h.csid) && self.streams.len() >= self.max_chunk_streams {
            return Err(Error::TooManyChunkStreams(self.max_chunk_streams));
        }
        let chunk_size = self.chunk_size as usize;
        let max = self.max_message_size;
        let partial = &mut self.partial;
        let st = self.streams.entry(h.csid).or_default();
        let new_message = h.fmt != 3 || !st.in_progress;
        if new_message {
            if h.length > max {
                return Err(Error::MessageTooLarge { len: h.length, max });
            }
            // A full header in the middle of a message: the sender gave up on
            // the old one. Drop it rather than fail, as ffmpeg's reader does,
            // and free its buffer: a cleared one would keep its capacity
            // outside the partial bytes budget.
            *partial -= st.payload.len();
            st.payload = BytesMut::new();
            st.length = h.length;
            st.type_id = h.type_id;
            st.stream_id = h.stream_id;
            match h.fmt {
                0 => {
                    st.timestamp = h.time;
                    st.delta = h.time;
                }
                1 | 2 => {
                    st.timestamp = st.timestamp.wrapping_add(h.time);
                    st.delta = h.time;
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            if h.fmt != 3 {
                st.extended = h.extended;
                st.extended_value = h.time;
            }
            st.in_progress = true;
            // Nothing is reserved here: the length field is the peer's
            // claim, and with a large chunk size one chunk may be the whole
            // message. The buffer grows as bytes arrive (`append`).
        }
        let remaining = (st.length as usize - st.payload.len()).min(chunk_size);
        if remaining == 0 {
            return Ok(Some(Self::take_message(h.csid, st, partial)));
        }
        self.state = ReadState::Body {
            csid: h.csid,
            remaining,
        };
        Ok(None)
    }
}

/// Appends `bytes` to a message body of declared `length`. When the buffer
/// must grow, it grows by at most what it holds already (doubling, so
/// amortized copies stay linear) and never past `length`: its capacity stays
/// within twice the bytes received.
fn append(payload: &mut BytesMut, bytes: &[u8], length: usize) {
    if payload.capacity() - payload.len() < bytes.len() {
        let step = bytes.len().max(payload.len()).min(length - payload.len());
        payload.reserve(step);
    }
    payload.extend_from_slice(bytes);
}

fn u24(b: &[u8]) -> u32 {
    ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32
}

fn read_u32(payload: &[u8], what: &'static str) -> Result<u32, Error> {
    payload
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Error::Truncated(what))
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => out.put_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.put_slice(&[fmt | 1, id as u8, (id >> 8) as u8]);
        }
    }
}

/// The header fields of an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// Chunk stream id to send on (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in milliseconds.
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
}

impl MessageHeader {
    /// The header of a media or data message of FLV tag type `type_id` (8
    /// audio, 9 video, 18 data), on the chunk stream this crate uses for it.
    pub fn media(type_id: u8, timestamp: u32, stream_id: u32) -> Self {
        let csid = match type_id {
            AUDIO => csid::AUDIO,
            VIDEO => csid::VIDEO,
            _ => csid::STREAM,
        };
        MessageHeader {
            csid,
            timestamp,
            type_id,
            stream_id,
        }
    }
}

/// Largest message the 24-bit length field can describe.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;

/// Appends `payload` (given as consecutive parts, so a tag header and a frame
/// payload need no concatenation first) as chunks of at most `chunk_size`
/// bytes: a format 0 chunk, then format 3 chunks, each repeating the extended
/// timestamp when there is one (what ffmpeg, OBS and Flash expect).
///
/// Fails only for a payload beyond the 24-bit length field. A `csid` outside
/// 2..=65599 or a `chunk_size` of 0 are clamped rather than trusted.
pub fn encode_message(
    chunk_size: u32,
    header: &MessageHeader,
    parts: &[&[u8]],
    out: &mut BytesMut,
) -> Result<(), Error> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > MAX_MESSAGE_LEN {
        return Err(Error::MessageTooLarge {
            len: u32::try_from(total).unwrap_or(u32::MAX),
            max: MAX_MESSAGE_LEN as u32,
        });
    }
    put_message(chunk_size, header, parts, total, out);
    Ok(())
}

/// [`encode_message`] after the length check.
fn put_message(
    chunk_size: u32,
    header: &MessageHeader,
    parts: &[&[u8]],
    total: usize,
    out: &mut BytesMut,
) {
    let chunk_size = chunk_size.max(1) as usize;
    let csid = header.csid.clamp(2, MAX_CSID);
    let extended = header.timestamp >= EXTENDED;
    let ts_field = if extended { EXTENDED } else { header.timestamp };
    let chunks = total.div_ceil(chunk_size).max(1);
    out.reserve(total + 18 + (chunks - 1) * 7);

    put_basic_header(out, 0, csid);
    out.put_slice(&ts_field.to_be_bytes()[1..]);
    out.put_slice(&(total as u32).to_be_bytes()[1..]);
    out.put_u8(header.type_id);
    out.put_u32_le(header.stream_id);
    if extended {
        out.put_u32(header.timestamp);
    }

    let mut in_chunk = 0;
    for part in parts {
        let mut part = *part;
        while !part.is_empty() {
            if in_chunk == chunk_size {
                put_basic_header(out, 3, csid);
                if extended {
                    out.put_u32(header.timestamp);
                }
                in_chunk = 0;
            }
            let n = (chunk_size - in_chunk).min(part.len());
            out.put_slice(&part[..n]);
            part = &part[n..];
            in_chunk += n;
        }
    }
}

/// [`encode_message`] into fresh `Bytes`: the unit of a per-frame cache.
pub fn serialize_message(
    chunk_size: u32,
    header: &MessageHeader,
    parts: &[&[u8]],
) -> Result<Bytes, Error> {
    let mut out = BytesMut::new();
    encode_message(chunk_size, header, parts, &mut out)?;
    Ok(out.freeze())
}

/// Outbound chunking state of one connection: only the chunk size, because
/// every message is written self-contained.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// A writer at the default chunk size of 128.
    pub fn new() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The outbound chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Writes a Set Chunk Size message (in the old size, as the peer still
    /// reads with it) and switches to `size` for what follows.
    pub fn set_chunk_size(&mut self, size: u32, out: &mut BytesMut) {
        let size = size.clamp(1, 0x7FFF_FFFF);
        let header = MessageHeader {
            csid: csid::CONTROL,
            timestamp: 0,
            type_id: SET_CHUNK_SIZE,
            stream_id: 0,
        };
        put_message(self.chunk_size, &header, &[&size.to_be_bytes()], 4, out);
        self.chunk_size = size;
    }

    /// Writes one message (fails only beyond 16 MiB, see [`encode_message`]).
    pub fn write(
        &self,
        header: &MessageHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        encode_message(self.chunk_size, header, &[payload], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> ChunkReader {
        ChunkReader::new(&Limits::default())
    }

    fn read_all(r: &mut ChunkReader, data: &[u8]) -> Vec<RawMessage> {
        let mut out = Vec::new();
        r.feed(data, &mut out).unwrap();
        out
    }

    /// Feeds byte by byte: every split point must give the same messages.
    fn read_bytewise(data: &[u8]) -> Vec<RawMessage> {
        let mut r = reader();
        let mut out = Vec::new();
        for b in data {
            r.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn format0_then_format3_continuation() {
        // An ffmpeg-style connect: csid 3, format 0, 200-byte command split at
        // 128 with one format 3 chunk (0xC3).
        let payload: Vec<u8> = (0..200u8).collect();
        let mut data = vec![0x03, 0, 0, 0, 0, 0, 200, 20, 0, 0, 0, 0];
        data.extend_from_slice(&payload[..128]);
        data.push(0xC3);
        data.extend_from_slice(&payload[128..]);
        let msgs = read_all(&mut reader(), &data);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].type_id, 20);
        assert_eq!(msgs[0].payload, payload);
        assert_eq!(read_bytewise(&data), msgs);
    }

    #[test]
    fn formats_1_2_3_accumulate_timestamps() {
        let mut data = Vec::new();
        // fmt 0: ts 1000, len 2, audio, stream 1.
        data.extend_from_slice(&[0x04, 0x00, 0x03, 0xE8, 0, 0, 2, 8, 1, 0, 0, 0, 0xAF, 1]);
        // fmt 1: delta 23, len 3, audio.
        data.extend_from_slice(&[0x44, 0, 0, 23, 0, 0, 3, 8, 0xAF, 1, 2]);
        // fmt 2: delta 24.
        data.extend_from_slice(&[0x84, 0, 0, 24, 0xAF, 1, 3]);
        // fmt 3: new message, same delta 24.
        data.extend_from_slice(&[0xC4, 0xAF, 1, 4]);
        let msgs = read_all(&mut reader(), &data);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [1000, 1023, 1047, 1071]);
        assert!(msgs.iter().all(|m| m.stream_id == 1 && m.type_id == 8));
        assert_eq!(msgs[3].payload, &[0xAF, 1, 4][..]);
        assert_eq!(read_bytewise(&data), msgs);
    }

    #[test]
    fn extended_timestamp_repeated_on_continuation() {
        let header = MessageHeader {
            csid: 6,
            timestamp: 0x0100_0000,
            type_id: 9,
            stream_id: 1,
        };
        let payload = vec![7u8; 300];
        let bytes = serialize_message(128, &header, &[&payload]).unwrap();
        // 12 + 4 + 128 + (1 + 4 + 128) + (1 + 4 + 44)
        assert_eq!(bytes.len(), 12 + 4 + 300 + 2 * 5);
        assert_eq!(&bytes[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&bytes[12..16], &[1, 0, 0, 0]);
        assert_eq!(&bytes[144..149], &[0xC6, 1, 0, 0, 0]);
        let msgs = read_bytewise(&bytes);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].timestamp, 0x0100_0000);
        assert_eq!(msgs[0].payload, payload);
    }

    #[test]
    fn extended_timestamp_omitted_on_continuation() {
        // Some encoders leave the extended field out of format 3 chunks.
        let mut data = vec![
            0x06, 0xFF, 0xFF, 0xFF, 0, 0, 130, 9, 1, 0, 0, 0, 0, 0x20, 0, 0,
        ];
        data.extend_from_slice(&[5u8; 128]);
        data.push(0xC6);
        data.extend_from_slice(&[6u8; 2]);
        let msgs = read_bytewise(&data);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].timestamp, 0x0020_0000);
        assert_eq!(&msgs[0].payload[126..], &[5, 5, 6, 6]);
        assert_eq!(read_all(&mut reader(), &data), msgs);

        // Payload that starts like the extended value: the reader must wait,
        // then replay the bytes it held as payload.
        let mut data = vec![
            0x06, 0xFF, 0xFF, 0xFF, 0, 0, 131, 9, 1, 0, 0, 0, 0, 0x20, 0, 0,
        ];
        data.extend_from_slice(&[5u8; 128]);
        data.extend_from_slice(&[0xC6, 0x00, 0x20, 0x05]);
        let msgs = read_bytewise(&data);
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0].payload[128..], &[0x00, 0x20, 0x05]);
        assert_eq!(read_all(&mut reader(), &data), msgs);
    }

    #[test]
    fn extended_delta_on_new_format3_message() {
        // fmt 1 with an extended delta, then a fmt 3 message repeating it.
        let mut data = vec![0x04, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA];
        data.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 0x01, 0, 0, 0, 0xBB]);
        data.extend_from_slice(&[0xC4, 0x01, 0, 0, 0, 0xCC]);
        let msgs = read_bytewise(&data);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [0, 0x0100_0000, 0x0200_0000]);
        assert_eq!(msgs[2].payload, &[0xCC][..]);
    }

    #[test]
    fn interleaved_chunk_streams() {
        let audio = [1u8; 200];
        let video = [2u8; 300];
        let mut data = Vec::new();
        data.extend_from_slice(&[0x04, 0, 0, 10, 0, 0, 200, 8, 1, 0, 0, 0]);
        data.extend_from_slice(&audio[..128]);
        data.extend_from_slice(&[0x06, 0, 0, 10, 0, 1, 44, 9, 1, 0, 0, 0]);
        data.extend_from_slice(&video[..128]);
        data.push(0xC4);
        data.extend_from_slice(&audio[128..]);
        data.push(0xC6);
        data.extend_from_slice(&video[128..256]);
        data.push(0xC6);
        data.extend_from_slice(&video[256..]);
        let msgs = read_bytewise(&data);
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].csid, msgs[0].payload.len()), (4, 200));
        assert_eq!((msgs[1].csid, msgs[1].payload.len()), (6, 300));
    }

    #[test]
    fn set_chunk_size_applies_to_following_chunks() {
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        w.set_chunk_size(4096, &mut out);
        let big = vec![9u8; 5000];
        let header = MessageHeader {
            csid: 6,
            timestamp: 40,
            type_id: 9,
            stream_id: 1,
        };
        w.write(&header, &big, &mut out).unwrap();
        assert_eq!(out.len(), 16 + 12 + 5000 + 1);
        let mut r = reader();
        let msgs = read_all(&mut r, &out);
        assert_eq!(r.chunk_size(), 4096);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].payload, big);
        assert_eq!(read_bytewise(&out), msgs);
    }

    #[test]
    fn abort_discards_partial_message() {
        let mut data = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0];
        data.extend_from_slice(&[0u8; 128]);
        // Abort csid 4.
        data.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
        // A new message on csid 4 with a format 0 header.
        data.extend_from_slice(&[0x04, 0, 0, 5, 0, 0, 1, 8, 1, 0, 0, 0, 0x55]);
        let msgs = read_bytewise(&data);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].type_id, ABORT);
        assert_eq!(msgs[1].payload, &[0x55][..]);
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        for csid in [64u32, 319, 320, 65599] {
            let header = MessageHeader {
                csid,
                timestamp: 1,
                type_id: 8,
                stream_id: 1,
            };
            let bytes = serialize_message(128, &header, &[&[1u8; 130]]).unwrap();
            let msgs = read_bytewise(&bytes);
            assert_eq!(msgs.len(), 1, "csid {csid}");
            assert_eq!(msgs[0].csid, csid);
            assert_eq!(msgs[0].payload.len(), 130);
        }
    }

    #[test]
    fn zero_length_message() {
        let data = [
            0x03, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, 5,
        ];
        let msgs = read_bytewise(&data);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].payload.is_empty());
    }

    #[test]
    fn limits_are_enforced() {
        let mut r = reader();
        let mut out = Vec::new();
        // 16 MiB message.
        assert_eq!(
            r.feed(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 8, 1, 0, 0, 0], &mut out),
            Err(Error::MessageTooLarge {
                len: 0xFF_FFFF,
                max: 8 << 20
            })
        );
        let mut r = reader();
        assert_eq!(
            r.feed(&[0x45, 0, 0, 0, 0, 0, 1, 8], &mut out),
            Err(Error::MissingChunkHeader(5))
        );
        let mut r = reader();
        assert_eq!(
            r.feed(
                &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1],
                &mut out
            ),
            Err(Error::ChunkSizeOutOfRange(1))
        );
        let limits = Limits {
            max_chunk_streams: 2,
            ..Limits::default()
        };
        let mut r = ChunkReader::new(&limits);
        let mut data = Vec::new();
        for csid in 3..6u8 {
            data.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0]);
        }
        assert_eq!(r.feed(&data, &mut out), Err(Error::TooManyChunkStreams(2)));
    }

    /// A basic header plus, for format 0, a message header announcing `len`
    /// bytes of video on message stream 1.
    fn chunk_header(fmt: u8, csid: u32, len: u32) -> Vec<u8> {
        let mut h = BytesMut::new();
        put_basic_header(&mut h, fmt, csid);
        if fmt == 0 {
            h.put_slice(&[0, 0, 0]);
            h.put_slice(&len.to_be_bytes()[1..]);
            h.put_slice(&[VIDEO, 1, 0, 0, 0]);
        }
        h.to_vec()
    }

    fn set_chunk_size(size: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        ChunkWriter::new().set_chunk_size(size, &mut out);
        out.to_vec()
    }

    #[test]
    fn unfinished_messages_are_bounded_per_connection() {
        // 64 chunk streams, each starting an 8 MiB message (both limits at
        // their defaults) and never finishing it: up to 512 MiB without a
        // budget. The reader refuses at max_partial_bytes.
        let limits = Limits::default();
        let budget = limits.max_partial_bytes;
        assert_eq!(budget, 16 << 20);
        let mut r = ChunkReader::new(&limits);
        let mut out = Vec::new();
        let chunk = 64 << 10;
        r.feed(&set_chunk_size(chunk as u32), &mut out).unwrap();
        let body = vec![0u8; chunk];
        let mut fed = 0usize;
        let err = 'feeding: {
            for round in 0..(limits.max_message_size as usize / chunk) {
                for csid in 2..2 + limits.max_chunk_streams as u32 {
                    let mut data = if round == 0 {
                        chunk_header(0, csid, limits.max_message_size)
                    } else {
                        chunk_header(3, csid, 0)
                    };
                    data.extend_from_slice(&body);
                    // Feed in pieces: the budget holds at every step.
                    for piece in data.chunks(10_000) {
                        if let Err(e) = r.feed(piece, &mut out) {
                            break 'feeding e;
                        }
                        fed += piece.len();
                        assert!(r.partial_bytes() <= budget);
                        assert!(r.partial_capacity() <= 2 * r.partial_bytes() + 64 * 16);
                    }
                }
            }
            panic!("512 MiB held without an error");
        };
        assert_eq!(err, Error::TooManyPartialBytes(budget));
        assert!(err.to_string().contains("max_partial_bytes"), "{err}");
        assert_eq!(out.len(), 1, "only the Set Chunk Size completed");
        // Refused at the budget, not before it.
        assert!(r.partial_bytes() > budget - 10_000);
        assert!(fed < budget + 64 * 16);
    }

    #[test]
    fn huge_chunk_size_reserves_nothing_ahead() {
        // Set Chunk Size 16 MiB: one chunk may now carry a whole 8 MiB
        // message, so each header announcing one could reserve it all.
        let limits = Limits::default();
        let mut r = ChunkReader::new(&limits);
        let mut out = Vec::new();
        // First, 63 chunk streams with an 8 MiB message begun (one chunk at
        // the initial size of 128).
        for csid in 3..66 {
            let mut data = chunk_header(0, csid, limits.max_message_size);
            data.extend_from_slice(&[7u8; 128]);
            r.feed(&data, &mut out).unwrap();
        }
        r.feed(&set_chunk_size(16 << 20), &mut out).unwrap();
        assert_eq!(r.chunk_size(), 16 << 20);
        // Then an 8 MiB message whose single chunk has just begun.
        let mut data = chunk_header(0, 2, limits.max_message_size);
        data.extend_from_slice(&[7u8; 100]);
        r.feed(&data, &mut out).unwrap();
        let held = 63 * 128 + 100;
        assert_eq!(r.partial_bytes(), held);
        assert!(
            r.partial_capacity() <= 2 * held,
            "{} bytes allocated for {held} received",
            r.partial_capacity()
        );
        // The buffer grows with what arrives, at most doubling.
        for _ in 0..100 {
            r.feed(&[1u8; 10_000], &mut out).unwrap();
            assert!(r.partial_capacity() <= 2 * r.partial_bytes());
        }
        assert_eq!(r.partial_bytes(), held + 1_000_000);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn dropped_messages_release_their_bytes() {
        let mut r = reader();
        let mut out = Vec::new();
        let mut data = chunk_header(0, 4, 1000);
        data.extend_from_slice(&[1u8; 128]);
        data.extend_from_slice(&chunk_header(0, 6, 1000));
        data.extend_from_slice(&[2u8; 128]);
        r.feed(&data, &mut out).unwrap();
        assert_eq!(r.partial_bytes(), 256);
        // A new full header on csid 4 drops its unfinished message, buffer
        // included.
        let mut data = chunk_header(0, 4, 1000);
        data.extend_from_slice(&[3u8; 128]);
        r.feed(&data, &mut out).unwrap();
        assert_eq!(r.partial_bytes(), 256);
        assert_eq!(r.partial_capacity(), 256);
        // Abort csid 6.
        r.feed(
            &[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6],
            &mut out,
        )
        .unwrap();
        assert_eq!(r.partial_bytes(), 128);
        // Finishing csid 4's message leaves nothing held, and its buffer
        // never grew past the declared length.
        for n in [128, 128, 128, 128, 128, 128, 104] {
            let mut data = chunk_header(3, 4, 0);
            data.extend_from_slice(&vec![4u8; n]);
            r.feed(&data, &mut out).unwrap();
        }
        assert_eq!((r.partial_bytes(), r.partial_capacity()), (0, 0));
        let msg = out.last().unwrap();
        assert_eq!((msg.csid, msg.payload.len()), (4, 1000));
        assert_eq!(&msg.payload[..129], &[[3u8; 128].as_slice(), &[4]].concat());
    }
}
