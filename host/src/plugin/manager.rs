//! The plugin manager: loads every plugin in `plugins_dir`, watches the
//! directory, and swaps generations.
//!
//! Reload = load a private copy of the new file, `create` it, make its
//! listeners and routes live (new sessions go to it), then drain the old
//! generation: its open sessions finish on the old code until they end
//! (or `drain_timeout`, when set, or a forced drain closes them), and only
//! then is it destroyed. A file that
//! fails anywhere on that path leaves the running generation serving, with
//! the reason in the plugin's `last_error`. Removing the file drains and
//! stops the plugin. Libraries are never unloaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;

use super::host::{HostShared, Listeners};
use super::instance::Instance;
use super::library::{self, LoadedLibrary};
use super::session;
use super::watch::{self, PluginFileEvent, PluginWatcher};
use crate::config::Config;
use crate::engine::Engine;

/// A plugin as the management API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `major.minor` of the ABI the plugin was built against.
    pub abi: String,
    pub generation: u64,
    pub file: String,
    pub file_hash: String,
    /// Unix time, seconds.
    pub loaded_at: f64,
    /// "running", "failed" (never loaded), "stopped" (file removed).
    pub state: &'static str,
    pub last_error: Option<String>,
    pub reload_failures: u64,
    /// Generations still draining.
    pub draining: usize,
    /// Each draining generation, oldest first, with the sessions it still
    /// serves (they end by themselves, at `drain_timeout` when set, or at
    /// a forced drain).
    pub draining_generations: Vec<DrainingGeneration>,
    /// Sessions open on the current generation.
    pub sessions: usize,
    /// Whether abi_stable's deep layout check ran (Rust plugins).
    pub layout_checked: bool,
}

/// An old generation still serving sessions it had open before a reload.
#[derive(Debug, Clone, Serialize)]
pub struct DrainingGeneration {
    pub generation: u64,
    pub sessions: usize,
}

/// What a reload asked through the API did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new generation serves.
    Reloaded,
    /// The file holds the bytes already running: nothing was loaded.
    Unchanged,
}

/// Why a reload asked through the API did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadRefused {
    NoPlugin,
    /// Asked again within [`API_RELOAD_INTERVAL`]; retry after this.
    TooSoon(Duration),
    /// The file did not load; the running generation stays.
    Failed(String),
}

/// Reloads asked through the API, at most one per plugin per interval:
/// every generation stays mapped for the life of the process (libraries
/// are never unloaded), so a request loop must not be able to pile them up.
pub const API_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

struct Slot {
    /// When the API last asked for a reload.
    last_api_reload: Option<tokio::time::Instant>,
    file: PathBuf,
    lib: Option<LoadedLibrary>,
    current: Option<Arc<Instance>>,
    generation: u64,
    last_error: Option<String>,
    reload_failures: u64,
    /// Old generations still serving their sessions, oldest first.
    draining: Arc<parking_lot::Mutex<Vec<Arc<Instance>>>>,
}

impl Slot {
    fn new(file: &Path) -> Slot {
        Slot {
            last_api_reload: None,
            file: file.to_path_buf(),
            lib: None,
            current: None,
            generation: 0,
            last_error: None,
            reload_failures: 0,
            draining: Default::default(),
        }
    }
}

struct Inner {
    host: Arc<HostShared>,
    dir: PathBuf,
    private_dir: PathBuf,
    config: parking_lot::Mutex<Config>,
    /// By plugin name; files that never loaded are keyed by file name.
    slots: Mutex<BTreeMap<String, Slot>>,
    watcher: parking_lot::Mutex<Option<PluginWatcher>>,
}

#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl PluginManager {
    /// A manager for `config.plugins_dir`; call `start` to load and watch.
    pub fn new(
        engine: Engine,
        config: &Config,
        tls: Option<crate::http::tls::Tls>,
        db: crate::db::Db,
        cluster: crate::cluster::Cluster,
    ) -> PluginManager {
        let tls_client: Arc<std::sync::OnceLock<_>> = Default::default();
        let admission = crate::admission::Admission::new(config, {
            let (cell, ca) = (tls_client.clone(), config.tls_client.ca_file.clone());
            move || {
                cell.get_or_init(|| crate::net::tls_client::client_config(ca.as_deref()))
                    .clone()
                    .ok()
            }
        });
        let host = Arc::new(HostShared {
            engine,
            rt: tokio::runtime::Handle::current(),
            listeners: Listeners::default(),
            routes: Default::default(),
            udp: Default::default(),
            epoch: std::time::Instant::now(),
            http_deadline_ms: (config.http.response_timeout.as_millis() as u64).into(),
            tls,
            tls_client_ca: config.tls_client.ca_file.clone(),
            tls_client,
            admission,
            roots: crate::storage::Roots::new(&config.state_dir, &config.storage.roots),
            db,
            cluster,
            metrics: Default::default(),
            objects: Default::default(),
        });
        PluginManager {
            inner: Arc::new(Inner {
                host,
                dir: config.plugins_dir.clone(),
                private_dir: config.state_dir.join("loaded-plugins"),
                config: parking_lot::Mutex::new(config.clone()),
                slots: Mutex::new(BTreeMap::new()),
                watcher: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// Loads every plugin file present, then watches the directory.
    pub async fn start(&self) -> Result<(), String> {
        let dir = &self.inner.dir;
        std::fs::create_dir_all(&self.inner.private_dir)
            .map_err(|e| format!("state dir {}: {e}", self.inner.private_dir.display()))?;
        let _ = library::remove_stale_copies(&self.inner.private_dir);
        if !dir.is_dir() {
            return Err(format!("plugins_dir {} is not a directory", dir.display()));
        }
        let (watcher, mut rx) =
            PluginWatcher::start(dir).map_err(|e| format!("watching {}: {e}", dir.display()))?;
        *self.inner.watcher.lock() = Some(watcher);
        for f in watch::scan(dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
            self.load_file(&f).await;
        }
        let me = self.clone();
        let mut events = self.inner.host.engine.events();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(ev) => me.deliver_event(ev).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("plugins missed {n} stream events (too many at once)")
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    PluginFileEvent::Changed(p) => me.load_file(&p).await,
                    PluginFileEvent::Removed(p) => me.remove_file(&p).await,
                }
            }
        });
        Ok(())
    }

    /// Hands a stream event to every plugin's current generation that
    /// asked for them (a non-NULL `on_stream_event`), in order.
    async fn deliver_event(&self, ev: crate::engine::StreamEvent) {
        use crate::engine::StreamEventKind as K;
        let code = match ev.kind {
            K::Published => rill_abi::RILL_STREAM_PUBLISHED,
            K::Unpublished => rill_abi::RILL_STREAM_UNPUBLISHED,
            K::Waiting => rill_abi::RILL_STREAM_WAITING,
            K::Idle => rill_abi::RILL_STREAM_IDLE,
            K::Active => rill_abi::RILL_STREAM_ACTIVE,
            K::CodecWanted => rill_abi::RILL_STREAM_CODEC_WANTED,
        };
        let slots = self.inner.slots.lock().await;
        for inst in slots.values().filter_map(|s| s.current.as_ref()) {
            if inst.desc.on_stream_event.is_some() {
                inst.send_instance(super::instance::InstMsg::StreamEvent(code, ev.path.clone()));
            }
        }
    }

    /// Loads (or reloads) the plugin in `file`. Errors are logged and kept
    /// in the plugin's state; the running generation stays.
    pub async fn load_file(&self, file: &Path) {
        let mut slots = self.inner.slots.lock().await;
        // Same bytes as what runs: nothing to do (a touch, a duplicate event).
        if let Ok(hash) = watch::file_hash(file) {
            if slots
                .values()
                .any(|s| s.file == file && s.lib.as_ref().is_some_and(|l| l.hash == hash))
            {
                return;
            }
        }
        let known = slots
            .iter()
            .find(|(_, s)| s.file == file)
            .map(|(n, _)| n.clone());
        let generation = known
            .as_ref()
            .and_then(|n| slots.get(n))
            .map_or(0, |s| s.generation)
            + 1;
        let lib = match tokio::task::block_in_place(|| {
            library::load(file, &self.inner.private_dir, generation)
        }) {
            Ok(l) => l,
            Err(e) => {
                let key = known.unwrap_or_else(|| file_key(file));
                fail(&mut slots, key, file, format!("{e}"));
                return;
            }
        };
        let name = lib.name.clone();
        if let Some(other) = slots
            .get(&name)
            .filter(|s| s.file != file && s.current.is_some())
        {
            let msg = format!(
                "plugin {name} is already loaded from {}",
                other.file.display()
            );
            fail(&mut slots, file_key(file), file, msg);
            return;
        }
        // A file that failed before under its file name now has its name.
        if let Some(k) = known.filter(|k| *k != name) {
            slots.remove(&k);
        }
        let generation = slots.get(&name).map_or(0, |s| s.generation) + 1;
        let section = self.inner.config.lock().plugin_section_yaml(&name);
        let inst = Instance::new(
            lib.descriptor,
            name.clone(),
            generation,
            section,
            self.inner.host.clone(),
        );
        if let Err(e) = inst.create() {
            fail(
                &mut slots,
                name,
                file,
                format!("{} {}: {e}", lib.name, lib.version),
            );
            return;
        }
        let decls = std::mem::take(&mut *inst.listens.lock());
        self.inner
            .host
            .listeners
            .activate(&inst, decls, &self.inner.host.rt);
        let routes = inst.routes.lock().clone();
        self.inner.host.routes.activate(&inst, routes);
        let udp = std::mem::take(&mut *inst.udp_decls.lock());
        self.inner
            .host
            .udp
            .activate(&inst, udp, &self.inner.host.rt);
        let slot = slots.entry(name.clone()).or_insert_with(|| Slot::new(file));
        slot.file = file.to_path_buf();
        slot.generation = generation;
        slot.last_error = None;
        tracing::info!(plugin = %name, version = %lib.version, generation, hash = %lib.hash, "plugin loaded");
        slot.lib = Some(lib);
        if let Some(old) = slot.current.replace(inst) {
            self.retire(old, slot.draining.clone());
        }
    }

    /// Drains a generation in the background, then destroys it. Its open
    /// sessions (a live publisher may stay for days) run on until they end,
    /// unless the operator set `drain_timeout` or forces a drain.
    fn retire(&self, old: Arc<Instance>, draining: Arc<parking_lot::Mutex<Vec<Arc<Instance>>>>) {
        let timeout = self.inner.config.lock().drain_timeout;
        let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
        draining.lock().push(old.clone());
        let host = self.inner.host.clone();
        tokio::spawn(async move {
            tracing::info!(plugin = %old.name, generation = old.generation, sessions = old.sessions.len(), "draining old generation");
            old.drain();
            old.wait_idle(deadline).await;
            // Requests under its pins go to the new generation from now
            // on; those routed here before still run to their end.
            host.routes.unpin_all(&old);
            let left =
                |d: tokio::time::Instant| d.saturating_duration_since(tokio::time::Instant::now());
            for _ in 0..3 {
                old.wait_sessions(deadline.map(left)).await;
                if old.seal(false) {
                    break;
                }
            }
            old.seal(true);
            old.destroy().await;
            draining.lock().retain(|i| !Arc::ptr_eq(i, &old));
            tracing::info!(plugin = %old.name, generation = old.generation, "old generation destroyed");
        });
    }

    /// Closes now every session still open on the plugin's draining
    /// generations (the operator's choice, e.g. for a security fix).
    /// Returns how many sessions are being closed.
    pub async fn force_drain(&self, name: &str) -> Option<usize> {
        let slots = self.inner.slots.lock().await;
        let slot = slots.get(name)?;
        let draining = slot.draining.lock();
        let mut closing = 0;
        for inst in draining.iter() {
            closing += inst.sessions.len();
            inst.drain_now.cancel();
        }
        tracing::warn!(plugin = %name, sessions = closing, "forced drain of old generations");
        Some(closing)
    }

    /// The file is gone: drain and stop its plugin.
    pub async fn remove_file(&self, file: &Path) {
        let mut slots = self.inner.slots.lock().await;
        let Some(name) = slots
            .iter()
            .find(|(_, s)| s.file == file)
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let slot = slots.get_mut(&name).expect("found above");
        if let Some(old) = slot.current.take() {
            tracing::info!(plugin = %name, "plugin file removed: stopping");
            self.inner.host.listeners.remove_plugin(&name);
            self.inner.host.routes.remove_plugin(&name);
            self.inner.host.udp.remove_plugin(&name);
            self.inner.host.metrics.forget(&name);
            self.retire(old, slot.draining.clone());
        } else {
            slots.remove(&name);
        }
    }

    /// A GET or HEAD of `path` answered from the objects plugins published
    /// (`http_publish`), once it passed admission; None: the request goes
    /// to the plugin routes.
    pub async fn http_object(
        &self,
        path: &str,
        query: &str,
        authorization: Option<&str>,
        client: std::net::IpAddr,
    ) -> Option<super::ObjectReply> {
        super::objects::answer(&self.inner.host, path, query, authorization, Some(client)).await
    }

    /// Responses served from published objects, and objects (with
    /// expectations) held.
    pub fn http_object_stats(&self) -> (u64, u64) {
        let o = &self.inner.host.objects;
        (o.served(), o.held() as u64)
    }

    /// Auth and limits, shared with the HTTP server and the API.
    pub fn admission(&self) -> Arc<crate::admission::Admission> {
        self.inner.host.admission.clone()
    }

    /// Takes a new config: plugins whose section changed get a new
    /// generation with it, the same way a new file does. Returns their names.
    pub async fn update_config(&self, config: &Config) -> Vec<String> {
        let changed: Vec<String> = {
            let old = self.inner.config.lock().clone();
            let slots = self.inner.slots.lock().await;
            slots
                .iter()
                .filter(|(_, s)| s.current.is_some())
                .map(|(n, _)| n.clone())
                .filter(|n| old.plugin_section_yaml(n) != config.plugin_section_yaml(n))
                .collect()
        };
        *self.inner.config.lock() = config.clone();
        self.inner.host.admission.update(config);
        self.inner.host.http_deadline_ms.store(
            config.http.response_timeout.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        for name in &changed {
            if let Err(e) = self.reload(name).await {
                tracing::error!(plugin = %name, "reload with the new config failed: {e}");
            }
        }
        changed
    }

    /// Reloads a plugin from its file, even when its bytes are those already
    /// running (a new config section needs a new generation).
    pub async fn reload(&self, name: &str) -> Result<(), String> {
        let file = {
            let slots = self.inner.slots.lock().await;
            let s = slots.get(name).ok_or_else(|| format!("no plugin {name}"))?;
            s.file.clone()
        };
        {
            // Force: forget the hash so the same bytes load again.
            let mut slots = self.inner.slots.lock().await;
            if let Some(l) = slots.get_mut(name).and_then(|s| s.lib.as_mut()) {
                l.hash.clear();
            }
        }
        self.load_file(&file).await;
        let slots = self.inner.slots.lock().await;
        match slots.get(name).and_then(|s| s.last_error.clone()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A reload asked through the management API: refused when asked again
    /// within [`API_RELOAD_INTERVAL`], and a no-op when the file holds the
    /// bytes already running.
    pub async fn reload_requested(&self, name: &str) -> Result<ReloadOutcome, ReloadRefused> {
        let (file, running_hash) = {
            let mut slots = self.inner.slots.lock().await;
            let s = slots.get_mut(name).ok_or(ReloadRefused::NoPlugin)?;
            let now = tokio::time::Instant::now();
            if let Some(last) = s.last_api_reload {
                let next = last + API_RELOAD_INTERVAL;
                if now < next {
                    return Err(ReloadRefused::TooSoon(next - now));
                }
            }
            s.last_api_reload = Some(now);
            (s.file.clone(), s.lib.as_ref().map(|l| l.hash.clone()))
        };
        let hash = tokio::task::spawn_blocking({
            let file = file.clone();
            move || watch::file_hash(&file)
        })
        .await
        .map_err(|e| ReloadRefused::Failed(e.to_string()))?
        .map_err(|e| ReloadRefused::Failed(format!("cannot read {}: {e}", file.display())))?;
        if running_hash.as_deref() == Some(hash.as_str()) {
            return Ok(ReloadOutcome::Unchanged);
        }
        self.reload(name)
            .await
            .map(|()| ReloadOutcome::Reloaded)
            .map_err(ReloadRefused::Failed)
    }

    /// Whether `method` on `path` goes to a streaming route
    /// (`RILL_ROUTE_STREAM`).
    pub fn streams(&self, method: &str, path: &str) -> bool {
        self.inner
            .host
            .routes
            .find(method, path)
            .is_some_and(|r| r.stream)
    }

    /// Hands a streaming request, and its connection, to the plugin route
    /// that matches it: the session owns the socket. Gives the socket back
    /// when no streaming route matches (any more).
    pub fn route_http_owned(
        &self,
        mut req: session::HttpRequest,
        mut sock: tokio::net::TcpStream,
        mut peer: String,
        mut local: String,
        slot: &mut Option<crate::admission::ConnSlot>,
    ) -> Result<(), tokio::net::TcpStream> {
        // A pinned generation sealed between the lookup and the spawn has
        // dropped its pins first: the next lookup finds the current one.
        for _ in 0..3 {
            let Some(route) = self
                .inner
                .host
                .routes
                .find(&req.method, &req.path)
                .filter(|r| r.stream)
            else {
                return Err(sock);
            };
            let io = session::Io::OwnedHttp(session::OwnedHttp {
                sock,
                route_id: route.route_id,
                req,
            });
            match session::spawn(
                &route.inst,
                io,
                session::Origin::Session,
                peer,
                local,
                std::ptr::null_mut(),
            ) {
                Ok(id) => {
                    route.inst.hold_slot(id, slot.take());
                    return Ok(());
                }
                Err(back) => {
                    let session::Refused {
                        io,
                        peer: p,
                        local: l,
                    } = *back;
                    (peer, local) = (p, l);
                    match io {
                        session::Io::OwnedHttp(o) => (sock, req) = (o.sock, o.req),
                        _ => unreachable!("spawn gives back the io it was given"),
                    }
                }
            }
        }
        Err(sock)
    }

    /// The metrics plugins set for themselves.
    pub fn plugin_metrics(&self) -> Vec<(String, String, super::plugin_metrics::Family)> {
        self.inner.host.metrics.snapshot()
    }

    /// The instance UDP sockets' counters.
    pub fn udp_stats(&self) -> Vec<super::UdpStats> {
        self.inner.host.udp.stats()
    }

    /// Whether a plugin routes `OPTIONS` on `path` itself.
    pub fn answers_options(&self, path: &str) -> bool {
        self.inner.host.routes.has_explicit("OPTIONS", path)
    }

    /// Hands an HTTP request to the plugin route that matches it; None when
    /// no plugin route does.
    pub fn route_http(
        &self,
        mut req: session::HttpRequest,
        mut peer: String,
        mut local: String,
    ) -> Option<tokio::sync::oneshot::Receiver<session::HttpReply>> {
        let (mut reply, rx) = tokio::sync::oneshot::channel();
        // As in route_http_owned: a sealed pinned generation, once.
        for _ in 0..3 {
            let route = self.inner.host.routes.find(&req.method, &req.path)?;
            let x = session::HttpExchange {
                route_id: route.route_id,
                req,
                reply,
            };
            match session::spawn(
                &route.inst,
                session::Io::Http(x),
                session::Origin::Session,
                peer,
                local,
                std::ptr::null_mut(),
            ) {
                Ok(_) => return Some(rx),
                Err(back) => {
                    let session::Refused {
                        io,
                        peer: p,
                        local: l,
                    } = *back;
                    (peer, local) = (p, l);
                    match io {
                        session::Io::Http(x) => (req, reply) = (x.req, x.reply),
                        _ => unreachable!("spawn gives back the io it was given"),
                    }
                }
            }
        }
        None
    }

    /// Every plugin's state, by name.
    pub async fn plugins(&self) -> Vec<PluginInfo> {
        let slots = self.inner.slots.lock().await;
        slots
            .iter()
            .map(|(name, s)| {
                let lib = s.lib.as_ref();
                let draining: Vec<_> = s
                    .draining
                    .lock()
                    .iter()
                    .map(|i| DrainingGeneration {
                        generation: i.generation,
                        sessions: i.sessions.len(),
                    })
                    .collect();
                PluginInfo {
                    name: name.clone(),
                    version: lib.map(|l| l.version.clone()).unwrap_or_default(),
                    description: lib.map(|l| l.description.clone()).unwrap_or_default(),
                    abi: lib
                        .map(|l| format!("{}.{}", l.abi_major, l.abi_minor))
                        .unwrap_or_default(),
                    generation: s.generation,
                    file: s.file.display().to_string(),
                    file_hash: lib.map(|l| l.hash.clone()).unwrap_or_default(),
                    loaded_at: lib.map_or(0.0, |l| crate::engine::unix_secs(l.loaded_at)),
                    state: match (&s.current, lib) {
                        (Some(_), _) => "running",
                        (None, Some(_)) => "stopped",
                        (None, None) => "failed",
                    },
                    last_error: s.last_error.clone(),
                    reload_failures: s.reload_failures,
                    draining: draining.len(),
                    draining_generations: draining,
                    sessions: s.current.as_ref().map_or(0, |i| i.sessions.len()),
                    layout_checked: lib.is_some_and(|l| l.layout_checked),
                }
            })
            .collect()
    }

    /// Shutdown, first half: stop watching, close every listener and route,
    /// and tell every instance to drain. Open sessions go on.
    pub async fn stop_accepting(&self) {
        self.inner.watcher.lock().take();
        self.inner.host.listeners.close_all();
        self.inner.host.udp.close_all();
        let slots = self.inner.slots.lock().await;
        for (name, s) in slots.iter() {
            self.inner.host.routes.remove_plugin(name);
            if let Some(i) = &s.current {
                i.drain();
            }
        }
    }

    /// Shutdown, second half: wait up to `timeout` for open sessions (then
    /// close them), and destroy every instance.
    pub async fn finish(&self, timeout: Duration) {
        let current: Vec<_> = {
            let mut slots = self.inner.slots.lock().await;
            slots
                .values_mut()
                .filter_map(|s| s.current.take())
                .collect()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        for i in &current {
            i.wait_sessions(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ))
            .await;
        }
        for i in current {
            i.seal(true);
            i.destroy().await;
        }
    }
}

fn file_key(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fail(slots: &mut BTreeMap<String, Slot>, key: String, file: &Path, msg: String) {
    tracing::error!(file = %file.display(), "plugin not loaded: {msg}");
    let slot = slots.entry(key).or_insert_with(|| Slot::new(file));
    slot.last_error = Some(msg);
    slot.reload_failures += 1;
}
