//! Failed authentications, per address: past a small budget the address is
//! refused with a 429 whatever key it sends, so keys cannot be guessed at
//! speed. Only failures are counted, and a valid key is checked before this
//! refusal, so a client with a good key is never locked out by bad ones from
//! its address.
//!
//! Kept per replica, also with `[store]` (docs/prompts-and-limits.md says so): behind N
//! replicas a guesser gets N budgets (10 at once, then one per 2 s each),
//! which a key of 20 random characters or more makes moot. Sharing it would
//! put a Redis round trip on every failed attempt, and it would fall back to
//! per replica whenever Redis is down anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::error::{ApiError, ErrorKind};

/// Failed authentications an address may make at once, then one more per
/// [`FAILED_AUTH_EVERY`].
const FAILED_AUTH_BURST: u32 = 10;
const FAILED_AUTH_EVERY: Duration = Duration::from_secs(2);

/// Failed authentications per address. Past the budget the address is
/// refused with a 429, whatever key it sends, until its budget is back, so
/// keys cannot be guessed at speed (nginx puts `limit_req` before
/// `auth_request` for the same reason).
pub struct AuthFailures {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses refused, and until when.
    refused: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
}

impl AuthFailures {
    pub fn new() -> AuthFailures {
        let burst = NonZeroU32::new(FAILED_AUTH_BURST).expect("a non-zero burst");
        let quota = Quota::with_period(FAILED_AUTH_EVERY)
            .expect("a non-zero period")
            .allow_burst(burst);
        AuthFailures {
            limiter: RateLimiter::keyed(quota),
            refused: Mutex::default(),
            clock: DefaultClock::default(),
        }
    }

    /// A 429 while `addr` is refused.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refused.get(&addr) {
            Some(until) if *until > Instant::now() => Err(Self::refusal(*until - Instant::now())),
            Some(_) | None => Ok(()),
        }
    }

    /// Counts a failed attempt by `addr`; a 429 when it spent the budget.
    pub fn failed(&self, addr: IpAddr) -> Result<(), ApiError> {
        let Err(not_until) = self.limiter.check_key(&addr) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let now = Instant::now();
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.len() >= 4096 {
            // Bounded: the expired go first.
            refused.retain(|_, until| *until > now);
            self.limiter.retain_recent();
        }
        refused.insert(addr, now + wait);
        Err(Self::refusal(wait))
    }

    fn refusal(wait: Duration) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                ErrorKind::RateLimited,
                "too many failed authentications from this address; retry later",
            )
        }
    }
}
