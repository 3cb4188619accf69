//! The credentials API of a running turnd, over real HTTP on 127.0.0.1: every status it answers
//! (200, 400, 401, 404, 405, 429, 503 is covered by the unit tests), API keys, JWTs (HS256, and
//! RS256/ES256 against a JWKS file, with keys generated here), rate limits, CORS, health and
//! metrics endpoints, and the self-test page.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use common::api::{config_text, sample, server, Http, Reply, KEY, SECRET};
use common::client::rest_credentials;
use common::unix_now;

const CREDENTIALS: &str = "/v1/turn/credentials";
/// Firebase-shaped issuer and audience.
const PROJECT: &str = "turnd-test";
const ISSUER: &str = "https://securetoken.google.com/turnd-test";
/// An HS256 secret of the accepted length.
const JWT_SECRET: &str = "hs256-secret-for-turnd-tests-0123456789";

/// Checks a 200 credentials answer for `user` valid `ttl` seconds, signed with the test secret.
fn assert_credentials(reply: &Reply, user: &str, ttl: u64) -> Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    let body = reply.json();
    let username = body["username"].as_str().expect("username");
    let (expiry, name) = username.split_once(':').expect("expiry:user");
    assert_eq!(name, user);
    let expiry: u64 = expiry.parse().expect("numeric expiry");
    let now = unix_now();
    assert!((now + ttl - 5..=now + ttl + 1).contains(&expiry), "expiry {expiry}, now {now}, ttl {ttl}");
    // Computed here, independently of turnd: base64(HMAC-SHA1(secret, username)).
    assert_eq!(body["password"], rest_credentials(SECRET, user, expiry).1);
    assert_eq!(body["ttl"], ttl);
    let uris = body["uris"].as_array().expect("uris");
    assert!(!uris.is_empty());
    let ice = &body["iceServers"][0];
    assert_eq!(
        (&ice["urls"], &ice["username"], &ice["credential"]),
        (&body["uris"], &body["username"], &body["password"])
    );
    body
}

#[test]
fn api_key_gets_rest_credentials_by_get_and_post() {
    let (turnd, http) = server("");
    let udp = turnd.addr;
    // X-API-Key, GET.
    let body = assert_credentials(&http.credentials(&[("username", "alice"), ("ttl", "600")]), "alice", 600);
    assert_eq!(body["uris"], json!(served_uris(&turnd, "127.0.0.1")));
    assert!(body["uris"][0] == format!("turn:127.0.0.1:{}?transport=udp", udp.port()), "{body}");
    // Authorization: Bearer, GET, the default ttl (api.default-ttl = 3600) and the draft's `service`.
    let reply = http.get(
        CREDENTIALS,
        &[("username", "bob@example.org"), ("service", "turn")],
        &[("Authorization", &format!("Bearer {KEY}"))],
    );
    assert_credentials(&reply, "bob@example.org", 3600);
    // POST with a JSON body, the ttl bounds included.
    for ttl in [60, 86_400] {
        let body = json!({ "username": "carol.c_d-e", "ttl": ttl }).to_string();
        assert_credentials(&http.post(CREDENTIALS, &[("X-API-Key", KEY)], &body), "carol.c_d-e", ttl);
    }
}

/// The URIs for what the ready line says turnd serves: one per transport and port.
fn served_uris(turnd: &common::Server, host: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for (kind, scheme, transport) in [("udp", "turn", "udp"), ("tcp", "turn", "tcp"), ("tls", "turns", "tcp")] {
        for (_, addr) in turnd.listeners.iter().filter(|(k, _)| k == kind) {
            let uri = format!("{scheme}:{host}:{}?transport={transport}", addr.port());
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
    }
    uris
}

#[test]
fn public_host_and_uris_come_from_the_config() {
    let (turnd, http) = server("[api]\npublic-host = \"turn.example.com\"\n");
    let body = assert_credentials(&http.credentials(&[("username", "a")]), "a", 3600);
    assert_eq!(body["uris"], json!(served_uris(&turnd, "turn.example.com")));
    let (_turnd, http) =
        server("[api]\nuris = [\"turn:a.example:3478?transport=udp\", \"turns:a.example:443?transport=tcp\"]\n");
    let body = assert_credentials(&http.credentials(&[("username", "a")]), "a", 3600);
    assert_eq!(body["uris"], json!(["turn:a.example:3478?transport=udp", "turns:a.example:443?transport=tcp"]));
}

#[test]
fn bad_usernames_are_400() {
    let (_turnd, http) = server("");
    let long = "u".repeat(129);
    for query in [
        vec![],
        vec![("username", "")],
        vec![("username", long.as_str())],
        vec![("username", "a b")],
        vec![("username", "a:b")],
        vec![("username", "ü")],
    ] {
        let reply = http.credentials(&query);
        assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_username"), "{query:?}: {reply:?}");
    }
    let reply = http.post(CREDENTIALS, &[("X-API-Key", KEY)], r#"{"username": 7}"#);
    assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_username"), "{reply:?}");
    assert_eq!(http.credentials(&[("username", &"u".repeat(128))]).status, 200);
    // Not JSON at all.
    let reply = http.post(CREDENTIALS, &[("X-API-Key", KEY)], "{username");
    assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_request"), "{reply:?}");
}

#[test]
fn bad_ttls_are_400() {
    let (_turnd, http) = server("");
    for ttl in ["59", "86401", "0", "-60", "1.5", "abc", "", "99999999999999999999999"] {
        let reply = http.credentials(&[("username", "alice"), ("ttl", ttl)]);
        assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_ttl"), "ttl {ttl:?}: {reply:?}");
    }
    for body in
        [r#"{"username": "a", "ttl": 30}"#, r#"{"username": "a", "ttl": 3600.5}"#, r#"{"username": "a", "ttl": true}"#]
    {
        let reply = http.post(CREDENTIALS, &[("X-API-Key", KEY)], body);
        assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_ttl"), "{body}: {reply:?}");
    }
}

#[test]
fn missing_or_wrong_api_keys_are_401() {
    let (_turnd, http) = server("");
    let wrong = "not-the-key-0123456789abcdef";
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("X-API-Key", wrong)],
        &[("Authorization", "Bearer not-the-key-0123456789abcdef")],
        &[("Authorization", &format!("Basic {KEY}"))],
        &[("Authorization", KEY)],
    ];
    for headers in cases {
        let reply = http.get(CREDENTIALS, &[("username", "alice")], headers);
        assert_eq!((reply.status, reply.error().as_str()), (401, "unauthorized"), "{headers:?}: {reply:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"turnd\""));
        assert!(!reply.body.contains(wrong) && !reply.body.contains(KEY), "key echoed: {reply:?}");
    }
    // Authentication comes before validation: a bad username without a key is still a 401.
    assert_eq!(http.get(CREDENTIALS, &[("username", "a b")], &[]).status, 401);
}

#[test]
fn rate_limits_are_429_with_retry_after() {
    // Per source IP: 3 failed authentications a minute, then 429...
    let (_turnd, http) = server("[api]\nrate-per-ip = 3\n");
    let wrong = [("X-API-Key", "wrong-key-0123456789abcdef")];
    for _ in 0..3 {
        assert_eq!(http.get(CREDENTIALS, &[("username", "a")], &wrong).status, 401);
    }
    let reply = http.get(CREDENTIALS, &[("username", "a")], &wrong);
    assert_eq!((reply.status, reply.error().as_str()), (429, "rate_limited"), "{reply:?}");
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
    // ...and, counted apart, 3 requests a minute that authenticate.
    for _ in 0..3 {
        assert_eq!(http.credentials(&[("username", "a")]).status, 200);
    }
    let reply = http.credentials(&[("username", "a")]);
    assert_eq!((reply.status, reply.error().as_str()), (429, "rate_limited"), "{reply:?}");
    let wait: u64 = reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After seconds");
    assert!((1..=20).contains(&wait), "{reply:?}");
    // Per API key: 2 a minute; another key has its own allowance.
    let other = "second-api-key-0123456789abcdef";
    let extra = format!(
        "[api]\nrate-per-user = 2\nkeys = [\"{}\", \"{}\"]\n",
        turnd::config::api_key_entry(KEY),
        turnd::config::api_key_entry(other)
    );
    let (_turnd, http) = server(&extra);
    for _ in 0..2 {
        assert_eq!(http.credentials(&[("username", "a")]).status, 200);
    }
    let reply = http.credentials(&[("username", "a")]);
    assert_eq!((reply.status, reply.error().as_str()), (429, "rate_limited"), "{reply:?}");
    assert!(reply.header("retry-after").is_some());
    assert_eq!(http.get(CREDENTIALS, &[("username", "a")], &[("X-API-Key", other)]).status, 200);
}

fn claims(sub: &str, exp_from_now: i64) -> Value {
    let now = unix_now() as i64;
    json!({ "sub": sub, "iss": ISSUER, "aud": PROJECT, "iat": now, "exp": now + exp_from_now })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn with_token(http: &Http, token: &str, query: &[(&str, &str)]) -> Reply {
    http.get(CREDENTIALS, query, &[("Authorization", &format!("Bearer {token}"))])
}

fn assert_token_refused(http: &Http, token: &str, why: &str) {
    let reply = with_token(http, token, &[("username", "alice")]);
    assert_eq!((reply.status, reply.error().as_str()), (401, "unauthorized"), "{why}: {reply:?}");
    assert!(!reply.body.contains(token), "token echoed: {reply:?}");
}

#[test]
fn hs256_tokens_name_the_turn_user() {
    let extra = format!("[api.jwt]\nsecret = \"{JWT_SECRET}\"\nissuer = \"{ISSUER}\"\naudience = \"{PROJECT}\"\n");
    let (_turnd, http) = server(&extra);
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    // The subject is the user, whatever the query says.
    let token = sign(Algorithm::HS256, None, &claims("uid-42", 600), &key);
    assert_credentials(&with_token(&http, &token, &[("username", "mallory"), ("ttl", "120")]), "uid-42", 120);
    // Validation still applies to the ttl.
    assert_eq!(with_token(&http, &token, &[("ttl", "5")]).status, 400);
    // API keys keep working next to tokens.
    assert_eq!(http.credentials(&[("username", "a")]).status, 200);

    let other = EncodingKey::from_secret(b"another-secret-of-sufficient-length-000");
    let mut wrong_iss = claims("u", 600);
    wrong_iss["iss"] = json!("https://securetoken.google.com/other");
    let mut wrong_aud = claims("u", 600);
    wrong_aud["aud"] = json!("other");
    let mut no_sub = claims("u", 600);
    no_sub.as_object_mut().map(|m| m.remove("sub"));
    let mut not_yet = claims("u", 600);
    not_yet["nbf"] = json!(unix_now() + 3600);
    let cases = [
        (sign(Algorithm::HS256, None, &claims("u", 600), &other), "signed with another secret"),
        // Expired two minutes ago: beyond the 60 s leeway.
        (sign(Algorithm::HS256, None, &claims("u", -120), &key), "expired"),
        (sign(Algorithm::HS256, None, &wrong_iss, &key), "wrong issuer"),
        (sign(Algorithm::HS256, None, &wrong_aud, &key), "wrong audience"),
        (sign(Algorithm::HS256, None, &no_sub, &key), "no subject"),
        (sign(Algorithm::HS256, None, &not_yet, &key), "not valid yet"),
        (sign(Algorithm::HS384, None, &claims("u", 600), &key), "HS384"),
    ];
    for (token, why) in &cases {
        assert_token_refused(&http, token, why);
    }
    // alg "none": an unsigned token.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("u", 600).to_string());
    assert_token_refused(&http, &format!("{header}.{payload}."), "alg none");
    let reply = with_token(&http, &cases[1].0, &[]);
    assert!(reply.json()["message"].as_str().unwrap_or_default().contains("expired"), "{reply:?}");
}

/// An RSA and a P-256 key pair made for this test, and the JWKS file with their public halves.
struct Keys {
    rsa: EncodingKey,
    ec: EncodingKey,
    jwks: tempfile::NamedTempFile,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key() -> (EncodingKey, Value) {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
    let der = key.to_pkcs1_der().expect("PKCS#1");
    let jwk = json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()) });
    (EncodingKey::from_rsa_der(der.as_bytes()), jwk)
}

fn ec_key() -> (EncodingKey, Value) {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::EncodePrivateKey as _;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().expect("PKCS#8");
    let point = key.public_key().to_encoded_point(false);
    let (x, y) = (point.x().expect("x"), point.y().expect("y"));
    let jwk = json!({ "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "x": b64(x), "y": b64(y) });
    (EncodingKey::from_ec_der(der.as_bytes()), jwk)
}

fn keys() -> Keys {
    let ((rsa, mut rsa_jwk), (ec, mut ec_jwk)) = (rsa_key(), ec_key());
    rsa_jwk["kid"] = json!("rsa-1");
    ec_jwk["kid"] = json!("ec-1");
    let jwks = tempfile::NamedTempFile::new().expect("jwks file");
    std::fs::write(jwks.path(), json!({ "keys": [rsa_jwk, ec_jwk] }).to_string()).expect("write jwks");
    Keys { rsa, ec, jwks }
}

#[test]
fn rs256_and_es256_tokens_verify_against_a_jwks_file() {
    let keys = keys();
    let extra = format!(
        "[api.jwt]\njwks-file = \"{}\"\nissuer = \"{ISSUER}\"\naudience = \"{PROJECT}\"\n",
        keys.jwks.path().display()
    );
    let (_turnd, http) = server(&extra);
    // A Firebase ID token's shape: RS256, kid, iss/aud of the project, the uid as subject.
    let token = sign(Algorithm::RS256, Some("rsa-1"), &claims("firebase-uid-1", 600), &keys.rsa);
    assert_credentials(&with_token(&http, &token, &[]), "firebase-uid-1", 3600);
    let token = sign(Algorithm::ES256, Some("ec-1"), &claims("ec.user", 600), &keys.ec);
    assert_credentials(&with_token(&http, &token, &[("ttl", "300")]), "ec.user", 300);

    let (stranger, _) = rsa_key();
    let mut wrong_iss = claims("u", 600);
    wrong_iss["iss"] = json!("https://securetoken.google.com/other");
    let mut wrong_aud = claims("u", 600);
    wrong_aud["aud"] = json!("other");
    let cases = [
        (sign(Algorithm::RS256, Some("rsa-1"), &claims("u", 600), &stranger), "a key not in the set, same kid"),
        (sign(Algorithm::RS256, Some("rsa-9"), &claims("u", 600), &keys.rsa), "unknown kid"),
        (sign(Algorithm::ES256, Some("rsa-1"), &claims("u", 600), &keys.ec), "ES256 under an RSA kid"),
        (sign(Algorithm::RS256, Some("rsa-1"), &claims("u", -120), &keys.rsa), "expired RS256"),
        (sign(Algorithm::ES256, Some("ec-1"), &claims("u", -120), &keys.ec), "expired ES256"),
        (sign(Algorithm::RS256, Some("rsa-1"), &wrong_iss, &keys.rsa), "wrong issuer RS256"),
        (sign(Algorithm::ES256, Some("ec-1"), &wrong_aud, &keys.ec), "wrong audience ES256"),
        (
            sign(Algorithm::HS256, None, &claims("u", 600), &EncodingKey::from_secret(JWT_SECRET.as_bytes())),
            "HS256 without a secret configured",
        ),
    ];
    for (token, why) in &cases {
        assert_token_refused(&http, token, why);
    }
    // A token whose subject cannot be a TURN user name is a 400.
    let token = sign(Algorithm::RS256, Some("rsa-1"), &claims("no spaces please", 600), &keys.rsa);
    let reply = with_token(&http, &token, &[]);
    assert_eq!((reply.status, reply.error().as_str()), (400, "invalid_username"), "{reply:?}");
}

#[test]
fn sighup_replaces_api_keys_jwt_settings_and_the_signing_secret() {
    let (turnd, http) = server("");
    let hs256 = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let token = sign(Algorithm::HS256, None, &claims("uid-7", 600), &hs256);
    assert_credentials(&http.credentials(&[("username", "a")]), "a", 3600);
    assert_eq!(with_token(&http, &token, &[]).status, 401, "no [api.jwt] yet");

    // Key B replaces KEY, HS256 tokens are accepted, the REST secret is rotated, and a rate
    // limit that only a restart applies is changed too.
    let new_key = "second-api-key-0123456789abcdef";
    let rotated = config_text(&format!(
        "[auth]\nsecrets = [\"n3w\"]\n[api]\nkeys = [\"{}\"]\nrate-per-ip = 1\n[api.jwt]\nsecret = \"{JWT_SECRET}\"\n",
        turnd::config::api_key_entry(new_key)
    ));
    std::fs::write(turnd.config_path(), rotated).unwrap();
    turnd.signal("HUP");
    turnd.wait_for_log("SIGHUP: configuration reloaded");
    let log = turnd.stderr_so_far();
    assert!(log.contains("api_keys=1") && log.contains("rate-per-ip"), "{log}");

    let old = http.credentials(&[("username", "a")]);
    assert_eq!((old.status, old.error().as_str()), (401, "unauthorized"), "the removed key: {old:?}");
    for _ in 0..3 {
        // rate-per-ip = 1 is not applied: the running 0 (unlimited) stays.
        let reply = http.get(CREDENTIALS, &[("username", "b")], &[("X-API-Key", new_key)]);
        assert_eq!(reply.status, 200, "the added key: {reply:?}");
        let body = reply.json();
        let username = body["username"].as_str().unwrap();
        let expiry: u64 = username.split_once(':').unwrap().0.parse().unwrap();
        assert_eq!(body["password"], rest_credentials("n3w", "b", expiry).1, "signed with the new first secret");
    }
    let reply = with_token(&http, &token, &[]);
    assert_eq!((reply.status, reply.json()["username"].as_str().map(|u| u.ends_with(":uid-7"))), (200, Some(true)));

    // A broken file keeps the running keys.
    std::fs::write(turnd.config_path(), "[api]\nkeys = [\"sha256:nope\"]\n").unwrap();
    turnd.signal("HUP");
    turnd.wait_for_log("SIGHUP: configuration not reloaded");
    assert_eq!(http.get(CREDENTIALS, &[("username", "b")], &[("X-API-Key", new_key)]).status, 200);
    assert_eq!(http.credentials(&[("username", "a")]).status, 401);
}

#[test]
fn health_readiness_metrics_and_json_fallbacks() {
    let (_turnd, http) = server("");
    let reply = http.get("/healthz", &[], &[]);
    assert_eq!((reply.status, reply.json()), (200, json!({ "status": "ok" })));
    let reply = http.get("/readyz", &[], &[]);
    assert_eq!((reply.status, reply.json()), (200, json!({ "status": "ready" })));
    assert_eq!(http.credentials(&[("username", "a")]).status, 200);
    assert_eq!(http.credentials(&[]).status, 400);
    let reply = http.get("/metrics", &[], &[]);
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap_or_default().starts_with("text/plain"), "{reply:?}");
    let text = &reply.body;
    for series in [
        "turnd_relayed_packets_total{direction=\"client_to_peer\"}",
        "turnd_relayed_bytes_total{direction=\"peer_to_client\"}",
        "turnd_peer_deliveries_total{kind=\"channel_data\"}",
        "turnd_peer_deliveries_total{kind=\"data_indication\"}",
        "turnd_internal_forwards_total",
        "turnd_dropped_packets_total{from=\"client\",reason=\"rate_limited\"}",
        "turnd_dropped_packets_total{from=\"peer\",reason=\"bandwidth\"}",
        "turnd_stun_responses_total",
        "turnd_allocations_active",
    ] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{series} "))), "no {series} in\n{text}");
    }
    assert_eq!(sample(text, "turnd_api_requests_total{route=\"/v1/turn/credentials\",status=\"200\"}"), 1.0, "{text}");
    assert_eq!(sample(text, "turnd_api_requests_total{route=\"/v1/turn/credentials\",status=\"400\"}"), 1.0, "{text}");
    assert!(!text.contains("alice") && !text.contains(KEY), "{text}");
    // Unknown routes and methods answer JSON too.
    let reply = http.get("/v2/nothing", &[], &[]);
    assert_eq!((reply.status, reply.error().as_str()), (404, "not_found"));
    let reply = http.post("/healthz", &[], "");
    assert_eq!((reply.status, reply.error().as_str()), (405, "method_not_allowed"));
    // metrics = false removes the route.
    let (_turnd, http) = server("[api]\nmetrics = false\n");
    assert_eq!(http.get("/metrics", &[], &[]).status, 404);
}

#[test]
fn cors_allows_configured_origins_only() {
    let (_turnd, http) = server("[api]\ncors-origins = [\"https://app.example.com\"]\n");
    let preflight = |origin: &str| {
        http.options(
            CREDENTIALS,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization,content-type"),
            ],
        )
    };
    let reply = preflight("https://app.example.com");
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://app.example.com"), "{reply:?}");
    let allowed_headers = reply.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("x-api-key"), "{reply:?}");
    assert_eq!(preflight("https://evil.example").header("access-control-allow-origin"), None);
    let reply =
        http.get(CREDENTIALS, &[("username", "a")], &[("X-API-Key", KEY), ("Origin", "https://app.example.com")]);
    assert_eq!((reply.status, reply.header("access-control-allow-origin")), (200, Some("https://app.example.com")));
    // Without cors-origins, no CORS headers at all.
    let (_turnd, http) = server("");
    let reply =
        http.get(CREDENTIALS, &[("username", "a")], &[("X-API-Key", KEY), ("Origin", "https://app.example.com")]);
    assert_eq!((reply.status, reply.header("access-control-allow-origin")), (200, None));
}

#[test]
fn self_test_page_is_self_contained() {
    let (_turnd, http) = server("");
    let page = http.get("/", &[], &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(page.body.contains("<script src=\"selftest.js\">"));
    // No external assets: nothing is loaded from another origin.
    let script = http.get("/selftest.js", &[], &[]);
    assert_eq!(script.status, 200);
    for text in [&page.body, &script.body] {
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "external reference"
        );
    }
    assert!(script.body.contains("iceTransportPolicy: \"relay\""));
}

#[test]
fn an_api_port_in_use_stops_turnd_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let text = common::merge_toml(
        &common::Config::default().to_toml(),
        &format!("[api]\nlisten = \"{addr}\"\nkeys = [\"{}\"]\n", turnd::config::api_key_entry(KEY)),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_turnd"))
        .arg("--config")
        .arg(file.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run turnd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on api {addr}")), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("ready"), "announced ready anyway");
}
