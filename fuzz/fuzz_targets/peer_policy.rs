#![no_main]
//! Any 16 bytes as an IPv6 peer: `canonical` is idempotent, the verdict is the canonical
//! address's (so an IPv4-mapped address is judged as its IPv4), and an address embedding an
//! IPv4 address that is refused (special-purpose, or denied) is refused too.
use std::net::{IpAddr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use turnd::turn::policy::{canonical, embedded_ipv4, PeerPolicy};

fuzz_target!(|octets: [u8; 16]| {
    let ip = IpAddr::V6(Ipv6Addr::from(octets));
    let c = canonical(ip);
    assert_eq!(canonical(c), c, "canonical is idempotent");
    let net = |s: &str| s.parse().expect("literal");
    let allowed = vec![net("127.0.0.0/8"), net("::ffff:169.254.0.0/112")];
    let default = PeerPolicy::default();
    for p in [&default, &PeerPolicy::new(allowed, vec![net("8.8.8.0/24"), net("2606:4700::/32")])] {
        assert_eq!(p.check(ip), p.check(c), "{ip} is judged as {c}");
        if let IpAddr::V4(v4) = c {
            assert_eq!(p.check(IpAddr::V6(v4.to_ipv6_mapped())), p.check(c), "{v4} mapped");
        }
        let IpAddr::V6(v6) = c else { continue };
        for e in embedded_ipv4(v6).into_iter().flatten() {
            let refused = default.check(IpAddr::V4(e)).is_err() || p.check(IpAddr::V4(e)).is_err();
            assert!(!refused || p.check(ip).is_err(), "{ip} embeds {e}, which is refused");
        }
    }
});
