//! RTSP authentication as cameras and players do it: Basic (RFC 7617) and
//! Digest with MD5 (RFC 2069, and RFC 2617's `qop=auth`).
//!
//! The server parses the `Authorization` header into [`Credentials`] and
//! hands them to its caller (the host decides admission;
//! [`Credentials::verify`] checks a known password). A refusal carries the
//! challenges of [`Challenge::headers`]. The client answers a challenge with
//! [`authorization`].

use base64::Engine as _;

/// Credentials from an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:pass)`.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// `Digest username=..., realm=..., nonce=..., uri=..., response=...`.
    Digest(Digest),
}

/// The fields of a Digest `Authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`.
    pub uri: String,
    /// `response` (hex MD5).
    pub response: String,
    /// `qop` (`auth`), if any.
    pub qop: Option<String>,
    /// `nc`, with `qop`.
    pub nc: Option<String>,
    /// `cnonce`, with `qop`.
    pub cnonce: Option<String>,
    /// The request's method (not a field: filled in by the server).
    pub method: String,
}

impl Credentials {
    /// Parses an `Authorization` header value.
    pub fn parse(v: &str) -> Option<Credentials> {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("Basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let s = String::from_utf8(raw).ok()?;
            let (user, password) = s.split_once(':')?;
            return Some(Credentials::Basic {
                user: user.into(),
                password: password.into(),
            });
        }
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut d = Digest::default();
        for (k, val) in params(rest) {
            match k.to_ascii_lowercase().as_str() {
                "username" => d.username = val,
                "realm" => d.realm = val,
                "nonce" => d.nonce = val,
                "uri" => d.uri = val,
                "response" => d.response = val,
                "qop" => d.qop = Some(val),
                "nc" => d.nc = Some(val),
                "cnonce" => d.cnonce = Some(val),
                _ => {}
            }
        }
        (!d.username.is_empty() && !d.response.is_empty()).then_some(Credentials::Digest(d))
    }

    /// The user name.
    pub fn user(&self) -> &str {
        match self {
            Credentials::Basic { user, .. } => user,
            Credentials::Digest(d) => &d.username,
        }
    }

    /// Whether these credentials prove `password` (for Digest: the response
    /// matches; the caller should also check that `nonce` is one it issued,
    /// see [`Credentials::nonce`]).
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Credentials::Basic { password: p, .. } => ct_eq(p.as_bytes(), password.as_bytes()),
            Credentials::Digest(d) => {
                let expect = digest_response(
                    &d.username,
                    password,
                    &d.realm,
                    &d.nonce,
                    &d.method,
                    &d.uri,
                    d.qop
                        .as_deref()
                        .zip(d.nc.as_deref())
                        .zip(d.cnonce.as_deref()),
                );
                ct_eq(
                    expect.as_bytes(),
                    d.response.to_ascii_lowercase().as_bytes(),
                )
            }
        }
    }

    /// The Digest nonce, if Digest.
    pub fn nonce(&self) -> Option<&str> {
        match self {
            Credentials::Digest(d) => Some(&d.nonce),
            Credentials::Basic { .. } => None,
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `key=value` / `key="value"` pairs, comma separated (at most 32).
pub(crate) fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 32 {
        while i < b.len() && matches!(b[i], b' ' | b',' | b'\t') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_string();
        if i >= b.len() || b[i] == b',' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let val;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            val = s[vs..i].to_string();
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs..i].trim().to_string();
        }
        out.push((key, val));
    }
    out
}

/// The Digest response: `MD5(HA1:nonce[:nc:cnonce:qop]:HA2)`.
pub fn digest_response(
    user: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<((&str, &str), &str)>,
) -> String {
    let ha1 = md5_hex(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some(((qop, nc), cnonce)) => {
            md5_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes())
        }
        None => md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// The challenges of a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Digest nonce; `None`: Basic only.
    pub nonce: Option<String>,
    /// Also offer Basic (cameras and old players need it; it sends the
    /// password in the clear).
    pub basic: bool,
}

impl Challenge {
    /// The `WWW-Authenticate` values, Digest first.
    pub fn headers(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(n) = &self.nonce {
            v.push(format!("Digest realm=\"{}\", nonce=\"{}\"", self.realm, n));
        }
        if self.basic || self.nonce.is_none() {
            v.push(format!("Basic realm=\"{}\"", self.realm));
        }
        v
    }
}

/// A challenge a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// Basic.
    Basic,
    /// Digest with its realm, nonce, and whether `qop=auth` is offered.
    Digest {
        /// Realm.
        realm: String,
        /// Nonce.
        nonce: String,
        /// Opaque, echoed back.
        opaque: Option<String>,
        /// `qop` includes `auth`.
        qop_auth: bool,
    },
}

impl Offered {
    /// Parses a `WWW-Authenticate` value.
    pub fn parse(v: &str) -> Option<Offered> {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("Basic") {
            return Some(Offered::Basic);
        }
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let (mut realm, mut nonce, mut opaque, mut qop_auth) = (String::new(), None, None, false);
        for (k, val) in params(rest) {
            match k.to_ascii_lowercase().as_str() {
                "realm" => realm = val,
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "qop" => qop_auth = val.split(',').any(|q| q.trim() == "auth"),
                "algorithm" if !val.eq_ignore_ascii_case("MD5") => return None,
                _ => {}
            }
        }
        Some(Offered::Digest {
            realm,
            nonce: nonce?,
            opaque,
            qop_auth,
        })
    }
}

/// The `Authorization` value answering `offered` for a request; Digest's
/// `nc` is the count of requests answered with this nonce (from 1).
pub fn authorization(
    offered: &Offered,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    match offered {
        Offered::Basic => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
        Offered::Digest {
            realm,
            nonce,
            opaque,
            qop_auth,
        } => {
            let nc_s = format!("{nc:08x}");
            let cnonce = format!("{:08x}", nc.wrapping_mul(0x9E37_79B9) ^ 0x5bd1_e995);
            let qop = qop_auth.then_some((("auth", nc_s.as_str()), cnonce.as_str()));
            let response = digest_response(user, password, realm, nonce, method, uri, qop);
            let mut s = format!(
                "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
            );
            if *qop_auth {
                s.push_str(&format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\""));
            }
            if let Some(o) = opaque {
                s.push_str(&format!(", opaque=\"{o}\""));
            }
            s
        }
    }
}

/// MD5 of `data` as lowercase hex (RFC 1321; Digest needs nothing else).
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321).
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ])
        });
        let [mut a, mut b, mut c, mut d] = h;
        for (i, (&shift, &ki)) in S.iter().zip(k.iter()).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(ki).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(shift));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// 16 random bytes as hex (session ids, nonces); falls back to a hash of
/// `salt` when the system has no random source.
pub(crate) fn random_hex(salt: u64) -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        b = md5(&salt.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5.
        let r = digest_response(
            "Mufasa",
            "Circle Of Life",
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some((("auth", "00000001"), "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn basic_roundtrip() {
        let v = authorization(
            &Offered::Basic,
            "bob",
            "s:ecret",
            "DESCRIBE",
            "rtsp://h/x",
            1,
        );
        let c = Credentials::parse(&v).unwrap();
        assert_eq!(c.user(), "bob");
        assert!(c.verify("s:ecret"));
        assert!(!c.verify("nope"));
    }

    #[test]
    fn digest_roundtrip_with_and_without_qop() {
        for qop in [false, true] {
            let ch = Challenge {
                realm: "Rill".into(),
                nonce: Some("abc123".into()),
                basic: true,
            };
            let hs = ch.headers();
            assert_eq!(hs.len(), 2);
            let mut off = Offered::parse(&hs[0]).unwrap();
            if let Offered::Digest { qop_auth, .. } = &mut off {
                *qop_auth = qop;
            }
            let v = authorization(&off, "alice", "pw", "SETUP", "rtsp://h/live/x", 3);
            let Some(Credentials::Digest(mut d)) = Credentials::parse(&v) else {
                panic!("{v}")
            };
            assert_eq!(d.nonce, "abc123");
            d.method = "SETUP".into();
            let c = Credentials::Digest(d);
            assert!(c.verify("pw"));
            assert!(!c.verify("pw2"));
        }
        assert_eq!(Offered::parse("Basic realm=\"x\""), Some(Offered::Basic));
        assert_eq!(
            Offered::parse("Digest realm=x, algorithm=SHA-256, nonce=1"),
            None
        );
        assert_eq!(Credentials::parse("Bearer x"), None);
        assert_eq!(Credentials::parse("Basic !!!"), None);
    }
}
