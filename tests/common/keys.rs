//! Credential helpers of the independent test client: long-term keys (MD5 and SHA-256),
//! USERHASH, the RFC 8489 nonce cookie's feature bits, HMACs and TURN REST credentials.
//! Shares no code with turnd.
#![allow(dead_code)]

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// Long-term credential key: MD5(username ":" realm ":" password).
pub fn long_term_key(user: &str, realm: &str, pass: &str) -> Vec<u8> {
    let mut h = Md5::new();
    h.update(format!("{user}:{realm}:{pass}").as_bytes());
    h.finalize().to_vec()
}

/// RFC 8489 long-term key with PASSWORD-ALGORITHM SHA-256: SHA-256(username ":" realm ":" password).
pub fn long_term_key_sha256(user: &str, realm: &str, pass: &str) -> Vec<u8> {
    Sha256::digest(format!("{user}:{realm}:{pass}").as_bytes()).to_vec()
}

/// USERHASH (RFC 8489 §14.4): SHA-256(username ":" realm).
pub fn userhash(user: &str, realm: &str) -> Vec<u8> {
    Sha256::digest(format!("{user}:{realm}").as_bytes()).to_vec()
}

/// The RFC 8489 §9.2 security feature bits of a nonce: `Some((password_algorithms,
/// username_anonymity))` when it starts with the cookie `obMatJos2`.
pub fn nonce_features(nonce: &str) -> Option<(bool, bool)> {
    let bits = nonce.strip_prefix("obMatJos2")?.get(..4)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(bits).ok()?;
    Some((bytes[0] & 0x80 != 0, bytes[0] & 0x40 != 0))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("hmac key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// TURN REST credentials: username `expiry<sep>user`, password base64(HMAC-SHA1(secret, username)).
pub fn rest_credentials(secret: &str, user: &str, expiry_unix: u64) -> (String, String) {
    rest_credentials_sep(secret, user, expiry_unix, ":")
}

pub fn rest_credentials_sep(secret: &str, user: &str, expiry_unix: u64, sep: &str) -> (String, String) {
    let username = format!("{expiry_unix}{sep}{user}");
    let pass = base64::engine::general_purpose::STANDARD.encode(hmac_sha1(secret.as_bytes(), username.as_bytes()));
    (username, pass)
}
