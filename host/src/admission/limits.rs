//! Connections per client address (how many are open, how many came in
//! the current second) and per listener (how many are open). Checked at
//! accept, on every TCP listener the host owns (plugin listeners and HTTP),
//! so a flood from one address is turned away before any protocol work, and
//! a flood from many makes a listener stop accepting (new clients wait in
//! the kernel's backlog) before it can exhaust the process's descriptors.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::Notify;

#[derive(Default)]
struct PerIp {
    open: usize,
    /// Start of the current one-second window, and arrivals in it.
    window: Option<Instant>,
    arrivals: usize,
}

/// Open connections and recent arrivals by address.
#[derive(Default)]
pub struct ConnLimiter {
    map: DashMap<IpAddr, PerIp>,
    max_open: AtomicUsize,
    max_rate: AtomicUsize,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Open,
    Rate,
}

/// An accepted connection's place in the counts; dropping it frees it.
pub struct ConnSlot {
    _ip: Option<IpSlot>,
    _listener: Option<GateSlot>,
}

impl ConnSlot {
    /// `None` when neither count is kept.
    pub fn new(ip: Option<IpSlot>, listener: Option<GateSlot>) -> Option<ConnSlot> {
        (ip.is_some() || listener.is_some()).then_some(ConnSlot {
            _ip: ip,
            _listener: listener,
        })
    }
}

/// A connection's place in its address's count.
pub struct IpSlot {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.limiter.release(self.ip);
    }
}

/// One listener's open connections, against `limits.max_connections_per_listener`.
#[derive(Default)]
pub struct ListenerGate {
    open: AtomicUsize,
    freed: Notify,
}

/// A connection's place in its listener's count.
pub struct GateSlot(Arc<ListenerGate>);

impl Drop for GateSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

impl ListenerGate {
    /// Waits until fewer than `max()` connections are open (0: no cap).
    /// The cap is read again when a connection ends and every second, so a
    /// reload that raises it takes effect. Cancel-safe.
    pub async fn room(&self, max: impl Fn() -> usize) {
        loop {
            let freed = self.freed.notified();
            let m = max();
            if m == 0 || self.open.load(Ordering::Acquire) < m {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), freed).await;
        }
    }

    /// Counts an accepted connection.
    pub fn enter(self: &Arc<Self>) -> GateSlot {
        self.open.fetch_add(1, Ordering::AcqRel);
        GateSlot(self.clone())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl ConnLimiter {
    pub fn set(&self, max_open: usize, max_rate: usize) {
        self.max_open.store(max_open, Ordering::Relaxed);
        self.max_rate.store(max_rate, Ordering::Relaxed);
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    /// No limits set: no bookkeeping at all.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Option<IpSlot>, Over> {
        let (max_open, max_rate) = (
            self.max_open.load(Ordering::Relaxed),
            self.max_rate.load(Ordering::Relaxed),
        );
        if max_open == 0 && max_rate == 0 {
            return Ok(None);
        }
        let ip = canonical(ip);
        let mut e = self.map.entry(ip).or_default();
        if max_rate > 0 {
            match e.window {
                Some(w) if now.duration_since(w).as_secs() < 1 => {}
                _ => {
                    e.window = Some(now);
                    e.arrivals = 0;
                }
            }
            if e.arrivals >= max_rate {
                return Err(Over::Rate);
            }
            e.arrivals += 1;
        }
        if max_open > 0 && e.open >= max_open {
            return Err(Over::Open);
        }
        e.open += 1;
        drop(e);
        Ok(Some(IpSlot {
            limiter: self.clone(),
            ip,
        }))
    }

    fn release(&self, ip: IpAddr) {
        self.map.remove_if_mut(&ip, |_, e| {
            e.open = e.open.saturating_sub(1);
            // Keep the entry while its rate window may still matter.
            e.open == 0 && e.window.is_none_or(|w| w.elapsed().as_secs() >= 1)
        });
    }

    /// Forgets addresses with nothing open and an old window (called now
    /// and then, so a scan of many addresses leaves no garbage).
    pub fn sweep(&self) {
        self.map
            .retain(|_, e| e.open > 0 || e.window.is_some_and(|w| w.elapsed().as_secs() < 1));
    }

    pub fn tracked(&self) -> usize {
        self.map.len()
    }
}

/// IPv4 clients on dual-stack sockets count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn open_and_rate() {
        let l = Arc::new(ConnLimiter::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(l.admit(ip, now).unwrap().is_none(), "no limits, no slot");
        l.set(2, 0);
        let a = l.admit(ip, now).unwrap();
        let b = l.admit(ip, now).unwrap();
        assert_eq!(l.admit(ip, now).err(), Some(Over::Open));
        assert!(l.admit("10.0.0.2".parse().unwrap(), now).is_ok());
        drop(a);
        let c = l.admit(ip, now).unwrap();
        drop((b, c));
        l.set(0, 3);
        for _ in 0..3 {
            drop(l.admit(ip, now).unwrap());
        }
        assert_eq!(l.admit(ip, now).err(), Some(Over::Rate));
        assert!(l.admit(ip, now + Duration::from_millis(1001)).is_ok());
        l.set(0, 0);
        l.sweep();
    }
}
