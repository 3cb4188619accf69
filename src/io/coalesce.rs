//! Receive coalescing for a worker's listener: the rule that decides, after each drain,
//! whether the worker sleeps before it waits for the next datagram.

use std::time::{Duration, Instant};

/// Receive coalescing (a NIC's interrupt moderation, in user space): when datagrams come in
/// faster than two per `window`, the worker sleeps `window` after draining the listener rather
/// than being woken per datagram, so one wake-up, one `epoll_wait` and one `recvmmsg` serve
/// several. Below that rate it never sleeps, so light traffic sees no added latency.
pub(crate) struct Coalesce {
    window: Duration,
    last_wake: Option<Instant>,
}

impl Coalesce {
    pub(crate) fn new(window: Duration) -> Self {
        Coalesce { window, last_wake: None }
    }

    /// After a wake-up that handled `handled` receives: how long to sleep, if at all. The rate
    /// is `handled` over the time since the last wake-up (which includes any sleep).
    pub(crate) fn after_drain(&mut self, handled: usize, now: Instant) -> Option<Duration> {
        let last = self.last_wake.replace(now)?;
        if self.window.is_zero() || handled == 0 {
            return None;
        }
        let gap = now.saturating_duration_since(last);
        (self.window.saturating_mul(u32::try_from(handled).unwrap_or(u32::MAX)) >= gap.saturating_mul(2))
            .then_some(self.window)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;

    const WINDOW: Duration = Duration::from_micros(200);

    /// Wake-ups `gap` apart, each handling `handled`: what the last one decided.
    fn steady(handled: usize, gap: Duration) -> Option<Duration> {
        let mut c = Coalesce::new(WINDOW);
        let start = Instant::now();
        (1..=5).map(|k| c.after_drain(handled, start + gap * k)).last().flatten()
    }

    #[test]
    fn the_first_wake_up_never_sleeps() {
        assert_eq!(Coalesce::new(WINDOW).after_drain(64, Instant::now()), None);
    }

    #[test]
    fn two_or_more_datagrams_per_window_sleep_one_window() {
        // 20,000 a second, one per wake-up: 4 per 200 µs.
        assert_eq!(steady(1, Duration::from_micros(50)), Some(WINDOW));
        // Exactly two per window.
        assert_eq!(steady(2, WINDOW), Some(WINDOW));
        // Coalescing keeps itself on: a window's sleep plus the drain, with what came in it.
        assert_eq!(steady(5, Duration::from_micros(250)), Some(WINDOW));
    }

    #[test]
    fn light_traffic_and_empty_wake_ups_never_sleep() {
        assert_eq!(steady(1, Duration::from_micros(101)), None, "under two per window");
        assert_eq!(steady(1, Duration::from_millis(1)), None, "1,000 a second");
        assert_eq!(steady(0, Duration::from_micros(10)), None, "woken with nothing to read");
    }

    #[test]
    fn a_zero_window_is_off() {
        let mut c = Coalesce::new(Duration::ZERO);
        let start = Instant::now();
        assert_eq!(c.after_drain(64, start), None);
        assert_eq!(c.after_drain(64, start + Duration::from_micros(1)), None);
    }
}
