//! Webhooks: one small HTTP/1.1 client (a POST of JSON, the status code
//! back; plain or TLS), the asking calls (`on_publish`, `on_play`) and the
//! notifications (`on_publish_done`, `on_play_done`) with their retries and
//! bounded queue. Every call runs on a task of its own: a slow hook holds
//! up only the session that waits for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

/// Largest response head read from a hook.
const MAX_HEAD: usize = 16 << 10;
/// Notifications sent at the same time at most.
const NOTIFY_PARALLEL: usize = 16;

/// A parsed `http://` or `https://` hook address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HookUrl {
    pub fn parse(url: &str) -> Result<HookUrl, String> {
        let bad = || format!("{url:?} is not an http:// or https:// URL");
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad());
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || target.contains(char::is_whitespace) {
            return Err(bad());
        }
        let default = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), default),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(HookUrl {
            tls,
            host,
            port,
            target: target.to_owned(),
        })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// POSTs `body` (JSON) to `url`; the response's status code. The caller
/// bounds the time.
pub async fn post(
    url: &HookUrl,
    body: &[u8],
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<u16, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect {}:{}: {e}", url.host, url.port))?;
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return exchange(tcp, url, body).await;
    }
    let config = tls.ok_or("no TLS client configuration")?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("{}: {e}", url.host))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", url.host))?;
    exchange(stream, url, body).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &HookUrl,
    body: &[u8],
) -> Result<u16, String> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill/{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let io = |e: std::io::Error| format!("hook {}: {e}", url.host);
    s.write_all(head.as_bytes()).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 2048];
        let n = s.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(format!("hook {}: closed before answering", url.host));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return resp.code.ok_or_else(|| "no status code".to_owned())
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("response head too long".into()),
            Err(e) => return Err(format!("hook {}: bad response: {e}", url.host)),
        }
    }
}

/// Counters of hook traffic, for `/metrics`.
#[derive(Debug, Default)]
pub struct HookStats {
    pub allowed: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub notified: AtomicU64,
    pub notify_failed: AtomicU64,
    pub notify_dropped: AtomicU64,
}

/// A notification to deliver.
struct Note {
    url: HookUrl,
    body: Vec<u8>,
    timeout: Duration,
    retries: u32,
}

/// The `*_done` notifications: a bounded queue and a worker that sends
/// them, a few at a time, retrying failures.
pub struct Notifier {
    tx: mpsc::Sender<Note>,
}

impl Notifier {
    pub fn start(
        queue: usize,
        stats: Arc<HookStats>,
        tls: impl Fn() -> Option<Arc<rustls::ClientConfig>> + Send + Sync + 'static,
    ) -> Notifier {
        let (tx, mut rx) = mpsc::channel::<Note>(queue.max(1));
        let tls = Arc::new(tls);
        tokio::spawn(async move {
            let parallel = Arc::new(Semaphore::new(NOTIFY_PARALLEL));
            while let Some(note) = rx.recv().await {
                let Ok(permit) = parallel.clone().acquire_owned().await else {
                    return;
                };
                let (stats, tls) = (stats.clone(), tls.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut delay = Duration::from_secs(1);
                    for attempt in 0..=note.retries {
                        let sent =
                            tokio::time::timeout(note.timeout, post(&note.url, &note.body, tls()))
                                .await;
                        match sent {
                            Ok(Ok(code)) if (200..300).contains(&code) => {
                                stats.notified.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            // A 4xx will not get better by asking again.
                            Ok(Ok(code)) if (400..500).contains(&code) => break,
                            _ if attempt < note.retries => {
                                tokio::time::sleep(delay).await;
                                delay *= 2;
                            }
                            _ => {}
                        }
                    }
                    stats.notify_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(hook = %note.url.host, "hook notification not delivered");
                });
            }
        });
        Notifier { tx }
    }

    /// Queues a notification; false (counted) when the queue is full.
    pub fn send(&self, url: HookUrl, body: Vec<u8>, timeout: Duration, retries: u32) -> bool {
        self.tx
            .try_send(Note {
                url,
                body,
                timeout,
                retries,
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HookUrl::parse("http://127.0.0.1:9000/hooks/publish?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (false, "127.0.0.1", 9000, "/hooks/publish?x=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = HookUrl::parse("https://auth.example.com").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str()), (true, 443, "/"));
        assert_eq!(u.host_header(), "auth.example.com");
        let u = HookUrl::parse("http://[::1]:81/h").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert_eq!(u.host_header(), "[::1]:81");
        for bad in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://a:b/",
            "http://u@h/",
            "x",
        ] {
            assert!(HookUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
