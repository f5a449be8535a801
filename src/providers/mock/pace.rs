//! The mock's timing.

use std::time::Duration;

use crate::generation::MockKnobs;

const DEFAULT_TTFT_MS: u64 = 300;
const DEFAULT_TOKEN_DELAY_MS: u64 = 30;
const DEFAULT_JITTER_MS: u64 = 0;

/// The mock's timing. Each token is due at a deadline reckoned from the
/// previous deadline, not from when the previous token was written, so the
/// pace does not drift by the timer's rounding (tokio's timer has 1 ms
/// granularity) or by a slow reader.
pub struct Pace {
    ttft: Duration,
    token_delay_ms: u64,
    jitter_ms: u64,
    due: tokio::time::Instant,
}

impl Pace {
    pub fn new(knobs: &MockKnobs) -> Pace {
        Pace {
            ttft: Duration::from_millis(knobs.ttft_ms.unwrap_or(DEFAULT_TTFT_MS)),
            token_delay_ms: knobs.token_delay_ms.unwrap_or(DEFAULT_TOKEN_DELAY_MS),
            jitter_ms: knobs.jitter_ms.unwrap_or(DEFAULT_JITTER_MS),
            due: tokio::time::Instant::now(),
        }
    }

    pub async fn first_token(&mut self) {
        self.due += self.ttft;
        if !self.ttft.is_zero() {
            tokio::time::sleep_until(self.due).await;
        }
    }

    /// Waits the gap before the next token: `token_delay_ms`, spread by up to
    /// `jitter_ms` either way.
    pub async fn between_tokens(&mut self, rng: &mut fastrand::Rng) {
        let jitter = self.jitter_ms.min(self.token_delay_ms);
        let delay = self.token_delay_ms - jitter + rng.u64(0..=2 * jitter);
        if delay > 0 {
            self.due += Duration::from_millis(delay);
            tokio::time::sleep_until(self.due).await;
        }
    }
}
