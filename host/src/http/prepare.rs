//! A listener that prepares each accepted connection on its own task (a
//! TLS handshake, reading the request head) and hands the HTTP server only
//! those that came through: a slow or silent client holds up nobody.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What to do with each accepted connection before the HTTP server gets it.
pub trait Prepare: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The connection for the HTTP server, or `None` (dropped, or taken
    /// elsewhere).
    fn prepare(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send + 'static;
}

pub struct Preparing<P: Prepare> {
    tcp: TcpListener,
    prep: P,
    pending: JoinSet<Option<(P::Io, SocketAddr)>>,
}

impl<P: Prepare> Preparing<P> {
    pub fn new(tcp: TcpListener, prep: P) -> Self {
        Preparing {
            tcp,
            prep,
            pending: JoinSet::new(),
        }
    }
}

impl<P: Prepare> Listener for Preparing<P> {
    type Io = P::Io;
    type Addr = SocketAddr;

    // Cancel-safe (axum drops it on shutdown): both branches are.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                r = self.tcp.accept() => match r {
                    Ok((tcp, peer)) => {
                        let ready = self.prep.prepare(tcp, peer);
                        self.pending.spawn(async move { ready.await.map(|io| (io, peer)) });
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
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
