//! Harness for end-to-end tests: runs the real `rill` binary with a private
//! plugins dir and config on free loopback ports, and real clients against it
//! (ffmpeg publishes, ffprobe/ffmpeg play), reporting what the clients decoded.

pub mod browser;
pub mod hooks;
pub mod netns;
pub mod postgres;
pub mod redis;
pub mod relay;
pub mod rtmp;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtmp::parse_framemd5;

/// The workspace's target directory (tests run from target/<profile>/deps).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A loopback port nobody uses right now (TCP and UDP), chosen below the
/// kernel's ephemeral range: a port the kernel handed out for `bind(0)` is
/// also what it hands the next outgoing connection of any test (ffmpeg's,
/// curl's), which then takes it before the server binds it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    const LOW: u16 = 12_000;
    const SPAN: u16 = 20_000; // up to 31999, below 32768
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        let port = LOW + (h.finish() % u64::from(SPAN)) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// Two free neighbouring ports, `p` and `p + 1` (as [`free_port`]): an
/// RTP/RTCP pair.
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// Polls `f` every 50 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    wait_for(timeout, || TcpStream::connect(("127.0.0.1", port)).ok()).is_some()
}

/// A running `rill` with its own directory, killed on drop. Its log (stderr
/// and stdout) is kept and printed when a test fails.
pub struct Rill {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub http_port: u16,
    pub log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    /// A program that runs the server (its command line as arguments).
    wrapper: Option<PathBuf>,
}

/// Starts the server binary on `cfg` (through `wrapper` if given), its
/// output appended to `log`.
fn spawn_rill(
    cfg: &Path,
    env: &[(String, String)],
    log: &Arc<Mutex<String>>,
    wrapper: Option<&Path>,
) -> Child {
    let bin = target_dir().join("rill");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --workspace` first",
        bin.display()
    );
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut child = cmd
        .arg("--config")
        .arg(cfg)
        .env(
            "RUST_LOG",
            std::env::var("RILL_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    child
}

impl Rill {
    /// Starts rill with `extra_yaml` appended to a config that sets the HTTP
    /// port and the plugins dir (`<dir>/plugins`, filled from `plugins`).
    pub fn start(extra_yaml: &str, plugins: &[PathBuf]) -> Rill {
        Self::start_with_env(extra_yaml, plugins, &[])
    }

    /// `start` with extra environment variables for the server.
    pub fn start_with_env(extra_yaml: &str, plugins: &[PathBuf], env: &[(&str, &str)]) -> Rill {
        Self::start_full(extra_yaml, plugins, env, None)
    }

    /// `start`, the server run by `wrapper` (given the server's command
    /// line as arguments: to set up a mount namespace, say).
    pub fn start_wrapped(extra_yaml: &str, plugins: &[PathBuf], wrapper: &Path) -> Rill {
        Self::start_full(extra_yaml, plugins, &[], Some(wrapper))
    }

    fn start_full(
        extra_yaml: &str,
        plugins: &[PathBuf],
        env: &[(&str, &str)],
        wrapper: Option<&Path>,
    ) -> Rill {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("plugins");
        std::fs::create_dir_all(&pdir).unwrap();
        for p in plugins {
            std::fs::copy(p, pdir.join(p.file_name().unwrap())).unwrap();
        }
        // RILL_HTTP_LISTEN in `env` moves the server (e.g. to 0.0.0.0).
        let http_port = env
            .iter()
            .find(|(k, _)| *k == "RILL_HTTP_LISTEN")
            .and_then(|(_, v)| v.rsplit(':').next()?.parse().ok())
            .unwrap_or_else(free_port);
        let config = format!(
            "plugins_dir: {}\nstate_dir: {}\nhttp:\n  listen: 127.0.0.1:{http_port}\n{extra_yaml}",
            pdir.display(),
            dir.path().join("state").display()
        );
        let cfg = dir.path().join("rill.yaml");
        std::fs::write(&cfg, config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log = Arc::new(Mutex::new(String::new()));
        let child = spawn_rill(&cfg, &env, &log, wrapper);
        let r = Rill {
            child,
            dir,
            http_port,
            log,
            env,
            wrapper: wrapper.map(Path::to_path_buf),
        };
        assert!(
            wait_port(http_port, Duration::from_secs(10)),
            "rill did not start:\n{}",
            r.log()
        );
        r
    }

    /// Kills the server with SIGKILL (no shutdown at all) and starts it
    /// again on the same config and state; the log goes on.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log
            .lock()
            .unwrap()
            .push_str("---- killed (SIGKILL), restarting ----\n");
        self.child = spawn_rill(
            &self.dir.path().join("rill.yaml"),
            &self.env,
            &self.log,
            self.wrapper.as_deref(),
        );
        assert!(
            wait_port(self.http_port, Duration::from_secs(10)),
            "rill did not restart:\n{}",
            self.log()
        );
    }

    /// The server's resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// GET on the HTTP API; returns (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
    }

    /// GET a JSON document from the HTTP API.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

impl Drop for Rill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- rill log ----\n{}", self.log());
        }
    }
}

/// A minimal HTTP/1.1 GET (no keep-alive) for API checks.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, head, body) = http_request(port, "GET", path, None, "");
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

/// One HTTP/1.1 request (`Connection: close`), optionally with a bearer
/// token; a POST, PUT or PATCH says its body is YAML (as the API asks).
/// Returns (status, lower-cased head, body as sent).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Host", "127.0.0.1")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        headers.push(("Content-Type", "application/yaml"));
    }
    http_request_with(port, method, path, &headers, body)
}

/// One HTTP/1.1 request (`Connection: close`) with exactly these headers
/// (and Content-Length); returns (status, lower-cased head, body as sent).
pub fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A GET (`Connection: close`) whose body may be binary: (status,
/// lower-cased head, body bytes).
pub fn http_get_bytes(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    http_get_bytes_with(port, path, &[])
}

/// [`http_get_bytes`] with more request headers.
pub fn http_get_bytes_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n").unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    (status, head, resp[end..].to_vec())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some(i) = s.find("\r\n") {
        let n = usize::from_str_radix(s[..i].trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&s[i + 2..i + 2 + n]);
        s = &s[i + 2 + n + 2..];
    }
    out
}

/// Which ffmpeg: Debian's (`ffmpeg`) or the static modern one with Enhanced
/// RTMP (`target/tools/ffmpeg9`, fetched by scripts/install-deps).
pub fn ffmpeg(modern: bool) -> PathBuf {
    if modern {
        let p = workspace_dir().join("target/tools/ffmpeg9");
        assert!(
            p.exists(),
            "{} missing: run scripts/install-deps",
            p.display()
        );
        p
    } else {
        PathBuf::from("ffmpeg")
    }
}

/// [`publish_lavfi`] of H.264 + AAC as FLV over TCP to the C template's
/// ingest port, for `secs` seconds.
pub fn publish_flvtcp(ingest: u16, secs: u32) -> Child {
    publish_lavfi(
        false,
        secs,
        "libx264",
        "aac",
        &["-f", "flv"],
        &format!("tcp://127.0.0.1:{ingest}"),
    )
}

/// Waits (10 s at most) until the API shows `path` (`live/test`) publishing.
pub fn wait_publishing(rill: &Rill, path: &str) {
    wait_for(Duration::from_secs(10), || {
        let (st, body) = rill.get(&format!("/api/v1/streams/{path}"));
        (st == 200 && body.contains("\"publishing\"")).then_some(())
    })
    .unwrap_or_else(|| panic!("{path} never published:\n{}", rill.log()));
}

/// An ffmpeg publishing a test pattern + tone, paced in real time (`-re`),
/// for `secs` seconds. `vcodec`/`acodec` are ffmpeg encoder names; `extra`
/// goes before the output (e.g. `["-f", "flv"]`).
pub fn publish_lavfi(
    modern: bool,
    secs: u32,
    vcodec: &str,
    acodec: &str,
    extra: &[&str],
    url: &str,
) -> Child {
    let mut cmd = Command::new(ffmpeg(modern));
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=320x240:rate=25:duration={secs}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        ]);
    if !vcodec.is_empty() {
        cmd.args(["-c:v", vcodec]);
        if vcodec == "libx264" {
            cmd.args([
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
            ]);
        }
        if vcodec == "libx265" {
            cmd.args([
                "-preset",
                "ultrafast",
                "-x265-params",
                "keyint=25:log-level=error",
                "-pix_fmt",
                "yuv420p",
            ]);
        }
        if vcodec == "libsvtav1" {
            cmd.args(["-preset", "12", "-g", "25", "-pix_fmt", "yuv420p"]);
        }
    } else {
        cmd.arg("-vn");
    }
    if !acodec.is_empty() {
        cmd.args(["-c:a", acodec, "-b:a", "64k"]);
    } else {
        cmd.arg("-an");
    }
    cmd.args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn ffmpeg")
}

/// What a real client decoded: per stream, the codec and the frames' timestamps.
#[derive(Debug, Default, Clone)]
pub struct Decoded {
    /// (stream index, dts, pts) per packet, in file order.
    pub packets: Vec<(usize, i64, i64)>,
    pub stderr: String,
}

impl Decoded {
    pub fn count(&self, stream: usize) -> usize {
        self.packets.iter().filter(|p| p.0 == stream).count()
    }
    /// Whether each stream's dts strictly increase.
    pub fn monotonic(&self, stream: usize) -> bool {
        let d: Vec<_> = self
            .packets
            .iter()
            .filter(|p| p.0 == stream)
            .map(|p| p.1)
            .collect();
        d.windows(2).all(|w| w[1] > w[0])
    }
}

/// ffmpeg's I/O timeout option for `url` (µs): RTSP's demuxer calls it
/// `-timeout`, the other protocols `-rw_timeout`.
fn io_timeout(url: &str) -> &'static str {
    if url.starts_with("rtsp://") {
        "-timeout"
    } else {
        "-rw_timeout"
    }
}

/// Plays `url` with ffmpeg for up to `secs` seconds of media, decoding
/// everything (`-f framemd5` prints a line per decoded frame).
pub fn play(modern: bool, url: &str, secs: u32, input_opts: &[&str]) -> Decoded {
    let out = Command::new(ffmpeg(modern))
        .args(["-hide_banner", "-loglevel", "error"])
        .args([io_timeout(url), "15000000"])
        .args(input_opts)
        .args(["-i", url, "-t", &secs.to_string(), "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    parse_framemd5(
        &String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// ffprobe's view of `url`: (codec_type, codec_name) per stream.
pub fn probe(url: &str, input_opts: &[&str]) -> Vec<(String, String)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", io_timeout(url), "15000000"])
        .args(input_opts)
        .args(["-show_streams", "-of", "json", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["codec_type"].as_str().unwrap_or("").to_string(),
                        s["codec_name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the C plugin template with its own Makefile in a private dir
/// (tests run in parallel), with `VERSION` set; `asan` builds the sanitized
/// variant. Returns the library's path.
pub fn build_template(version: &str, asan: bool) -> PathBuf {
    build_c_plugin(
        &workspace_dir().join("plugin-template"),
        &workspace_dir().join("include"),
        version,
        asan,
    )
}

/// The C template exactly as released with ABI 1.0, built against the 1.0
/// header (tests/fixtures/abi-1.0): what an old plugin binary is.
pub fn build_template_abi_1_0(version: &str) -> PathBuf {
    let fixture = workspace_dir().join("tests/fixtures/abi-1.0");
    build_c_plugin(&fixture, &fixture, version, false)
}

/// Builds `flvtcp.c` with the `Makefile` of `src` against `include/rill.h`.
fn build_c_plugin(src: &Path, include: &Path, version: &str, asan: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rill-tpl-{}-{version}-{asan}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["flvtcp.c", "Makefile"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let target = if asan { "asan" } else { "all" };
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&dir)
        .arg(target)
        .arg(format!("VERSION={version}"))
        .arg(format!("INCLUDE={}", include.display()))
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(if asan {
        "libflvtcp-asan.so"
    } else {
        "libflvtcp.so"
    })
}

/// Installs a plugin the way operators are told to: copy to a temporary
/// name in the plugins dir, then rename over the final name.
pub fn install_plugin(lib: &Path, plugins_dir: &Path, name: &str) {
    let tmp = plugins_dir.join(format!(".{name}.tmp"));
    std::fs::copy(lib, &tmp).unwrap();
    std::fs::rename(&tmp, plugins_dir.join(name)).unwrap();
}

/// A new build of plugin `lib` for the loader of `rill`: the library's
/// bytes plus `marker` (another hash, the same code), renamed over the
/// installed file.
pub fn install_new_build(rill: &Rill, lib: &Path, marker: &str) {
    let mut bytes = std::fs::read(lib).unwrap();
    bytes.extend_from_slice(marker.as_bytes());
    let dir = rill.plugins_dir();
    let name = lib.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The plugin named `name` in `/api/v1/plugins`.
pub fn plugin_state(rill: &Rill, name: &str) -> Option<serde_json::Value> {
    let v = rill.get_json("/api/v1/plugins");
    v["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// Reads a TCP stream in a thread, counting FLV tags by type and noting when
/// each arrived, until `stop` or EOF.
pub struct FlvReader {
    pub tags: Arc<Mutex<Vec<(u8, u32, Instant)>>>,
    pub handle: std::thread::JoinHandle<()>,
}

impl FlvReader {
    pub fn connect(port: u16) -> FlvReader {
        let tags = Arc::new(Mutex::new(Vec::new()));
        let t = tags.clone();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect play port");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let handle = std::thread::spawn(move || {
            let mut hdr = [0u8; 13];
            if s.read_exact(&mut hdr).is_err() || &hdr[..3] != b"FLV" {
                return;
            }
            loop {
                let mut th = [0u8; 11];
                if s.read_exact(&mut th).is_err() {
                    return;
                }
                let size = u32::from_be_bytes([0, th[1], th[2], th[3]]) as usize;
                let ts = u32::from_be_bytes([th[7], th[4], th[5], th[6]]);
                let mut body = vec![0u8; size + 4];
                if s.read_exact(&mut body).is_err() {
                    return;
                }
                t.lock().unwrap().push((th[0], ts, Instant::now()));
            }
        });
        FlvReader { tags, handle }
    }

    pub fn video_count(&self) -> usize {
        self.tags
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.0 == 9)
            .count()
    }

    /// The longest wall-clock gap between consecutive video tags.
    pub fn max_video_gap(&self) -> Duration {
        let tags = self.tags.lock().unwrap();
        let v: Vec<_> = tags.iter().filter(|t| t.0 == 9).map(|t| t.2).collect();
        v.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost (rcgen), as PEM
/// files in a test's directory and as DER: the server's certificate and,
/// being self-signed, the CA a client trusts.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

/// Makes a [`TestCert`] named `name` in `dir`.
pub fn make_cert(dir: &Path, name: &str) -> TestCert {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    TestCert {
        cert,
        key,
        der: c.cert.der().clone(),
        key_der: c.signing_key.serialize_der(),
    }
}

/// A signed-URL query (`expires=E&token=T`) for `action` (`publish` or
/// `play`) on `path` until Unix time `expires`, computed from the documented
/// format (HMAC-SHA256 of `action:path:expires`, lower-case hex), as a web
/// backend would.
pub fn signed_query(secret: &str, action: &str, path: &str, expires: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{action}:{path}:{expires}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("expires={expires}&token={hex}")
}

/// Unix time now plus `secs`.
pub fn unix_in(secs: i64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now + secs) as u64
}

/// Whether the server closes `sock` within `timeout`: reads and discards
/// whatever it sends until EOF or a reset.
pub fn closed_within(sock: &mut TcpStream, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < end {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn framemd5_lines_parse() {
        let d = super::parse_framemd5(
            "#tb 0: 1/25\n0,          0,          0,        1,   115200, 3a4e\n1,  0, 0, 1024, 4096, ff\n0, 1, 1, 1, 115200, 00\n",
            String::new(),
        );
        assert_eq!(d.count(0), 2);
        assert!(d.monotonic(0));
    }
}
