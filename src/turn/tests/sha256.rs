//! RFC 8489 security in the core: the nonce cookie and PASSWORD-ALGORITHMS in challenges,
//! PASSWORD-ALGORITHM with SHA-256 keys, MESSAGE-INTEGRITY-SHA256, bid-down protection, USERHASH,
//! and RFC 5389 clients (MESSAGE-INTEGRITY, MD5 keys) beside them.

use super::*;
use crate::auth::{long_term_key_sha256, userhash, NONCE_COOKIE};

/// How a test client proves who it is.
struct Client {
    /// USERNAME, or USERHASH when `hashed`.
    user: &'static str,
    hashed: bool,
    /// PASSWORD-ALGORITHM to send (None: neither it nor PASSWORD-ALGORITHMS).
    algorithm: Option<u16>,
    /// PASSWORD-ALGORITHMS to echo, when `algorithm` is set.
    algorithms: Option<Vec<u8>>,
    key: Vec<u8>,
    sha256: bool,
    nonce: String,
}

fn sha256_client(user: &'static str, password: &str) -> Client {
    Client {
        user,
        hashed: false,
        algorithm: Some(attr::ALGORITHM_SHA256),
        algorithms: Some(PASSWORD_ALGORITHMS.to_vec()),
        key: long_term_key_sha256(user, REALM, password).to_vec(),
        sha256: true,
        nonce: String::new(),
    }
}

/// A first Allocate as real clients send it (REQUESTED-TRANSPORT and FINGERPRINT, 36 bytes)
/// and its challenge.
fn challenge(h: &mut Harness, t: &FiveTuple) -> Vec<u8> {
    let req = request(Method::ALLOCATE, 1, None, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).fingerprint();
    });
    assert_eq!(req.len(), 36);
    let (_, resp) = h.send(t, &req);
    assert!(resp.len() <= 3 * req.len(), "{} bytes", resp.len());
    assert_eq!(code(&resp), Some(401));
    resp
}

fn signed(c: &Client, method: Method, txid: u8, attrs: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &[txid; 12]);
    attrs(&mut w);
    if c.hashed {
        w.attr(attr::USERHASH, &userhash(c.user, REALM));
    } else {
        w.attr(attr::USERNAME, c.user.as_bytes());
    }
    w.attr(attr::REALM, REALM.as_bytes()).attr(attr::NONCE, c.nonce.as_bytes());
    if let Some(a) = c.algorithm {
        let mut value = [0u8; 4];
        value[..2].copy_from_slice(&a.to_be_bytes());
        w.attr(attr::PASSWORD_ALGORITHM, &value);
    }
    if let Some(list) = &c.algorithms {
        w.attr(attr::PASSWORD_ALGORITHMS, list);
    }
    if c.sha256 {
        w.integrity_sha256(&c.key);
    } else {
        w.integrity(&c.key);
    }
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

fn allocate(h: &mut Harness, t: &FiveTuple, mut c: Client) -> (Client, Vec<u8>) {
    let resp = challenge(h, t);
    c.nonce = Message::parse(&resp).unwrap().text(attr::NONCE).unwrap().unwrap().to_owned();
    let (_, resp) = h.send(t, &signed(&c, Method::ALLOCATE, 2, transport_udp));
    (c, resp)
}

#[test]
fn the_challenge_carries_the_cookie_feature_bits_and_password_algorithms() {
    let mut h = Harness::new();
    let resp = challenge(&mut h, &tuple(1000));
    let msg = Message::parse(&resp).unwrap();
    let nonce = msg.text(attr::NONCE).unwrap().unwrap();
    // "wAAA": bits 0 (password algorithms) and 1 (username anonymity) of 24, base64.
    assert!(nonce.starts_with(&format!("{NONCE_COOKIE}wAAA")), "{nonce}");
    assert_eq!(nonce.len(), 29);
    assert_eq!(msg.attr(attr::PASSWORD_ALGORITHMS), Some(&[0, 2, 0, 0, 0, 1, 0, 0][..]));
    // 100 bytes of a 108-byte budget: the reason phrase went to make room.
    assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (401, ""));
    assert_eq!(resp.len(), 100);
    // Over TCP nothing is cut.
    let (_, resp) =
        h.send(&FiveTuple { transport: Transport::Tcp, ..tuple(1000) }, &request(Method::ALLOCATE, 1, None, |_| {}));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (401, "Unauthorized"));
    assert!(msg.has(attr::PASSWORD_ALGORITHMS));
}

#[test]
fn rfc8489_security_off_sends_rfc5389_challenges() {
    let mut h = Harness::with(ServerConfig { rfc8489_security: false, ..config() }, vec![], 3);
    let resp = challenge(&mut h, &tuple(1000));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(msg.attr(attr::NONCE).unwrap().len(), 16);
    assert!(!msg.has(attr::PASSWORD_ALGORITHMS));
    assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (401, "Unauthorized"));
    let c = Client { algorithm: None, algorithms: None, sha256: false, ..md5_client() };
    let (_, resp) = allocate(&mut h, &tuple(1001), c);
    assert_eq!(code(&resp), None);
}

fn md5_client() -> Client {
    Client { key: long_term_key("alice", REALM, "wonderland").to_vec(), ..sha256_client("alice", "wonderland") }
}

#[test]
fn a_sha256_client_allocates_and_is_answered_with_message_integrity_sha256() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (c, resp) = allocate(&mut h, &t, sha256_client("alice", "wonderland"));
    assert_eq!(code(&resp), None);
    let msg = Message::parse(&resp).unwrap();
    assert!(msg.check_integrity_sha256(&c.key));
    assert!(!msg.has(attr::MESSAGE_INTEGRITY));
    // Refresh, an authenticated error (437 for a second Allocate) too.
    let (_, resp) = h.send(&t, &signed(&c, Method::REFRESH, 3, |_| {}));
    assert_eq!(code(&resp), None);
    assert!(Message::parse(&resp).unwrap().check_integrity_sha256(&c.key));
    let (_, resp) = h.send(&t, &signed(&c, Method::ALLOCATE, 4, transport_udp));
    assert_eq!(code(&resp), Some(437));
    assert!(Message::parse(&resp).unwrap().check_integrity_sha256(&c.key));
    // The MD5 key does not verify under PASSWORD-ALGORITHM SHA-256.
    let md5 = Client { key: long_term_key("alice", REALM, "wonderland").to_vec(), ..c };
    let (_, resp) = h.send(&t, &signed(&md5, Method::REFRESH, 5, |_| {}));
    assert_eq!(code(&resp), Some(401));
}

#[test]
fn md5_keys_work_with_either_integrity_attribute() {
    let mut h = Harness::new();
    // PASSWORD-ALGORITHM MD5 with MESSAGE-INTEGRITY-SHA256.
    let key = long_term_key("alice", REALM, "wonderland").to_vec();
    let c = Client { algorithm: Some(attr::ALGORITHM_MD5), key: key.clone(), ..sha256_client("alice", "x") };
    let (c, resp) = allocate(&mut h, &tuple(1000), c);
    assert_eq!(code(&resp), None);
    assert!(Message::parse(&resp).unwrap().check_integrity_sha256(&c.key));
    // An RFC 5389 client echoes the cookie nonce and sends MESSAGE-INTEGRITY only.
    let c = Client { algorithm: None, algorithms: None, sha256: false, ..c };
    let (c, resp) = allocate(&mut h, &tuple(1001), c);
    assert_eq!(code(&resp), None);
    let msg = Message::parse(&resp).unwrap();
    assert!(msg.check_integrity(&c.key) && !msg.has(attr::MESSAGE_INTEGRITY_SHA256));
}

#[test]
fn bid_down_attempts_are_refused_with_400() {
    let mut h = Harness::new();
    let mut md5_only = PASSWORD_ALGORITHMS.to_vec();
    md5_only.drain(..4);
    let cases = [
        // PASSWORD-ALGORITHMS stripped from the challenge: the client cannot echo it.
        Client { algorithms: None, ..sha256_client("alice", "wonderland") },
        // ... or altered to MD5 only.
        Client {
            algorithm: Some(attr::ALGORITHM_MD5),
            algorithms: Some(md5_only),
            key: long_term_key("alice", REALM, "wonderland").to_vec(),
            ..sha256_client("alice", "wonderland")
        },
        // PASSWORD-ALGORITHMS without PASSWORD-ALGORITHM.
        Client { algorithm: None, ..sha256_client("alice", "wonderland") },
        // An algorithm that was not offered.
        Client { algorithm: Some(0x0003), ..sha256_client("alice", "wonderland") },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let (_, resp) = allocate(&mut h, &tuple(1000 + i as u16), c);
        assert_eq!(code(&resp), Some(400), "case {i}");
    }
    // The cookie cannot be stripped either: the nonce's MAC covers its feature bits.
    let resp = challenge(&mut h, &tuple(1100));
    let nonce = Message::parse(&resp).unwrap().text(attr::NONCE).unwrap().unwrap().to_owned();
    let c = Client {
        algorithm: None,
        algorithms: None,
        sha256: false,
        key: long_term_key("alice", REALM, "wonderland").to_vec(),
        nonce: nonce[NONCE_COOKIE.len() + 4..].to_owned(),
        ..sha256_client("alice", "wonderland")
    };
    let (_, resp) = h.send(&tuple(1100), &signed(&c, Method::ALLOCATE, 2, transport_udp));
    assert_eq!(code(&resp), Some(438));
}

#[test]
fn userhash_names_a_static_user() {
    let mut h = Harness::new();
    let c = Client { hashed: true, ..sha256_client("bob", "builder") };
    let (c, resp) = allocate(&mut h, &tuple(1000), c);
    assert_eq!(code(&resp), None);
    assert!(Message::parse(&resp).unwrap().check_integrity_sha256(&c.key));
    // The allocation belongs to bob: a Refresh by name works too.
    let by_name = Client { hashed: false, ..c };
    let (_, resp) = h.send(&tuple(1000), &signed(&by_name, Method::REFRESH, 3, |_| {}));
    assert_eq!(code(&resp), None);
    // A hash of nobody (or of a REST username) is an unknown user: 401.
    let c = Client { user: "mallory", hashed: true, ..sha256_client("mallory", "x") };
    let (_, resp) = allocate(&mut h, &tuple(1001), c);
    assert_eq!(code(&resp), Some(401));
}

#[test]
fn rest_credentials_and_precomputed_keys() {
    let mut h = Harness::new();
    let name = rest_username(T0 + 3600, "carol", ':');
    let password = rest_password(SECRET, &name);
    let user: &'static str = Box::leak(name.into_boxed_str());
    let (_, resp) = allocate(&mut h, &tuple(1000), sha256_client(user, &password));
    assert_eq!(code(&resp), None, "REST credentials with SHA-256 keys");
    // A user configured with a precomputed MD5 key has no SHA-256 key: MD5 only.
    let md5 = long_term_key("dave", REALM, "pw");
    let creds = Credentials::new(REALM, vec![], ':', vec![("dave".into(), UserSecret::Key(md5))]);
    h.server.reload(config(), creds, PeerPolicy::new(vec![], vec![]));
    let (_, resp) = allocate(&mut h, &tuple(1001), sha256_client("dave", "pw"));
    assert_eq!(code(&resp), Some(401));
    let c = Client { algorithm: Some(attr::ALGORITHM_MD5), key: md5.to_vec(), ..sha256_client("dave", "pw") };
    let (_, resp) = allocate(&mut h, &tuple(1002), c);
    assert_eq!(code(&resp), None);
}
