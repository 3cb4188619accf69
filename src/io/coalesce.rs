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
///
/// Whether a sleep is cheaper than the wake-ups it saves depends on the machine: on a VM guest
/// whose idle vCPU halts, each wake-up is an interrupt and a VM exit and coalescing saves CPU;
/// on one that polls when idle, a wake-up costs little and the timed sleep more. So it is
/// tried both ways, on the worker thread's own CPU time (see [`Payoff`], one per worker,
/// shared by its listeners), and sleeps only while sleeping is the cheaper.
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

/// How long the CPU cost per receive is measured at a time.
pub(crate) const STRETCH: Duration = Duration::from_millis(100);
/// The first trial of the other mode comes after this many busy stretches.
pub(crate) const FIRST_TRIAL: u32 = 3;
/// Then after this many: one stretch in 51 runs the mode not chosen, 2 % of the busy time.
/// Where the trial is the sleeping way its datagrams wait longer, so a p99.9, and a p99 at
/// the margin, can be the trial's.
pub(crate) const TRIAL_EVERY: u32 = 50;
/// The other mode must cost this much less per receive to win a trial...
pub(crate) const MARGIN: f64 = 0.05;
/// ...and win this many trials in a row (each after one stretch of the chosen mode) to be
/// chosen: one noisy stretch does not switch.
pub(crate) const CONFIRM: u32 = 2;

/// Sleeping or not, chosen on the worker thread's CPU time per receive: time is cut into
/// [`STRETCH`]es; one now and then (after [`FIRST_TRIAL`] busy stretches, then every
/// [`TRIAL_EVERY`]) runs the mode not chosen, and its cost is set against the stretch before
/// it. A stretch is busy when its receives came at the rate coalescing engages at (two per
/// window); the others say nothing (both modes then never sleep) and end any comparison.
///
/// One per worker thread, shared by all its listeners' [`Coalesce`]: a sleep blocks the
/// thread, so it gathers for every listener, and the CPU time read is the thread's. With a
/// choice per listener, one listener's trial of not sleeping would be drowned by the others'
/// sleeps, and its receives weighed against the whole thread's CPU.
pub(crate) struct Payoff {
    /// Sleeping is the chosen mode (until trials say otherwise).
    sleep: bool,
    /// The stretch under way: its start and the thread's CPU time then; its receives.
    start: Option<(Instant, Duration)>,
    handled: u64,
    /// This stretch runs the mode not chosen.
    trial: bool,
    /// Busy stretches of the chosen mode before the next trial.
    until_trial: u32,
    /// The CPU per receive of the last busy stretch of the chosen mode.
    chosen_cost: Option<f64>,
    /// Trials won in a row.
    wins: u32,
}

impl Payoff {
    pub(crate) fn new() -> Self {
        Payoff {
            sleep: true,
            start: None,
            handled: 0,
            trial: false,
            until_trial: FIRST_TRIAL,
            chosen_cost: None,
            wins: 0,
        }
    }

    /// Whether sleeping is the mode chosen (trials aside).
    pub(crate) fn pays(&self) -> bool {
        self.sleep
    }

    /// Counts a drain's receives; at the end of a stretch reads `cpu` (the thread's CPU time)
    /// and weighs it. Whether the worker may sleep now.
    fn may_sleep(&mut self, handled: usize, now: Instant, window: Duration, cpu: impl FnOnce() -> Duration) -> bool {
        self.handled += handled as u64;
        match self.start {
            None => self.start = Some((now, cpu())),
            Some((start, before)) if now.saturating_duration_since(start) >= STRETCH => {
                let spent = cpu();
                let elapsed = now.saturating_duration_since(start).as_secs_f64();
                if self.handled as f64 * window.as_secs_f64() >= 2.0 * elapsed {
                    self.judge(spent.saturating_sub(before).as_secs_f64() / self.handled as f64);
                } else {
                    (self.trial, self.chosen_cost, self.wins) = (false, None, 0);
                }
                (self.start, self.handled) = (Some((now, spent)), 0);
            }
            Some(_) => {}
        }
        self.sleep != self.trial
    }

    /// A busy stretch ended, costing `cost` CPU-seconds per receive.
    fn judge(&mut self, cost: f64) {
        if !std::mem::take(&mut self.trial) {
            self.chosen_cost = Some(cost);
            self.until_trial = self.until_trial.saturating_sub(1);
            self.trial = self.until_trial == 0;
            return;
        }
        let won = self.chosen_cost.is_some_and(|chosen| cost < chosen * (1.0 - MARGIN));
        self.wins = if won { self.wins + 1 } else { 0 };
        if self.wins >= CONFIRM {
            (self.sleep, self.wins, self.chosen_cost) = (!self.sleep, 0, None);
        }
        self.until_trial = if self.wins > 0 { 1 } else { TRIAL_EVERY };
    }
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

    /// After a wake-up that handled `handled` receives: how long to sleep, if at all. `payoff`
    /// is the worker's; `cpu` reads the worker thread's CPU time, at most once per
    /// [`STRETCH`].
    pub(crate) fn after_drain(
        &mut self,
        handled: usize,
        now: Instant,
        payoff: &mut Payoff,
        cpu: impl FnOnce() -> Duration,
    ) -> Option<Duration> {
        let age = self.last_wake.replace(now).map(|last| now.saturating_duration_since(last));
        let decay = age.map_or(0.0, |age| (-age.as_secs_f64() / HORIZON.as_secs_f64()).exp());
        self.level = self.level * decay + handled as f64;
        if self.window.is_zero() || handled == 0 {
            return None;
        }
        let may_sleep = payoff.may_sleep(handled, now, self.window, cpu);
        if std::mem::take(&mut self.slept) {
            if handled < 2 {
                self.hold_off = self.hold_off.saturating_mul(2).clamp(MIN_HOLD_OFF, MAX_HOLD_OFF);
                self.hold_off_until = Some(now + self.hold_off);
                return None;
            }
            self.hold_off = Duration::ZERO;
        }
        if !may_sleep || self.hold_off_until.is_some_and(|until| now < until) {
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
        // Wake-ups free either way: sleeping or not costs the same per datagram.
        simulate_costed(arrival, span, |_| (Duration::ZERO, Duration::ZERO))
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
        let mut p = Payoff::new();
        let start = Instant::now();
        for k in 0..1000 {
            assert_eq!(c.after_drain(0, start + Duration::from_micros(10) * k, &mut p, || Duration::ZERO), None);
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
        let mut p = Payoff::new();
        let (mut t, mut slept_at) = (Duration::ZERO, Vec::new());
        while t < Duration::from_secs(5) {
            let decision = c.after_drain(1, start + t, &mut p, || Duration::ZERO);
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
        let mut p = Payoff::new();
        let fast = Duration::from_micros(50);
        let mut t = Duration::ZERO;
        // Fast enough to sleep: one per 50 µs until it does.
        while c.after_drain(1, start + t, &mut p, || Duration::ZERO).is_none() {
            t += fast;
            assert!(t < HORIZON * 10, "never slept");
        }
        assert!(c.sleeping(), "the drain after a sleep may stop at a short batch");
        // A miss, then 1 ms off while the traffic goes on.
        t += WINDOW;
        assert_eq!(c.after_drain(1, start + t, &mut p, || Duration::ZERO), None);
        assert_eq!(c.hold_off, MIN_HOLD_OFF);
        assert!(!c.sleeping(), "and the one after a miss reads to WouldBlock");
        let until = t + MIN_HOLD_OFF;
        t += fast;
        while t < until {
            assert_eq!(c.after_drain(1, start + t, &mut p, || Duration::ZERO), None, "held off at {t:?}");
            t += fast;
        }
        assert!(c.after_drain(1, start + t, &mut p, || Duration::ZERO).is_some(), "on again after the hold-off");
        t += WINDOW;
        assert!(c.after_drain(4, start + t, &mut p, || Duration::ZERO).is_some(), "this sleep gathered four");
        assert_eq!(c.hold_off, Duration::ZERO, "and the next miss holds off 1 ms again, not 2");
    }

    /// As [`simulate`], with the worker thread's CPU time charged as `costs(t)` says at time
    /// `t`: (a wake-up by an arrival, a wake-up at the end of a sleep), plus [`EACH`] per
    /// datagram read.
    fn simulate_costed(
        arrival: impl Fn(u32) -> Duration,
        span: Duration,
        costs: impl Fn(Duration) -> (Duration, Duration),
    ) -> Vec<(Duration, u32, Option<Duration>)> {
        let start = Instant::now();
        let mut c = Coalesce::new(WINDOW);
        let mut p = Payoff::new();
        let cpu = std::cell::Cell::new(Duration::ZERO);
        let (mut t, mut read, mut out, mut slept) = (arrival(0), 0, Vec::new(), false);
        while t <= span {
            let arrived = (read..).take_while(|&i| arrival(i) <= t).count() as u32;
            read += arrived;
            let (wake, timer) = costs(t);
            cpu.set(cpu.get() + if slept { timer } else { wake } + EACH * arrived);
            let decision = c.after_drain(arrived as usize, start + t, &mut p, || cpu.get());
            out.push((t, arrived, decision));
            slept = decision.is_some();
            t = match decision {
                Some(pause) => t + pause,
                None => arrival(read).max(t),
            };
        }
        out
    }

    /// The share of the time from `from` to `to` that the worker slept.
    fn sleeping_share(run: &[(Duration, u32, Option<Duration>)], from: Duration, to: Duration) -> f64 {
        let slept: Duration = run.iter().filter(|w| w.0 >= from && w.0 < to).filter_map(|w| w.2).sum();
        slept.as_secs_f64() / (to - from).as_secs_f64()
    }

    /// The CPU each datagram read costs in the simulations.
    const EACH: Duration = Duration::from_micros(2);
    const DEAR_WAKE_UPS: (Duration, Duration) = (Duration::from_micros(20), Duration::from_micros(20));
    const CHEAP_WAKE_UPS: (Duration, Duration) = (Duration::from_micros(2), Duration::from_micros(30));

    #[test]
    fn sleeping_stays_where_a_wake_up_costs_as_much_as_a_timed_sleep() {
        // 20,000 a second: a sleep gathers four for one wake-up's cost, 7 µs a datagram
        // against 22 µs woken for each.
        let run = simulate_costed(steady(Duration::from_micros(50)), Duration::from_secs(3), |_| DEAR_WAKE_UPS);
        let share = sleeping_share(&run, Duration::from_millis(100), Duration::from_secs(3));
        // Less its trials of not sleeping: one stretch at 0.3 s.
        assert!(share > 0.9, "slept {:.1} % of the time", share * 100.0);
    }

    #[test]
    fn a_wake_up_cheaper_than_a_timed_sleep_turns_sleeping_off() {
        // 9.5 µs a datagram sleeping, 4 µs woken for each: after its first trials (about half
        // a second of busy traffic) the worker stops sleeping but for a trial now and then.
        let run = simulate_costed(steady(Duration::from_micros(50)), Duration::from_secs(3), |_| CHEAP_WAKE_UPS);
        let first = sleeping_share(&run, Duration::from_millis(50), Duration::from_millis(300));
        assert!(first > 0.9, "sleeps by default: {:.1} % of the time", first * 100.0);
        let after = sleeping_share(&run, Duration::from_secs(1), Duration::from_secs(3));
        assert!(after < 0.05, "slept {:.1} % of the time", after * 100.0);
    }

    #[test]
    fn sleeping_comes_back_when_wake_ups_become_dear() {
        let turn = Duration::from_secs(2);
        let costs = |t: Duration| if t < turn { CHEAP_WAKE_UPS } else { DEAR_WAKE_UPS };
        let run = simulate_costed(steady(Duration::from_micros(50)), Duration::from_secs(9), costs);
        assert!(sleeping_share(&run, Duration::from_secs(1), turn) < 0.05);
        // A trial at most TRIAL_EVERY + 1 stretches after the turn, and its confirmation.
        let back = turn + STRETCH * (TRIAL_EVERY + 4);
        let share = sleeping_share(&run, back, Duration::from_secs(9));
        assert!(share > 0.9, "slept {:.1} % of the time from {back:?}", share * 100.0);
    }

    /// Two listeners of one worker thread, fed one datagram per `every` each (the second from
    /// `LAG` on, half a gap after the first's), with costs as in [`simulate_costed`]: each
    /// wake-up drains both in turn, and a sleep decided after either drain blocks the thread,
    /// so it gathers for both. The share of the time from `from` to `span` the thread slept.
    fn simulate_pair(
        every: Duration,
        span: Duration,
        from: Duration,
        costs: impl Fn(Duration) -> (Duration, Duration),
    ) -> f64 {
        // The second listener's traffic starts later, so their stretches do not line up.
        const LAG: Duration = Duration::from_millis(250);
        let start = Instant::now();
        let (mut listeners, mut p) = ([Coalesce::new(WINDOW), Coalesce::new(WINDOW)], Payoff::new());
        let arrival = |l: usize, i: u32| every * i + (every / 2 + LAG) * l as u32;
        let cpu = std::cell::Cell::new(Duration::ZERO);
        let (mut t, mut read, mut asleep, mut slept) = (Duration::ZERO, [0u32; 2], Duration::ZERO, false);
        while t <= span {
            if !std::mem::take(&mut slept) {
                cpu.set(cpu.get() + costs(t).0);
            }
            for l in 0..2 {
                let arrived = (read[l]..).take_while(|&i| arrival(l, i) <= t).count() as u32;
                read[l] += arrived;
                cpu.set(cpu.get() + EACH * arrived);
                if let Some(pause) = listeners[l].after_drain(arrived as usize, start + t, &mut p, || cpu.get()) {
                    if t >= from {
                        asleep += pause;
                    }
                    t += pause;
                    cpu.set(cpu.get() + costs(t).1);
                    slept = true;
                }
            }
            if !slept {
                t = arrival(0, read[0]).min(arrival(1, read[1])).max(t);
            }
        }
        asleep.as_secs_f64() / (span - from).as_secs_f64()
    }

    #[test]
    fn two_busy_listeners_stop_sleeping_together_where_wake_ups_are_cheap() {
        // 20,000 a second on each. Were sleeping chosen per listener, each one's trial of not
        // sleeping would run while the other one's sleeps still block the thread, save
        // nothing, and both would sleep on all the time.
        let every = Duration::from_micros(50);
        let dear = simulate_pair(every, Duration::from_secs(3), Duration::from_secs(1), |_| DEAR_WAKE_UPS);
        assert!(dear > 0.9, "slept {:.1} % of the time", dear * 100.0);
        let cheap = simulate_pair(every, Duration::from_secs(3), Duration::from_secs(1), |_| CHEAP_WAKE_UPS);
        assert!(cheap < 0.05, "slept {:.1} % of the time", cheap * 100.0);
    }

    #[test]
    fn a_zero_window_is_off() {
        let mut c = Coalesce::new(Duration::ZERO);
        let mut p = Payoff::new();
        let start = Instant::now();
        for k in 0..1000 {
            assert_eq!(c.after_drain(64, start + Duration::from_micros(1) * k, &mut p, || Duration::ZERO), None);
        }
    }
}
