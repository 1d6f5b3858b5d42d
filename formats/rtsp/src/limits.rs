//! Resource limits: everything a peer could make us allocate or loop over
//! is bounded by one of these numbers.

/// Per-connection limits. The defaults are safe for a public server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request/status line plus headers, in bytes (8 KiB).
    pub max_head: usize,
    /// Largest number of header lines (64).
    pub max_headers: usize,
    /// Largest body (Content-Length), in bytes (64 KiB).
    pub max_body: usize,
    /// Largest interleaved (`$`) frame payload, in bytes (at most 65535,
    /// the u16 length's range).
    pub max_interleaved: usize,
    /// Requests read while one awaits the caller's answer (a client that
    /// pipelines more than this is closed).
    pub max_queued_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 << 10,
            max_headers: 64,
            max_body: 64 << 10,
            max_interleaved: 65_535,
            max_queued_requests: 16,
        }
    }
}
