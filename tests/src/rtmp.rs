//! Helpers for the RTMP plugin's end-to-end tests: a server with the plugin
//! on a free port, players that say which decoded stream is video and which
//! audio, a raw RTMP client for malformed input (its messages chunked and
//! encoded by `rill-rtmp`), and the non-ffmpeg clients (GStreamer, rtmpdump).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_rtmp::amf0::{self, Value};
use rill_rtmp::chunk::{self, MessageHeader};
use rill_rtmp::message::Command as RtmpCommand;

use crate::{free_port, target_dir, wait_for, wait_port, Decoded, Rill};

/// The built RTMP plugin (`cargo build --workspace` makes it).
pub fn plugin() -> PathBuf {
    let p = target_dir().join(format!(
        "{}rill_plugin_rtmp{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A running server with the RTMP plugin listening on `port`.
pub struct Server {
    pub rill: Rill,
    pub port: u16,
}

impl Server {
    /// Starts rill with `global` YAML (top-level sections such as
    /// `publish:`) and extra `plugins.rtmp` keys (`rtmp`, one `key: value`
    /// per line, unindented).
    pub fn start(global: &str, rtmp: &str) -> Server {
        let port = free_port();
        let mut yaml = format!("{global}plugins:\n  rtmp:\n    listen: 127.0.0.1:{port}\n");
        for line in rtmp.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str("    ");
            yaml.push_str(line.trim());
            yaml.push('\n');
        }
        let rill = Rill::start(&yaml, &[plugin()]);
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "RTMP port not up:\n{}",
            rill.log()
        );
        Server { rill, port }
    }

    /// `rtmp://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.port)
    }

    /// Waits until `path` is published with a video track that has frames
    /// (so a player starting now finds a keyframe).
    pub fn wait_live(&self, path: &str, timeout: Duration) {
        let live = wait_for(timeout, || {
            let v = self.rill.get_json("/api/v1/streams");
            let s = v["streams"]
                .as_array()?
                .iter()
                .find(|s| s["path"] == path)?
                .clone();
            let has_media = s["tracks"]
                .as_array()?
                .iter()
                .any(|t| t["kind"] != "data" && t["frames"].as_u64().unwrap_or(0) > 0);
            (s["publisher"].is_object() && has_media).then_some(())
        });
        assert!(
            live.is_some(),
            "{path} not live within {timeout:?}:\n{}",
            self.rill.log()
        );
    }

    /// Waits until a line of the server's log satisfies `pred` (log lines
    /// arrive through a pipe, a little after what they describe).
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        wait_for(timeout, || self.rill.log().lines().any(&pred).then_some(())).is_some()
    }

    /// The stream `path` from the API, if it exists.
    pub fn stream(&self, path: &str) -> Option<serde_json::Value> {
        let v = self.rill.get_json("/api/v1/streams");
        v["streams"]
            .as_array()?
            .iter()
            .find(|s| s["path"] == path)
            .cloned()
    }
}

/// Kills a child process on drop (publishers that outlive a failed assert).
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits for the process to end by itself (up to `timeout`), then
    /// returns its stderr.
    pub fn finish(mut self, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

/// ffmpeg 9's options to play Enhanced RTMP: the `fourCcList` it announces
/// in `connect` (without Opus in it, a server sends legacy FLV audio: AAC).
pub const ENHANCED_PLAY: [&str; 2] = ["-rtmp_enhanced_codecs", "hvc1,av01,vp09,Opus"];

/// Plays `url` with ffmpeg (`modern`: the static ffmpeg 9, announcing
/// Enhanced RTMP) for `secs` seconds of output, decoding everything; output
/// stream 0 is the first video stream, 1 the first audio stream (both must
/// exist).
pub fn play_av(modern: bool, url: &str, secs: u32) -> Decoded {
    let enhanced: &[&str] = if modern && url.starts_with("rtmp") {
        &ENHANCED_PLAY
    } else {
        &[]
    };
    let out = Command::new(crate::ffmpeg(modern))
        .args(["-hide_banner", "-loglevel", "error"])
        .args(enhanced)
        .args(["-rw_timeout", "20000000", "-i", url])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-t", &secs.to_string()])
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    parse_framemd5(
        &String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// [`play_av`] on a thread.
pub fn spawn_play_av(modern: bool, url: &str, secs: u32) -> JoinHandle<Decoded> {
    let url = url.to_owned();
    std::thread::spawn(move || play_av(modern, &url, secs))
}

/// `(stream, dts, pts)` per line of ffmpeg's framemd5 output.
pub fn parse_framemd5(text: &str, stderr: String) -> Decoded {
    let mut d = Decoded {
        stderr,
        ..Default::default()
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<_> = line.split(',').map(str::trim).collect();
        if f.len() >= 6 {
            if let (Ok(s), Ok(dts), Ok(pts)) = (f[0].parse(), f[1].parse(), f[2].parse()) {
                d.packets.push((s, dts, pts));
            }
        }
    }
    d
}

/// Describes a decoded run for assertion messages.
pub fn summary(d: &Decoded) -> String {
    format!(
        "video {} frames (monotonic {}), audio {} frames (monotonic {}); stderr: {}",
        d.count(0),
        d.monotonic(0),
        d.count(1),
        d.monotonic(1),
        d.stderr.trim()
    )
}

/// ffprobe's view of a file: (codec_type, codec_name, packets) per stream.
pub fn probe_file(path: &Path) -> Vec<(String, String, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
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
                        s["codec_type"].as_str().unwrap_or("").to_owned(),
                        s["codec_name"].as_str().unwrap_or("").to_owned(),
                        s["nb_read_packets"]
                            .as_str()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes a file fully with ffmpeg: (video frames, audio frames, stderr).
pub fn decode_file(path: &Path) -> (usize, usize, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let d = parse_framemd5(
        &String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into(),
    );
    (d.count(0), d.count(1), d.stderr)
}

/// A bare RTMP client: the simple handshake, then whatever bytes a test
/// wants to send (malformed input).
pub struct RawClient {
    pub sock: TcpStream,
}

impl RawClient {
    /// Connects and completes the handshake (C0 C1 → S0 S1 S2 → C2).
    pub fn handshake(port: u16) -> RawClient {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect RTMP port");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; 8]); // time, zero: the simple form
        c0c1.extend((0..1528u32).map(|i| (i.wrapping_mul(7919) >> 3) as u8));
        sock.write_all(&c0c1).unwrap();
        let mut s = vec![0u8; 1 + 1536 * 2];
        sock.read_exact(&mut s).expect("S0 S1 S2");
        assert_eq!(s[0], 3, "S0 version");
        // C2 echoes S1.
        sock.write_all(&s[1..1537]).unwrap();
        RawClient { sock }
    }

    /// Sends bytes (errors ignored: the server may have closed already).
    pub fn send(&mut self, data: &[u8]) {
        let _ = self.sock.write_all(data);
    }

    /// Reads at most `chunk` bytes every `tick` (a player on a slow link)
    /// until the server closes the connection or `timeout` passes. Returns
    /// (bytes read, whether it was closed).
    pub fn read_slowly(&mut self, chunk: usize, tick: Duration, timeout: Duration) -> (u64, bool) {
        let end = Instant::now() + timeout;
        self.sock.set_read_timeout(Some(tick)).unwrap();
        let mut buf = vec![0u8; chunk];
        let mut total = 0u64;
        while Instant::now() < end {
            let t = Instant::now();
            match self.sock.read(&mut buf) {
                Ok(0) => return (total, true),
                Ok(n) => total += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (total, true),
            }
            std::thread::sleep(tick.saturating_sub(t.elapsed()));
        }
        (total, false)
    }

    /// Whether the server closes the connection within `timeout` (reads and
    /// discards whatever it sends until EOF or a reset).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        crate::closed_within(&mut self.sock, timeout)
    }
}

/// An RTMP message as chunks: format 0 header on `csid` with `payload` cut
/// into 128-byte chunks (the default chunk size), by the crate's writer.
pub fn chunk(csid: u8, type_id: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = MessageHeader {
        csid: csid.into(),
        timestamp: 0,
        type_id,
        stream_id,
    };
    chunk::serialize_message(chunk::DEFAULT_CHUNK_SIZE, &header, &[payload])
        .expect("fits")
        .to_vec()
}

/// An AMF0 string (for hand-made, possibly malformed, bodies).
pub fn amf_str(s: &str) -> Vec<u8> {
    let mut b = Vec::new();
    amf0::encode(&Value::string(s), &mut b).expect("short string");
    b
}

/// An AMF0 number.
pub fn amf_num(n: f64) -> Vec<u8> {
    let mut b = Vec::new();
    amf0::encode(&Value::Number(n), &mut b).expect("number");
    b
}

/// A command message on `csid` and message stream `stream_id`.
fn command(
    csid: u8,
    stream_id: u32,
    name: &str,
    txn: f64,
    object: Value,
    args: Vec<Value>,
) -> Vec<u8> {
    let body = RtmpCommand::new(name, txn, object, args)
        .encode()
        .expect("encodes");
    chunk(csid, chunk::COMMAND_AMF0, stream_id, &body)
}

/// `connect` to app `live` (transaction 1).
pub fn connect_command() -> Vec<u8> {
    let object = Value::object([
        ("app", Value::string("live")),
        ("tcUrl", Value::string("rtmp://127.0.0.1/live")),
    ]);
    command(3, 0, "connect", 1.0, object, vec![])
}

/// `createStream` (transaction 2; the server's first stream is 1), then
/// `play` of `name` on stream 1.
pub fn play_commands(name: &str) -> Vec<u8> {
    let create = command(3, 0, "createStream", 2.0, Value::Null, vec![]);
    let play = command(8, 1, "play", 0.0, Value::Null, vec![Value::string(name)]);
    [create, play].concat()
}

/// A GStreamer element exists (`gst-inspect-1.0 <name>`).
pub fn gst_has(element: &str) -> bool {
    Command::new("gst-inspect-1.0")
        .arg(element)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `gst-launch-1.0 -e <pipeline>` (words split on whitespace), stdout and
/// stderr captured.
pub fn gst_launch(pipeline: &str) -> Command {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-e")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` for at most `timeout`, then stops it with SIGINT (so
/// gst-launch `-e` and rtmpdump finish their files) and, if still running
/// after 5 s, kills it. Returns (stdout, stderr).
pub fn run_for(mut cmd: Command, timeout: Duration) -> (String, String) {
    let mut child = Guard(cmd.spawn().expect("spawn"));
    let pid = child.0.id();
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut b = Vec::new();
                let _ = r.read_to_end(&mut b);
                s = String::from_utf8_lossy(&b).into_owned();
            }
            s
        })
    };
    let out = drain(
        child
            .0
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .0
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    );
    let exited = |c: &mut Guard, until: Instant| loop {
        if let Ok(Some(_)) = c.0.try_wait() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !exited(&mut child, Instant::now() + timeout) {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        exited(&mut child, Instant::now() + Duration::from_secs(5));
    }
    drop(child);
    (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// What an RTMP server answered to a publish or play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `NetStream.Publish.Start` / `NetStream.Play.Start`.
    Started,
    /// An error `onStatus` (or `_error`) with this code and description.
    Refused(String, String),
    /// The connection ended before an answer (a refused connection).
    Closed,
    /// Nothing within the time.
    Silent,
}

/// A TCP connection to `127.0.0.1:port` from the loopback address `from`
/// (any 127.x.y.z works on Linux without configuration).
pub fn connect_from(port: u16, from: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("address");
    s.bind(&local.into()).expect("bind the client address");
    let remote: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    s.connect(&remote.into()).expect("connect");
    s.into()
}

/// Connects from `from` as ffmpeg does (`app`, with an optional `?query`),
/// asks to publish (`publish`) or play `name` (which may carry a query),
/// and returns the answer, and whether the server then closed the
/// connection (within 5 s of a refusal). Driven by rill-rtmp's client.
pub fn ask(port: u16, from: &str, app: &str, name: &str, publish: bool) -> (Answer, bool) {
    let (answer, closed, _) = ask_keep(port, from, app, name, publish);
    (answer, closed)
}

/// As [`ask`], also returning the connection (kept open: a player that
/// stays).
pub fn ask_keep(
    port: u16,
    from: &str,
    app: &str,
    name: &str,
    publish: bool,
) -> (Answer, bool, TcpStream) {
    let mut sock = connect_from(port, from);
    let (answer, closed) = ask_on(&mut sock, port, app, name, publish);
    (answer, closed, sock)
}

fn ask_on(sock: &mut TcpStream, port: u16, app: &str, name: &str, publish: bool) -> (Answer, bool) {
    use rill_rtmp::{ClientEvent, ClientSession, ClientSettings, Connect, Limits};
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let connect = Connect::new(app, format!("rtmp://127.0.0.1:{port}/{app}"));
    let mut c = ClientSession::new(
        Limits::default(),
        ClientSettings::default(),
        connect,
        start.elapsed(),
    );
    let mut answer = None;
    let mut buf = vec![0u8; 64 << 10];
    let deadline = start + Duration::from_secs(15);
    while Instant::now() < deadline {
        while let Some(b) = c.poll_transmit() {
            if sock.write_all(&b).is_err() {
                return (answer.unwrap_or(Answer::Closed), true);
            }
        }
        let n = match sock.read(&mut buf) {
            Ok(0) => return (answer.unwrap_or(Answer::Closed), true),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if answer.is_some() && start.elapsed() > Duration::from_secs(5) {
                    break;
                }
                continue;
            }
            Err(_) => return (answer.unwrap_or(Answer::Closed), true),
        };
        if c.feed(start.elapsed(), &buf[..n]).is_err() {
            return (answer.unwrap_or(Answer::Closed), true);
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Connected { .. } => {
                    let r = if publish {
                        c.publish(start.elapsed(), name)
                    } else {
                        c.play(start.elapsed(), name)
                    };
                    r.expect("send the request");
                }
                ClientEvent::Publishing { .. } | ClientEvent::Playing { .. } => {
                    return (Answer::Started, false)
                }
                ClientEvent::Rejected {
                    code, description, ..
                } => answer = Some(Answer::Refused(code, description)),
                _ => {}
            }
        }
    }
    (answer.unwrap_or(Answer::Silent), false)
}
