//! What every plugin instance shares: the engine, the runtime, the
//! listeners (which outlive generations) and the HTTP route table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use super::instance::{Instance, ListenDecl};
use super::session::{self, Io, Origin};
use crate::engine::Engine;

pub(crate) struct HostShared {
    pub engine: Engine,
    pub rt: tokio::runtime::Handle,
    pub listeners: Listeners,
    pub routes: super::routes::Routes,
    /// Instance UDP sockets (`udp_listen`), which outlive generations.
    pub udp: super::udp::UdpSockets,
    /// Origin of `clock_monotonic_us`.
    pub epoch: std::time::Instant,
    /// `http.response_timeout`, in ms: how long a plugin may take to answer
    /// an HTTP request before the host answers 504.
    pub http_deadline_ms: std::sync::atomic::AtomicU64,
    /// The host's certificate (`http.tls`), for `RILL_LISTEN_TLS`.
    pub tls: Option<crate::http::tls::Tls>,
    /// `tls_client.ca_file`, and the client configuration built from it at
    /// the first `RILL_CONNECT_TLS`.
    pub tls_client_ca: Option<std::path::PathBuf>,
    pub tls_client: Arc<std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
    /// Auth and limits for every session.
    pub admission: Arc<crate::admission::Admission>,
    /// Which paths plugins may use (`file_open`, `fs_op`).
    pub roots: crate::storage::Roots,
    /// The recording index.
    pub db: crate::db::Db,
    /// The cluster registry (disabled without `cluster:`).
    pub cluster: crate::cluster::Cluster,
    /// Metrics plugins set for themselves.
    pub metrics: super::plugin_metrics::PluginMetrics,
    /// HTTP objects plugins published for the host to serve.
    pub objects: super::objects::Objects,
}

impl HostShared {
    /// Whether a TCP session that streams media may let the kernel merge
    /// its writes (TCP_NODELAY off), per `subscribe.tcp_nodelay`.
    pub(crate) fn streaming_send_buffer(&self) -> usize {
        self.engine.settings().send_buffer
    }

    /// How long a streaming connection may take nothing while output
    /// waits before it is closed (`subscribe.max_lag`).
    pub(crate) fn write_stall_limit(&self) -> std::time::Duration {
        self.engine.settings().max_lag
    }

    pub(crate) fn nagle_when_streaming(&self) -> bool {
        !self.engine.settings().tcp_nodelay
    }

    /// The TLS client configuration, built once.
    pub(crate) fn tls_client(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls_client
            .get_or_init(|| crate::net::tls_client::client_config(self.tls_client_ca.as_deref()))
            .clone()
    }

    pub(crate) fn http_response_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.http_deadline_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// Where a listener's new connections go: the plugin's current generation.
struct Target {
    inst: Arc<Instance>,
    listener_id: u32,
}

struct ListenerEntry {
    owner: String,
    target: ArcSwapOption<Target>,
    task: AbortHandle,
}

/// What a listener's connections speak.
#[derive(Clone)]
enum Wire {
    Tcp,
    /// TLS with the host's certificate, handshake first.
    Tls(crate::http::tls::Tls),
}

/// TCP listeners by address. A listener belongs to a plugin (by name), not
/// to a generation: a reload re-targets it, so no connection is refused.
#[derive(Default)]
pub(crate) struct Listeners {
    map: Mutex<HashMap<SocketAddr, Arc<ListenerEntry>>>,
}

impl Listeners {
    /// The plugin listening on `addr`, if any.
    pub(crate) fn owner_of(&self, addr: &SocketAddr) -> Option<String> {
        self.map.lock().get(addr).map(|e| e.owner.clone())
    }

    /// Makes `inst`'s declared listeners live: new sockets start accepting,
    /// inherited ones switch to `inst`, and the plugin's listeners it no
    /// longer declares close.
    pub(crate) fn activate(
        &self,
        inst: &Arc<Instance>,
        decls: Vec<ListenDecl>,
        rt: &tokio::runtime::Handle,
    ) {
        let mut map = self.map.lock();
        for d in &decls {
            let target = Arc::new(Target {
                inst: inst.clone(),
                listener_id: d.listener_id,
            });
            if let Some(e) = map.get(&d.addr) {
                e.target.store(Some(target));
                continue;
            }
            let Some(sock) = d.socket.as_ref().and_then(|s| s.try_clone().ok()) else {
                continue;
            };
            let wire = match (&d.tls, &inst.host.tls) {
                (true, Some(t)) => Wire::Tls(t.clone()),
                (true, None) => continue,
                _ => Wire::Tcp,
            };
            let entry = Arc::new_cyclic(|weak: &std::sync::Weak<ListenerEntry>| {
                let weak = weak.clone();
                let _g = rt.enter();
                let task = rt.spawn(accept_loop(sock, weak, wire)).abort_handle();
                ListenerEntry {
                    owner: inst.name.clone(),
                    target: ArcSwapOption::from(Some(target)),
                    task,
                }
            });
            tracing::info!(plugin = %inst.name, addr = %d.addr, "listening");
            map.insert(d.addr, entry);
        }
        map.retain(|addr, e| {
            let keep = e.owner != inst.name || decls.iter().any(|d| d.addr == *addr);
            if !keep {
                tracing::info!(plugin = %e.owner, addr = %addr, "listener closed");
                e.task.abort();
            }
            keep
        });
    }

    /// Closes every listener of plugin `name`.
    pub(crate) fn remove_plugin(&self, name: &str) {
        self.map.lock().retain(|_, e| {
            if e.owner == name {
                e.task.abort();
                false
            } else {
                true
            }
        });
    }

    pub(crate) fn close_all(&self) {
        for (_, e) in self.map.lock().drain() {
            e.task.abort();
        }
    }
}

async fn accept_loop(
    sock: std::net::TcpListener,
    entry: std::sync::Weak<ListenerEntry>,
    wire: Wire,
) {
    let listener = match tokio::net::TcpListener::from_std(sock) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listener: {e}");
            return;
        }
    };
    let gate = std::sync::Arc::new(crate::admission::ListenerGate::default());
    loop {
        // At the cap: accept nothing until a connection ends.
        let admission = entry
            .upgrade()
            .and_then(|e| e.target.load_full())
            .map(|t| t.inst.host.admission.clone());
        if let Some(admission) = admission {
            admission.listener_room(&gate).await;
        }
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(entry) = entry.upgrade() else { return };
        let Some(t) = entry.target.load_full() else {
            continue;
        };
        if t.inst.draining.load(std::sync::atomic::Ordering::Acquire) {
            continue;
        }
        // Over a per-address limit: closed before any protocol work.
        let Some(slot) = t
            .inst
            .host
            .admission
            .accept(peer.ip(), &t.inst.name, Some(gate.enter()))
        else {
            continue;
        };
        let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
        match &wire {
            Wire::Tcp => {
                // Refused only by a generation being destroyed: the
                // socket closes.
                if let Ok(id) = session::spawn(
                    &t.inst,
                    Io::Stream(sock),
                    Origin::Listener(t.listener_id),
                    peer.to_string(),
                    local,
                    std::ptr::null_mut(),
                ) {
                    t.inst.hold_slot(id, slot);
                }
            }
            // The handshake on its own task: a client that stalls in it
            // holds up nobody, and is dropped at the timeout.
            Wire::Tls(tls) => {
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Some(stream) = tls.accept_for_plugin(sock, peer).await {
                        if let Ok(id) = session::spawn(
                            &t.inst,
                            Io::Tls(Box::new(stream)),
                            Origin::Listener(t.listener_id),
                            peer.to_string(),
                            local,
                            std::ptr::null_mut(),
                        ) {
                            t.inst.hold_slot(id, slot);
                        }
                    }
                });
            }
        }
    }
}

/// Parses a listen address: `host:port`, `[v6]:port`, or `:port` (all
/// interfaces).
pub(crate) fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p)));
    }
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    use std::net::ToSocketAddrs;
    s.to_socket_addrs().ok()?.next()
}
