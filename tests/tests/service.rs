//! Running as a system service: sd_notify states (READY, RELOADING, READY,
//! WATCHDOG, STOPPING) with a player connected through SIGHUP and SIGTERM,
//! `--check-config` on bad files, the Debian package (layout, modes, the
//! postinst run in a throwaway root) and the hardening of its systemd unit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_e2e::*;

fn rill_bin() -> std::path::PathBuf {
    target_dir().join("rill")
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_msg(
    msgs: &Arc<Mutex<Vec<String>>>,
    from: usize,
    want: &str,
    timeout: Duration,
) -> Option<usize> {
    wait_for(timeout, || {
        let m = msgs.lock().unwrap();
        m.iter()
            .skip(from)
            .position(|s| s.lines().any(|l| l == want))
            .map(|i| i + from)
    })
}

#[test]
fn sd_notify_reload_watchdog_and_orderly_stop() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let msgs = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let msgs = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    msgs.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
    }
    let pdir = dir.path().join("plugins");
    std::fs::create_dir_all(&pdir).unwrap();
    for p in [
        build_template("1.0.0", false),
        target_dir().join("librill_plugin_flv.so"),
    ] {
        std::fs::copy(&p, pdir.join(p.file_name().unwrap())).unwrap();
    }
    let (http, ingest, play) = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("rill.yaml");
    std::fs::write(
        &cfg,
        format!(
            "plugins_dir: {}\nstate_dir: {}\nhttp:\n  listen: 127.0.0.1:{http}\nplugins:\n  flvtcp:\n    ingest: 127.0.0.1:{ingest}\n    play: 127.0.0.1:{play}\n    stream: live/test\n",
            pdir.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    // WATCHDOG_PID must be the server's own pid: exec keeps the shell's.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"")
        .arg(rill_bin())
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = Arc::new(Mutex::new(String::new()));
    {
        let log = log.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            log.lock().unwrap().push_str(&s);
        });
    }
    let ready = wait_msg(&msgs, 0, "READY=1", Duration::from_secs(15)).expect("READY=1");
    assert!(
        wait_port(http, Duration::from_secs(1)),
        "READY=1 before the HTTP listener was up"
    );

    let mut pubr = publish_lavfi(
        false,
        30,
        "libx264",
        "aac",
        &["-f", "flv"],
        &format!("tcp://127.0.0.1:{ingest}"),
    );
    wait_for(Duration::from_secs(10), || {
        let (st, b) = http_get(http, "/api/v1/streams/live/test");
        (st == 200 && b.contains("publishing")).then_some(())
    })
    .expect("stream published");
    // A player, reading until the server ends the stream.
    let mut player = TcpStream::connect(("127.0.0.1", http)).unwrap();
    write!(player, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    player
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let received = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = player.read_to_end(&mut all);
        all
    });

    std::thread::sleep(Duration::from_millis(500));
    kill(pid, "HUP");
    let reloading =
        wait_msg(&msgs, ready + 1, "RELOADING=1", Duration::from_secs(5)).expect("RELOADING=1");
    assert!(
        msgs.lock().unwrap()[reloading].contains("MONOTONIC_USEC="),
        "RELOADING=1 needs MONOTONIC_USEC"
    );
    wait_msg(&msgs, reloading + 1, "READY=1", Duration::from_secs(5))
        .expect("READY=1 after the reload");
    std::thread::sleep(Duration::from_millis(600));
    let pings = msgs
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(pings >= 2, "{pings} WATCHDOG=1 pings");

    kill(pid, "TERM");
    let t = Instant::now();
    wait_msg(&msgs, 0, "STOPPING=1", Duration::from_secs(5)).expect("STOPPING=1");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        log.lock().unwrap()
    );
    let all = received.join().unwrap();
    assert!(all.len() > 10_000, "the player got {} bytes", all.len());
    // An orderly end of a chunked body: the last chunk.
    assert!(
        all.ends_with(b"0\r\n\r\n"),
        "the stream did not end cleanly: {:?}",
        &all[all.len().saturating_sub(16)..]
    );
    let _ = pubr.kill();
    let _ = pubr.wait();
}

fn check(yaml: &str, plugins_dir: Option<&Path>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rill.yaml");
    let pd = plugins_dir
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::write(&f, format!("plugins_dir: {}\n{yaml}", pd.display())).unwrap();
    let out = Command::new(rill_bin())
        .arg("--check-config")
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn check_config_names_the_key_of_each_problem() {
    let (ok, msg) = check("publish:\n  idle_timeout: 30s\n", None);
    assert!(ok, "{msg}");
    for (yaml, key) in [
        ("publish:\n  idel_timeout: 30s\n", "publish.idel_timeout"),
        ("dispatcher_workers: many\n", "dispatcher_workers"),
        ("http:\n  listen: nope\n", "http.listen"),
        (
            "subscribe:\n  wait_timeout: soon\n",
            "subscribe.wait_timeout",
        ),
    ] {
        let (ok, msg) = check(yaml, None);
        assert!(!ok, "{yaml} accepted");
        assert!(
            msg.contains(key),
            "{yaml}: message does not name {key}: {msg}"
        );
        assert!(msg.contains("line"), "{yaml}: no line number: {msg}");
    }
    let (ok, msg) = check("", Some(Path::new("/nonexistent/rill-plugins")));
    assert!(!ok);
    assert!(
        msg.contains("plugins_dir") && msg.contains("/nonexistent/rill-plugins"),
        "{msg}"
    );
}

#[test]
fn debian_package_layout_and_checks() {
    let root = workspace_dir();
    let target = target_dir().parent().unwrap().to_path_buf();
    let out = Command::new(root.join("scripts/build-deb"))
        .arg("--debug")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let list = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for path in [
        "./usr/bin/rill",
        "./usr/lib/rill/plugins/librill_plugin_rtmp.so",
        "./usr/lib/rill/plugins/librill_plugin_flv.so",
        "./etc/rill/rill.yaml",
        "./lib/systemd/system/rill.service",
    ] {
        assert!(
            list.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{list}"
        );
    }
    assert!(!list.contains("testkit"), "the test plugin must not ship");
    // The config (it may hold secrets) and its directory are closed to others.
    for (path, mode) in [
        ("./etc/rill/", "drwxr-x---"),
        ("./etc/rill/rill.yaml", "-rw-r-----"),
    ] {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} missing:\n{list}"));
        assert!(line.starts_with(mode), "{path} is not {mode}: {line}");
    }
    let conffiles = Command::new("dpkg-deb")
        .args(["-I", &deb, "conffiles"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&conffiles.stdout).trim(),
        "/etc/rill/rill.yaml"
    );
    let postinst = Command::new("dpkg-deb")
        .args(["-I", &deb, "postinst"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&postinst.stdout).contains("useradd --system"));

    // Installed into a throwaway root: the packaged config points at the
    // token the postinst generates.
    let tmp = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tmp.path())
        .status()
        .unwrap()
        .success());
    let config = std::fs::read_to_string(tmp.path().join("etc/rill/rill.yaml")).unwrap();
    assert!(
        config
            .lines()
            .any(|l| l == "  api_token_file: /etc/rill/api-token"),
        "the packaged config does not set http.api_token_file"
    );
    let token = run_postinst(&deb, tmp.path());

    // The packaged binary accepts the packaged config, with plugins_dir and
    // the token file pointed into that root.
    let rooted = tmp.path().join("rill-rooted.yaml");
    std::fs::write(
        &rooted,
        config.replace(
            "api_token_file: /etc/rill/api-token",
            &format!("api_token_file: {}", token.display()),
        ),
    )
    .unwrap();
    let out = Command::new(tmp.path().join("usr/bin/rill"))
        .arg("--check-config")
        .arg(&rooted)
        .env("RILL_PLUGINS_DIR", tmp.path().join("usr/lib/rill/plugins"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The packaged unit is packaging/rill.service (checked by
    // `unit_is_hardened`) and passes systemd-analyze verify (with ExecStart
    // at this build).
    let unit = std::fs::read_to_string(tmp.path().join("lib/systemd/system/rill.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(root.join("packaging/rill.service")).unwrap(),
        "the packaged unit differs from packaging/rill.service"
    );
    let check = tmp.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    std::fs::write(
        check.join("rill.service"),
        unit.replace(
            "/usr/bin/rill",
            &tmp.path().join("usr/bin/rill").display().to_string(),
        ),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(check.join("rill.service"))
        .output()
        .expect("systemd-analyze (package systemd)");
    assert!(
        v.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Runs the package's postinst (`configure`) in `root`, where the package
/// was extracted, through `DPKG_ROOT`, with the user and ownership commands
/// replaced by stubs that log their arguments (and, for chown, the file's
/// mode at that moment): it creates /etc/rill/api-token, 0640 and given to
/// group rill only while still private, sets /etc/rill and its config to
/// root:rill 0750/0640, and a second run keeps the token. Returns the
/// token file.
fn run_postinst(deb: &str, root: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let control = work.path().join("control");
    assert!(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(&control)
        .status()
        .unwrap()
        .success());
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = work.path().join("log");
    for (cmd, body) in [
        ("getent", "exit 0"),
        ("groupadd", "exit 0"),
        ("useradd", "exit 0"),
        ("dpkg-statoverride", "exit 1"),
        (
            "chown",
            "echo \"chown $1 $2 $(stat -c %a \"$2\")\" >> \"$STUB_LOG\"",
        ),
    ] {
        let f = bin.join(cmd);
        let body = if cmd == "chown" {
            body.to_string()
        } else {
            format!("echo \"{cmd} $*\" >> \"$STUB_LOG\"\n{body}")
        };
        std::fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = || {
        let out = Command::new("sh")
            .arg(control.join("postinst"))
            .arg("configure")
            .env("DPKG_ROOT", root)
            .env("PATH", &path)
            .env("STUB_LOG", &log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postinst: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    let said = run();
    assert!(
        said.contains("Rill: the management API token is in /etc/rill/api-token"),
        "postinst did not say where the token is: {said:?}"
    );
    let token_file = root.join("etc/rill/api-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        token.len() == 65
            && token.ends_with('\n')
            && token.trim_end().bytes().all(|b| b.is_ascii_hexdigit()),
        "not 32 random bytes in hex: {token:?}"
    );
    assert_eq!(mode(&token_file), 0o640, "token file mode");
    assert_eq!(mode(&root.join("etc/rill")), 0o750, "/etc/rill mode");
    assert_eq!(mode(&root.join("etc/rill/rill.yaml")), 0o640, "config mode");
    let calls = std::fs::read_to_string(&log).unwrap();
    let etc = root.join("etc/rill").display().to_string();
    for want in [
        format!("chown root:rill {etc} "),
        format!("chown root:rill {etc}/rill.yaml "),
        format!("chown rill:rill {}/var/lib/rill ", root.display()),
    ] {
        assert!(
            calls.lines().any(|l| l.starts_with(&want)),
            "no `{want}`:\n{calls}"
        );
    }
    // The token got its group while still 0600 (a temporary file renamed
    // into place): never readable by others, never seen half-written.
    let token_chown = calls
        .lines()
        .find(|l| l.starts_with(&format!("chown root:rill {etc}/api-token.")))
        .unwrap_or_else(|| panic!("the token was not given to group rill:\n{calls}"));
    assert!(
        token_chown.ends_with(" 600"),
        "the token was not private before chown: {token_chown}"
    );

    // Configured again (an upgrade): the token stays, the modes are set again.
    std::fs::set_permissions(
        root.join("etc/rill/rill.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let said = run();
    assert!(
        !said.contains("token"),
        "a second token announced: {said:?}"
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert_eq!(mode(&root.join("etc/rill/rill.yaml")), 0o640, "config mode");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("etc/rill"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "rill.yaml" && n != "api-token")
        .collect();
    assert!(leftovers.is_empty(), "left in /etc/rill: {leftovers:?}");
    token_file
}

/// The unit's sandbox: no capabilities, a system-call allow-list, and the
/// rest of systemd's hardening; `systemd-analyze security` rates its
/// exposure at most 1.5 (1.1 measured with systemd 252; 4.7 before the
/// hardening of issue 21). Each directive was checked against the running
/// server (plugins loaded and hot-swapped, RTMP, HTTP-FLV, HTTPS, reload,
/// watchdog, stop) in a systemd-nspawn container.
#[test]
fn unit_is_hardened() {
    let path = workspace_dir().join("packaging/rill.service");
    let unit = std::fs::read_to_string(&path).unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for want in [
        "Type=notify",
        "WatchdogSec=30s",
        "LimitNOFILE=262144",
        "User=rill",
        "NoNewPrivileges=yes",
        "UMask=0077",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateUsers=yes",
        "PrivateMounts=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RemoveIPC=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "ReadWritePaths=/var/lib/rill -/var/lib/rill/recordings",
        // Every default port is >= 1024: no capability at all.
        "CapabilityBoundingSet=",
    ] {
        assert!(directives.contains(&want), "unit lacks {want}");
    }
    assert!(
        !directives
            .iter()
            .any(|l| l.starts_with("AmbientCapabilities=")),
        "the unit grants capabilities"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for rill.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        score <= 1.5,
        "exposure level {score} > 1.5 (1.1 expected):\n{report}"
    );
}
