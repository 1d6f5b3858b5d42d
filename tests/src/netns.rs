//! A second host for tests: a network namespace joined to this one by a
//! veth pair, so a client can reach the server from an address that is not
//! loopback. Needs root and iproute2 (scripts/install-deps installs it).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A namespace with `peer_ip` inside and `host_ip` on this side; removed
/// on drop.
pub struct NetNs {
    pub name: String,
    veth: String,
    /// This side's address, which the namespace reaches the server at.
    pub host_ip: String,
    /// The namespace's address, which the server sees as the client's.
    pub peer_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl NetNs {
    /// Creates the namespace and its link. Panics with the reason when it
    /// cannot (not root, no iproute2).
    pub fn create() -> NetNs {
        static N: AtomicU32 = AtomicU32::new(0);
        // Unique per process and call, so parallel tests never collide:
        // one /30 each, .1 on this side, .2 inside.
        let id = (std::process::id() % 250) * 64 + N.fetch_add(1, Ordering::Relaxed) % 64;
        let (net, base) = (id / 64, (id % 64) * 4);
        let ns = NetNs {
            name: format!("rill-t{id}"),
            veth: format!("rillv{id}"),
            host_ip: format!("10.213.{net}.{}", base + 1),
            peer_ip: format!("10.213.{net}.{}", base + 2),
        };
        let _ = ip(&["netns", "del", &ns.name]);
        let _ = ip(&["link", "del", &ns.veth]);
        let peer = format!("{}p", ns.veth);
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &ns.name],
            vec![
                "link", "add", &ns.veth, "type", "veth", "peer", "name", &peer, "netns", &ns.name,
            ],
            vec![
                "addr",
                "add",
                &ns.host_ip,
                "peer",
                &ns.peer_ip,
                "dev",
                &ns.veth,
            ],
            vec!["link", "set", &ns.veth, "up"],
            vec![
                "-n",
                &ns.name,
                "addr",
                "add",
                &ns.peer_ip,
                "peer",
                &ns.host_ip,
                "dev",
                &peer,
            ],
            vec!["-n", &ns.name, "link", "set", &peer, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for s in steps {
            if let Err(e) = ip(&s) {
                panic!(
                    "cannot make a network namespace for this test (root and iproute2 needed): {e}"
                );
            }
        }
        ns
    }

    /// Runs `cmd args` inside the namespace.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
