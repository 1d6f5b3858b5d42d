//! Reading a plugin's config section: the flat `key: value` YAML the
//! host hands over (`Host::config`), without a YAML library in the plugin,
//! and the value forms every plugin uses (sizes, durations, booleans).

use std::fmt;
use std::time::Duration;

/// A bad key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, or empty for the section as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The error located in the host's config: `plugins.<plugin>.<key>:
    /// message`.
    pub fn in_plugin(&self, plugin: &str) -> String {
        if self.key.is_empty() {
            format!("plugins.{plugin}: {}", self.message)
        } else {
            format!("plugins.{plugin}.{}: {}", self.key, self.message)
        }
    }
}

/// The section's `key: value` lines, each key one of `keys` and at most
/// once, comments and quotes removed, in order. Empty, `{}` and `null`
/// sections give none. Nested maps and lists are refused.
pub fn flat_pairs<'a>(
    text: &'a str,
    keys: &[&'static str],
) -> Result<Vec<(&'static str, &'a str)>, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        key: key.to_owned(),
        message,
    };
    let mut out: Vec<(&'static str, &'a str)> = Vec::new();
    if matches!(text.trim(), "" | "{}" | "null" | "~") {
        return Ok(out);
    }
    for line in text.lines() {
        let content = strip_comment(line);
        if matches!(content.trim(), "" | "---" | "{}") {
            continue;
        }
        if content.starts_with(char::is_whitespace) || content.trim_start().starts_with('-') {
            return Err(err(
                "",
                format!("expected flat `key: value` lines, got {:?}", line.trim()),
            ));
        }
        let Some((key, value)) = content.split_once(':') else {
            return Err(err("", format!("expected `key: value`, got {:?}", line)));
        };
        let key = key.trim();
        let value = unquote(value.trim());
        let Some(known) = keys.iter().copied().find(|k| *k == key) else {
            return Err(err(
                key,
                format!("unknown key (known: {})", keys.join(", ")),
            ));
        };
        if out.iter().any(|(k, _)| *k == known) {
            return Err(err(key, "set twice".into()));
        }
        if value.is_empty() {
            return Err(err(key, "a value is required (nested maps are not)".into()));
        }
        out.push((known, value));
    }
    Ok(out)
}

/// `true`/`false` (also `yes`/`no`, `on`/`off`).
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

/// The line without a trailing `# comment` (a `#` starts one at the line's
/// start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, ch) in line.char_indices() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = ch.is_whitespace();
    }
    line
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// A byte count or plain number: `4096`, `64KiB`, `8MiB`, `1GiB` (also
/// `K`, `KB`, `M`, `MB`, `G`, `GB`, all binary), within `min..=max`.
pub fn size(v: &str, min: u32, max: u32) -> Result<u32, String> {
    let s = v.replace('_', "");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a number or size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown unit {u:?} in {v:?}")),
    };
    let n = n.saturating_mul(mult);
    if n < min as u64 || n > max as u64 {
        return Err(format!("{v} is outside {min}..={max}"));
    }
    Ok(n as u32)
}

/// A duration: `10s`, `500ms`, `2m`, `1h`, `1m30s`; a bare number is seconds.
pub fn duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (e.g. 10s, 500ms, 2m)");
    let s: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let d = match unit {
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" | "sec" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(d);
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_sizes_durations() {
        let p = flat_pairs("a: 1 # one\nb: 'x y'\n", &["a", "b"]).unwrap();
        assert_eq!(p, vec![("a", "1"), ("b", "x y")]);
        assert!(flat_pairs("c: 1\n", &["a"]).is_err());
        assert!(flat_pairs("a: 1\na: 2\n", &["a"]).is_err());
        assert!(flat_pairs("a:\n  b: 1\n", &["a", "b"]).is_err());
        assert!(flat_pairs("{}", &["a"]).unwrap().is_empty());
        assert_eq!(size("8MiB", 0, u32::MAX), Ok(8 << 20));
        assert!(size("8MiB", 0, 1024).is_err());
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("soon").is_err());
        assert_eq!(boolean("yes"), Ok(true));
        assert!(boolean("maybe").is_err());
    }
}
