//! Relay URLs: what a pull reads from and a push writes to.
//!
//! - `rtmp://host[:port]/app/name[?query]` (and `rtmps://`): the first
//!   path segment is the application, the rest (with the query) the
//!   stream name, as ffmpeg splits them.
//! - `http://host[:port]/path.m3u8[?query]` (and `https://`): an HLS
//!   playlist, multivariant or media (the path's last segment ends with
//!   `.m3u8`); any other `http(s)://` path is an HTTP-FLV stream.
//! - `rtsp://[user:password@]host[:port]/path[?query]` (port 554): an RTSP
//!   source or target; the credentials answer Basic and Digest challenges.
//! - `srt://ip:port?streamid=…&passphrase=…&pbkeylen=…&latency=…`: an SRT
//!   listener (no default port; latency in ms). The host is an IP address:
//!   UDP goes through the host, which resolves no names for it.
//!
//! Secrets (an RTSP password, an SRT passphrase) are masked wherever the
//! URL is shown ([`fmt::Display`]: the API, logs, the stream's source);
//! [`Url::full`] has them, for the protocol and the saved jobs.

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
    /// RTMP: the application; others: empty.
    pub app: String,
    /// RTMP: the stream name (with its query); HTTP, RTSP: the path and
    /// query; SRT: the query (`?streamid=…`), or empty.
    pub name: String,
    /// RTSP: `user[:password]` from the URL.
    pub userinfo: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    Rtmps,
    Http,
    Https,
    Rtsp,
    Srt,
}

impl Scheme {
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Rtmps | Scheme::Https)
    }

    pub fn is_rtmp(self) -> bool {
        matches!(self, Scheme::Rtmp | Scheme::Rtmps)
    }

    /// Whether a push may go there.
    pub fn can_push(self) -> bool {
        matches!(
            self,
            Scheme::Rtmp | Scheme::Rtmps | Scheme::Rtsp | Scheme::Srt
        )
    }

    /// Over UDP (a socket-less session that binds its own socket) rather
    /// than a TCP connection.
    pub fn udp(self) -> bool {
        self == Scheme::Srt
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Rtsp => "rtsp",
            Scheme::Srt => "srt",
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
            "rtsp" => Scheme::Rtsp,
            "srt" => Scheme::Srt,
            s => {
                return Err(format!(
                    "{url}: scheme {s} is not relayed (rtmp, rtmps, http, https, rtsp, srt)"
                ))
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((u, a)) if scheme == Scheme::Rtsp && !u.is_empty() => (Some(u.to_owned()), a),
            Some(_) => return Err(format!("{url}: credentials in the URL are not supported")),
            None => (None, authority),
        };
        let default_port = match scheme {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Rtsp => 554,
            Scheme::Srt => 0,
        };
        let (host, port) =
            split_host_port(authority, default_port).ok_or_else(|| match scheme {
                Scheme::Srt => format!("{url}: srt://ip:port (SRT has no default port)"),
                _ => format!("{url}: bad host or port"),
            })?;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let (app, name) = match scheme {
            Scheme::Rtmp | Scheme::Rtmps => {
                let p = path.strip_prefix('/').unwrap_or(path);
                let (app, name) = p
                    .split_once('/')
                    .ok_or_else(|| format!("{url}: an RTMP URL needs /app/stream"))?;
                if app.is_empty() || name.is_empty() {
                    return Err(format!("{url}: an RTMP URL needs /app/stream"));
                }
                (app.to_owned(), name.to_owned())
            }
            Scheme::Srt => {
                if path.trim_start_matches('/').split('?').next() != Some("") {
                    return Err(format!(
                        "{url}: an SRT URL has no path (srt://ip:port?streamid=…)"
                    ));
                }
                let query = path.split_once('?').map_or("", |(_, q)| q);
                rill_srt::CallerParams::parse(query).map_err(|e| format!("{url}: {e}"))?;
                let name = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                (String::new(), name)
            }
            _ => {
                let p = if path.starts_with('?') {
                    format!("/{path}")
                } else {
                    path.to_owned()
                };
                (String::new(), p)
            }
        };
        if scheme == Scheme::Srt && socket_ip(host).is_none() {
            return Err(format!(
                "{url}: the SRT host must be an IP address (names are not resolved for UDP)"
            ));
        }
        Ok(Url {
            scheme,
            addr,
            host: host.to_owned(),
            app,
            name,
            userinfo,
        })
    }

    /// An HLS playlist: `http(s)://` with a path ending in `.m3u8`.
    pub fn is_hls(&self) -> bool {
        let path = self.name.split(['?', '#']).next().unwrap_or("");
        matches!(self.scheme, Scheme::Http | Scheme::Https)
            && path.to_ascii_lowercase().ends_with(".m3u8")
    }

    /// Pulled in a socket-less session rather than on one TCP connection:
    /// SRT (a UDP socket of its own), HLS (a connection per request).
    pub fn sessionless(&self) -> bool {
        self.scheme.udp() || self.is_hls()
    }

    /// `tcUrl` for RTMP's `connect`.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme.name(), self.addr, self.app)
    }

    /// The URL with its secrets, for the protocol and the saved jobs.
    pub fn full(&self) -> String {
        self.write(false)
    }

    /// SRT: the query (`streamid=…&…`).
    pub fn query(&self) -> &str {
        self.name.split_once('?').map_or("", |(_, q)| q)
    }

    /// SRT: where to send, as the host's UDP calls take it.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let port = self.addr.rsplit_once(':')?.1.parse().ok()?;
        Some(std::net::SocketAddr::new(socket_ip(&self.host)?, port))
    }

    fn write(&self, masked: bool) -> String {
        match self.scheme {
            Scheme::Rtmp | Scheme::Rtmps => format!("{}/{}", self.tc_url(), self.name),
            Scheme::Rtsp => {
                let user = match &self.userinfo {
                    Some(u) if masked => match u.split_once(':') {
                        Some((user, _)) => format!("{user}:***@"),
                        None => format!("{u}@"),
                    },
                    Some(u) => format!("{u}@"),
                    None => String::new(),
                };
                format!("rtsp://{user}{}{}", self.addr, self.name)
            }
            Scheme::Srt if masked => {
                let q: Vec<String> = self
                    .query()
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| match kv.split_once('=') {
                        Some(("passphrase", _)) => "passphrase=***".to_owned(),
                        _ => kv.to_owned(),
                    })
                    .collect();
                let q = if q.is_empty() {
                    String::new()
                } else {
                    format!("?{}", q.join("&"))
                };
                format!("srt://{}{q}", self.addr)
            }
            _ => format!("{}://{}{}", self.scheme.name(), self.addr, self.name),
        }
    }
}

/// An IP literal (`localhost` is loopback): SRT's target.
fn socket_ip(host: &str) -> Option<std::net::IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(std::net::Ipv4Addr::LOCALHOST.into());
    }
    host.parse().ok()
}

impl fmt::Display for Url {
    /// The URL as shown: secrets masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write(true))
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
    (port != 0).then_some((host, port))
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
        assert!(!u.is_hls() && !u.sessionless());
    }

    #[test]
    fn hls_urls() {
        for url in [
            "http://127.0.0.1:8080/live/x.m3u8",
            "https://cdn.example/a/b/index.M3U8?token=1&format=ts",
        ] {
            let u = Url::parse(url).unwrap();
            assert!(u.is_hls() && u.sessionless(), "{url}");
            assert_eq!(u.full(), url.replace("cdn.example/", "cdn.example:443/"));
        }
        for url in [
            "http://h/live/x.flv",
            "http://h/live/x.flv?u=a.m3u8",
            "http://h/x.m3u8.flv",
            "rtmp://h/live/x.m3u8",
        ] {
            assert!(!Url::parse(url).unwrap().is_hls(), "{url}");
        }
        assert!(Url::parse(&format!("http://x/{}", "a".repeat(MAX_URL))).is_err());
    }

    #[test]
    fn rtsp_urls() {
        let u = Url::parse("rtsp://cam.local/Streaming/101?x=1").unwrap();
        assert_eq!(u.addr, "cam.local:554");
        assert_eq!(u.name, "/Streaming/101?x=1");
        assert_eq!(u.to_string(), "rtsp://cam.local:554/Streaming/101?x=1");
        let u = Url::parse("rtsp://admin:se:cret@10.0.0.9:8554/live").unwrap();
        assert_eq!(u.addr, "10.0.0.9:8554");
        assert_eq!(u.to_string(), "rtsp://admin:***@10.0.0.9:8554/live");
        assert_eq!(u.full(), "rtsp://admin:se:cret@10.0.0.9:8554/live");
        assert_eq!(Url::parse(&u.full()).unwrap(), u);
        assert!(Url::parse("rtsp://@h/x").is_err());
        assert!(Url::parse("rtmp://u@h/a/b").is_err());
    }

    #[test]
    fn srt_urls() {
        let u = Url::parse(
            "srt://127.0.0.1:8890?streamid=#!::r=live/x,m=request&passphrase=0123456789ab",
        )
        .unwrap();
        assert!(u.scheme.udp());
        assert_eq!(u.addr, "127.0.0.1:8890");
        assert_eq!(
            u.query(),
            "streamid=#!::r=live/x,m=request&passphrase=0123456789ab"
        );
        assert_eq!(
            u.to_string(),
            "srt://127.0.0.1:8890?streamid=#!::r=live/x,m=request&passphrase=***"
        );
        assert_eq!(Url::parse(&u.full()).unwrap(), u);
        assert_eq!(u.socket_addr(), Some("127.0.0.1:8890".parse().unwrap()));
        let u = Url::parse("srt://[::1]:9000").unwrap();
        assert_eq!(u.socket_addr(), Some("[::1]:9000".parse().unwrap()));
        assert_eq!(u.to_string(), "srt://[::1]:9000");
        assert!(Url::parse("srt://127.0.0.1?streamid=x").is_err(), "no port");
        assert!(Url::parse("srt://example.com:9000").is_err(), "a name");
        assert!(Url::parse("srt://127.0.0.1:9000/live/x").is_err(), "a path");
        assert!(Url::parse("srt://127.0.0.1:9000?latency=x").is_err());
        assert!(Url::parse("srt://127.0.0.1:9000?passphrase=short").is_err());
        assert!(Url::parse("srt://127.0.0.1:9000?bogus=1").is_err());
        assert!(Url::parse("srt://localhost:9000?streamid=a%2Fb").is_ok());
    }
}
