//! Plugins: loading shared libraries, the host side of the C ABI (the
//! function table plugins call, sessions, listeners), generations and hot
//! reload.

mod admit;
mod api;
mod cluster_api;
mod elf;
mod frames;
mod host;
mod instance;
pub mod library;
mod manager;
mod objects;
pub mod plugin_metrics;
mod routes;
mod session;
mod storage_api;
mod udp;
pub mod watch;

pub use manager::{DrainingGeneration, PluginInfo, PluginManager, ReloadOutcome, ReloadRefused};
pub use objects::ObjectReply;
pub use session::{HttpReply as PluginReply, HttpRequest as PluginRequest};
pub use udp::UdpStats;

/// Plugin instances created, destroyed (the plugin's `destroy` called) and
/// freed so far, and how many are alive (created, not destroyed): once
/// reloads have drained, alive is one per loaded plugin.
pub fn instance_counts() -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &instance::INSTANCES;
    let (created, destroyed, freed) = (
        c.created.load(Relaxed),
        c.destroyed.load(Relaxed),
        c.freed.load(Relaxed),
    );
    serde_json::json!({
        "created": created,
        "destroyed": destroyed,
        "freed": freed,
        "alive": created.saturating_sub(destroyed),
    })
}

/// For `host/benches/abi.rs` only; not an API. A plugin instance created by
/// the real host and one of its sessions opened over a real TCP connection,
/// so that the bench can call the plugin's `on_frame` exactly as a session
/// task does (the descriptor's fn pointer under `Instance::call`, the frame
/// lent as its `Arc<Frame>` pointer).
#[doc(hidden)]
pub mod bench_support {
    use std::ffi::c_void;
    use std::net::{SocketAddr, TcpStream};
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rill_abi::{RillConn, RILL_ERR_DENIED, RILL_OK};

    use super::host::{HostShared, Listeners};
    use super::instance::Instance;
    use super::library::LoadedLibrary;
    use crate::engine::{Engine, FrameRef};

    /// The plugin's real `on_conn_open` while `open` waits for its session
    /// (0 otherwise), and the session pointer it produced.
    static REAL_OPEN: AtomicUsize = AtomicUsize::new(0);
    static CAPTURED: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
    static OPENING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    type OpenFn = unsafe extern "C" fn(*mut c_void, *mut RillConn, u32, *mut *mut c_void) -> i32;

    /// Stands in for the plugin's `on_conn_open`: calls the real one once
    /// and records the session pointer it returns; refuses later connections.
    unsafe extern "C" fn capture_open(
        inst: *mut c_void,
        conn: *mut RillConn,
        listener_id: u32,
        su: *mut *mut c_void,
    ) -> i32 {
        let real = REAL_OPEN.swap(0, Ordering::AcqRel);
        if real == 0 {
            return RILL_ERR_DENIED;
        }
        // SAFETY: `real` is the plugin's on_conn_open, stored by `open`.
        let real: OpenFn = unsafe { std::mem::transmute::<usize, OpenFn>(real) };
        // SAFETY: the host's own arguments, forwarded.
        let rc = unsafe { real(inst, conn, listener_id, su) };
        if rc >= RILL_OK {
            // SAFETY: su is valid for this call.
            CAPTURED.store(unsafe { *su }, Ordering::Release);
        }
        rc
    }

    /// One instance of a plugin and one open session of it.
    pub struct BenchSession {
        inst: Arc<Instance>,
        host: Arc<HostShared>,
        user: *mut c_void,
        /// The client end of the session's connection: the session lives as
        /// long as this is open.
        _client: TcpStream,
    }

    impl BenchSession {
        /// Creates `lib`'s instance with `config` as its config section
        /// (`create` with the real host table, on `engine` and `rt`), makes
        /// its listeners live, connects to `addr` (one of them) and waits for
        /// the plugin's `on_conn_open` to accept the session.
        ///
        /// While the bench calls [`BenchSession::on_frame`], nothing else
        /// must call into that session: send it nothing, and give it nothing
        /// that ends on its own (e.g. a long `subscribe.wait_timeout` in
        /// `engine`'s settings if the plugin subscribes on open).
        pub fn open(
            lib: &LoadedLibrary,
            config: &str,
            engine: Engine,
            rt: tokio::runtime::Handle,
            addr: SocketAddr,
        ) -> Result<BenchSession, String> {
            let _one_at_a_time = OPENING.lock();
            let real = lib
                .descriptor
                .on_conn_open
                .ok_or("the plugin has no on_conn_open")?;
            let mut desc = lib.descriptor;
            desc.on_conn_open = Some(capture_open);
            let host = Arc::new(HostShared {
                engine,
                rt: rt.clone(),
                listeners: Listeners::default(),
                routes: Default::default(),
                udp: Default::default(),
                epoch: Instant::now(),
                http_deadline_ms: 30_000.into(),
                tls: None,
                tls_client_ca: None,
                tls_client: Default::default(),
                admission: crate::admission::Admission::new(&Default::default(), || None),
                roots: crate::storage::Roots::new(&std::env::temp_dir(), &[]),
                db: crate::db::Db::none(),
                cluster: crate::cluster::Cluster::disabled(),
                metrics: Default::default(),
                objects: Default::default(),
            });
            let inst = Instance::new(desc, lib.name.clone(), 1, config.to_owned(), host.clone());
            inst.create()?;
            let decls = std::mem::take(&mut *inst.listens.lock());
            host.listeners.activate(&inst, decls, &rt);
            CAPTURED.store(std::ptr::null_mut(), Ordering::Release);
            REAL_OPEN.store(real as usize, Ordering::Release);
            let client = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let user = loop {
                let p = CAPTURED.swap(std::ptr::null_mut(), Ordering::AcqRel);
                if !p.is_null() {
                    break p;
                }
                if Instant::now() > deadline {
                    REAL_OPEN.store(0, Ordering::Release);
                    return Err(format!("no session of {} opened on {addr}", lib.name));
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            Ok(BenchSession {
                inst,
                host,
                user,
                _client: client,
            })
        }

        /// Delivers `frame` to the session's `on_frame`, as the session task
        /// does (the subscriber handle is NULL: no subscription exists).
        pub fn on_frame(&self, frame: &FrameRef) -> i32 {
            let user = self.user;
            self.inst.call(|d, i| {
                // SAFETY: the plugin's callback with its own instance and
                // session (open until `self` drops); the frame is lent for
                // the call.
                d.on_frame.map_or(RILL_OK, |f| unsafe {
                    f(i, user, std::ptr::null_mut(), super::frames::lend(frame))
                })
            })
        }

        /// Whether the session is still open (it must be, for `on_frame`).
        pub fn is_open(&self) -> bool {
            !self.inst.sessions.is_empty()
        }
    }

    impl Drop for BenchSession {
        fn drop(&mut self) {
            // The client socket closes after this: the session ends, then the
            // instance is left to the process's exit (never destroyed here).
            self.host.listeners.remove_plugin(&self.inst.name);
        }
    }
}
