//! Deadlines on one attempt at a generation: `first_token_ms`, `idle_ms` and
//! `total_ms` (`connect_ms` belongs to the HTTP client), the same for every
//! provider, the mock included.
//!
//! A plain value, not a stream layer: [`Deadlines::due`] says which deadline
//! comes next and the error it ends the attempt with, and
//! [`Deadlines::on_output`] moves the idle clock. The failover loop waits for
//! the first event under it; the relay's and the collector's single timer
//! then drive it, re-armed lazily (each output only notes the time; when the
//! timer fires early it is moved to the real deadline), because registering a
//! fresh timer for every token cost more than relaying the token.
//!
//! The idle clock runs only while the caller is waiting on the upstream: the
//! relay calls `on_output` after its frame was taken by the connection, so a
//! slow reader is not counted as the upstream's silence.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Timeouts;
use crate::generation::UpstreamError;

/// The deadlines of one attempt, from when it started.
#[derive(Debug, Clone)]
pub struct Deadlines {
    started: Instant,
    /// When `total_ms` runs out: from the first attempt's start, kept by a
    /// continuation of the answer (section 17).
    total_at: Instant,
    first_token: Duration,
    idle: Duration,
    total: Duration,
    /// When output last came; `None` until the first.
    last_output: Option<Instant>,
}

impl Deadlines {
    /// An attempt starting `now`.
    pub fn new(timeouts: &Timeouts, now: Instant) -> Deadlines {
        Deadlines {
            started: now,
            total_at: now + timeouts.total(),
            first_token: timeouts.first_token(),
            idle: timeouts.idle(),
            total: timeouts.total(),
            last_output: None,
        }
    }

    /// The next deadline, and the error the attempt ends with when it passes:
    /// the first-token one until output came, then the idle one, and the
    /// total one whenever it is sooner.
    pub fn due(&self) -> (Instant, UpstreamError) {
        let (at, err) = match self.last_output {
            Some(last) => (last + self.idle, UpstreamError::IdleTimeout(self.idle)),
            None => (
                self.started + self.first_token,
                UpstreamError::FirstTokenTimeout(self.first_token),
            ),
        };
        let total_at = self.total_at;
        if total_at <= at {
            (total_at, UpstreamError::TotalTimeout(self.total))
        } else {
            (at, err)
        }
    }

    /// When the attempt's `total_ms` runs out, and the error it ends with.
    pub fn total(&self) -> (Instant, UpstreamError) {
        (self.total_at, UpstreamError::TotalTimeout(self.total))
    }

    /// The deadlines of a call continuing this answer from `now`: a first
    /// token window of its own, the same end of `total_ms`.
    pub fn continuing(&self, now: Instant) -> Deadlines {
        Deadlines {
            started: now,
            last_output: None,
            ..self.clone()
        }
    }

    /// The deadline's error if it has passed at `now`.
    pub fn passed(&self, now: Instant) -> Option<UpstreamError> {
        let (at, err) = self.due();
        (now >= at).then_some(err)
    }

    /// Output came (or was taken by the client) at `now`.
    pub fn on_output(&mut self, now: Instant) {
        self.last_output = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(first_token_ms: u64, idle_ms: u64, total_ms: u64) -> Timeouts {
        Timeouts {
            first_token_ms,
            idle_ms,
            total_ms,
            ..Timeouts::default()
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_token_deadline_applies_until_output_then_the_idle_one() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new(&timeouts(500, 100, 10_000), t0);
        assert_eq!(
            deadlines.due(),
            (t0 + 500 * MS, UpstreamError::FirstTokenTimeout(500 * MS))
        );
        assert_eq!(deadlines.passed(t0 + 499 * MS), None);
        deadlines.on_output(t0 + 200 * MS);
        // The idle deadline, from the last output, may come before the
        // first-token one would have.
        assert_eq!(
            deadlines.due(),
            (t0 + 300 * MS, UpstreamError::IdleTimeout(100 * MS))
        );
        deadlines.on_output(t0 + 290 * MS);
        assert_eq!(deadlines.passed(t0 + 389 * MS), None);
        assert_eq!(
            deadlines.passed(t0 + 390 * MS),
            Some(UpstreamError::IdleTimeout(100 * MS))
        );
    }

    #[test]
    fn the_total_deadline_wins_whenever_it_is_sooner() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new(&timeouts(500, 100, 300), t0);
        assert_eq!(
            deadlines.due(),
            (t0 + 300 * MS, UpstreamError::TotalTimeout(300 * MS))
        );
        deadlines.on_output(t0 + 250 * MS);
        assert_eq!(
            deadlines.passed(t0 + 300 * MS),
            Some(UpstreamError::TotalTimeout(300 * MS))
        );
    }
}
