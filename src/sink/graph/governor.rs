//! The governor: paces each mailbox inside Microsoft's budgets and adapts concurrency.
//!
//! Per mailbox (Microsoft counts per app and mailbox pair): two token buckets on tokio time, one
//! for requests (10,000 per 10 minutes) and one for uploaded bytes (150 MB per 5 minutes). Each
//! bucket holds `burst_fraction` of the budget and refills at the rest spread over the window, so
//! no window can ever see more than the budget: we pace instead of running into 429s.
//!
//! In-flight limits exist twice, per mailbox and per app, because Microsoft's pages disagree on
//! whether the 4-concurrent-requests limit is per app or per app and mailbox (docs/graph-facts.md, unknown 3).
//! Both adapt AIMD-style on 429 `ApplicationThrottled`: the mailbox limit drops when the mailbox
//! itself had several requests out; the app limit drops when other mailboxes were busy too. One
//! decrease per scope per "generation" (only requests sent after the last decrease count), and +1
//! after `increase_after` x limit successes.
//!
//! A `Retry-After` pauses only the mailbox it came from (or the app, for app-wide signals).
//! One std mutex guards all state (never held across an await); waiters sleep on a tokio
//! `Notify` or until the instant a bucket refills, so tests run on tokio's paused clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::settings::GovernorSettings;

/// What the progress display shows about one scope (the app, or one mailbox).
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorSnapshot {
    /// `"app"` or the mailbox's user.
    pub scope: String,
    pub in_flight: u32,
    pub in_flight_limit: u32,
    /// Remaining pause imposed by a Retry-After, if any.
    pub paused_for: Option<Duration>,
    /// Requests sent so far (attempts, including retried ones).
    pub requests: u64,
    /// 429 responses received so far.
    pub throttled: u64,
    /// Bytes uploaded so far (request bodies).
    pub bytes: u64,
    /// Requests the bucket would allow right now (mailboxes only).
    pub request_tokens: Option<f64>,
}

/// How a request went, as far as the governor cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feedback {
    /// A response that was not a 429.
    Ok,
    /// 429 `ApplicationThrottled` (concurrency): adapt the in-flight limits.
    ConcurrencyThrottled,
    /// Another 429 (request rate): counted, the Retry-After pause does the rest.
    Throttled,
    /// No response (transport failure): no signal about limits.
    NoResponse,
}

struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(budget: f64, window: Duration, burst_fraction: f64, now: Instant) -> Bucket {
        let burst = burst_fraction.clamp(0.001, 0.999);
        let capacity = (budget * burst).max(1.0);
        // Burst plus a window's refill stay 1% under the budget: the server counts arrival times,
        // which latency jitter can squeeze closer together than our send times.
        let rate = (budget * 0.99 - capacity).max(budget * 0.001) / window.as_secs_f64().max(1e-6);
        Bucket {
            capacity,
            rate,
            tokens: capacity,
            last: now,
        }
    }
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }
    /// How long until `cost` can be taken (a cost above capacity needs a full bucket and then
    /// runs into debt, so oversize requests still pass, only later).
    fn wait_for(&self, cost: f64) -> Duration {
        let need = cost.min(self.capacity);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            // +1 µs so float rounding never wakes us a hair too early, forever.
            Duration::from_secs_f64((need - self.tokens) / self.rate) + Duration::from_micros(1)
        }
    }
    fn take(&mut self, cost: f64) {
        self.tokens -= cost;
    }
}

struct Scope {
    in_flight: u32,
    limit: u32,
    max: u32,
    successes: u32,
    last_decrease: Option<Instant>,
    paused_until: Option<Instant>,
    requests: u64,
    throttled: u64,
    bytes: u64,
}

impl Scope {
    fn new(max: u32) -> Scope {
        Scope {
            in_flight: 0,
            limit: max.max(1),
            max: max.max(1),
            successes: 0,
            last_decrease: None,
            paused_until: None,
            requests: 0,
            throttled: 0,
            bytes: 0,
        }
    }
    fn success(&mut self, increase_after: u32) {
        self.successes += 1;
        if self.limit < self.max
            && self.successes >= increase_after.max(1).saturating_mul(self.limit)
        {
            self.limit += 1;
            self.successes = 0;
        }
    }
    /// Multiplicative decrease, once per generation: only a request sent after the last decrease
    /// tells us the current limit is still too high.
    fn decrease(
        &mut self,
        sent_at: Instant,
        in_flight_at_send: u32,
        factor: f64,
        min: u32,
        now: Instant,
    ) -> bool {
        if self.last_decrease.is_some_and(|t| sent_at <= t) {
            return false;
        }
        let base = self.limit.min(in_flight_at_send.max(1)) as f64;
        self.limit = ((base * factor).floor() as u32)
            .max(min.max(1))
            .min(self.max);
        self.successes = 0;
        self.last_decrease = Some(now);
        true
    }
    fn pause(&mut self, until: Instant) {
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }
    fn paused_for(&self, now: Instant) -> Option<Duration> {
        self.paused_until.filter(|p| *p > now).map(|p| p - now)
    }
}

struct MailboxState {
    scope: Scope,
    requests: Bucket,
    bytes: Bucket,
}

struct State {
    app: Scope,
    mailboxes: HashMap<String, MailboxState>,
}

/// App-wide governor; one per [`GraphApp`](super::GraphApp).
pub(crate) struct Governor {
    settings: GovernorSettings,
    state: Mutex<State>,
    notify: Notify,
}

/// The right to send one request. Dropping it releases the in-flight slot; call
/// [`Permit::finish`] first to tell the governor how the request went.
pub(crate) struct Permit {
    gov: Arc<Governor>,
    mailbox: String,
    sent_at: Instant,
    mb_in_flight_at_send: u32,
    app_in_flight_at_send: u32,
    feedback: Feedback,
}

enum Wait {
    Until(Instant),
    Slot,
}

impl Governor {
    pub(crate) fn new(settings: GovernorSettings) -> Arc<Governor> {
        Arc::new(Governor {
            state: Mutex::new(State {
                app: Scope::new(settings.app_max_in_flight),
                mailboxes: HashMap::new(),
            }),
            settings,
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way worse
        // than stopping: keep going with the data as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_mailbox(&self, now: Instant) -> MailboxState {
        let s = &self.settings;
        MailboxState {
            scope: Scope::new(s.mailbox_max_in_flight),
            requests: Bucket::new(
                s.requests_per_window as f64,
                s.request_window,
                s.burst_fraction,
                now,
            ),
            bytes: Bucket::new(
                s.bytes_per_window as f64,
                s.byte_window,
                s.burst_fraction,
                now,
            ),
        }
    }

    /// Waits until `mailbox` may send a request with a body of `body_bytes`.
    pub(crate) async fn acquire(self: &Arc<Self>, mailbox: &str, body_bytes: u64) -> Permit {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut guard = self.lock();
                let st = &mut *guard;
                let now = Instant::now();
                if !st.mailboxes.contains_key(mailbox) {
                    let m = self.new_mailbox(now);
                    st.mailboxes.insert(mailbox.to_owned(), m);
                }
                let Some(mb) = st.mailboxes.get_mut(mailbox) else {
                    continue;
                };
                let paused = [mb.scope.paused_until, st.app.paused_until]
                    .into_iter()
                    .flatten()
                    .filter(|p| *p > now)
                    .max();
                if let Some(until) = paused {
                    Wait::Until(until)
                } else if mb.scope.in_flight >= mb.scope.limit || st.app.in_flight >= st.app.limit {
                    Wait::Slot
                } else {
                    mb.requests.refill(now);
                    mb.bytes.refill(now);
                    let t = mb
                        .requests
                        .wait_for(1.0)
                        .max(mb.bytes.wait_for(body_bytes as f64));
                    if t > Duration::ZERO {
                        Wait::Until(now + t)
                    } else {
                        mb.requests.take(1.0);
                        mb.bytes.take(body_bytes as f64);
                        mb.scope.in_flight += 1;
                        st.app.in_flight += 1;
                        for s in [&mut mb.scope, &mut st.app] {
                            s.requests += 1;
                            s.bytes += body_bytes;
                        }
                        return Permit {
                            gov: Arc::clone(self),
                            mailbox: mailbox.to_owned(),
                            sent_at: now,
                            mb_in_flight_at_send: mb.scope.in_flight,
                            app_in_flight_at_send: st.app.in_flight,
                            feedback: Feedback::NoResponse,
                        };
                    }
                }
            };
            match wait {
                Wait::Until(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = &mut notified => {}
                    }
                }
                Wait::Slot => notified.await,
            }
        }
    }

    /// What is left of `mailbox`'s pause, if it is paused.
    pub(crate) fn paused_for(&self, mailbox: &str) -> Option<Duration> {
        let now = Instant::now();
        let st = self.lock();
        st.mailboxes.get(mailbox)?.scope.paused_for(now)
    }

    /// Resolves once `mailbox` is paused for longer than `max` (the time left): requests waiting
    /// in [`acquire`](Self::acquire) race this, so a pause the mailbox will not wait out stops
    /// them too instead of holding them until it ends.
    pub(crate) async fn pause_longer_than(&self, mailbox: &str, max: Duration) -> Duration {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(left) = self.paused_for(mailbox).filter(|l| *l > max) {
                return left;
            }
            notified.await;
        }
    }

    /// Holds every request of `mailbox` for `d` (a Retry-After).
    pub(crate) fn pause_mailbox(&self, mailbox: &str, d: Duration) {
        let now = Instant::now();
        let mut st = self.lock();
        if !st.mailboxes.contains_key(mailbox) {
            let m = self.new_mailbox(now);
            st.mailboxes.insert(mailbox.to_owned(), m);
        }
        if let Some(mb) = st.mailboxes.get_mut(mailbox) {
            mb.scope.pause(now + d);
        }
        drop(st);
        self.notify.notify_waiters();
    }

    /// Holds every request of the app for `d` (no Graph signal is app-wide today; kept for the
    /// token endpoint's tenant throttling and tests).
    #[cfg(test)]
    pub(crate) fn pause_app(&self, d: Duration) {
        let now = Instant::now();
        self.lock().app.pause(now + d);
        self.notify.notify_waiters();
    }

    fn release(&self, p: &Permit) {
        let now = Instant::now();
        let s = &self.settings;
        let mut guard = self.lock();
        let st = &mut *guard;
        // How busy each scope was around this request: at send or now, whichever is higher (the
        // first of a burst saw only itself when it left).
        let app_around = p.app_in_flight_at_send.max(st.app.in_flight);
        st.app.in_flight = st.app.in_flight.saturating_sub(1);
        if let Some(mb) = st.mailboxes.get_mut(&p.mailbox) {
            let mb_around = p.mb_in_flight_at_send.max(mb.scope.in_flight);
            mb.scope.in_flight = mb.scope.in_flight.saturating_sub(1);
            match p.feedback {
                Feedback::Ok => {
                    mb.scope.success(s.increase_after);
                    st.app.success(s.increase_after);
                }
                Feedback::ConcurrencyThrottled => {
                    mb.scope.throttled += 1;
                    st.app.throttled += 1;
                    if mb_around > 1 {
                        let cut = mb.scope.decrease(
                            p.sent_at,
                            mb_around,
                            s.decrease_factor,
                            s.min_in_flight,
                            now,
                        );
                        if cut {
                            tracing::debug!(mailbox = %p.mailbox, limit = mb.scope.limit, "mailbox in-flight limit decreased");
                        }
                    }
                    if app_around > mb_around {
                        let cut = st.app.decrease(
                            p.sent_at,
                            app_around,
                            s.decrease_factor,
                            s.min_in_flight,
                            now,
                        );
                        if cut {
                            tracing::debug!(limit = st.app.limit, "app in-flight limit decreased");
                        }
                    }
                }
                Feedback::Throttled => {
                    mb.scope.throttled += 1;
                    st.app.throttled += 1;
                }
                Feedback::NoResponse => {}
            }
        }
        drop(guard);
        self.notify.notify_waiters();
    }

    /// The state of the app and of every mailbox seen so far.
    pub(crate) fn snapshot(&self) -> Vec<GovernorSnapshot> {
        let now = Instant::now();
        let mut st = self.lock();
        let mut out = vec![GovernorSnapshot {
            scope: "app".to_owned(),
            in_flight: st.app.in_flight,
            in_flight_limit: st.app.limit,
            paused_for: st.app.paused_for(now),
            requests: st.app.requests,
            throttled: st.app.throttled,
            bytes: st.app.bytes,
            request_tokens: None,
        }];
        let mut mbs: Vec<_> = st.mailboxes.iter_mut().collect();
        mbs.sort_by(|a, b| a.0.cmp(b.0));
        for (user, mb) in mbs {
            mb.requests.refill(now);
            out.push(GovernorSnapshot {
                scope: user.clone(),
                in_flight: mb.scope.in_flight,
                in_flight_limit: mb.scope.limit,
                paused_for: mb.scope.paused_for(now),
                requests: mb.scope.requests,
                throttled: mb.scope.throttled,
                bytes: mb.scope.bytes,
                request_tokens: Some(mb.requests.tokens),
            });
        }
        out
    }
}

impl Permit {
    /// Records how the request went; the slot is released when the permit drops.
    pub(crate) fn set_feedback(&mut self, f: Feedback) {
        self.feedback = f;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let gov = Arc::clone(&self.gov);
        gov.release(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GovernorSettings {
        GovernorSettings {
            requests_per_window: 100,
            request_window: Duration::from_secs(10),
            bytes_per_window: 1_000_000,
            byte_window: Duration::from_secs(10),
            burst_fraction: 0.1,
            mailbox_max_in_flight: 4,
            app_max_in_flight: 8,
            increase_after: 2,
            ..GovernorSettings::default()
        }
    }

    /// Max number of events in any window of `w` starting at an event.
    fn max_in_window(times: &[Instant], w: Duration) -> usize {
        times
            .iter()
            .map(|t| times.iter().filter(|u| **u >= *t && **u < *t + w).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_paced_inside_the_window_budget() {
        let g = Governor::new(settings());
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..300 {
            let p = g.acquire("a@x", 0).await;
            times.push(Instant::now());
            drop(p);
        }
        // burst of 10 at once, then 8.9/s
        assert_eq!(times[9], start);
        assert!(times[10] > start);
        let elapsed = Instant::now() - start;
        assert!(
            elapsed >= Duration::from_secs(32) && elapsed <= Duration::from_secs(33),
            "{elapsed:?}"
        );
        assert!(max_in_window(&times, Duration::from_secs(10)) <= 100);
        // and it uses the budget: the steady rate is the non-burst share less 1% (89 per window here)
        assert!(max_in_window(&times[50..], Duration::from_secs(10)) >= 88);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_are_paced_and_oversize_bodies_still_pass() {
        let g = Governor::new(settings());
        let start = Instant::now();
        // capacity 100 kB, 89 kB/s: the first goes at once, the second after 80/89 s, then 90/89 s each
        for _ in 0..10 {
            drop(g.acquire("a@x", 90_000).await);
        }
        let el = (Instant::now() - start).as_secs_f64();
        let want = 80.0 / 89.0 + 8.0 * 90.0 / 89.0;
        assert!((el - want).abs() < 0.01, "{el} vs {want}");
        // a body larger than the bucket waits for a full bucket and goes
        let t0 = Instant::now();
        drop(g.acquire("a@x", 500_000).await);
        assert!(Instant::now() - t0 <= Duration::from_secs(2));
        // ... and the debt it leaves slows the next one down
        let t1 = Instant::now();
        drop(g.acquire("a@x", 1).await);
        assert!(Instant::now() - t1 >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn mailbox_in_flight_limit_blocks_until_release() {
        let g = Governor::new(settings());
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| g.acquire("a@x", 0))).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(5), g.acquire("a@x", 0))
                .await
                .is_err()
        );
        // another mailbox is not blocked
        drop(
            tokio::time::timeout(Duration::from_millis(1), g.acquire("b@x", 0))
                .await
                .unwrap(),
        );
        let g2 = Arc::clone(&g);
        let waiter = tokio::spawn(async move { drop(g2.acquire("a@x", 0).await) });
        tokio::task::yield_now().await;
        drop(held);
        tokio::time::timeout(Duration::from_millis(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_429_halves_the_mailbox_limit_once_per_generation_then_recovers() {
        let g = Governor::new(settings());
        let mut ps: Vec<_> = futures::future::join_all((0..4).map(|_| g.acquire("a@x", 0))).await;
        tokio::time::advance(Duration::from_millis(10)).await;
        for p in ps.iter_mut() {
            p.set_feedback(Feedback::ConcurrencyThrottled);
        }
        drop(ps);
        let snap = g.snapshot();
        assert_eq!(
            snap[1].in_flight_limit, 2,
            "four 429s from one generation cut once: {snap:?}"
        );
        assert_eq!(snap[1].throttled, 4);
        assert_eq!(
            snap[0].in_flight_limit, 8,
            "one mailbox alone: the app limit is not blamed"
        );
        // additive increase: 2 x limit successes -> +1
        for _ in 0..4 {
            let mut p = g.acquire("a@x", 0).await;
            p.set_feedback(Feedback::Ok);
        }
        assert_eq!(g.snapshot()[1].in_flight_limit, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_429_across_mailboxes_cuts_the_app_limit() {
        let g = Governor::new(settings());
        let mut a = g.acquire("a@x", 0).await;
        let b: Vec<_> = futures::future::join_all((0..4).map(|_| g.acquire("b@x", 0))).await;
        a.set_feedback(Feedback::ConcurrencyThrottled);
        drop(a);
        let snap = g.snapshot();
        assert_eq!(
            snap[0].in_flight_limit, 2,
            "app had 5 out, halved to 2: {snap:?}"
        );
        assert_eq!(snap[1].in_flight_limit, 4, "mailbox a had only one out");
        drop(b);
        // now the app limit binds across mailboxes
        let held: Vec<_> = futures::future::join_all((0..2).map(|_| g.acquire("c@x", 0))).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(1), g.acquire("d@x", 0))
                .await
                .is_err()
        );
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_only_that_mailbox() {
        let g = Governor::new(settings());
        g.pause_mailbox("a@x", Duration::from_secs(5));
        let t0 = Instant::now();
        drop(g.acquire("b@x", 0).await);
        assert_eq!(Instant::now(), t0);
        assert!(
            g.snapshot()
                .iter()
                .any(|s| s.scope == "a@x" && s.paused_for == Some(Duration::from_secs(5)))
        );
        drop(g.acquire("a@x", 0).await);
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        g.pause_app(Duration::from_secs(2));
        let t1 = Instant::now();
        drop(g.acquire("b@x", 0).await);
        assert_eq!(Instant::now() - t1, Duration::from_secs(2));
    }
}
