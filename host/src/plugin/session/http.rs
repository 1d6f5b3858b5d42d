//! HTTP exchanges routed to plugins: the request as the plugin sees it,
//! its answer, and the response body the HTTP server pulls.

use super::*;

/// What the plugin answered to an HTTP request, waiting for the task.
pub(crate) enum HttpAnswer {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: u32,
        length: u64,
    },
    Upgrade {
        headers: Vec<(String, String)>,
    },
}

/// An HTTP request routed to a plugin, owned (the plugin sees views of it).
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub websocket: bool,
    /// It came over HTTPS.
    pub tls: bool,
}

pub(crate) struct HttpExchange {
    pub route_id: u32,
    pub req: HttpRequest,
    pub reply: oneshot::Sender<HttpReply>,
}

/// What the HTTP server sends the client.
pub enum HttpReply {
    /// The plugin refused the request (or ended without answering); a
    /// 401 has its `WWW-Authenticate` challenge.
    Error(u16, String, Option<&'static str>),
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: u32,
        length: u64,
        chunks: BodyChunks,
    },
    Upgrade {
        headers: Vec<(String, String)>,
        socket: oneshot::Sender<WebSocket>,
    },
}

/// Maps a refusing status of `on_http_request` to the HTTP answer.
pub(crate) fn http_status_for(status: i32) -> u16 {
    match status {
        RILL_ERR_NOT_FOUND => 404,
        RILL_ERR_DENIED => 403,
        RILL_ERR_UNAUTHORIZED => 401,
        RILL_ERR_TIMEOUT => 503,
        RILL_ERR_INVALID => 400,
        RILL_ERR_BUSY | RILL_ERR_AGAIN => 503,
        _ => 500,
    }
}

impl SessionShared {
    /// Records the plugin's answer to an HTTP request (once per request).
    pub(crate) fn answer_http(&self, a: HttpAnswer) -> i32 {
        if self.sink != Sink::Http {
            return RILL_ERR_UNSUPPORTED;
        }
        let mut st = self.st.lock();
        if st.http_answered || st.close.is_some() {
            return RILL_ERR_INVALID;
        }
        if st.owned_http {
            // From here each write is one chunk (`queue` frames it).
            if let HttpAnswer::Respond { body, .. } = &a {
                st.chunked = *body == RILL_HTTP_BODY_CHUNKED;
                // An open-ended body on a streaming route is a player (a
                // shared muxer's output, say, not frames of its own): the
                // send buffer cap and the stall rule apply to it.
                if *body == RILL_HTTP_BODY_CHUNKED || *body == RILL_HTTP_BODY_CLOSE {
                    st.streaming = true;
                }
            }
        }
        st.http_answered = true;
        st.http_answer = Some(a);
        RILL_OK
    }

    /// Completes an HTTP response body: the server sends what is queued,
    /// then the end of the body.
    pub(super) fn end_body(&self) {
        let w = {
            let mut st = self.st.lock();
            st.body_done = true;
            st.body_waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// Calls `on_http_request` with views of the owned request.
pub(super) fn open_http(s: &Arc<SessionShared>, route_id: u32, r: &HttpRequest) -> i32 {
    s.st.lock().authorization = r
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone());
    let headers: Vec<RillHeader> = r
        .headers
        .iter()
        .map(|(n, v)| RillHeader {
            name: RillStr::from_str(n),
            value: RillStr::from_str(v),
        })
        .collect();
    let req = RillHttpRequest {
        struct_size: std::mem::size_of::<RillHttpRequest>() as u32,
        flags: if r.websocket {
            RILL_HTTP_UPGRADE_WEBSOCKET
        } else {
            0
        } | if r.tls { RILL_HTTP_TLS } else { 0 },
        method: RillStr::from_str(&r.method),
        path: RillStr::from_str(&r.path),
        query: RillStr::from_str(&r.query),
        headers: headers.as_ptr(),
        header_count: headers.len(),
        body: RillBytes::from_slice(&r.body),
    };
    let (conn, mut user) = (s.conn_ptr(), s.user());
    let status = s.inst.call(|d, i| {
        // SAFETY: plugin callback; the request is lent for the call.
        d.on_http_request.map_or(RILL_ERR_NOT_FOUND, |f| unsafe {
            f(i, conn, route_id, &req, &mut user)
        })
    });
    s.user.store(user, Ordering::Release);
    status
}

/// Sends the plugin's HTTP answer once it gave one.
pub(super) fn answer_http(s: &Arc<SessionShared>, t: &mut Transport) -> Result<(), (u32, String)> {
    if matches!(t, Transport::OwnedPending(..)) {
        return answer_owned(s, t);
    }
    let Transport::HttpPending(reply, _) = t else {
        return Ok(());
    };
    let Some(answer) = s.st.lock().http_answer.take() else {
        return Ok(());
    };
    let Some(reply) = reply.take() else {
        return Ok(());
    };
    let gone = || (RILL_END_PEER, "the client went away".to_string());
    match answer {
        HttpAnswer::Respond {
            status,
            headers,
            body,
            length,
        } => {
            let chunks = BodyChunks { s: s.clone() };
            reply
                .send(HttpReply::Response {
                    status,
                    headers,
                    body,
                    length,
                    chunks,
                })
                .map_err(|_| gone())?;
            *t = Transport::Body;
        }
        HttpAnswer::Upgrade { headers } => {
            let (socket, rx) = oneshot::channel();
            reply
                .send(HttpReply::Upgrade { headers, socket })
                .map_err(|_| gone())?;
            *t = Transport::WsPending(rx);
        }
    }
    Ok(())
}

/// The body of an HTTP response a plugin streams: the HTTP server's task
/// takes the session's queued output from here directly, without a channel
/// in between. Dropping it (the client went away) ends the session.
pub struct BodyChunks {
    s: Arc<SessionShared>,
}

impl BodyChunks {
    /// The next chunk; `None` once the session ended and all was sent.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut st = self.s.st.lock();
        let Some(o) = st.out.pop_front() else {
            if st.body_done {
                return Poll::Ready(None);
            }
            match &st.body_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.body_waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        let before = st.out_bytes;
        st.out_bytes -= o.data.len();
        st.written += o.data.len() as u64;
        shrink_after_burst(&mut st.out);
        // Wake the session when this makes room it waits for, or when it
        // waits for the queue to drain before it ends.
        let wake = (before >= HIGH_WATER && st.out_bytes < HIGH_WATER)
            || (st.want_writable && st.out_bytes < LOW_WATER)
            || (st.close.is_some() && st.out.is_empty());
        drop(st);
        if wake {
            self.s.ctl.notify.notify_one();
        }
        Poll::Ready(Some(o.data))
    }
}

impl Drop for BodyChunks {
    fn drop(&mut self) {
        self.s.st.lock().body_gone = true;
        self.s.ctl.notify.notify_one();
    }
}

/// The plugin's answer on a connection the session owns: the response head
/// goes in front of whatever body it queued, and the transport becomes a
/// plain stream (chunked bodies framed as they are queued).
fn answer_owned(s: &Arc<SessionShared>, t: &mut Transport) -> Result<(), (u32, String)> {
    let Some(answer) = s.st.lock().http_answer.take() else {
        return Ok(());
    };
    let HttpAnswer::Respond {
        status,
        headers,
        body,
        length,
    } = answer
    else {
        return Err((
            RILL_END_ERROR,
            "a WebSocket upgrade on a streaming route".into(),
        ));
    };
    let head = response_head(status, &headers, body, length);
    {
        let mut st = s.st.lock();
        st.out_bytes += head.len();
        st.out.push_front(Out {
            data: head,
            text: false,
        });
    }
    if let Transport::OwnedPending(r, w, _) = std::mem::replace(t, Transport::None) {
        *t = Transport::Stream(r, w);
    }
    Ok(())
}

/// An HTTP/1.1 response head for an owned connection (no keep-alive).
pub(super) fn response_head(
    status: u16,
    headers: &[(String, String)],
    body: u32,
    length: u64,
) -> Bytes {
    use std::fmt::Write;
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("");
    let mut h = format!("HTTP/1.1 {status} {reason}\r\n");
    let mut cors = false;
    for (k, v) in headers {
        // A header that would split the head is dropped, as hyper does.
        if k.is_empty() || k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            continue;
        }
        let k = k.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        cors |= k == "access-control-allow-origin";
        let _ = write!(h, "{k}: {v}\r\n");
    }
    if !cors {
        h.push_str("access-control-allow-origin: *\r\n");
    }
    match body {
        RILL_HTTP_BODY_FIXED => {
            let _ = write!(h, "content-length: {length}\r\n");
        }
        RILL_HTTP_BODY_CHUNKED => h.push_str("transfer-encoding: chunked\r\n"),
        _ => {}
    }
    h.push_str("connection: close\r\n\r\n");
    Bytes::from(h)
}

/// A whole response of the host's own on an owned connection (an error, a
/// 504): status and a short text body.
pub(super) fn plain_response(status: u16, text: &str, challenge: Option<&str>) -> Bytes {
    let mut headers = vec![("content-type".into(), "text/plain".into())];
    if let Some(c) = challenge {
        headers.push(("www-authenticate".into(), c.into()));
    }
    let head = response_head(status, &headers, RILL_HTTP_BODY_FIXED, text.len() as u64);
    let mut v = head.to_vec();
    v.extend_from_slice(text.as_bytes());
    Bytes::from(v)
}
