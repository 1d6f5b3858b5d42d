//! How many bytes a TCP socket still holds for its peer (sent or not, not
//! yet acknowledged): what a player that stopped reading leaves in the
//! kernel, where the host's own queue cannot see it.

use std::os::fd::AsRawFd;

/// The socket's send queue in bytes (`SIOCOUTQ`), or None where the kernel
/// does not say.
#[cfg(target_os = "linux")]
pub fn unacked(sock: &impl AsRawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: `TIOCOUTQ` (= `SIOCOUTQ` for TCP sockets) writes one int to
    // the pointer, which points at `n`, alive for the call; the fd is
    // borrowed from a live socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    (rc == 0 && n >= 0).then_some(n as u64)
}

/// The socket's send queue in bytes, or None where the kernel does not say.
#[cfg(not(target_os = "linux"))]
pub fn unacked(_sock: &impl AsRawFd) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn a_peer_that_reads_nothing_leaves_bytes_queued() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        assert_eq!(super::unacked(&c), Some(0));
        c.set_nonblocking(true).unwrap();
        // Far more than the peer's receive window: the rest stays here.
        let block = vec![0u8; 1 << 20];
        for _ in 0..16 {
            let _ = c.write(&block);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(super::unacked(&c).unwrap() > 0);
    }
}
