//! Connections per client address: how many are open, how many came in
//! the current second. Checked at accept, on every TCP listener the host
//! owns (plugin listeners and HTTP), so a flood from one address is turned
//! away before any protocol work.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

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

/// An accepted connection's place in the count; dropping it frees it.
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.limiter.release(self.ip);
    }
}

impl ConnLimiter {
    pub fn set(&self, max_open: usize, max_rate: usize) {
        self.max_open.store(max_open, Ordering::Relaxed);
        self.max_rate.store(max_rate, Ordering::Relaxed);
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    /// No limits set: no bookkeeping at all.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Option<ConnSlot>, Over> {
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
        Ok(Some(ConnSlot {
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
