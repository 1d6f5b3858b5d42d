//! `testkit`: a test-only Rill plugin written with the Rust SDK. Not
//! installed by `scripts/build-plugins`.
//!
//! Config (`plugins.testkit`): `listen: <ip:port>` (required).
//!
//! - Every TCP connection on `listen` gets its bytes echoed back.
//! - A line that is exactly `panic` (`panic\n`, possibly split across
//!   reads) makes `on_data` panic, which the SDK turns into
//!   `RILL_ERR_PANIC` and an error log line; the host then ends that
//!   session only. `tests/tests/plugin_panic.rs` checks that.
//! - `on_frame` does the minimal work a muxer starts with: it reads the
//!   frame's info (one call back into the host) and counts the frame in its
//!   session. `host/benches/abi.rs` measures the cost of the ABI crossing
//!   with it (sessions subscribe to nothing, so only the bench calls it).

use rill_abi::rill_log;
use rill_abi::sdk::{Conn, Error, FrameRef, Host, Plugin, Result, SubscriberId};

/// The line that makes the plugin panic.
const PANIC_LINE: &[u8] = b"panic";
/// Longest partial line kept while looking for `panic` (longer lines are
/// echoed and forgotten).
const MAX_LINE: usize = 64;

/// The instance: nothing but its listener.
pub struct Testkit;

/// One connection.
#[derive(Default)]
pub struct Session {
    /// The current line so far (up to `MAX_LINE` bytes; `None` once longer).
    line: Option<Vec<u8>>,
    /// Frames seen by `on_frame`, and the last one's dts.
    frames: u64,
    last_dts: i64,
}

/// The value of a top-level `key:` line in the plugin's YAML section.
fn config_value<'a>(yaml: &'a str, key: &str) -> Option<&'a str> {
    yaml.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        let v = v.split(" #").next().unwrap_or(v).trim();
        Some(v.trim_matches(|c| c == '"' || c == '\''))
    })
}

impl Session {
    /// Feeds `data` to the line scanner; true when it completed a `panic` line.
    fn saw_panic_line(&mut self, data: &[u8]) -> bool {
        let mut hit = false;
        for &b in data {
            if b == b'\n' {
                if self.line.as_deref() == Some(PANIC_LINE) {
                    hit = true;
                }
                self.line = Some(Vec::new());
            } else if let Some(l) = &mut self.line {
                if l.len() < MAX_LINE {
                    l.push(b);
                } else {
                    self.line = None;
                }
            }
        }
        hit
    }
}

impl Plugin for Testkit {
    type Session = Session;
    const DESCRIPTION: &'static str = "test-only: TCP echo that panics on a `panic` line";

    fn create(host: &Host) -> Result<Self> {
        let config = host.config();
        let Some(addr) = config_value(&config, "listen").filter(|a| !a.is_empty()) else {
            rill_log!(
                host,
                Error,
                "testkit: no `listen` address in its config section"
            );
            return Err(Error::INVALID);
        };
        host.listen(addr, 1, 0)?;
        rill_log!(host, Info, "testkit echoing on {addr}");
        Ok(Testkit)
    }

    fn on_conn_open(&self, _conn: &Conn, _listener_id: u32) -> Result<Session> {
        Ok(Session {
            line: Some(Vec::new()),
            ..Session::default()
        })
    }

    fn on_data(&self, s: &mut Session, conn: &Conn, data: &[u8]) -> Result<()> {
        if s.saw_panic_line(data) {
            panic!("testkit asked to panic by {}", conn.peer_addr());
        }
        conn.write(data).map(drop)
    }

    fn on_close(&self, s: Session, conn: &Conn, _reason: u32, why: &str) {
        if s.frames > 0 {
            rill_log!(
                conn.host(),
                Debug,
                "testkit session ended ({why}) after {} frames, last dts {}",
                s.frames,
                s.last_dts
            );
        }
    }

    fn on_frame(
        &self,
        s: &mut Session,
        _conn: &Conn,
        _sub: SubscriberId,
        frame: &FrameRef,
    ) -> Result<()> {
        let info = frame.info();
        s.frames += 1;
        s.last_dts = info.dts;
        Ok(())
    }
}

rill_abi::export_plugin!(Testkit, "testkit");

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            line: Some(Vec::new()),
            ..Session::default()
        }
    }

    #[test]
    fn panic_line_is_found_whole_or_split() {
        let mut s = session();
        assert!(!s.saw_panic_line(b"hello\npanicky\n"));
        assert!(s.saw_panic_line(b"x\npanic\n"));
        let mut s = session();
        assert!(!s.saw_panic_line(b"pa"));
        assert!(!s.saw_panic_line(b"nic"));
        assert!(s.saw_panic_line(b"\n"));
        // Not a whole line: "xpanic".
        let mut s = session();
        assert!(!s.saw_panic_line(b"xpanic\n"));
        // A long line is forgotten, the next one counts again.
        let mut s = session();
        assert!(!s.saw_panic_line(&[b'a'; 200]));
        assert!(!s.saw_panic_line(b"panic\n"), "still the long line");
        assert!(s.saw_panic_line(b"panic\n"));
    }

    #[test]
    fn config_lines() {
        let y = "listen: 127.0.0.1:7000 # here\nother: 1\n";
        assert_eq!(config_value(y, "listen"), Some("127.0.0.1:7000"));
        assert_eq!(
            config_value("listen: '[::1]:9'\n", "listen"),
            Some("[::1]:9")
        );
        assert_eq!(config_value("  listen: x\n", "listen"), None);
        assert_eq!(config_value("listener: x\n", "listen"), None);
    }
}
