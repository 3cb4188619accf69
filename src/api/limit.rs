//! Rate limits of credential requests: per source IP (an IPv6 client counts as its /64) and per
//! caller (API key or JWT subject), each a GCRA limiter (`governor`) allowing N requests a
//! minute in bursts of up to N. A source IP has two allowances: one for requests that
//! authenticate and one for failed authentications, so that anonymous or wrong requests (from
//! anyone behind the same proxy, say) never use up the allowance of callers that authenticate.
//! The state kept is bounded: idle callers are forgotten every housekeeping tick, and past
//! [`MAX_TRACKED`] keys a limiter refuses every request until it shrinks.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::Caller;
use super::ApiError;
use crate::turn::limit::source_key;

/// Most keys each limiter tracks at once.
pub const MAX_TRACKED: usize = 100_000;

/// The three limiters; `None` is unlimited.
pub struct Limits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    failed_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_caller: Option<DefaultKeyedRateLimiter<Caller>>,
}

impl Limits {
    /// `per_ip` requests per minute from one address that authenticate, and as many that fail
    /// to; `per_caller` per API key or subject; 0 = unlimited.
    pub fn new(per_ip: u32, per_caller: u32) -> Self {
        let quota = |n| NonZeroU32::new(n).map(Quota::per_minute);
        Limits {
            per_ip: quota(per_ip).map(RateLimiter::keyed),
            failed_per_ip: quota(per_ip).map(RateLimiter::keyed),
            per_caller: quota(per_caller).map(RateLimiter::keyed),
        }
    }

    /// 429 when `ip` (its /64 for IPv6) used up its requests that authenticate.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.per_ip.as_ref(), &source_key(ip), "too many requests from this address")
    }

    /// Counts a failed authentication from `ip`: 429 when it used up its allowance of them
    /// (slows down guessing and bounds the work spent on bad tokens).
    pub fn check_failure(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.failed_per_ip.as_ref(), &source_key(ip), "too many failed authentications from this address")
    }

    /// 429 when this API key or subject used up its requests.
    pub fn check_caller(&self, caller: &Caller) -> Result<(), ApiError> {
        check(self.per_caller.as_ref(), caller, "too many requests for this API key or user")
    }

    /// Forgets callers whose allowance is full again (called periodically).
    pub fn forget_idle(&self) {
        for limiter in [&self.per_ip, &self.failed_per_ip].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_caller {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn check<K: Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    message: &str,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else { return Ok(()) };
    if limiter.len() >= MAX_TRACKED {
        limiter.retain_recent();
        if limiter.len() >= MAX_TRACKED {
            return Err(ApiError::rate_limited("too many clients at once; try again later", 60));
        }
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        ApiError::rate_limited(message, wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_slash_64() {
        let key = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), key("2001:db8:1:2::ffff"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let limits = Limits::new(3, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            limits.check_ip(ip).unwrap();
        }
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        // One request comes back every 20 s at 3 a minute.
        assert!((1..=20).contains(&refused.retry_after.unwrap()), "{refused:?}");
        // Other addresses and callers have their own allowance.
        limits.check_ip("192.0.2.2".parse().unwrap()).unwrap();
        // Failed authentications have an allowance of their own.
        for _ in 0..3 {
            limits.check_failure(ip).unwrap();
        }
        assert_eq!(limits.check_failure(ip).unwrap_err().status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        limits.check_ip("192.0.2.3".parse().unwrap()).unwrap();
        let (a, b) = (Caller::Key([0; 32]), Caller::Subject("b".into()));
        limits.check_caller(&a).unwrap();
        limits.check_caller(&a).unwrap();
        assert!(limits.check_caller(&a).is_err());
        limits.check_caller(&b).unwrap();
        limits.forget_idle();
        // Unlimited.
        let open = Limits::new(0, 0);
        for _ in 0..100 {
            open.check_ip(ip).unwrap();
        }
    }
}
