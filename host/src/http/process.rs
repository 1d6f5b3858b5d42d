//! The server process's own CPU time and memory, for `GET /api/v1/server`
//! (the console draws them over time), from Linux's `/proc/self`.

/// Ticks per second of `/proc`'s CPU times: `USER_HZ`, 100 on every Linux
/// architecture Rill builds for (the kernel converts to it, whatever its
/// own tick rate).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds used by the process so far (all its threads).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat)
}

fn cpu_seconds_of(stat: &str) -> Option<f64> {
    // "pid (comm) state ..." where comm may hold spaces and parentheses:
    // fields count from after the last ')'. utime and stime are fields 14
    // and 15, so the 12th and 13th after the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident memory in bytes (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    rss_of(&status)
}

fn rss_of(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_strange_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(cpu_seconds_of(stat), Some(3.0));
    }

    #[test]
    fn parses_vmrss() {
        assert_eq!(rss_of("Name:\trill\nVmRSS:\t  2048 kB\n"), Some(2 << 20));
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes().unwrap() > 0);
        assert!(cpu_seconds().unwrap() >= 0.0);
    }
}
