//! A session's transport: TCP, TLS, an HTTP body or a WebSocket, and
//! the reads and writes on it.

use super::*;

/// Size of the read buffer. There is one per runtime thread, not one per
/// session: input is lent to the plugin only for the `on_conn_data` call,
/// and a buffer per idle player was most of a player's memory.
pub(super) const READ_BUF: usize = 64 << 10;

/// A TLS stream of either side.
pub(crate) trait TlsIo: tokio::io::AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + AsyncWrite + Send + Unpin> TlsIo for T {}

/// Bytes read from a TLS session at a time.
pub(super) const TLS_READ: usize = 16 << 10;

/// The transport of a session.
pub(crate) enum Io {
    None,
    Stream(TcpStream),
    /// A TLS connection, handshake done (`RILL_LISTEN_TLS`,
    /// `RILL_CONNECT_TLS`).
    Tls(Box<dyn TlsIo>),
    Http(HttpExchange),
    /// A request on a streaming route whose connection the session owns.
    OwnedHttp(OwnedHttp),
}

/// A streaming request (`RILL_ROUTE_STREAM`) with its connection.
pub(crate) struct OwnedHttp {
    pub sock: TcpStream,
    pub route_id: u32,
    pub req: HttpRequest,
}

/// Where a running session's bytes go, as it changes (an HTTP exchange
/// becomes a body or a WebSocket).
pub(super) enum Transport {
    None,
    Stream(OwnedReadHalf, OwnedWriteHalf),
    Tls(
        tokio::io::ReadHalf<Box<dyn TlsIo>>,
        tokio::io::WriteHalf<Box<dyn TlsIo>>,
    ),
    /// A streaming request on an owned connection, not answered yet: the
    /// answer's head goes out first (then it is a `Stream`), or the host's
    /// 504 at the deadline.
    OwnedPending(OwnedReadHalf, OwnedWriteHalf, tokio::time::Instant),
    /// Waiting for the plugin's answer.
    /// Waiting for the plugin's answer, until the deadline
    /// (`http.response_timeout`).
    HttpPending(Option<oneshot::Sender<HttpReply>>, tokio::time::Instant),
    /// Streaming a response body.
    Body,
    /// Upgrade accepted, waiting for the socket.
    WsPending(oneshot::Receiver<WebSocket>),
    /// A WebSocket: its input, the queue to its writer task, and that
    /// task (aborted when the peer stopped reading: its close would wait
    /// for ever).
    Ws(
        SplitStream<WebSocket>,
        mpsc::Sender<Message>,
        tokio::task::AbortHandle,
    ),
}

pub(super) enum IoEvent {
    Wrote(std::io::Result<()>),
    /// A WebSocket message; `Ok(None)`: the end of input.
    Read(std::io::Result<Option<Bytes>>),
    /// The TCP socket has input (or an error) to read.
    Readable(std::io::Result<()>),
    /// The transport changed (the WebSocket arrived) or ended (the HTTP
    /// client went away).
    Changed(Result<Transport, (u32, String)>),
}

pub(super) fn gone() -> (u32, String) {
    (RILL_END_PEER, "the client went away".into())
}

/// One step of I/O on whatever the transport is now: a write when output
/// is queued, a read when reading is not paused, or a transport event.
pub(super) async fn io_step(
    t: &mut Transport,
    s: &SessionShared,
    can_write: bool,
    can_read: bool,
) -> IoEvent {
    match t {
        Transport::Tls(r, w) => tokio::select! {
            res = write_tls(w, s), if can_write => IoEvent::Wrote(res),
            res = read_tls(r), if can_read => IoEvent::Read(res),
            else => std::future::pending().await,
        },
        Transport::OwnedPending(r, _, deadline) => tokio::select! {
            res = r.readable(), if can_read => IoEvent::Readable(res),
            _ = tokio::time::sleep_until(*deadline) => IoEvent::Changed(Err((
                RILL_END_TIMEOUT,
                "the plugin gave no answer within http.response_timeout".into(),
            ))),
        },
        Transport::Stream(r, w) => tokio::select! {
            res = write_stream(w, s), if can_write => IoEvent::Wrote(res),
            res = r.readable(), if can_read => IoEvent::Readable(res),
            else => std::future::pending().await,
        },
        // The HTTP server pulls the body from the queue (`BodyChunks`);
        // its progress and the client's going away wake the session's
        // control inbox.
        Transport::Body => std::future::pending().await,
        Transport::Ws(stream, tx, _) => tokio::select! {
            res = write_chan(tx, s, ws_message), if can_write => IoEvent::Wrote(res),
            m = next_ws(stream), if can_read => IoEvent::Read(m),
            _ = tx.closed() => IoEvent::Changed(Err(gone())),
        },
        Transport::WsPending(rx) => match rx.await {
            Ok(ws) => {
                let (mut sink, stream) = ws.split();
                let (tx, mut out) = mpsc::channel::<Message>(16);
                let writer = tokio::spawn(async move {
                    while let Some(m) = out.recv().await {
                        if sink.send(m).await.is_err() {
                            return;
                        }
                    }
                    let _ = tokio::time::timeout(super::FLUSH_DEADLINE, sink.close()).await;
                });
                IoEvent::Changed(Ok(Transport::Ws(stream, tx, writer.abort_handle())))
            }
            Err(_) => IoEvent::Changed(Err((RILL_END_PEER, "WebSocket upgrade failed".into()))),
        },
        Transport::HttpPending(_, deadline) => {
            tokio::time::sleep_until(*deadline).await;
            IoEvent::Changed(Err((
                RILL_END_TIMEOUT,
                "the plugin gave no answer within http.response_timeout".into(),
            )))
        }
        Transport::None => std::future::pending().await,
    }
}

pub(super) fn ws_message(o: Out) -> Message {
    if o.text {
        Message::Text(String::from_utf8_lossy(&o.data).into_owned().into())
    } else {
        Message::Binary(o.data)
    }
}

pub(super) async fn next_ws(stream: &mut SplitStream<WebSocket>) -> std::io::Result<Option<Bytes>> {
    loop {
        match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
            Some(Ok(Message::Text(t))) => return Ok(Some(Bytes::copy_from_slice(t.as_bytes()))),
            Some(Ok(_)) => continue, // ping/pong: answered by the WebSocket layer
            Some(Err(e)) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Drains what is queued before the session ends (bounded by the caller).
pub(super) async fn flush(t: &mut Transport, s: &SessionShared) -> std::io::Result<()> {
    while !s.st.lock().out.is_empty() {
        match t {
            Transport::Stream(_, w) | Transport::OwnedPending(_, w, _) => {
                write_stream(w, s).await?
            }
            Transport::Tls(_, w) => write_tls(w, s).await?,
            Transport::Body => {
                if s.st.lock().body_gone {
                    break;
                }
                s.ctl.notify.notified().await;
            }
            Transport::Ws(_, tx, _) => write_chan(tx, s, ws_message).await?,
            _ => break,
        }
    }
    match t {
        Transport::Stream(_, w) | Transport::OwnedPending(_, w, _) => w.shutdown().await?,
        // close_notify, then the TCP shutdown.
        Transport::Tls(_, w) => w.shutdown().await?,
        _ => {}
    }
    Ok(())
}

/// Reads what a TLS session has decrypted; `None` at the end of input.
/// (Cancel-safe: a read that did not complete took nothing.)
pub(super) async fn read_tls(
    r: &mut tokio::io::ReadHalf<Box<dyn TlsIo>>,
) -> std::io::Result<Option<Bytes>> {
    use tokio::io::AsyncReadExt;
    let mut buf = bytes::BytesMut::with_capacity(TLS_READ);
    match r.read_buf(&mut buf).await? {
        0 => Ok(None),
        _ => Ok(Some(buf.freeze())),
    }
}

/// Writes queued output into the TLS session, and pushes the records
/// to the socket once the queue is empty (rustls may hold the tail).
pub(super) async fn write_tls(
    w: &mut tokio::io::WriteHalf<Box<dyn TlsIo>>,
    s: &SessionShared,
) -> std::io::Result<()> {
    write_stream(w, s).await?;
    if s.st.lock().out.is_empty() {
        w.flush().await?;
    }
    Ok(())
}

/// Sends the oldest queued item as one chunk or message (cancel-safe: the
/// item leaves the queue only once the channel took it).
pub(super) async fn write_chan<T>(
    tx: &mpsc::Sender<T>,
    s: &SessionShared,
    map: impl FnOnce(Out) -> T,
) -> std::io::Result<()> {
    let permit = tx
        .reserve()
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
    let mut st = s.st.lock();
    if let Some(o) = st.out.pop_front() {
        st.out_bytes -= o.data.len();
        st.written += o.data.len() as u64;
        shrink_after_burst(&mut st.out);
        drop(st);
        permit.send(map(o));
    }
    Ok(())
}

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads what the socket has into this thread's read buffer and lends it
/// to `f`. `Ok(false)`: the peer closed its side.
pub(super) fn read_with(r: &OwnedReadHalf, f: impl FnOnce(&[u8])) -> std::io::Result<bool> {
    READ_BUFFER.with_borrow_mut(|buf| {
        if buf.is_empty() {
            buf.resize(READ_BUF, 0);
        }
        match r.try_read(buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                f(&buf[..n]);
                Ok(true)
            }
            // A spurious readiness: wait again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    })
}

/// A queue that a burst (a player's first GOP) grew keeps its capacity
/// forever unless it is given back once the burst is out.
pub(crate) fn shrink_after_burst<T>(q: &mut VecDeque<T>) {
    if q.is_empty() && q.capacity() > 64 {
        q.shrink_to(8);
    }
}

/// Most buffers one vectored write takes.
pub(super) const MAX_IOV: usize = 64;

/// Writes up to [`MAX_IOV`] queued buffers in one vectored write and drops
/// what was written. The queue is borrowed under the lock for the
/// non-blocking write itself, so nothing is cloned, and nothing leaves the
/// queue before the kernel took it (cancel-safe).
pub(super) async fn write_stream<W: AsyncWrite + Unpin>(
    w: &mut W,
    s: &SessionShared,
) -> std::io::Result<()> {
    poll_fn(|cx| {
        let mut st = s.st.lock();
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (sl, o) in slices.iter_mut().zip(st.out.iter()) {
            *sl = IoSlice::new(&o.data);
            n += 1;
        }
        let wrote = match Pin::new(&mut *w).poll_write_vectored(cx, &slices[..n]) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) if n > 0 => {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
            }
            Poll::Ready(Ok(k)) => k,
        };
        st.out_bytes -= wrote;
        st.written += wrote as u64;
        let mut left = wrote;
        while left > 0 {
            let Some(front) = st.out.front_mut() else {
                break;
            };
            if front.data.len() <= left {
                left -= front.data.len();
                st.out.pop_front();
            } else {
                front.data.advance(left);
                left = 0;
            }
        }
        shrink_after_burst(&mut st.out);
        Poll::Ready(Ok(()))
    })
    .await
}
