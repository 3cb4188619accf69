//! Rate limits of the protocol core, with time as a parameter (nanoseconds since the server's
//! epoch, see [`super::Server`]): a GCRA cell, one atomic and lock-free, for byte rates (each
//! allocation's and the whole relay's bandwidth), and [`SourceLimiter`], a fixed table of such
//! cells indexed by a keyed hash of the source IP, for request rates per source (coturn's 401
//! rate limit). The table never grows: a flood from spoofed sources costs no memory, so there
//! is still no per-source state before authentication; sources that share a slot share its
//! allowance.
//!
//! Written here rather than taken from `governor` (which the credentials API uses): its
//! limiters read their own clock, and its keyed store grows with every source it sees.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::policy::canonical;

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Slots of a [`SourceLimiter`] (8 bytes each).
pub const SOURCE_SLOTS: usize = 16_384;

/// A Generic Cell Rate Algorithm cell: the theoretical arrival time of the next unit of work.
#[derive(Debug, Default)]
pub struct Gcra {
    tat: AtomicU64,
}

impl Gcra {
    /// Admits work costing `cost` ns at time `now` if that keeps the cell at most `burst` ns
    /// ahead of `now`; refused work costs nothing.
    pub fn admit(&self, now: u64, cost: u64, burst: u64) -> bool {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            if next - now > burst {
                return false;
            }
            match self.tat.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Admits one event at `per_second` events a second, in bursts of one second's worth.
    /// Zero is unlimited.
    pub fn admit_rate(&self, now: u64, per_second: u32) -> bool {
        per_second == 0 || self.admit(now, NANOS_PER_SEC / u64::from(per_second), NANOS_PER_SEC)
    }

    /// Admits `bytes` at `rate` bytes a second, in bursts of up to one second's worth (or one
    /// largest datagram, whichever is more, so that a low rate still passes any datagram).
    /// A zero rate is unlimited.
    pub fn admit_bytes(&self, now: u64, bytes: usize, rate: u64) -> bool {
        if rate == 0 {
            return true;
        }
        let cost = |n: u64| n.saturating_mul(NANOS_PER_SEC) / rate;
        let burst = NANOS_PER_SEC.max(cost(u64::from(u16::MAX)));
        self.admit(now, cost(bytes as u64), burst)
    }
}

/// Per-source request rates in a fixed table (see the module comment). An IPv6 source counts
/// as its /64, as one host usually holds a whole /64.
pub struct SourceLimiter {
    slots: Box<[Gcra]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for SourceLimiter {
    fn default() -> Self {
        SourceLimiter { slots: (0..SOURCE_SLOTS).map(|_| Gcra::default()).collect(), hasher: Default::default() }
    }
}

impl SourceLimiter {
    /// Admits one request from `ip` at `now` if its slot has had fewer than `per_second`
    /// requests in the last second (bursts of `per_second`). Zero is unlimited.
    pub fn admit(&self, ip: IpAddr, now: u64, per_second: u32) -> bool {
        per_second == 0 || self.slots[self.slot(ip)].admit_rate(now, per_second)
    }

    /// The slot of `ip`: a keyed hash of its [`source_key`].
    pub fn slot(&self, ip: IpAddr) -> usize {
        self.hasher.hash_one(source_key(ip)) as usize % self.slots.len()
    }
}

/// The source a per-client limit counts `ip` as: an IPv4 address (also IPv4-mapped or
/// -compatible IPv6) as itself, any other IPv6 address as its /64, since one host usually
/// holds a whole /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let cell = Gcra::default();
        // 10 a second: cost 100 ms, burst 1 s → 10 at once, the 11th refused.
        let t0 = 5 * NANOS_PER_SEC;
        let admitted = (0..20).filter(|_| cell.admit(t0, 100 * MS, NANOS_PER_SEC)).count();
        assert_eq!(admitted, 10);
        // 100 ms later exactly one more fits, and a refusal costs nothing.
        assert!(cell.admit(t0 + 100 * MS, 100 * MS, NANOS_PER_SEC));
        assert!(!cell.admit(t0 + 100 * MS, 100 * MS, NANOS_PER_SEC));
        assert!(!cell.admit(t0 + 150 * MS, 100 * MS, NANOS_PER_SEC));
        assert!(cell.admit(t0 + 200 * MS, 100 * MS, NANOS_PER_SEC));
    }

    #[test]
    fn byte_rate_passes_its_rate_over_time_and_zero_is_unlimited() {
        let cell = Gcra::default();
        let rate = 100_000; // bytes a second
        let mut sent = 0u64;
        // 1,000-byte datagrams offered every millisecond (1 MB/s) for 10 s.
        for ms in 0..10_000u64 {
            if cell.admit_bytes(ms * MS, 1000, rate) {
                sent += 1000;
            }
        }
        // 10 s at 100 kB/s plus the one-second burst, within one datagram.
        assert!((1_000_000..=1_101_000).contains(&sent), "{sent}");
        let free = Gcra::default();
        assert!((0..1000).all(|_| free.admit_bytes(0, 65_535, 0)));
    }

    #[test]
    fn a_low_rate_still_passes_a_large_datagram() {
        let cell = Gcra::default();
        assert!(cell.admit_bytes(0, 65_535, 1000));
        assert!(!cell.admit_bytes(0, 1, 1000));
    }

    #[test]
    fn sources_are_limited_apart_and_ipv6_by_slash_64() {
        let limiter = SourceLimiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let now = NANOS_PER_SEC;
        assert_eq!((0..10).filter(|_| limiter.admit(a, now, 5)).count(), 5);
        // The IPv4-mapped form is the same source.
        assert!(!limiter.admit("::ffff:192.0.2.1".parse().unwrap(), now, 5));
        // Another source has its own allowance unless it shares a slot (1 in 16,384).
        assert_eq!(limiter.admit(b, now, 5), limiter.slot(a) != limiter.slot(b));
        // Two addresses of one /64 share an allowance.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        assert_eq!((0..3).filter(|_| limiter.admit(v6a, now, 3)).count(), 3);
        assert!(!limiter.admit(v6b, now, 3));
        // A second later the allowance is back; zero is unlimited.
        assert!(limiter.admit(a, now + NANOS_PER_SEC, 5));
        assert!((0..100).all(|_| limiter.admit(a, now, 0)));
    }
}
