//! The registry the nodes share: which node publishes which stream, and
//! which nodes are alive. A small trait, so that a store other than Redis
//! (NATS KV, etcd) can follow; [`super::redis_registry`] implements it.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Every key the cluster writes starts with this.
pub const PREFIX: &str = "rill:";

/// The key of a stream's claim: `rill:stream:<path>`.
pub fn stream_key(path: &str) -> String {
    format!("{PREFIX}stream:{path}")
}

/// The key of a node's record: `rill:node:<node_id>`.
pub fn node_key(node_id: &str) -> String {
    format!("{PREFIX}node:{node_id}")
}

/// The stream path a stream key names, if it is one.
pub fn path_of_stream_key(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?
        .strip_prefix("stream:")
        .filter(|p| !p.is_empty())
}

/// The node id a node key names, if it is one.
pub fn id_of_node_key(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?
        .strip_prefix("node:")
        .filter(|p| !p.is_empty())
}

/// The value of a stream key: who publishes the stream, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub node_id: String,
    /// `host:port` of the node's HTTP server.
    pub advertise: String,
    /// When the node claimed the stream (RFC 3339, UTC).
    pub since: String,
}

/// The value of a node key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub advertise: String,
    /// When the node started (RFC 3339, UTC).
    pub started: String,
    /// How many streams it claims.
    pub streams: usize,
}

/// A node as `GET /api/v1/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub advertise: String,
    /// Unknown when only the node's stream claims were found (its record
    /// expired first).
    pub started: Option<String>,
    /// The paths it claims, sorted.
    pub streams: Vec<String>,
}

/// What the registry holds, as read by [`Registry::nodes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Nodes {
    /// Sorted by node id.
    pub nodes: Vec<NodeView>,
    /// More keys than the read may take: the list is partial.
    pub truncated: bool,
}

impl Nodes {
    /// Groups node records and stream claims by node. Claims of a node
    /// without a record (it is going away) still show, under that node.
    pub fn assemble(
        records: impl IntoIterator<Item = (String, NodeRecord)>,
        claims: impl IntoIterator<Item = (String, Claim)>,
        truncated: bool,
    ) -> Nodes {
        use std::collections::BTreeMap;
        let mut by_id: BTreeMap<String, NodeView> = records
            .into_iter()
            .map(|(id, r)| {
                let view = NodeView {
                    node_id: id.clone(),
                    advertise: r.advertise,
                    started: Some(r.started),
                    streams: Vec::new(),
                };
                (id, view)
            })
            .collect();
        for (path, c) in claims {
            by_id
                .entry(c.node_id.clone())
                .or_insert_with(|| NodeView {
                    node_id: c.node_id.clone(),
                    advertise: c.advertise.clone(),
                    started: None,
                    streams: Vec::new(),
                })
                .streams
                .push(path);
        }
        let mut nodes: Vec<NodeView> = by_id.into_values().collect();
        for n in &mut nodes {
            n.streams.sort_unstable();
        }
        Nodes { nodes, truncated }
    }
}

/// What a registry call returns; the error says why, for the log and the API.
pub type RegistryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The shared registry, seen from one node (the implementation knows the
/// node's id and the claims' time to live). Every call is bounded in time.
pub trait Registry: Send + Sync + 'static {
    /// Claims `path` for this node, replacing whoever held it (a publisher
    /// that moved here wins).
    fn register<'a>(&'a self, path: &'a str, claim: &'a Claim) -> RegistryFuture<'a, ()>;

    /// The heartbeat: renews this node's record and each of its claims
    /// where the claim is absent (expired, or the store lost it) or still
    /// this node's. Returns the paths another node holds now.
    fn refresh<'a>(
        &'a self,
        node: &'a NodeRecord,
        claims: &'a [(String, Claim)],
    ) -> RegistryFuture<'a, Vec<String>>;

    /// Removes the claim on `path` if it is this node's.
    fn unregister<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, ()>;

    /// Leaving the cluster: removes these claims (where still this node's)
    /// and the node's record.
    fn leave<'a>(&'a self, paths: &'a [String]) -> RegistryFuture<'a, ()>;

    /// Who claims `path`, if anyone.
    fn locate<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, Option<Claim>>;

    /// Every node and its claims (bounded: see [`Nodes::truncated`]).
    fn nodes(&self) -> RegistryFuture<'_, Nodes>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_and_read_back() {
        assert_eq!(stream_key("live/a"), "rill:stream:live/a");
        assert_eq!(node_key("a"), "rill:node:a");
        assert_eq!(path_of_stream_key("rill:stream:live/a"), Some("live/a"));
        assert_eq!(path_of_stream_key("rill:stream:"), None);
        assert_eq!(path_of_stream_key("rill:node:a"), None);
        assert_eq!(path_of_stream_key("other:stream:live/a"), None);
        assert_eq!(id_of_node_key("rill:node:edge-1"), Some("edge-1"));
        assert_eq!(id_of_node_key("rill:stream:live/a"), None);
    }

    #[test]
    fn values_are_the_documented_json() {
        let c = Claim {
            node_id: "a".into(),
            advertise: "10.0.0.1:8080".into(),
            since: "2026-12-02T10:00:00.000Z".into(),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"node_id":"a","advertise":"10.0.0.1:8080","since":"2026-12-02T10:00:00.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<Claim>(&text).unwrap(), c);
        let n = NodeRecord {
            advertise: "10.0.0.1:8080".into(),
            started: "2026-12-02T10:00:00.000Z".into(),
            streams: 2,
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(
            text,
            r#"{"advertise":"10.0.0.1:8080","started":"2026-12-02T10:00:00.000Z","streams":2}"#
        );
        // Another writer's extra fields are ignored; garbage is an error,
        // not a panic.
        let more = r#"{"node_id":"b","advertise":"x:1","since":"t","hops":1}"#;
        assert_eq!(serde_json::from_str::<Claim>(more).unwrap().node_id, "b");
        assert!(serde_json::from_str::<Claim>("not json").is_err());
    }

    #[test]
    fn nodes_group_claims_by_node() {
        let rec = |a: &str| NodeRecord {
            advertise: a.into(),
            started: "t0".into(),
            streams: 0,
        };
        let claim = |n: &str, a: &str| Claim {
            node_id: n.into(),
            advertise: a.into(),
            since: "t1".into(),
        };
        let nodes = Nodes::assemble(
            [("b".into(), rec("b:1")), ("a".into(), rec("a:1"))],
            [
                ("live/z".into(), claim("a", "a:1")),
                ("live/y".into(), claim("a", "a:1")),
                ("live/x".into(), claim("gone", "g:1")),
            ],
            false,
        );
        let ids: Vec<_> = nodes.nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "gone"]);
        assert_eq!(nodes.nodes[0].streams, ["live/y", "live/z"]);
        assert!(nodes.nodes[1].streams.is_empty());
        assert_eq!(nodes.nodes[2].started, None);
        assert_eq!(nodes.nodes[2].advertise, "g:1");
        let json = serde_json::to_value(&nodes.nodes[0]).unwrap();
        assert_eq!(json["streams"][0], "live/y");
        assert_eq!(json["started"], "t0");
    }
}
