//! Rill's configuration, loaded from `rill.yaml`.
//!
//! Every setting has a default: an empty file (or no file at all) gives a
//! working configuration. Unknown keys and bad values are refused with the
//! key's dotted path, what was expected and, when the YAML parser knows it,
//! the line and column:
//!
//! ```text
//! publish.idle_timeout: invalid duration "abc": expected a duration like "10s" (line 3, column 17)
//! ```
//!
//! Durations are humantime strings (`"10s"`, `"500ms"`, `"1m 30s"`); for the
//! timeouts documented as such, `"0s"` means "disabled".
//!
//! Single keys can be overridden from the environment with
//! `RILL_<SECTION>_<KEY>` (upper-cased dotted path, dots replaced by `_`), e.g.
//! `RILL_HTTP_LISTEN`, `RILL_PLUGINS_DIR`, `RILL_PUBLISH_IDLE_TIMEOUT`; see
//! [`Config::apply_env`].
//!
//! Each plugin's own section (`plugins.<name>`) is kept as raw YAML and handed
//! to the plugin as text ([`Config::plugin_section_yaml`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "RILL_";

/// Allowed range of the ring sizes (`publish.*_ring`), which must also be
/// powers of two.
pub const RING_RANGE: std::ops::RangeInclusive<usize> = 16..=65536;

/// Allowed range of `subscribe.queue_frames`.
pub const QUEUE_RANGE: std::ops::RangeInclusive<usize> = 16..=65536;

/// Upper bound of `dispatcher_workers` (0 means one per core).
pub const MAX_DISPATCHER_WORKERS: usize = 1024;

/// What [`Config::redacted`] shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Largest `http.api_token_file`.
const MAX_TOKEN_FILE: u64 = 4096;

/// Reads a file that the config names (a certificate, a key, a token),
/// refusing anything but a regular file of at most `max` bytes: a device
/// (`/dev/zero`) or a FIFO named in a config sent through the API must
/// neither grow memory nor hang the caller. Blocking: call it off the
/// event loop.
pub fn read_named_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes, unless
    // non-blocking; the type check below then refuses it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > max {
        return Err(format!(
            "{} is {} bytes, more than the {max} allowed",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read: read one byte more
    // than allowed at most.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} is more than {max} bytes", path.display()));
    }
    Ok(bytes)
}

/// Whether a plugin config key holds a secret (shown redacted by the API):
/// passphrases, passwords, secrets, tokens and stream keys.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "passphrase", "token", "credential"]
        .iter()
        .any(|w| k.contains(w))
        || k == "key"
        || k == "keys"
        || k.ends_with("_key")
        || k.ends_with("_keys")
}

/// Replaces, in a plugin section, every value under a secret key.
fn redact_value(v: &mut Value) {
    match v {
        Value::Mapping(map) => {
            for (k, child) in map.iter_mut() {
                if k.as_str().is_some_and(is_secret_key) && !child.is_null() {
                    *child = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(child);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact_value),
        Value::Tagged(t) => redact_value(&mut t.value),
        _ => {}
    }
}

/// In a plugin section sent back, restores every secret that is missing
/// or [`REDACTED`] from the running section `old`.
fn keep_secret_values(new: &mut Value, old: &Value) {
    let (Value::Mapping(old_map), true) = (old, new.is_null() || new.is_mapping()) else {
        return;
    };
    if new.is_null() {
        *new = Value::Mapping(Default::default());
    }
    let Value::Mapping(new_map) = new else {
        return;
    };
    for (k, old_child) in old_map {
        let secret = k.as_str().is_some_and(is_secret_key);
        match new_map.get_mut(k) {
            Some(n) if secret && (n.is_null() || n.as_str() == Some(REDACTED)) => {
                *n = old_child.clone()
            }
            Some(n) if !secret => keep_secret_values(n, old_child),
            Some(_) => {}
            None if secret => {
                new_map.insert(k.clone(), old_child.clone());
            }
            None => {}
        }
    }
}

/// The dotted key of a [`REDACTED`] value left in a plugin section.
fn find_placeholder(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s == REDACTED => Some(String::new()),
        Value::Mapping(map) => map.iter().find_map(|(k, child)| {
            let rest = find_placeholder(child)?;
            let k = k.as_str().unwrap_or("?");
            Some(if rest.is_empty() {
                k.to_owned()
            } else {
                format!("{k}.{rest}")
            })
        }),
        Value::Sequence(items) => items.iter().enumerate().find_map(|(i, child)| {
            let rest = find_placeholder(child)?;
            Some(if rest.is_empty() {
                i.to_string()
            } else {
                format!("{i}.{rest}")
            })
        }),
        Value::Tagged(t) => find_placeholder(&t.value),
        _ => None,
    }
}

/// The whole configuration (`rill.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory watched for plugin libraries. Default `plugins`.
    pub plugins_dir: PathBuf,
    /// Directory for the server's own state (private plugin copies, ...).
    /// Default `state`.
    pub state_dir: PathBuf,
    /// How long an old plugin generation keeps serving the sessions it had
    /// open after a reload or removal; 0 = until they end by themselves (a
    /// reload never cuts a live stream). Default 0s.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// How long a shutdown waits for sessions to end. Default 10s.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Number of dispatcher worker threads; 0 = one per core. Default 0.
    pub dispatcher_workers: usize,
    /// Logging.
    #[serde(deserialize_with = "section")]
    pub log: LogConfig,
    /// HTTP listener (management API, HTTP-based protocols).
    #[serde(deserialize_with = "section")]
    pub http: HttpConfig,
    /// Publisher-side stream settings.
    #[serde(deserialize_with = "section")]
    pub publish: PublishConfig,
    /// Subscriber-side stream settings.
    #[serde(deserialize_with = "section")]
    pub subscribe: SubscribeConfig,
    /// TLS for plugins' outbound connections (RTMPS push, HTTPS pull, ...).
    #[serde(deserialize_with = "section")]
    pub tls_client: TlsClientConfig,
    /// Who may publish and who may play, for every protocol.
    #[serde(deserialize_with = "section")]
    pub auth: crate::admission::config::AuthConfig,
    /// Webhooks asked before a publish or play, and told when one ends.
    #[serde(deserialize_with = "section")]
    pub hooks: crate::admission::config::HooksConfig,
    /// Limits on streams, players and connections.
    #[serde(deserialize_with = "section")]
    pub limits: crate::admission::config::LimitsConfig,
    /// Where plugins may keep files (recordings).
    #[serde(deserialize_with = "section")]
    pub storage: StorageConfig,
    /// The database holding the recording index.
    #[serde(deserialize_with = "section")]
    pub database: DatabaseConfig,
    /// Several nodes sharing a stream registry in Redis.
    #[serde(deserialize_with = "section")]
    pub cluster: ClusterConfig,
    /// Each plugin's own section, by plugin name, kept as raw YAML.
    #[serde(deserialize_with = "section")]
    pub plugins: BTreeMap<String, Value>,
}

/// `storage:` section. Plugins write files (recordings) through the host,
/// under `state_dir` or one of `roots`; nowhere else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Absolute directories plugins may use besides `state_dir` (another
    /// disk for recordings). Default none.
    pub roots: Vec<PathBuf>,
}

/// `database:` section. Read at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db` for PostgreSQL (what
    /// several nodes share); empty: an SQLite file, `state_dir/rill.db`.
    /// Default empty.
    pub url: String,
}

/// `cluster:` section: nodes share which node publishes which stream
/// through Redis (docs/cluster.md). Off while `redis` is empty. Read at
/// start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port/db`; empty: no cluster. Default
    /// empty.
    pub redis: String,
    /// This node's name in the cluster (letters, digits, `.`, `_`, `-`;
    /// up to 64). Default empty: the host name.
    pub node_id: String,
    /// `host:port` at which the other nodes reach this node's HTTP
    /// server; required with `redis`. Default empty.
    pub advertise: String,
    /// How long a node's registrations live without a heartbeat (sent
    /// every third of it); below `publish.reconnect_grace`, so a dead
    /// node's streams are gone while their players still wait.
    /// Default 4s.
    #[serde(with = "duration")]
    pub ttl: Duration,
}

/// Allowed range of `cluster.ttl`.
pub const CLUSTER_TTL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(2)..=Duration::from_secs(300);

/// Longest `cluster.node_id`.
pub const MAX_NODE_ID: usize = 64;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: String::new(),
            node_id: String::new(),
            advertise: String::new(),
            ttl: Duration::from_secs(4),
        }
    }
}

impl ClusterConfig {
    /// Whether this node runs in a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis.is_empty()
    }

    /// `node_id`, or the host name made into one when it is empty.
    pub fn node_id(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        node_id_from_host(&host)
    }

    /// The section's problems, as (key, message).
    fn check(&self, reconnect_grace: Duration) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if !self.enabled() {
            return errors;
        }
        if let Err(e) = redis::Client::open(self.redis.as_str()) {
            errors.push((
                "cluster.redis",
                format!("expected redis://[:password@]host:port/db: {e}"),
            ));
        }
        if !self.node_id.is_empty() && !valid_node_id(&self.node_id) {
            errors.push((
                "cluster.node_id",
                format!(
                    "{:?}: expected 1 to {MAX_NODE_ID} letters, digits, '.', '_' or '-'",
                    self.node_id
                ),
            ));
        }
        if self.advertise.is_empty() {
            errors.push((
                "cluster.advertise",
                "must be set with cluster.redis: the host:port at which the other nodes \
                 reach this node's HTTP server"
                    .to_owned(),
            ));
        } else if let Err(e) = check_advertise(&self.advertise) {
            errors.push(("cluster.advertise", e));
        }
        if !CLUSTER_TTL_RANGE.contains(&self.ttl) {
            errors.push((
                "cluster.ttl",
                format!(
                    "{} is out of range: expected 2s to 5m",
                    humantime::format_duration(self.ttl)
                ),
            ));
        } else if self.ttl >= reconnect_grace {
            errors.push((
                "cluster.ttl",
                format!(
                    "{} must be below publish.reconnect_grace ({}): a dead node's streams \
                     must expire while their players still wait",
                    humantime::format_duration(self.ttl),
                    humantime::format_duration(reconnect_grace)
                ),
            ));
        }
        errors
    }
}

/// A node id: 1 to [`MAX_NODE_ID`] of `[A-Za-z0-9._-]` (it is part of a
/// Redis key and of log lines).
pub fn valid_node_id(id: &str) -> bool {
    (1..=MAX_NODE_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A host name made into a valid node id (other characters become `-`);
/// `rill` when there is none.
fn node_id_from_host(host: &str) -> String {
    let id: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NODE_ID)
        .collect();
    if id.is_empty() {
        "rill".to_owned()
    } else {
        id
    }
}

/// `cluster.advertise`: `host:port` or `[v6]:port`, a port above 0, and
/// not an unspecified address (nobody can reach 0.0.0.0).
fn check_advertise(v: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected host:port (e.g. 10.0.0.1:8080 or node-a.example:8080)";
    let bad = |why: &str| Err(format!("{v:?}: {why}; {EXPECTED}"));
    let Some((host, port)) = v.rsplit_once(':') else {
        return bad("no port");
    };
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return bad("invalid port");
    }
    let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => match v6.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Some(std::net::IpAddr::V6(ip)),
            Err(_) => return bad("invalid IPv6 address"),
        },
        None => host.parse::<std::net::IpAddr>().ok(),
    };
    match ip {
        Some(ip) if ip.is_unspecified() => bad("an unspecified address is not reachable"),
        Some(std::net::IpAddr::V6(_)) if !host.starts_with('[') => {
            bad("write an IPv6 address in brackets")
        }
        Some(_) => Ok(()),
        None if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) =>
        {
            bad("invalid host name")
        }
        None => Ok(()),
    }
}

/// `log:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or a
    /// comma-separated list of `tracing` filter directives such as
    /// `info,rill::engine=debug`. A bare word must be a level (a bare target
    /// name is refused to catch typos; write `target=trace`). Default `info`.
    pub level: String,
    /// Output format. Default `text`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `http:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listening address. Default `0.0.0.0:8080`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Bearer token required by the management API (and the console).
    /// Without a token (here or in `api_token_file`), the API answers
    /// only clients on loopback that name a loopback host or one of
    /// `allowed_hosts`. Default none. Note: `Debug` and [`Config::to_yaml`]
    /// show it; [`Config::redacted`] hides it.
    pub api_token: Option<String>,
    /// More API tokens, each with a role: `admin` (everything) or `read`
    /// (GET only): `[{token: "…", role: read}]`. Default none.
    pub api_tokens: Vec<ApiToken>,
    /// Whether `/metrics` answers without a token. Off: it needs an API
    /// token (either role). Default true.
    pub metrics_public: bool,
    /// A file holding the API's bearer token (surrounding whitespace
    /// ignored), read at start and on every reload; the Debian package
    /// generates one. Exclusive with `api_token`. Default none.
    pub api_token_file: Option<PathBuf>,
    /// Host names (without port) the API accepts in the `Host` header when
    /// it has no token, besides `localhost`, `127.0.0.1` and `[::1]`: a
    /// guard against DNS rebinding. Default none.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://console.example.com`) whose web pages may call the
    /// API (CORS). The API sends no CORS headers to any other origin;
    /// media routes (HTTP-FLV, ...) allow every origin. Default none.
    pub cors_origins: Vec<String>,
    /// Largest request body, and largest WebSocket message, handed to a
    /// plugin, in bytes. Default 1048576 (1 MiB).
    pub max_body: usize,
    /// How long a plugin may take to answer an HTTP request (a blocking
    /// playlist reload waits up to this); then the host answers 504.
    /// Default 30s.
    #[serde(with = "duration")]
    pub response_timeout: Duration,
    /// How long a client may take to send a request head, counted from when
    /// the connection is ready for one: a keep-alive connection idle this
    /// long is closed too. Guards against slowloris clients. Default 10s.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// The token read from `api_token_file` (not a config key).
    #[serde(skip)]
    pub token_from_file: Option<String>,
    /// HTTPS, served on its own address in addition to plain HTTP.
    #[serde(deserialize_with = "section")]
    pub tls: TlsConfig,
}

/// One `http.api_tokens` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub token: String,
    pub role: ApiRole,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// Every call.
    Admin,
    /// `GET` and `HEAD` only.
    Read,
}

/// `http.tls:` section. HTTPS is on when `cert` and `key` are set: the same
/// routes as plain HTTP (API, metrics, HTTP-FLV, WS-FLV as wss) on `listen`,
/// while plain HTTP keeps serving on `http.listen`. The files are read at
/// start and again on every config reload (SIGHUP, `PUT /api/v1/config`),
/// so a renewed certificate needs no restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// HTTPS listening address. Default `0.0.0.0:8443`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// PEM certificate chain, the server's certificate first. Default none.
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, RSA or SEC1; not
    /// encrypted). Default none.
    pub key: Option<PathBuf>,
}

impl HttpConfig {
    /// The API's bearer token, from `api_token` or `api_token_file`.
    pub fn token(&self) -> Option<&str> {
        self.api_token
            .as_deref()
            .or(self.token_from_file.as_deref())
    }
}

impl TlsConfig {
    /// The certificate and key files, when HTTPS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// `tls_client:` section. Outbound TLS verifies servers against the
/// system's root certificates and this file's; read at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// PEM file of extra trusted CA certificates. Default none.
    pub ca_file: Option<PathBuf>,
}

/// `publish:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// A publisher that sends no data for this long is closed; 0 = off.
    /// Default 10s.
    #[serde(with = "duration")]
    pub publish_timeout: Duration,
    /// A stream that never had a subscriber is closed after this; 0 = off.
    /// Default 0s.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// After the last subscriber left, the stream is closed after this;
    /// 0 = off. Default 0s.
    #[serde(with = "duration")]
    pub delay_close_timeout: Duration,
    /// A publisher that drops and returns within this keeps the same stream
    /// and its players. Default 5s.
    #[serde(with = "duration")]
    pub reconnect_grace: Duration,
    /// A new publisher of an already published stream replaces (kicks) the
    /// existing one instead of being refused. Default false.
    pub kick_existing: bool,
    /// A timestamp jump larger than this is a discontinuity and is smoothed.
    /// Must be > 0. Default 1s.
    #[serde(with = "duration")]
    pub max_ts_jump: Duration,
    /// Video frame ring size (power of two in 16..=65536). Default 256.
    pub video_ring: usize,
    /// Audio frame ring size (power of two in 16..=65536). Default 64.
    pub audio_ring: usize,
    /// Data frame ring size (power of two in 16..=65536). Default 16.
    pub data_ring: usize,
}

/// `subscribe:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscribeConfig {
    /// How long a player waits for a stream nobody publishes yet.
    /// Default 10s.
    #[serde(with = "duration")]
    pub wait_timeout: Duration,
    /// A subscriber that stays behind longer than this is closed. Must be
    /// greater than 0s. Default 10s.
    #[serde(with = "duration")]
    pub max_lag: Duration,
    /// Bound of each subscriber's queue, in frames (16..=65536).
    /// Default 512.
    pub queue_frames: usize,
    /// Keep `TCP_NODELAY` on a player's TCP connection once it streams.
    /// Off: after the handshake and the first burst, the kernel may merge
    /// the player's writes into fewer packets (Nagle), as nginx-rtmp lets
    /// it. On: every write leaves at once. Default false.
    pub tcp_nodelay: bool,
    /// The kernel's send buffer of a player's TCP connection once it
    /// streams, in bytes (0: the kernel's autotuning, which lets a player
    /// that stopped reading hide megabytes there). Together with
    /// `max_lag`: a player whose connection takes nothing for `max_lag`
    /// while media waits is closed. 16384..=67108864, or 0. Default
    /// 1048576.
    pub send_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            plugins_dir: PathBuf::from("plugins"),
            state_dir: PathBuf::from("state"),
            drain_timeout: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(10),
            dispatcher_workers: 0,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            publish: PublishConfig::default(),
            subscribe: SubscribeConfig::default(),
            tls_client: TlsClientConfig::default(),
            auth: Default::default(),
            hooks: Default::default(),
            limits: Default::default(),
            storage: StorageConfig::default(),
            database: DatabaseConfig::default(),
            cluster: ClusterConfig::default(),
            plugins: BTreeMap::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            api_token: None,
            api_tokens: Vec::new(),
            metrics_public: true,
            api_token_file: None,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            max_body: 1 << 20,
            response_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            token_from_file: None,
            tls: TlsConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            cert: None,
            key: None,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            publish_timeout: Duration::from_secs(10),
            idle_timeout: Duration::ZERO,
            delay_close_timeout: Duration::ZERO,
            reconnect_grace: Duration::from_secs(5),
            kick_existing: false,
            max_ts_jump: Duration::from_secs(1),
            video_ring: 256,
            audio_ring: 64,
            data_ring: 16,
        }
    }
}

impl Default for SubscribeConfig {
    fn default() -> Self {
        SubscribeConfig {
            wait_timeout: Duration::from_secs(10),
            max_lag: Duration::from_secs(10),
            queue_frames: 512,
            tcp_nodelay: false,
            send_buffer: 1 << 20,
        }
    }
}

impl Config {
    /// Parses and validates a configuration from YAML text. An empty
    /// document (or one holding only comments or `null`) gives the defaults.
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_yaml_str_with(text, |_| {})
    }

    /// [`Config::from_yaml_str`], with `adjust` applied to the parsed config
    /// before it is checked (the API restores the running secrets there).
    pub fn from_yaml_str_with(
        text: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigErrors> {
        // A document without content is the default configuration; checking
        // through `Value` first keeps the typed pass below (which has line
        // numbers) for documents that have something in them.
        let value: Value = serde_yaml::from_str(text).map_err(|e| yaml_error(".", e))?;
        let config = if value.is_null() {
            Config::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(path_error)?
        };
        let mut config: Config = config;
        adjust(&mut config);
        config.read_token_file()?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `http.api_token_file` into the token it holds.
    fn read_token_file(&mut self) -> Result<(), ConfigErrors> {
        self.http.token_from_file = None;
        let Some(path) = &self.http.api_token_file else {
            return Ok(());
        };
        let key = "http.api_token_file";
        let bytes = read_named_file(path, MAX_TOKEN_FILE).map_err(|m| ConfigError::file(key, m))?;
        let token = String::from_utf8(bytes)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty() && !t.chars().any(|c| c.is_control()))
            .ok_or_else(|| {
                ConfigError::file(
                    key,
                    format!(
                        "{} does not hold a token (one line of printable text)",
                        path.display()
                    ),
                )
            })?;
        self.http.token_from_file = Some(token);
        Ok(())
    }

    /// A copy with every secret replaced by [`REDACTED`]: the API token and,
    /// in plugin sections, every value under a key that names a secret
    /// ([`is_secret_key`]).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.http.api_token.is_some() {
            c.http.api_token = Some(REDACTED.to_owned());
        }
        c.http.token_from_file = None;
        for t in &mut c.http.api_tokens {
            t.token = REDACTED.to_owned();
        }
        if c.auth.secret.is_some() {
            c.auth.secret = Some(REDACTED.to_owned());
        }
        for k in c.auth.keys.values_mut() {
            *k = REDACTED.to_owned();
        }
        for u in &mut c.auth.users {
            u.password = REDACTED.to_owned();
        }
        if c.database.url.contains('@') {
            c.database.url = REDACTED.to_owned();
        }
        if c.cluster.redis.contains('@') {
            c.cluster.redis = REDACTED.to_owned();
        }
        for section in c.plugins.values_mut() {
            redact_value(section);
        }
        c
    }

    /// Takes every secret that `self` leaves out or gives as [`REDACTED`]
    /// from `running`: a config read back from the API and sent again keeps
    /// the secrets it could not see. Setting a secret to a new value still
    /// works; removing one takes an edit of the file and a reload.
    pub fn keep_secrets(&mut self, running: &Config) {
        let placeholder = |v: &Option<String>| v.as_deref().is_none_or(|t| t == REDACTED);
        if placeholder(&self.http.api_token) && self.http.api_token_file.is_none() {
            self.http.api_token = running.http.api_token.clone();
            if self.http.api_token.is_none() {
                self.http.api_token_file = running.http.api_token_file.clone();
                self.http.token_from_file = running.http.token_from_file.clone();
            }
        }
        let gone = |v: &str| v == REDACTED;
        if gone(&self.database.url) {
            self.database.url = running.database.url.clone();
        }
        if gone(&self.cluster.redis) {
            self.cluster.redis = running.cluster.redis.clone();
        }
        for (i, t) in self.http.api_tokens.iter_mut().enumerate() {
            if gone(&t.token) {
                if let Some(old) = running.http.api_tokens.get(i) {
                    t.token = old.token.clone();
                }
            }
        }
        if self.auth.secret.as_deref().is_some_and(gone) {
            self.auth.secret = running.auth.secret.clone();
        }
        for (path, k) in self.auth.keys.iter_mut() {
            if gone(k) {
                if let Some(old) = running.auth.keys.get(path) {
                    *k = old.clone();
                }
            }
        }
        for u in &mut self.auth.users {
            if gone(&u.password) {
                if let Some(old) = running.auth.users.iter().find(|o| o.user == u.user) {
                    u.password = old.password.clone();
                }
            }
        }
        for (name, old) in &running.plugins {
            let new = self.plugins.entry(name.clone()).or_insert(Value::Null);
            keep_secret_values(new, old);
        }
    }

    /// Reads, parses and validates the file at `path`. A missing or
    /// unreadable file is an error naming the path (the caller decides
    /// whether running on defaults is acceptable).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read config file: {e}"),
            )
        })?;
        Config::from_yaml_str(&text)
    }

    /// Checks the ranges and values serde alone cannot (ring sizes, log
    /// filter, ...). Reports every problem found, not only the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        // Problems with the TLS files, kept apart: they are file problems.
        let mut tls_error: Vec<ConfigError> = self.validate_tls_files().into_iter().collect();
        if let Some(ca) = &self.tls_client.ca_file {
            if let Err(e) = crate::net::tls_client::client_config(Some(ca)) {
                tls_error.push(ConfigError::file("tls_client.ca_file", e));
            }
        }
        let mut fail = |path: &str, message: String| errors.push(ConfigError::new(path, message));

        if self.plugins_dir.as_os_str().is_empty() {
            fail("plugins_dir", "must not be empty".to_owned());
        }
        if self.state_dir.as_os_str().is_empty() {
            fail("state_dir", "must not be empty".to_owned());
        }
        for (i, r) in self.storage.roots.iter().enumerate() {
            if !r.is_absolute() || r.components().any(|c| c == std::path::Component::ParentDir) {
                fail(
                    &format!("storage.roots[{i}]"),
                    format!("{} must be an absolute path without ..", r.display()),
                );
            }
        }
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            fail(
                "database.url",
                "expected postgres://…, postgresql://…, sqlite:… or empty (SQLite in state_dir)"
                    .to_owned(),
            );
        }
        if self.cluster.redis == REDACTED {
            fail(
                "cluster.redis",
                format!("{REDACTED:?} is the redaction placeholder and there is no value to keep"),
            );
        } else {
            for (key, message) in self.cluster.check(self.publish.reconnect_grace) {
                fail(key, message);
            }
        }
        if self.dispatcher_workers > MAX_DISPATCHER_WORKERS {
            fail(
                "dispatcher_workers",
                format!(
                    "{} is too many: expected 0 (one per core) up to {MAX_DISPATCHER_WORKERS}",
                    self.dispatcher_workers
                ),
            );
        }
        if let Err(message) = check_log_level(&self.log.level) {
            fail("log.level", message);
        }
        match self.http.api_token.as_deref() {
            Some("") => fail(
                "http.api_token",
                "must not be empty (leave the key out to disable authentication)".to_owned(),
            ),
            Some(REDACTED) => fail(
                "http.api_token",
                format!("{REDACTED:?} is the redaction placeholder, not a token"),
            ),
            Some(_) if self.http.api_token_file.is_some() => fail(
                "http.api_token",
                "set either http.api_token or http.api_token_file, not both".to_owned(),
            ),
            _ => {}
        }
        for host in &self.http.allowed_hosts {
            if host.is_empty() || (host.contains(['/', ' ', ':']) && !host.starts_with('[')) {
                fail(
                    "http.allowed_hosts",
                    format!("{host:?} is not a host name (no scheme, path or port)"),
                );
            }
        }
        for origin in &self.http.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.contains(char::is_whitespace);
            if !ok {
                fail(
                    "http.cors_origins",
                    format!(
                        "{origin:?} is not an origin like \"https://console.example.com\" \
                         (scheme, host, optional port, no path)"
                    ),
                );
            }
        }
        if self.http.response_timeout.is_zero() {
            fail(
                "http.response_timeout",
                "must be greater than 0s".to_owned(),
            );
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&self.http.header_timeout)
        {
            fail(
                "http.header_timeout",
                "is out of range: expected 1s to 5m".to_owned(),
            );
        }
        if !(1024..=1 << 30).contains(&self.http.max_body) {
            fail(
                "http.max_body",
                format!(
                    "{} is out of range: expected 1024 to 1073741824 bytes",
                    self.http.max_body
                ),
            );
        }
        for (i, t) in self.http.api_tokens.iter().enumerate() {
            if t.token.len() < 16 || t.token == REDACTED {
                fail(
                    &format!("http.api_tokens.{i}.token"),
                    "must be at least 16 characters (and not the redaction placeholder)".to_owned(),
                );
            }
        }
        let auth_secrets = self
            .auth
            .secret
            .iter()
            .chain(self.auth.keys.values())
            .chain(self.auth.users.iter().map(|u| &u.password));
        if auth_secrets.into_iter().any(|v| v == REDACTED) {
            fail(
                "auth",
                format!("{REDACTED:?} is the redaction placeholder and there is no value to keep"),
            );
        }
        for (key, message) in crate::admission::config::validate(&self.auth, &self.hooks) {
            fail(&key, message);
        }
        for (name, section) in &self.plugins {
            if let Some(key) = find_placeholder(section) {
                fail(
                    &format!("plugins.{name}.{key}"),
                    format!(
                        "{REDACTED:?} is the redaction placeholder and there is no value to keep"
                    ),
                );
            }
        }
        self.validate_tls(&mut fail);
        if self.publish.max_ts_jump.is_zero() {
            fail("publish.max_ts_jump", "must be greater than 0s".to_owned());
        }
        for (key, size) in [
            ("publish.video_ring", self.publish.video_ring),
            ("publish.audio_ring", self.publish.audio_ring),
            ("publish.data_ring", self.publish.data_ring),
        ] {
            if !size.is_power_of_two() || !RING_RANGE.contains(&size) {
                fail(
                    key,
                    format!(
                        "{size} is not allowed: expected a power of two between {} and {}",
                        RING_RANGE.start(),
                        RING_RANGE.end()
                    ),
                );
            }
        }
        let sb = self.subscribe.send_buffer;
        if sb != 0 && !(16 << 10..=64 << 20).contains(&sb) {
            fail(
                "subscribe.send_buffer",
                format!("must be 0 or 16384..=67108864 bytes, not {sb}"),
            );
        }
        if self.subscribe.max_lag.is_zero() {
            fail("subscribe.max_lag", "must be greater than 0s".to_owned());
        }
        if !QUEUE_RANGE.contains(&self.subscribe.queue_frames) {
            fail(
                "subscribe.queue_frames",
                format!(
                    "{} is out of range: expected a number between {} and {}",
                    self.subscribe.queue_frames,
                    QUEUE_RANGE.start(),
                    QUEUE_RANGE.end()
                ),
            );
        }
        for name in self.plugins.keys() {
            if name.trim().is_empty() {
                fail("plugins", "plugin names must not be empty".to_owned());
            }
        }

        errors.extend(tls_error);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// `http.tls`'s files, when both are set: read, parsed, matching.
    fn validate_tls_files(&self) -> Option<ConfigError> {
        self.http.tls.files()?;
        crate::http::tls::load(&self.http.tls).err()
    }

    /// `http.tls`: both files or neither, and an address of its own (the
    /// files themselves: [`Config::validate_tls_files`]).
    fn validate_tls(&self, fail: &mut impl FnMut(&str, String)) {
        let tls = &self.http.tls;
        match (&tls.cert, &tls.key) {
            (None, None) => return,
            (Some(_), None) => {
                return fail(
                    "http.tls.key",
                    "must be set when http.tls.cert is (HTTPS needs both)".to_owned(),
                )
            }
            (None, Some(_)) => {
                return fail(
                    "http.tls.cert",
                    "must be set when http.tls.key is (HTTPS needs both)".to_owned(),
                )
            }
            (Some(_), Some(_)) => {}
        }
        let (a, b) = (tls.listen, self.http.listen);
        if a.port() != 0
            && a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        {
            fail(
                "http.tls.listen",
                format!(
                    "{a} overlaps http.listen ({b}): HTTPS needs an address of its own, \
                     plain HTTP keeps serving on http.listen"
                ),
            );
        }
    }

    /// The configuration as YAML text (every key, defaults included); it
    /// parses back to an equal `Config`. Shows `http.api_token`.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot serialize the configuration: {e}\n"))
    }

    /// The section `plugins.<name>` re-serialized as YAML text, as handed to
    /// the plugin. An absent or empty (`null`) section gives `"{}\n"`, which
    /// every map-shaped plugin config accepts as "all defaults".
    pub fn plugin_section_yaml(&self, name: &str) -> String {
        match self.plugins.get(name) {
            None | Some(Value::Null) => "{}\n".to_owned(),
            Some(section) => serde_yaml::to_string(section).unwrap_or_else(|_| "{}\n".to_owned()),
        }
    }

    /// Applies environment overrides of single keys and re-validates.
    ///
    /// A variable `RILL_<PATH>` where `<PATH>` is a key's dotted path
    /// upper-cased with `.` replaced by `_` (e.g. `RILL_HTTP_LISTEN`,
    /// `RILL_PLUGINS_DIR`, `RILL_PUBLISH_IDLE_TIMEOUT`) sets that key. The
    /// value is read as a YAML scalar (so `true`, `512` work), falling back
    /// to the raw text for string keys; an empty value sets an optional key
    /// (`http.api_token`) to none. Keys are discovered from the serialized
    /// configuration, so every key gets an override; the `plugins` map is
    /// not reachable this way.
    ///
    /// Variables that don't name a key are ignored (pass the whole
    /// environment). A variable naming a key with a bad value is an error
    /// naming the variable; all such errors are reported, and on error
    /// `self` is left unchanged.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigErrors> {
        let mut tree = serde_yaml::to_value(&*self).map_err(|e| {
            ConfigError::new(".", format!("cannot serialize the configuration: {e}"))
        })?;
        let keys = env_keys(&tree);
        let mut errors = Vec::new();
        // (variable, dotted key) of each override applied, for messages.
        let mut applied: Vec<(String, String)> = Vec::new();

        for (var, raw) in vars {
            if !var.starts_with(ENV_PREFIX) {
                continue;
            }
            let Some(key) = keys.iter().find(|k| k.var == var) else {
                continue;
            };
            let mut first_error = None;
            let mut accepted = false;
            for candidate in env_candidates(&raw) {
                let mut trial = tree.clone();
                if !set_path(&mut trial, &key.path, candidate) {
                    continue;
                }
                match serde_path_to_error::deserialize::<_, Config>(trial.clone()) {
                    Ok(_) => {
                        tree = trial;
                        accepted = true;
                        break;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e.into_inner().to_string());
                    }
                }
            }
            if accepted {
                applied.retain(|(v, _)| *v != var);
                applied.push((var, key.dotted.clone()));
            } else {
                let reason = first_error.unwrap_or_else(|| "cannot set this key".to_owned());
                errors.push(ConfigError::new(
                    key.dotted.clone(),
                    format!("{reason} (from environment variable {var}={raw:?})"),
                ));
            }
        }

        // The overrides that were accepted, validated together (range checks
        // are reported even when other variables were refused above).
        let mut config: Config = match serde_path_to_error::deserialize(tree) {
            Ok(config) => config,
            Err(e) => {
                errors.push(ConfigError::new(
                    e.path().to_string(),
                    e.into_inner().to_string(),
                ));
                return Err(ConfigErrors(errors));
            }
        };
        if let Err(ConfigErrors(invalid)) = config.read_token_file().and_then(|_| config.validate())
        {
            for mut error in invalid {
                if let Some((var, _)) = applied.iter().find(|(_, key)| *key == error.path) {
                    error.message = format!("{} (from environment variable {var})", error.message);
                }
                errors.push(error);
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        *self = config;
        Ok(())
    }
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key (`publish.idle_timeout`), `.` for the whole
    /// document, or the file's path when it could not be read.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// 1-based line in the YAML text, when known.
    pub line: Option<usize>,
    /// 1-based column in the YAML text, when known.
    pub column: Option<usize>,
    /// The problem is with a file the key names (unreadable, not a
    /// certificate, ...). The API shows such messages only as "cannot use
    /// the file": its clients must not learn what exists on the server.
    pub file: bool,
}

impl ConfigError {
    /// An error without a position.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            line: None,
            column: None,
            file: false,
        }
    }

    /// A problem with the file that the key at `path` names.
    pub fn file(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: true,
            ..ConfigError::new(path, message)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (line {line}, column {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in a configuration (never empty when returned as
/// an error). Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in the order found.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

// ---------------------------------------------------------------------------
// Errors from serde_yaml.

/// Converts a parse error, keeping the dotted path and the position.
fn path_error(error: serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    let path = error.path().to_string();
    yaml_error(&path, error.into_inner())
}

/// Converts a serde_yaml error: the position moves to `line`/`column` and is
/// removed from the message, as is serde_yaml's own path prefix.
fn yaml_error(path: &str, error: serde_yaml::Error) -> ConfigError {
    let location = error.location();
    let mut message = error.to_string();
    if let Some(loc) = &location {
        let at = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(start) = message.find(&at) {
            message.replace_range(start..start + at.len(), "");
        }
    }
    // serde_yaml prefixes messages with the path it tracks itself (the same
    // key or its parent); the caller shows ours.
    if path != "." {
        let mut prefix = path;
        loop {
            if let Some(rest) = message
                .strip_prefix(prefix)
                .and_then(|m| m.strip_prefix(": "))
            {
                message = rest.to_owned();
                break;
            }
            match prefix.rfind('.') {
                Some(dot) => prefix = &prefix[..dot],
                None => break,
            }
        }
    }
    ConfigError {
        path: path.to_owned(),
        message,
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        file: false,
    }
}

// ---------------------------------------------------------------------------
// Field (de)serializers.

/// Humantime durations, with a clear message for bad values.
pub(crate) mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    const EXPECTED: &str = "a duration like \"10s\"";

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(value, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime_serde::re::humantime::parse_duration(v.trim()).map_err(|_| {
                    E::custom(format_args!("invalid duration {v:?}: expected {EXPECTED}"))
                })
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A `SocketAddr` with a clear message for bad values.
fn socket_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    struct AddrVisitor;
    impl serde::de::Visitor<'_> for AddrVisitor {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an IP address and port like \"0.0.0.0:8080\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.trim().parse().map_err(|_| {
                E::custom(format_args!(
                    "invalid address {v:?}: expected an IP address and port like \"0.0.0.0:8080\""
                ))
            })
        }
    }
    deserializer.deserialize_str(AddrVisitor)
}

/// A section that may be written empty (`publish:` with nothing under it,
/// i.e. `null`), which means "all defaults".
fn section<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Checks `log.level`: levels and `tracing` filter directives.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    const EXPECTED: &str =
        "expected trace, debug, info, warn, error, off or filter directives like \"info,rill=debug\"";
    if level.trim().is_empty() {
        return Err(format!("empty log level: {EXPECTED}"));
    }
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            continue;
        }
        if !directive.contains('=') && !directive.contains('[') {
            return Err(format!("unknown log level {directive:?}: {EXPECTED}"));
        }
        if let Err(e) = directive.parse::<tracing_subscriber::filter::Directive>() {
            return Err(format!("invalid log filter directive {directive:?}: {e}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Environment overrides.

/// A key reachable from the environment.
struct EnvKey {
    /// `RILL_PUBLISH_IDLE_TIMEOUT`
    var: String,
    /// `["publish", "idle_timeout"]`
    path: Vec<String>,
    /// `publish.idle_timeout`
    dotted: String,
}

/// Every leaf key of the serialized configuration, except under `plugins`.
fn env_keys(tree: &Value) -> Vec<EnvKey> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<EnvKey>) {
        match value {
            Value::Mapping(map) => {
                for (key, child) in map {
                    let Some(key) = key.as_str() else { continue };
                    if path.is_empty() && key == "plugins" {
                        continue;
                    }
                    path.push(key.to_owned());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => out.push(EnvKey {
                var: format!("{ENV_PREFIX}{}", path.join("_").to_ascii_uppercase()),
                path: path.clone(),
                dotted: path.join("."),
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// The values to try for an environment variable's text, best first: the
/// text read as a YAML scalar (numbers, booleans, `null` for empty), then
/// the text itself as a string.
fn env_candidates(raw: &str) -> Vec<Value> {
    let text = Value::String(raw.to_owned());
    let mut candidates = Vec::with_capacity(2);
    if let Ok(parsed) = serde_yaml::from_str::<Value>(raw) {
        let scalar = matches!(
            parsed,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)
        );
        if scalar && parsed != text {
            candidates.push(parsed);
        }
    }
    candidates.push(text);
    candidates
}

/// Sets the value at `path` in a tree of mappings; false if a parent is
/// missing or not a mapping.
fn set_path(tree: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = tree;
    for key in parents {
        match node.get_mut(key.as_str()) {
            Some(child) => node = child,
            None => return false,
        }
    }
    match node.as_mapping_mut() {
        Some(map) => {
            map.insert(Value::String(last.clone()), value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn errors_of(text: &str) -> ConfigErrors {
        match Config::from_yaml_str(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_text_gives_defaults() {
        for text in ["", "\n", "# only a comment\n", "~\n", "null", "---\n"] {
            let config = Config::from_yaml_str(text).expect(text);
            assert_eq!(config, Config::default(), "{text:?}");
        }
        let c = Config::default();
        assert_eq!(c.plugins_dir, PathBuf::from("plugins"));
        assert_eq!(c.state_dir, PathBuf::from("state"));
        assert_eq!(c.drain_timeout, Duration::ZERO);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.dispatcher_workers, 0);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.http.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.http.api_token, None);
        assert_eq!(c.publish.publish_timeout, Duration::from_secs(10));
        assert_eq!(c.publish.idle_timeout, Duration::ZERO);
        assert_eq!(c.publish.delay_close_timeout, Duration::ZERO);
        assert_eq!(c.publish.reconnect_grace, Duration::from_secs(5));
        assert!(!c.publish.kick_existing);
        assert_eq!(c.publish.max_ts_jump, Duration::from_secs(1));
        assert_eq!(
            (
                c.publish.video_ring,
                c.publish.audio_ring,
                c.publish.data_ring
            ),
            (256, 64, 16)
        );
        assert_eq!(c.subscribe.wait_timeout, Duration::from_secs(10));
        assert_eq!(c.subscribe.max_lag, Duration::from_secs(10));
        assert_eq!(c.subscribe.queue_frames, 512);
        assert!(c.plugins.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn empty_sections_give_defaults() {
        let config =
            Config::from_yaml_str("log:\nhttp:\npublish:\nsubscribe:\nplugins:\n").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let config = Config::from_yaml_str("publish:\n  idle_timeout: 30s\n").unwrap();
        assert_eq!(config.publish.idle_timeout, Duration::from_secs(30));
        assert_eq!(config.publish.publish_timeout, Duration::from_secs(10));
        assert_eq!(config.subscribe, SubscribeConfig::default());
    }

    const FULL: &str = r#"
plugins_dir: /usr/lib/rill/plugins
state_dir: /var/lib/rill
drain_timeout: 1m
shutdown_timeout: 15s
dispatcher_workers: 4
log:
  level: info,rill::engine=debug
  format: json
http:
  listen: "127.0.0.1:9090"
  api_token: s3cret
publish:
  publish_timeout: 20s
  idle_timeout: 30s
  delay_close_timeout: 500ms
  reconnect_grace: 0s
  kick_existing: true
  max_ts_jump: 2s
  video_ring: 1024
  audio_ring: 128
  data_ring: 32
subscribe:
  wait_timeout: 3s
  max_lag: 1m 30s
  queue_frames: 100
plugins:
  rtmp:
    listen: "0.0.0.0:1935"
    chunk_size: 4096
  hls:
    segment: 2s
    windows: [a, b]
"#;

    #[test]
    fn full_example_round_trip() {
        let config = Config::from_yaml_str(FULL).unwrap();
        assert_eq!(config.plugins_dir, PathBuf::from("/usr/lib/rill/plugins"));
        assert_eq!(config.drain_timeout, Duration::from_secs(60));
        assert_eq!(config.dispatcher_workers, 4);
        assert_eq!(config.log.level, "info,rill::engine=debug");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.http.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.http.api_token.as_deref(), Some("s3cret"));
        assert_eq!(
            config.publish.delay_close_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(config.publish.reconnect_grace, Duration::ZERO);
        assert!(config.publish.kick_existing);
        assert_eq!(config.publish.video_ring, 1024);
        assert_eq!(config.subscribe.max_lag, Duration::from_secs(90));
        assert_eq!(config.subscribe.queue_frames, 100);
        assert_eq!(config.plugins.len(), 2);

        let text = config.to_yaml();
        let again = Config::from_yaml_str(&text).unwrap();
        assert_eq!(again, config, "{text}");
        assert!(text.contains("drain_timeout: 1m"), "{text}");

        let defaults = Config::default().to_yaml();
        assert_eq!(Config::from_yaml_str(&defaults).unwrap(), Config::default());
    }

    #[test]
    fn unknown_top_level_key() {
        let errors = errors_of("plugins_dir: p\nplugin_dir: x\n");
        assert_eq!(errors.0.len(), 1);
        let e = &errors.0[0];
        assert_eq!(e.path, "plugin_dir");
        assert!(e.message.contains("unknown field `plugin_dir`"), "{e}");
        assert!(
            e.message.contains("plugins_dir"),
            "expected keys listed: {e}"
        );
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn unknown_nested_key() {
        let errors = errors_of("publish:\n  idel_timeout: 10s\n");
        let e = &errors.0[0];
        assert_eq!(e.path, "publish.idel_timeout");
        assert!(
            e.message.contains("idle_timeout"),
            "expected keys listed: {e}"
        );
        assert!(!e.message.contains(" at line"), "{e}");
        assert_eq!((e.line, e.column), (Some(2), Some(3)));
        assert!(
            errors
                .to_string()
                .starts_with("publish.idel_timeout: unknown field"),
            "{errors}"
        );
    }

    #[test]
    fn wrong_type() {
        let errors = errors_of("dispatcher_workers: \"many\"\n");
        let e = &errors.0[0];
        assert_eq!(e.path, "dispatcher_workers");
        assert!(e.message.contains("invalid type"), "{e}");
        assert!(e.message.contains("usize"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn bad_address() {
        let errors = errors_of("http:\n  listen: \"nope\"\n");
        let e = &errors.0[0];
        assert_eq!(e.path, "http.listen");
        assert!(e.message.contains("invalid address \"nope\""), "{e}");
        assert!(e.message.contains("0.0.0.0:8080"), "{e}");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn bad_duration() {
        let errors = errors_of("publish:\n  idle_timeout: abc\n");
        let e = &errors.0[0];
        assert_eq!(e.path, "publish.idle_timeout");
        assert_eq!(
            e.message,
            "invalid duration \"abc\": expected a duration like \"10s\""
        );
        let errors = errors_of("subscribe:\n  wait_timeout: 10\n");
        assert_eq!(errors.0[0].path, "subscribe.wait_timeout");
        assert!(
            errors.0[0].message.contains("expected a duration like"),
            "{errors}"
        );
    }

    #[test]
    fn bad_log_values() {
        let errors = errors_of("log:\n  format: xml\n");
        assert_eq!(errors.0[0].path, "log.format");
        assert!(errors.0[0].message.contains("`text`"), "{errors}");
        let errors = errors_of("log:\n  level: inof\n");
        assert_eq!(errors.0[0].path, "log.level");
        let errors = errors_of("log:\n  level: info,rill=loud\n");
        assert_eq!(errors.0[0].path, "log.level");
        for ok in [
            "debug",
            "WARN",
            "off",
            "info,rill::engine=trace",
            "rill=debug",
        ] {
            let text = format!("log:\n  level: \"{ok}\"\n");
            Config::from_yaml_str(&text).expect(ok);
        }
    }

    #[test]
    fn ring_sizes_must_be_powers_of_two_and_all_problems_reported() {
        let errors = errors_of(
            "publish:\n  video_ring: 100\n  audio_ring: 8\n  data_ring: 131072\nsubscribe:\n  queue_frames: 1\n",
        );
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "publish.video_ring",
                "publish.audio_ring",
                "publish.data_ring",
                "subscribe.queue_frames"
            ]
        );
        assert!(errors.0[0].message.contains("power of two"), "{errors}");
        assert_eq!(errors.to_string().lines().count(), 4);
        Config::from_yaml_str("publish:\n  video_ring: 65536\n  data_ring: 16\n").unwrap();
    }

    #[test]
    fn plugin_section_passthrough() {
        let config = Config::from_yaml_str(FULL).unwrap();
        let rtmp = config.plugin_section_yaml("rtmp");
        let value: Value = serde_yaml::from_str(&rtmp).unwrap();
        assert_eq!(
            value.get("listen").and_then(Value::as_str),
            Some("0.0.0.0:1935")
        );
        assert_eq!(value.get("chunk_size").and_then(Value::as_u64), Some(4096));
        assert_eq!(&value, config.plugins.get("rtmp").unwrap());
        assert_eq!(config.plugin_section_yaml("absent"), "{}\n");
        let config = Config::from_yaml_str("plugins:\n  flv:\n").unwrap();
        assert_eq!(config.plugin_section_yaml("flv"), "{}\n");
    }

    #[test]
    fn env_overrides() {
        let mut config = Config::default();
        config
            .apply_env(env(&[
                ("RILL_HTTP_LISTEN", "127.0.0.1:1234"),
                ("RILL_PLUGINS_DIR", "/opt/plugins"),
                ("RILL_PUBLISH_IDLE_TIMEOUT", "45s"),
                ("RILL_LOG_LEVEL", "debug"),
                ("RILL_SUBSCRIBE_WAIT_TIMEOUT", "2s"),
                ("RILL_PUBLISH_KICK_EXISTING", "true"),
                ("RILL_PUBLISH_VIDEO_RING", "512"),
                ("RILL_HTTP_API_TOKEN", "1234"),
                ("RILL_DISPATCHER_WORKERS", "3"),
                ("RILL_NOT_A_KEY", "whatever"),
                ("RILL_PLUGINS_RTMP", "ignored"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(config.plugins_dir, PathBuf::from("/opt/plugins"));
        assert_eq!(config.publish.idle_timeout, Duration::from_secs(45));
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.subscribe.wait_timeout, Duration::from_secs(2));
        assert!(config.publish.kick_existing);
        assert_eq!(config.publish.video_ring, 512);
        assert_eq!(config.http.api_token.as_deref(), Some("1234"));
        assert_eq!(config.dispatcher_workers, 3);
        assert!(config.plugins.is_empty());

        config
            .apply_env(env(&[("RILL_HTTP_API_TOKEN", "")]))
            .unwrap();
        assert_eq!(config.http.api_token, None);
    }

    #[test]
    fn env_overrides_bad_values() {
        let mut config = Config::default();
        let before = config.clone();
        let errors = config
            .apply_env(env(&[
                ("RILL_PUBLISH_IDLE_TIMEOUT", "abc"),
                ("RILL_HTTP_LISTEN", "nope"),
                ("RILL_DISPATCHER_WORKERS", "-1"),
                ("RILL_LOG_LEVEL", "debug"),
                ("RILL_PUBLISH_DATA_RING", "17"),
            ]))
            .unwrap_err();
        assert_eq!(config, before, "unchanged on error");
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "publish.idle_timeout",
                "http.listen",
                "dispatcher_workers",
                "publish.data_ring"
            ]
        );
        assert!(
            errors.0[3].message.contains("RILL_PUBLISH_DATA_RING"),
            "{errors}"
        );
        assert!(
            errors.0[0].message.contains("RILL_PUBLISH_IDLE_TIMEOUT"),
            "{errors}"
        );
        assert!(errors.0[0].message.contains("invalid duration"), "{errors}");
        assert!(errors.0[1].message.contains("RILL_HTTP_LISTEN"), "{errors}");

        // Well-typed but out of range: reported by validation, naming the variable.
        let errors = config
            .apply_env(env(&[("RILL_PUBLISH_AUDIO_RING", "100")]))
            .unwrap_err();
        assert_eq!(errors.0[0].path, "publish.audio_ring");
        assert!(
            errors.0[0].message.contains("RILL_PUBLISH_AUDIO_RING"),
            "{errors}"
        );
        assert_eq!(config, before);
    }

    #[test]
    fn auth_sections_are_checked() {
        let err = |yaml: &str| Config::from_yaml_str(yaml).unwrap_err().to_string();
        assert!(err("auth:\n  publish: token\n").contains("auth.secret"));
        assert!(err("auth:\n  secret: short\n").contains("too short"));
        assert!(err("auth:\n  play: [hook]\n").contains("hooks.on_play"));
        assert!(err("auth:\n  publish: bogus\n").contains("expected one of open"));
        assert!(err("auth:\n  publish: []\n").contains("allows nobody"));
        assert!(err("auth:\n  play_deny: [10.0.0.0/99]\n").contains("auth.play_deny"));
        assert!(err("auth:\n  rules: [{match: '(', play: open}]\n").contains("auth.rules.0.match"));
        assert!(err("hooks:\n  on_publish: ftp://x\n").contains("hooks.on_publish"));
        assert!(err("http:\n  api_tokens: [{token: short, role: read}]\n").contains("api_tokens.0"));
        let ok = Config::from_yaml_str(
            "auth:\n  publish: [key, hook]\n  play: open\n  keys: {live/a: k}\n\
             hooks:\n  on_publish: http://127.0.0.1:9/p\nlimits:\n  max_streams: 3\n",
        )
        .unwrap();
        assert_eq!(ok.limits.max_streams, 3);
    }

    #[test]
    fn auth_secrets_are_redacted_and_kept() {
        let running = Config::from_yaml_str(
            "http:\n  api_tokens: [{token: reader-token-0123456789, role: read}]\n\
             auth:\n  secret: 0123456789abcdef\n  keys: {live/a: k3y}\n\
             \x20 users: [{user: al, password: pw, play: '.*'}]\n",
        )
        .unwrap();
        let shown = running.redacted().to_yaml();
        for secret in ["reader-token-0123456789", "0123456789abcdef", "k3y", "pw\n"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        // Sent back as shown: the secrets are kept.
        let back = Config::from_yaml_str_with(&shown, |c| c.keep_secrets(&running)).unwrap();
        assert_eq!(back, running);
    }

    #[test]
    fn env_names_are_unique_and_cover_every_key() {
        let tree = serde_yaml::to_value(Config::default()).unwrap();
        let keys = env_keys(&tree);
        let mut names: Vec<&str> = keys.iter().map(|k| k.var.as_str()).collect();
        assert!(names.contains(&"RILL_HTTP_API_TOKEN"));
        assert!(names.contains(&"RILL_SUBSCRIBE_QUEUE_FRAMES"));
        assert!(names.contains(&"RILL_HTTP_TLS_CERT"));
        assert!(names.contains(&"RILL_HTTP_API_TOKEN_FILE"));
        assert!(names.contains(&"RILL_TLS_CLIENT_CA_FILE"));
        assert!(names.contains(&"RILL_AUTH_SECRET"));
        assert!(names.contains(&"RILL_AUTH_PUBLISH"));
        assert!(names.contains(&"RILL_HOOKS_ON_PUBLISH"));
        assert!(names.contains(&"RILL_LIMITS_MAX_CONNECTIONS_PER_IP"));
        assert!(names.contains(&"RILL_DATABASE_URL"));
        assert!(names.contains(&"RILL_CLUSTER_REDIS"));
        assert!(names.contains(&"RILL_CLUSTER_NODE_ID"));
        assert_eq!(names.len(), 65);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), keys.len(), "ambiguous environment names");
    }

    #[test]
    fn cluster_is_off_by_default_and_checked_when_on() {
        let c = Config::default();
        assert!(!c.cluster.enabled());
        assert_eq!(c.cluster.ttl, Duration::from_secs(4));
        assert_eq!(Config::from_yaml_str("cluster:\n").unwrap(), c);
        // Without redis the other keys are not checked (nothing uses them).
        Config::from_yaml_str("cluster:\n  advertise: nonsense\n").unwrap();

        let ok = Config::from_yaml_str(
            "cluster:\n  redis: redis://127.0.0.1:6379/0\n  node_id: a\n  \
             advertise: 10.0.0.1:8080\n  ttl: 3s\n",
        )
        .unwrap();
        assert!(ok.cluster.enabled());
        assert_eq!(ok.cluster.node_id(), "a");
        assert_eq!(ok.cluster.ttl, Duration::from_secs(3));
        assert_eq!(Config::from_yaml_str(&ok.to_yaml()).unwrap(), ok);

        let on = "cluster:\n  redis: redis://127.0.0.1:6379/0\n";
        let errors = errors_of(on);
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "cluster.advertise");
        assert!(errors.0[0].message.contains("must be set"), "{errors}");
        for (extra, key, says) in [
            (
                "  advertise: 0.0.0.0:8080\n",
                "cluster.advertise",
                "unspecified",
            ),
            ("  advertise: host\n", "cluster.advertise", "no port"),
            ("  advertise: host:0\n", "cluster.advertise", "invalid port"),
            (
                "  advertise: 'a b:80'\n",
                "cluster.advertise",
                "invalid host",
            ),
            ("  advertise: ::1:80\n", "cluster.advertise", "brackets"),
            (
                "  advertise: h:80\n  node_id: 'a b'\n",
                "cluster.node_id",
                "letters",
            ),
            (
                "  advertise: h:80\n  ttl: 1s\n",
                "cluster.ttl",
                "out of range",
            ),
            (
                "  advertise: h:80\n  ttl: 5s\n",
                "cluster.ttl",
                "reconnect_grace (5s)",
            ),
            (
                "  advertise: h:80\n  ttl: abc\n",
                "cluster.ttl",
                "invalid duration",
            ),
            (
                "  advertise: h:80\n  redis_url: x\n",
                "cluster.redis_url",
                "unknown field",
            ),
        ] {
            let errors = errors_of(&format!("{on}{extra}"));
            assert_eq!(errors.0[0].path, key, "{extra}: {errors}");
            assert!(errors.0[0].message.contains(says), "{extra}: {errors}");
        }
        let errors = errors_of("cluster:\n  redis: http://x\n  advertise: h:80\n");
        assert_eq!(errors.0[0].path, "cluster.redis", "{errors}");
        // A longer grace allows a longer ttl.
        Config::from_yaml_str(&format!(
            "{on}  advertise: '[::1]:8080'\n  ttl: 8s\npublish:\n  reconnect_grace: 10s\n"
        ))
        .unwrap();
        // From the environment, as a container would set it.
        let mut c = Config::default();
        c.apply_env(env(&[
            ("RILL_CLUSTER_REDIS", "redis://10.0.0.9:6379"),
            ("RILL_CLUSTER_ADVERTISE", "node-b.example:8080"),
        ]))
        .unwrap();
        assert_eq!(c.cluster.advertise, "node-b.example:8080");
    }

    #[test]
    fn cluster_node_id_defaults_to_the_host_name() {
        assert_eq!(node_id_from_host("edge-1.example\n"), "edge-1.example");
        assert_eq!(node_id_from_host("a b/c"), "a-b-c");
        assert_eq!(node_id_from_host(""), "rill");
        assert_eq!(node_id_from_host(&"x".repeat(100)).len(), MAX_NODE_ID);
        assert!(valid_node_id(&ClusterConfig::default().node_id()));
    }

    #[test]
    fn cluster_redis_password_is_redacted_and_kept() {
        let running = Config::from_yaml_str(
            "cluster:\n  redis: redis://:hunter2@10.0.0.9:6379/0\n  advertise: h:80\n",
        )
        .unwrap();
        let shown = running.redacted().to_yaml();
        assert!(!shown.contains("hunter2"), "{shown}");
        let back = Config::from_yaml_str_with(&shown, |c| c.keep_secrets(&running)).unwrap();
        assert_eq!(back, running);
        let e = Config::from_yaml_str(&shown).unwrap_err();
        assert_eq!(e.0[0].path, "cluster.redis", "{e}");
    }

    #[test]
    fn tls_defaults_off_and_section_may_be_empty() {
        let c = Config::default();
        assert_eq!(c.http.tls.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(
            (c.http.tls.cert.as_ref(), c.http.tls.key.as_ref()),
            (None, None)
        );
        assert!(c.http.tls.files().is_none());
        assert_eq!(Config::from_yaml_str("http:\n  tls:\n").unwrap(), c);
        let c = Config::from_yaml_str("http:\n  tls:\n    listen: 127.0.0.1:9443\n").unwrap();
        assert_eq!(c.http.tls.listen.port(), 9443);
        assert!(c.http.tls.files().is_none(), "no files: HTTPS stays off");
        let errors = errors_of("http:\n  tls:\n    crt: a.pem\n");
        assert_eq!(errors.0[0].path, "http.tls.crt");
        assert!(errors.0[0].message.contains("`cert`"), "{errors}");
        assert_eq!(errors.0[0].line, Some(3));
    }

    /// A self-signed pair written to a fresh directory.
    fn tls_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (dir, cert, key)
    }

    fn tls_yaml(cert: &Path, key: &Path) -> String {
        format!(
            "http:\n  tls:\n    listen: 127.0.0.1:8443\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        )
    }

    #[test]
    fn tls_files_are_checked() {
        let (dir, cert, key) = tls_files();
        let c = Config::from_yaml_str(&tls_yaml(&cert, &key)).unwrap();
        assert_eq!(c.http.tls.files(), Some((cert.as_path(), key.as_path())));

        // One without the other.
        let errors = errors_of(&format!("http:\n  tls:\n    cert: {}\n", cert.display()));
        assert_eq!(errors.0[0].path, "http.tls.key");
        assert!(errors.0[0].message.contains("must be set"), "{errors}");
        let errors = errors_of(&format!("http:\n  tls:\n    key: {}\n", key.display()));
        assert_eq!(errors.0[0].path, "http.tls.cert");

        // Missing file.
        let missing = dir.path().join("missing.pem");
        let errors = errors_of(&tls_yaml(&missing, &key));
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "http.tls.cert");
        assert!(
            errors
                .to_string()
                .starts_with("http.tls.cert: cannot read ")
                && errors.to_string().contains("missing.pem"),
            "{errors}"
        );
        let errors = errors_of(&tls_yaml(&cert, &missing));
        assert_eq!(errors.0[0].path, "http.tls.key");

        // Bad PEM.
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let errors = errors_of(&tls_yaml(&bad, &key));
        assert_eq!(errors.0[0].path, "http.tls.cert");
        assert!(errors.0[0].message.contains("invalid PEM"), "{errors}");
        let errors = errors_of(&tls_yaml(&cert, &bad));
        assert_eq!(errors.0[0].path, "http.tls.key");
        assert!(errors.0[0].message.contains("bad.pem"), "{errors}");
        // The two swapped.
        let errors = errors_of(&tls_yaml(&key, &cert));
        assert_eq!(errors.0[0].path, "http.tls.cert");
        assert!(
            errors.0[0].message.contains("no PEM certificate"),
            "{errors}"
        );
    }

    #[test]
    fn tls_needs_its_own_address() {
        let (_dir, cert, key) = tls_files();
        for (plain, secure) in [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
        ] {
            let text = format!(
                "http:\n  listen: {plain}\n  tls:\n    listen: {secure}\n    cert: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            let errors = errors_of(&text);
            assert_eq!(errors.0[0].path, "http.tls.listen", "{plain} {secure}");
            assert!(
                errors.0[0].message.contains("overlaps http.listen"),
                "{errors}"
            );
        }
        let text = format!(
            "http:\n  listen: 127.0.0.1:8080\n  tls:\n    listen: 127.0.0.2:8080\n    cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        Config::from_yaml_str(&text).unwrap();
    }

    #[test]
    fn tls_from_environment() {
        let (_dir, cert, key) = tls_files();
        let mut config = Config::default();
        config
            .apply_env(env(&[
                ("RILL_HTTP_TLS_CERT", cert.to_str().unwrap()),
                ("RILL_HTTP_TLS_KEY", key.to_str().unwrap()),
                ("RILL_HTTP_TLS_LISTEN", "127.0.0.1:9443"),
            ]))
            .unwrap();
        assert_eq!(
            config.http.tls.files(),
            Some((cert.as_path(), key.as_path()))
        );
        assert_eq!(config.http.tls.listen.port(), 9443);
        let errors = Config::default()
            .apply_env(env(&[
                ("RILL_HTTP_TLS_CERT", "/nonexistent/cert.pem"),
                ("RILL_HTTP_TLS_KEY", key.to_str().unwrap()),
            ]))
            .unwrap_err();
        assert_eq!(errors.0[0].path, "http.tls.cert");
        assert!(
            errors.0[0].message.contains("RILL_HTTP_TLS_CERT"),
            "{errors}"
        );
    }

    #[test]
    fn display_has_line_numbers() {
        let errors = errors_of("log:\n  level: info\npublish:\n  idle_timeout: abc\n");
        assert_eq!(
            errors.to_string(),
            "publish.idle_timeout: invalid duration \"abc\": expected a duration like \"10s\" (line 4, column 17)"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let errors = errors_of("publish:\n  idle_timeout: [\n");
        let e = &errors.0[0];
        assert!(e.line.is_some(), "{e:?}");
    }

    #[test]
    fn load_missing_file_names_path() {
        let path = Path::new("/nonexistent/dir/rill.yaml");
        let errors = Config::load(path).unwrap_err();
        assert_eq!(errors.0[0].path, "/nonexistent/dir/rill.yaml");
        assert!(errors.to_string().contains("/nonexistent/dir/rill.yaml"));
    }

    #[test]
    fn load_reads_file() {
        let dir = std::env::temp_dir().join(format!("rill-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rill.yaml");
        std::fs::write(&path, "http:\n  listen: 127.0.0.1:8081\n").unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.http.listen.port(), 8081);
        std::fs::write(&path, "").unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn secrets_are_redacted_and_kept_on_the_way_back() {
        let running = Config::from_yaml_str(
            "http:\n  api_token: tok\nplugins:\n  srt:\n    passphrase: abcdefghij\n    \
             latency: 120\n    stream_keys: {live/a: k1}\n    nested: {password: pw, port: 1}\n",
        )
        .unwrap();
        let shown = running.redacted();
        assert_eq!(shown.http.api_token.as_deref(), Some(REDACTED));
        let text = shown.to_yaml();
        for secret in ["tok", "abcdefghij", "k1", "pw"] {
            assert!(
                !text.contains(&format!(" {secret}\n")),
                "{secret} in\n{text}"
            );
        }
        assert!(
            text.contains("latency: 120") && text.contains("port: 1"),
            "{text}"
        );

        // Sent back as shown: every secret restored.
        let back = Config::from_yaml_str_with(&text, |c| c.keep_secrets(&running)).unwrap();
        assert_eq!(back, running);
        // Left out: kept too; a new value wins.
        let partial = "plugins:\n  srt:\n    latency: 200\n    passphrase: newpassphrase\n";
        let back = Config::from_yaml_str_with(partial, |c| c.keep_secrets(&running)).unwrap();
        assert_eq!(back.http.token(), Some("tok"));
        assert_eq!(
            back.plugins["srt"]["passphrase"].as_str(),
            Some("newpassphrase")
        );
        assert_eq!(
            back.plugins["srt"]["stream_keys"]["live/a"].as_str(),
            Some("k1")
        );
        assert_eq!(back.plugins["srt"]["latency"].as_u64(), Some(200));
        // Without a running value to keep, the placeholder is refused.
        let e = Config::from_yaml_str("http:\n  api_token: <redacted>\n").unwrap_err();
        assert_eq!(e.0[0].path, "http.api_token");
        let e = Config::from_yaml_str("plugins:\n  x:\n    secret: <redacted>\n").unwrap_err();
        assert_eq!(e.0[0].path, "plugins.x.secret");
    }

    #[test]
    fn named_files_are_regular_and_small() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_named_file(Path::new("/dev/zero"), 1024)
            .unwrap_err()
            .contains("not a regular file"));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Returns at once (no writer would ever come).
        assert!(read_named_file(&fifo, 1024)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read_named_file(dir.path(), 1024)
            .unwrap_err()
            .contains("not a regular file"));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2000]).unwrap();
        assert!(read_named_file(&big, 1024)
            .unwrap_err()
            .contains("2000 bytes"));
        assert_eq!(read_named_file(&big, 2000).unwrap().len(), 2000);
    }

    #[test]
    fn api_token_file_is_read_and_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "  abc123\n").unwrap();
        let yaml = format!("http:\n  api_token_file: {}\n", f.display());
        let c = Config::from_yaml_str(&yaml).unwrap();
        assert_eq!(c.http.token(), Some("abc123"));
        assert!(!c.redacted().to_yaml().contains("abc123"));
        let both = format!("{yaml}  api_token: x\n");
        assert_eq!(
            Config::from_yaml_str(&both).unwrap_err().0[0].path,
            "http.api_token"
        );
        std::fs::write(&f, "\n").unwrap();
        let e = Config::from_yaml_str(&yaml).unwrap_err();
        assert!(e.0[0].file && e.0[0].path == "http.api_token_file", "{e}");
        let e = Config::from_yaml_str("http:\n  api_token_file: /dev/zero\n").unwrap_err();
        assert!(e.0[0].message.contains("not a regular file"), "{e}");
    }
}
