//! RTP and RTCP over UDP on one port pair for the whole plugin (the model
//! of MediaMTX's 8000/8001): every client's datagrams arrive at the
//! instance's two sockets and are told apart by their source address,
//! which the client's SETUP registered (`client_port` on the RTSP
//! connection's peer address). Players cost no socket of their own, and
//! what the server sends leaves in the host's batches.
//!
//! Datagrams arrive on the socket's task; a session's go into its inbox
//! and the session is woken by one post however many are waiting.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_abi::sdk::{ConnId, Host};

/// Instance socket ids.
pub const RTP: u32 = 1;
pub const RTCP: u32 = 2;
/// Datagrams waiting in one session's inbox; more are dropped, as a full
/// socket buffer would.
pub const INBOX: usize = 1024;

/// One datagram for a session: the RTSP track it belongs to, whether it
/// came to the RTCP port, and its bytes.
pub struct Datagram {
    pub track: usize,
    pub rtcp: bool,
    pub data: Bytes,
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Datagram>,
    /// A wake-up post is on its way.
    posted: bool,
}

/// A session's datagrams, filled by the socket task.
#[derive(Default)]
pub struct Inbox(Mutex<InboxState>);

/// The post that wakes a session to drain its inbox.
pub struct Wake;

impl Inbox {
    /// Everything waiting; the next datagram posts a new wake-up.
    pub fn take(&self) -> VecDeque<Datagram> {
        let mut s = self.0.lock();
        s.posted = false;
        std::mem::take(&mut s.queue)
    }
}

struct Route {
    conn: ConnId,
    track: usize,
    inbox: Arc<Inbox>,
}

/// Client addresses → sessions.
#[derive(Default)]
pub struct Routes(Mutex<HashMap<SocketAddr, Route>>);

impl Routes {
    /// Registers `addrs` (a track's client RTP and RTCP addresses) for
    /// session `conn`. `false` when another session has one of them.
    pub fn add(
        &self,
        conn: ConnId,
        track: usize,
        inbox: &Arc<Inbox>,
        addrs: [SocketAddr; 2],
    ) -> bool {
        let mut map = self.0.lock();
        if addrs
            .iter()
            .any(|a| map.get(a).is_some_and(|r| r.conn != conn))
        {
            return false;
        }
        for a in addrs {
            map.insert(
                a,
                Route {
                    conn,
                    track,
                    inbox: inbox.clone(),
                },
            );
        }
        true
    }

    /// Forgets every address of session `conn`.
    pub fn remove(&self, conn: ConnId, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut map = self.0.lock();
        for a in addrs {
            if map.get(&a).is_some_and(|r| r.conn == conn) {
                map.remove(&a);
            }
        }
    }

    /// Hands a datagram from `from` to its session. `false`: no session of
    /// this generation has that address (after a reload, an older one may).
    pub fn deliver(&self, host: &Host, socket: u32, from: SocketAddr, data: &[u8]) -> bool {
        let (conn, inbox) = {
            let map = self.0.lock();
            let Some(r) = map.get(&from) else {
                return false;
            };
            let mut s = r.inbox.0.lock();
            if s.queue.len() >= INBOX {
                return true;
            }
            s.queue.push_back(Datagram {
                track: r.track,
                rtcp: socket == RTCP,
                data: Bytes::copy_from_slice(data),
            });
            if s.posted {
                return true;
            }
            s.posted = true;
            (r.conn, r.inbox.clone())
        };
        if host.post(conn, Box::new(Wake)).is_err() {
            // The session is gone; its routes go with its close.
            inbox.take();
        }
        true
    }
}

/// The client's address for `port`, on the RTSP connection's peer IP.
pub fn client_addr(peer: &str, port: u16) -> Option<SocketAddr> {
    let mut a: SocketAddr = peer.parse().ok()?;
    a.set_port(port);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses() {
        assert_eq!(
            client_addr("127.0.0.1:5000", 7000),
            Some("127.0.0.1:7000".parse().unwrap())
        );
        assert_eq!(
            client_addr("[::1]:5000", 7001),
            Some("[::1]:7001".parse().unwrap())
        );
        assert_eq!(client_addr("nonsense", 7000), None);
    }

    #[test]
    fn an_address_belongs_to_one_session() {
        let r = Routes::default();
        let inbox = Arc::new(Inbox::default());
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        assert!(r.add(ConnId(1), 0, &inbox, [a, b]));
        assert!(
            r.add(ConnId(1), 1, &inbox, [a, b]),
            "the same session again"
        );
        assert!(!r.add(ConnId(2), 0, &inbox, [b, c]), "b is taken");
        r.remove(ConnId(2), [a, b]);
        assert_eq!(r.0.lock().len(), 2, "not session 2's to remove");
        r.remove(ConnId(1), [a, b]);
        assert!(r.add(ConnId(2), 0, &inbox, [b, c]));
    }
}
