//! RTMP messages above the chunk layer: protocol control, user control,
//! commands and data, decoded from a [`RawMessage`] and encoded for sending.

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Value};
use crate::chunk::{self, csid, ChunkWriter, MessageHeader, RawMessage};
use crate::error::Error;

/// User Control event types.
pub mod event {
    /// A stream became functional.
    pub const STREAM_BEGIN: u16 = 0;
    /// Playback of a stream ended.
    pub const STREAM_EOF: u16 = 1;
    /// No more data on a stream for now.
    pub const STREAM_DRY: u16 = 2;
    /// Client's buffer length.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// The stream is recorded.
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Liveness probe; answered with a Ping Response.
    pub const PING_REQUEST: u16 = 6;
    /// Answer to a Ping Request.
    pub const PING_RESPONSE: u16 = 7;
}

/// A User Control message (type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// Stream Begin.
    StreamBegin(u32),
    /// Stream EOF.
    StreamEof(u32),
    /// Stream Dry.
    StreamDry(u32),
    /// Set Buffer Length.
    SetBufferLength {
        /// Stream.
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// Stream Is Recorded.
    StreamIsRecorded(u32),
    /// Ping Request with the sender's timestamp.
    PingRequest(u32),
    /// Ping Response echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event, kept raw.
    Other {
        /// Event type.
        event: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControl {
    fn decode(p: &Bytes) -> Result<UserControl, Error> {
        let ev = p.get(..2).ok_or(Error::Truncated("user control"))?;
        let ev = u16::from_be_bytes([ev[0], ev[1]]);
        let arg = |i: usize| {
            p.get(2 + 4 * i..6 + 4 * i)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(Error::Truncated("user control"))
        };
        Ok(match ev {
            event::STREAM_BEGIN => UserControl::StreamBegin(arg(0)?),
            event::STREAM_EOF => UserControl::StreamEof(arg(0)?),
            event::STREAM_DRY => UserControl::StreamDry(arg(0)?),
            event::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
                stream_id: arg(0)?,
                millis: arg(1)?,
            },
            event::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(arg(0)?),
            event::PING_REQUEST => UserControl::PingRequest(arg(0)?),
            event::PING_RESPONSE => UserControl::PingResponse(arg(0)?),
            _ => UserControl::Other {
                event: ev,
                data: p.slice(2..),
            },
        })
    }

    fn encode(&self) -> Vec<u8> {
        let (ev, args): (u16, &[u32]) = match self {
            UserControl::StreamBegin(id) => (event::STREAM_BEGIN, std::slice::from_ref(id)),
            UserControl::StreamEof(id) => (event::STREAM_EOF, std::slice::from_ref(id)),
            UserControl::StreamDry(id) => (event::STREAM_DRY, std::slice::from_ref(id)),
            UserControl::SetBufferLength { stream_id, millis } => {
                let mut v = event::SET_BUFFER_LENGTH.to_be_bytes().to_vec();
                v.extend_from_slice(&stream_id.to_be_bytes());
                v.extend_from_slice(&millis.to_be_bytes());
                return v;
            }
            UserControl::StreamIsRecorded(id) => {
                (event::STREAM_IS_RECORDED, std::slice::from_ref(id))
            }
            UserControl::PingRequest(t) => (event::PING_REQUEST, std::slice::from_ref(t)),
            UserControl::PingResponse(t) => (event::PING_RESPONSE, std::slice::from_ref(t)),
            UserControl::Other { event, data } => {
                let mut v = event.to_be_bytes().to_vec();
                v.extend_from_slice(data);
                return v;
            }
        };
        let mut v = ev.to_be_bytes().to_vec();
        for a in args {
            v.extend_from_slice(&a.to_be_bytes());
        }
        v
    }
}

/// A command (AMF0 type 20, or AMF3 type 17 carrying AMF0): a remote call.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Method name (`connect`, `publish`, `_result`, ...).
    pub name: String,
    /// Transaction id; 0 when no answer is expected.
    pub transaction_id: f64,
    /// Command object (usually `Null` except for `connect`).
    pub object: Value,
    /// Remaining arguments.
    pub args: Vec<Value>,
}

impl Command {
    /// A command from its parts.
    pub fn new(name: &str, transaction_id: f64, object: Value, args: Vec<Value>) -> Self {
        Command {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// Decodes a command body (at most [`amf0::DEFAULT_MAX_VALUES`] values).
    pub fn decode(body: &[u8], max_depth: usize) -> Result<Command, Error> {
        Self::decode_limited(body, max_depth, amf0::DEFAULT_MAX_VALUES)
    }

    /// Decodes a command body of at most `max_values` AMF0 values.
    pub fn decode_limited(
        body: &[u8],
        max_depth: usize,
        max_values: usize,
    ) -> Result<Command, Error> {
        let mut values = amf0::decode_all_limited(body, max_depth, max_values)?.into_iter();
        let name = match values.next() {
            Some(Value::String(s)) => s,
            _ => return Err(Error::Malformed("command name")),
        };
        // Some clients omit trailing fields of argument-less commands.
        let transaction_id = match values.next() {
            Some(Value::Number(n)) => n,
            None => 0.0,
            Some(_) => return Err(Error::Malformed("command transaction id")),
        };
        let object = values.next().unwrap_or(Value::Null);
        Ok(Command {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// Encodes the command body.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(128);
        amf0::encode(&Value::String(self.name.clone()), &mut out)?;
        amf0::encode(&Value::Number(self.transaction_id), &mut out)?;
        amf0::encode(&self.object, &mut out)?;
        for a in &self.args {
            amf0::encode(a, &mut out)?;
        }
        Ok(out)
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Set Chunk Size (already applied by the chunk reader).
    SetChunkSize(u32),
    /// Abort (already applied by the chunk reader).
    Abort(u32),
    /// Acknowledgement: bytes the peer received so far.
    Acknowledgement(u32),
    /// Window Acknowledgement Size: acknowledge every this many bytes.
    WindowAckSize(u32),
    /// Set Peer Bandwidth.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit: u8,
    },
    /// User Control.
    UserControl(UserControl),
    /// Command.
    Command(Command),
    /// Data message (script data): AMF0 values.
    Data(Vec<Value>),
    /// Audio: an FLV audio tag body.
    Audio(Bytes),
    /// Video: an FLV video tag body.
    Video(Bytes),
    /// Aggregate: a run of FLV tags (see [`split_aggregate`]).
    Aggregate(Bytes),
    /// Anything else (shared objects, ...), kept raw.
    Other {
        /// Message type id.
        type_id: u8,
        /// Body.
        payload: Bytes,
    },
}

fn be_u32(p: &[u8], what: &'static str) -> Result<u32, Error> {
    p.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Error::Truncated(what))
}

/// Strips the AMF3 format selector byte of types 15 and 17; every client in
/// practice then writes AMF0.
fn amf3_body(p: &Bytes) -> Result<&[u8], Error> {
    match p.first() {
        Some(0) => Ok(&p[1..]),
        Some(_) => Err(Error::Unsupported("AMF3 encoded message")),
        None => Err(Error::Truncated("AMF3 message")),
    }
}

impl Message {
    /// Decodes a reassembled message (commands and data of at most
    /// [`amf0::DEFAULT_MAX_VALUES`] AMF0 values).
    pub fn decode(raw: &RawMessage, max_amf_depth: usize) -> Result<Message, Error> {
        Self::decode_limited(raw, max_amf_depth, amf0::DEFAULT_MAX_VALUES)
    }

    /// Decodes a reassembled message whose commands and data have at most
    /// `max_amf_values` AMF0 values (`Limits::max_amf_values`).
    pub fn decode_limited(
        raw: &RawMessage,
        max_amf_depth: usize,
        max_amf_values: usize,
    ) -> Result<Message, Error> {
        let (depth, values) = (max_amf_depth, max_amf_values);
        let p = &raw.payload;
        Ok(match raw.type_id {
            chunk::SET_CHUNK_SIZE => {
                Message::SetChunkSize(be_u32(p, "Set Chunk Size")? & 0x7FFF_FFFF)
            }
            chunk::ABORT => Message::Abort(be_u32(p, "Abort")?),
            chunk::ACKNOWLEDGEMENT => Message::Acknowledgement(be_u32(p, "Acknowledgement")?),
            chunk::WINDOW_ACK_SIZE => {
                Message::WindowAckSize(be_u32(p, "Window Acknowledgement Size")?)
            }
            chunk::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be_u32(p, "Set Peer Bandwidth")?,
                limit: *p.get(4).ok_or(Error::Truncated("Set Peer Bandwidth"))?,
            },
            chunk::USER_CONTROL => Message::UserControl(UserControl::decode(p)?),
            chunk::COMMAND_AMF0 => Message::Command(Command::decode_limited(p, depth, values)?),
            chunk::COMMAND_AMF3 => {
                Message::Command(Command::decode_limited(amf3_body(p)?, depth, values)?)
            }
            chunk::DATA_AMF0 => Message::Data(amf0::decode_all_limited(p, depth, values)?),
            chunk::DATA_AMF3 => {
                Message::Data(amf0::decode_all_limited(amf3_body(p)?, depth, values)?)
            }
            chunk::AUDIO => Message::Audio(p.clone()),
            chunk::VIDEO => Message::Video(p.clone()),
            chunk::AGGREGATE => Message::Aggregate(p.clone()),
            type_id => Message::Other {
                type_id,
                payload: p.clone(),
            },
        })
    }

    /// The message type id and body to send.
    pub fn encode(&self) -> Result<(u8, Bytes), Error> {
        let (type_id, body): (u8, Bytes) = match self {
            Message::SetChunkSize(n) => (chunk::SET_CHUNK_SIZE, n.to_be_bytes().to_vec().into()),
            Message::Abort(n) => (chunk::ABORT, n.to_be_bytes().to_vec().into()),
            Message::Acknowledgement(n) => {
                (chunk::ACKNOWLEDGEMENT, n.to_be_bytes().to_vec().into())
            }
            Message::WindowAckSize(n) => (chunk::WINDOW_ACK_SIZE, n.to_be_bytes().to_vec().into()),
            Message::SetPeerBandwidth { size, limit } => {
                let mut b = size.to_be_bytes().to_vec();
                b.push(*limit);
                (chunk::SET_PEER_BANDWIDTH, b.into())
            }
            Message::UserControl(uc) => (chunk::USER_CONTROL, uc.encode().into()),
            Message::Command(c) => (chunk::COMMAND_AMF0, c.encode()?.into()),
            Message::Data(values) => (chunk::DATA_AMF0, amf0::encode_all(values)?.into()),
            Message::Audio(b) => (chunk::AUDIO, b.clone()),
            Message::Video(b) => (chunk::VIDEO, b.clone()),
            Message::Aggregate(b) => (chunk::AGGREGATE, b.clone()),
            Message::Other { type_id, payload } => (*type_id, payload.clone()),
        };
        Ok((type_id, body))
    }

    /// The chunk stream this implementation sends the message on.
    pub fn default_csid(&self) -> u32 {
        match self {
            Message::SetChunkSize(_)
            | Message::Abort(_)
            | Message::Acknowledgement(_)
            | Message::WindowAckSize(_)
            | Message::SetPeerBandwidth { .. }
            | Message::UserControl(_) => csid::CONTROL,
            Message::Audio(_) => csid::AUDIO,
            Message::Video(_) | Message::Aggregate(_) => csid::VIDEO,
            _ => csid::COMMAND,
        }
    }

    /// Chunks the message onto `out` with `writer`'s chunk size, on the given
    /// chunk and message streams. A Set Chunk Size message also switches the
    /// writer, after being written in the old size.
    pub fn write(
        &self,
        writer: &mut ChunkWriter,
        csid: u32,
        stream_id: u32,
        timestamp: u32,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        if let Message::SetChunkSize(n) = self {
            writer.set_chunk_size(*n, out);
            return Ok(());
        }
        let (type_id, body) = self.encode()?;
        let header = MessageHeader {
            csid,
            timestamp,
            type_id,
            stream_id,
        };
        writer.write(&header, &body, out)
    }
}

/// One message inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// Message type (8 audio, 9 video, 18 data).
    pub type_id: u8,
    /// Absolute timestamp in milliseconds.
    pub timestamp: u32,
    /// Body.
    pub payload: Bytes,
}

/// Splits an aggregate message (FLV tags: 11-byte header, body, 4-byte back
/// pointer). Sub-message timestamps are rebased so that the first one equals
/// the aggregate's own `timestamp`, as the spec prescribes.
pub fn split_aggregate(payload: &Bytes, timestamp: u32) -> Result<Vec<SubMessage>, Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut first_ts = None;
    while pos < payload.len() {
        let h = payload
            .get(pos..pos + 11)
            .ok_or(Error::Truncated("aggregate sub-message header"))?;
        let type_id = h[0];
        let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        let body_start = pos + 11;
        let body_end = body_start
            .checked_add(size)
            .filter(|&e| e <= payload.len())
            .ok_or(Error::Truncated("aggregate sub-message"))?;
        let first = *first_ts.get_or_insert(ts);
        out.push(SubMessage {
            type_id,
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(first)),
            payload: payload.slice(body_start..body_end),
        });
        // The back pointer is informational; tolerate its absence at the end.
        pos = (body_end + 4).min(payload.len());
    }
    Ok(out)
}

/// An info object for `onStatus` / `_result` / `_error`.
pub fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::string(level)),
        ("code", Value::string(code)),
        ("description", Value::string(description)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn control_messages_roundtrip() {
        let msgs = [
            Message::SetChunkSize(4096),
            Message::Abort(4),
            Message::Acknowledgement(2_500_000),
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2,
            },
            Message::UserControl(UserControl::StreamBegin(1)),
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
            Message::UserControl(UserControl::PingRequest(77)),
            Message::UserControl(UserControl::PingResponse(77)),
        ];
        for m in msgs {
            let (t, body) = m.encode().unwrap();
            assert_eq!(Message::decode(&raw(t, &body), 32).unwrap(), m);
        }
    }

    #[test]
    fn ffmpeg_set_buffer_length_bytes() {
        // ffmpeg sends SetBufferLength(stream 1, 3000 ms) before play.
        let m = Message::decode(&raw(4, &[0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8]), 32).unwrap();
        assert_eq!(
            m,
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000
            })
        );
    }

    #[test]
    fn command_roundtrip_and_amf3_wrapper() {
        let c = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::string("key"), Value::string("live")],
        );
        let body = c.encode().unwrap();
        assert_eq!(
            Message::decode(&raw(20, &body), 32).unwrap(),
            Message::Command(c.clone())
        );
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&body);
        assert_eq!(
            Message::decode(&raw(17, &amf3), 32).unwrap(),
            Message::Command(c)
        );
        assert!(Message::decode(&raw(17, &[1, 2]), 32).is_err());
        assert!(Message::decode(&raw(20, &[0x05]), 32).is_err());
    }

    #[test]
    fn amf_value_limit() {
        // A command whose argument is an array of 10 000 nulls: 10 KiB on the
        // wire, 320 KiB decoded.
        let c = Command::new(
            "nope",
            2.0,
            Value::Null,
            vec![Value::StrictArray(vec![Value::Null; 10_000])],
        );
        let body = c.encode().unwrap();
        let bound = 64 + body.len() / 4;
        for t in [20, 18] {
            assert_eq!(
                Message::decode_limited(&raw(t, &body), 32, 1 << 20),
                Err(Error::AmfTooManyValues(bound))
            );
            assert_eq!(
                Message::decode_limited(&raw(t, &body), 32, 100),
                Err(Error::AmfTooManyValues(100))
            );
        }
        let e = Message::decode(&raw(20, &body), 32).unwrap_err();
        assert!(e.to_string().contains("max_amf_values"), "{e}");
        // Numbers are 9 bytes each: well within the input bound.
        let c = Command::new(
            "nope",
            2.0,
            Value::Null,
            vec![Value::StrictArray(vec![Value::Number(1.0); 10_000])],
        );
        let body = c.encode().unwrap();
        assert_eq!(
            Message::decode_limited(&raw(20, &body), 32, 1 << 20),
            Ok(Message::Command(c))
        );
    }

    #[test]
    fn aggregate_split() {
        let mut agg = Vec::new();
        for (i, body) in [&b"\xaf\x01ab"[..], &b"\x27\x01\x00\x00\x00x"[..]]
            .iter()
            .enumerate()
        {
            let ts = 5000 + i as u32 * 20;
            agg.push(if i == 0 { 8 } else { 9 });
            agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.push((ts >> 24) as u8);
            agg.extend_from_slice(&[0, 0, 0]);
            agg.extend_from_slice(body);
            agg.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
        }
        let subs = split_aggregate(&Bytes::from(agg), 100).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].type_id, subs[0].timestamp), (8, 100));
        assert_eq!((subs[1].type_id, subs[1].timestamp), (9, 120));
        assert_eq!(&subs[1].payload[..], b"\x27\x01\x00\x00\x00x");
        assert!(split_aggregate(
            &Bytes::from_static(&[9, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]),
            0
        )
        .is_err());
    }
}
