//! The `auth:`, `hooks:` and `limits:` sections of `rill.yaml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// One way a client may prove it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Everyone.
    Open,
    /// A signed URL: `?expires=E&token=HMAC-SHA256(secret, "A:P:E")`.
    Token,
    /// A stream key (`?key=…`, or a bearer token), per stream.
    Key,
    /// A user and password from `auth.users`.
    User,
    /// The answer of the `hooks.on_publish` / `hooks.on_play` webhook.
    Hook,
}

/// Methods of which any one suffices. Written as one word or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Methods(pub Vec<Method>);

impl Default for Methods {
    fn default() -> Self {
        Methods(vec![Method::Open])
    }
}

impl Methods {
    pub fn has(&self, m: Method) -> bool {
        self.0.contains(&m)
    }
}

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Method),
            Many(Vec<Method>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(m)) => Ok(Methods(vec![m])),
            Ok(OneOrMany::Many(v)) if !v.is_empty() => Ok(Methods(v)),
            Ok(OneOrMany::Many(_)) => Err(serde::de::Error::custom(
                "an empty list allows nobody: name at least one of open, token, key, user, hook",
            )),
            Err(_) => Err(serde::de::Error::custom(
                "expected one of open, token, key, user, hook, or a list of them",
            )),
        }
    }
}

/// `auth:` section: who may publish and who may play.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How publishers prove they may publish: `open`, `token`, `key`,
    /// `user`, `hook`, or a list (any one suffices). Default `[open]`.
    pub publish: Methods,
    /// How players prove they may play. Default `[open]`.
    pub play: Methods,
    /// The HMAC-SHA256 key of signed URLs (`token`), at least 16
    /// characters. Default none.
    pub secret: Option<String>,
    /// Publish keys by stream (`live/cam1: "k3y"`), for `key`. More can be
    /// added through the API (`/api/v1/auth/keys`). Default none.
    pub keys: BTreeMap<String, String>,
    /// Users for `user`: `{user, password, publish: regex, play: regex}`;
    /// the regexes (matched against `app/stream`) say what each may do;
    /// a missing one allows nothing. Default none.
    pub users: Vec<UserConfig>,
    /// When set, only these addresses (CIDR, `10.0.0.0/8`, or single
    /// addresses) may publish. Default none (everyone).
    pub publish_allow: Vec<String>,
    /// These addresses may never publish. Default none.
    pub publish_deny: Vec<String>,
    /// When set, only these addresses may play. Default none.
    pub play_allow: Vec<String>,
    /// These addresses may never play. Default none.
    pub play_deny: Vec<String>,
    /// Overrides by stream: the first rule whose `match` regex matches
    /// `app/stream` replaces `publish` and/or `play` for it. Default none.
    pub rules: Vec<RuleConfig>,
}

/// One `auth.users` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub user: String,
    pub password: String,
    /// Streams (`app/stream`, a regex) this user may publish.
    #[serde(default)]
    pub publish: Option<String>,
    /// Streams this user may play.
    #[serde(default)]
    pub play: Option<String>,
}

/// One `auth.rules` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A regex matched against `app/stream` (use `^live/` for an app).
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub publish: Option<Methods>,
    #[serde(default)]
    pub play: Option<Methods>,
}

/// `hooks:` section: HTTP POSTs of JSON to the operator's service, like
/// SRS's `http_hooks`, nginx-rtmp's `on_publish` and ZLMediaKit's hooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Asked before a publish when `auth.publish` lists `hook`: a 2xx
    /// answer allows, anything else refuses. Default none.
    pub on_publish: Option<String>,
    /// Asked before a play when `auth.play` lists `hook`. Default none.
    pub on_play: Option<String>,
    /// Told when a publisher stops (answer ignored). Default none.
    pub on_publish_done: Option<String>,
    /// Told when a player stops (answer ignored). Default none.
    pub on_play_done: Option<String>,
    /// How long an `on_publish`/`on_play` answer may take, and each
    /// notification attempt. Default 5s.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
    /// Allow when the hook fails (no answer in time, unreachable, 5xx).
    /// Default false: refuse.
    pub fail_open: bool,
    /// Attempts after the first for `*_done` notifications (1 s, 2 s, 4 s
    /// apart). Default 3.
    pub retries: u32,
    /// Notifications waiting to be sent at most; more are dropped and
    /// counted. Default 1024.
    pub queue: usize,
    /// `on_publish`/`on_play` calls in flight at most; more are answered
    /// as failures (see `fail_open`). Default 256.
    pub max_in_flight: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            on_publish: None,
            on_play: None,
            on_publish_done: None,
            on_play_done: None,
            timeout: Duration::from_secs(5),
            fail_open: false,
            retries: 3,
            queue: 1024,
            max_in_flight: 256,
        }
    }
}

/// `limits:` section; 0 = no limit, the default for every key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Streams with a publisher at once.
    pub max_streams: usize,
    /// Players of one stream at once.
    pub max_players_per_stream: usize,
    /// Players of all streams at once.
    pub max_players: usize,
    /// Open connections from one IP address (TCP, every listener).
    pub max_connections_per_ip: usize,
    /// New connections from one IP address per second.
    pub max_new_connections_per_ip_per_s: usize,
    /// Open connections on one listener (each plugin's TCP listener, HTTP,
    /// HTTPS). At the cap the listener stops accepting until a connection
    /// ends; new clients wait in the kernel's backlog. 0 (the default):
    /// half the process's open-file limit, which also caps any value set.
    pub max_connections_per_listener: usize,
}

/// The problems in these sections, as (dotted key, message).
pub fn validate(auth: &AuthConfig, hooks: &HooksConfig) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut fail = |k: String, m: String| errors.push((k, m));
    let uses = |m: Method| {
        auth.publish.has(m)
            || auth.play.has(m)
            || auth.rules.iter().any(|r| {
                r.publish.as_ref().is_some_and(|x| x.has(m))
                    || r.play.as_ref().is_some_and(|x| x.has(m))
            })
    };
    match auth.secret.as_deref() {
        Some(s) if s.chars().count() < 16 => fail(
            "auth.secret".into(),
            "is too short: use at least 16 characters (32 random bytes as hex is good)".into(),
        ),
        None if uses(Method::Token) => fail(
            "auth.secret".into(),
            "must be set when a policy uses token (signed URLs need the key)".into(),
        ),
        _ => {}
    }
    if uses(Method::User) && auth.users.is_empty() {
        fail(
            "auth.users".into(),
            "must list users when a policy uses user".into(),
        );
    }
    for (i, u) in auth.users.iter().enumerate() {
        if u.user.is_empty() || u.password.is_empty() {
            fail(
                format!("auth.users.{i}"),
                "needs a user and a password".into(),
            );
        }
        for (k, re) in [("publish", &u.publish), ("play", &u.play)] {
            if let Some(Err(e)) = re.as_deref().map(regex::Regex::new) {
                fail(format!("auth.users.{i}.{k}"), format!("bad regex: {e}"));
            }
        }
    }
    for (path, key) in &auth.keys {
        if key.is_empty() || path.trim_matches('/').is_empty() {
            fail(
                format!("auth.keys.{path}"),
                "needs a stream path and a non-empty key".into(),
            );
        }
    }
    for (i, r) in auth.rules.iter().enumerate() {
        if let Err(e) = regex::Regex::new(&r.pattern) {
            fail(format!("auth.rules.{i}.match"), format!("bad regex: {e}"));
        }
    }
    for (k, list) in [
        ("publish_allow", &auth.publish_allow),
        ("publish_deny", &auth.publish_deny),
        ("play_allow", &auth.play_allow),
        ("play_deny", &auth.play_deny),
    ] {
        for net in list {
            if super::rules::parse_net(net).is_none() {
                fail(
                    format!("auth.{k}"),
                    format!("{net:?} is not an address or CIDR block (10.0.0.0/8, ::1)"),
                );
            }
        }
    }
    let publish_hook = auth.publish.has(Method::Hook)
        || auth
            .rules
            .iter()
            .any(|r| r.publish.as_ref().is_some_and(|x| x.has(Method::Hook)));
    let play_hook = auth.play.has(Method::Hook)
        || auth
            .rules
            .iter()
            .any(|r| r.play.as_ref().is_some_and(|x| x.has(Method::Hook)));
    if publish_hook && hooks.on_publish.is_none() {
        fail(
            "hooks.on_publish".into(),
            "must be set when a publish policy uses hook".into(),
        );
    }
    if play_hook && hooks.on_play.is_none() {
        fail(
            "hooks.on_play".into(),
            "must be set when a play policy uses hook".into(),
        );
    }
    for (k, url) in [
        ("on_publish", &hooks.on_publish),
        ("on_play", &hooks.on_play),
        ("on_publish_done", &hooks.on_publish_done),
        ("on_play_done", &hooks.on_play_done),
    ] {
        if let Some(Err(e)) = url.as_deref().map(super::hooks::HookUrl::parse) {
            fail(format!("hooks.{k}"), e);
        }
    }
    if hooks.timeout.is_zero() {
        fail("hooks.timeout".into(), "must be greater than 0s".into());
    }
    if !(1..=1 << 20).contains(&hooks.queue) {
        fail("hooks.queue".into(), "expected 1 to 1048576".into());
    }
    if !(1..=1 << 16).contains(&hooks.max_in_flight) {
        fail("hooks.max_in_flight".into(), "expected 1 to 65536".into());
    }
    if hooks.retries > 10 {
        fail("hooks.retries".into(), "expected 0 to 10".into());
    }
    errors
}
