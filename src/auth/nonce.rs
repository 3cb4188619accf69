//! Stateless nonces (RFC 8489 §9.2): nothing is stored per client before it authenticates.
//!
//! A nonce is 12 bytes, sent as 16 characters of base64url without padding:
//! a 4-byte big-endian issue time (unix seconds mod 2^32), then the first 8 bytes of
//! HMAC-SHA1(key, issue time || client IP octets). IPv4-mapped IPv6 addresses are folded to IPv4
//! so that a dual-stack socket and an IPv4 socket agree on the same client.
//!
//! With RFC 8489 security features the nonce is prefixed by the nonce cookie `obMatJos2` and
//! 4 characters of standard base64 encoding the 24 feature bits (§9.2; bit 0 is the most
//! significant), 29 characters in all. The MAC covers the feature bits too, so a cookie
//! stripped or altered on the way to the client makes the nonce invalid.
//!
//! Times are compared modulo 2^32 (serial-number style), so nonces keep working past 2106; a
//! nonce more than ~68 years old would look like one from the future, and is rejected.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::Mac as _;
use subtle::ConstantTimeEq as _;

use super::{hmac_sha1, HmacSha1};

/// Nonce text length in bytes: 12 raw bytes in base64url without padding.
pub const NONCE_LEN: usize = 16;

/// The nonce cookie of RFC 8489 §9.2.
pub const NONCE_COOKIE: &str = "obMatJos2";
/// Longest nonce text: cookie, 4 characters of feature bits, the 16-character nonce.
pub const NONCE_MAX: usize = NONCE_COOKIE.len() + 4 + NONCE_LEN;
/// Security feature bit "Password algorithms" (RFC 8489 §18.1, bit 0: the most significant of 24).
pub const FEATURE_PASSWORD_ALGORITHMS: u32 = 1 << 23;
/// Security feature bit "Username anonymity" (RFC 8489 §18.1, bit 1).
pub const FEATURE_USERNAME_ANONYMITY: u32 = 1 << 22;

/// Raw nonce length: issue time + truncated MAC.
const RAW_LEN: usize = TIME_LEN + TAG_LEN;
const TIME_LEN: usize = 4;
const TAG_LEN: usize = 8;

/// How far in the future (seconds) a nonce's issue time may be and still be accepted: workers
/// sharing one key may read the clock a little apart.
const MAX_FUTURE_SKEW: u32 = 5;

/// What [`NonceMinter::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this client, and within its lifetime.
    Valid,
    /// Ours and for this client, but too old: answer 438 (Stale Nonce) with a fresh one.
    Stale,
    /// Not a nonce we issued to this client (or issued too far in the future).
    Invalid,
}

/// Stateless nonces: no per-client state before authentication. A nonce carries its issue time and an HMAC over (time, client IP) with a per-process random key.
#[derive(Clone)]
pub struct NonceMinter {
    /// HMAC-SHA1 already keyed with the minter's key (cloned per use).
    mac: HmacSha1,
    lifetime: u64,
}

impl fmt::Debug for NonceMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceMinter").field("key", &"<redacted>").field("lifetime", &self.lifetime).finish()
    }
}

impl NonceMinter {
    /// Random key from getrandom; `lifetime` seconds.
    pub fn new(lifetime: u64) -> Self {
        Self::with_key(random_key(), lifetime)
    }

    /// Fixed key, for tests and for several workers sharing one minter.
    pub fn with_key(key: [u8; 32], lifetime: u64) -> Self {
        NonceMinter { mac: hmac_sha1(&key), lifetime }
    }

    /// Writes the nonce for `client` at `unix_now` into `out` and returns it; only characters valid in a STUN NONCE (use base64url without padding, or hex).
    pub fn mint<'a>(&self, unix_now: u64, client: IpAddr, out: &'a mut [u8; NONCE_LEN]) -> &'a str {
        // Modulo 2^32 on purpose; see the module docs.
        let issued = unix_now as u32;
        let mut raw = [0u8; RAW_LEN];
        raw[..TIME_LEN].copy_from_slice(&issued.to_be_bytes());
        raw[TIME_LEN..].copy_from_slice(&self.tag(issued, 0, client));
        // 12 bytes always encode to exactly 16 ASCII characters, so neither step can fail;
        // the empty fallback only keeps this function free of panics.
        match URL_SAFE_NO_PAD.encode_slice(raw, out) {
            Ok(NONCE_LEN) => std::str::from_utf8(out).unwrap_or(""),
            _ => "",
        }
    }

    /// [`NonceMinter::mint`] with RFC 8489 security feature bits (24 bits; 0 = the plain
    /// 16-character nonce, anything else: cookie, feature bits, nonce, 29 characters).
    pub fn mint_with<'a>(&self, unix_now: u64, client: IpAddr, features: u32, out: &'a mut [u8; NONCE_MAX]) -> &'a str {
        let features = features & 0x00FF_FFFF;
        let issued = unix_now as u32;
        let mut raw = [0u8; RAW_LEN];
        raw[..TIME_LEN].copy_from_slice(&issued.to_be_bytes());
        raw[TIME_LEN..].copy_from_slice(&self.tag(issued, features, client));
        let len = if features == 0 {
            // The plain nonce, at the start of `out`.
            match URL_SAFE_NO_PAD.encode_slice(raw, &mut out[..]) {
                Ok(NONCE_LEN) => NONCE_LEN,
                _ => return "",
            }
        } else {
            let (prefix, body) = out.split_at_mut(NONCE_COOKIE.len() + 4);
            prefix[..NONCE_COOKIE.len()].copy_from_slice(NONCE_COOKIE.as_bytes());
            let bits = &features.to_be_bytes()[1..];
            match (
                STANDARD.encode_slice(bits, &mut prefix[NONCE_COOKIE.len()..]),
                URL_SAFE_NO_PAD.encode_slice(raw, body),
            ) {
                (Ok(4), Ok(NONCE_LEN)) => NONCE_MAX,
                _ => return "",
            }
        };
        std::str::from_utf8(&out[..len]).unwrap_or("")
    }

    /// Valid if the MAC matches (constant-time compare with `subtle`) and unix_now < issued + lifetime; Stale if the MAC matches but it is too old (or from the future by more than 5 s is Invalid); Invalid otherwise (wrong length, bad encoding, wrong MAC, different client IP).
    pub fn check(&self, nonce: &[u8], unix_now: u64, client: IpAddr) -> NonceCheck {
        self.check_features(nonce, unix_now, client).0
    }

    /// [`NonceMinter::check`] of a nonce with or without the RFC 8489 cookie; also returns the
    /// security feature bits it was minted with (0 without the cookie). The bits are covered by
    /// the MAC: they are what this server sent.
    pub fn check_features(&self, nonce: &[u8], unix_now: u64, client: IpAddr) -> (NonceCheck, u32) {
        let (features, nonce) = match nonce.strip_prefix(NONCE_COOKIE.as_bytes()) {
            Some(rest) if rest.len() == 4 + NONCE_LEN => {
                let mut bits = [0u8; 3];
                match STANDARD.decode_slice(&rest[..4], &mut bits) {
                    Ok(3) => (u32::from_be_bytes([0, bits[0], bits[1], bits[2]]), &rest[4..]),
                    _ => return (NonceCheck::Invalid, 0),
                }
            }
            _ => (0, nonce),
        };
        (self.check_raw(nonce, features, unix_now, client), features)
    }

    fn check_raw(&self, nonce: &[u8], features: u32, unix_now: u64, client: IpAddr) -> NonceCheck {
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; RAW_LEN];
        // The engine rejects padding, non-base64url bytes and non-zero trailing bits, so each
        // raw nonce has exactly one accepted text form.
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return NonceCheck::Invalid,
        }
        let issued = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let expected = self.tag(issued, features, client);
        if !bool::from(expected.ct_eq(&raw[TIME_LEN..])) {
            return NonceCheck::Invalid;
        }
        let now = unix_now as u32;
        let age = now.wrapping_sub(issued);
        if age > i32::MAX as u32 {
            // Issued after `now`.
            return if issued.wrapping_sub(now) <= MAX_FUTURE_SKEW { NonceCheck::Valid } else { NonceCheck::Invalid };
        }
        if u64::from(age) < self.lifetime {
            NonceCheck::Valid
        } else {
            NonceCheck::Stale
        }
    }

    /// The truncated MAC over (issue time, feature bits, canonical client IP).
    fn tag(&self, issued: u32, features: u32, client: IpAddr) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&issued.to_be_bytes());
        mac.update(&features.to_be_bytes());
        match client {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => mac.update(&v4.octets()),
                None => mac.update(&v6.octets()),
            },
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        for (t, f) in tag.iter_mut().zip(full.iter()) {
            *t = *f;
        }
        tag
    }
}

/// 32 random bytes for a key (nonces, mobility tickets).
///
/// getrandom does not fail on any supported platform in practice; if it ever does, the key comes
/// from std's `RandomState`, which is seeded from the operating system's randomness as well,
/// rather than panicking.
pub(crate) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if getrandom::getrandom(&mut key).is_ok() {
        return key;
    }
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(i);
        for (k, b) in chunk.iter_mut().zip(hasher.finish().to_le_bytes()) {
            *k = b;
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const NOW: u64 = 1_700_000_000;
    const LIFETIME: u64 = 600;

    fn v4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
    }

    fn minter() -> NonceMinter {
        NonceMinter::with_key([7; 32], LIFETIME)
    }

    fn mint(m: &NonceMinter, now: u64, ip: IpAddr) -> [u8; NONCE_LEN] {
        let mut out = [0u8; NONCE_LEN];
        let s = m.mint(now, ip, &mut out);
        assert_eq!(s.len(), NONCE_LEN);
        out
    }

    #[test]
    fn mint_then_check() {
        let m = minter();
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        for ip in [v4(), v6] {
            let n = mint(&m, NOW, ip);
            assert_eq!(m.check(&n, NOW, ip), NonceCheck::Valid);
            assert_eq!(m.check(&n, NOW + LIFETIME - 1, ip), NonceCheck::Valid);
            assert_eq!(m.check(&n, NOW + LIFETIME, ip), NonceCheck::Stale);
            assert_eq!(m.check(&n, NOW + 100 * LIFETIME, ip), NonceCheck::Stale);
        }
    }

    #[test]
    fn text_is_base64url_of_fixed_length() {
        let m = minter();
        for i in 0..200u64 {
            let ip = IpAddr::V4(Ipv4Addr::from(i as u32 * 0x0101_0101));
            let mut out = [0u8; NONCE_LEN];
            let s = m.mint(NOW + i * 977, ip, &mut out);
            assert_eq!(s.len(), NONCE_LEN);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn clock_skew() {
        let m = minter();
        let n = mint(&m, NOW, v4());
        assert_eq!(m.check(&n, NOW - 5, v4()), NonceCheck::Valid);
        assert_eq!(m.check(&n, NOW - 6, v4()), NonceCheck::Invalid);
        assert_eq!(m.check(&n, 0, v4()), NonceCheck::Invalid);
    }

    #[test]
    fn zero_lifetime_is_always_stale() {
        let m = NonceMinter::with_key([7; 32], 0);
        let n = mint(&m, NOW, v4());
        assert_eq!(m.check(&n, NOW, v4()), NonceCheck::Stale);
    }

    #[test]
    fn past_2106() {
        let m = minter();
        for t in [u64::from(u32::MAX) - 10, u64::from(u32::MAX) + 100, u64::MAX - 1] {
            let n = mint(&m, t, v4());
            assert_eq!(m.check(&n, t, v4()), NonceCheck::Valid, "{t}");
            assert_eq!(m.check(&n, t + 1, v4()), NonceCheck::Valid, "{t}");
            assert_eq!(m.check(&n, t.wrapping_add(LIFETIME), v4()), NonceCheck::Stale);
        }
    }

    #[test]
    fn tampered_nonce_is_invalid() {
        let m = minter();
        let n = mint(&m, NOW, v4());
        for i in 0..NONCE_LEN {
            for replacement in [b'A', b'z', b'0', b'-', b'_'] {
                if n[i] == replacement {
                    continue;
                }
                let mut t = n;
                t[i] = replacement;
                assert_eq!(m.check(&t, NOW, v4()), NonceCheck::Invalid, "{i}");
            }
        }
    }

    #[test]
    fn other_client_or_key_is_invalid() {
        let m = minter();
        let n = mint(&m, NOW, v4());
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
        assert_eq!(m.check(&n, NOW, other), NonceCheck::Invalid);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xc000, 0x0207));
        assert_eq!(m.check(&n, NOW, v6), NonceCheck::Invalid);
        let other_key = NonceMinter::with_key([8; 32], LIFETIME);
        assert_eq!(other_key.check(&n, NOW, v4()), NonceCheck::Invalid);
    }

    #[test]
    fn ipv4_mapped_is_the_same_client() {
        let m = minter();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        let n = mint(&m, NOW, v4());
        assert_eq!(m.check(&n, NOW, mapped), NonceCheck::Valid);
        let n = mint(&m, NOW, mapped);
        assert_eq!(m.check(&n, NOW, v4()), NonceCheck::Valid);
        // The deprecated IPv4-compatible form (::192.0.2.7) is a different address.
        let compat = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_compatible());
        assert_eq!(m.check(&n, NOW, compat), NonceCheck::Invalid);
    }

    #[test]
    fn malformed_text_is_invalid() {
        let m = minter();
        let n = mint(&m, NOW, v4());
        let mut long = n.to_vec();
        long.extend_from_slice(b"AAAA");
        let mut padded = n[..12].to_vec();
        padded.extend_from_slice(b"====");
        let mut std_alphabet = n;
        std_alphabet[3] = b'+';
        let garbage = [0xffu8; 4096];
        for bad in [
            &[][..],
            &n[..NONCE_LEN - 1],
            &n[..1],
            &long,
            &padded,
            &std_alphabet,
            &garbage[..],
            &garbage[..NONCE_LEN],
            b"AAAAAAAAAAAAAAAA",
            b"0123456789abcdef",
        ] {
            assert_eq!(m.check(bad, NOW, v4()), NonceCheck::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn random_keys_differ_and_debug_redacts() {
        let (a, b) = (NonceMinter::new(LIFETIME), NonceMinter::new(LIFETIME));
        let n = mint(&a, NOW, v4());
        assert_eq!(a.check(&n, NOW, v4()), NonceCheck::Valid);
        assert_eq!(b.check(&n, NOW, v4()), NonceCheck::Invalid);
        assert_ne!(random_key(), random_key());
        let text = format!("{:?}", NonceMinter::with_key([0x5a; 32], 9));
        assert!(!text.contains("90"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        let m = minter();
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut valid = 0;
        for round in 0..5000 {
            // Mostly lengths near NONCE_LEN, so the decoder and the MAC check both get exercised.
            let len = match round % 3 {
                0 => NONCE_LEN,
                1 => (next() % 24) as usize,
                _ => (next() % 300) as usize,
            };
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 {
                        B64URL[(r % 64) as usize]
                    } else {
                        r as u8
                    }
                })
                .collect();
            let ip = if next() % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(u128::from(next()) << 64 | u128::from(next())))
            };
            if m.check(&bytes, next(), ip) == NonceCheck::Valid {
                valid += 1;
            }
        }
        assert_eq!(valid, 0);
    }

    #[test]
    fn cookie_nonces_carry_their_feature_bits_under_the_mac() {
        let m = minter();
        let features = FEATURE_PASSWORD_ALGORITHMS | FEATURE_USERNAME_ANONYMITY;
        let mut out = [0u8; NONCE_MAX];
        let n = m.mint_with(NOW, v4(), features, &mut out).to_owned();
        assert_eq!(n.len(), NONCE_MAX);
        assert!(n.starts_with("obMatJos2wAAA"), "{n}");
        assert_eq!(m.check_features(n.as_bytes(), NOW, v4()), (NonceCheck::Valid, features));
        assert_eq!(m.check_features(n.as_bytes(), NOW + LIFETIME, v4()), (NonceCheck::Stale, features));
        // Other bits, a stripped cookie, another client: not ours.
        let other = n.replace("wAAA", "gAAA");
        assert_eq!(m.check_features(other.as_bytes(), NOW, v4()).0, NonceCheck::Invalid);
        assert_eq!(m.check(&n.as_bytes()[13..], NOW, v4()), NonceCheck::Invalid);
        assert_eq!(m.check(n.as_bytes(), NOW, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))), NonceCheck::Invalid);
        // RFC 8489 B.1's nonce parses as a cookie nonce but is not ours; bad base64 neither.
        assert_eq!(m.check_features(b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA", NOW, v4()).0, NonceCheck::Invalid);
        assert_eq!(m.check_features(b"obMatJos2*AAAAAAAAAAAAAAAAAAAA", NOW, v4()).0, NonceCheck::Invalid);
        // Without features, mint_with is the plain nonce.
        let plain = m.mint_with(NOW, v4(), 0, &mut out).to_owned();
        assert_eq!(plain.len(), NONCE_LEN);
        assert_eq!(m.check_features(plain.as_bytes(), NOW, v4()), (NonceCheck::Valid, 0));
    }
}
