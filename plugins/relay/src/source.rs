//! Relay URLs: what a pull reads from and a push writes to.
//!
//! `rtmp://host[:port]/app/name[?query]` (and `rtmps://`): the first path
//! segment is the application, the rest (with the query) the stream name,
//! as ffmpeg splits them. `http://host[:port]/path.flv` (and `https://`):
//! an HTTP-FLV stream.

use std::fmt;

/// Longest URL accepted.
pub const MAX_URL: usize = 2048;

/// A parsed relay URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// `host:port`, the port filled in.
    pub addr: String,
    /// The host name, for TLS and the `Host` header.
    pub host: String,
    /// RTMP: the application; HTTP: empty.
    pub app: String,
    /// RTMP: the stream name (with its query); HTTP: the path and query.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    Rtmps,
    Http,
    Https,
}

impl Scheme {
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Rtmps | Scheme::Https)
    }

    pub fn is_rtmp(self) -> bool {
        matches!(self, Scheme::Rtmp | Scheme::Rtmps)
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        if url.len() > MAX_URL {
            return Err(format!("URL longer than {MAX_URL} bytes"));
        }
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err("URL with spaces or control characters".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url}: not a URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            s => {
                return Err(format!(
                    "{url}: scheme {s} is not relayed (rtmp, rtmps, http, https)"
                ))
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("{url}: credentials in the URL are not supported"));
        }
        let default_port = match scheme {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("{url}: bad host or port"))?;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let (app, name) = if scheme.is_rtmp() {
            let p = path.strip_prefix('/').unwrap_or(path);
            let (app, name) = p
                .split_once('/')
                .ok_or_else(|| format!("{url}: an RTMP URL needs /app/stream"))?;
            if app.is_empty() || name.is_empty() {
                return Err(format!("{url}: an RTMP URL needs /app/stream"));
            }
            (app.to_owned(), name.to_owned())
        } else {
            let p = if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_owned()
            };
            (String::new(), p)
        };
        Ok(Url {
            scheme,
            addr,
            host: host.to_owned(),
            app,
            name,
        })
    }

    /// `tcUrl` for RTMP's `connect`.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme.name(), self.addr, self.app)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme.is_rtmp() {
            write!(f, "{}/{}", self.tc_url(), self.name)
        } else {
            write!(f, "{}://{}{}", self.scheme.name(), self.addr, self.name)
        }
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok().filter(|&p: &u16| p != 0)?,
        None => default_port,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls() {
        let u = Url::parse("rtmp://127.0.0.1:1936/live/cam?key=1").unwrap();
        assert_eq!(u.addr, "127.0.0.1:1936");
        assert_eq!(u.app, "live");
        assert_eq!(u.name, "cam?key=1");
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:1936/live");
        let u = Url::parse("rtmp://example.com/app/a/b").unwrap();
        assert_eq!(u.addr, "example.com:1935");
        assert_eq!(u.name, "a/b");
        assert!(Url::parse("rtmp://example.com/app").is_err());
        assert!(Url::parse("rtmp://u:p@example.com/app/x").is_err());
        assert!(Url::parse("rtmp://example.com:0/a/b").is_err());
        assert!(Url::parse("rtmp://exa mple.com/a/b").is_err());
    }

    #[test]
    fn http_urls() {
        let u = Url::parse("http://[::1]:8080/live/x.flv?t=1").unwrap();
        assert_eq!(u.addr, "[::1]:8080");
        assert_eq!(u.host, "::1");
        assert_eq!(u.name, "/live/x.flv?t=1");
        assert_eq!(u.to_string(), "http://[::1]:8080/live/x.flv?t=1");
        let u = Url::parse("https://cdn.example/x.flv").unwrap();
        assert_eq!(u.addr, "cdn.example:443");
        assert!(u.scheme.tls());
        assert!(Url::parse("ftp://x/y").is_err());
        assert!(Url::parse(&format!("http://x/{}", "a".repeat(MAX_URL))).is_err());
    }
}
