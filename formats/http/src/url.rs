//! `http://` and `https://` URLs: what a relay is configured with, what a
//! redirect's `Location` or an HLS playlist's URI resolves against.
//!
//! Only what a request needs is kept: scheme, host, port and the request
//! target (path and query, fragment dropped). The path is normalised as RFC
//! 3986 resolves references (dot segments removed) and bytes a request line
//! cannot carry are percent-encoded; existing escapes are left alone.

use std::fmt;

use crate::error::Error;

/// The scheme of a [`Url`]. Which transport to open is the caller's: for
/// `Https` it wraps the connection in TLS (the host owns TLS); the bytes of
/// the request and response are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An absolute `http`/`https` URL, parsed and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    scheme: Scheme,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    /// Path and query; starts with `/`.
    target: String,
}

impl Url {
    /// Parses an absolute URL such as `http://host:8080/live/x.flv?token=1`.
    /// Refused: other schemes, credentials in the authority (send them in
    /// an `Authorization` header), control characters, bad ports.
    pub fn parse(s: &str) -> Result<Url, Error> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let (scheme, rest) = s
            .split_once("://")
            .ok_or(Error::InvalidUrl("not an absolute URL"))?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            return Err(Error::InvalidUrl("scheme other than http or https"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, reference) = rest.split_at(end);
        let (host, port) = parse_authority(authority, scheme)?;
        let target = normalise_target(reference, "/")?;
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or address (an IPv6 literal without brackets): what to
    /// resolve and connect to, and the TLS server name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when the URL names none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query, starting with `/`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path (the target without its query).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The `Host` header's value: the host (IPv6 in brackets) and the port
    /// when it is not the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves `reference` (a redirect's `Location`, a playlist's URI)
    /// against this URL as RFC 3986 §5.2 does: absolute, network-path
    /// (`//host/x`), absolute-path (`/x`), query-only (`?q`) or relative
    /// (`seg/1.ts`, `../x`). The fragment is dropped.
    pub fn join(&self, reference: &str) -> Result<Url, Error> {
        let r = reference.trim_matches(|c: char| c.is_ascii_whitespace());
        let r = r.split_once('#').map_or(r, |(r, _)| r);
        if has_scheme(r) {
            return Url::parse(r);
        }
        if let Some(rest) = r.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme.as_str()));
        }
        let target = if r.is_empty() {
            self.target.clone()
        } else if r.starts_with('/') {
            normalise_target(r, "/")?
        } else if r.starts_with('?') {
            normalise_target(&format!("{}{r}", self.path()), "/")?
        } else {
            // Merge: the base path up to its last '/', then the reference.
            let base = self.path();
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            normalise_target(&format!("{dir}{r}"), "/")?
        };
        Ok(Url {
            target,
            ..self.clone()
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.target
        )
    }
}

/// Whether `r` starts with `scheme:` (RFC 3986 §3.1): a letter, then
/// letters, digits, `+`, `-`, `.`, up to a `:` before any `/`, `?`.
fn has_scheme(r: &str) -> bool {
    let Some(colon) = r.find(':') else {
        return false;
    };
    let scheme = &r[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn parse_authority(authority: &str, scheme: Scheme) -> Result<(String, u16), Error> {
    if authority.contains('@') {
        return Err(Error::InvalidUrl(
            "credentials in the URL (send an Authorization header)",
        ));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or(Error::InvalidUrl("unclosed IPv6 literal"))?;
        if host.is_empty()
            || !host.contains(':')
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(Error::InvalidUrl("IPv6 literal"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(Error::InvalidUrl("bytes after the IPv6 literal"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(Error::InvalidUrl("no host"));
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
    {
        return Err(Error::InvalidUrl("host name"));
    }
    let port = match port {
        None | Some("") => scheme.default_port(),
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u32>() {
                Ok(n @ 1..=65535) => n as u16,
                _ => return Err(Error::InvalidUrl("port out of range")),
            }
        }
        Some(_) => return Err(Error::InvalidUrl("port")),
    };
    Ok((host.to_string(), port))
}

/// Path (and query) as a request target: fragment dropped, dot segments
/// removed, what a request line cannot carry percent-encoded.
fn normalise_target(reference: &str, empty: &str) -> Result<String, Error> {
    let r = reference.split_once('#').map_or(reference, |(r, _)| r);
    let (path, query) = match r.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r, None),
    };
    let path = if path.is_empty() { empty } else { path };
    let mut out = remove_dot_segments(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    encode(&out)
}

/// RFC 3986 §5.2.4: `.` segments go, `..` removes the segment before it
/// (never above the root). The result is absolute.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            // The piece before a leading '/'.
            "" if i == 0 => {}
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing dot segment still names a directory.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(path.len() + 1);
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

/// Percent-encodes what RFC 3986 does not allow in a path or query (space,
/// non-ASCII, quotes, angle and curly brackets, ...); refuses control
/// characters, which would let a URL inject lines into the request.
fn encode(s: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            0..=0x1F | 0x7F => return Err(Error::InvalidUrl("control character")),
            b if b.is_ascii_alphanumeric() => out.push(b as char),
            b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b'?' | b'[' | b']' | b'@' | b'!' | b'$'
            | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b'%' => {
                out.push(b as char)
            }
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_absolute() {
        let u = Url::parse("http://127.0.0.1:8080/live/x.flv?token=a%20b#frag").unwrap();
        assert_eq!(u.scheme(), Scheme::Http);
        assert_eq!((u.host(), u.port()), ("127.0.0.1", 8080));
        assert_eq!(u.target(), "/live/x.flv?token=a%20b");
        assert_eq!((u.path(), u.query()), ("/live/x.flv", Some("token=a%20b")));
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(
            u.to_string(),
            "http://127.0.0.1:8080/live/x.flv?token=a%20b"
        );

        let u = Url::parse("HTTPS://Example.com").unwrap();
        assert_eq!(
            (u.scheme(), u.port(), u.target()),
            (Scheme::Https, 443, "/")
        );
        assert_eq!(u.authority(), "Example.com");
        let u = Url::parse("http://h:80?x").unwrap();
        assert_eq!((u.target(), u.authority()), ("/?x", "h".to_string()));
        let u = Url::parse("http://[::1]:1935/a b/é").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", 1935));
        assert_eq!(u.authority(), "[::1]:1935");
        assert_eq!(u.target(), "/a%20b/%C3%A9");
        let u = Url::parse("http://h:/x/./y/../z").unwrap();
        assert_eq!((u.port(), u.target()), (80, "/x/z"));

        for bad in [
            "rtmp://h/live/x",
            "/live/x",
            "http://",
            "http://user:pw@h/x",
            "http://h:0/",
            "http://h:65536/",
            "http://h:8x/",
            "http://h h/",
            "http://[::1/",
            "http://[::1]x/",
            "http://[zz]/",
            "http://h/a\r\nX: y",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_references() {
        // RFC 3986 §5.4's examples, over http.
        let base = Url::parse("http://a/b/c/d;p?q").unwrap();
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("https://b:8443/x", "https://b:8443/x"),
        ] {
            assert_eq!(base.join(r).unwrap().to_string(), want, "{r}");
        }
        let https = Url::parse("https://cdn/live/index.m3u8").unwrap();
        assert_eq!(
            https.join("//edge:444/seg.ts").unwrap().to_string(),
            "https://edge:444/seg.ts"
        );
        assert!(base.join("ftp://x/").is_err());
        assert!(base.join("g\n").is_ok());
        assert!(base.join("g\nh").is_err());
    }
}
