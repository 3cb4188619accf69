//! Peer address policy: which peer IPs an allocation may reach (deny special-purpose by default).
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a peer was refused. Small, Copy, never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Matched an entry of the operator's `denied-peers` list.
    Denied,
    /// A special-purpose range; the str names it (e.g. "loopback", "private (RFC 1918)").
    SpecialPurpose(&'static str),
}

impl Refusal {
    /// Short human-readable text for logs and error responses.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Denied => "denied by denied-peers",
            Refusal::SpecialPurpose(name) => name,
        }
    }
}

/// Builds an IPv4 address as a host-order integer, usable in const tables.
const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Builds an IPv6 prefix from its first three segments (the rest zero).
const fn v6(a: u16, b: u16, c: u16) -> u128 {
    ((a as u128) << 112) | ((b as u128) << 96) | ((c as u128) << 80)
}

/// Special-purpose IPv4 ranges (network, prefix length, name); first match wins,
/// so more specific entries come before the ranges that contain them.
const V4_SPECIAL: &[(u32, u8, &str)] = &[
    (v4(0, 0, 0, 0), 32, "unspecified"),
    (v4(0, 0, 0, 0), 8, "this network (0.0.0.0/8)"),
    (v4(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (v4(100, 64, 0, 0), 10, "shared address space (RFC 6598)"),
    (v4(127, 0, 0, 0), 8, "loopback"),
    (v4(169, 254, 0, 0), 16, "link-local"),
    (v4(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (v4(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (v4(192, 0, 2, 0), 24, "documentation"),
    (v4(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (v4(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (v4(198, 18, 0, 0), 15, "benchmarking"),
    (v4(198, 51, 100, 0), 24, "documentation"),
    (v4(203, 0, 113, 0), 24, "documentation"),
    (v4(224, 0, 0, 0), 4, "multicast"),
    (v4(255, 255, 255, 255), 32, "broadcast"),
    (v4(240, 0, 0, 0), 4, "reserved"),
];

/// Special-purpose IPv6 ranges (network, prefix length, name). IPv4-mapped and
/// IPv4-compatible forms are canonicalised before this table is consulted; NAT64
/// 64:ff9b::/96, 6to4 and Teredo are judged by their embedded IPv4 addresses.
const V6_SPECIAL: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (v6(0x64, 0xff9b, 1), 48, "local-use NAT64 (64:ff9b:1::/48)"),
    (v6(0x100, 0, 0), 64, "discard-only (100::/64)"),
    (v6(0x2001, 2, 0), 48, "benchmarking"),
    (v6(0x2001, 0x10, 0), 28, "ORCHID (deprecated)"),
    (v6(0x2001, 0x20, 0), 28, "ORCHIDv2"),
    (v6(0x2001, 0xdb8, 0), 32, "documentation"),
    (v6(0x3fff, 0, 0), 20, "documentation"),
    (v6(0x5f00, 0, 0), 16, "SRv6 SIDs (5f00::/16)"),
    (v6(0xfc00, 0, 0), 7, "unique local (fc00::/7)"),
    (v6(0xfe80, 0, 0), 10, "link-local"),
    (v6(0xfec0, 0, 0), 10, "site-local (deprecated)"),
    (v6(0xff00, 0, 0), 8, "multicast"),
];

/// Well-known translation/tunnelling prefixes that carry an IPv4 address.
const NAT64_WKP: u128 = v6(0x64, 0xff9b, 0); // /96
const NAT64_LOCAL: u128 = v6(0x64, 0xff9b, 1); // /48
const SIX_TO_FOUR: u128 = v6(0x2002, 0, 0); // /16
const TEREDO: u128 = v6(0x2001, 0, 0); // /32
const V4_MAPPED: u128 = 0xffff << 32; // ::ffff:0:0/96

/// Network mask for a prefix length; lengths beyond the width saturate.
fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32u32.saturating_sub(u32::from(len))).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128u32.saturating_sub(u32::from(len))).unwrap_or(0)
}

fn in_v6(bits: u128, net: u128, len: u8) -> bool {
    bits & mask128(len) == net & mask128(len)
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_SPECIAL.iter().find(|(net, len, _)| bits & mask32(*len) == net & mask32(*len)).map(|(_, _, name)| *name)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    V6_SPECIAL.iter().find(|(net, len, _)| in_v6(bits, *net, *len)).map(|(_, _, name)| *name)
}

fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

/// IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, excluding :: and ::1)
/// IPv6 → the IPv4 address; anything else unchanged. Use this to compare addresses.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let bits = u128::from(v6);
    // Truncation keeps exactly the low 32 bits, which hold the IPv4 address.
    let low = Ipv4Addr::from(bits as u32);
    if in_v6(bits, V4_MAPPED, 96) || (bits >> 32 == 0 && bits > 1) {
        IpAddr::V4(low)
    } else {
        ip
    }
}

/// IPv4 addresses embedded in an IPv6 address by translation/tunnelling schemes:
/// NAT64 64:ff9b::/96 and local-use 64:ff9b:1::/48 (last 32 bits), 6to4 2002::/16
/// (bits 16..48), Teredo 2001:0::/32 (server = bits 32..64, client = last 32 bits
/// XOR 0xffffffff; both returned, server first). Does not allocate.
pub fn embedded_ipv4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let bits = u128::from(ip);
    // All `as u32` casts below deliberately truncate to the selected 32-bit field.
    if in_v6(bits, NAT64_WKP, 96) || in_v6(bits, NAT64_LOCAL, 48) {
        [Some(Ipv4Addr::from(bits as u32)), None]
    } else if in_v6(bits, SIX_TO_FOUR, 16) {
        [Some(Ipv4Addr::from((bits >> 80) as u32)), None]
    } else if in_v6(bits, TEREDO, 32) {
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(bits as u32 ^ u32::MAX);
        [Some(server), Some(client)]
    } else {
        [None, None]
    }
}

/// Operator-configured peer policy layered over the built-in special-purpose list.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
}

/// Adds the plain IPv4 form of an IPv4-mapped IPv6 net (e.g. ::ffff:10.0.0.0/104
/// → 10.0.0.0/8) so that configured nets compare like canonical addresses.
fn with_ipv4_forms(nets: Vec<IpNet>) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(nets.len());
    for net in nets {
        if let IpNet::V6(n6) = net {
            let bits = u128::from(n6.network());
            if n6.prefix_len() >= 96 && in_v6(bits, V4_MAPPED, 96) {
                let v4 = Ipv4Addr::from(bits as u32);
                if let Ok(n4) = Ipv4Net::new(v4, n6.prefix_len() - 96) {
                    out.push(IpNet::V4(n4));
                }
            }
        }
        out.push(net);
    }
    out
}

fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&ip))
}

impl PeerPolicy {
    /// `allowed` wins over everything (as coturn's allowed-peer-ip); `denied` is
    /// added to the built-in special-purpose list.
    pub fn new(allowed: Vec<IpNet>, denied: Vec<IpNet>) -> Self {
        PeerPolicy { allowed: with_ipv4_forms(allowed), denied: with_ipv4_forms(denied) }
    }

    /// Verdict for a peer IP. Never allocates and never panics.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let c = canonical(ip);
        if any_contains(&self.allowed, ip) || any_contains(&self.allowed, c) {
            return Ok(());
        }
        if any_contains(&self.denied, c) || any_contains(&self.denied, ip) {
            return Err(Refusal::Denied);
        }
        if let Some(name) = special(c) {
            return Err(Refusal::SpecialPurpose(name));
        }
        if let IpAddr::V6(v6) = c {
            // An allowed embedded IPv4 does not allow the IPv6 form: only the rule above allows.
            for e in embedded_ipv4(v6).into_iter().flatten() {
                if any_contains(&self.denied, IpAddr::V4(e)) {
                    return Err(Refusal::Denied);
                }
                if let Some(name) = special_v4(e) {
                    return Err(Refusal::SpecialPurpose(name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address literal")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test net literal")
    }

    #[test]
    fn default_policy_refuses_special_purpose() {
        let p = PeerPolicy::default();
        let cases = [
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("10.0.0.1", "private (RFC 1918)"),
            ("192.168.1.1", "private (RFC 1918)"),
            ("172.16.5.4", "private (RFC 1918)"),
            ("100.64.0.1", "shared address space (RFC 6598)"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique local (fc00::/7)"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("0.1.2.3", "this network (0.0.0.0/8)"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("64:ff9b:1::808:808", "local-use NAT64 (64:ff9b:1::/48)"),
            ("3fff::1", "documentation"),
            ("fec0::1", "site-local (deprecated)"),
            // Teredo with server 10.0.0.1 and client 8.8.8.8: the server decides.
            ("2001:0:a00:1::f7f7:f7f7", "private (RFC 1918)"),
        ];
        for (addr, name) in cases {
            let verdict = p.check(ip(addr));
            assert_eq!(verdict, Err(Refusal::SpecialPurpose(name)), "{addr}");
            if let Err(r) = verdict {
                assert_eq!(r.reason(), name);
            }
        }
    }

    #[test]
    fn default_policy_allows_public() {
        let p = PeerPolicy::new(vec![], vec![]);
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo client 8.8.8.8
        ] {
            assert_eq!(p.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allowed_list_wins() {
        let p = PeerPolicy::new(vec![net("127.0.0.0/8")], vec![]);
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("10.0.0.1")), Err(Refusal::SpecialPurpose("private (RFC 1918)")));
        // An allowed embedded IPv4 does not allow its NAT64/6to4 forms.
        assert!(p.check(ip("64:ff9b::7f00:1")).is_err());
        assert!(p.check(ip("2002:7f00:1::")).is_err());

        let mapped = PeerPolicy::new(vec![net("::ffff:10.0.0.0/104")], vec![]);
        assert_eq!(mapped.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(mapped.check(ip("::ffff:10.1.2.3")), Ok(()));
    }

    #[test]
    fn denied_list() {
        let p = PeerPolicy::new(vec![], vec![net("8.8.8.0/24")]);
        assert_eq!(p.check(ip("8.8.8.8")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("::ffff:8.8.8.8")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("64:ff9b::808:808")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("2002:808:808::1")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("8.8.4.4")), Ok(()));
        assert_eq!(Refusal::Denied.reason(), "denied by denied-peers");

        let both = PeerPolicy::new(vec![net("8.8.8.8/32")], vec![net("8.8.8.0/24")]);
        assert_eq!(both.check(ip("8.8.8.8")), Ok(()));
        assert_eq!(both.check(ip("8.8.8.9")), Err(Refusal::Denied));

        let v6 = PeerPolicy::new(vec![], vec![net("2606:4700::/32")]);
        assert_eq!(v6.check(ip("2606:4700:4700::1111")), Err(Refusal::Denied));
    }

    #[test]
    fn canonical_forms() {
        for (from, to) in [
            ("::ffff:1.2.3.4", "1.2.3.4"),
            ("::1.2.3.4", "1.2.3.4"),
            ("::0.0.0.2", "0.0.0.2"),
            ("::", "::"),
            ("::1", "::1"),
            ("1.2.3.4", "1.2.3.4"),
            ("64:ff9b::102:304", "64:ff9b::102:304"),
            ("::ffff:0:102:304", "::ffff:0:102:304"),
            ("::1:ffff:102:304", "::1:ffff:102:304"),
        ] {
            assert_eq!(canonical(ip(from)), ip(to), "{from}");
        }
    }

    #[test]
    fn embedded_forms() {
        let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().expect("test v4 literal"));
        for (addr, expected) in [
            ("64:ff9b::a9fe:a9fe", [v4("169.254.169.254"), None]),
            ("64:ff9b:1::a:1", [v4("0.10.0.1"), None]),
            ("2002:7f00:1::", [v4("127.0.0.1"), None]),
            ("2002:c000:201:5::9", [v4("192.0.2.1"), None]),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", [v4("65.54.227.120"), v4("127.0.0.1")]),
            ("64:ff9b:0:1::1", [None, None]),
            ("2001:1::1", [None, None]),
            ("2606:4700::1", [None, None]),
            ("::ffff:1.2.3.4", [None, None]),
        ] {
            let v6 = addr.parse::<Ipv6Addr>().expect("test v6 literal");
            assert_eq!(embedded_ipv4(v6), expected, "{addr}");
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn property_no_panic_and_mapped_equivalence() {
        let policies = [PeerPolicy::default(), PeerPolicy::new(vec![net("127.0.0.0/8")], vec![net("8.8.8.0/24")])];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let bits = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            for p in &policies {
                let _ = p.check(IpAddr::V6(Ipv6Addr::from(bits)));
                // Same low bits under each embedding prefix, to exercise those paths.
                for (prefix, len) in [(NAT64_WKP, 96), (NAT64_LOCAL, 48), (SIX_TO_FOUR, 16), (TEREDO, 32)] {
                    let _ = p.check(IpAddr::V6(Ipv6Addr::from(prefix | (bits >> len))));
                }
                // Truncation to the low 32 bits is the point: a random IPv4.
                let v4 = Ipv4Addr::from(bits as u32);
                let verdict = p.check(IpAddr::V4(v4));
                assert_eq!(verdict, p.check(IpAddr::V6(v4.to_ipv6_mapped())), "{v4}");
                let compat = p.check(IpAddr::V6(v4.to_ipv6_compatible()));
                assert_eq!(verdict.is_ok(), compat.is_ok(), "{v4}");
            }
            // Under the default policy NAT64 and 6to4 inherit the IPv4 verdict exactly.
            let v4 = Ipv4Addr::from(bits as u32);
            let verdict = policies[0].check(IpAddr::V4(v4));
            let nat64 = Ipv6Addr::from(NAT64_WKP | u128::from(u32::from(v4)));
            let six = Ipv6Addr::from(SIX_TO_FOUR | (u128::from(u32::from(v4)) << 80));
            assert_eq!(policies[0].check(IpAddr::V6(nat64)), verdict, "{v4}");
            assert_eq!(policies[0].check(IpAddr::V6(six)), verdict, "{v4}");
        }
    }
}
