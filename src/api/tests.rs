//! The API's router without sockets: requests go through `tower::ServiceExt::oneshot`.
//! (`tests/api.rs` drives a real turnd over HTTP.)

use axum::body::Body;
use axum::http::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::*;

const KEY: &str = "unit-test-api-key-0123456789";

fn config(extra: &str) -> Config {
    let text = format!(
        "[auth]\nsecrets = ['s3cret']\n[api]\nlisten = '127.0.0.1:0'\nkeys = ['{}']\n{extra}",
        crate::config::api_key_entry(KEY)
    );
    Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn app(config: &Config, ready: &Readiness) -> Router {
    let api = config.api.as_ref().expect("[api]");
    let listeners = Listeners { udp: vec!["127.0.0.1:3478".parse().unwrap()], ..Listeners::default() };
    let stats = Arc::new(Stats::new(1));
    let state = app_state(config, api, stats, Box::new(Counts::default), ready.clone(), &listeners).expect("state");
    router(state, api, &CONNECTION_LIMITS)
}

/// Sends `request` from 192.0.2.1 and returns the status and the body as JSON (`null` if not).
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ClientAddr("192.0.2.1:5000".parse().unwrap()));
    let response = app.clone().oneshot(Request::from_parts(parts, body)).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).header("x-api-key", KEY).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn readyz_follows_the_readiness_flag() {
    let ready = Readiness::default();
    let app = app(&config(""), &ready);
    let (status, body) = send(&app, get("/readyz")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")));
    ready.set(true);
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);
    ready.set(false);
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_json_errors() {
    let app = app(&config(""), &Readiness::default());
    let big = format!("{{\"username\": \"{}\"}}", "a".repeat(BODY_LIMIT));
    let request = Request::post("/v1/turn/credentials").header("x-api-key", KEY).body(Body::from(big)).unwrap();
    let (status, body) = send(&app, request).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    // A query that does not decode (a repeated field) is reported after authentication.
    let (status, body) = send(&app, get("/v1/turn/credentials?username=a&username=b")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    let request = Request::get("/v1/turn/credentials?username=a&username=b").body(Body::empty()).unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
    // A header that is not visible ASCII.
    let request = Request::get("/v1/turn/credentials?username=a")
        .header("x-api-key", axum::http::HeaderValue::from_bytes(b"\xffkey").unwrap())
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = send(&app, get("/v1/turn/credentials?username=a&ttl=600")).await;
    assert_eq!((status, body["ttl"].as_u64()), (StatusCode::OK, Some(600)));
}

#[test]
fn uris_per_transport_and_port_on_the_public_host() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let listeners = Listeners {
        udp: vec![addr("10.0.0.5:3478"), addr("10.0.0.6:3478"), addr("10.0.0.5:3479")],
        tcp: vec![addr("10.0.0.5:3478")],
        tls: vec![addr("10.0.0.5:5349")],
    };
    let mut api = config("public-host = '2001:db8::7'").api.unwrap();
    assert_eq!(
        uris(&api, &listeners),
        [
            "turn:[2001:db8::7]:3478?transport=udp",
            "turn:[2001:db8::7]:3479?transport=udp",
            "turn:[2001:db8::7]:3478?transport=tcp",
            "turns:[2001:db8::7]:5349?transport=tcp",
        ]
    );
    api.public_host = "turn.example.com".into();
    assert_eq!(
        uris(&api, &Listeners { udp: vec![addr("0.0.0.0:3478")], ..Listeners::default() }),
        ["turn:turn.example.com:3478?transport=udp"]
    );
    api.uris = vec!["turn:other:1?transport=udp".into()];
    assert_eq!(uris(&api, &listeners), ["turn:other:1?transport=udp"]);
}

/// A P-256 key: the PKCS#8 DER to sign with and its public JWK with `kid`.
fn ec_key(kid: &str) -> (jsonwebtoken::EncodingKey, serde_json::Value) {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::EncodePrivateKey as _;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().unwrap();
    let point = key.public_key().to_encoded_point(false);
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())
    });
    (jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()), jwk)
}

#[tokio::test]
async fn a_changed_jwks_file_is_reloaded_and_a_broken_one_ignored() {
    let (old_key, old_jwk) = ec_key("old");
    let (new_key, new_jwk) = ec_key("new");
    let jwks = tempfile::NamedTempFile::new().unwrap();
    let write = |keys: &[&serde_json::Value], mtime: u64| {
        std::fs::write(jwks.path(), serde_json::json!({ "keys": keys }).to_string()).unwrap();
        let file = std::fs::File::options().write(true).open(jwks.path()).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime)).unwrap();
    };
    write(&[&old_jwk], 1_000);
    let extra = format!(
        "[api.jwt]\njwks-file = '{}'\nissuer = 'https://issuer.test'\naudience = 'turnd'\n",
        jwks.path().display()
    );
    let config = config(&extra);
    let state_auth = auth::Authenticator::new(config.api.as_ref().unwrap()).unwrap();
    let token = |kid: &str, key: &jsonwebtoken::EncodingKey| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({
            "sub": "u", "iss": "https://issuer.test", "aud": "turnd", "exp": unix_now() + 600
        });
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let bearer = |t: String| {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        headers
    };
    assert!(state_auth.authenticate(&bearer(token("old", &old_key))).is_ok());
    assert!(state_auth.authenticate(&bearer(token("new", &new_key))).is_err());
    // Rotated: the new key is in, the old one out.
    write(&[&new_jwk], 2_000);
    state_auth.reload_jwks_if_changed();
    assert_eq!(state_auth.authenticate(&bearer(token("new", &new_key))).unwrap(), auth::Caller::Subject("u".into()));
    assert!(state_auth.authenticate(&bearer(token("old", &old_key))).is_err());
    // A broken file keeps the keys that were loaded.
    std::fs::write(jwks.path(), "{not json").unwrap();
    std::fs::File::options().write(true).open(jwks.path()).unwrap().set_modified(std::time::UNIX_EPOCH).unwrap();
    state_auth.reload_jwks_if_changed();
    assert!(state_auth.authenticate(&bearer(token("new", &new_key))).is_ok());
}

/// Serves `config`'s router with the real `serve` loop and `limits` on 127.0.0.1:0; returns
/// the address.
async fn serve_on_loopback(config: &Config, limits: ConnectionLimits) -> SocketAddr {
    let api = config.api.as_ref().expect("[api]");
    let stats = Arc::new(Stats::new(1));
    let ready = Readiness::default();
    let state = app_state(config, api, stats, Box::new(Counts::default), ready, &Listeners::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router(state, api, &limits), limits));
    addr
}

/// A new connection to `addr` from `source` (any loopback address).
async fn connect_from(source: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `request` on a new connection and returns all that comes back until the server
/// closes the connection, which it must do within 5 s.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    // A reset after the answer is a close too (what was read stays in `out`).
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(closed.is_ok(), "the server did not close the connection: {out:?}");
    out
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let addr = serve_on_loopback(&config(""), CONNECTION_LIMITS).await;
    let head = |pad: usize| {
        let pad = "a".repeat(pad);
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n")
    };
    // A head with a token-sized header is served...
    let reply = raw_exchange(addr, head(4 * 1024).as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // ...one over HEAD_LIMIT is not buffered whole (hyper's default would take ~400 KB).
    for pad in [HEAD_LIMIT, 100 * 1024] {
        let reply = raw_exchange(addr, head(pad).as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{pad}: {}", reply.lines().next().unwrap_or(""));
    }
}

//= https://www.rfc-editor.org/rfc/rfc7515#section-4.1.11
#[tokio::test]
async fn a_jwt_with_critical_header_extensions_is_401() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let app = app(&config(&format!("[api.jwt]\nsecret = '{SECRET}'\n")), &Readiness::default());
    let claims = serde_json::json!({ "sub": "u", "exp": unix_now() + 600 });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let request = |header: &jsonwebtoken::Header| {
        let token = jsonwebtoken::encode(header, &claims, &key).unwrap();
        let bearer = format!("Bearer {token}");
        Request::get("/v1/turn/credentials").header(header::AUTHORIZATION, bearer).body(Body::empty()).unwrap()
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    assert_eq!(send(&app, request(&header)).await.0, StatusCode::OK);
    // An empty list names no extension.
    header.crit = Some(Vec::new());
    assert_eq!(send(&app, request(&header)).await.0, StatusCode::OK);
    header.crit = Some(vec!["x-turnd-unknown".into()]);
    header.extras.insert("x-turnd-unknown".into(), "must-be-understood".into());
    let (status, body) = send(&app, request(&header)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("crit")), "{body}");
}

#[tokio::test]
async fn a_body_not_received_in_time_gets_408_and_the_connection_closes() {
    let limits = ConnectionLimits { body: Duration::from_millis(200), ..CONNECTION_LIMITS };
    let addr = serve_on_loopback(&config(""), limits).await;
    // The head, then one byte of a 16000-byte body and nothing more.
    let head =
        format!("POST /v1/turn/credentials HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: 16000\r\n\r\n{{");
    // raw_exchange returns once the server closes: well within its 5 s.
    let reply = raw_exchange(addr, head.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    let lower = reply.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json") && lower.contains("connection: close"), "{reply:?}");
    assert!(reply.contains(r#""error":"request_timeout""#), "{reply:?}");
    // A body sent at once is not affected.
    let body = r#"{"username": "alice"}"#;
    let request = format!(
        "POST /v1/turn/credentials HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = raw_exchange(addr, request.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let limits = ConnectionLimits { total: 8, per_ip: 3, ..CONNECTION_LIMITS };
    let addr = serve_on_loopback(&config(""), limits).await;
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // 127.0.0.1 holds its 3 connections, each in a slowly sent body.
    let mut held = Vec::new();
    for _ in 0..limits.per_ip {
        let mut stream = connect_from("127.0.0.1", addr).await;
        stream
            .write_all(b"POST /v1/turn/credentials HTTP/1.1\r\nHost: x\r\nContent-Length: 16000\r\n\r\n{")
            .await
            .unwrap();
        held.push(stream);
    }
    // Its next connection is closed without an answer (accepted after the 3 above, which are
    // still open)...
    let mut extra = connect_from("127.0.0.1", addr).await;
    let _ = extra.write_all(healthz).await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut out)).await;
    assert!(closed.is_ok() && out.is_empty(), "{closed:?} {:?}", String::from_utf8_lossy(&out));
    // ...while another address is served.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(healthz).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), other.read_to_end(&mut out)).await.unwrap().unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&out));
    drop(held);
}

#[tokio::test]
async fn failed_authentications_do_not_use_up_the_allowance_of_callers_that_authenticate() {
    let app = app(&config("rate-per-ip = 5"), &Readiness::default());
    let anonymous = || Request::get("/v1/turn/credentials?username=x").body(Body::empty()).unwrap();
    let wrong_key = || {
        let request = Request::get("/v1/turn/credentials?username=x").header("x-api-key", "wrong-key-0123456789");
        request.body(Body::empty()).unwrap()
    };
    // 5 failures a minute from 192.0.2.1 are answered 401, the next ones 429...
    for i in 0..5 {
        let request = if i % 2 == 0 { anonymous() } else { wrong_key() };
        assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
    }
    for request in [anonymous(), wrong_key()] {
        let (status, body) = send(&app, request).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("failed authentications")), "{body}");
    }
    // ...while a valid key from the same address still has its 5.
    for _ in 0..5 {
        let (status, body) = send(&app, get("/v1/turn/credentials?username=alice")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = send(&app, get("/v1/turn/credentials?username=alice")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too many requests from this address"))
    );
}

/// What hyper answers itself, before the router (README: the one exception to JSON errors).
#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_bare_400() {
    let addr = serve_on_loopback(&config(""), CONNECTION_LIMITS).await;
    for request in [
        "GARBAGE\r\n\r\n",
        "POST /v1/turn/credentials HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    ] {
        let reply = raw_exchange(addr, request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{request:?}: {reply:?}");
    }
}
