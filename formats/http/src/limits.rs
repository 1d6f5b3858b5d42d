//! Resource limits: everything a server could make the client allocate or
//! loop over is bounded by one of these numbers.

/// Per-response limits. The defaults suit a live stream from a server one
/// does not control: bounded heads, an unbounded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest status line plus headers, in bytes (16 KiB); also bounds a
    /// chunked body's trailer section.
    pub max_head: usize,
    /// Largest number of header lines (64); also bounds trailer lines.
    pub max_headers: usize,
    /// Longest chunk-size line, extensions included, in bytes (1 KiB).
    pub max_chunk_line: usize,
    /// Largest body, in bytes (`u64::MAX`: a live stream never ends). A
    /// Content-Length above it is refused at the head; other bodies are
    /// delivered up to it, then refused.
    pub max_body: u64,
    /// Bytes the reader may hold (unparsed input plus body events not yet
    /// polled) when `feed` is called again (1 MiB). A caller that drains
    /// `poll_event` after each feed never reaches it.
    pub max_buffered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 << 10,
            max_headers: 64,
            max_chunk_line: 1 << 10,
            max_body: u64::MAX,
            max_buffered: 1 << 20,
        }
    }
}
