//! Receive coalescing for a worker's listener: the rule that decides, after each drain,
//! whether the worker sleeps before it waits for the next datagram.

use std::time::{Duration, Instant};

/// Receive coalescing (a NIC's interrupt moderation, in user space): while datagrams come in
/// at two or more per `window`, sustained over the last [`HORIZON`] or so, the worker sleeps
/// after draining the listener rather than being woken per datagram, so one wake-up, one
/// `epoll_wait` and one `recvmmsg` serve several. It sleeps as long as [`GATHER`] datagrams
/// take to come at that rate, never longer than `window`: faster traffic still gets several
/// per wake-up and waits no longer than it takes them to come. Below that rate it never
/// sleeps, so light traffic sees no added latency, clumps of it included (two datagrams a few
/// microseconds apart are not a fast stream). A sleep after which fewer than two datagrams had
/// come did not pay (one client in lockstep, asking only after each answer: the sleep only
/// delays it): coalescing then stays off for a while, twice as long at each such miss, from
/// [`MIN_HOLD_OFF`] to [`MAX_HOLD_OFF`].
pub(crate) struct Coalesce {
    window: Duration,
    last_wake: Option<Instant>,
    /// The receives handled so far, each weighted by e^(-age / HORIZON): the arrival rate
    /// times [`HORIZON`] while traffic is steady.
    level: f64,
    /// The last decision was to sleep: the next drain tells whether it paid.
    slept: bool,
    /// No sleeping before this.
    hold_off_until: Option<Instant>,
    /// The next miss's hold-off; zero after a sleep that paid.
    hold_off: Duration,
}

/// How many datagrams a sleep waits for, at the arrival rate: 20,000 a second fill a
/// 200 µs window, 50,000 end the sleep after 80 µs.
pub(crate) const GATHER: f64 = 4.0;
/// How far back the arrival rate looks (the time constant of its exponential decay).
pub(crate) const HORIZON: Duration = Duration::from_millis(10);
/// The first hold-off after a sleep that did not pay.
pub(crate) const MIN_HOLD_OFF: Duration = Duration::from_millis(1);
/// The longest: a lockstep client then loses at most one window a second.
pub(crate) const MAX_HOLD_OFF: Duration = Duration::from_secs(1);

impl Coalesce {
    pub(crate) fn new(window: Duration) -> Self {
        Coalesce { window, last_wake: None, level: 0.0, slept: false, hold_off_until: None, hold_off: Duration::ZERO }
    }

    /// Whether the last decision was to sleep (the next drain is most likely followed by
    /// another sleep).
    pub(crate) fn sleeping(&self) -> bool {
        self.slept
    }

    /// After a wake-up that handled `handled` receives: how long to sleep, if at all.
    pub(crate) fn after_drain(&mut self, handled: usize, now: Instant) -> Option<Duration> {
        let age = self.last_wake.replace(now).map(|last| now.saturating_duration_since(last));
        let decay = age.map_or(0.0, |age| (-age.as_secs_f64() / HORIZON.as_secs_f64()).exp());
        self.level = self.level * decay + handled as f64;
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
        // level / HORIZON datagrams a second, two or more per window (so the level is above
        // zero and GATHER of them take a finite time).
        let fast = self.level * self.window.as_secs_f64() >= 2.0 * HORIZON.as_secs_f64();
        self.slept = fast;
        fast.then(|| {
            let gather = Duration::try_from_secs_f64(GATHER * HORIZON.as_secs_f64() / self.level);
            gather.map_or(self.window, |gather| gather.min(self.window))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;

    const WINDOW: Duration = Duration::from_micros(200);

    /// A worker's listener fed datagrams arriving at `arrival(i)` (from a start, increasing)
    /// for `span`: each wake-up reads all that has come; after a sleep the worker wakes when it
    /// ends, else at the next arrival. Each wake-up's time (from the start), datagrams read and
    /// decision.
    fn simulate(arrival: impl Fn(u32) -> Duration, span: Duration) -> Vec<(Duration, u32, Option<Duration>)> {
        let start = Instant::now();
        let mut c = Coalesce::new(WINDOW);
        let (mut t, mut read, mut out) = (arrival(0), 0, Vec::new());
        while t <= span {
            let arrived = (read..).take_while(|&i| arrival(i) <= t).count() as u32;
            read += arrived;
            let decision = c.after_drain(arrived as usize, start + t);
            out.push((t, arrived, decision));
            t = match decision {
                Some(pause) => t + pause,
                None => arrival(read).max(t),
            };
        }
        out
    }

    /// `every` apart, from zero.
    fn steady(every: Duration) -> impl Fn(u32) -> Duration {
        move |i| every * i
    }

    fn sleeps(run: &[(Duration, u32, Option<Duration>)]) -> usize {
        run.iter().filter(|w| w.2.is_some()).count()
    }

    #[test]
    fn a_sustained_two_or_more_per_window_sleeps_one_window_and_stays_on() {
        // 20,000 a second: 4 per 200 µs.
        let run = simulate(steady(Duration::from_micros(50)), HORIZON * 10);
        let settled: Vec<_> = run.iter().filter(|w| w.0 > HORIZON * 3).collect();
        assert!(settled.len() > 100, "{} wake-ups", settled.len());
        for &&(t, read, decision) in &settled {
            // GATHER (four) at 20,000 a second take the whole window, give or take the rate's
            // estimate.
            assert!(decision.is_some_and(|pause| pause <= WINDOW && pause >= WINDOW * 9 / 10), "{decision:?} at {t:?}");
            assert!((3..=5).contains(&read), "each sleep gathers about four: {read} at {t:?}");
        }
        // 10,000 a second: exactly two per window; four would take two windows.
        // The rate builds up over a few horizons, the slower the longer.
        let run = simulate(steady(Duration::from_micros(100)), HORIZON * 12);
        assert!(run.iter().filter(|w| w.0 > HORIZON * 8).all(|w| w.2 == Some(WINDOW)));
    }

    #[test]
    fn faster_streams_sleep_as_long_as_four_datagrams_take() {
        // 50,000 and 200,000 a second: four come in 80 and 20 µs.
        for (every, gather) in [(20, 80), (5, 20)] {
            let (every, gather) = (Duration::from_micros(every), Duration::from_micros(gather));
            let run = simulate(steady(every), HORIZON * 10);
            let settled: Vec<_> = run.iter().filter(|w| w.0 > HORIZON * 3).collect();
            assert!(settled.len() > 100, "{} wake-ups at one per {every:?}", settled.len());
            for &&(t, read, decision) in &settled {
                let pause = decision.unwrap_or_else(|| panic!("no sleep at {t:?}, one per {every:?}"));
                assert!(pause >= gather * 9 / 10 && pause <= gather * 11 / 10, "{pause:?} at {t:?}, one per {every:?}");
                assert!((3..=5).contains(&read), "each sleep gathers about four: {read} at {t:?}, one per {every:?}");
            }
        }
    }

    #[test]
    fn light_traffic_never_sleeps_clumped_or_not() {
        for every in [Duration::from_micros(101), Duration::from_micros(500), Duration::from_millis(5)] {
            assert_eq!(sleeps(&simulate(steady(every), Duration::from_secs(1))), 0, "one per {every:?}");
        }
        // 2,000 a second in pairs 5 µs apart (one flow's two packets back to back): each
        // pair's second datagram comes a moment after the first; the sustained rate is low.
        let pairs = |i: u32| Duration::from_millis(1) * (i / 2) + Duration::from_micros(5) * (i % 2);
        assert_eq!(sleeps(&simulate(pairs, Duration::from_secs(1))), 0);
        // Ten at once every 5 ms (ten flows ticking together), also 2,000 a second.
        let tens = |i: u32| Duration::from_millis(5) * (i / 10) + Duration::from_micros(2) * (i % 10);
        assert_eq!(sleeps(&simulate(tens, Duration::from_secs(1))), 0);
    }

    #[test]
    fn empty_wake_ups_never_sleep() {
        let mut c = Coalesce::new(WINDOW);
        let start = Instant::now();
        for k in 0..1000 {
            assert_eq!(c.after_drain(0, start + Duration::from_micros(10) * k), None);
        }
    }

    #[test]
    fn a_lockstep_client_is_slept_on_ever_more_rarely() {
        // One request per answer, 50 µs after it (20,000 a second while nothing sleeps): the
        // worker reads one per wake-up and a sleep gathers just the one request, so each miss
        // holds coalescing off twice as long, up to MAX_HOLD_OFF.
        let start = Instant::now();
        let turnaround = Duration::from_micros(50);
        let mut c = Coalesce::new(WINDOW);
        let (mut t, mut slept_at) = (Duration::ZERO, Vec::new());
        while t < Duration::from_secs(5) {
            let decision = c.after_drain(1, start + t);
            if decision.is_some() {
                slept_at.push(t);
            }
            t += decision.unwrap_or_default().max(turnaround);
        }
        assert!((10..=20).contains(&slept_at.len()), "{} sleeps in 5 s", slept_at.len());
        let gaps: Vec<_> = slept_at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0].min(MAX_HOLD_OFF)), "growing: {gaps:?}");
        assert!(gaps.last().is_some_and(|g| *g >= MAX_HOLD_OFF), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g <= MAX_HOLD_OFF + HORIZON), "{gaps:?}");
    }

    #[test]
    fn a_sleep_that_pays_starts_the_hold_off_over() {
        let start = Instant::now();
        let mut c = Coalesce::new(WINDOW);
        let fast = Duration::from_micros(50);
        let mut t = Duration::ZERO;
        // Fast enough to sleep: one per 50 µs until it does.
        while c.after_drain(1, start + t).is_none() {
            t += fast;
            assert!(t < HORIZON * 10, "never slept");
        }
        assert!(c.sleeping(), "the drain after a sleep may stop at a short batch");
        // A miss, then 1 ms off while the traffic goes on.
        t += WINDOW;
        assert_eq!(c.after_drain(1, start + t), None);
        assert_eq!(c.hold_off, MIN_HOLD_OFF);
        assert!(!c.sleeping(), "and the one after a miss reads to WouldBlock");
        let until = t + MIN_HOLD_OFF;
        t += fast;
        while t < until {
            assert_eq!(c.after_drain(1, start + t), None, "held off at {t:?}");
            t += fast;
        }
        assert!(c.after_drain(1, start + t).is_some(), "on again after the hold-off");
        t += WINDOW;
        assert!(c.after_drain(4, start + t).is_some(), "this sleep gathered four");
        assert_eq!(c.hold_off, Duration::ZERO, "and the next miss holds off 1 ms again, not 2");
    }

    #[test]
    fn a_zero_window_is_off() {
        let mut c = Coalesce::new(Duration::ZERO);
        let start = Instant::now();
        for k in 0..1000 {
            assert_eq!(c.after_drain(64, start + Duration::from_micros(1) * k), None);
        }
    }
}
