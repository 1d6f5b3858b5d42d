//! A listener that prepares each accepted connection on its own task (a
//! TLS handshake, reading the request head) and hands the HTTP server only
//! those that came through: a slow or silent client holds up nobody.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::admission::{Admission, ConnSlot, ListenerGate};

/// What to do with each accepted connection before the HTTP server gets it.
pub trait Prepare: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The connection for the HTTP server, or `None` (dropped, or taken
    /// elsewhere: then `slot`, the connection's place in the per-address
    /// count, goes with it).
    fn prepare(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        slot: Option<ConnSlot>,
    ) -> impl Future<Output = Option<Counted<Self::Io>>> + Send + 'static;
}

/// A connection and its place in the per-address count, freed with it.
pub struct Counted<T> {
    pub io: T,
    pub slot: Option<ConnSlot>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub struct Preparing<P: Prepare> {
    tcp: TcpListener,
    prep: P,
    admission: Arc<Admission>,
    gate: Arc<ListenerGate>,
    pending: JoinSet<Option<(Counted<P::Io>, SocketAddr)>>,
}

impl<P: Prepare> Preparing<P> {
    pub fn new(tcp: TcpListener, prep: P, admission: Arc<Admission>) -> Self {
        Preparing {
            tcp,
            prep,
            admission,
            gate: Arc::default(),
            pending: JoinSet::new(),
        }
    }
}

impl<P: Prepare> Listener for Preparing<P> {
    type Io = Counted<P::Io>;
    type Addr = SocketAddr;

    // Cancel-safe (axum drops it on shutdown): both branches are.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let Preparing {
            tcp,
            prep,
            admission,
            gate,
            pending,
        } = self;
        loop {
            tokio::select! {
                // At the cap (`limits.max_connections_per_listener`): accept
                // nothing until a connection ends.
                r = async {
                    admission.listener_room(gate).await;
                    TcpListener::accept(tcp).await
                } => match r {
                    Ok((tcp, peer)) => {
                        // Over a per-address limit: closed at once.
                        let Some(slot) = admission.accept(peer.ip(), "http", Some(gate.enter()))
                        else {
                            continue;
                        };
                        let ready = prep.prepare(tcp, peer, slot);
                        pending.spawn(async move { ready.await.map(|io| (io, peer)) });
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(done) = pending.join_next(), if !pending.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum does for its TCP listener: errors of one connection are
/// ignored; others (EMFILE, ...) are logged and accepting pauses 1 s.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("HTTP accept: {e}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}
