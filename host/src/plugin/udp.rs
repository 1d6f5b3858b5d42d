//! UDP owned by the host, in two shapes:
//!
//! - **Instance sockets** (`udp_listen`, ABI 1.1): one socket per address
//!   for a whole plugin, every peer on it (WebRTC, SRT). Like a TCP
//!   listener it belongs to the plugin, not to a generation: a reload
//!   re-targets it, so the socket and its port stay, and from the swap on
//!   every datagram goes to the new generation first; one it declines
//!   (`RILL_ERR_NOT_FOUND`: not its peer) goes to the earlier generations
//!   still draining, whose connections it belongs to. Reads are batched
//!   (`recvmmsg`) on the socket's own task, which calls `on_udp_packet`;
//!   sends are queued (bounded) and written in batches (`sendmmsg`): what
//!   a plugin callback queues leaves when the callback returns, from its
//!   own thread, in one batch (see [`SendBatch`]); runs of datagrams to
//!   one peer leave as UDP GSO sends where the kernel has them.
//! - **Session sockets** (`udp_bind`, ABI 1.0): a socket owned by one
//!   session (RTSP's client ports); its datagrams reach the session's task
//!   in order, through a bounded queue, as `on_udp_data`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::{RillSockAddr, RILL_ERR_AGAIN, RILL_ERR_NOT_FOUND, RILL_OK};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::instance::Instance;
use crate::net::mmsg::{self, RecvBuffers};

/// Datagrams waiting to be sent on one instance socket; more are refused
/// with `RILL_ERR_AGAIN` (dropped, as a full network queue would).
pub const SEND_QUEUE: usize = 8192;
/// Datagrams waiting for one session's task; more are dropped.
pub const SESSION_QUEUE: usize = 1024;
/// Largest datagram a plugin may send (IPv4's UDP payload limit).
pub const MAX_SEND: usize = 65507;

/// Where an instance socket's datagrams go: the plugin's current
/// generation.
pub(crate) struct UdpTarget {
    pub inst: Arc<Instance>,
    pub socket_id: u32,
}

/// An instance socket.
pub(crate) struct UdpEntry {
    pub owner: String,
    pub addr: SocketAddr,
    socket: Arc<UdpSocket>,
    target: ArcSwapOption<UdpTarget>,
    /// Earlier generations, newest first, for the datagrams the current
    /// one declines; an entry goes when its instance is gone.
    older: Mutex<Vec<(Weak<Instance>, u32)>>,
    queue: Mutex<VecDeque<(SocketAddr, Bytes)>>,
    /// Runs to one peer leave as UDP GSO sends; off where the kernel lacks
    /// it or the device refused one.
    gso: AtomicBool,
    wake_sender: Notify,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Counters: datagrams in, out, dropped as oversize, refused (queue full).
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub oversize: AtomicU64,
    pub refused: AtomicU64,
}

thread_local! {
    /// The [`SendBatch`]es open on this thread, and the sockets datagrams
    /// were queued on meanwhile.
    static BATCH: RefCell<(u32, Vec<Arc<UdpEntry>>)> = const { RefCell::new((0, Vec::new())) };
}

/// While one is open on a thread (a plugin callback, a batch of received
/// datagrams), what that thread queues on instance sockets waits; when
/// the outermost one closes, each socket's queue leaves in `sendmmsg`
/// batches from this thread. A frame's packets to a player thus go in one
/// system call, without waking the sender task (which takes over only
/// what the socket does not accept now).
pub(crate) struct SendBatch(());

impl SendBatch {
    pub(crate) fn enter() -> SendBatch {
        BATCH.with(|b| b.borrow_mut().0 += 1);
        SendBatch(())
    }
}

impl Drop for SendBatch {
    fn drop(&mut self) {
        BATCH.with(|b| {
            let mut b = b.borrow_mut();
            b.0 -= 1;
            if b.0 == 0 {
                // Flushing calls no plugin: nothing opens a batch meanwhile.
                for e in b.1.drain(..) {
                    e.flush();
                }
            }
        });
    }
}

impl UdpEntry {
    /// Queues a datagram for sending (`udp_send`). Whoever queues on an
    /// empty queue sees that it leaves: its thread's open [`SendBatch`],
    /// else the sender task; until the queue is empty again, the one
    /// responsible sends what others add.
    pub(crate) fn send(self: &Arc<Self>, to: SocketAddr, data: &[u8]) -> i32 {
        let was_empty = {
            let mut q = self.queue.lock();
            if q.len() >= SEND_QUEUE {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return RILL_ERR_AGAIN;
            }
            let was_empty = q.is_empty();
            q.push_back((to, Bytes::copy_from_slice(data)));
            was_empty
        };
        if was_empty {
            let batched = BATCH.with(|b| {
                let mut b = b.borrow_mut();
                if b.0 == 0 {
                    return false;
                }
                if !b.1.iter().any(|e| Arc::ptr_eq(e, self)) {
                    b.1.push(self.clone());
                }
                true
            });
            if !batched {
                self.wake_sender.notify_one();
            }
        }
        RILL_OK
    }

    /// Sends what is queued without waiting; what the socket does not take
    /// now is left for the sender task.
    fn flush(&self) {
        let res = self.socket.try_io(Interest::WRITABLE, || {
            while self.send_some()? {}
            Ok(())
        });
        if res.is_err() {
            self.wake_sender.notify_one();
        }
    }

    /// One `sendmmsg` from the front of the queue. `Ok(true)` while more
    /// is queued.
    fn send_some(&self) -> std::io::Result<bool> {
        // The queue stays locked across the (non-blocking) sendmmsg: the
        // recv task's flush and the sender task never send the same
        // datagrams twice, and the front is only removed once sent.
        let mut q = self.queue.lock();
        if q.is_empty() {
            return Ok(false);
        }
        let (front, _) = q.as_slices();
        let front = if front.is_empty() {
            q.make_contiguous();
            q.as_slices().0
        } else {
            front
        };
        let gso = self.gso.load(Ordering::Relaxed);
        let n = match mmsg::send(&self.socket.as_raw_fd(), front, gso) {
            Ok(n) => n,
            Err(e) if e.error.kind() == std::io::ErrorKind::WouldBlock => return Err(e.error),
            // A device without checksum offload refuses GSO (EIO): off for
            // this socket, and the same datagrams go again one by one.
            Err(e)
                if e.first > 1
                    && matches!(e.error.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
            {
                tracing::info!(addr = %self.addr, "udp: GSO off: {}", e.error);
                self.gso.store(false, Ordering::Relaxed);
                return Ok(true);
            }
            // Datagrams the kernel refuses (unreachable, too big): dropped,
            // and on with the rest.
            Err(e) => {
                tracing::debug!(addr = %self.addr, "udp send: {}", e.error);
                e.first
            }
        };
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        let n = n.min(q.len());
        q.drain(..n);
        Ok(!q.is_empty())
    }

    fn close(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

/// An instance socket's counters.
#[derive(Debug, Clone)]
pub struct UdpStats {
    pub plugin: String,
    pub addr: String,
    /// Datagrams handed to the plugin.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams dropped: longer than a slot, or refused by a full send
    /// queue.
    pub oversize: u64,
    pub refused: u64,
}

/// A socket bound while a generation is created, made live when it is.
pub(crate) struct UdpDecl {
    pub addr: SocketAddr,
    pub socket_id: u32,
    /// Bound here when nobody had the address yet.
    pub socket: Option<std::net::UdpSocket>,
}

/// Instance sockets by address.
#[derive(Default)]
pub(crate) struct UdpSockets {
    map: Mutex<HashMap<SocketAddr, Arc<UdpEntry>>>,
}

impl UdpSockets {
    /// The plugin that has `addr`, if any.
    pub(crate) fn owner_of(&self, addr: &SocketAddr) -> Option<String> {
        self.map.lock().get(addr).map(|e| e.owner.clone())
    }

    /// Makes `inst`'s declared sockets live: new ones start reading,
    /// inherited ones switch to `inst`, and the plugin's sockets it no
    /// longer declares close. Records each socket in `inst.udp` for
    /// `udp_send`.
    pub(crate) fn activate(
        &self,
        inst: &Arc<Instance>,
        decls: Vec<UdpDecl>,
        rt: &tokio::runtime::Handle,
    ) {
        let mut map = self.map.lock();
        let mut mine = HashMap::new();
        let addrs: Vec<SocketAddr> = decls.iter().map(|d| d.addr).collect();
        for d in decls {
            let target = Arc::new(UdpTarget {
                inst: inst.clone(),
                socket_id: d.socket_id,
            });
            if let Some(e) = map.get(&d.addr) {
                if let Some(old) = e.target.swap(Some(target)) {
                    let mut older = e.older.lock();
                    older.retain(|(w, _)| w.strong_count() > 0);
                    if !Arc::ptr_eq(&old.inst, inst) {
                        older.insert(0, (Arc::downgrade(&old.inst), old.socket_id));
                    }
                }
                mine.insert(d.socket_id, e.clone());
                continue;
            }
            let Some(std_sock) = d.socket else { continue };
            let _g = rt.enter();
            let socket = match UdpSocket::from_std(std_sock) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::error!(plugin = %inst.name, addr = %d.addr, "udp: {e}");
                    continue;
                }
            };
            let entry = Arc::new(UdpEntry {
                owner: inst.name.clone(),
                addr: d.addr,
                socket: socket.clone(),
                target: ArcSwapOption::from(Some(target)),
                older: Mutex::new(Vec::new()),
                queue: Mutex::new(VecDeque::new()),
                gso: AtomicBool::new(mmsg::gso_supported(&*socket)),
                wake_sender: Notify::new(),
                tasks: Mutex::new(Vec::new()),
                received: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                oversize: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            });
            let weak = Arc::downgrade(&entry);
            let recv = rt
                .spawn(recv_loop(socket.clone(), weak.clone()))
                .abort_handle();
            let send = rt.spawn(send_loop(weak)).abort_handle();
            entry.tasks.lock().extend([recv, send]);
            tracing::info!(plugin = %inst.name, addr = %d.addr, "udp listening");
            mine.insert(d.socket_id, entry.clone());
            map.insert(d.addr, entry);
        }
        map.retain(|addr, e| {
            let keep = e.owner != inst.name || addrs.contains(addr);
            if !keep {
                tracing::info!(plugin = %e.owner, addr = %addr, "udp socket closed");
                e.close();
            }
            keep
        });
        *inst.udp.lock() = mine;
    }

    /// Each socket's counters, for `/metrics`.
    pub(crate) fn stats(&self) -> Vec<UdpStats> {
        let mut v: Vec<UdpStats> = self
            .map
            .lock()
            .values()
            .map(|e| UdpStats {
                plugin: e.owner.clone(),
                addr: e.addr.to_string(),
                received: e.received.load(Ordering::Relaxed),
                sent: e.sent.load(Ordering::Relaxed),
                oversize: e.oversize.load(Ordering::Relaxed),
                refused: e.refused.load(Ordering::Relaxed),
            })
            .collect();
        v.sort_by(|a, b| (&a.plugin, &a.addr).cmp(&(&b.plugin, &b.addr)));
        v
    }

    /// Closes every socket of plugin `name`.
    pub(crate) fn remove_plugin(&self, name: &str) {
        self.map.lock().retain(|_, e| {
            if e.owner == name {
                e.close();
                false
            } else {
                true
            }
        });
    }

    pub(crate) fn close_all(&self) {
        for (_, e) in self.map.lock().drain() {
            e.close();
        }
    }
}

/// Binds a UDP socket for `udp_listen` / `udp_bind`: non-blocking, with
/// large kernel buffers (media arrives in bursts).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )?;
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Reads batches and hands each datagram to the current generation.
async fn recv_loop(socket: Arc<UdpSocket>, entry: Weak<UdpEntry>) {
    let mut bufs = RecvBuffers::default();
    let mut errors = 0u64;
    loop {
        let res = socket
            .async_io(Interest::READABLE, || bufs.recv(&socket.as_raw_fd()))
            .await;
        let Some(e) = entry.upgrade() else { return };
        match res {
            Ok(_) => {}
            Err(err) => {
                // ICMP errors surface here (ECONNREFUSED after a send to a
                // closed port): not the socket's end.
                errors += 1;
                if errors.is_power_of_two() {
                    tracing::debug!(addr = %e.addr, errors, "udp recv: {err}");
                }
                continue;
            }
        }
        let target = e.target.load_full();
        // Answers queued by the callbacks leave together after the batch.
        let _batch = SendBatch::enter();
        for i in 0..bufs.got.len() {
            let r = bufs.got[i];
            if r.truncated {
                e.oversize.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            e.received.fetch_add(1, Ordering::Relaxed);
            let Some(t) = &target else { continue };
            let from = RillSockAddr::from(r.from);
            let data = bufs.datagram(i);
            let deliver = |inst: &Instance, socket_id: u32| {
                inst.call(|d, raw| {
                    d.on_udp_packet.map_or(RILL_OK, |f| {
                        // SAFETY: plugin callback; `from` and the bytes are
                        // lent for the call.
                        unsafe { f(raw, socket_id, &from, data.as_ptr(), data.len()) }
                    })
                })
            };
            let mut status = deliver(&t.inst, t.socket_id);
            if status == RILL_ERR_NOT_FOUND {
                // Not the current generation's peer: maybe an earlier one's.
                let older: Vec<_> = e.older.lock().clone();
                for (w, socket_id) in older {
                    let Some(inst) = w.upgrade() else { continue };
                    status = deliver(&inst, socket_id);
                    if status != RILL_ERR_NOT_FOUND {
                        break;
                    }
                }
            }
            if status < 0 && status != RILL_ERR_NOT_FOUND {
                errors += 1;
                if errors.is_power_of_two() {
                    t.inst.log(
                        rill_abi::RILL_LOG_WARN,
                        &format!(
                            "on_udp_packet returned {} ({errors} errors so far)",
                            rill_abi::rill_status_name(status)
                        ),
                    );
                }
            }
        }
    }
}

/// Writes queued datagrams whenever some are queued and the socket takes
/// them.
async fn send_loop(entry: Weak<UdpEntry>) {
    loop {
        let Some(e) = entry.upgrade() else { return };
        e.wake_sender.notified().await;
        loop {
            match e
                .socket
                .async_io(Interest::WRITABLE, || e.send_some())
                .await
            {
                Ok(true) => continue,
                Ok(false) => break,
                Err(err) => {
                    // Nobody else sends a non-empty queue: drop it.
                    tracing::debug!(addr = %e.addr, "udp send: {err}");
                    e.queue.lock().clear();
                    break;
                }
            }
        }
    }
}

/// A socket of one session (`udp_bind`). Boxed in the session's state;
/// the plugin's `RillUdp *` points at it.
pub(crate) struct SessionUdp {
    /// The session that owns this socket (it outlives its sockets).
    pub owner: *const super::session::SessionShared,
    pub socket: Arc<UdpSocket>,
    pub socket_id: u32,
    /// `ip:port`, as `udp_local_addr` lends it.
    pub local: String,
    pub task: AbortHandle,
    /// Datagrams queued for the session's task.
    pub queued: Arc<AtomicUsize>,
}

impl Drop for SessionUdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One datagram for a session's task.
pub(crate) struct SessionDatagram {
    pub udp: *const SessionUdp,
    pub from: SocketAddr,
    pub data: Bytes,
}

// SAFETY: `udp` is only compared with and dereferenced through the
// session's own list of live sockets, on the session's task.
unsafe impl Send for SessionDatagram {}

/// Reads a session socket and queues each datagram for the session (at
/// most [`SESSION_QUEUE`] waiting; more are dropped).
pub(crate) async fn session_recv_loop(
    socket: Arc<UdpSocket>,
    udp: usize,
    queued: Arc<AtomicUsize>,
    deliver: impl Fn(SessionDatagram) -> bool,
) {
    let mut bufs = RecvBuffers::default();
    loop {
        let res = socket
            .async_io(Interest::READABLE, || bufs.recv(&socket.as_raw_fd()))
            .await;
        if res.is_err() {
            continue;
        }
        for i in 0..bufs.got.len() {
            let r = bufs.got[i];
            if r.truncated || queued.load(Ordering::Relaxed) >= SESSION_QUEUE {
                continue;
            }
            queued.fetch_add(1, Ordering::Relaxed);
            let d = SessionDatagram {
                udp: udp as *const SessionUdp,
                from: r.from,
                data: Bytes::copy_from_slice(bufs.datagram(i)),
            };
            if !deliver(d) {
                return;
            }
        }
    }
}
