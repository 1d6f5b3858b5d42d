//! The `plugins.record` section:
//!
//! ```yaml
//! plugins:
//!   record:
//!     rules:                      # a published stream matching a rule is recorded
//!       - match: "^live/.+"       # regex on the stream path (app/name)
//!         format: fmp4            # fmp4, flv, mp4 (moov at close) or ts
//!         segment: 60s            # files cut at the first key frame past this
//!         path: "recordings/{app}/{stream}/{start}.{ext}"
//!                                 # relative to state_dir, or absolute in storage.roots;
//!                                 # {path} {app} {stream} {start} {ext} {format} {rule}
//!         max_age: 0s             # retention: files older than this are deleted (0: keep)
//!         max_bytes: 0            # retention: oldest deleted past this total (0: no cap)
//!         name: ""                # the rule's name (retention group); default rule1, rule2, ...
//!     min_free: 512MiB            # recording stops while the disk has less free
//!     fragment: 1s                # fMP4 fragment length (what a crash may lose)
//!     check_interval: 5s          # free space and retention checks
//! ```

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::writer::Format;

pub const DEFAULT_PATH: &str = "recordings/{app}/{stream}/{start}.{ext}";
/// Longest segment: the MP4 sample index of one file stays in memory.
const MAX_SEGMENT: Duration = Duration::from_secs(6 * 3600);
const MAX_RULES: usize = 64;

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub matcher: Regex,
    pub format: Format,
    pub segment: Duration,
    pub path: String,
    pub max_age: Duration,
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<Rule>,
    /// What a recording started through the API uses when no rule
    /// matches its stream: fMP4, 60 s segments, the default path.
    pub manual: Rule,
    pub min_free: u64,
    pub fragment: Duration,
    pub check_interval: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    rules: Vec<RawRule>,
    min_free: Option<Size>,
    #[serde(with = "humantime_serde")]
    fragment: Option<Duration>,
    #[serde(with = "humantime_serde")]
    check_interval: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    matcher: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default, with = "humantime_serde")]
    segment: Option<Duration>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<Duration>,
    #[serde(default)]
    max_bytes: Option<Size>,
    #[serde(default)]
    name: Option<String>,
}

/// A byte count: a number, or a string with a unit (`512MiB`, `2GB`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => parse_size(t),
        }
    }
}

pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{t:?}: expected a byte count such as 512MiB"))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1000,
        "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "T" | "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        u => return Err(format!("{t:?}: unknown unit {u:?}")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("{t:?}: too large"))
}

impl Config {
    /// Parses the section; errors name the key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = if matches!(text.trim(), "" | "{}" | "null" | "~") {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| format!("plugins.record: {e}"))?
        };
        if raw.rules.len() > MAX_RULES {
            return Err(format!("plugins.record.rules: at most {MAX_RULES}"));
        }
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let key = |k: &str| format!("plugins.record.rules[{i}].{k}");
            let matcher = Regex::new(&r.matcher).map_err(|e| format!("{}: {e}", key("match")))?;
            let format = match r.format.as_deref() {
                None => Format::Fmp4,
                Some(f) => Format::parse(f).ok_or_else(|| {
                    format!("{}: {f:?}: expected fmp4, flv, mp4 or ts", key("format"))
                })?,
            };
            let segment = r.segment.unwrap_or(Duration::from_secs(60));
            if segment < Duration::from_secs(1) || segment > MAX_SEGMENT {
                return Err(format!("{}: between 1s and 6h", key("segment")));
            }
            let path = r.path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
            check_template(&path).map_err(|e| format!("{}: {e}", key("path")))?;
            let max_bytes = match r.max_bytes {
                Some(s) => s
                    .bytes()
                    .map_err(|e| format!("{}: {e}", key("max_bytes")))?,
                None => 0,
            };
            let name = r.name.unwrap_or_else(|| format!("rule{}", i + 1));
            if name.is_empty() || name.len() > 64 {
                return Err(format!("{}: 1 to 64 characters", key("name")));
            }
            rules.push(Rule {
                name,
                matcher,
                format,
                segment,
                path,
                max_age: r.max_age.unwrap_or(Duration::ZERO),
                max_bytes,
            });
        }
        let min_free = match raw.min_free {
            Some(s) => s
                .bytes()
                .map_err(|e| format!("plugins.record.min_free: {e}"))?,
            None => 512 << 20,
        };
        let fragment = raw.fragment.unwrap_or(Duration::from_secs(1));
        if fragment < Duration::from_millis(100) || fragment > Duration::from_secs(60) {
            return Err("plugins.record.fragment: between 100ms and 60s".to_owned());
        }
        let check_interval = raw.check_interval.unwrap_or(Duration::from_secs(5));
        if check_interval < Duration::from_millis(100) || check_interval > Duration::from_secs(3600)
        {
            return Err("plugins.record.check_interval: between 100ms and 1h".to_owned());
        }
        Ok(Config {
            rules,
            manual: Rule {
                name: "manual".to_owned(),
                matcher: Regex::new(".*").map_err(|e| e.to_string())?,
                format: Format::Fmp4,
                segment: Duration::from_secs(60),
                path: DEFAULT_PATH.to_owned(),
                max_age: Duration::ZERO,
                max_bytes: 0,
            },
            min_free,
            fragment,
            check_interval,
        })
    }

    /// The first rule matching `path`.
    pub fn rule_for(&self, path: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.matcher.is_match(path))
    }
}

const VARS: &[&str] = &["path", "app", "stream", "start", "ext", "format", "rule"];

/// A template may use the known variables, must name a file and never
/// climbs out (`..`).
fn check_template(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 512 {
        return Err("1 to 512 characters".to_owned());
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{t:?}: unclosed {{"))?;
        let var = &rest[open + 1..open + close];
        if !VARS.contains(&var) {
            return Err(format!(
                "{t:?}: unknown variable {{{var}}} (known: {})",
                VARS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if t.split('/').any(|c| c == "..") {
        return Err(format!("{t:?}: .. is not allowed"));
    }
    if t.ends_with('/') {
        return Err(format!("{t:?}: names a directory"));
    }
    Ok(())
}

/// The file path for a recording of `stream` started at `start` (wall
/// µs). Stream paths are the host's (`[A-Za-z0-9_.-/]`), so the result
/// stays in the template's directory.
pub fn expand(rule: &Rule, stream: &str, start_us: i64) -> String {
    let (app, name) = stream.split_once('/').unwrap_or(("", stream));
    let t = std::time::UNIX_EPOCH + Duration::from_micros(start_us.max(0) as u64);
    // 2026-12-02T10:15:00.123Z → 20261202T101500.123Z: no colons in names.
    let start: String = humantime::format_rfc3339_millis(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let expanded = rule
        .path
        .replace("{path}", stream)
        .replace("{app}", app)
        .replace("{stream}", name)
        .replace("{start}", &start)
        .replace("{ext}", rule.format.ext())
        .replace("{format}", rule.format.name())
        .replace("{rule}", &rule.name);
    let clean: Vec<&str> = expanded
        .split('/')
        .filter(|c| *c != ".." && *c != "." && !c.is_empty())
        .collect();
    let lead = if rule.path.starts_with('/') { "/" } else { "" };
    format!("{lead}{}", clean.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let c = Config::parse(
            "rules:\n  - match: \"^live/.+\"\n    format: flv\n    segment: 10s\n    max_bytes: 1GiB\n    max_age: 7days\nmin_free: 100MiB\n",
        )
        .unwrap();
        assert_eq!(c.rules.len(), 1);
        let r = &c.rules[0];
        assert_eq!(
            (r.format, r.segment, r.max_bytes),
            (Format::Flv, Duration::from_secs(10), 1 << 30)
        );
        assert_eq!(r.max_age, Duration::from_secs(7 * 86400));
        assert_eq!(r.name, "rule1");
        assert_eq!(c.min_free, 100 << 20);
        assert_eq!(c.rule_for("live/x"), Some(0));
        assert_eq!(c.rule_for("other/x"), None);
        assert!(Config::parse("").unwrap().rules.is_empty());
    }

    #[test]
    fn refuses_bad_sections() {
        for bad in [
            "rules:\n  - match: \"(\"\n",
            "rules:\n  - match: x\n    format: avi\n",
            "rules:\n  - match: x\n    segment: 0s\n",
            "rules:\n  - match: x\n    path: \"../{stream}.mp4\"\n",
            "rules:\n  - match: x\n    path: \"{nope}.mp4\"\n",
            "rules:\n  - match: x\n    unknown: 1\n",
            "min_free: lots\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expands_paths() {
        let c = Config::parse("rules:\n  - match: .\n    format: mp4\n").unwrap();
        let p = expand(&c.rules[0], "live/cam1", 1_764_670_500_123_000);
        assert_eq!(p, "recordings/live/cam1/20251202T101500.123Z.mp4");
        let c = Config::parse("rules:\n  - match: .\n    path: /srv/rec/{path}/{start}.{ext}\n")
            .unwrap();
        assert!(expand(&c.rules[0], "a/b/c", 0).starts_with("/srv/rec/a/b/c/19700101T000000"));
    }
}
