//! RFC 8489 security over the wire: the independent client in `common::client` authenticates
//! with PASSWORD-ALGORITHM SHA-256, MESSAGE-INTEGRITY-SHA256 and USERHASH; a bid-down attempt
//! is refused; RFC 5389 clients keep MD5 keys and MESSAGE-INTEGRITY.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use common::client::*;
use common::{unix_now, Config};

#[test]
fn a_sha256_client_with_userhash_allocates_and_refreshes() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    c.rfc8489 = Rfc8489 { sha256: true, userhash: true, strip_algorithms: false };
    c.allocate("alice", "wonderland").expect("allocate with SHA-256 and USERHASH");
    // The request loop checked every response's MESSAGE-INTEGRITY-SHA256 with the SHA-256 key.
    assert!(c.uses_sha256());
    assert_eq!(nonce_features(&c.nonce().unwrap()), Some((true, true)));
    assert!(c.refresh(600).is_ok());
    // CreatePermission is signed the same way, and data flows.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    c.create_permission(peer.local_addr().unwrap()).expect("CreatePermission with SHA-256");
    c.send_indication(peer.local_addr().unwrap(), b"sha256");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the peer gets the data");
    assert_eq!((&buf[..n], from), (&b"sha256"[..], c.relayed.unwrap()));
    assert!(c.refresh(0).is_ok());
}

#[test]
fn rest_credentials_use_sha256_with_a_username() {
    let server = Config::default().start();
    let (user, pass) = rest_credentials("s3cret", "carol", unix_now() + 600);
    let mut c = TurnClient::new(server.addr);
    c.rfc8489 = Rfc8489 { sha256: true, ..Rfc8489::default() };
    c.allocate(&user, &pass).expect("allocate with a REST username and a SHA-256 key");
    assert!(c.uses_sha256());
    // USERHASH cannot name a REST user: the hash does not give back the expiry.
    let mut c = TurnClient::new(server.addr);
    c.rfc8489 = Rfc8489 { sha256: true, userhash: true, strip_algorithms: false };
    assert_eq!(c.allocate(&user, &pass).map_err(|e| e.code), Err(401));
}

#[test]
fn stripping_password_algorithms_is_refused() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    c.rfc8489 = Rfc8489 { sha256: true, userhash: false, strip_algorithms: true };
    assert_eq!(c.allocate("alice", "wonderland").map_err(|e| e.code), Err(400));
}

#[test]
fn an_rfc5389_client_keeps_md5_and_message_integrity() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    c.allocate("alice", "wonderland").expect("allocate with MESSAGE-INTEGRITY");
    // It was offered the RFC 8489 features and ignored them.
    assert_eq!(nonce_features(&c.nonce().unwrap()), Some((true, true)));
    assert!(!c.uses_sha256());
    assert!(c.refresh(0).is_ok());
}
