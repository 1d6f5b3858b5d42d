//! One generation of one plugin: the instance its `create` made, the
//! sessions it serves, its timers and posts.
//!
//! The `RillHost *` a plugin gets is a pointer to its `Instance`, which the
//! manager keeps alive until `destroy` has returned.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use rill_abi::*;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use super::host::HostShared;
use super::session::{Ctl, SessionShared};

/// A listener or route the plugin declared in `create`; the manager makes
/// them live when the generation is activated.
#[derive(Debug, Clone)]
pub(crate) struct ListenDecl {
    pub addr: std::net::SocketAddr,
    pub listener_id: u32,
    /// `RILL_LISTEN_TLS`.
    pub tls: bool,
    /// Bound here when nobody had the address yet.
    pub socket: Option<Arc<std::net::TcpListener>>,
}

#[derive(Debug, Clone)]
pub(crate) struct RouteDecl {
    pub method: String,
    pub pattern: String,
    pub route_id: u32,
    /// `RILL_ROUTE_STREAM`.
    pub stream: bool,
}

pub(crate) enum InstMsg {
    Post(usize),
    Timer {
        handle: u64,
        timer_id: u64,
    },
    /// `on_stream_event(event, path)`.
    StreamEvent(u32, Arc<str>),
    /// A storage or index call for the instance completed (`on_io`).
    Io(crate::storage::IoDone),
}

pub(crate) struct Instance {
    pub name: String,
    pub generation: u64,
    pub desc: RillPluginDescriptor,
    pub config: String,
    pub host: Arc<HostShared>,
    instance: AtomicPtr<c_void>,
    pub(crate) creating: AtomicBool,
    /// How `create` went: 0 not yet, 1 created, 2 failed. Sessions started
    /// during `create` (connect, session_open) wait for it: no callback
    /// runs before the plugin has its instance, and none after a failure.
    created: std::sync::atomic::AtomicU8,
    created_notify: Notify,
    pub(crate) draining: AtomicBool,
    pub(crate) listens: Mutex<Vec<ListenDecl>>,
    /// The routes declared in `create` (kept: requests under a path this
    /// generation pinned are matched against them).
    pub(crate) routes: Mutex<Vec<RouteDecl>>,
    /// The URL spaces pinned (`http_pin`); None once they were dropped.
    pub(crate) pins: Mutex<Option<std::collections::HashSet<String>>>,
    /// Sealed (true) just before destroy: no session opens after that.
    /// Sessions register under the read lock, the seal takes the write
    /// lock, so a session is either seen by the seal or refused.
    gate: parking_lot::RwLock<bool>,
    /// UDP sockets declared in `create` (`udp_listen`), until activated.
    pub(crate) udp_decls: Mutex<Vec<super::udp::UdpDecl>>,
    /// The errors logged during `create` (by the host's calls and by the
    /// plugin): the reason shown when `create` fails.
    create_error: Mutex<Option<String>>,
    /// The instance's live UDP sockets by `socket_id` (`udp_send`).
    pub(crate) udp: Mutex<std::collections::HashMap<u32, Arc<super::udp::UdpEntry>>>,
    pub(crate) sessions: DashMap<u64, Arc<SessionShared>>,
    pub(crate) sessions_changed: Notify,
    /// Cancelled by the operator's forced drain: the sessions still open on
    /// a draining generation are closed now.
    pub(crate) drain_now: tokio_util::sync::CancellationToken,
    /// Every callback of a `RILL_PLUGIN_SERIALIZED` plugin takes this.
    serial: Option<Mutex<()>>,
    /// Instance-level callbacks never run concurrently with each other.
    inst_serial: Mutex<()>,
    inst_tx: Mutex<Option<mpsc::UnboundedSender<InstMsg>>>,
    inst_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Timer handle → (session id or 0, its task).
    pub(crate) timers: Mutex<HashMap<u64, (u64, AbortHandle, bool)>>,
    pub(crate) next_timer: AtomicU64,
    /// Open files (`file_open`) by handle; closed at destroy if the
    /// plugin did not.
    pub(crate) files: Mutex<HashMap<u64, Arc<crate::storage::FileQueue>>>,
}

// SAFETY: the raw pointers inside (the plugin's instance pointer, the
// descriptor's static strings and fn pointers) are only handed back to the
// plugin, whose ABI contract says which calls may run on which threads; the
// host never dereferences them.
unsafe impl Send for Instance {}
// SAFETY: as for Send; all mutable state is behind atomics and locks.
unsafe impl Sync for Instance {}

impl Instance {
    /// Gives session `id` its connection's place in the per-address
    /// count (it ended already: the place is freed at once).
    pub(crate) fn hold_slot(&self, id: u64, slot: Option<crate::admission::ConnSlot>) {
        if let (Some(slot), Some(s)) = (slot, self.sessions.get(&id)) {
            s.st.lock().conn_slot = Some(slot);
        }
    }

    pub(crate) fn new(
        desc: RillPluginDescriptor,
        name: String,
        generation: u64,
        config: String,
        host: Arc<HostShared>,
    ) -> Arc<Instance> {
        let serialized = desc.flags & RILL_PLUGIN_SERIALIZED != 0;
        Arc::new(Instance {
            name,
            generation,
            desc,
            config,
            host,
            instance: AtomicPtr::new(std::ptr::null_mut()),
            creating: AtomicBool::new(false),
            created: std::sync::atomic::AtomicU8::new(0),
            created_notify: Notify::new(),
            draining: AtomicBool::new(false),
            listens: Mutex::new(Vec::new()),
            routes: Mutex::new(Vec::new()),
            pins: Mutex::new(Some(Default::default())),
            gate: parking_lot::RwLock::new(false),
            udp_decls: Mutex::new(Vec::new()),
            create_error: Mutex::new(None),
            udp: Mutex::new(Default::default()),
            sessions: DashMap::new(),
            sessions_changed: Notify::new(),
            drain_now: Default::default(),
            serial: serialized.then(|| Mutex::new(())),
            inst_serial: Mutex::new(()),
            inst_tx: Mutex::new(None),
            inst_task: Mutex::new(None),
            timers: Mutex::new(HashMap::new()),
            next_timer: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn host_ptr(self: &Arc<Self>) -> *mut RillHost {
        Arc::as_ptr(self) as *mut RillHost
    }

    pub(crate) fn instance_ptr(&self) -> *mut c_void {
        self.instance.load(Ordering::Acquire)
    }

    /// Runs a plugin callback under the plugin's serialization rule.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&RillPluginDescriptor, *mut c_void) -> R) -> R {
        // Closed last: what the callback queued on UDP leaves when it has
        // returned and its lock is released.
        let _udp = super::udp::SendBatch::enter();
        let _g = self.serial.as_ref().map(|m| m.lock());
        let _cb = CallbackScope::enter();
        f(&self.desc, self.instance_ptr())
    }

    /// Runs an instance-level callback (never concurrent with another one).
    pub(crate) fn call_instance<R>(
        &self,
        f: impl FnOnce(&RillPluginDescriptor, *mut c_void) -> R,
    ) -> R {
        let _i = self.inst_serial.lock();
        self.call(f)
    }

    /// Calls the plugin's `create`. Listeners and routes it declares are
    /// recorded for `activate`.
    pub(crate) fn create(self: &Arc<Self>) -> Result<(), String> {
        let Some(create) = self.desc.create else {
            return Err("plugin has no create callback".into());
        };
        let (tx, rx) = mpsc::unbounded_channel();
        *self.inst_tx.lock() = Some(tx);
        *self.inst_task.lock() = Some(self.host.rt.spawn(instance_task(self.clone(), rx)));
        self.creating.store(true, Ordering::Release);
        let mut inst: *mut c_void = std::ptr::null_mut();
        let host = self.host_ptr();
        let api: *const RillHostApi = &super::api::HOST_API;
        let status = {
            let _i = self.inst_serial.lock();
            let _g = self.serial.as_ref().map(|m| m.lock());
            let _cb = CallbackScope::enter();
            // SAFETY: create is the plugin's required callback; api and host
            // stay valid until destroy returns (the manager holds this Arc).
            unsafe { create(api, host, &mut inst) }
        };
        self.creating.store(false, Ordering::Release);
        self.instance.store(inst, Ordering::Release);
        self.created
            .store(if status < 0 { 2 } else { 1 }, Ordering::Release);
        self.created_notify.notify_waiters();
        if status < 0 {
            self.stop_instance_task();
            // The plugin's own words say more than a status name.
            let said = self.create_error.lock().take();
            return Err(match said {
                Some(why) => format!("create failed: {}: {why}", rill_status_name(status)),
                None => format!("create failed: {}", rill_status_name(status)),
            });
        }
        INSTANCES.created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until `create` returned: true when it succeeded.
    pub(crate) async fn wait_created(&self) -> bool {
        // Every session of a running instance asks: answer without a
        // waiter then.
        if self.created.load(Ordering::Acquire) == 1 {
            return true;
        }
        loop {
            // Registered before the check, so a notification between the
            // two is not missed.
            let notified = self.created_notify.notified();
            match self.created.load(Ordering::Acquire) {
                1 => return true,
                2 => return false,
                _ => notified.await,
            }
        }
    }

    pub(crate) fn drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        self.call_instance(|d, inst| {
            if let Some(f) = d.drain {
                // SAFETY: the plugin's callback with its own instance.
                unsafe { f(inst) }
            }
        });
    }

    /// Waits until every session ended, or `deadline` (None: never)
    /// passed, or [`Instance::drain_now`] was called; then closes the rest
    /// and waits for them (bounded) to finish.
    pub(crate) async fn wait_sessions(&self, deadline: Option<Duration>) {
        self.wait_idle(deadline.map(|d| tokio::time::Instant::now() + d))
            .await;
        self.close_sessions().await;
    }

    /// Waits until no session is open, `deadline` passed, or a forced
    /// drain.
    pub(crate) async fn wait_idle(&self, deadline: Option<tokio::time::Instant>) {
        loop {
            let changed = self.sessions_changed.notified();
            if self.sessions.is_empty() {
                return;
            }
            let forced = self.drain_now.cancelled();
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = forced => return,
                _ = expired => return,
            }
        }
    }

    /// Closes every open session and waits (bounded) for them to finish.
    async fn close_sessions(&self) {
        for s in self.sessions.iter() {
            s.send(Ctl::Close {
                reason: RILL_END_SHUTDOWN,
                why: "plugin generation drained".into(),
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let changed = self.sessions_changed.notified();
                if self.sessions.is_empty() {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }

    /// Refuses new sessions from now on if none is open (true), or
    /// regardless with `force`.
    pub(crate) fn seal(&self, force: bool) -> bool {
        let mut sealed = self.gate.write();
        if force || self.sessions.is_empty() {
            *sealed = true;
        }
        *sealed
    }

    /// Registers session `s` unless the instance is sealed.
    pub(crate) fn register(&self, s: &Arc<SessionShared>) -> bool {
        let sealed = self.gate.read();
        if *sealed {
            return false;
        }
        self.sessions.insert(s.id, s.clone());
        true
    }

    /// The last call: no sessions, no timers, posts delivered, then destroy.
    pub(crate) async fn destroy(&self) {
        // Its HTTP objects: requests for them go to the routes from now on.
        self.host
            .objects
            .drop_owner(self as *const Instance as usize);
        let timers: Vec<_> = self.timers.lock().drain().collect();
        for (_, (_, abort, _)) in timers {
            abort.abort();
        }
        self.stop_instance_task();
        let task = self.inst_task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.call_instance(|d, inst| {
            if let Some(f) = d.destroy {
                // SAFETY: the plugin's required callback, called once, last.
                unsafe { f(inst) }
            }
        });
        // Files the plugin left open: what was queued is written.
        let files: Vec<_> = self.files.lock().drain().collect();
        for (_, f) in files {
            f.submit(crate::storage::Op::Close { token: 0 });
        }
        INSTANCES.destroyed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(plugin = %self.name, generation = self.generation, "plugin instance destroyed");
    }

    fn stop_instance_task(&self) {
        self.inst_tx.lock().take();
    }

    pub(crate) fn post_instance(&self, arg: usize) -> bool {
        match &*self.inst_tx.lock() {
            Some(tx) => tx.send(InstMsg::Post(arg)).is_ok(),
            None => false,
        }
    }

    pub(crate) fn send_instance(&self, m: InstMsg) {
        if let Some(tx) = &*self.inst_tx.lock() {
            let _ = tx.send(m);
        }
    }

    pub(crate) fn log(&self, level: u32, msg: &str) {
        let (name, gen) = (&self.name, self.generation);
        // Plugin messages quote what clients sent (stream names, URLs): a
        // newline in them must not forge a log line.
        let msg = escape_controls(msg);
        if level == RILL_LOG_ERROR && self.creating.load(Ordering::Acquire) {
            // The host's own errors (a refused bind) come first, then the
            // plugin's; a few are enough.
            let mut e = self.create_error.lock();
            match e.as_mut() {
                None => *e = Some(msg.to_string()),
                Some(all) if all.len() < 512 => {
                    all.push_str("; ");
                    all.push_str(&msg);
                }
                Some(_) => {}
            }
        }
        match level {
            RILL_LOG_ERROR => tracing::error!(plugin = %name, generation = gen, "{msg}"),
            RILL_LOG_WARN => tracing::warn!(plugin = %name, generation = gen, "{msg}"),
            RILL_LOG_INFO => tracing::info!(plugin = %name, generation = gen, "{msg}"),
            RILL_LOG_DEBUG => tracing::debug!(plugin = %name, generation = gen, "{msg}"),
            _ => tracing::trace!(plugin = %name, generation = gen, "{msg}"),
        }
    }
}

/// Instance-level posts and timers, one at a time.
async fn instance_task(inst: Arc<Instance>, mut rx: mpsc::UnboundedReceiver<InstMsg>) {
    while let Some(m) = rx.recv().await {
        match m {
            InstMsg::Post(arg) => {
                inst.call_instance(|d, i| {
                    if let Some(f) = d.on_post {
                        // SAFETY: plugin callback; arg is the plugin's own.
                        unsafe {
                            f(
                                i,
                                std::ptr::null_mut(),
                                std::ptr::null_mut(),
                                arg as *mut c_void,
                            )
                        };
                    }
                });
            }
            InstMsg::StreamEvent(event, path) => {
                let status = inst.call_instance(|d, i| {
                    d.on_stream_event.map_or(RILL_OK, |f| {
                        // SAFETY: plugin callback; the path is lent for the
                        // call.
                        unsafe { f(i, event, RillStr::from_str(&path)) }
                    })
                });
                if status < 0 {
                    inst.log(
                        RILL_LOG_WARN,
                        &format!(
                            "on_stream_event({event}, {path}) returned {}",
                            rill_status_name(status)
                        ),
                    );
                }
            }
            InstMsg::Io(done) => {
                let status = inst.call_instance(|d, i| {
                    d.on_io.map_or(RILL_OK, |f| {
                        // SAFETY: plugin callback; the data is lent for the
                        // call.
                        unsafe {
                            f(
                                i,
                                std::ptr::null_mut(),
                                std::ptr::null_mut(),
                                done.token,
                                done.status,
                                done.value,
                                RillBytes::from_slice(&done.data),
                            )
                        }
                    })
                });
                if status < 0 {
                    inst.log(
                        RILL_LOG_WARN,
                        &format!("on_io returned {}", rill_status_name(status)),
                    );
                }
            }
            InstMsg::Timer { handle, timer_id } => {
                if !super::session::timer_fires(&inst, handle) {
                    continue;
                }
                inst.call_instance(|d, i| {
                    if let Some(f) = d.on_timer {
                        // SAFETY: plugin callback for its own timer.
                        unsafe { f(i, std::ptr::null_mut(), std::ptr::null_mut(), timer_id) };
                    }
                });
            }
        }
    }
}

/// `text` with every control character written as `\u{..}` (a log line
/// stays one line).
pub(crate) fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.into()
}

thread_local! {
    /// Plugin callbacks running on this thread (nested: a host call made
    /// inside one never runs another, but `create` runs inside the
    /// manager's own code).
    static CALLBACK_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread is inside a plugin callback the host called.
pub(crate) fn in_callback() -> bool {
    CALLBACK_DEPTH.with(|d| d.get() > 0)
}

/// Marks this thread as running a plugin callback while it lives.
struct CallbackScope;

impl CallbackScope {
    fn enter() -> CallbackScope {
        CALLBACK_DEPTH.with(|d| d.set(d.get() + 1));
        CallbackScope
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        CALLBACK_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Plugin instances over the process's life: a generation that was
/// destroyed but never freed (a reference kept somewhere), or one with no
/// sessions that was never destroyed, shows as a difference here.
pub struct InstanceCounts {
    pub created: AtomicU64,
    pub destroyed: AtomicU64,
    pub freed: AtomicU64,
}

pub static INSTANCES: InstanceCounts = InstanceCounts {
    created: AtomicU64::new(0),
    destroyed: AtomicU64::new(0),
    freed: AtomicU64::new(0),
};

impl Drop for Instance {
    fn drop(&mut self) {
        // Counted as created only when create succeeded.
        if *self.created.get_mut() == 1 {
            INSTANCES.freed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::escape_controls("live/a"), "live/a");
        assert_eq!(
            super::escape_controls("a\nINFO forged\r\x1b[31m"),
            "a\\u{a}INFO forged\\u{d}\\u{1b}[31m"
        );
    }
}
