//! Admission: who may publish and who may play, decided once, in the host,
//! for every protocol. Plugins hand over what their protocol carries (the
//! query, a user and password, a bearer token); the host applies `auth:`
//! (signed URLs, stream keys, users, IP rules, webhooks), `limits:`, and
//! counts and logs each refusal.
//!
//! - [`rules`]: the policy and its synchronous decision;
//! - [`token`]: signed URLs (HMAC-SHA256);
//! - [`hooks`]: the webhook client and notifications;
//! - [`limits`]: connections per address, checked at accept;
//! - [`keys`]: stream keys set through the API, kept in `state_dir`.

pub mod config;
pub mod hooks;
pub mod keys;
pub mod limits;
pub mod rules;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rill_abi::{RILL_ERR_BUSY, RILL_ERR_DENIED, RILL_ERR_TIMEOUT};

use crate::config::Config;
use crate::engine::Engine;
use config::{HooksConfig, LimitsConfig};
use hooks::{HookStats, HookUrl, Notifier};
pub use limits::{ConnLimiter, ConnSlot, GateSlot, ListenerGate};
pub use rules::Outcome;
use rules::Policy;

/// What a client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Publish,
    Play,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }

    /// From `RILL_ACTION_*`.
    pub fn from_abi(a: u32) -> Option<Action> {
        match a {
            rill_abi::RILL_ACTION_PUBLISH => Some(Action::Publish),
            rill_abi::RILL_ACTION_PLAY => Some(Action::Play),
            _ => None,
        }
    }
}

/// Credentials a protocol carried outside the query.
#[derive(Debug, Clone, Copy, Default)]
pub struct Creds<'a> {
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// The query parameters admission reads.
const PARAMS: [&str; 6] = ["token", "expires", "key", "user", "pass", "password"];

/// One admission question.
#[derive(Debug)]
pub struct Request<'a> {
    pub action: Action,
    /// `app/stream`.
    pub path: &'a str,
    /// Raw query, without `?`.
    pub query: &'a str,
    pub client: Option<IpAddr>,
    pub creds: Creds<'a>,
    /// The plugin's name (`rtmp`, `flv`, ...).
    pub protocol: &'a str,
    /// [`PARAMS`] from the query, percent-decoded.
    params: [Option<String>; 6],
}

impl<'a> Request<'a> {
    pub fn new(
        action: Action,
        path: &'a str,
        query: &'a str,
        client: Option<IpAddr>,
        creds: Creds<'a>,
        protocol: &'a str,
    ) -> Request<'a> {
        let mut params: [Option<String>; 6] = Default::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if let Some(i) = PARAMS.iter().position(|p| *p == k) {
                if params[i].is_none() {
                    params[i] = Some(percent_decode(v));
                }
            }
        }
        Request {
            action,
            path,
            query,
            client,
            creds,
            protocol,
            params,
        }
    }

    /// A query parameter admission reads (`token`, `expires`, `key`,
    /// `user`, `pass`, `password`).
    pub fn param(&self, name: &str) -> Option<&str> {
        let i = PARAMS.iter().position(|p| *p == name)?;
        self.params[i].as_deref()
    }
}

/// `%XX` and `+` decoded; invalid escapes kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A refusal: the status the plugin gets and a reason for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `RILL_ERR_UNAUTHORIZED`, `RILL_ERR_DENIED`, `RILL_ERR_BUSY` or
    /// `RILL_ERR_TIMEOUT`.
    pub status: i32,
    /// A short snake_case word (`bad_token`, `ip_denied`, ...).
    pub reason: &'static str,
}

impl Refusal {
    pub const fn new(status: i32, reason: &'static str) -> Refusal {
        Refusal { status, reason }
    }
}

/// A refused client is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered for log rate limiting at most.
const LOG_MEMORY: usize = 4096;

/// Everything admission needs, shared by the plugin host and the API.
pub struct Admission {
    policy: ArcSwap<Policy>,
    hooks: ArcSwap<HooksConfig>,
    limits: ArcSwap<LimitsConfig>,
    pub conns: Arc<ConnLimiter>,
    pub keys: keys::KeyStore,
    pub hook_stats: Arc<HookStats>,
    notifier: std::sync::OnceLock<Notifier>,
    in_flight: Arc<AtomicUsize>,
    tls: Arc<dyn Fn() -> Option<Arc<rustls::ClientConfig>> + Send + Sync>,
    /// Refusals by (action: `publish`, `play` or `connect`, protocol,
    /// reason).
    refusals: Mutex<BTreeMap<(&'static str, String, &'static str), u64>>,
    last_logged: Mutex<HashMap<IpAddr, Instant>>,
    node: String,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Admission {
    /// `tls` gives the client configuration for `https://` hooks.
    pub fn new(
        config: &Config,
        tls: impl Fn() -> Option<Arc<rustls::ClientConfig>> + Send + Sync + 'static,
    ) -> Arc<Admission> {
        let a = Admission {
            policy: ArcSwap::from_pointee(Policy::new(&config.auth)),
            hooks: ArcSwap::from_pointee(config.hooks.clone()),
            limits: ArcSwap::from_pointee(config.limits.clone()),
            conns: Arc::default(),
            keys: keys::KeyStore::open(&config.state_dir),
            hook_stats: Arc::default(),
            notifier: Default::default(),
            in_flight: Arc::default(),
            tls: Arc::new(tls),
            refusals: Mutex::default(),
            last_logged: Mutex::default(),
            node: node_name(),
        };
        a.conns.set(
            config.limits.max_connections_per_ip,
            config.limits.max_new_connections_per_ip_per_s,
        );
        Arc::new(a)
    }

    /// Takes a new config (SIGHUP, `PUT /api/v1/config`); sessions already
    /// admitted stay.
    pub fn update(&self, config: &Config) {
        self.policy.store(Arc::new(Policy::new(&config.auth)));
        self.hooks.store(Arc::new(config.hooks.clone()));
        self.limits.store(Arc::new(config.limits.clone()));
        self.conns.set(
            config.limits.max_connections_per_ip,
            config.limits.max_new_connections_per_ip_per_s,
        );
    }

    /// The synchronous checks (no limits: [`Admission::check_limits`]).
    pub fn decide(&self, req: &Request<'_>) -> Outcome {
        self.policy
            .load()
            .decide(req, |p| self.keys.get(p), unix_now())
    }

    /// Whether a refusal of `action` on `path` should ask for a user and
    /// password (HTTP Basic challenge).
    pub fn wants_user(&self, action: Action, path: &str) -> bool {
        self.policy.load().wants_user(action, path)
    }

    /// `limits:` for a new publisher or player of `path`.
    pub fn check_limits(&self, engine: &Engine, action: Action, path: &str) -> Result<(), Refusal> {
        let l = self.limits.load();
        match action {
            Action::Publish if l.max_streams > 0 => {
                let (n, this) = engine.publisher_count(path);
                if !this && n >= l.max_streams {
                    return Err(Refusal::new(RILL_ERR_BUSY, "max_streams"));
                }
            }
            Action::Play if l.max_players > 0 || l.max_players_per_stream > 0 => {
                let (this, all) = engine.subscriber_count(path);
                if l.max_players_per_stream > 0 && this >= l.max_players_per_stream {
                    return Err(Refusal::new(RILL_ERR_BUSY, "max_players_per_stream"));
                }
                if l.max_players > 0 && all >= l.max_players {
                    return Err(Refusal::new(RILL_ERR_BUSY, "max_players"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Asks the `on_publish` / `on_play` hook. Runs on a task of its own.
    pub async fn ask_hook(self: Arc<Self>, req: HookRequest) -> Result<(), Refusal> {
        let hooks = self.hooks.load_full();
        let url = match req.action {
            Action::Publish => hooks.on_publish.as_deref(),
            Action::Play => hooks.on_play.as_deref(),
        };
        let failed = |reason| {
            self.hook_stats.failed.fetch_add(1, Ordering::Relaxed);
            if hooks.fail_open {
                tracing::warn!(path = %req.path, "{} hook failed ({reason}); allowed (hooks.fail_open)", req.action.as_str());
                Ok(())
            } else {
                Err(Refusal::new(RILL_ERR_TIMEOUT, reason))
            }
        };
        let Some(Ok(url)) = url.map(HookUrl::parse) else {
            return failed("hook_unset");
        };
        // A bound on calls in flight: a hook that hangs cannot collect
        // unbounded tasks and sockets.
        let guard = InFlight::take(&self.in_flight, hooks.max_in_flight);
        let Some(_guard) = guard else {
            return failed("hook_overloaded");
        };
        let body = self.hook_body(&req, None);
        let tls = (self.tls)();
        match tokio::time::timeout(hooks.timeout, hooks::post(&url, &body, tls)).await {
            Ok(Ok(code)) if (200..300).contains(&code) => {
                self.hook_stats.allowed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Ok(_)) => {
                self.hook_stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::new(RILL_ERR_DENIED, "hook_refused"))
            }
            Ok(Err(e)) => {
                tracing::debug!("hook: {e}");
                failed("hook_failed")
            }
            Err(_) => failed("hook_timeout"),
        }
    }

    /// The JSON a hook gets.
    fn hook_body(&self, req: &HookRequest, event: Option<&str>) -> Vec<u8> {
        let (app, stream) = req.path.rsplit_once('/').unwrap_or(("", &req.path));
        let mut v = serde_json::json!({
            "action": event.unwrap_or(req.action.as_str()),
            "app": app,
            "stream": stream,
            "path": req.path,
            "protocol": req.protocol,
            "client": req.client,
            "query": req.query,
            "node": self.node,
        });
        if event.is_some() {
            v["server_time"] = serde_json::json!(unix_now());
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// A publisher or player of `req` stopped: tells `on_publish_done` /
    /// `on_play_done`, when set (queued, never blocking).
    pub fn done(&self, req: &HookRequest) {
        let hooks = self.hooks.load();
        let (url, event) = match req.action {
            Action::Publish => (hooks.on_publish_done.as_deref(), "publish_done"),
            Action::Play => (hooks.on_play_done.as_deref(), "play_done"),
        };
        let Some(Ok(url)) = url.map(HookUrl::parse) else {
            return;
        };
        let body = self.hook_body(req, Some(event));
        let notifier = self.notifier.get_or_init(|| {
            let tls = self.tls.clone();
            Notifier::start(hooks.queue, self.hook_stats.clone(), move || tls())
        });
        if !notifier.send(url, body, hooks.timeout, hooks.retries) {
            self.hook_stats
                .notify_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a `*_done` hook is set for `action` (sessions remember
    /// what to report only then).
    pub fn wants_done(&self, action: Action) -> bool {
        let h = self.hooks.load();
        match action {
            Action::Publish => h.on_publish_done.is_some(),
            Action::Play => h.on_play_done.is_some(),
        }
    }

    /// Counts a refusal, and logs it unless this client was logged in the
    /// last minute (a client retrying in a loop does not flood the log).
    pub fn refused(
        &self,
        action: Action,
        path: &str,
        protocol: &str,
        client: Option<IpAddr>,
        r: Refusal,
    ) {
        self.count_refusal(action.as_str(), path, protocol, client, r)
    }

    fn count_refusal(
        &self,
        action: &'static str,
        path: &str,
        protocol: &str,
        client: Option<IpAddr>,
        r: Refusal,
    ) {
        *self
            .refusals
            .lock()
            .entry((action, protocol.to_owned(), r.reason))
            .or_default() += 1;
        let now = Instant::now();
        let log = match client {
            None => true,
            Some(ip) => {
                let mut seen = self.last_logged.lock();
                if seen.len() >= LOG_MEMORY {
                    seen.retain(|_, t| now.duration_since(*t) < LOG_EVERY);
                }
                match seen.get(&ip) {
                    Some(t) if now.duration_since(*t) < LOG_EVERY => false,
                    _ => {
                        seen.insert(ip, now);
                        true
                    }
                }
            }
        };
        if log {
            let who = client.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
            tracing::info!(
                client = %who,
                protocol,
                "refused to {action} {path}: {} (further refusals of this client are not logged for a minute)",
                r.reason
            );
        }
    }

    /// Refusals so far, by (action, protocol, reason).
    pub fn refusal_counts(&self) -> Vec<(&'static str, String, &'static str, u64)> {
        self.refusals
            .lock()
            .iter()
            .map(|((a, p, r), n)| (*a, p.clone(), *r, *n))
            .collect()
    }

    /// Waits until `gate`'s listener may accept another connection
    /// (`limits.max_connections_per_listener`).
    pub async fn listener_room(&self, gate: &ListenerGate) {
        gate.room(|| {
            let share = crate::net::fds::listener_share();
            match self.limits.load().max_connections_per_listener {
                0 => share,
                n => n.min(share),
            }
        })
        .await
    }

    /// A connection from `peer` arrives at a listener of the host (`gate`
    /// counts that listener's connections; `None` for sessions that no
    /// listener accepted).
    pub fn accept(
        &self,
        peer: IpAddr,
        listener: &str,
        gate: Option<GateSlot>,
    ) -> Option<Option<ConnSlot>> {
        if self.conns.tracked() > LOG_MEMORY {
            self.conns.sweep();
        }
        match self.conns.admit(peer, Instant::now()) {
            Ok(slot) => Some(ConnSlot::new(slot, gate)),
            Err(over) => {
                let reason = match over {
                    limits::Over::Open => "max_connections_per_ip",
                    limits::Over::Rate => "max_new_connections_per_ip_per_s",
                };
                self.count_refusal(
                    "connect",
                    "-",
                    listener,
                    Some(peer),
                    Refusal::new(RILL_ERR_BUSY, reason),
                );
                None
            }
        }
    }
}

/// What a hook is told: an owned copy of the request.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub action: Action,
    pub path: String,
    pub query: String,
    pub protocol: String,
    pub client: Option<IpAddr>,
}

impl HookRequest {
    pub fn of(req: &Request<'_>) -> HookRequest {
        HookRequest {
            action: req.action,
            path: req.path.to_owned(),
            query: req.query.to_owned(),
            protocol: req.protocol.to_owned(),
            client: req.client,
        }
    }
}

/// One hook call in flight, counted.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(n: &Arc<AtomicUsize>, max: usize) -> Option<InFlight> {
        n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v < max).then_some(v + 1)
        })
        .ok()
        .map(|_| InFlight(n.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// This machine's name, for the hooks' `node` field.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rill".to_owned())
}

/// The client's address from a peer string (`ip:port`).
pub fn client_ip(peer: &str) -> Option<IpAddr> {
    peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// `Authorization: Bearer t` or `Basic b64(user:pass)` as credentials.
pub fn parse_authorization(
    value: &str,
) -> Option<(Option<String>, Option<String>, Option<String>)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some((None, None, Some(rest.trim().to_owned())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64_decode(rest.trim())?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some((Some(u.to_owned()), Some(p.to_owned()), None));
    }
    None
}

/// Standard base64 (with or without padding), else `None`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() > 4096 || s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let r = Request::new(
            Action::Play,
            "live/x",
            "a=1&key=k%2By+z&token=abc&token=second&pass=%zz",
            None,
            Creds::default(),
            "t",
        );
        assert_eq!(r.param("key"), Some("k+y z"));
        assert_eq!(r.param("token"), Some("abc"));
        assert_eq!(r.param("pass"), Some("%zz"));
        assert_eq!(r.param("expires"), None);
        assert_eq!(percent_decode("%41%4"), "A%4");
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(
            parse_authorization("Bearer abc"),
            Some((None, None, Some("abc".into())))
        );
        // "alice:open sesame"
        assert_eq!(
            parse_authorization("Basic YWxpY2U6b3BlbiBzZXNhbWU="),
            Some((Some("alice".into()), Some("open sesame".into()), None))
        );
        assert_eq!(parse_authorization("Basic !!"), None);
        assert_eq!(parse_authorization("Digest x"), None);
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    }
}
