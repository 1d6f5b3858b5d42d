//! The web console at `/`, in headless Chromium (Debian's, driven by
//! tests/browser/console.mjs through playwright-core) against a real server
//! with the RTMP, HTTP-FLV, HLS and WebRTC plugins and real ffmpeg
//! publishers and players: it loads without console errors, shows a stream
//! within 2 s of its publish, previews it (WHEP; LL-HLS and HTTP-FLV when
//! chosen), kicks a player, reloads a plugin, shows the API's config errors
//! at their keys, logs in with tokens (a read token gets no controls) and
//! fits a 390 px wide phone. Screenshots of every page are written under
//! the target dir (the path is printed).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rill_e2e::rtmp::Guard;
use rill_e2e::*;
use serde_json::{json, Value};

/// The browser stack, or why the test cannot run (a failure in CI, where
/// scripts/install-deps installs it).
fn browser_ready(test: &str) -> bool {
    rill_testsupport::require_tool(
        test,
        "the browser stack",
        browser::missing(&["playwright-core"]),
    )
}

/// Where this test's screenshots go: target/console-screenshots/<test>.
fn shots(test: &str) -> PathBuf {
    let dir = target_dir()
        .parent()
        .unwrap()
        .join("console-screenshots")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("screenshots: {}", dir.display());
    dir
}

/// console.mjs: one JSON command a line in, one JSON answer a line out.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    base: String,
    /// Where screenshots go (a failed command leaves `failure.png` there).
    shots: PathBuf,
}

impl Browser {
    fn start(http_port: u16, shots: &std::path::Path) -> Browser {
        let mut child = Command::new("node")
            .arg(browser::dir().join("console.mjs"))
            .env("CHROMIUM", browser::chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node console.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
            base: format!("http://127.0.0.1:{http_port}/"),
            shots: shots.to_owned(),
        }
    }

    /// Runs a command; its answer, or None with the reason printed.
    fn try_cmd(&mut self, c: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("console.mjs answered {line:?} ({e}) to {c}"));
        if v["ok"] == true {
            Ok(v)
        } else {
            Err(v["error"].as_str().unwrap_or("?").to_owned())
        }
    }

    fn cmd(&mut self, c: Value, rill: &Rill) -> Value {
        match self.try_cmd(c.clone()) {
            Ok(v) => v,
            Err(e) => {
                let shot = self.shots.join("failure.png");
                let _ = self.try_cmd(json!({"cmd": "shot", "path": shot}));
                panic!("{c}: {e}\n(screenshot {})\n{}", shot.display(), rill.log())
            }
        }
    }

    /// A fresh context (no cookies) at `route` (`#/plugins`).
    fn open(&mut self, route: &str, rill: &Rill) {
        let url = format!("{}{route}", self.base);
        self.cmd(json!({"cmd": "open", "url": url}), rill);
    }

    fn goto(&mut self, route: &str, rill: &Rill) {
        let url = format!("{}{route}", self.base);
        self.cmd(json!({"cmd": "goto", "url": url}), rill);
    }

    /// Waits for `selector` (with `text` in it, if not empty): its text and
    /// how long it took.
    fn wait(&mut self, selector: &str, text: &str, timeout_ms: u64, rill: &Rill) -> (String, u64) {
        let mut c = json!({"cmd": "wait", "selector": selector, "timeout": timeout_ms});
        if !text.is_empty() {
            c["text"] = json!(text);
        }
        let v = self.cmd(c, rill);
        (
            v["text"].as_str().unwrap_or("").to_owned(),
            v["ms"].as_u64().unwrap_or(0),
        )
    }

    /// Waits until no element matches `selector`.
    fn wait_gone(&mut self, selector: &str, timeout_ms: u64, rill: &Rill) {
        self.cmd(
            json!({"cmd": "wait", "selector": selector, "state": "detached", "timeout": timeout_ms}),
            rill,
        );
    }

    fn wait_js(&mut self, js: &str, timeout_ms: u64, rill: &Rill) -> Value {
        self.cmd(
            json!({"cmd": "waitFor", "js": js, "timeout": timeout_ms}),
            rill,
        )["value"]
            .clone()
    }

    fn eval(&mut self, js: &str, rill: &Rill) -> Value {
        self.cmd(json!({"cmd": "eval", "js": js}), rill)["value"].clone()
    }

    fn count(&mut self, selector: &str, rill: &Rill) -> u64 {
        self.cmd(json!({"cmd": "count", "selector": selector}), rill)["count"]
            .as_u64()
            .unwrap()
    }

    fn click(&mut self, selector: &str, rill: &Rill) {
        self.cmd(json!({"cmd": "click", "selector": selector}), rill);
    }

    fn fill(&mut self, selector: &str, value: &str, rill: &Rill) {
        self.cmd(
            json!({"cmd": "fill", "selector": selector, "value": value}),
            rill,
        );
    }

    fn shot(&mut self, name: &str, rill: &Rill) {
        let path = self.shots.join(format!("{name}.png"));
        self.cmd(json!({"cmd": "shot", "path": path}), rill);
    }

    fn viewport(&mut self, width: u32, height: u32, rill: &Rill) {
        self.cmd(
            json!({"cmd": "viewport", "width": width, "height": height}),
            rill,
        );
    }

    /// Console errors and page errors so far.
    fn errors(&mut self, rill: &Rill) -> Vec<Value> {
        self.cmd(json!({"cmd": "errors"}), rill)["errors"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// [`errors`](Self::errors) but Chromium's network log lines for the
    /// 422s of the config the test made bad on purpose (Chromium logs every
    /// 4xx answer to a fetch as an error; the page logs nothing itself).
    fn unexpected_errors(&mut self, rill: &Rill) -> Vec<Value> {
        self.errors(rill)
            .into_iter()
            .filter(|e| {
                !(e["text"].as_str().unwrap_or("").contains("status of 422")
                    && e["url"].as_str().unwrap_or("").contains("/api/v1/config"))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "close"}));
        let _ = self.stdin.flush();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with the RTMP, HTTP-FLV and HLS plugins and, with `webrtc`,
/// the WebRTC one; `http_yaml` goes into its `http:` section.
struct Server {
    rill: Rill,
    rtmp: u16,
    /// The admin token, when the server has one.
    token: Option<String>,
}

impl Server {
    fn start(webrtc: bool, http_yaml: &str, token: Option<&str>) -> Server {
        let (rtmp, udp) = (free_port(), free_port());
        let mut yaml = String::new();
        for l in http_yaml.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("  {l}\n"));
        }
        yaml.push_str(&format!(
            "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  hls:\n    window: 6\n"
        ));
        let mut plugins = vec![
            rtmp::plugin(),
            target_dir().join("librill_plugin_flv.so"),
            target_dir().join("librill_plugin_hls.so"),
        ];
        if webrtc {
            yaml.push_str(&format!("  webrtc:\n    udp_listen: 127.0.0.1:{udp}\n"));
            plugins.push(target_dir().join("librill_plugin_webrtc.so"));
        }
        let rill = Rill::start(&yaml, &plugins);
        assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
        let s = Server {
            rill,
            rtmp,
            token: token.map(str::to_owned),
        };
        let n = plugins.len();
        wait_for(Duration::from_secs(10), || {
            let v = s.get("/api/v1/plugins");
            (v.to_string().matches("\"running\"").count() >= n).then_some(())
        })
        .unwrap_or_else(|| panic!("plugins not all running:\n{}", s.rill.log()));
        s
    }

    /// A GET on the API (with the token, if any), as JSON.
    fn get(&self, path: &str) -> Value {
        let (st, _, body) =
            http_request(self.rill.http_port, "GET", path, self.token.as_deref(), "");
        assert_eq!(st, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `path` is published.
    fn wait_live(&self, path: &str) {
        wait_for(Duration::from_secs(10), || {
            let (st, _, body) = http_request(
                self.rill.http_port,
                "GET",
                &format!("/api/v1/streams/{path}"),
                self.token.as_deref(),
                "",
            );
            (st == 200 && body.contains("\"publishing\"")).then_some(())
        })
        .unwrap_or_else(|| panic!("{path} never published:\n{}", self.rill.log()));
    }

    /// ffmpeg publishing H.264 + AAC over RTMP for 60 s.
    fn publish(&self, path: &str) -> Guard {
        Guard(publish_lavfi(
            false,
            60,
            "libx264",
            "aac",
            &["-f", "flv"],
            &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp),
        ))
    }

    /// An ffmpeg RTMP player decoding to nowhere until its connection ends.
    fn player(&self, path: &str) -> Child {
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-rw_timeout",
                "20000000",
            ])
            .args(["-i", &format!("rtmp://127.0.0.1:{}/{path}", self.rtmp)])
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg player")
    }

    /// The id of `path`'s subscriber over `protocol`, once there is one.
    fn subscriber(&self, path: &str, protocol: &str) -> u64 {
        wait_for(Duration::from_secs(10), || {
            let v = self.get(&format!("/api/v1/streams/{path}/subscribers"));
            v["subscribers"]
                .as_array()?
                .iter()
                .find(|s| s["protocol"] == protocol)?["id"]
                .as_u64()
        })
        .unwrap_or_else(|| panic!("no {protocol} subscriber on {path}:\n{}", self.rill.log()))
    }
}

/// The page's document is no wider than its 390 px viewport.
fn assert_fits_a_phone(b: &mut Browser, page: &str, rill: &Rill) {
    let w = b.eval("document.scrollingElement.scrollWidth", rill);
    assert!(
        w.as_u64().unwrap() <= 390,
        "{page}: the document is {w} px wide at a 390 px viewport"
    );
}

/// `[data-key="…"]`, quoted for CSS.
fn key(k: &str) -> String {
    format!("[data-key=\"{k}\"]")
}

const VIDEO_TIME: &str = "(() => { const v = document.querySelector('video'); \
    return v && v.currentTime >= 3 ? { t: v.currentTime, protocol: v.dataset.protocol, w: v.videoWidth } : null; })()";

#[test]
fn console_shows_previews_kicks_reloads_and_edits_the_config() {
    let test = "console_shows_previews_kicks_reloads_and_edits_the_config";
    if !browser_ready(test) {
        return;
    }
    let dir = shots(test);
    let s = Server::start(true, "", None);
    let rill = &s.rill;
    let mut b = Browser::start(rill.http_port, &dir);

    // Loads (no login without a token, from this machine).
    b.open("", rill);
    b.wait("[data-page=dashboard]", "", 10_000, rill);
    assert_eq!(b.count("[data-role=admin]", rill), 1);

    // A stream appears within 2 s of being published.
    let _publisher = s.publish("live/console");
    s.wait_live("live/console");
    let (row, ms) = b.wait("[data-stream=\"live/console\"]", "rtmp", 2_000, rill);
    eprintln!("the stream showed {ms} ms after the API had it: {row}");
    // Its tracks follow with the first frames (the API may list the
    // stream a moment before it knows them).
    let (row, _) = b.wait(
        "[data-stream=\"live/console\"]",
        "H.264 320×240",
        5_000,
        rill,
    );
    assert!(row.contains("H.264 320×240"), "{row}");
    // Let the charts get a few samples.
    std::thread::sleep(Duration::from_secs(3));
    b.shot("dashboard", rill);

    // Its page: tracks, URLs, and a preview over WHEP that plays.
    b.click("[data-stream=\"live/console\"] a", rill);
    b.wait("[data-page=stream] [data-tracks]", "avc1", 5_000, rill);
    let played = b.wait_js(VIDEO_TIME, 20_000, rill);
    eprintln!("preview: {played}");
    assert_eq!(played["protocol"], "whep", "{played}");
    assert_eq!(played["w"], 320, "{played}");
    // Loaded, listed, previewed: not one console error so far.
    let errors = b.errors(rill);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/console", s.rtmp);
    b.wait(".urls", &rtmp_url, 2_000, rill);
    b.wait(".urls", "/live/console/whep", 2_000, rill);
    b.wait(".urls", "/live/console.m3u8", 2_000, rill);

    // Kicking an ffmpeg player from the page ends that ffmpeg.
    let mut player = s.player("live/console");
    let id = s.subscriber("live/console", "rtmp");
    b.wait(&format!("[data-sub=\"{id}\"]"), "rtmp", 5_000, rill);
    b.shot("stream", rill);
    b.click(&format!("[data-kick=\"{id}\"]"), rill);
    b.wait("[data-page=stream] .ok", "kicked", 5_000, rill);
    let ended = wait_for(Duration::from_secs(10), || player.try_wait().unwrap());
    if ended.is_none() {
        let _ = player.kill();
    }
    assert!(ended.is_some(), "the kicked ffmpeg player still runs");
    b.wait_gone(&format!("[data-sub=\"{id}\"]"), 5_000, rill);
    let subs = rill.get_json("/api/v1/streams/live/console/subscribers");
    assert!(
        !subs["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id),
        "{subs}"
    );

    // A reload from the plugins page bumps the generation. The new file
    // first comes in writable by others: the watcher refuses it (last
    // error shown), the operator fixes the mode, which no watcher event
    // reloads, and clicks Reload.
    let pdir = rill.plugins_dir();
    let lib = pdir.join("librill_plugin_flv.so");
    let tmp = pdir.join(".flv.tmp");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.extend_from_slice(b"console test: other bytes, same code");
    std::fs::write(&tmp, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::rename(&tmp, &lib).unwrap();
    b.goto("#/plugins", rill);
    let (err, _) = b.wait(
        "[data-plugin=flv] [data-last-error]",
        "writable by others",
        10_000,
        rill,
    );
    eprintln!("flv: {err}");
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        plugin_state(rill, "flv").unwrap()["generation"],
        1,
        "the chmod alone reloaded the plugin"
    );
    assert_eq!(
        b.eval(
            "document.querySelector('[data-plugin=flv] [data-generation]').textContent",
            rill
        ),
        "1"
    );
    b.click("[data-plugin=flv] [data-reload]", rill);
    b.wait("[data-plugin=flv] .ok", "generation 2", 10_000, rill);
    b.wait("[data-plugin=flv] [data-generation]", "2", 5_000, rill);
    assert_eq!(plugin_state(rill, "flv").unwrap()["generation"], 2);
    b.shot("plugins", rill);

    // A bad config edit: the API's error, at its key; nothing applied.
    b.goto("#/config", rill);
    let ring = key("publish.video_ring");
    b.wait(&ring, "", 5_000, rill);
    b.fill(&format!("{ring} input"), "100", rill);
    b.click("[data-validate]", rill);
    let (at_key, _) = b.wait(&format!("{ring} .field-error"), "power of two", 5_000, rill);
    let (st, _, body) = http_request(
        rill.http_port,
        "POST",
        "/api/v1/config/validate",
        None,
        "publish:\n  video_ring: 100\n",
    );
    assert_eq!(st, 422);
    let problem: Value = serde_json::from_str(&body).unwrap();
    let api_says = problem["errors"][0]["message"].as_str().unwrap();
    assert_eq!(problem["errors"][0]["path"], "publish.video_ring");
    assert_eq!(at_key, api_says);
    b.click("[data-apply]", rill);
    b.wait(&format!("{ring} .field-error"), api_says, 5_000, rill);
    b.wait("[data-config-problem]", "publish.video_ring", 5_000, rill);
    b.shot("config-error", rill);
    assert_eq!(
        rill.get_json("/api/v1/config")["publish"]["video_ring"],
        256
    );
    // Fixed, and another key changed: applied.
    b.fill(&format!("{ring} input"), "256", rill);
    b.fill(&format!("{} input", key("subscribe.max_lag")), "12s", rill);
    b.click("[data-apply]", rill);
    b.wait("[data-page=config] .ok", "Applied", 10_000, rill);
    assert_eq!(
        rill.get_json("/api/v1/config")["subscribe"]["max_lag"],
        "12s"
    );
    assert_eq!(b.count(".field-error", rill), 0);
    b.shot("config", rill);

    // At a phone's width, no page scrolls sideways.
    b.viewport(390, 844, rill);
    for (route, ready, name) in [
        ("#/", "[data-stream=\"live/console\"]", "dashboard"),
        (
            "#/streams/live/console",
            "[data-page=stream] [data-tracks]",
            "stream",
        ),
        ("#/plugins", "[data-plugin=flv]", "plugins"),
        ("#/config", "[data-key=\"publish.video_ring\"]", "config"),
    ] {
        b.goto(route, rill);
        b.wait(ready, "", 5_000, rill);
        std::thread::sleep(Duration::from_millis(600));
        assert_fits_a_phone(&mut b, name, rill);
        b.shot(&format!("phone-{name}"), rill);
    }

    let errors = b.unexpected_errors(rill);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn console_previews_over_ll_hls_and_http_flv_without_webrtc() {
    let test = "console_previews_over_ll_hls_and_http_flv_without_webrtc";
    if !browser_ready(test) {
        return;
    }
    let dir = shots(test);
    let s = Server::start(false, "", None);
    let rill = &s.rill;
    let _publisher = s.publish("live/pre");
    s.wait_live("live/pre");
    let mut b = Browser::start(rill.http_port, &dir);
    b.open("#/streams/live/pre", rill);
    // No WebRTC plugin: LL-HLS through the vendored hls.js comes first.
    let played = b.wait_js(VIDEO_TIME, 30_000, rill);
    eprintln!("preview: {played}");
    assert_eq!(played["protocol"], "hls", "{played}");
    b.shot("stream-hls", rill);
    // HTTP-FLV through the vendored mpegts.js, when chosen.
    b.cmd(
        json!({"cmd": "select", "selector": ".preview select", "value": "flv"}),
        rill,
    );
    b.wait("video[data-protocol=flv]", "", 5_000, rill);
    b.wait_js(
        "(() => { const v = document.querySelector('video'); return v && v.currentTime < 1; })()",
        5_000,
        rill,
    );
    let played = b.wait_js(VIDEO_TIME, 30_000, rill);
    eprintln!("preview: {played}");
    assert_eq!(played["protocol"], "flv", "{played}");
    b.shot("stream-flv", rill);
    let errors = b.errors(rill);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// The `rill_session` cookie's value in a Set-Cookie head, and the head line.
fn session_cookie(head: &str) -> Option<(String, String)> {
    let line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: rill_session="))?;
    let value = line["set-cookie: rill_session=".len()..]
        .split(';')
        .next()?
        .to_owned();
    Some((value, line.to_owned()))
}

fn with_cookie(port: u16, method: &str, path: &str, cookie: &str) -> (u16, String) {
    let c = format!("rill_session={cookie}");
    let mut headers = vec![("Host", "127.0.0.1"), ("Cookie", c.as_str())];
    if method == "POST" {
        headers.push(("Content-Type", "application/json"));
    }
    let (st, _, body) = http_request_with(port, method, path, &headers, "");
    (st, body)
}

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

#[test]
fn console_logs_in_with_a_token_and_a_read_token_gets_no_controls() {
    let test = "console_logs_in_with_a_token_and_a_read_token_gets_no_controls";
    if !browser_ready(test) {
        return;
    }
    let dir = shots(test);
    let s = Server::start(
        false,
        &format!("api_token: {ADMIN}\napi_tokens: [{{token: {READER}, role: read}}]"),
        Some(ADMIN),
    );
    let rill = &s.rill;
    let port = rill.http_port;

    // The API side of the login: a wrong token is refused; a right one
    // gets a random id in a HttpOnly, SameSite=Strict cookie, taken as
    // the token (same role); logging out ends it.
    let login = |token: &str| {
        http_request_with(
            port,
            "POST",
            "/api/v1/session",
            &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
            &json!({ "token": token }).to_string(),
        )
    };
    assert_eq!(login("wrong-token-0123456789").0, 401);
    let (st, head, _) = login(READER);
    assert_eq!(st, 200);
    let (cookie, line) = session_cookie(&head).expect("a session cookie");
    for part in ["httponly", "samesite=strict", "path=/api"] {
        assert!(line.contains(part), "{line}");
    }
    assert!(!line.contains("secure"), "Secure over plain HTTP: {line}");
    assert!(!cookie.contains(READER) && cookie.len() == 64, "{cookie}");
    assert_eq!(with_cookie(port, "GET", "/api/v1/streams", &cookie).0, 200);
    let (st, body) = with_cookie(port, "GET", "/api/v1/session", &cookie);
    assert!(st == 200 && body.contains("\"role\":\"read\""), "{body}");
    let (st, _) = with_cookie(port, "POST", "/api/v1/plugins/flv/reload", &cookie);
    assert_eq!(st, 403, "a read session may only read");
    assert_eq!(
        with_cookie(port, "DELETE", "/api/v1/session", &cookie).0,
        204
    );
    assert_eq!(with_cookie(port, "GET", "/api/v1/streams", &cookie).0, 401);
    assert_eq!(with_cookie(port, "GET", "/api/v1/streams", "0").0, 401);

    let _publisher = s.publish("live/ro");
    s.wait_live("live/ro");
    let mut player = s.player("live/ro");
    let id = s.subscriber("live/ro", "rtmp");

    // In the browser: a login page, then a read-only console.
    let mut b = Browser::start(port, &dir);
    b.open("", rill);
    b.wait("[data-page=login]", "", 10_000, rill);
    b.shot("login", rill);
    b.fill("#token", READER, rill);
    b.click("[data-page=login] button[type=submit]", rill);
    b.wait("[data-page=dashboard]", "", 10_000, rill);
    assert_eq!(b.count("[data-role=read]", rill), 1);
    let cookies = b.cmd(json!({"cmd": "cookies"}), rill)["cookies"].clone();
    let c = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rill_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert!(
        b.eval("document.cookie", rill) == "",
        "the page can read the cookie"
    );

    // The stream page shows the player, without a kick button.
    b.goto("#/streams/live/ro", rill);
    b.wait(&format!("[data-sub=\"{id}\"]"), "rtmp", 5_000, rill);
    assert_eq!(b.count("[data-kick]", rill), 0);
    assert_eq!(b.count("[data-kick-publisher]", rill), 0);
    b.shot("stream-read-only", rill);
    // Plugins without reload; the config without edit controls.
    b.goto("#/plugins", rill);
    b.wait("[data-plugin=rtmp]", "", 5_000, rill);
    assert_eq!(b.count("[data-reload]", rill), 0);
    b.goto("#/config", rill);
    b.wait(&key("publish.video_ring"), "", 5_000, rill);
    assert_eq!(b.count("[data-apply]", rill), 0);
    assert_eq!(b.count("[data-validate]", rill), 0);
    assert_eq!(
        b.count(
            "form.config input:not([disabled]), form.config textarea:not([disabled])",
            rill
        ),
        0
    );
    // Secrets stay redacted in the page.
    let page = b.eval("document.body.innerHTML", rill);
    let page = page.as_str().unwrap();
    assert!(!page.contains(ADMIN) && !page.contains(READER));
    b.shot("config-read-only", rill);
    b.click("[data-logout]", rill);
    b.wait("[data-page=login]", "", 5_000, rill);

    // An admin logs in: the controls are there, and applying the config
    // from the page (secrets redacted in it) keeps both tokens.
    b.fill("#token", ADMIN, rill);
    b.click("[data-page=login] button[type=submit]", rill);
    b.wait("[data-page=dashboard]", "", 10_000, rill);
    b.goto("#/streams/live/ro", rill);
    b.wait(&format!("[data-kick=\"{id}\"]"), "Kick", 5_000, rill);
    b.goto("#/config", rill);
    b.wait(&key("http.api_token"), "", 5_000, rill);
    assert_eq!(
        b.eval(
            "document.querySelector('[data-key=\"http.api_token\"] input').type",
            rill
        ),
        "password"
    );
    b.fill(
        &format!("{} input", key("subscribe.wait_timeout")),
        "11s",
        rill,
    );
    b.click("[data-apply]", rill);
    b.wait("[data-page=config] .ok", "Applied", 10_000, rill);
    for token in [ADMIN, READER] {
        let (st, _, body) = http_request(port, "GET", "/api/v1/config", Some(token), "");
        assert_eq!(st, 200, "{token} lost: {body}");
        assert!(body.contains("\"wait_timeout\":\"11s\""), "{body}");
        assert!(!body.contains(ADMIN) && !body.contains(READER), "{body}");
    }
    // The admin's session is still good after the apply.
    b.goto("#/plugins", rill);
    b.wait("[data-plugin=rtmp] [data-reload]", "", 5_000, rill);

    let errors = b.errors(rill);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = player.kill();
    let _ = player.wait();
}

#[test]
fn vendored_libraries_are_the_npm_packages() {
    let test = "vendored_libraries_are_the_npm_packages";
    let npm = browser::dir().join("node_modules");
    let missing = (!npm.join("htm").exists())
        .then(|| "tests/browser/node_modules (npm ci in tests/browser)".to_owned());
    if !rill_testsupport::require_tool(test, "the npm packages", missing) {
        return;
    }
    let vendor = workspace_dir().join("host/console/vendor");
    for (ours, theirs) in [
        (
            "htm-preact-standalone.module.js",
            "htm/preact/standalone.module.js",
        ),
        ("htm.LICENSE", "htm/LICENSE"),
        ("hls.min.mjs", "hls.js/dist/hls.min.mjs"),
        ("hls.js.LICENSE", "hls.js/LICENSE"),
        ("mpegts.js", "mpegts.js/dist/mpegts.js"),
        ("mpegts.js.LICENSE", "mpegts.js/LICENSE"),
    ] {
        let a = std::fs::read(vendor.join(ours)).unwrap();
        let b = std::fs::read(npm.join(theirs)).unwrap();
        assert!(a == b, "host/console/vendor/{ours} differs from {theirs}");
    }
    // And the console the server serves is that directory, built in.
    let s = Server::start(false, "", None);
    let (st, head, body) = http_get_bytes(s.rill.http_port, "/console/vendor/hls.min.mjs");
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(body == std::fs::read(vendor.join("hls.min.mjs")).unwrap());
    let (st, head, body) = http_get_bytes(s.rill.http_port, "/");
    assert_eq!(st, 200);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    let page = String::from_utf8(body).unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
}

#[test]
fn over_https_the_session_cookie_is_secure() {
    let certs = tempfile::tempdir().unwrap();
    let cert = make_cert(certs.path(), "a");
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let rill = Rill::start_with_env(
        &format!("  api_token: {ADMIN}\n"),
        &[],
        &[
            ("RILL_HTTP_TLS_LISTEN", &listen),
            ("RILL_HTTP_TLS_CERT", cert.cert.to_str().unwrap()),
            ("RILL_HTTP_TLS_KEY", cert.key.to_str().unwrap()),
        ],
    );
    assert!(
        wait_port(tls_port, Duration::from_secs(10)),
        "{}",
        rill.log()
    );
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "5", "--cacert"])
            .arg(&cert.cert)
            .args(args)
            .output()
            .expect("run curl (scripts/install-deps installs it)");
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let base = format!("https://127.0.0.1:{tls_port}");
    let page = curl(&[&format!("{base}/")]);
    assert!(page.starts_with("http/1.1 200"), "{page}");
    let body = json!({ "token": ADMIN }).to_string();
    let head = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body,
        &format!("{base}/api/v1/session"),
    ]);
    let (cookie, line) = session_cookie(&head).unwrap_or_else(|| panic!("{head}"));
    assert!(line.contains("; secure"), "{line}");
    let who = curl(&[
        "-H",
        &format!("cookie: rill_session={cookie}"),
        &format!("{base}/api/v1/session"),
    ]);
    assert!(who.contains("\"via\":\"session\""), "{who}");
}

#[test]
fn console_lists_and_plays_recordings() {
    let test = "console_lists_and_plays_recordings";
    if !browser_ready(test) {
        return;
    }
    let dir = shots(test);
    let rtmp = free_port();
    let server = Rill::start(
        &format!(
            "plugins:\n  rtmp:\n    listen: 127.0.0.1:{rtmp}\n  record:\n    rules:\n      \
             - match: ^live/rec$\n        format: fmp4\n        segment: 2s\n"
        ),
        &[
            rtmp::plugin(),
            target_dir().join("librill_plugin_record.so"),
        ],
    );
    let rill = &server;
    assert!(wait_port(rtmp, Duration::from_secs(10)), "{}", rill.log());
    let _publisher = Guard(publish_lavfi(
        false,
        30,
        "libx264",
        "aac",
        &["-f", "flv"],
        &format!("rtmp://127.0.0.1:{rtmp}/live/rec"),
    ));
    let id = wait_for(Duration::from_secs(20), || {
        let v = rill.get_json("/api/v1/recordings?stream=live/rec");
        v["recordings"]
            .as_array()?
            .iter()
            .find(|r| r["complete"] == true)?["id"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no complete recording:\n{}", rill.log()));

    let mut b = Browser::start(rill.http_port, &dir);
    b.open("", rill);
    b.wait("header.top nav", "Recordings", 10_000, rill);
    b.click("header.top nav a[href='#/recordings']", rill);
    b.wait(&format!("[data-rec=\"{id}\"]"), "live/rec", 10_000, rill);
    b.click(&format!("[data-play=\"{id}\"]"), rill);
    let played = b.wait_js(
        "(() => { const v = document.querySelector('video[data-recording]'); \
         return v && v.currentTime >= 1 ? { t: v.currentTime, w: v.videoWidth } : null; })()",
        15_000,
        rill,
    );
    eprintln!("recording {id}: {played}");
    assert_eq!(played["w"], 320, "{played}");
    b.shot("recordings", rill);
    b.viewport(390, 844, rill);
    std::thread::sleep(Duration::from_millis(600));
    assert_fits_a_phone(&mut b, "recordings", rill);
    b.shot("phone-recordings", rill);
    let errors = b.errors(rill);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
