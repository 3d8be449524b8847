//! Outlook's throttling, as Microsoft documents it: per app and mailbox, a request budget and an
//! upload-bytes budget over sliding windows, and a concurrency limit whose scope is a setting.
//! Over a limit the answer is 429 `ApplicationThrottled` with Retry-After; a client that comes
//! back before Retry-After is throttled again for longer. Throttled requests still count.
//!
//! Time is `tokio::time::Instant`, so tests with a paused clock drive it; windows are divided by
//! the time scale, and Retry-After is given in real seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use super::Emu;
use super::config::{ConcurrencyScope, EmulatorConfig};
use super::errors::ApiError;

#[derive(Debug, Default)]
struct KeyState {
    requests: VecDeque<Instant>,
    bytes: VecDeque<(Instant, u64)>,
    bytes_sum: u64,
    blocked_until: Option<Instant>,
    last_wait: Duration,
}

/// Throttling state for every (app, mailbox) pair and concurrency scope.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    keys: HashMap<(String, String), KeyState>,
    in_flight: HashMap<String, usize>,
}

fn throttled(wait: Duration, message: &str) -> ApiError {
    ApiError::new(429, "ApplicationThrottled", message).with_retry_after(wait.as_secs_f64())
}

impl Throttle {
    /// Admits one request or answers 429. On success returns the concurrency scope key to
    /// release when the request ends.
    pub fn admit(
        &mut self,
        cfg: &EmulatorConfig,
        app: &str,
        mailbox: &str,
        body_bytes: u64,
        now: Instant,
    ) -> Result<String, ApiError> {
        let l = &cfg.limits;
        let req_window = cfg.scaled(l.request_window_secs);
        let up_window = cfg.scaled(l.upload_window_secs);
        let st = self
            .keys
            .entry((app.to_owned(), mailbox.to_owned()))
            .or_default();
        while st
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= req_window)
        {
            st.requests.pop_front();
        }
        while let Some((t, n)) = st.bytes.front().copied() {
            if now.duration_since(t) < up_window {
                break;
            }
            st.bytes.pop_front();
            st.bytes_sum -= n;
        }
        // Throttled requests count against the budget too.
        st.requests.push_back(now);

        if let Some(until) = st.blocked_until
            && now < until
        {
            let wait = st
                .last_wait
                .mul_f64(l.early_retry_penalty.max(1.0))
                .max(until - now);
            st.blocked_until = Some(now + wait);
            st.last_wait = wait;
            return Err(throttled(
                wait,
                "Application is over its MailboxConcurrency limit. The request came back before Retry-After.",
            ));
        }

        let limit = l.requests_per_window as usize;
        if st.requests.len() > limit {
            let idx = st.requests.len() - limit;
            let wait = (st.requests[idx - 1] + req_window).saturating_duration_since(now);
            let wait = wait.max(Duration::from_millis(1));
            st.blocked_until = Some(now + wait);
            st.last_wait = wait;
            return Err(throttled(
                wait,
                &format!(
                    "Application is over its request limit of {} requests per {} seconds for this mailbox.",
                    l.requests_per_window, l.request_window_secs
                ),
            ));
        }

        if body_bytes > 0 && st.bytes_sum + body_bytes > l.upload_bytes_per_window {
            let mut freed = 0;
            let mut wait = up_window;
            for (t, n) in &st.bytes {
                freed += n;
                if st.bytes_sum - freed + body_bytes <= l.upload_bytes_per_window {
                    wait = (*t + up_window).saturating_duration_since(now);
                    break;
                }
            }
            let wait = wait.max(Duration::from_millis(1));
            st.blocked_until = Some(now + wait);
            st.last_wait = wait;
            return Err(throttled(
                wait,
                &format!(
                    "Application is over its upload limit of {} bytes per {} seconds for this mailbox.",
                    l.upload_bytes_per_window, l.upload_window_secs
                ),
            ));
        }

        let scope = match l.concurrency_scope {
            ConcurrencyScope::App => app.to_owned(),
            ConcurrencyScope::AppMailbox => format!("{app}\u{0}{mailbox}"),
        };
        let running = self.in_flight.entry(scope.clone()).or_default();
        if *running >= l.concurrent_requests {
            let wait = cfg.scaled(l.concurrency_retry_after_secs);
            st.blocked_until = Some(now + wait);
            st.last_wait = wait;
            return Err(throttled(
                wait,
                "Application is over its MailboxConcurrency limit.",
            ));
        }
        *running += 1;
        if body_bytes > 0 {
            st.bytes.push_back((now, body_bytes));
            st.bytes_sum += body_bytes;
        }
        Ok(scope)
    }

    fn release(&mut self, scope: &str) {
        if let Some(n) = self.in_flight.get_mut(scope) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A request's place in its concurrency scope; released on drop (also when the client goes away
/// and the handler future is dropped).
pub(crate) struct Permit {
    emu: Arc<Emu>,
    scope: String,
}

impl Permit {
    /// Admits a request for (app, mailbox) or returns the 429.
    pub fn acquire(
        emu: &Arc<Emu>,
        app: &str,
        mailbox: &str,
        body_bytes: u64,
    ) -> Result<Permit, ApiError> {
        let scope = emu
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(&emu.config, app, mailbox, body_bytes, Instant::now())?;
        emu.in_flight.send_modify(|n| *n += 1);
        Ok(Permit {
            emu: emu.clone(),
            scope,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.emu
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(&self.scope);
        self.emu.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: impl FnOnce(&mut EmulatorConfig)) -> EmulatorConfig {
        let mut c = EmulatorConfig::default();
        f(&mut c);
        c
    }

    #[tokio::test(start_paused = true)]
    async fn request_budget_throttles_then_recovers() {
        let c = cfg(|c| c.limits.requests_per_window = 3);
        let mut t = Throttle::default();
        for _ in 0..3 {
            let s = t.admit(&c, "app", "mb", 0, Instant::now()).unwrap();
            t.release(&s);
        }
        let e = t.admit(&c, "app", "mb", 0, Instant::now()).unwrap_err();
        assert_eq!(e.status, 429);
        assert_eq!(e.code, "ApplicationThrottled");
        let wait = e.retry_after.unwrap();
        assert!((599.0..=600.0).contains(&wait), "{wait}");
        // Another mailbox is unaffected.
        assert!(t.admit(&c, "app", "other", 0, Instant::now()).is_ok());
        tokio::time::advance(Duration::from_secs_f64(wait)).await;
        assert!(t.admit(&c, "app", "mb", 0, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn early_retry_is_penalised() {
        let c = cfg(|c| c.limits.requests_per_window = 1);
        let mut t = Throttle::default();
        t.admit(&c, "a", "m", 0, Instant::now()).unwrap();
        let first = t
            .admit(&c, "a", "m", 0, Instant::now())
            .unwrap_err()
            .retry_after
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = t
            .admit(&c, "a", "m", 0, Instant::now())
            .unwrap_err()
            .retry_after
            .unwrap();
        assert!(second > first, "{second} > {first}");
    }

    #[tokio::test(start_paused = true)]
    async fn upload_bytes_budget_and_time_scale() {
        let c = cfg(|c| {
            c.limits.upload_bytes_per_window = 100;
            c.time_scale = 60.0;
        });
        let mut t = Throttle::default();
        let s = t.admit(&c, "a", "m", 80, Instant::now()).unwrap();
        t.release(&s);
        let e = t.admit(&c, "a", "m", 30, Instant::now()).unwrap_err();
        let wait = e.retry_after.unwrap();
        assert!((4.9..=5.0).contains(&wait), "300 s / 60 = 5 s, got {wait}");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(t.admit(&c, "a", "m", 30, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_scope_app_spans_mailboxes() {
        let c = cfg(|c| {
            c.limits.concurrent_requests = 2;
            c.limits.concurrency_scope = ConcurrencyScope::App;
        });
        let mut t = Throttle::default();
        t.admit(&c, "a", "m1", 0, Instant::now()).unwrap();
        t.admit(&c, "a", "m2", 0, Instant::now()).unwrap();
        let e = t.admit(&c, "a", "m3", 0, Instant::now()).unwrap_err();
        assert_eq!(e.retry_after, Some(1.0));
        let c2 = cfg(|c| c.limits.concurrent_requests = 1);
        let mut t2 = Throttle::default();
        t2.admit(&c2, "a", "m1", 0, Instant::now()).unwrap();
        assert!(
            t2.admit(&c2, "a", "m2", 0, Instant::now()).is_ok(),
            "per-mailbox scope"
        );
    }
}
