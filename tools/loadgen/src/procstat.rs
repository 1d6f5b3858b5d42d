//! What a server process costs, read from /proc: CPU time (utime + stime of
//! the process and its direct children, e.g. nginx's workers) and memory
//! (PSS from smaps_rollup, which splits shared pages fairly between the
//! processes that map them).

use std::fs;

/// A process and its direct children, right now.
pub fn with_children(pids: &[u32]) -> Vec<u32> {
    let mut all = Vec::new();
    for &pid in pids {
        all.push(pid);
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let p = t.path().join("children");
            if let Ok(s) = fs::read_to_string(p) {
                all.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system) used so far by the processes.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let tck = clk_tck();
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|s| {
            // Fields after the command name, which may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): utime is field 14, stime 15.
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / tck)
        })
        .sum()
}

/// Proportional set size in KiB.
pub fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// This process's own CPU seconds (the load generator).
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(&[std::process::id()])
}
