//! TURN REST shared-secret credentials (draft-uberti-behave-turn-rest, coturn `use-auth-secret`).
//!
//! The username is `<expiry>[<sep><user>]`, with the expiry in unix seconds, and the password is
//! base64(HMAC-SHA1(secret, username)) with standard base64 and padding.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::Mac as _;

use super::{hmac_sha1, HmacSha1};

/// Length of a REST password: base64 of a 20-byte HMAC-SHA1, padded.
pub(super) const PASSWORD_LEN: usize = 28;

/// Longest accepted expiry, in decimal digits (`u64::MAX` has 20).
const MAX_EXPIRY_DIGITS: usize = 20;

/// TURN REST password for a username: base64(HMAC-SHA1(secret, username)) (draft-uberti-behave-turn-rest, coturn use-auth-secret).
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac = hmac_sha1(secret.as_bytes());
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// TURN REST username `<expiry><sep><user>` (just `<expiry>` when user is empty).
pub fn rest_username(expiry: u64, user: &str, separator: char) -> String {
    if user.is_empty() {
        expiry.to_string()
    } else {
        format!("{expiry}{separator}{user}")
    }
}

/// The REST password for `username` under the secret `mac` is keyed with, written into `out`.
///
/// Returns `None` only if base64 does not fit the buffer, which cannot happen for a 20-byte MAC.
pub(super) fn password_into<'a>(mac: &HmacSha1, username: &str, out: &'a mut [u8; PASSWORD_LEN]) -> Option<&'a [u8]> {
    let mut mac = mac.clone();
    mac.update(username.as_bytes());
    let n = STANDARD.encode_slice(mac.finalize().into_bytes(), out).ok()?;
    out.get(..n)
}

/// The expiry of a REST username `<expiry>[<sep><user>]`: 1 to 20 ASCII digits that fit a `u64`.
///
/// Returns `None` for anything else (empty, non-digit, too long, overflowing).
pub(super) fn parse_expiry(username: &str, separator: char) -> Option<u64> {
    let digits = match username.split_once(separator) {
        Some((expiry, _user)) => expiry,
        None => username,
    };
    if digits.is_empty() || digits.len() > MAX_EXPIRY_DIGITS {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    #[test]
    fn rest_password_known_vector() {
        // Computed independently with the hmac, sha1 and base64 crates.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(b"north").unwrap();
        mac.update(b"1700000000:alice");
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(rest_password("north", "1700000000:alice"), expected);
        // coturn's documented scheme, as a shell one-liner:
        // echo -n 1700000000:alice | openssl dgst -binary -sha1 -hmac north | openssl base64
        assert_eq!(expected, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
    }

    #[test]
    fn password_into_matches_rest_password() {
        let mac = hmac_sha1(b"north");
        for name in ["", "1700000000:alice", "1700000000", "\u{30DE}:x"] {
            let mut buf = [0u8; PASSWORD_LEN];
            let got = password_into(&mac, name, &mut buf).unwrap();
            assert_eq!(got, rest_password("north", name).as_bytes());
            assert_eq!(got.len(), PASSWORD_LEN);
        }
    }

    #[test]
    fn hmac_helper_matches_new_from_slice() {
        for len in [0usize, 1, 20, 32, 63, 64, 65, 100, 300] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut ours = hmac_sha1(&key);
            let mut theirs = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
            ours.update(b"message");
            theirs.update(b"message");
            assert_eq!(ours.finalize().into_bytes(), theirs.finalize().into_bytes());
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(rest_username(1_700_000_000, "alice", ':'), "1700000000:alice");
        assert_eq!(rest_username(1_700_000_000, "alice", '-'), "1700000000-alice");
        assert_eq!(rest_username(1_700_000_000, "", ':'), "1700000000");
        assert_eq!(rest_username(0, "a:b", ':'), "0:a:b");
    }

    #[test]
    fn expiry_parsing() {
        assert_eq!(parse_expiry("1700000000:alice", ':'), Some(1_700_000_000));
        assert_eq!(parse_expiry("1700000000", ':'), Some(1_700_000_000));
        assert_eq!(parse_expiry("0", ':'), Some(0));
        assert_eq!(parse_expiry("42:", ':'), Some(42));
        assert_eq!(parse_expiry("42:a:b", ':'), Some(42));
        assert_eq!(parse_expiry("42-a", '-'), Some(42));
        assert_eq!(parse_expiry("00000000000000000042", ':'), Some(42));
        let max = u64::MAX.to_string();
        assert_eq!(parse_expiry(&max, ':'), Some(u64::MAX));
        for bad in [
            "",
            ":alice",
            "alice",
            "alice:42",
            "4a2:x",
            "-42",
            "42 ",
            "000000000000000000042",
            "18446744073709551616",
            "99999999999999999999",
            "\u{0664}\u{0662}",
        ] {
            assert_eq!(parse_expiry(bad, ':'), None, "{bad:?}");
        }
    }
}
