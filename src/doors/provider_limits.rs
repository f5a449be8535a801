//! A provider's rate limits, emulated for mock routes (contract section 14):
//! with the knobs `rpm` and/or `tpm` (on the route or in the request), each
//! client has a sliding minute of requests and tokens, every answer carries
//! the provider's rate-limit headers for the door it came in by, and past a
//! limit the answer is a 429 in that door's shape with `retry-after`. So a
//! client's handling of a provider's limits can be built against the mock.
//!
//! Tokens counted are the request's input tokens (sluice's tokenizer) plus
//! the answer it may get (`max_tokens`, when given), as providers reserve.
//!
//! Memory is bounded: a window holds at most `rpm` requests (refused ones are
//! not kept), and windows with nothing in the last minute go on the next
//! request's sweep.
//!
//! What it may not do: limit a route that is not a mock (sluice's own
//! `[limits]` do that).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::auth::ClientKey;

const MINUTE: Duration = Duration::from_secs(60);
/// Windows kept before idle ones are swept.
const SWEEP_PAST: usize = 4096;

/// The headers' family: the door the request came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `x-ratelimit-*`, with `retry-after-ms` on a 429.
    OpenAi,
    /// `anthropic-ratelimit-*`.
    Anthropic,
}

/// One request's share of a window.
pub struct Ask<'a> {
    pub route: &'a str,
    pub client: ClientKey,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub tokens: u32,
    pub style: Style,
}

/// What the limits say: the headers to send, and the wait when refused.
#[derive(Debug, Default)]
pub struct Verdict {
    pub headers: Vec<(&'static str, String)>,
    pub refused: Option<Duration>,
}

#[derive(Default)]
pub struct ProviderLimits {
    windows: Mutex<HashMap<(String, ClientKey), Window>>,
}

#[derive(Default)]
struct Window {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u32)>,
    token_sum: u64,
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|at| now - *at >= MINUTE) {
            self.requests.pop_front();
        }
        while let Some((at, n)) = self.tokens.front().copied() {
            if now - at < MINUTE {
                break;
            }
            self.tokens.pop_front();
            self.token_sum -= u64::from(n);
        }
    }

    /// How long until `wanted` more tokens fit under `tpm`.
    fn token_wait(&self, now: Instant, tpm: u32, wanted: u32) -> Option<Duration> {
        let limit = u64::from(tpm);
        if self.token_sum + u64::from(wanted) <= limit {
            return None;
        }
        if u64::from(wanted) > limit {
            return Some(MINUTE);
        }
        let mut sum = self.token_sum;
        for (at, n) in &self.tokens {
            sum -= u64::from(*n);
            if sum + u64::from(wanted) <= limit {
                return Some(MINUTE.saturating_sub(now - *at));
            }
        }
        Some(MINUTE)
    }
}

impl ProviderLimits {
    /// Counts `ask` unless it is over a limit.
    pub fn admit(&self, ask: Ask<'_>) -> Verdict {
        if ask.rpm.is_none() && ask.tpm.is_none() {
            return Verdict::default();
        }
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_PAST {
            windows.retain(|_, window| {
                window.expire(now);
                !window.requests.is_empty() || !window.tokens.is_empty()
            });
        }
        let window = windows
            .entry((ask.route.to_owned(), ask.client))
            .or_default();
        window.expire(now);
        let request_wait = ask.rpm.and_then(|rpm| {
            (window.requests.len() >= rpm as usize).then(|| {
                window
                    .requests
                    .front()
                    .map_or(MINUTE, |at| MINUTE.saturating_sub(now - *at))
            })
        });
        let token_wait = ask
            .tpm
            .and_then(|tpm| window.token_wait(now, tpm, ask.tokens));
        let refused = request_wait.max(token_wait);
        if refused.is_none() {
            window.requests.push_back(now);
            if ask.tokens > 0 {
                window.tokens.push_back((now, ask.tokens));
                window.token_sum += u64::from(ask.tokens);
            }
        }
        // Back to full once the newest counted entry is a minute old.
        let full_in = |newest: Option<Instant>| {
            newest.map_or(Duration::ZERO, |at| MINUTE.saturating_sub(now - at))
        };
        let mut headers = Vec::new();
        if let Some(rpm) = ask.rpm {
            let remaining = rpm.saturating_sub(window.requests.len() as u32);
            headers.extend(family(
                ask.style,
                "requests",
                rpm,
                remaining,
                full_in(window.requests.back().copied()),
            ));
        }
        if let Some(tpm) = ask.tpm {
            let remaining = u64::from(tpm).saturating_sub(window.token_sum);
            let newest = window.tokens.back().map(|(at, _)| *at);
            headers.extend(family(
                ask.style,
                "tokens",
                tpm,
                remaining as u32,
                full_in(newest),
            ));
        }
        if let (Some(wait), Style::OpenAi) = (refused, ask.style) {
            headers.push(("retry-after-ms", wait.as_millis().max(1).to_string()));
        }
        Verdict { headers, refused }
    }
}

/// The three headers of one limit, in `style`'s names and formats.
fn family(
    style: Style,
    what: &'static str,
    limit: u32,
    remaining: u32,
    reset: Duration,
) -> [(&'static str, String); 3] {
    match (style, what) {
        (Style::OpenAi, "requests") => [
            ("x-ratelimit-limit-requests", limit.to_string()),
            ("x-ratelimit-remaining-requests", remaining.to_string()),
            ("x-ratelimit-reset-requests", openai_duration(reset)),
        ],
        (Style::OpenAi, _) => [
            ("x-ratelimit-limit-tokens", limit.to_string()),
            ("x-ratelimit-remaining-tokens", remaining.to_string()),
            ("x-ratelimit-reset-tokens", openai_duration(reset)),
        ],
        (Style::Anthropic, "requests") => [
            ("anthropic-ratelimit-requests-limit", limit.to_string()),
            (
                "anthropic-ratelimit-requests-remaining",
                remaining.to_string(),
            ),
            ("anthropic-ratelimit-requests-reset", rfc3339_in(reset)),
        ],
        (Style::Anthropic, _) => [
            ("anthropic-ratelimit-tokens-limit", limit.to_string()),
            (
                "anthropic-ratelimit-tokens-remaining",
                remaining.to_string(),
            ),
            ("anthropic-ratelimit-tokens-reset", rfc3339_in(reset)),
        ],
    }
}

/// OpenAI's reset format: `20ms`, `6.5s`, `1m0s`.
fn openai_duration(wait: Duration) -> String {
    let ms = wait.as_millis();
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => {
            let text = format!("{:.3}", wait.as_secs_f64());
            format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Anthropic's reset format: the moment, in RFC 3339.
fn rfc3339_in(wait: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + wait).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_durations_read_like_openai_s() {
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_millis(6500)), "6.5s");
        assert_eq!(openai_duration(Duration::from_secs(60)), "1m0s");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_past_rpm_are_refused_until_the_oldest_is_a_minute_old() {
        let limits = ProviderLimits::default();
        let ask = || Ask {
            route: "mock",
            client: ClientKey::Unknown,
            rpm: Some(2),
            tpm: None,
            tokens: 10,
            style: Style::OpenAi,
        };
        assert!(limits.admit(ask()).refused.is_none());
        tokio::time::advance(Duration::from_secs(10)).await;
        let second = limits.admit(ask());
        assert!(second.refused.is_none());
        assert!(second
            .headers
            .contains(&("x-ratelimit-remaining-requests", "0".into())));
        let third = limits.admit(ask());
        assert_eq!(third.refused, Some(Duration::from_secs(50)));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(limits.admit(ask()).refused.is_none());
    }
}
