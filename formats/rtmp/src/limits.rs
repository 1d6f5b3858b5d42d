//! Resource limits: everything a hostile peer could make us allocate or loop
//! over is bounded by one of these numbers.

/// Per-connection limits. The defaults are safe for a public server.
///
/// The handshake has no knob: it is fixed-size (1 + 1536 + 1536 bytes) and
/// never buffers more than one 1537-byte packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (after reassembly of its chunks) accepted, in bytes.
    /// A header announcing more is an error before any byte is buffered.
    pub max_message_size: u32,
    /// Largest number of distinct chunk stream ids a peer may use.
    pub max_chunk_streams: usize,
    /// Largest number of bytes held in incomplete inbound messages, summed
    /// over all chunk streams. Without it a peer could open every chunk
    /// stream, start a maximal message on each and never finish one. Should be
    /// at least `max_message_size`, or the largest messages never complete.
    pub max_partial_bytes: usize,
    /// Smallest inbound chunk size a peer may set (tiny chunks multiply the
    /// per-chunk work; the spec default is 128).
    pub min_chunk_size: u32,
    /// Largest inbound chunk size a peer may set (the spec allows 2^31-1).
    pub max_chunk_size: u32,
    /// Deepest nesting of AMF0 objects/arrays decoded.
    pub max_amf_depth: usize,
    /// Largest number of AMF0 values decoded from one message (a 1-byte null
    /// decodes to a 32-byte value). The decoder also allows no more than one
    /// value per 4 input bytes (plus a few), whichever is lower.
    pub max_amf_values: usize,
    /// Largest number of message streams (`createStream`) per connection.
    pub max_streams: u32,
    /// Largest number of inbound bytes parsed into messages but not yet
    /// processed, which happens while the session waits for the host to accept
    /// or reject a publish/play.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
            max_partial_bytes: 16 << 20,
            min_chunk_size: 128,
            max_chunk_size: 16 << 20,
            max_amf_depth: 32,
            max_amf_values: crate::amf0::DEFAULT_MAX_VALUES,
            max_streams: 16,
            max_queued_bytes: 32 << 20,
        }
    }
}
