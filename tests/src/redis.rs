//! A real Redis server for a test: Debian's `redis-server` on a private
//! port and directory, nothing saved to disk, killed on drop. It can be
//! stopped and started again on the same port (an outage).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for};

const SERVER: &str = "/usr/bin/redis-server";

pub struct Redis {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts an empty server and waits until it answers PING.
    pub fn start() -> Redis {
        assert!(
            std::path::Path::new(SERVER).exists(),
            "{SERVER} missing: run scripts/install-deps"
        );
        let mut r = Redis {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log: PathBuf = self.dir.path().join("redis.log");
        let child = Command::new(SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(10), || {
            let mut c = self.try_connection()?;
            redis::cmd("PING").query::<String>(&mut c).ok()
        });
        assert!(
            up.is_some(),
            "redis-server did not answer on port {}:\n{}",
            self.port,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `cluster.redis` for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown); its data,
    /// kept only in memory, is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts an empty server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()
    }

    /// A connection, for reading what Rill wrote.
    pub fn connection(&self) -> redis::Connection {
        let c = self.try_connection().expect("connect to redis-server");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    /// GET `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .unwrap()
    }

    /// PTTL of `key`: ms left, -1 without expiry, -2 when absent.
    pub fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.connection())
            .unwrap()
    }

    /// The keys matching `pattern`, sorted (KEYS: fine on a test's server).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut k: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection())
            .unwrap();
        k.sort();
        k
    }

    /// SET `key` `value` (to put another node's claim in place).
    pub fn set(&self, key: &str, value: &str) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut self.connection())
            .unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
