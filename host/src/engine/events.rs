//! What happens to streams, for whoever acts on every stream (recorders,
//! relays, on-demand pulls): published, unpublished, a player waiting, the
//! last player gone. Broadcast in order; a listener that falls more than
//! [`CAPACITY`] events behind loses the oldest and is told so.

use std::sync::Arc;

use tokio::sync::broadcast;

/// Events kept for a slow listener.
pub const CAPACITY: usize = 4096;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEventKind {
    /// The publisher wrote its first media frame: the stream is live, its
    /// tracks so far declared. Once per stream (not again when a publisher
    /// returns within the grace window).
    Published,
    /// A stream announced as published is gone (its publisher did not
    /// return within the grace window, or it was closed).
    Unpublished,
    /// A player started waiting for the stream, which nobody publishes.
    Waiting,
    /// The last player of a published stream left.
    Idle,
    /// The first player of a published stream came (none was there).
    Active,
    /// A player left out the stream's audio: it cannot carry its codec (a
    /// transformer may derive one it can).
    CodecWanted,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub kind: StreamEventKind,
    pub path: Arc<str>,
}

/// The engine's event channel.
pub(crate) struct Events {
    tx: broadcast::Sender<StreamEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    pub(crate) fn send(&self, kind: StreamEventKind, path: &str) {
        tracing::debug!(stream = %path, ?kind, "stream event");
        // No listener: nothing to do.
        let _ = self.tx.send(StreamEvent {
            kind,
            path: path.into(),
        });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.tx.subscribe()
    }
}
