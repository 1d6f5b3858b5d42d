//! A webhook receiver for the auth tests: an HTTP server on a free port
//! that records every JSON body it gets and answers each with what the
//! test's function says (a status, after an optional delay).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The answer to one hook call: status code, and how long to wait first.
pub type Reply = (u16, Duration);

pub struct HookServer {
    pub port: u16,
    /// (path of the request, JSON body, when it came).
    pub calls: Arc<Mutex<Vec<(String, serde_json::Value, Instant)>>>,
}

impl HookServer {
    pub fn start(decide: fn(&str, &serde_json::Value) -> Reply) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hook server");
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let record = calls.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let record = record.clone();
                // One thread per call: a slow answer holds up no other.
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let Some((path, body)) = read_request(&mut conn) else {
                        return;
                    };
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    record
                        .lock()
                        .unwrap()
                        .push((path.clone(), json.clone(), Instant::now()));
                    let (status, delay) = decide(&path, &json);
                    std::thread::sleep(delay);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                });
            }
        });
        HookServer { port, calls }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The bodies received on `path` so far.
    pub fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == path)
            .map(|c| c.1.clone())
            .collect()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, buf[head_end..head_end + len].to_vec()))
}
