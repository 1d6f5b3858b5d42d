//! The WHIP/WHEP HTTP side (RFC 9725 and the WHEP draft): request targets,
//! credentials, CORS, and the answers written by hand.

use rill_abi::sdk::{Body, Conn, Error, Result};
use rill_abi::RILL_END_NORMAL;

/// Where a peer's resource lives: `DELETE` ends it, `PATCH` trickles.
pub const RESOURCE_PREFIX: &str = "/webrtc/session/";

/// Headers every answer carries: browsers post from other origins.
const CORS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-expose-headers",
        "Location, ETag, Accept-Patch, Link",
    ),
    ("cache-control", "no-store"),
];

/// `/{app}/{stream}/whip` → `app/stream` (two or more segments, no empty
/// or dot segments).
pub fn stream_path<'a>(target: &'a str, suffix: &str) -> Option<&'a str> {
    let p = target
        .strip_prefix('/')?
        .strip_suffix(suffix)?
        .strip_suffix('/')?;
    let ok = p.len() <= 256
        && p.split('/').count() >= 2
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && p.bytes().all(|b| b.is_ascii_graphic() && b != b'%');
    ok.then_some(p)
}

/// The resource id of `/webrtc/session/{id}`.
pub fn resource_id(target: &str) -> Option<&str> {
    let id = target.strip_prefix(RESOURCE_PREFIX)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Credentials of an `Authorization` header: a bearer token, or Basic's
/// user and password.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub token: String,
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn from_header(h: Option<&str>) -> Credentials {
        let mut c = Credentials::default();
        let Some(h) = h.map(str::trim) else { return c };
        let Some((scheme, rest)) = h.split_once(' ') else {
            return c;
        };
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            c.token = rest.chars().take(1024).collect();
        } else if scheme.eq_ignore_ascii_case("basic") {
            if let Some(plain) = base64_decode(rest) {
                if let Some((u, p)) = String::from_utf8_lossy(&plain).split_once(':') {
                    c.user = u.to_owned();
                    c.password = p.to_owned();
                }
            }
        }
        c
    }
}

/// Standard base64 (padding optional), at most 1 KiB decoded.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 1400 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The HTTP status of a refusal when opening a peer.
pub fn status_of(e: Error) -> u16 {
    match e {
        Error::UNAUTHORIZED => 401,
        Error::DENIED => 403,
        Error::NOT_FOUND => 404,
        Error::BUSY => 503,
        Error::INVALID => 400,
        Error::UNSUPPORTED => 415,
        _ => 500,
    }
}

/// Answers with `status` and a short text, then ends the exchange.
pub fn text(conn: &Conn, status: u16, body: &str) -> Result<()> {
    let mut h = CORS.to_vec();
    h.push(("content-type", "text/plain; charset=utf-8"));
    if status == 401 {
        h.push(("www-authenticate", "Bearer"));
    }
    conn.http_respond(status, &h, Body::Fixed(body.len() as u64))?;
    conn.write(body.as_bytes())?;
    conn.close(RILL_END_NORMAL)
}

/// `201 Created` with the SDP answer, the resource and its ETag.
pub fn created(conn: &Conn, sdp: &str, location: &str, etag: &str) -> Result<()> {
    let mut h = CORS.to_vec();
    h.extend([
        ("content-type", "application/sdp"),
        ("location", location),
        ("etag", etag),
        ("accept-patch", "application/trickle-ice-sdpfrag"),
    ]);
    conn.http_respond(201, &h, Body::Fixed(sdp.len() as u64))?;
    conn.write(sdp.as_bytes())?;
    conn.close(RILL_END_NORMAL)
}

/// An answer without a body (`204`, `200` to a DELETE, `412`...).
pub fn empty(conn: &Conn, status: u16, extra: &[(&str, &str)]) -> Result<()> {
    let mut h = CORS.to_vec();
    h.extend_from_slice(extra);
    conn.http_respond(status, &h, Body::Fixed(0))?;
    conn.close(RILL_END_NORMAL)
}

/// The CORS preflight (and plain OPTIONS) of an endpoint or a resource.
pub fn options(conn: &Conn, methods: &str) -> Result<()> {
    empty(
        conn,
        204,
        &[
            ("allow", methods),
            ("access-control-allow-methods", methods),
            (
                "access-control-allow-headers",
                "Authorization, Content-Type, If-Match",
            ),
            ("access-control-max-age", "86400"),
            ("accept-post", "application/sdp"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(stream_path("/live/cam/whip", "whip"), Some("live/cam"));
        assert_eq!(stream_path("/a/b/c/whep", "whep"), Some("a/b/c"));
        assert_eq!(stream_path("/cam/whip", "whip"), None);
        assert_eq!(stream_path("/live//whip", "whip"), None);
        assert_eq!(stream_path("/live/../whip", "whip"), None);
        assert_eq!(stream_path("/live/x/whep", "whip"), None);
        assert_eq!(stream_path("/live/x%2f/whip", "whip"), None);
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(resource_id(&format!("{RESOURCE_PREFIX}{id}")), Some(id));
        assert_eq!(resource_id("/webrtc/session/xyz"), None);
    }

    #[test]
    fn credentials() {
        let c = Credentials::from_header(Some("Bearer abc.def"));
        assert_eq!(c.token, "abc.def");
        // "user:pa:ss"
        let c = Credentials::from_header(Some("Basic dXNlcjpwYTpzcw=="));
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", "pa:ss"));
        assert_eq!(
            Credentials::from_header(Some("Basic !!!")),
            Credentials::default()
        );
        assert_eq!(Credentials::from_header(None), Credentials::default());
        assert_eq!(
            Credentials::from_header(Some("Bearer")),
            Credentials::default()
        );
    }
}
