//! Serving HTTP/1.1 connections from a listener with hyper, the way
//! `axum::serve` does, plus what it leaves out: a deadline on every request
//! head (`http.header_timeout`), which also closes a keep-alive connection
//! that stays idle that long. Without it a client could hold a connection
//! open for ever by sending nothing, or one header byte at a time.

use std::net::SocketAddr;
use std::pin::pin;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{AppState, Peer};

/// Serves `listener`'s connections with `router` until `stop` is
/// cancelled; then accepts no more, asks each connection to finish its
/// request in flight, and returns when all have ended.
pub async fn serve<L>(mut listener: L, router: Router, state: AppState, stop: CancellationToken)
where
    L: Listener<Addr = SocketAddr>,
{
    let conns = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            _ = stop.cancelled() => break,
        };
        let header_timeout = state.config.lock().http.header_timeout;
        let router = router.clone();
        // The peer for handlers (`ConnectInfo<Peer>`), as axum's
        // `into_make_service_with_connect_info` would put it.
        let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(Peer(peer)));
            router.clone().oneshot(req.map(Body::new))
        });
        let stop = stop.clone();
        conns.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .with_upgrades();
            let mut conn = pin!(conn);
            tokio::select! {
                r = conn.as_mut() => return log_end(peer, r),
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            log_end(peer, conn.await);
        });
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

fn log_end(peer: SocketAddr, r: Result<(), hyper::Error>) {
    match r {
        Err(e) if e.is_timeout() => {
            tracing::debug!(%peer, "HTTP: no complete request head within http.header_timeout")
        }
        Err(e) => tracing::trace!(%peer, "HTTP connection: {e}"),
        Ok(()) => {}
    }
}
