//! A request, written once at the start of a connection. One request per
//! connection: every request says `Connection: close`, so a response's end
//! is the connection's and no keep-alive state exists.

use crate::error::Error;
use crate::url::Url;

/// A request without a body (GET, HEAD, ...), built then written with
/// [`Request::encode`].
///
/// ```
/// use rill_http::{Request, Url};
///
/// let url = Url::parse("http://127.0.0.1:8080/live/x.flv")?;
/// let bytes = Request::get(&url).header("User-Agent", "Rill").encode()?;
/// assert_eq!(
///     bytes,
///     b"GET /live/x.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Rill\r\nConnection: close\r\n\r\n"
/// );
/// # Ok::<(), rill_http::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    host: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// A request for `url` with `method` (a token such as `GET`; checked
    /// by [`encode`](Self::encode)). `Host` comes from the URL.
    pub fn new(method: &str, url: &Url) -> Request {
        Request {
            method: method.to_string(),
            target: url.target().to_string(),
            host: url.authority(),
            headers: Vec::new(),
        }
    }

    /// A GET request for `url`.
    pub fn get(url: &Url) -> Request {
        Request::new("GET", url)
    }

    /// A HEAD request for `url` (its response has no body).
    pub fn head(url: &Url) -> Request {
        Request::new("HEAD", url)
    }

    /// Adds a header field (`User-Agent`, `Accept`, `Authorization`, ...),
    /// written in the order added. A `Host` field replaces the URL's.
    /// `Connection` (always `close`) and the body's framing fields
    /// (`Content-Length`, `Transfer-Encoding`) are the request's own:
    /// [`encode`](Self::encode) refuses them.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        if name.eq_ignore_ascii_case("host") {
            self.host = value.to_string();
        } else {
            self.headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether this is a HEAD request, whose response has no body whatever
    /// its headers say.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The request target (path and query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Host` field's value.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request's bytes. Errors if the method is not a token, a header
    /// name is not a token, a value holds a control character (CR and LF
    /// would inject lines), or a field is one the request writes itself.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        if !is_token(&self.method) {
            return Err(Error::InvalidRequest("method is not a token"));
        }
        if self.target.is_empty() || self.target.bytes().any(|b| b <= b' ' || b == 0x7F) {
            return Err(Error::InvalidRequest("request target"));
        }
        check_value(&self.host)?;
        let mut len = self.method.len() + self.target.len() + self.host.len() + 64;
        for (name, value) in &self.headers {
            if !is_token(name) {
                return Err(Error::InvalidRequest("header name is not a token"));
            }
            for own in ["connection", "content-length", "transfer-encoding"] {
                if name.eq_ignore_ascii_case(own) {
                    return Err(Error::InvalidRequest(
                        "Connection, Content-Length and Transfer-Encoding are the request's own",
                    ));
                }
            }
            check_value(value)?;
            len += name.len() + value.len() + 4;
        }
        let mut out = Vec::with_capacity(len);
        for part in [
            &self.method,
            " ",
            &self.target,
            " HTTP/1.1\r\nHost: ",
            &self.host,
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.trim_matches([' ', '\t']).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        Ok(out)
    }
}

/// RFC 9110 §5.6.2's token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A field value: visible characters, spaces, tabs and non-ASCII (UTF-8
/// passes as obs-text); nothing that ends or breaks a line.
fn check_value(v: &str) -> Result<(), Error> {
    if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7F) {
        return Err(Error::InvalidRequest("control character in a header value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn writes_get_with_headers() {
        let req = Request::get(&url("http://[::1]:8080/live/x.flv?k=v"))
            .header("User-Agent", "Rill")
            .header("Accept", "*/*")
            .header("Authorization", "Bearer abc");
        assert_eq!(
            String::from_utf8(req.encode().unwrap()).unwrap(),
            "GET /live/x.flv?k=v HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: Rill\r\nAccept: */*\r\nAuthorization: Bearer abc\r\nConnection: close\r\n\r\n"
        );
        assert!(!req.is_head());
        let head = Request::head(&url("https://h/")).header("host", "other:1");
        assert!(head.is_head());
        assert_eq!(
            head.encode().unwrap(),
            b"HEAD / HTTP/1.1\r\nHost: other:1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn refuses_injection_and_own_fields() {
        let u = url("http://h/");
        for req in [
            Request::new("GE T", &u),
            Request::new("", &u),
            Request::get(&u).header("X-A", "b\r\nX-Injected: 1"),
            Request::get(&u).header("X A", "b"),
            Request::get(&u).header("", "b"),
            Request::get(&u).header("Connection", "keep-alive"),
            Request::get(&u).header("content-length", "0"),
            Request::get(&u).header("Transfer-Encoding", "chunked"),
            Request::get(&u).header("Host", "h\n"),
        ] {
            assert!(req.encode().is_err(), "{req:?}");
        }
        assert!(Request::get(&u).header("X-Ok", "é\tü").encode().is_ok());
    }
}
