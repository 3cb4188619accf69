//! Receive coalescing for a worker's listener: the rule that decides, after each drain,
//! whether the worker sleeps before it waits for the next datagram.

use std::time::{Duration, Instant};

/// Receive coalescing (a NIC's interrupt moderation, in user space): when datagrams come in
/// faster than two per `window`, the worker sleeps `window` after draining the listener rather
/// than being woken per datagram, so one wake-up, one `epoll_wait` and one `recvmmsg` serve
/// several. Below that rate it never sleeps, so light traffic sees no added latency. A sleep
/// after which fewer than two datagrams had come did not pay (one client in lockstep, asking
/// only after each answer: the sleep only delays it): coalescing then stays off for a while,
/// twice as long at each such miss, from [`MIN_HOLD_OFF`] to [`MAX_HOLD_OFF`].
pub(crate) struct Coalesce {
    window: Duration,
    last_wake: Option<Instant>,
    /// The last decision was to sleep: the next drain tells whether it paid.
    slept: bool,
    /// No sleeping before this.
    hold_off_until: Option<Instant>,
    /// The next miss's hold-off; zero after a sleep that paid.
    hold_off: Duration,
}

/// The first hold-off after a sleep that did not pay.
pub(crate) const MIN_HOLD_OFF: Duration = Duration::from_millis(1);
/// The longest: a lockstep client then loses at most one window a second.
pub(crate) const MAX_HOLD_OFF: Duration = Duration::from_secs(1);

impl Coalesce {
    pub(crate) fn new(window: Duration) -> Self {
        Coalesce { window, last_wake: None, slept: false, hold_off_until: None, hold_off: Duration::ZERO }
    }

    /// After a wake-up that handled `handled` receives: how long to sleep, if at all. The rate
    /// is `handled` over the time since the last wake-up (which includes any sleep).
    pub(crate) fn after_drain(&mut self, handled: usize, now: Instant) -> Option<Duration> {
        let last = self.last_wake.replace(now)?;
        if self.window.is_zero() || handled == 0 {
            return None;
        }
        if std::mem::take(&mut self.slept) {
            if handled < 2 {
                self.hold_off = self.hold_off.saturating_mul(2).clamp(MIN_HOLD_OFF, MAX_HOLD_OFF);
                self.hold_off_until = Some(now + self.hold_off);
                return None;
            }
            self.hold_off = Duration::ZERO;
        }
        if self.hold_off_until.is_some_and(|until| now < until) {
            return None;
        }
        let gap = now.saturating_duration_since(last);
        let fast = self.window.saturating_mul(u32::try_from(handled).unwrap_or(u32::MAX)) >= gap.saturating_mul(2);
        self.slept = fast;
        fast.then_some(self.window)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;

    const WINDOW: Duration = Duration::from_micros(200);

    /// Five wake-ups `gap` apart after the first, each handling `handled`: what they decided.
    fn steady(handled: usize, gap: Duration) -> Vec<Option<Duration>> {
        let mut c = Coalesce::new(WINDOW);
        let start = Instant::now();
        assert_eq!(c.after_drain(handled, start), None, "the first wake-up");
        (1..=5).map(|k| c.after_drain(handled, start + gap * k)).collect()
    }

    #[test]
    fn the_first_wake_up_never_sleeps() {
        assert_eq!(Coalesce::new(WINDOW).after_drain(64, Instant::now()), None);
    }

    #[test]
    fn two_or_more_datagrams_per_window_sleep_one_window_and_stay_on() {
        // 20,000 a second, one per wake-up: 4 per 200 µs.
        assert_eq!(steady(1, Duration::from_micros(50)).first(), Some(&Some(WINDOW)));
        // Exactly two per window.
        assert_eq!(steady(2, WINDOW).first(), Some(&Some(WINDOW)));
        // Once on, each wake-up comes a window's sleep plus the drain later with what came in it.
        let mut c = Coalesce::new(WINDOW);
        let t = Instant::now();
        let fast = Duration::from_micros(50);
        assert_eq!(c.after_drain(1, t), None, "the first wake-up");
        assert_eq!(c.after_drain(1, t + fast), Some(WINDOW));
        for k in 1..=100 {
            assert_eq!(c.after_drain(5, t + fast + Duration::from_micros(250) * k), Some(WINDOW));
        }
    }

    #[test]
    fn light_traffic_and_empty_wake_ups_never_sleep() {
        let never = vec![None; 5];
        assert_eq!(steady(1, Duration::from_micros(101)), never, "under two per window");
        assert_eq!(steady(1, Duration::from_millis(1)), never, "1,000 a second");
        assert_eq!(steady(0, Duration::from_micros(10)), never, "woken with nothing to read");
    }

    #[test]
    fn a_sleep_that_gathers_under_two_holds_coalescing_off_twice_as_long_each_time() {
        let mut c = Coalesce::new(WINDOW);
        let mut t = Instant::now();
        let mut step = |c: &mut Coalesce, handled, gap| {
            t += gap;
            c.after_drain(handled, t)
        };
        let fast = Duration::from_micros(50);
        // A lockstep client: one request per wake-up, 50 µs apart, then one per sleep.
        assert_eq!(step(&mut c, 1, fast), None, "first wake-up");
        assert_eq!(step(&mut c, 1, fast), Some(WINDOW));
        assert_eq!(step(&mut c, 1, WINDOW), None, "the sleep gathered one: missed");
        assert_eq!(step(&mut c, 1, fast), None, "held off");
        assert_eq!(step(&mut c, 1, MIN_HOLD_OFF), None, "a slow wake-up");
        assert_eq!(step(&mut c, 1, fast), Some(WINDOW), "1 ms later it tries again");
        assert_eq!(step(&mut c, 1, WINDOW), None, "missed again");
        assert_eq!(step(&mut c, 1, MIN_HOLD_OFF + fast), None, "now held off for 2 ms");
        assert_eq!(step(&mut c, 1, MIN_HOLD_OFF), None, "a slow wake-up");
        assert_eq!(step(&mut c, 1, fast), Some(WINDOW));
        // This time the sleep gathers three: coalescing stays on, the hold-off starts over.
        assert_eq!(step(&mut c, 3, WINDOW), Some(WINDOW));
        assert_eq!(step(&mut c, 1, WINDOW), None, "missed");
        assert_eq!(step(&mut c, 1, MIN_HOLD_OFF), None, "1 ms again, not 4");
        assert_eq!(step(&mut c, 1, fast), Some(WINDOW));
        for _ in 0..20 {
            assert_eq!(step(&mut c, 1, WINDOW), None);
            assert_eq!(step(&mut c, 1, MAX_HOLD_OFF), None);
            assert_eq!(step(&mut c, 1, fast), Some(WINDOW));
        }
        assert_eq!(step(&mut c, 1, WINDOW), None);
        assert_eq!(step(&mut c, 1, MAX_HOLD_OFF - fast), None, "held off, for MAX_HOLD_OFF at most");
        assert_eq!(step(&mut c, 1, fast), Some(WINDOW));
    }

    #[test]
    fn a_zero_window_is_off() {
        let mut c = Coalesce::new(Duration::ZERO);
        let start = Instant::now();
        assert_eq!(c.after_drain(64, start), None);
        assert_eq!(c.after_drain(64, start + Duration::from_micros(1)), None);
    }
}
