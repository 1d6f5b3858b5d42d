//! Signed URLs: for action `A` (`publish` or `play`), stream `P`
//! (`app/stream`) and expiry `E` (Unix seconds), the token is the lower-case
//! hex HMAC-SHA256 of `A:P:E` keyed with `auth.secret`, carried as
//! `?expires=E&token=T`. A web backend mints them without calling Rill.

use ring::hmac;

use super::Action;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No `token` or no `expires`.
    Missing,
    /// `expires` is not a number, or the time passed.
    Expired,
    /// Not the HMAC of this action, stream and expiry.
    Invalid,
}

/// The token for `action` on `path` until `expires` (what a backend
/// computes; the tests and `rill-loadgen` use it too).
pub fn sign(secret: &str, action: Action, path: &str, expires: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, message(action, path, expires).as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `token` for `action` on `path`, expiring at `expires`, at Unix
/// time `now`. The comparison runs in constant time (ring's verify).
pub fn verify(
    key: &hmac::Key,
    action: Action,
    path: &str,
    expires: Option<&str>,
    token: Option<&str>,
    now: u64,
) -> Result<(), TokenError> {
    let (Some(expires), Some(token)) = (expires, token) else {
        return Err(TokenError::Missing);
    };
    let Ok(e) = expires.parse::<u64>() else {
        return Err(TokenError::Expired);
    };
    if e < now {
        return Err(TokenError::Expired);
    }
    let Some(tag) = unhex(token) else {
        return Err(TokenError::Invalid);
    };
    hmac::verify(key, message(action, path, e).as_bytes(), &tag).map_err(|_| TokenError::Invalid)
}

fn message(action: Action, path: &str, expires: u64) -> String {
    format!("{}:{path}:{expires}", action.as_str())
}

/// Lower- or upper-case hex of a SHA-256 tag (32 bytes), else `None`.
fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out[i] = (h * 16 + l) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())
    }

    #[test]
    fn known_vector() {
        // printf 'play:live/x:2000000000' | openssl dgst -sha256 -hmac 0123456789abcdef
        assert_eq!(
            sign("0123456789abcdef", Action::Play, "live/x", 2_000_000_000),
            "677b2fd9ebae51aec1c29a6eb11992be1ea20bc8e70122751323e263b22f1385"
        );
    }

    #[test]
    fn accepts_its_own_and_refuses_the_rest() {
        let s = "0123456789abcdef";
        let k = key(s);
        let t = sign(s, Action::Publish, "live/x", 100);
        let ok = |a, p, e: &str, t: &str, now| verify(&k, a, p, Some(e), Some(t), now);
        assert_eq!(ok(Action::Publish, "live/x", "100", &t, 99), Ok(()));
        assert_eq!(
            ok(Action::Publish, "live/x", "100", &t.to_uppercase(), 100),
            Ok(())
        );
        assert_eq!(
            ok(Action::Publish, "live/x", "100", &t, 101),
            Err(TokenError::Expired)
        );
        assert_eq!(
            ok(Action::Play, "live/x", "100", &t, 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            ok(Action::Publish, "live/y", "100", &t, 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            ok(Action::Publish, "live/x", "1000", &t, 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            ok(Action::Publish, "live/x", "x", &t, 1),
            Err(TokenError::Expired)
        );
        assert_eq!(
            ok(Action::Publish, "live/x", "100", "zz", 1),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(&k, Action::Publish, "live/x", None, Some(&t), 1),
            Err(TokenError::Missing)
        );
        let other = sign("another secret!!", Action::Publish, "live/x", 100);
        assert_eq!(
            ok(Action::Publish, "live/x", "100", &other, 1),
            Err(TokenError::Invalid)
        );
    }
}
