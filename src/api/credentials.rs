//! `GET`/`POST /v1/turn/credentials`: the TURN REST API draft's credentials
//! (draft-uberti-behave-turn-rest-00 §2) plus `iceServers` for `RTCPeerConnection`.
//! Checks in order: API key or token → 401 (429 once the address used up its allowance of
//! failed authentications), rate limit by IP → 429, rate limit by caller → 429,
//! username → 400, ttl → 400.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{no_store, unix_now, ApiError, ClientAddr, Shared};
use crate::auth::{rest_password, rest_username};
use crate::config::TTL_RANGE;

/// Longest user name accepted.
pub const MAX_USERNAME: usize = 128;

/// Signs credentials with the first REST secret and knows the URIs to hand out.
pub struct Issuer {
    secret: String,
    separator: char,
    uris: Vec<String>,
    default_ttl: u64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("uris", &self.uris).field("default_ttl", &self.default_ttl).finish()
    }
}

/// The response body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// `<expiry><separator><user>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// Seconds the credentials are valid.
    pub ttl: u64,
    /// TURN URIs.
    pub uris: Vec<String>,
    /// The same, shaped as `RTCConfiguration.iceServers`.
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
}

/// One `RTCIceServer`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    /// TURN URIs.
    pub urls: Vec<String>,
    /// The TURN username.
    pub username: String,
    /// The TURN password.
    pub credential: String,
}

impl Issuer {
    /// `secret`: the REST secret to sign with; `separator`: between expiry and user.
    pub fn new(secret: String, separator: char, uris: Vec<String>, default_ttl: u64) -> Self {
        Issuer { secret, separator, uris, default_ttl }
    }

    /// Credentials for `user`, valid `ttl` seconds from `now` (Unix seconds).
    pub fn issue(&self, user: &str, ttl: u64, now: u64) -> Credentials {
        let username = rest_username(now.saturating_add(ttl), user, self.separator);
        let password = rest_password(&self.secret, &username);
        let ice = IceServer { urls: self.uris.clone(), username: username.clone(), credential: password.clone() };
        Credentials { username, password, ttl, uris: self.uris.clone(), ice_servers: vec![ice] }
    }
}

/// Query parameters of a GET (the draft's `service` and unknown parameters are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    username: Option<String>,
    ttl: Option<String>,
}

/// `GET /v1/turn/credentials?username=U&ttl=T`.
pub async fn get(
    State(state): State<Shared>,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = query.map(|Query(p)| p).map_err(|e| ApiError::bad_request("invalid_request", e.body_text()));
    respond(issue(&state, peer, &headers, params))
}

/// `POST /v1/turn/credentials` with a JSON body `{"username": "U", "ttl": T}` (both optional in
/// the JSON sense; an empty body is `{}`).
pub async fn post(
    State(state): State<Shared>,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let params = match body {
        Ok(body) => params_from_json(&body),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large"))
        }
        Err(e) => Err(ApiError::bad_request("invalid_request", e.body_text())),
    };
    respond(issue(&state, peer, &headers, params))
}

fn respond(result: Result<Credentials, ApiError>) -> Response {
    match result {
        Ok(credentials) => (no_store(), Json(credentials)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The JSON body as [`Params`]: a `username` string and a `ttl` number (or digit string).
fn params_from_json(body: &[u8]) -> Result<Params, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("the body is not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(ApiError::bad_request("invalid_request", "the body must be a JSON object"));
    };
    let username = match map.get("username") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid_username("username must be a string")),
    };
    let ttl = match map.get("ttl") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid_ttl()),
    };
    Ok(Params { username, ttl })
}

/// The checks in order, then the credentials. A malformed query or body is reported only to
/// an authenticated caller.
fn issue(
    state: &Shared,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: Result<Params, ApiError>,
) -> Result<Credentials, ApiError> {
    let live = state.live();
    // Failures are counted apart: they must not use up the allowance of callers that
    // authenticate from the same address (everyone behind one proxy, say).
    let caller = match live.auth.authenticate(headers) {
        Ok(caller) => caller,
        Err(refused) => return Err(state.limits.check_failure(peer.ip()).err().unwrap_or(refused)),
    };
    state.limits.check_ip(peer.ip())?;
    state.limits.check_caller(&caller)?;
    let params = params?;
    let user = match &caller {
        // With a token, the user is who the token says, whatever the query says.
        Caller::Subject(subject) => {
            check_username(subject).map_err(|_| {
                invalid_username(format!(
                    "the token's subject cannot be a TURN user name: 1 to {MAX_USERNAME} characters of \
                     A-Z a-z 0-9 . _ @ -"
                ))
            })?;
            subject.as_str()
        }
        Caller::Key(_) => {
            let Some(username) = params.username.as_deref() else {
                return Err(invalid_username(format!(
                    "username is required: 1 to {MAX_USERNAME} characters of A-Z a-z 0-9 . _ @ -"
                )));
            };
            check_username(username)?;
            username
        }
    };
    let ttl = match params.ttl.as_deref() {
        None => live.issuer.default_ttl,
        Some(text) => text.trim().parse::<u64>().ok().filter(|t| TTL_RANGE.contains(t)).ok_or_else(invalid_ttl)?,
    };
    Ok(live.issuer.issue(user, ttl, unix_now()))
}

/// 1 to [`MAX_USERNAME`] characters of `[A-Za-z0-9._@-]`.
fn check_username(name: &str) -> Result<(), ApiError> {
    let charset = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-');
    if name.is_empty() || name.len() > MAX_USERNAME || !name.bytes().all(charset) {
        return Err(invalid_username(format!(
            "username must be 1 to {MAX_USERNAME} characters of A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(())
}

fn invalid_username(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_username", message)
}

fn invalid_ttl() -> ApiError {
    ApiError::bad_request(
        "invalid_ttl",
        format!("ttl must be a whole number of seconds from {} to {}", TTL_RANGE.start(), TTL_RANGE.end()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_follow_the_rest_scheme() {
        let issuer = Issuer::new("north".into(), ':', vec!["turn:h:3478?transport=udp".into()], 600);
        let c = issuer.issue("alice", 3600, 1_699_996_400);
        assert_eq!(c.username, "1700000000:alice");
        // The known vector of auth::rest (coturn's scheme, checked with openssl there).
        assert_eq!(c.password, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
        assert_eq!(c.ttl, 3600);
        assert_eq!(
            c.ice_servers,
            vec![IceServer { urls: c.uris.clone(), username: c.username.clone(), credential: c.password.clone() }]
        );
        assert!(!format!("{issuer:?}").contains("north"));
    }

    #[test]
    fn usernames() {
        for good in ["a", "alice", "a.b_c@d-e", "0", &"x".repeat(MAX_USERNAME)] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a:b", "a/b", "é", "a\0", &"x".repeat(MAX_USERNAME + 1)] {
            assert_eq!(check_username(bad).unwrap_err().code, "invalid_username", "{bad}");
        }
    }

    #[test]
    fn json_bodies() {
        let p = params_from_json(br#"{"username": "bob", "ttl": 120}"#).unwrap();
        assert_eq!((p.username.as_deref(), p.ttl.as_deref()), (Some("bob"), Some("120")));
        let p = params_from_json(b" \n").unwrap();
        assert_eq!((p.username, p.ttl), (None, None));
        let p = params_from_json(br#"{"ttl": "90", "service": "turn"}"#).unwrap();
        assert_eq!(p.ttl.as_deref(), Some("90"));
        assert_eq!(params_from_json(b"{").unwrap_err().code, "invalid_request");
        assert_eq!(params_from_json(b"[1]").unwrap_err().code, "invalid_request");
        assert_eq!(params_from_json(br#"{"username": 5}"#).unwrap_err().code, "invalid_username");
        assert_eq!(params_from_json(br#"{"ttl": [1]}"#).unwrap_err().code, "invalid_ttl");
    }
}
