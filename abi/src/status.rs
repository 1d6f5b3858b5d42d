//! Status codes, end reasons and log levels: plain integer constants, never
//! Rust enums (C could put any value in them).

/// Success.
pub const RILL_OK: i32 = 0;
/// Success, but the connection's outbound queue is now above its high-water
/// mark: the data WAS queued; write nothing more until `on_conn_writable`.
/// Returned by `conn_write`, `conn_write_frame`, `ws_send`. Positive codes
/// are never errors: test errors with `rc < 0`.
pub const RILL_FULL: i32 = 1;
/// Added in 1.2. The answer comes later: `admit` asked someone else (a
/// webhook); `on_admit` brings the decision. Not an error.
pub const RILL_PENDING: i32 = 2;

/// An argument is invalid (NULL handle, bad UTF-8, malformed address or
/// path, offset out of range, call made outside its allowed context, ...).
pub const RILL_ERR_INVALID: i32 = -1;
/// The named thing does not exist (stream not published and no waiting
/// asked for, unknown track, timer already fired or cancelled).
pub const RILL_ERR_NOT_FOUND: i32 = -2;
/// Already in use: the stream already has a publisher (and the host is not
/// configured to kick it), the address or route is taken by another plugin.
pub const RILL_ERR_BUSY: i32 = -3;
/// The handle's session, stream or connection has ended; nothing was done.
pub const RILL_ERR_CLOSED: i32 = -4;
/// Would block: the connection's outbound queue was already above its hard
/// cap before the call, and the data was NOT queued. Only a plugin that
/// kept writing after `RILL_FULL` sees it. Wait for `on_conn_writable`.
pub const RILL_ERR_AGAIN: i32 = -5;
/// Out of memory, or a size cap was reached.
pub const RILL_ERR_NOMEM: i32 = -6;
/// This host (or this kind of session) does not support the request.
pub const RILL_ERR_UNSUPPORTED: i32 = -7;
/// Timed out.
pub const RILL_ERR_TIMEOUT: i32 = -8;
/// A callback panicked (Rust plugins) or a host call panicked; the panic was
/// caught at the boundary and logged.
pub const RILL_ERR_PANIC: i32 = -9;
/// Refused by policy: authentication, access rules.
pub const RILL_ERR_DENIED: i32 = -10;
/// An operating-system I/O error (bind, connect, read, write).
pub const RILL_ERR_IO: i32 = -11;
/// The peer broke the protocol (bad FLV, bad HTTP, bad WebSocket frame).
pub const RILL_ERR_PROTOCOL: i32 = -12;
/// A bug or an unexpected state inside the host or the plugin.
pub const RILL_ERR_INTERNAL: i32 = -13;
/// Added in 1.2. Refused for want of credentials, or wrong ones (no or a
/// bad token, stream key, user or password): the client may retry with
/// others. Protocols that can ask for credentials do (HTTP and RTSP 401).
/// `RILL_ERR_DENIED` is the final refusal (IP rules, a webhook's "no").
pub const RILL_ERR_UNAUTHORIZED: i32 = -14;
/// Added in 1.4. The disk is full (a storage call).
pub const RILL_ERR_NO_SPACE: i32 = -15;

/// A short lower-case name for a status code (`"ok"`, `"busy"`, ...), or
/// `"unknown"`. C has the same as `rill_status_str()`.
pub const fn rill_status_name(status: i32) -> &'static str {
    match status {
        RILL_OK => "ok",
        RILL_FULL => "full",
        RILL_PENDING => "pending",
        RILL_ERR_INVALID => "invalid argument",
        RILL_ERR_NOT_FOUND => "not found",
        RILL_ERR_BUSY => "busy",
        RILL_ERR_CLOSED => "closed",
        RILL_ERR_AGAIN => "would block",
        RILL_ERR_NOMEM => "out of memory",
        RILL_ERR_UNSUPPORTED => "unsupported",
        RILL_ERR_TIMEOUT => "timed out",
        RILL_ERR_PANIC => "panic",
        RILL_ERR_DENIED => "denied",
        RILL_ERR_IO => "i/o error",
        RILL_ERR_PROTOCOL => "protocol error",
        RILL_ERR_INTERNAL => "internal error",
        RILL_ERR_UNAUTHORIZED => "unauthorized",
        RILL_ERR_NO_SPACE => "no space left",
        _ => "unknown",
    }
}

/// Why a session, subscriber or publisher ended: normally (the plugin
/// closed it, or the stream ended cleanly).
pub const RILL_END_NORMAL: u32 = 0;
/// The peer closed the connection (EOF, WebSocket close, HTTP client gone).
pub const RILL_END_PEER: u32 = 1;
/// An I/O or TLS error on the connection, or an outbound connect failed.
pub const RILL_END_ERROR: u32 = 2;
/// A timeout: idle connection, or a subscriber that waited for a publisher
/// longer than its wait timeout.
pub const RILL_END_TIMEOUT: u32 = 3;
/// The stream's publisher left and did not come back within the grace
/// window.
pub const RILL_END_PUBLISHER_GONE: u32 = 4;
/// Kicked: through the management API, or a publisher replaced by a new one
/// (kick-existing).
pub const RILL_END_KICKED: u32 = 5;
/// The subscriber stayed behind the stream too long (it kept losing GOPs).
pub const RILL_END_TOO_SLOW: u32 = 6;
/// The host is shutting down, or this instance's drain deadline passed.
pub const RILL_END_SHUTDOWN: u32 = 7;
/// A plugin callback returned an error status or panicked.
pub const RILL_END_PLUGIN_ERROR: u32 = 8;

/// Log level: an error an operator must see.
pub const RILL_LOG_ERROR: u32 = 1;
/// Log level: something unexpected but handled.
pub const RILL_LOG_WARN: u32 = 2;
/// Log level: lifecycle events (listening, publish start/stop).
pub const RILL_LOG_INFO: u32 = 3;
/// Log level: details for debugging.
pub const RILL_LOG_DEBUG: u32 = 4;
/// Log level: per-packet tracing.
pub const RILL_LOG_TRACE: u32 = 5;
