//! UDP echo load: many client sockets keep a window of datagrams in flight
//! to an echo server and count the answers; and the peer to compare with,
//! a plain tokio echo server (one socket, `recv_from` then `send_to`).
//! Datagrams per second through Rill's ABI (the testkit plugin's
//! `on_udp_packet` → `udp_send`) against that peer is the figure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// `rill-loadgen udp-echo`: the plain tokio echo server.
pub fn echo_server(listen: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let sock = UdpSocket::bind(listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        eprintln!(
            "udp echo on {}",
            sock.local_addr().map_err(|e| e.to_string())?
        );
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            let _ = sock.send_to(&buf[..n], from).await;
        }
    })
}

/// `rill-loadgen udp`: `sockets` clients, each with up to `window`
/// datagrams of `size` bytes in flight, for `secs` seconds. Prints sent,
/// answered and answers per second; a datagram unanswered for 200 ms is
/// counted lost and its slot reused.
pub fn load(
    target: &str,
    sockets: usize,
    window: usize,
    size: usize,
    secs: u64,
) -> Result<(), String> {
    let target: SocketAddr = target.parse().map_err(|e| format!("{target}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..sockets {
            let sock = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            sock.connect(target).await.map_err(|e| e.to_string())?;
            let (sent, answered, lost) = (sent.clone(), answered.clone(), lost.clone());
            tasks.push(tokio::spawn(async move {
                let payload = vec![0x5au8; size];
                let mut buf = vec![0u8; 65536];
                let mut in_flight = 0usize;
                while Instant::now() < end {
                    while in_flight < window {
                        if sock.send(&payload).await.is_err() {
                            break;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        in_flight += 1;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf))
                        .await
                    {
                        Ok(Ok(_)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            in_flight -= 1;
                        }
                        _ => {
                            lost.fetch_add(in_flight as u64, Ordering::Relaxed);
                            in_flight = 0;
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok::<(), String>(())
    })?;
    let (s, a, l) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
    );
    println!(
        "{{\"target\": \"{target}\", \"seconds\": {secs}, \"sockets\": {sockets}, \"window\": {window}, \"size\": {size}, \"sent\": {s}, \"answered\": {a}, \"lost\": {l}, \"answers_per_sec\": {:.0}}}",
        a as f64 / secs as f64
    );
    Ok(())
}
