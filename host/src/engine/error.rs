//! Errors the engine returns to protocol code.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The stream path is not `app/name` of allowed characters.
    InvalidPath(String),
    /// Someone already publishes this stream and `kick_existing` is off.
    Busy(String),
    /// The stream was closing; try again (the engine does this itself).
    StreamClosing,
    /// This publisher was detached (kicked, timed out, stream closed).
    PublisherClosed,
    /// The frame names a track this publisher did not add.
    NoSuchTrack(u32),
    TooManyTracks(usize),
    /// The server is shutting down.
    ShuttingDown,
    /// Nobody publishes this stream (a derived writer needs a publisher).
    NotPublished(String),
    /// A derived writer cannot do this (metadata belongs to the publisher).
    NotForDerived,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::InvalidPath(why) => write!(f, "invalid stream path: {why}"),
            EngineError::Busy(p) => write!(f, "stream {p} is already being published"),
            EngineError::StreamClosing => write!(f, "stream is closing"),
            EngineError::PublisherClosed => write!(f, "the publisher was detached from its stream"),
            EngineError::NoSuchTrack(t) => write!(f, "no track {t} on this publisher"),
            EngineError::TooManyTracks(n) => write!(f, "a stream has at most {n} tracks"),
            EngineError::ShuttingDown => write!(f, "the server is shutting down"),
            EngineError::NotPublished(p) => write!(f, "nobody publishes {p}"),
            EngineError::NotForDerived => write!(f, "not for a derived track's writer"),
        }
    }
}

impl std::error::Error for EngineError {}
