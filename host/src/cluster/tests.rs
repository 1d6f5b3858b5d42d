//! The cluster's bookkeeping against an in-memory registry that behaves as
//! the Redis scripts do, with a real engine and tokio's paused clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::*;

use super::registry::{Claim, NodeRecord, Nodes, Registry, RegistryFuture};
use super::*;
use crate::engine::{EngineSettings, Frame, PublisherInfo, TrackInfo};

/// What all nodes share.
#[derive(Default)]
struct Store {
    claims: HashMap<String, Claim>,
    nodes: HashMap<String, NodeRecord>,
    /// Every call fails, as with Redis stopped.
    down: bool,
}

/// One node's handle on the [`Store`].
struct Fake {
    node_id: String,
    store: Arc<Mutex<Store>>,
}

impl Fake {
    fn call(&self) -> Result<parking_lot::MutexGuard<'_, Store>, String> {
        let s = self.store.lock();
        if s.down {
            return Err("connection refused".to_owned());
        }
        Ok(s)
    }
}

impl Registry for Fake {
    fn register<'a>(&'a self, path: &'a str, claim: &'a Claim) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            self.call()?.claims.insert(path.to_owned(), claim.clone());
            Ok(())
        })
    }

    fn refresh<'a>(
        &'a self,
        node: &'a NodeRecord,
        claims: &'a [(String, Claim)],
    ) -> RegistryFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut s = self.call()?;
            s.nodes.insert(self.node_id.clone(), node.clone());
            let mut taken = Vec::new();
            for (path, claim) in claims {
                match s.claims.get(path) {
                    Some(c) if c.node_id != self.node_id => taken.push(path.clone()),
                    _ => {
                        s.claims.insert(path.clone(), claim.clone());
                    }
                }
            }
            Ok(taken)
        })
    }

    fn unregister<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            let mut s = self.call()?;
            if s.claims
                .get(path)
                .is_some_and(|c| c.node_id == self.node_id)
            {
                s.claims.remove(path);
            }
            Ok(())
        })
    }

    fn leave<'a>(&'a self, paths: &'a [String]) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            let mut s = self.call()?;
            for p in paths {
                if s.claims.get(p).is_some_and(|c| c.node_id == self.node_id) {
                    s.claims.remove(p);
                }
            }
            s.nodes.remove(&self.node_id);
            Ok(())
        })
    }

    fn locate<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, Option<Claim>> {
        Box::pin(async move { Ok(self.call()?.claims.get(path).cloned()) })
    }

    fn nodes(&self) -> RegistryFuture<'_, Nodes> {
        Box::pin(async move {
            let s = self.call()?;
            Ok(Nodes::assemble(
                s.nodes.clone(),
                s.claims.iter().map(|(p, c)| (p.clone(), c.clone())),
                false,
            ))
        })
    }
}

const TTL: Duration = Duration::from_secs(3);

fn engine() -> Engine {
    Engine::manual(EngineSettings {
        reconnect_grace: Duration::from_secs(5),
        ..EngineSettings::default()
    })
}

fn node(id: &str, store: &Arc<Mutex<Store>>, engine: &Engine) -> Cluster {
    let fake = Fake {
        node_id: id.to_owned(),
        store: store.clone(),
    };
    Cluster::with_registry(
        Box::new(fake),
        id.to_owned(),
        format!("{id}:8080"),
        TTL,
        engine,
    )
}

/// Publishes `path` (a relay from another node when `relay`) and sends
/// one key frame, which makes it Published.
fn publish(engine: &Engine, path: &str, relay: bool) -> crate::engine::Publisher {
    let mut p = engine
        .publish(
            path,
            PublisherInfo {
                protocol: "test".into(),
                remote: "127.0.0.1:1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    if relay {
        p.set_source("http://b:8080/live/x.flv", true);
    }
    let v = p
        .add_track(TrackInfo {
            kind: RILL_TRACK_VIDEO,
            codec: RILL_CODEC_H264,
            ..Default::default()
        })
        .unwrap();
    p.write(Frame::new(
        v,
        RILL_CODEC_H264,
        RILL_FRAME_KEY,
        0,
        0,
        Bytes::from_static(b"k"),
    ))
    .unwrap();
    p
}

async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn owner_of(store: &Arc<Mutex<Store>>, path: &str) -> Option<String> {
    store.lock().claims.get(path).map(|c| c.node_id.clone())
}

async fn locate(c: &Cluster, path: &str) -> Result<Option<Owner>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    c.locate(
        path,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_published_stream_is_claimed_renewed_and_released() {
    let store = Arc::new(Mutex::new(Store::default()));
    let engine = engine();
    let a = node("a", &store, &engine);
    let p = publish(&engine, "live/a", false);
    sleep(50).await;
    assert_eq!(owner_of(&store, "live/a").as_deref(), Some("a"));
    let since = store.lock().claims["live/a"].since.clone();
    assert_eq!(
        a.stats(),
        Some(ClusterStats {
            up: true,
            owned: 1,
            errors: 0
        })
    );
    // Heartbeats keep the claim as it was, and the node record counts it.
    sleep(3000).await;
    assert_eq!(store.lock().claims["live/a"].since, since);
    assert_eq!(store.lock().nodes["a"].streams, 1);
    let view = a.view().await;
    assert_eq!(view.state, "up");
    assert_eq!(view.nodes.len(), 1);
    assert_eq!(view.nodes[0].streams, ["live/a"]);
    // This node's own stream is not "elsewhere".
    assert_eq!(locate(&a, "live/a").await, Ok(None));
    assert_eq!(locate(&a, "live/none").await, Ok(None));

    // The publisher leaves; after the grace the claim goes.
    drop(p);
    sleep(2000).await;
    assert_eq!(owner_of(&store, "live/a").as_deref(), Some("a"), "in grace");
    sleep(4000).await;
    assert_eq!(owner_of(&store, "live/a"), None);
    assert_eq!(a.stats().unwrap().owned, 0);

    a.shutdown().await;
    assert!(store.lock().nodes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_relay_from_the_owner_is_not_claimed() {
    let store = Arc::new(Mutex::new(Store::default()));
    let (ea, eb) = (engine(), engine());
    let (a, b) = (node("a", &store, &ea), node("b", &store, &eb));
    let _origin = publish(&ea, "live/x", false);
    sleep(50).await;
    // B finds A, and pulls from it.
    assert_eq!(
        locate(&b, "live/x").await,
        Ok(Some(Owner {
            node_id: "a".into(),
            advertise: "a:8080".into()
        }))
    );
    let _relay = publish(&eb, "live/x", true);
    sleep(3000).await;
    assert_eq!(owner_of(&store, "live/x").as_deref(), Some("a"));
    assert_eq!(b.stats().unwrap().owned, 0);
    let view = b.view().await;
    let ids: Vec<_> = view.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(view.nodes[0].streams, ["live/x"]);
    assert!(view.nodes[1].streams.is_empty());
    drop(a);
}

#[tokio::test(start_paused = true)]
async fn a_node_keeps_serving_while_the_registry_is_down_and_refills_it() {
    let store = Arc::new(Mutex::new(Store::default()));
    let engine = engine();
    let a = node("a", &store, &engine);
    let _p1 = publish(&engine, "live/1", false);
    sleep(50).await;
    store.lock().down = true;
    let _p2 = publish(&engine, "live/2", false);
    sleep(1500).await;
    let stats = a.stats().unwrap();
    assert!(
        !stats.up && stats.errors > 0 && stats.owned == 2,
        "{stats:?}"
    );
    let view = a.view().await;
    assert_eq!(view.state, "degraded");
    assert!(view.reason.unwrap().contains("connection refused"));
    // Without the registry it lists what it knows: itself.
    assert_eq!(view.nodes.len(), 1);
    assert_eq!(view.nodes[0].streams, ["live/1", "live/2"]);
    assert!(locate(&a, "live/9").await.is_err());

    // Redis restarted empty: the next heartbeat claims both again.
    {
        let mut s = store.lock();
        s.down = false;
        s.claims.clear();
        s.nodes.clear();
    }
    sleep(1100).await;
    assert_eq!(owner_of(&store, "live/1").as_deref(), Some("a"));
    assert_eq!(owner_of(&store, "live/2").as_deref(), Some("a"));
    assert!(a.stats().unwrap().up);
    assert_eq!(a.view().await.state, "up");
}

#[tokio::test(start_paused = true)]
async fn a_stream_taken_by_another_node_is_let_go_until_its_publisher_returns() {
    let store = Arc::new(Mutex::new(Store::default()));
    let engine = engine();
    let a = node("a", &store, &engine);
    let p = publish(&engine, "live/m", false);
    sleep(50).await;
    // The publisher shows up at B, which claims the stream.
    store.lock().claims.insert(
        "live/m".into(),
        Claim {
            node_id: "b".into(),
            advertise: "b:8080".into(),
            since: "t".into(),
        },
    );
    sleep(1100).await;
    assert_eq!(
        owner_of(&store, "live/m").as_deref(),
        Some("b"),
        "B's stands"
    );
    assert_eq!(a.stats().unwrap().owned, 0);
    assert_eq!(
        locate(&a, "live/m").await.unwrap().map(|o| o.node_id),
        Some("b".into())
    );
    // A's old publisher going into its grace changes nothing...
    drop(p);
    sleep(1100).await;
    assert_eq!(owner_of(&store, "live/m").as_deref(), Some("b"));
    // ...but one coming back to A within the grace wins it back.
    let _p = publish(&engine, "live/m", false);
    sleep(1100).await;
    assert_eq!(owner_of(&store, "live/m").as_deref(), Some("a"));
    assert_eq!(a.stats().unwrap().owned, 1);
}

#[tokio::test(start_paused = true)]
async fn a_registration_replaces_a_stale_claim() {
    let store = Arc::new(Mutex::new(Store::default()));
    store.lock().claims.insert(
        "live/s".into(),
        Claim {
            node_id: "dead".into(),
            advertise: "dead:8080".into(),
            since: "t".into(),
        },
    );
    let engine = engine();
    let _a = node("a", &store, &engine);
    sleep(10).await;
    let _p = publish(&engine, "live/s", false);
    sleep(50).await;
    assert_eq!(owner_of(&store, "live/s").as_deref(), Some("a"));
}

#[tokio::test]
async fn locate_answers_once_even_when_its_task_is_dropped() {
    let (tx, rx) = std::sync::mpsc::channel();
    drop(OnceDone(Some(Box::new(move |r| tx.send(r).unwrap()))));
    assert!(rx.recv().unwrap().is_err());
    // Without a cluster: nobody else has it, at once.
    let (tx, rx) = std::sync::mpsc::channel();
    Cluster::disabled().locate("live/a", Box::new(move |r| tx.send(r).unwrap()));
    assert_eq!(rx.recv().unwrap(), Ok(None));
    let view = Cluster::disabled().view().await;
    assert_eq!(view.state, "disabled");
    let json = serde_json::to_value(&view).unwrap();
    assert!(json.get("reason").is_none() && json.get("truncated").is_none());
    assert!(Cluster::disabled().stats().is_none());
}
