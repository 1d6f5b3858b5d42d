//! The plain-HTTP listener. It reads each connection's first request head
//! itself: a `GET` on a plugin's streaming route (`RILL_ROUTE_STREAM`,
//! HTTP-FLV) becomes a plugin session that owns the TCP socket, as an RTMP
//! session does, so a player costs no HTTP server buffers; every other
//! connection goes to hyper (axum) with the bytes already read put back in
//! front.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::prepare::Counted;
use super::AppState;
use crate::admission::ConnSlot;
use crate::plugin::PluginRequest;

/// Largest request head read here (hyper allows more, but a streaming GET
/// never needs it; a larger head goes to hyper, which answers it).
const MAX_HEAD: usize = 16 << 10;
/// Most headers parsed.
const MAX_HEADERS: usize = 64;

/// A TCP connection whose first bytes were read already: they are read
/// again first.
pub struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The plain-HTTP listener's preparation: read the request head, hand
/// streaming requests to plugins, the rest to the HTTP server.
pub struct Triage(pub AppState);

impl super::prepare::Prepare for Triage {
    type Io = Rewind;
    fn prepare(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        slot: Option<ConnSlot>,
    ) -> impl std::future::Future<Output = Option<Counted<Rewind>>> + Send + 'static {
        triage(tcp, peer, self.0.clone(), slot)
    }
}

pub type PlainListener = super::prepare::Preparing<Triage>;

/// Reads the request head; a streaming request goes to its plugin (`None`),
/// anything else back to the HTTP server. A client that sends no complete
/// head in time is dropped.
async fn triage(
    mut tcp: TcpStream,
    peer: SocketAddr,
    state: AppState,
    mut slot: Option<ConnSlot>,
) -> Option<Counted<Rewind>> {
    let mut buf = BytesMut::with_capacity(1024);
    let head_timeout = state.config.lock().http.header_timeout;
    let complete = tokio::time::timeout(head_timeout, async {
        loop {
            if find_head_end(&buf).is_some() || buf.len() >= MAX_HEAD {
                return Ok(true);
            }
            if tcp.read_buf(&mut buf).await? == 0 {
                return Ok::<_, io::Error>(false);
            }
        }
    })
    .await;
    match complete {
        Ok(Ok(true)) => {}
        // The client left, broke, or sent nothing whole in time.
        _ => return None,
    }
    match streaming(&buf, &state) {
        // A player over WebSocket (hyper upgrades it): its send buffer
        // capped as a streaming session caps its own
        // (subscribe.send_buffer), so a frozen player cannot park megabytes
        // in the kernel out of the stall rule's sight.
        Some(Streaming::WebSocket) => {
            let sb = state.engine.settings().send_buffer;
            if sb > 0 {
                let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(sb);
            }
        }
        Some(Streaming::Get(req)) => {
            let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
            match state
                .plugins
                .route_http_owned(*req, tcp, peer.to_string(), local, &mut slot)
            {
                Ok(()) => return None,
                // The route went away meanwhile (a reload): the HTTP server
                // answers.
                Err(back) => tcp = back,
            }
        }
        None => {}
    }
    Some(Counted {
        io: Rewind {
            prefix: buf.freeze(),
            inner: tcp,
        },
        slot,
    })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A request head on a plugin's streaming route (and not the API's).
enum Streaming {
    /// A `GET` without body or upgrade: the session will own the socket.
    Get(Box<PluginRequest>),
    /// A WebSocket upgrade (WS-FLV, WS-fMP4): hyper serves it.
    WebSocket,
}

/// What the head asks of a plugin's streaming route, if anything (parsed
/// once per connection).
fn streaming(head: &[u8], state: &AppState) -> Option<Streaming> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = req.parse(head).ok()? else {
        return None;
    };
    // HTTP/1.0 has no chunked bodies: hyper serves it.
    if req.method? != "GET" || req.version? != 1 {
        return None;
    }
    let target = req.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with('/') || path.starts_with("/api/") || path == "/metrics" {
        return None;
    }
    let mut out = Vec::with_capacity(req.headers.len());
    let mut websocket = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let has_body = (name == "content-length" && h.value != b"0") || name == "transfer-encoding";
        if name == "upgrade" {
            websocket = h.value.eq_ignore_ascii_case(b"websocket");
            if !websocket {
                return None;
            }
        } else if has_body {
            return None;
        }
        out.push((name, String::from_utf8_lossy(h.value).into_owned()));
    }
    if !state.plugins.streams("GET", path) {
        return None;
    }
    if websocket {
        return Some(Streaming::WebSocket);
    }
    Some(Streaming::Get(Box::new(PluginRequest {
        method: "GET".into(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: out,
        body: Bytes::new(),
        websocket: false,
        tls: false,
    })))
}
