//! The retry policy as a pure function: given what happened to one attempt, what next.
//!
//! Kept apart from the HTTP code so every rule is unit-tested without a server:
//! - 2xx: done.
//! - 429, 503, 504 (and 500/502, 408): retried. A `Retry-After` (seconds, fractional seconds or an
//!   HTTP date) is honoured first, never shortened, and pauses the whole mailbox (429, 503); one
//!   longer than the policy's maximum stops the mailbox instead; without it, exponential
//!   backoff with jitter from backon's builder, for this request only.
//! - 401 `InvalidAuthenticationToken`: renew the token and retry (a token can expire again during a
//!   long retry sequence, so up to [`MAX_TOKEN_RENEWALS`] times; a token refused that often is not
//!   an expired one).
//! - 400, 403, 404, 413, 507 and other 4xx: not retried.
//! - Connection failures before the request left: retried with backoff.
//! - Response lost after the request was sent (timeout, reset): an idempotent request is retried;
//!   a create is never re-sent (it may have been committed): the caller resolves it by identity.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::engine::ports::FailureClass;

use super::error::class_of_status;

/// Retry limits (from [`GovernorSettings`](super::GovernorSettings)).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub max_retry_after: Duration,
    /// Fixed jitter seed for tests; `None` = random.
    pub jitter_seed: Option<u64>,
}

/// What one attempt ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP response (any status).
    Response {
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The request could not be sent (connect failed): nothing reached the server.
    NotSent,
    /// The request was (or may have been) sent, and no response came.
    Lost { idempotent: bool },
}

/// Whom a wait concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseScope {
    /// Only this request waits.
    Request,
    /// The server asked the mailbox to hold off: every request of the mailbox waits.
    Mailbox,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Success: use the response.
    Done,
    /// Wait, then try again.
    Retry { after: Duration, scope: PauseScope },
    /// Renew the access token and try again at once.
    RenewToken,
    /// The server asked the mailbox to wait this long, more than the policy allows: stop the
    /// mailbox (never come back early, which only earns a longer penalty).
    TooLong(Duration),
    /// Stop; the failure has this class.
    Fail(FailureClass),
}

/// Token renewals one request may trigger before a 401 counts as a real refusal.
pub const MAX_TOKEN_RENEWALS: u32 = 3;

/// Where a request stands: attempts made so far (1 after the first) and how many times the token
/// was renewed for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempt {
    pub number: u32,
    pub token_renewals: u32,
}

/// The policy. Pure except for backoff jitter (seedable through [`RetryPolicy::jitter_seed`]).
pub fn decide(attempt: Attempt, outcome: &Outcome, policy: &RetryPolicy) -> Decision {
    let exhausted = attempt.number >= policy.max_attempts;
    match outcome {
        Outcome::Response { status, .. } if (200..300).contains(status) => Decision::Done,
        Outcome::Response {
            status: 401, code, ..
        } => {
            if attempt.token_renewals < MAX_TOKEN_RENEWALS
                && code
                    .as_deref()
                    .is_none_or(|c| c == "InvalidAuthenticationToken")
            {
                Decision::RenewToken
            } else {
                Decision::Fail(FailureClass::Fatal)
            }
        }
        Outcome::Response {
            status,
            code,
            retry_after,
        } => {
            let retryable = matches!(status, 408 | 429 | 500 | 502 | 503 | 504);
            if !retryable {
                return Decision::Fail(class_of_status(*status, code.as_deref()));
            }
            if let Some(d) = retry_after
                && *d > policy.max_retry_after
            {
                return Decision::TooLong(*d);
            }
            if exhausted {
                return Decision::Fail(FailureClass::Transient);
            }
            match retry_after {
                Some(d) => Decision::Retry {
                    after: *d,
                    scope: if matches!(status, 429 | 503) {
                        PauseScope::Mailbox
                    } else {
                        PauseScope::Request
                    },
                },
                // A 429 without Retry-After still tells the whole mailbox to slow down.
                None => Decision::Retry {
                    after: backoff(attempt.number, policy),
                    scope: if *status == 429 {
                        PauseScope::Mailbox
                    } else {
                        PauseScope::Request
                    },
                },
            }
        }
        Outcome::NotSent if exhausted => Decision::Fail(FailureClass::Transient),
        Outcome::NotSent => Decision::Retry {
            after: backoff(attempt.number, policy),
            scope: PauseScope::Request,
        },
        Outcome::Lost { idempotent: false } => Decision::Fail(FailureClass::Ambiguous),
        Outcome::Lost { idempotent: true } if exhausted => Decision::Fail(FailureClass::Transient),
        Outcome::Lost { idempotent: true } => Decision::Retry {
            after: backoff(attempt.number, policy),
            scope: PauseScope::Request,
        },
    }
}

/// The backoff before attempt `number + 1`: backon's exponential builder (factor 2, jitter up to
/// +100%), the `number`-th step.
pub fn backoff(number: u32, policy: &RetryPolicy) -> Duration {
    let mut b = ExponentialBuilder::new()
        .with_min_delay(policy.backoff_min)
        .with_max_delay(policy.backoff_max)
        .with_jitter()
        .without_max_times();
    if let Some(seed) = policy.jitter_seed {
        b = b.with_jitter_seed(seed);
    }
    let step = number.saturating_sub(1) as usize;
    b.build().nth(step).unwrap_or(policy.backoff_max)
}

/// Parses `Retry-After`: whole or fractional seconds (`2.128`), or an HTTP date (relative to
/// `now`; a date in the past means "now"). `None` for garbage.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs).ok();
        }
        return None;
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            jitter_seed: Some(7),
        }
    }
    fn at(n: u32) -> Attempt {
        Attempt {
            number: n,
            token_renewals: 0,
        }
    }
    fn resp(status: u16, code: Option<&str>, ra: Option<f64>) -> Outcome {
        Outcome::Response {
            status,
            code: code.map(str::to_owned),
            retry_after: ra.map(Duration::from_secs_f64),
        }
    }

    #[test]
    fn success_is_done() {
        assert_eq!(
            decide(at(1), &resp(201, None, None), &policy()),
            Decision::Done
        );
    }

    #[test]
    fn retry_after_is_honoured_first_and_pauses_the_mailbox() {
        let d = decide(
            at(1),
            &resp(429, Some("ApplicationThrottled"), Some(2.128)),
            &policy(),
        );
        assert_eq!(
            d,
            Decision::Retry {
                after: Duration::from_secs_f64(2.128),
                scope: PauseScope::Mailbox
            }
        );
        let d = decide(at(3), &resp(503, None, Some(7.0)), &policy());
        assert_eq!(
            d,
            Decision::Retry {
                after: Duration::from_secs(7),
                scope: PauseScope::Mailbox
            }
        );
        // Never shortened: longer than the policy allows stops the mailbox instead.
        let d = decide(at(1), &resp(429, None, Some(10_000.0)), &policy());
        assert_eq!(d, Decision::TooLong(Duration::from_secs(10_000)));
        let d = decide(at(1), &resp(503, None, Some(119.0)), &policy());
        assert_eq!(
            d,
            Decision::Retry {
                after: Duration::from_secs(119),
                scope: PauseScope::Mailbox
            }
        );
    }

    #[test]
    fn without_retry_after_backoff_grows_with_jitter_in_bounds() {
        let p = policy();
        for n in 1..=4u32 {
            let Decision::Retry { after, scope } = decide(at(n), &resp(503, None, None), &p) else {
                panic!()
            };
            assert_eq!(scope, PauseScope::Request);
            let base = Duration::from_millis(500) * 2u32.pow(n - 1);
            assert!(after >= base && after <= base * 2, "attempt {n}: {after:?}");
        }
        let Decision::Retry { after, .. } = decide(at(4), &resp(504, None, None), &p) else {
            panic!()
        };
        assert!(after >= Duration::from_secs(4));
        let Decision::Retry { after, .. } = decide(
            at(30),
            &resp(504, None, None),
            &RetryPolicy {
                max_attempts: 100,
                ..p
            },
        ) else {
            panic!()
        };
        assert!(
            after <= Duration::from_secs(60),
            "capped at max (+jitter): {after:?}"
        );
    }

    #[test]
    fn gives_up_after_max_attempts_as_transient() {
        assert_eq!(
            decide(at(5), &resp(429, None, Some(1.0)), &policy()),
            Decision::Fail(FailureClass::Transient)
        );
        assert_eq!(
            decide(at(5), &Outcome::NotSent, &policy()),
            Decision::Fail(FailureClass::Transient)
        );
    }

    #[test]
    fn permanent_statuses_are_not_retried() {
        for (s, class) in [
            (400, FailureClass::Rejected),
            (403, FailureClass::Mailbox),
            (404, FailureClass::Rejected),
            (413, FailureClass::Rejected),
            (507, FailureClass::Mailbox),
        ] {
            assert_eq!(
                decide(at(1), &resp(s, None, Some(1.0)), &policy()),
                Decision::Fail(class),
                "{s}"
            );
        }
    }

    #[test]
    fn expired_token_is_renewed_a_bounded_number_of_times() {
        let o = resp(401, Some("InvalidAuthenticationToken"), None);
        assert_eq!(decide(at(1), &o, &policy()), Decision::RenewToken);
        let again = Attempt {
            number: 4,
            token_renewals: MAX_TOKEN_RENEWALS - 1,
        };
        assert_eq!(decide(again, &o, &policy()), Decision::RenewToken);
        let renewed = Attempt {
            number: 5,
            token_renewals: MAX_TOKEN_RENEWALS,
        };
        assert_eq!(
            decide(renewed, &o, &policy()),
            Decision::Fail(FailureClass::Fatal)
        );
        // a 401 with another code is not a stale token
        assert_eq!(
            decide(at(1), &resp(401, Some("Forbidden"), None), &policy()),
            Decision::Fail(FailureClass::Fatal)
        );
    }

    #[test]
    fn lost_create_is_never_resent() {
        assert_eq!(
            decide(at(1), &Outcome::Lost { idempotent: false }, &policy()),
            Decision::Fail(FailureClass::Ambiguous)
        );
        assert!(matches!(
            decide(at(1), &Outcome::Lost { idempotent: true }, &policy()),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            decide(at(1), &Outcome::NotSent, &policy()),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_formats() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 2.128 ", now),
            Some(Duration::from_secs_f64(2.128))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
