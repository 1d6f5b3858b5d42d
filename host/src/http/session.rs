//! Console logins: an API token traded for a session cookie.
//!
//! `POST /api/v1/session` with `{"token": "…"}` checks the token as the API
//! does and answers with `Set-Cookie: rill_session=<random id>` (HttpOnly,
//! SameSite=Strict, `Path=/api`, Secure over HTTPS). The API's guard then
//! takes that cookie as it takes the bearer token. The cookie holds only a
//! random id: the sessions live in this process's memory, each with the
//! token it was opened with and an expiry, so a token removed from the
//! config (or whose role changed) ends or changes its sessions at the next
//! call, and a restart logs everyone out. `DELETE /api/v1/session` logs
//! out; `GET /api/v1/session` says who the caller is (its role and how it
//! got in), or that it must log in.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{constant_time_eq, is_config_media_type, problem, AppState, Peer};
use crate::config::{ApiRole, Config};

/// The cookie's name.
pub const COOKIE: &str = "rill_session";
/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept; past it, the one nearest its end goes.
const MAX_SESSIONS: usize = 10_000;

/// How a caller got through the API's guard: what `GET /api/v1/session`
/// tells the console (also put in the request's extensions by the guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub role: ApiRole,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// No token is configured and the caller is on this machine.
    Loopback,
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie.
    Session,
}

struct Session {
    /// The token the session was opened with, checked again at every call.
    token: String,
    expires: Instant,
}

/// Open sessions by the SHA-256 of their id (the id itself is only in the
/// browser's cookie). One store for the process, so a login holds on the
/// HTTP and the HTTPS listener alike.
static SESSIONS: LazyLock<Mutex<HashMap<[u8; 32], Session>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The configured API tokens with their roles: `http.api_token` (or its
/// file) is admin; `http.api_tokens` carry their own.
pub fn api_tokens(c: &Config) -> Vec<(String, ApiRole)> {
    let mut tokens: Vec<(String, ApiRole)> = c
        .http
        .token()
        .map(|t| (t.to_owned(), ApiRole::Admin))
        .into_iter()
        .collect();
    tokens.extend(c.http.api_tokens.iter().map(|t| (t.token.clone(), t.role)));
    tokens
}

/// The role of `given` among `tokens`. Every token is compared, so the
/// time taken tells nothing.
pub fn token_role(given: &str, tokens: &[(String, ApiRole)]) -> Option<ApiRole> {
    tokens.iter().fold(None, |hit, (t, role)| {
        let same = constant_time_eq(given.as_bytes(), t.as_bytes());
        hit.or(same.then_some(*role))
    })
}

/// The session id in the request's `Cookie` headers, if any.
fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// The role of the session whose cookie the request carries: the current
/// role of the token it was opened with. An expired session, or one whose
/// token is no longer configured, is forgotten.
pub fn cookie_role(headers: &HeaderMap, tokens: &[(String, ApiRole)]) -> Option<ApiRole> {
    let key = digest(cookie_id(headers)?);
    let mut sessions = SESSIONS.lock();
    let s = sessions.get(&key)?;
    let role = (s.expires > Instant::now())
        .then(|| token_role(&s.token, tokens))
        .flatten();
    if role.is_none() {
        sessions.remove(&key);
    }
    role
}

/// `/api/v1/session`. None of it is behind the API's guard: `POST` (log
/// in) and `DELETE` (log out) are how a caller gets and drops a
/// credential, and `GET` answers a caller without one too (`role: null`),
/// so the console asks without an error; it runs the guard's checks itself.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/session", get(whoami).post(login).delete(logout))
}

async fn whoami(
    State(s): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    let login_required = !api_tokens(&s.config.lock()).is_empty();
    match super::caller(&s, peer, &req) {
        Ok(c) => Json(json!({
            "role": c.role,
            "via": match c.via {
                Via::Loopback => "loopback",
                Via::Bearer => "bearer",
                Via::Session => "session",
            },
            "login_required": login_required,
            // What this server's API has (the console shows pages for
            // optional parts, such as recordings, only when present).
            "api_routes": super::API_ROUTES
                .iter()
                .map(|(m, p)| format!("{} {p}", m.to_ascii_uppercase()))
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(r) if r.status() == StatusCode::UNAUTHORIZED => Json(json!({
            "role": null,
            "via": null,
            "login_required": true,
        }))
        .into_response(),
        Err(r) => *r,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
}

/// 32 random bytes as hex.
fn new_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether the cookie must be `Secure`: the request came over HTTPS, to
/// this server or to a proxy in front of it.
fn secure(s: &AppState, headers: &HeaderMap) -> bool {
    s.secure
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let mut c =
        format!("{COOKIE}={value}; Path=/api; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::try_from(c).expect("a cookie of hex and ASCII")
}

/// `POST /api/v1/session`: `{"token": "…"}` (JSON, as every API body) → a
/// session cookie with the token's role.
async fn login(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_config_media_type(headers.get("content-type")) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        );
    }
    let tokens = api_tokens(&s.config.lock());
    if tokens.is_empty() {
        return problem(
            StatusCode::CONFLICT,
            "no API token is configured: the API and the console need no login \
             (and answer only this machine)",
        );
    }
    let token = match serde_yaml::from_slice::<LoginBody>(&body) {
        Ok(b) => b.token,
        Err(_) => return problem(StatusCode::BAD_REQUEST, "send {\"token\": \"…\"}"),
    };
    let Some(role) = token_role(&token, &tokens) else {
        return problem(StatusCode::UNAUTHORIZED, "wrong token");
    };
    let id = new_id();
    {
        let now = Instant::now();
        let mut sessions = SESSIONS.lock();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let first = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            if let Some(k) = first {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            digest(&id),
            Session {
                token,
                expires: now + LIFETIME,
            },
        );
    }
    let mut r = Json(json!({ "role": role, "expires_in": LIFETIME.as_secs() })).into_response();
    r.headers_mut().insert(
        "set-cookie",
        set_cookie(&id, LIFETIME.as_secs(), secure(&s, &headers)),
    );
    r
}

/// `DELETE /api/v1/session`: forgets the session and clears the cookie.
async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_id(&headers) {
        SESSIONS.lock().remove(&digest(id));
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("set-cookie", set_cookie("", 0, secure(&s, &headers)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers("a=1; rill_session=abc ; b=2");
        assert_eq!(cookie_id(&h), Some("abc"));
        assert_eq!(cookie_id(&headers("rill_sessionx=1")), None);
    }

    #[test]
    fn a_session_takes_its_tokens_current_role_and_ends_with_it() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        SESSIONS.lock().insert(
            digest(&id),
            Session {
                token: "reader-token-0123456789".into(),
                expires: Instant::now() + LIFETIME,
            },
        );
        let h = headers(&format!("{COOKIE}={id}"));
        let read = vec![("reader-token-0123456789".to_owned(), ApiRole::Read)];
        assert_eq!(cookie_role(&h, &read), Some(ApiRole::Read));
        let admin = vec![("reader-token-0123456789".to_owned(), ApiRole::Admin)];
        assert_eq!(cookie_role(&h, &admin), Some(ApiRole::Admin));
        // The token is gone from the config: so is the session.
        assert_eq!(cookie_role(&h, &[]), None);
        assert_eq!(cookie_role(&h, &read), None);
        assert!(!SESSIONS.lock().contains_key(&digest(&id)));
    }

    #[test]
    fn an_expired_session_is_refused() {
        let id = new_id();
        SESSIONS.lock().insert(
            digest(&id),
            Session {
                token: "t".into(),
                expires: Instant::now(),
            },
        );
        let tokens = vec![("t".to_owned(), ApiRole::Admin)];
        assert_eq!(
            cookie_role(&headers(&format!("{COOKIE}={id}")), &tokens),
            None
        );
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let c = set_cookie("x", 10, true);
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/api",
            "Secure",
            "Max-Age=10",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("x", 10, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
