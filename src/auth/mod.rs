//! Credentials: long-term keys (RFC 8489 §9.2), stateless nonces, TURN REST shared secrets, static users.
//! Depends on nothing else in turnd.
//!
//! Everything here is sans-IO: time is passed in as `unix_now` (seconds since the epoch), and no
//! function panics on input that comes from the network (usernames, nonces). Secrets, passwords
//! and keys are never printed: the types that hold them implement `Debug` by hand and redact.

mod nonce;
mod rest;

pub(crate) use nonce::random_key;

use std::collections::HashMap;
use std::fmt;

use hmac::Hmac;
use md5::{Digest, Md5};
use sha1::Sha1;

pub use nonce::{
    NonceCheck, NonceMinter, FEATURE_PASSWORD_ALGORITHMS, FEATURE_USERNAME_ANONYMITY, NONCE_COOKIE, NONCE_LEN,
    NONCE_MAX,
};
pub use rest::{rest_password, rest_username};

/// The long-term credential key, MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub type Key = [u8; 16];

/// The SHA-256 long-term credential key, SHA-256(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub type Sha256Key = [u8; 32];

/// The password algorithms of RFC 8489 §18.5 that turnd knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAlgorithm {
    Md5,
    Sha256,
}

/// A long-term key of either algorithm, as found by [`Credentials::find_key_for`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LongTermKey {
    Md5(Key),
    Sha256(Sha256Key),
}

impl LongTermKey {
    /// The key bytes HMACs are keyed with.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LongTermKey::Md5(k) => k,
            LongTermKey::Sha256(k) => k,
        }
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LongTermKey::Md5(_) => f.write_str("Md5(<redacted>)"),
            LongTermKey::Sha256(_) => f.write_str("Sha256(<redacted>)"),
        }
    }
}

/// Computes the SHA-256 long-term credential key (RFC 8489 §9.2.2, PASSWORD-ALGORITHM SHA-256).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> Sha256Key {
    sha256_key_from_bytes(username.as_bytes(), realm.as_bytes(), password.as_bytes())
}

fn sha256_key_from_bytes(username: &[u8], realm: &[u8], password: &[u8]) -> Sha256Key {
    credential_digest::<sha2::Sha256>(username, realm, password).into()
}

/// `D(username ":" realm ":" password)`, the long-term key under either password algorithm.
fn credential_digest<D: Digest>(username: &[u8], realm: &[u8], password: &[u8]) -> md5::digest::Output<D> {
    D::new()
        .chain_update(username)
        .chain_update(b":")
        .chain_update(realm)
        .chain_update(b":")
        .chain_update(password)
        .finalize()
}

/// The USERHASH of a username, SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    sha2::Sha256::new().chain_update(username).chain_update(b":").chain_update(realm).finalize().into()
}

/// HMAC-SHA1, used for TURN REST passwords and for nonces.
type HmacSha1 = Hmac<Sha1>;

/// Computes the long-term credential key, MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
///
/// The inputs are used as given: any SASLprep / OpaqueString processing is the caller's business.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> Key {
    key_from_bytes(username.as_bytes(), realm.as_bytes(), password.as_bytes())
}

/// [`long_term_key`] over raw bytes (REST passwords are built in a stack buffer).
fn key_from_bytes(username: &[u8], realm: &[u8], password: &[u8]) -> Key {
    credential_digest::<Md5>(username, realm, password).into()
}

/// An HMAC-SHA1 instance keyed with `key`, built without any fallible call.
///
/// Follows RFC 2104 §2: a key longer than the SHA-1 block (64 bytes) is hashed first, and the
/// key is then zero-padded to a full block. This is exactly what `Hmac::new_from_slice` does,
/// but without a `Result` that could never be `Err`.
fn hmac_sha1(key: &[u8]) -> HmacSha1 {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha1 as hmac::digest::KeyInit>::new(&block.into())
}

/// A static user's secret as configured: a plain password, or a precomputed key (coturn turnadmin -k / `user=name:0x<32 hex>`).
#[derive(Clone)]
pub enum UserSecret {
    /// A plain password; the key is derived with the realm when [`Credentials`] are built.
    Password(String),
    /// A precomputed long-term key, already bound to the realm.
    Key(Key),
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.write_str("Password(<redacted>)"),
            UserSecret::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// Why authentication failed. Copy, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither a static user nor (with REST secrets configured) a REST username.
    #[error("unknown user")]
    UnknownUser,
    /// A TURN REST username whose expiry time is in the past.
    #[error("REST username has expired")]
    Expired,
    /// A username that must be a TURN REST username but does not parse as one.
    #[error("malformed REST username")]
    Malformed,
    /// Candidate keys existed, but none of them verified the message.
    #[error("message integrity does not match")]
    BadIntegrity,
}

/// Everything needed to verify long-term credentials; built once from config (keys of static users precomputed here).
#[derive(Clone)]
pub struct Credentials {
    realm: String,
    /// One HMAC-SHA1 instance per REST shared secret, already keyed (cloned per use).
    secrets: Vec<HmacSha1>,
    separator: char,
    /// Static users by exact name, with their long-term keys: MD5, and SHA-256 for users
    /// configured with a password (a precomputed `key` is MD5 only).
    users: HashMap<String, (Key, Option<Sha256Key>)>,
    /// Static users by USERHASH (RFC 8489 §14.4), computed here, so at load and reload.
    hashes: HashMap<[u8; 32], String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .field("rest_secrets", &self.secrets.len())
            .field("separator", &self.separator)
            .field("static_users", &self.users.len())
            .field("userhashes", &self.hashes.len())
            .finish()
    }
}

impl Credentials {
    /// `secrets`: TURN REST shared secrets, several at once for rotation; `separator`: between expiry and user in REST usernames (coturn default ':').
    ///
    /// `users` are static users; a plain password is turned into its key for `realm` here. When a
    /// name appears more than once, the last entry wins.
    pub fn new(realm: &str, secrets: Vec<String>, separator: char, users: Vec<(String, UserSecret)>) -> Self {
        let users: HashMap<String, (Key, Option<Sha256Key>)> = users
            .into_iter()
            .map(|(name, secret)| {
                let keys = match secret {
                    UserSecret::Password(password) => {
                        (long_term_key(&name, realm, &password), Some(long_term_key_sha256(&name, realm, &password)))
                    }
                    UserSecret::Key(key) => (key, None),
                };
                (name, keys)
            })
            .collect();
        let hashes = users.keys().map(|name| (userhash(name, realm), name.clone())).collect();
        Credentials {
            realm: realm.to_owned(),
            secrets: secrets.iter().map(|s| hmac_sha1(s.as_bytes())).collect(),
            separator,
            users,
            hashes,
        }
    }

    /// The realm the keys are bound to (sent to clients in the REALM attribute).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Finds the key for `username` whose integrity check `verify` accepts, trying each candidate key:
    /// a static user (exact name match) first — one key; otherwise, if any REST secret is configured, the username is parsed as
    /// `<expiry>[<sep><user>]` (expiry: 1..=20 ASCII digits, parsed as u64 without overflow; anything else → Malformed);
    /// expiry < unix_now → Expired; else for each secret: password = base64(HMAC-SHA1(secret, username)), key = long_term_key(username, realm, password).
    /// No candidate → UnknownUser; candidates but none verified → BadIntegrity.
    ///
    /// Allocates nothing: the REST password is built in a stack buffer.
    pub fn find_key(
        &self,
        username: &str,
        unix_now: u64,
        mut verify: impl FnMut(&Key) -> bool,
    ) -> Result<Key, AuthError> {
        let found = self.find_key_for(username, PasswordAlgorithm::Md5, unix_now, |key| {
            <&Key>::try_from(key).is_ok_and(&mut verify)
        });
        match found {
            Ok(LongTermKey::Md5(key)) => Ok(key),
            Ok(LongTermKey::Sha256(_)) => Err(AuthError::BadIntegrity),
            Err(e) => Err(e),
        }
    }

    /// The static user whose USERHASH (RFC 8489 §14.4) is `hash`. TURN REST usernames have no
    /// entry: a hash cannot be turned back into the expiry the password depends on.
    pub fn user_by_hash(&self, hash: &[u8]) -> Option<&str> {
        let hash: &[u8; 32] = hash.try_into().ok()?;
        self.hashes.get(hash).map(String::as_str)
    }

    /// [`Credentials::find_key`] for either password algorithm (RFC 8489 §9.2.2): the SHA-256
    /// key is SHA-256(username ":" realm ":" password). A static user configured with a
    /// precomputed MD5 `key` has no SHA-256 key: [`AuthError::BadIntegrity`] without a check.
    pub fn find_key_for(
        &self,
        username: &str,
        algorithm: PasswordAlgorithm,
        unix_now: u64,
        mut verify: impl FnMut(&[u8]) -> bool,
    ) -> Result<LongTermKey, AuthError> {
        if let Some((md5, sha256)) = self.users.get(username) {
            let key = match (algorithm, sha256) {
                (PasswordAlgorithm::Md5, _) => LongTermKey::Md5(*md5),
                (PasswordAlgorithm::Sha256, Some(key)) => LongTermKey::Sha256(*key),
                (PasswordAlgorithm::Sha256, None) => return Err(AuthError::BadIntegrity),
            };
            return if verify(key.as_bytes()) { Ok(key) } else { Err(AuthError::BadIntegrity) };
        }
        if self.secrets.is_empty() {
            return Err(AuthError::UnknownUser);
        }
        let expiry = rest::parse_expiry(username, self.separator).ok_or(AuthError::Malformed)?;
        if expiry < unix_now {
            return Err(AuthError::Expired);
        }
        for mac in &self.secrets {
            let mut buf = [0u8; rest::PASSWORD_LEN];
            let Some(password) = rest::password_into(mac, username, &mut buf) else {
                continue;
            };
            let (user, realm) = (username.as_bytes(), self.realm.as_bytes());
            let key = match algorithm {
                PasswordAlgorithm::Md5 => LongTermKey::Md5(key_from_bytes(user, realm, password)),
                PasswordAlgorithm::Sha256 => LongTermKey::Sha256(sha256_key_from_bytes(user, realm, password)),
            };
            if verify(key.as_bytes()) {
                return Ok(key);
            }
        }
        Err(AuthError::BadIntegrity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use hmac::Mac;

    const REALM: &str = "example.org";
    const NOW: u64 = 1_700_000_000;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Independent reference: HMAC-SHA1 via the hmac crate's own constructor, then base64 + MD5.
    fn reference_rest_key(secret: &str, username: &str) -> Key {
        let mut mac = <HmacSha1 as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(username.as_bytes());
        let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        Md5::digest(format!("{username}:{REALM}:{password}").as_bytes()).into()
    }

    fn creds(secrets: &[&str], sep: char) -> Credentials {
        Credentials::new(
            REALM,
            secrets.iter().map(|s| s.to_string()).collect(),
            sep,
            vec![
                ("alice".into(), UserSecret::Password("wonderland".into())),
                ("bob".into(), UserSecret::Key(long_term_key("bob", REALM, "builder"))),
            ],
        )
    }

    #[test]
    fn long_term_key_rfc5769() {
        let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let key = long_term_key(username, "example.org", "TheMatrIX");
        assert_eq!(hex(&key), "e8ca7ad59d5eb0518e312911d2dab2a9");
    }

    #[test]
    fn long_term_key_ascii_matches_md5() {
        let expected: Key = Md5::digest(b"alice:example.org:secret").into();
        assert_eq!(long_term_key("alice", "example.org", "secret"), expected);
        assert_eq!(hex(&expected), "543e1aec5d3614f03141652d6ada51b2");
    }

    #[test]
    fn static_users() {
        let c = creds(&[], ':');
        let alice = long_term_key("alice", REALM, "wonderland");
        assert_eq!(c.find_key("alice", NOW, |k| *k == alice), Ok(alice));
        assert_eq!(c.find_key("alice", NOW, |_| false), Err(AuthError::BadIntegrity));
        let bob = long_term_key("bob", REALM, "builder");
        assert_eq!(c.find_key("bob", NOW, |k| *k == bob), Ok(bob));
        assert_eq!(c.find_key("carol", NOW, |_| true), Err(AuthError::UnknownUser));
        // Exact match only.
        assert_eq!(c.find_key("Alice", NOW, |_| true), Err(AuthError::UnknownUser));
        // Without secrets, a REST-looking name is just an unknown user.
        assert_eq!(c.find_key("1800000000:alice", NOW, |_| true), Err(AuthError::UnknownUser));
        assert_eq!(c.realm(), REALM);
    }

    #[test]
    fn static_user_takes_precedence_and_is_tried_once() {
        let c = Credentials::new(
            REALM,
            vec!["north".into()],
            ':',
            vec![("1800000000".into(), UserSecret::Password("pw".into()))],
        );
        let mut calls = 0;
        let r = c.find_key("1800000000", NOW, |_| {
            calls += 1;
            false
        });
        assert_eq!((r, calls), (Err(AuthError::BadIntegrity), 1));
        let key = long_term_key("1800000000", REALM, "pw");
        assert_eq!(c.find_key("1800000000", NOW, |k| *k == key), Ok(key));
    }

    #[test]
    fn rest_valid_and_expired() {
        let c = creds(&["north"], ':');
        let name = rest_username(NOW + 3600, "carol", ':');
        let expected = reference_rest_key("north", &name);
        assert_eq!(c.find_key(&name, NOW, |k| *k == expected), Ok(expected));
        // Expiry equal to now is still accepted; one second later it is not.
        let name = rest_username(NOW, "carol", ':');
        let key = reference_rest_key("north", &name);
        assert_eq!(c.find_key(&name, NOW, |k| *k == key), Ok(key));
        assert_eq!(c.find_key(&name, NOW + 1, |_| true), Err(AuthError::Expired));
        // Wrong integrity.
        let name = rest_username(NOW + 10, "carol", ':');
        assert_eq!(c.find_key(&name, NOW, |_| false), Err(AuthError::BadIntegrity));
        // Static users still work alongside REST secrets.
        let alice = long_term_key("alice", REALM, "wonderland");
        assert_eq!(c.find_key("alice", NOW, |k| *k == alice), Ok(alice));
    }

    #[test]
    fn rest_malformed() {
        let c = creds(&["north"], ':');
        let long = "1".repeat(21);
        let overflow = "18446744073709551616:x"; // u64::MAX + 1, 20 digits
        for name in [
            "carol",
            "carol:1800000000",
            "",
            ":carol",
            "18000a0000:carol",
            "+1800000000:carol",
            " 1800000000",
            "1800000000-carol", // wrong separator
            long.as_str(),
            overflow,
            "\u{0661}\u{0662}:carol", // non-ASCII digits
        ] {
            assert_eq!(c.find_key(name, NOW, |_| true), Err(AuthError::Malformed), "{name:?}");
        }
        // 20 digits that fit in u64 are fine (and far in the future).
        let max = format!("{}:carol", u64::MAX);
        let key = reference_rest_key("north", &max);
        assert_eq!(c.find_key(&max, NOW, |k| *k == key), Ok(key));
    }

    #[test]
    fn rest_rotation() {
        let c = creds(&["old", "new"], ':');
        let name = rest_username(NOW + 60, "dave", ':');
        for secret in ["old", "new"] {
            let key = reference_rest_key(secret, &name);
            assert_eq!(c.find_key(&name, NOW, |k| *k == key), Ok(key), "{secret}");
        }
        let other = reference_rest_key("third", &name);
        assert_eq!(c.find_key(&name, NOW, |k| *k == other), Err(AuthError::BadIntegrity));
        let mut calls = 0;
        let _ = c.find_key(&name, NOW, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 2);
    }

    #[test]
    fn rest_separator_and_bare_expiry() {
        let c = creds(&["north"], '-');
        let name = rest_username(NOW + 60, "erin", '-');
        assert_eq!(name, format!("{}-erin", NOW + 60));
        let key = reference_rest_key("north", &name);
        assert_eq!(c.find_key(&name, NOW, |k| *k == key), Ok(key));
        let colon = format!("{}:erin", NOW + 60);
        assert_eq!(c.find_key(&colon, NOW, |_| true), Err(AuthError::Malformed));
        // Only digits: no user part.
        let bare = rest_username(NOW + 60, "", '-');
        assert_eq!(bare, (NOW + 60).to_string());
        let key = reference_rest_key("north", &bare);
        assert_eq!(c.find_key(&bare, NOW, |k| *k == key), Ok(key));
        // A multi-byte separator works too.
        let c = creds(&["north"], '\u{00B7}');
        let name = rest_username(NOW + 60, "erin", '\u{00B7}');
        let key = reference_rest_key("north", &name);
        assert_eq!(c.find_key(&name, NOW, |k| *k == key), Ok(key));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new(
            REALM,
            vec!["topsecret".into()],
            ':',
            vec![("alice".into(), UserSecret::Password("hunter2".into()))],
        );
        let text = format!("{c:?} {:?} {:?}", UserSecret::Password("hunter2".into()), UserSecret::Key([0xab; 16]));
        assert!(!text.contains("topsecret") && !text.contains("hunter2"));
        assert!(!text.contains("171"), "{text}");
        assert!(text.contains(REALM));
    }

    #[test]
    fn find_key_no_panic_on_arbitrary_strings() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "0123456789:-·aZ \u{0}\u{30DE}\u{1F600}\u{0661}".chars().collect();
        let c = creds(&["north", "south"], ':');
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let s: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let now = next() % (u64::MAX / 2);
            let accept = next() % 2 == 0;
            let _ = c.find_key(&s, now, |_| accept);
            let _ = c.find_key(&s, u64::MAX, |_| accept);
        }
    }

    #[test]
    fn sha256_keys_and_userhashes() {
        let c = creds(&["north"], ':');
        let alice = long_term_key_sha256("alice", REALM, "wonderland");
        let expected: Sha256Key = sha2::Sha256::digest(b"alice:example.org:wonderland").into();
        assert_eq!(alice, expected);
        let found = c.find_key_for("alice", PasswordAlgorithm::Sha256, NOW, |k| k == alice);
        assert_eq!(found, Ok(LongTermKey::Sha256(alice)));
        // bob's key was configured precomputed (MD5): no SHA-256 key, not even tried.
        let found = c.find_key_for("bob", PasswordAlgorithm::Sha256, NOW, |_| panic!("no key to try"));
        assert_eq!(found, Err(AuthError::BadIntegrity));
        let bob = long_term_key("bob", REALM, "builder");
        assert_eq!(c.find_key_for("bob", PasswordAlgorithm::Md5, NOW, |k| k == bob), Ok(LongTermKey::Md5(bob)));
        // REST: SHA-256 over the same username:realm:password.
        let name = rest_username(NOW + 60, "carol", ':');
        let key = long_term_key_sha256(&name, REALM, &rest_password("north", &name));
        assert_eq!(c.find_key_for(&name, PasswordAlgorithm::Sha256, NOW, |k| k == key), Ok(LongTermKey::Sha256(key)));
        // USERHASH finds static users only.
        assert_eq!(c.user_by_hash(&userhash("alice", REALM)), Some("alice"));
        assert_eq!(c.user_by_hash(&userhash("bob", REALM)), Some("bob"));
        assert_eq!(c.user_by_hash(&userhash(&name, REALM)), None);
        assert_eq!(c.user_by_hash(&userhash("alice", REALM)[..31]), None);
        assert_eq!(format!("{:?}", LongTermKey::Sha256(alice)), "Sha256(<redacted>)");
    }
}
