//! Batched UDP: up to [`BATCH`] datagrams per system call with
//! `recvmmsg`/`sendmmsg` on Linux, one per call elsewhere. Non-blocking:
//! meant to run inside tokio's `UdpSocket::async_io` / `try_io`, which
//! turn `WouldBlock` into waiting for readiness.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use bytes::Bytes;
use socket2::SockAddr;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Bytes kept per received datagram: larger ones are truncated by the
/// kernel, flagged, and dropped by the caller. Every UDP media protocol
/// Rill speaks stays under the path MTU (WebRTC ~1200, SRT 1456, RTP 1500).
pub const SLOT: usize = 4096;

/// One received datagram: its length in its slot, its source, and
/// whether it was longer than the slot.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub truncated: bool,
}

/// Receive buffers for one socket: [`BATCH`] slots of [`SLOT`] bytes.
pub struct RecvBuffers {
    data: Vec<u8>,
    /// What the last call received, slot `i` for entry `i`.
    pub got: Vec<Received>,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        RecvBuffers {
            data: vec![0; BATCH * SLOT],
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBuffers {
    /// The bytes of datagram `i` of the last call.
    pub fn datagram(&self, i: usize) -> &[u8] {
        let r = &self.got[i];
        &self.data[i * SLOT..i * SLOT + r.len.min(SLOT)]
    }

    /// Reads what is waiting on `fd` (at least one datagram, or
    /// `WouldBlock`) into the slots; the result is in `got`.
    pub fn recv(&mut self, fd: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        recv_into(fd.as_raw_fd(), &mut self.data, &mut self.got)
    }
}

#[cfg(target_os = "linux")]
fn recv_into(fd: RawFd, data: &mut [u8], got: &mut Vec<Received>) -> io::Result<usize> {
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, chunk) in data.chunks_exact_mut(SLOT).take(BATCH).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: SLOT,
        };
        msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every msghdr points at a live iovec over its own SLOT-byte
    // chunk of `data` and at its own sockaddr_storage, all of which outlive
    // the call; the kernel writes at most those lengths.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            BATCH as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, m) in msgs.iter().take(n as usize).enumerate() {
        let Some(from) = socket_addr(&names[i]) else {
            continue;
        };
        got.push(Received {
            len: m.msg_len as usize,
            from,
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        });
    }
    // Entries whose source was not IP were skipped: keep slots aligned by
    // reporting only a prefix that is all IP (in practice: all).
    Ok(got.len())
}

/// An IPv4 or IPv6 address the kernel wrote into `ss`.
#[cfg(target_os = "linux")]
fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // is smaller than the storage and less strictly aligned.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                a.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn recv_into(fd: RawFd, data: &mut [u8], got: &mut Vec<Received>) -> io::Result<usize> {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    // SAFETY: borrows the caller's open descriptor for this call only
    // (ManuallyDrop: never closed here).
    let sock = ManuallyDrop::new(unsafe { std::net::UdpSocket::from_raw_fd(fd) });
    let (len, from) = sock.recv_from(&mut data[..SLOT])?;
    got.push(Received {
        len,
        from,
        truncated: false,
    });
    Ok(1)
}

/// Sends the datagrams in order, as many as the socket takes now. Returns
/// how many went (at least one), or `WouldBlock` when none could.
pub fn send(fd: &impl AsRawFd, out: &[(SockAddr, Bytes)]) -> io::Result<usize> {
    send_from(fd.as_raw_fd(), out)
}

#[cfg(target_os = "linux")]
fn send_from(fd: RawFd, out: &[(SockAddr, Bytes)]) -> io::Result<usize> {
    let n = out.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, (to, data)) in out.iter().take(n).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        msgs[i].msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
        msgs[i].msg_hdr.msg_namelen = to.len();
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every msghdr points at a live address and a live iovec over
    // bytes borrowed from `out` for the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(not(target_os = "linux"))]
fn send_from(fd: RawFd, out: &[(SockAddr, Bytes)]) -> io::Result<usize> {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    let Some((to, data)) = out.first() else {
        return Ok(0);
    };
    let Some(to) = to.as_socket() else {
        return Ok(1);
    };
    // SAFETY: borrows the caller's open descriptor for this call only.
    let sock = ManuallyDrop::new(unsafe { std::net::UdpSocket::from_raw_fd(fd) });
    sock.send_to(data, to)?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_flag_oversize() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let to = SockAddr::from(a.local_addr().unwrap());
        let mut out: Vec<(SockAddr, Bytes)> = (0..40u8)
            .map(|i| (to.clone(), Bytes::from(vec![i; 100 + i as usize])))
            .collect();
        out.push((to.clone(), Bytes::from(vec![9; SLOT + 10])));
        let mut sent = 0;
        while sent < out.len() {
            sent += send(&b, &out[sent..]).unwrap();
        }
        let mut bufs = RecvBuffers::default();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < out.len() && std::time::Instant::now() < deadline {
            match bufs.recv(&a) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    for i in 0..n {
                        let r = bufs.got[i];
                        assert_eq!(r.from, b.local_addr().unwrap());
                        seen.push((r.len, r.truncated, bufs.datagram(i).to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen.len(), 41);
        for (i, (len, trunc, data)) in seen.iter().take(40).enumerate() {
            assert_eq!((*len, *trunc), (100 + i, false));
            assert!(data.iter().all(|&x| x == i as u8));
        }
        assert!(seen[40].1, "an oversize datagram is flagged");
    }
}
