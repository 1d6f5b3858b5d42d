//! The `plugins.relay` section:
//!
//! ```yaml
//! plugins:
//!   relay:
//!     pulls:                       # pulled from the start, for ever
//!       - url: rtmp://10.0.0.9/live/cam1     # rtmp(s)://, http(s)://….flv, http(s)://….m3u8
//!         stream: cams/cam1        # the local stream (app/name)
//!       - url: rtsp://admin:secret@10.0.0.7/Streaming/Channels/101   # port 554
//!         stream: cams/door
//!       - url: "srt://10.0.0.8:9000?streamid=#!::r=live/x,m=request&latency=200"
//!         stream: cams/srt         # srt://ip:port (no names, no default port)
//!     pushes:                      # a published stream matching a rule is forwarded
//!       - match: "^live/(.+)$"     # regex on the stream path
//!         url: rtmp://backup.example/live/$1   # $1… are the regex's groups
//!       - match: "^live/(.+)$"     # rtmp(s)://, srt:// (the stream id says
//!         url: "srt://10.0.0.5:8890?streamid=publish:live/$1"   # publish), rtsp://
//!     on_demand:                   # a player waits for a stream nobody publishes
//!       - match: "^cams/(.+)$"
//!         url: rtmp://10.0.0.9/live/$1
//!         stop_on_idle: 30s        # the pull stops this long after its last player
//!     cluster: true                # pull from the owning node (hosts with `cluster:`)
//!     cluster_stop_on_idle: 10s
//!     retry_initial: 1s            # backoff after a failure, doubling ...
//!     retry_max: 30s               # ... up to this
//!     stall_timeout: 10s           # nothing received (RTSP, SRT: no media) this
//!                                  # long: the pull failed; also the RTSP answer
//!                                  # and SRT handshake deadline; HLS: a request
//!                                  # unanswered, or a playlist that lists nothing
//!                                  # new (at least 3 target durations)
//!     max_pulls: 256
//!     max_pushes: 256
//! ```

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::source::Url;

const MAX_RULES: usize = 64;

#[derive(Debug, Clone)]
pub struct Config {
    pub pulls: Vec<(Url, String)>,
    pub pushes: Vec<Rule>,
    pub on_demand: Vec<Rule>,
    pub cluster: bool,
    pub cluster_stop_on_idle: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub stall_timeout: Duration,
    pub max_pulls: usize,
    pub max_pushes: usize,
}

/// `match` → `url` with `$1`….
#[derive(Debug, Clone)]
pub struct Rule {
    pub matcher: Regex,
    pub url: String,
    pub stop_on_idle: Duration,
}

impl Rule {
    /// The URL for `path`, when it matches.
    pub fn url_for(&self, path: &str) -> Option<Result<Url, String>> {
        let caps = self.matcher.captures(path)?;
        let mut out = String::new();
        caps.expand(&self.url, &mut out);
        Some(Url::parse(&out))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    pulls: Vec<RawPull>,
    pushes: Vec<RawRule>,
    on_demand: Vec<RawRule>,
    cluster: bool,
    #[serde(with = "humantime_serde")]
    cluster_stop_on_idle: Duration,
    #[serde(with = "humantime_serde")]
    retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    retry_max: Duration,
    #[serde(with = "humantime_serde")]
    stall_timeout: Duration,
    max_pulls: usize,
    max_pushes: usize,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            pulls: Vec::new(),
            pushes: Vec::new(),
            on_demand: Vec::new(),
            cluster: true,
            cluster_stop_on_idle: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
            max_pulls: 256,
            max_pushes: 256,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPull {
    url: String,
    stream: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    matcher: String,
    url: String,
    #[serde(default, with = "humantime_serde")]
    stop_on_idle: Option<Duration>,
}

impl Config {
    pub fn parse(yaml: &str) -> Result<Config, String> {
        let raw: Raw = if yaml.trim().is_empty() {
            Raw::default()
        } else {
            serde_yaml::from_str(yaml).map_err(|e| format!("relay config: {e}"))?
        };
        if raw.pulls.len() > MAX_RULES
            || raw.pushes.len() > MAX_RULES
            || raw.on_demand.len() > MAX_RULES
        {
            return Err(format!(
                "relay config: at most {MAX_RULES} pulls, pushes and on_demand rules each"
            ));
        }
        let mut pulls = Vec::new();
        for p in raw.pulls {
            let url = Url::parse(&p.url).map_err(|e| format!("relay pulls: {e}"))?;
            check_stream(&p.stream).map_err(|e| format!("relay pulls: {e}"))?;
            pulls.push((url, p.stream));
        }
        let rules = |list: Vec<RawRule>, what: &str| -> Result<Vec<Rule>, String> {
            list.into_iter()
                .map(|r| {
                    let matcher = Regex::new(&r.matcher)
                        .map_err(|e| format!("relay {what}: match {:?}: {e}", r.matcher))?;
                    Ok(Rule {
                        matcher,
                        url: r.url,
                        stop_on_idle: r.stop_on_idle.unwrap_or(Duration::from_secs(30)),
                    })
                })
                .collect()
        };
        if raw.retry_initial.is_zero() || raw.retry_max < raw.retry_initial {
            return Err(
                "relay: retry_initial must be above 0 and retry_max at least as long".into(),
            );
        }
        if raw.stall_timeout < Duration::from_secs(1) {
            return Err("relay: stall_timeout must be at least 1s".into());
        }
        Ok(Config {
            pulls,
            pushes: rules(raw.pushes, "pushes")?,
            on_demand: rules(raw.on_demand, "on_demand")?,
            cluster: raw.cluster,
            cluster_stop_on_idle: raw.cluster_stop_on_idle,
            retry_initial: raw.retry_initial,
            retry_max: raw.retry_max,
            stall_timeout: raw.stall_timeout,
            max_pulls: raw.max_pulls,
            max_pushes: raw.max_pushes,
        })
    }
}

/// A local stream path: `app/name`, no empty or dot segments.
pub fn check_stream(path: &str) -> Result<(), String> {
    let ok = path.len() <= 256
        && path.contains('/')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{path:?} is not a stream path (app/name)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_expands() {
        let c = Config::parse(
            "pulls: [{url: 'rtmp://h/live/a', stream: cams/a}]\n\
             on_demand: [{match: '^cams/(.+)$', url: 'rtmp://h/live/$1', stop_on_idle: 5s}]\n",
        )
        .unwrap();
        assert_eq!(c.pulls[0].1, "cams/a");
        let r = &c.on_demand[0];
        assert_eq!(r.stop_on_idle, Duration::from_secs(5));
        assert_eq!(r.url_for("cams/x").unwrap().unwrap().name, "x");
        assert!(r.url_for("live/x").is_none());
        assert!(c.cluster);
    }

    #[test]
    fn rtsp_and_srt_urls() {
        let c = Config::parse(
            "pulls:\n  - {url: 'rtsp://u:p@10.0.0.7/ch/101', stream: cams/door}\n  \
             - url: srt://10.0.0.8:9000?streamid=#!::r=live/x,m=request&latency=200\n    \
               stream: cams/srt\n\
             pushes: [{match: '^live/(.+)$', url: 'srt://10.0.0.5:8890?streamid=publish:live/$1'}]\n",
        )
        .unwrap();
        assert_eq!(c.pulls[0].0.addr, "10.0.0.7:554");
        assert_eq!(
            c.pulls[1].0.query(),
            "streamid=#!::r=live/x,m=request&latency=200"
        );
        let u = c.pushes[0].url_for("live/a").unwrap().unwrap();
        assert_eq!(u.query(), "streamid=publish:live/a");
        assert!(Config::parse("pulls: [{url: 'srt://host.example:9000', stream: a/b}]").is_err());
    }

    #[test]
    fn refuses_bad_input() {
        assert!(Config::parse("pulls: [{url: 'ftp://h/a', stream: a/b}]").is_err());
        assert!(Config::parse("pulls: [{url: 'rtmp://h/a/b', stream: '../x'}]").is_err());
        assert!(Config::parse("on_demand: [{match: '(', url: x}]").is_err());
        assert!(Config::parse("retry_initial: 0s").is_err());
        assert!(Config::parse("bogus: 1").is_err());
        assert!(Config::parse("").is_ok());
    }
}
