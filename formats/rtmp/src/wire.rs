//! What the server and client sessions share below the commands: the
//! outbound queue (small writes coalesced, large buffers passed through) and
//! the acknowledgement window bookkeeping.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::chunk::{csid, ChunkWriter, MessageHeader};
use crate::error::Error;
use crate::message::{Command, Message, UserControl};

/// One connection's outbound side and byte counts.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) writer: ChunkWriter,
    /// Buffers ready for the socket.
    out: VecDeque<Bytes>,
    /// Small writes are coalesced here before becoming one `Bytes`.
    pub(crate) tail: BytesMut,
    /// Acknowledgement bookkeeping (bytes after the handshake).
    received: u64,
    acked: u64,
    /// The peer's window: acknowledge every this many bytes (0: never).
    pub(crate) ack_window: u32,
    /// Last Window Acknowledgement Size we sent.
    pub(crate) window_sent: u32,
}

impl Wire {
    pub(crate) fn new(ack_window: u32) -> Self {
        Wire {
            writer: ChunkWriter::new(),
            out: VecDeque::new(),
            tail: BytesMut::new(),
            received: 0,
            acked: 0,
            ack_window,
            window_sent: 0,
        }
    }

    /// Queues a buffer as is, after what was written before it.
    pub(crate) fn push_out(&mut self, bytes: Bytes) {
        self.flush_tail();
        self.out.push_back(bytes);
    }

    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            let b = self.tail.split().freeze();
            self.out.push_back(b);
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.flush_tail();
        self.out.pop_front()
    }

    pub(crate) fn pending_bytes(&self) -> usize {
        self.tail.len() + self.out.iter().map(Bytes::len).sum::<usize>()
    }

    /// Writes `msg` at timestamp 0.
    pub(crate) fn send(&mut self, msg: &Message, csid: u32, stream_id: u32) -> Result<(), Error> {
        msg.write(&mut self.writer, csid, stream_id, 0, &mut self.tail)
    }

    /// Writes a media or data message body (FLV tag type `type_id`) given
    /// as consecutive parts.
    pub(crate) fn send_media(
        &mut self,
        type_id: u8,
        timestamp: u32,
        stream_id: u32,
        parts: &[&[u8]],
    ) -> Result<(), Error> {
        let header = MessageHeader::media(type_id, timestamp, stream_id);
        crate::chunk::encode_message(self.writer.chunk_size(), &header, parts, &mut self.tail)
    }

    pub(crate) fn send_window_ack(&mut self, size: u32) -> Result<(), Error> {
        self.window_sent = size;
        self.send(&Message::WindowAckSize(size), csid::CONTROL, 0)
    }

    /// Applies or answers a protocol control message, the same for both
    /// sides: a new acknowledgement window, Set Peer Bandwidth (the spec
    /// asks for a Window Acknowledgement Size in return when it differs
    /// from the last one sent), a ping. Set Chunk Size and Abort were
    /// applied by the reader; acknowledgements need no answer. A command
    /// is handed back for the session.
    pub(crate) fn on_control(&mut self, msg: Message) -> Result<Option<Command>, Error> {
        match msg {
            Message::WindowAckSize(n) if n > 0 => self.ack_window = n,
            Message::SetPeerBandwidth { size, .. } if size != self.window_sent && size > 0 => {
                self.send_window_ack(size)?
            }
            Message::UserControl(UserControl::PingRequest(t)) => self.send(
                &Message::UserControl(UserControl::PingResponse(t)),
                csid::CONTROL,
                0,
            )?,
            Message::Command(cmd) => return Ok(Some(cmd)),
            _ => {}
        }
        Ok(None)
    }

    /// Counts `n` received bytes; acknowledges when the window is full.
    pub(crate) fn count_received(&mut self, n: usize) {
        self.received += n as u64;
        if self.ack_window > 0 && self.received - self.acked >= self.ack_window as u64 {
            self.acked = self.received;
            // The sequence number is the byte count modulo 2^32.
            let ack = Message::Acknowledgement(self.received as u32);
            let _ = self.send(&ack, csid::CONTROL, 0);
        }
    }
}
