//! The auth policy compiled from `auth:` (regexes built, addresses parsed,
//! the HMAC key made), and the synchronous part of every decision.

use std::collections::HashMap;
use std::net::IpAddr;

use regex::Regex;
use rill_abi::{RILL_ERR_DENIED, RILL_ERR_UNAUTHORIZED};
use ring::hmac;

use super::config::{AuthConfig, Method, Methods};
use super::token::{self, TokenError};
use super::{Action, Refusal, Request};

/// An address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    bits: u128,
    prefix: u8,
    v4: bool,
}

/// `10.0.0.0/8`, `::1/128`, `192.168.1.7` (one address), else `None`.
pub fn parse_net(s: &str) -> Option<Net> {
    let (addr, prefix) = match s.trim().split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (s.trim(), None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let (bits, max, v4) = match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32, true),
        IpAddr::V6(v6) => (u128::from(v6), 128, false),
    };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(Net { bits, prefix, v4 })
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            ip => ip,
        };
        let (bits, width) = match ip {
            IpAddr::V4(v4) if self.v4 => (u32::from(v4) as u128, 32),
            IpAddr::V6(v6) if !self.v4 => (u128::from(v6), 128),
            _ => return false,
        };
        if self.prefix == 0 {
            return true;
        }
        let shift = width - self.prefix as u32;
        bits >> shift == self.bits >> shift
    }
}

struct User {
    user: String,
    password: String,
    publish: Option<Regex>,
    play: Option<Regex>,
}

struct Rule {
    pattern: Regex,
    publish: Option<Methods>,
    play: Option<Methods>,
}

/// `auth:` ready to decide with.
pub struct Policy {
    publish: Methods,
    play: Methods,
    rules: Vec<Rule>,
    key: Option<hmac::Key>,
    keys: HashMap<String, String>,
    users: Vec<User>,
    publish_allow: Vec<Net>,
    publish_deny: Vec<Net>,
    play_allow: Vec<Net>,
    play_deny: Vec<Net>,
}

/// What the synchronous checks concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Refuse(Refusal),
    /// Only the webhook can say.
    AskHook,
}

fn nets(list: &[String]) -> Vec<Net> {
    list.iter().filter_map(|s| parse_net(s)).collect()
}

impl Policy {
    /// Compiles a validated section (invalid parts are skipped: validation
    /// reported them already).
    pub fn new(c: &AuthConfig) -> Policy {
        let re = |s: &Option<String>| s.as_deref().and_then(|s| Regex::new(s).ok());
        Policy {
            publish: c.publish.clone(),
            play: c.play.clone(),
            rules: c
                .rules
                .iter()
                .filter_map(|r| {
                    Some(Rule {
                        pattern: Regex::new(&r.pattern).ok()?,
                        publish: r.publish.clone(),
                        play: r.play.clone(),
                    })
                })
                .collect(),
            key: c
                .secret
                .as_deref()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())),
            keys: c
                .keys
                .iter()
                .map(|(p, k)| (p.trim_matches('/').to_owned(), k.clone()))
                .collect(),
            users: c
                .users
                .iter()
                .map(|u| User {
                    user: u.user.clone(),
                    password: u.password.clone(),
                    publish: re(&u.publish),
                    play: re(&u.play),
                })
                .collect(),
            publish_allow: nets(&c.publish_allow),
            publish_deny: nets(&c.publish_deny),
            play_allow: nets(&c.play_allow),
            play_deny: nets(&c.play_deny),
        }
    }

    /// The methods that apply to `action` on `path`.
    pub fn methods(&self, action: Action, path: &str) -> &Methods {
        for r in &self.rules {
            if r.pattern.is_match(path) {
                let m = match action {
                    Action::Publish => &r.publish,
                    Action::Play => &r.play,
                };
                if let Some(m) = m {
                    return m;
                }
            }
        }
        match action {
            Action::Publish => &self.publish,
            Action::Play => &self.play,
        }
    }

    /// The checks that need nobody else: IP rules, then the methods in
    /// order, the first that passes allowing. `api_key` looks up a key set
    /// through the API; `now` is Unix seconds.
    pub fn decide(
        &self,
        req: &Request<'_>,
        api_key: impl Fn(&str) -> Option<String>,
        now: u64,
    ) -> Outcome {
        let (allow, deny) = match req.action {
            Action::Publish => (&self.publish_allow, &self.publish_deny),
            Action::Play => (&self.play_allow, &self.play_deny),
        };
        if let Some(ip) = req.client {
            if deny.iter().any(|n| n.contains(ip)) {
                return Outcome::Refuse(Refusal::new(RILL_ERR_DENIED, "ip_denied"));
            }
            if !allow.is_empty() && !allow.iter().any(|n| n.contains(ip)) {
                return Outcome::Refuse(Refusal::new(RILL_ERR_DENIED, "ip_not_allowed"));
            }
        } else if !allow.is_empty() {
            return Outcome::Refuse(Refusal::new(RILL_ERR_DENIED, "ip_not_allowed"));
        }
        let methods = self.methods(req.action, req.path);
        // The most telling reason among the methods that failed.
        let mut why = "no_credentials";
        for m in &methods.0 {
            match m {
                Method::Open => return Outcome::Allow,
                Method::Token => {
                    let Some(key) = &self.key else { continue };
                    let token = req.creds.token.or(req.param("token"));
                    match token::verify(key, req.action, req.path, req.param("expires"), token, now)
                    {
                        Ok(()) => return Outcome::Allow,
                        Err(TokenError::Missing) => {}
                        Err(TokenError::Expired) => why = "token_expired",
                        Err(TokenError::Invalid) => why = "bad_token",
                    }
                }
                Method::Key => {
                    let given = [req.param("key"), req.creds.token];
                    if given.iter().all(Option::is_none) {
                        continue;
                    }
                    let want = self
                        .keys
                        .get(req.path)
                        .cloned()
                        .or_else(|| api_key(req.path));
                    let hit = want.is_some_and(|w| {
                        given
                            .iter()
                            .flatten()
                            .any(|g| ct_eq(g.as_bytes(), w.as_bytes()))
                    });
                    if hit && req.action == Action::Publish {
                        return Outcome::Allow;
                    }
                    if why == "no_credentials" {
                        why = "bad_key";
                    }
                }
                Method::User => {
                    let user = req.creds.user.or(req.param("user"));
                    let pass = req
                        .creds
                        .password
                        .or(req.param("pass"))
                        .or(req.param("password"));
                    let (Some(user), Some(pass)) = (user, pass) else {
                        continue;
                    };
                    let ok = self.users.iter().any(|u| {
                        let may = match req.action {
                            Action::Publish => &u.publish,
                            Action::Play => &u.play,
                        };
                        // Evaluate the password for every entry: the time
                        // taken does not tell which user names exist.
                        let pw = ct_eq(pass.as_bytes(), u.password.as_bytes());
                        pw && u.user == user && may.as_ref().is_some_and(|r| r.is_match(req.path))
                    });
                    if ok {
                        return Outcome::Allow;
                    }
                    if why == "no_credentials" {
                        why = "bad_user";
                    }
                }
                Method::Hook => {}
            }
        }
        if methods.has(Method::Hook) {
            return Outcome::AskHook;
        }
        Outcome::Refuse(Refusal::new(RILL_ERR_UNAUTHORIZED, why))
    }

    /// Whether any policy here asks for users (HTTP answers 401 with a
    /// Basic challenge then).
    pub fn wants_user(&self, action: Action, path: &str) -> bool {
        self.methods(action, path).has(Method::User)
    }
}

/// Equality whose time depends on the lengths only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Creds;

    fn policy(yaml: &str) -> Policy {
        let c: AuthConfig = serde_yaml::from_str(yaml).unwrap();
        assert!(
            super::super::config::validate(&c, &Default::default()).is_empty()
                || yaml.contains("hook")
        );
        Policy::new(&c)
    }

    fn req<'a>(action: Action, path: &'a str, query: &'a str, ip: &str) -> Request<'a> {
        Request::new(
            action,
            path,
            query,
            ip.parse().ok(),
            Creds::default(),
            "test",
        )
    }

    fn refused(o: Outcome) -> &'static str {
        match o {
            Outcome::Refuse(r) => r.reason,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn nets() {
        let n = parse_net("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(parse_net("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(parse_net("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(parse_net("1.2.3.4/33").is_none());
        assert!(parse_net("host/8").is_none());
    }

    #[test]
    fn open_by_default_and_ip_rules() {
        let p = policy("publish_deny: [127.0.0.2]\nplay_allow: [10.0.0.0/8]");
        let no_key = |_: &str| None;
        assert_eq!(
            p.decide(&req(Action::Publish, "live/x", "", "127.0.0.1"), no_key, 0),
            Outcome::Allow
        );
        assert_eq!(
            refused(p.decide(&req(Action::Publish, "live/x", "", "127.0.0.2"), no_key, 0)),
            "ip_denied"
        );
        assert_eq!(
            refused(p.decide(&req(Action::Play, "live/x", "", "127.0.0.1"), no_key, 0)),
            "ip_not_allowed"
        );
        assert_eq!(
            p.decide(&req(Action::Play, "live/x", "", "10.9.9.9"), no_key, 0),
            Outcome::Allow
        );
    }

    #[test]
    fn tokens_keys_users_and_rules() {
        let p = policy(
            "publish: [token, key, user]\nplay: token\nsecret: 0123456789abcdef\n\
             keys: {live/k: s3cret}\n\
             users: [{user: u, password: pw, publish: '^live/', play: '.*'}]\n\
             rules: [{match: '^free/', play: open}]",
        );
        let no_key = |_: &str| None;
        let t = token::sign("0123456789abcdef", Action::Publish, "live/x", 50);
        let q = format!("expires=50&token={t}");
        let d = |a, path, q: &str| p.decide(&req(a, path, q, "127.0.0.1"), no_key, 10);
        assert_eq!(d(Action::Publish, "live/x", &q), Outcome::Allow);
        assert_eq!(refused(d(Action::Play, "live/x", &q)), "bad_token");
        assert_eq!(refused(d(Action::Publish, "live/y", &q)), "bad_token");
        assert_eq!(
            refused(p.decide(&req(Action::Publish, "live/x", &q, "::1"), no_key, 51)),
            "token_expired"
        );
        assert_eq!(refused(d(Action::Publish, "live/x", "")), "no_credentials");
        assert_eq!(d(Action::Publish, "live/k", "key=s3cret"), Outcome::Allow);
        assert_eq!(
            refused(d(Action::Publish, "live/k", "key=wrong")),
            "bad_key"
        );
        assert_eq!(
            refused(d(Action::Publish, "live/x", "key=s3cret")),
            "bad_key"
        );
        assert_eq!(
            p.decide(
                &req(Action::Publish, "live/z", "key=api", "::1"),
                |p: &str| { (p == "live/z").then(|| "api".to_owned()) },
                0
            ),
            Outcome::Allow
        );
        assert_eq!(
            d(Action::Publish, "live/u", "user=u&pass=pw"),
            Outcome::Allow
        );
        assert_eq!(
            refused(d(Action::Publish, "other/u", "user=u&pass=pw")),
            "bad_user"
        );
        assert_eq!(
            refused(d(Action::Publish, "live/u", "user=u&pass=no")),
            "bad_user"
        );
        assert_eq!(d(Action::Play, "free/x", ""), Outcome::Allow);
        assert_eq!(refused(d(Action::Play, "live/x", "")), "no_credentials");
    }

    #[test]
    fn hook_after_the_rest() {
        let p = policy("publish: [key, hook]\nkeys: {live/k: s3cret}");
        let no_key = |_: &str| None;
        assert_eq!(
            p.decide(
                &req(Action::Publish, "live/k", "key=s3cret", "::1"),
                no_key,
                0
            ),
            Outcome::Allow
        );
        assert_eq!(
            p.decide(&req(Action::Publish, "live/k", "", "::1"), no_key, 0),
            Outcome::AskHook
        );
    }
}
