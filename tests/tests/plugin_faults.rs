//! A C plugin that misuses the host API on purpose (issue 20):
//! `tests/c/misuse.c`, compiled here with the system's C compiler against
//! `include/rill.h`. Calls with NULL or unknown handles are refused or
//! ignored, calls from the plugin's own thread are refused with a warning,
//! a connection closed twice is closed once; the server goes on serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rill_e2e::*;

fn build_misuse(dir: &std::path::Path) -> PathBuf {
    let out = dir.join("libmisuse.so");
    let ws = workspace_dir();
    let st = Command::new("cc")
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread",
        ])
        .arg("-I")
        .arg(ws.join("include"))
        .arg("-o")
        .arg(&out)
        .arg(ws.join("tests/c/misuse.c"))
        .output()
        .expect("run cc");
    assert!(
        st.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

#[test]
fn a_c_plugin_misusing_the_api_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_misuse(dir.path());
    let port = free_port();
    let rill = Rill::start(
        &format!("plugins:\n  misuse:\n    listen: 127.0.0.1:{port}\n"),
        &[lib],
    );
    assert!(
        wait_port(port, Duration::from_secs(10)),
        "misuse not listening:\n{}",
        rill.log()
    );
    // Every call with a NULL or unknown handle was refused or ignored.
    let line = wait_for(Duration::from_secs(5), || {
        rill.log()
            .lines()
            .find(|l| l.contains("misuse: ") && l.contains(" refused"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no summary line:\n{}", rill.log()));
    assert!(
        line.contains("calls with NULL or unknown handles refused"),
        "{line}"
    );

    // Calls from the plugin's own thread: answered with a status, no harm.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert_eq!(
        first, "wrong thread: conn_write invalid argument, publish_open invalid argument\n",
        "calls from the plugin's own thread"
    );
    // The log reaches the test through a reader thread: wait for it.
    wait_for(Duration::from_secs(5), || {
        rill.log()
            .contains("from outside a plugin callback")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no warning about the thread:\n{}", rill.log()));
    // The connection and the plugin work.
    s.write_all(b"echo me\n").unwrap();
    let mut echoed = String::new();
    r.read_line(&mut echoed).unwrap();
    assert_eq!(echoed, "echo me\n");

    // Closed twice: the second close is refused or a no-op, the connection
    // ends once.
    s.write_all(b"close").unwrap();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let closed = wait_for(Duration::from_secs(5), || {
        rill.log()
            .lines()
            .find(|l| l.contains("misuse: conn_close"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no close line:\n{}", rill.log()));
    assert!(closed.contains("conn_close ok then"), "{closed}");

    // Another connection, and the API: the server is well.
    let mut s2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 128];
    let n = s2.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"wrong thread:"));
    let (status, _) = http_get(rill.http_port, "/api/v1/server");
    assert_eq!(status, 200);
    let p = plugin_state(&rill, "misuse").unwrap();
    assert_eq!(p["state"], "running", "{p}");
}
