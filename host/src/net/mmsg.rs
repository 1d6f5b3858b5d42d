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

/// Segments of one UDP GSO send at most (the kernel's `UDP_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: usize = 64;
/// Bytes of one UDP GSO send at most (an IP datagram's limit, headers
/// apart, with room to spare).
pub const MAX_GSO_BYTES: usize = 65_000;
/// Datagrams one [`send`] takes at most, whatever their grouping.
const MAX_DATAGRAMS: usize = 256;

/// Whether the kernel offers UDP GSO (`UDP_SEGMENT`, Linux 4.18) on `fd`.
#[cfg(target_os = "linux")]
pub fn gso_supported(fd: &impl AsRawFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a getsockopt of an int into a live int, its size given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
pub fn gso_supported(_fd: &impl AsRawFd) -> bool {
    false
}

/// How many of `out`'s first datagrams one GSO send can carry: the same
/// destination, the same size, except the last, which may be shorter.
fn run_len(out: &[(SocketAddr, Bytes)], room: usize) -> usize {
    let Some((to, first)) = out.first() else {
        return 0;
    };
    let seg = first.len();
    let (mut n, mut total) = (1, seg);
    if seg == 0 {
        return 1;
    }
    for (t, d) in &out[1..] {
        // An empty datagram cannot be a segment: it would vanish.
        if n == MAX_SEGMENTS.min(room)
            || t != to
            || d.is_empty()
            || d.len() > seg
            || total + d.len() > MAX_GSO_BYTES
        {
            break;
        }
        n += 1;
        total += d.len();
        if d.len() < seg {
            break;
        }
    }
    n
}

/// Sends the datagrams in order, as many as the socket takes now. Returns
/// how many went (at least one), or `WouldBlock` when none could. With
/// `gso`, runs of datagrams to one destination, equal in size but for the
/// last, leave as one UDP GSO send each (the kernel or the NIC cuts them
/// apart): one trip through the stack instead of one per datagram. An
/// error is the first message's: `first` tells how many datagrams it
/// carried.
pub fn send(fd: &impl AsRawFd, out: &[(SocketAddr, Bytes)], gso: bool) -> Result<usize, SendError> {
    send_from(fd.as_raw_fd(), out, gso)
}

/// A send that failed: the error, and how many datagrams the first message
/// carried (more than one: a GSO send).
#[derive(Debug)]
pub struct SendError {
    pub error: io::Error,
    pub first: usize,
}

#[cfg(target_os = "linux")]
fn send_from(fd: RawFd, out: &[(SocketAddr, Bytes)], gso: bool) -> Result<usize, SendError> {
    /// A cmsg holding one u16, in u64s for its alignment.
    type Cmsg = [u64; 4];
    const _: () = assert!(std::mem::size_of::<Cmsg>() >= unsafe { libc::CMSG_SPACE(2) } as usize);
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut iovs: [libc::iovec; MAX_DATAGRAMS] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut cmsgs: [Cmsg; BATCH] = [[0; 4]; BATCH];
    let mut counts = [0usize; BATCH];
    // The queue keeps the 32-byte SocketAddr; the kernel's form is made
    // here, one per message.
    let mut names: [Option<SockAddr>; BATCH] = Default::default();
    let (mut m, mut i) = (0, 0);
    while i < out.len() && m < BATCH && i < MAX_DATAGRAMS {
        let n = if gso {
            run_len(&out[i..], MAX_DATAGRAMS - i)
        } else {
            1
        };
        for (k, (_, data)) in out[i..i + n].iter().enumerate() {
            iovs[i + k] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
        }
        let to = names[m].insert(SockAddr::from(out[i].0));
        let hdr = &mut msgs[m].msg_hdr;
        hdr.msg_name = to.as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = to.len();
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = n;
        if n > 1 {
            hdr.msg_control = cmsgs[m].as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a constant computation.
            hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
            // SAFETY: msg_control points at a zeroed buffer of at least
            // CMSG_SPACE(2) bytes, 8-aligned, so CMSG_FIRSTHDR is non-null
            // and its data has room for the u16 segment size.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(hdr);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                let seg = out[i].1.len() as u16;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            }
        }
        counts[m] = n;
        m += 1;
        i += n;
    }
    if m == 0 {
        return Ok(0);
    }
    // SAFETY: every msghdr points at a live address, live iovecs over bytes
    // borrowed from `out` and, for GSO, its own control buffer, all of which
    // outlive the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), m as u32, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(SendError {
            error: io::Error::last_os_error(),
            first: counts[0],
        });
    }
    Ok(counts[..sent as usize].iter().sum())
}

#[cfg(not(target_os = "linux"))]
fn send_from(fd: RawFd, out: &[(SocketAddr, Bytes)], _gso: bool) -> Result<usize, SendError> {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    let Some((to, data)) = out.first() else {
        return Ok(0);
    };
    // SAFETY: borrows the caller's open descriptor for this call only.
    let sock = ManuallyDrop::new(unsafe { std::net::UdpSocket::from_raw_fd(fd) });
    sock.send_to(data, to)
        .map(|_| 1)
        .map_err(|error| SendError { error, first: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_flag_oversize() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let to = a.local_addr().unwrap();
        let mut out: Vec<(SocketAddr, Bytes)> = (0..40u8)
            .map(|i| (to, Bytes::from(vec![i; 100 + i as usize])))
            .collect();
        out.push((to, Bytes::from(vec![9; SLOT + 10])));
        let mut sent = 0;
        while sent < out.len() {
            sent += send(&b, &out[sent..], false).unwrap();
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

    fn datagrams(to: &SocketAddr, sizes: &[usize]) -> Vec<(SocketAddr, Bytes)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (*to, Bytes::from(vec![i as u8; n])))
            .collect()
    }

    #[test]
    fn gso_runs_end_at_a_shorter_datagram_or_another_destination() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let out = datagrams(&a, &[1200, 1200, 1200, 800, 1200, 1300]);
        assert_eq!(run_len(&out, 64), 4, "three full, one shorter");
        assert_eq!(run_len(&out[4..], 64), 1, "a longer one starts a new run");
        assert_eq!(run_len(&out, 2), 2, "room");
        assert_eq!(
            run_len(&datagrams(&a, &[1200, 0]), 64),
            1,
            "an empty one goes alone"
        );
        let mut mixed = datagrams(&a, &[1200, 1200]);
        mixed.extend(datagrams(&b, &[1200]));
        assert_eq!(run_len(&mixed, 64), 2);
        let many = datagrams(&a, &[1000; 100]);
        assert_eq!(run_len(&many, 100), MAX_SEGMENTS);
        let big = datagrams(&a, &[9000; 10]);
        assert_eq!(run_len(&big, 100), MAX_GSO_BYTES / 9000);
    }

    /// Sent with GSO, received as the datagrams they were: sizes, bytes and
    /// order kept.
    #[test]
    fn gso_sends_arrive_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        // Linux has had UDP GSO since 4.18 (where a sandbox's kernel lacks
        // it, the same datagrams go one by one, and must arrive the same).
        let gso = gso_supported(&tx);
        let to = rx.local_addr().unwrap();
        let mut sizes = vec![1400; 9];
        sizes.push(333);
        sizes.extend([200, 1400, 1400, 1, 0, 0, 7]);
        sizes.extend([1300; 70]);
        let out = datagrams(&to, &sizes);
        let mut sent = 0;
        while sent < out.len() {
            sent += send(&tx, &out[sent..], gso).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < out.len() && std::time::Instant::now() < deadline {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(got.len(), out.len(), "gso {gso}");
        for (g, (_, want)) in got.iter().zip(&out) {
            assert_eq!(&g[..], &want[..]);
        }
    }
}
