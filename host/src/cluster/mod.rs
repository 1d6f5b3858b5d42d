//! The cluster: which node publishes which stream, shared by every node
//! (issue 17). This file fixes the interface the rest of the host uses;
//! the registry behind it (Redis) lives beside it.

use std::sync::Arc;

use serde::Serialize;

/// Another node that publishes a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// The owner's `cluster.node_id`.
    pub node_id: String,
    /// `host:port` of the owner's HTTP server (`cluster.advertise`).
    pub advertise: String,
}

/// Completion of [`Cluster::locate`]: `Ok(None)` when no other node has
/// the stream, `Err` when the registry cannot be reached.
pub type Located = Box<dyn FnOnce(Result<Option<Owner>, String>) + Send>;

/// The host's view of the cluster; cheap to clone.
#[derive(Clone, Default)]
pub struct Cluster {
    inner: Option<Arc<()>>,
}

impl Cluster {
    /// A host without a cluster.
    pub fn disabled() -> Cluster {
        Cluster::default()
    }

    /// Whether this host runs in a cluster.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Looks up which other node publishes `path`; `done` runs once, on a
    /// runtime thread. Never this node itself.
    pub fn locate(&self, _path: &str, done: Located) {
        done(Ok(None))
    }
}
