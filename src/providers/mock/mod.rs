//! The mock model: a local LLM with realistic tokens and timing, and failures
//! on demand, for frontend development, demos and tests.
//!
//! Knobs come from the route's config entry and can be overridden per request
//! (section 4 of the contract). A generation is a plan (the pieces to send,
//! decided up front from the prompt, seed and knobs, so it is deterministic)
//! played out on tokio timers: a slow mock stream costs a timer entry and a
//! small state machine, not a thread or a busy task, so thousands are cheap.
//! Dropping the stream drops the timer, which is how the mock stops when the
//! client leaves.

mod answer;

use std::time::Duration;

use async_stream::stream;

use super::Provider;
use crate::generation::{
    Finish, GenRequest, MockKnobs, MockMode, TokenEvent, TokenStream, UpstreamError, Usage,
};
use crate::tokenizer::{self, Cut};

const DEFAULT_TTFT_MS: u64 = 300;
const DEFAULT_TOKEN_DELAY_MS: u64 = 30;
const DEFAULT_JITTER_MS: u64 = 0;

/// A model served by the mock.
pub struct Mock {
    defaults: MockKnobs,
}

impl Mock {
    pub fn new(defaults: MockKnobs) -> Mock {
        Mock { defaults }
    }
}

impl Provider for Mock {
    fn generate(&self, request: GenRequest) -> TokenStream {
        let knobs = self.defaults.overridden_by(&request.mock);
        Box::pin(stream! {
            if let Some(status) = knobs.error_status {
                let retry_after = (status == 429).then_some(1);
                yield TokenEvent::Error(UpstreamError::MockStatus { status, retry_after });
                return;
            }
            let mut rng = fastrand::Rng::with_seed(seed_for(&request));
            let plan = Plan::new(&knobs, &request, &mut rng);
            let mut pace = Pace::new(&knobs);
            pace.first_token().await;

            let mut completion_tokens = 0u32;
            let total = plan.cuts.len();
            let mut start = 0;
            for (sent, cut) in plan.cuts.iter().enumerate() {
                if let Some(failure) = failure_at(&knobs, sent) {
                    yield failure;
                    return;
                }
                if sent > 0 {
                    pace.between_tokens(&mut rng).await;
                }
                completion_tokens += cut.tokens;
                yield TokenEvent::Token(plan.text[start..cut.end].to_owned());
                start = cut.end;
            }
            // A failure asked for at or past the end still happens, in place of `done`.
            if let Some(failure) = [knobs.fail_after, knobs.drop_after]
                .into_iter()
                .flatten()
                .min()
                .and_then(|at| failure_at(&knobs, (at as usize).max(total)))
            {
                yield failure;
                return;
            }
            let usage = Usage::new(tokenizer::prompt_tokens(&request.messages), completion_tokens);
            yield TokenEvent::Done(Finish {
                stop_sequence: plan.stop_sequence,
                ..Finish::new(plan.finish_reason, usage)
            });
        })
    }
}

/// The failure the knobs ask for once `sent` tokens have gone out, if any.
fn failure_at(knobs: &MockKnobs, sent: usize) -> Option<TokenEvent> {
    let due = |at: Option<u32>| at.is_some_and(|at| at as usize <= sent);
    if due(knobs.fail_after) {
        Some(TokenEvent::Error(UpstreamError::Stream(format!(
            "the mock failed after {sent} tokens, as asked by fail_after"
        ))))
    } else if due(knobs.drop_after) {
        Some(TokenEvent::Cut)
    } else {
        None
    }
}

/// What the mock will send: decided up front, so it is deterministic. The
/// text is kept once, with where to cut it; each piece becomes a `String`
/// only when it is sent (a plan of strings cost ~64 bytes per token held for
/// the whole stream).
struct Plan {
    text: String,
    cuts: Vec<Cut>,
    finish_reason: &'static str,
    /// The request's stop sequence the text was cut before, if any.
    stop_sequence: Option<String>,
}

impl Plan {
    fn new(knobs: &MockKnobs, request: &GenRequest, rng: &mut fastrand::Rng) -> Plan {
        let (text, mut cuts) = match (&knobs.text, knobs.mode.unwrap_or_default()) {
            (Some(text), _) => (text.clone(), tokenizer::cuts(text)),
            (None, MockMode::Echo) => {
                let text = request.last_user_text();
                (text.to_owned(), tokenizer::cuts(text))
            }
            (None, MockMode::Lorem) => {
                answer::compose(rng, request.last_user_text(), knobs.tokens.unwrap_or(0))
            }
        };
        if let Some(wanted) = knobs.tokens {
            truncate_to_tokens(&mut cuts, wanted);
        }
        let mut stop_sequence = cut_at_stop(&text, &mut cuts, &request.stop);
        let mut finish_reason = "stop";
        if let Some(max) = request.max_tokens {
            if truncate_to_tokens(&mut cuts, max) {
                finish_reason = "length";
                stop_sequence = None;
            }
        }
        // Only what will be sent is kept.
        let mut text = text;
        text.truncate(cuts.last().map_or(0, |c| c.end));
        text.shrink_to_fit();
        Plan {
            text,
            cuts,
            finish_reason,
            stop_sequence,
        }
    }
}

/// Ends the planned pieces before the first of `stops` in the text, as a
/// model does (the stop sequence itself is not sent), and says which one.
fn cut_at_stop(text: &str, cuts: &mut Vec<Cut>, stops: &[String]) -> Option<String> {
    let planned = &text[..cuts.last().map_or(0, |c| c.end)];
    let (at, stop) = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| planned.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at)?;
    cuts.retain(|c| c.end <= at);
    // The piece the stop sequence begins inside is cut again before it.
    let kept = cuts.last().map_or(0, |c| c.end);
    cuts.extend(tokenizer::cuts(&text[kept..at]).into_iter().map(|c| Cut {
        end: kept + c.end,
        tokens: c.tokens,
    }));
    Some(stop.clone())
}

/// Keeps the leading pieces that fit in `limit` tokens; true if any were cut.
fn truncate_to_tokens(cuts: &mut Vec<Cut>, limit: u32) -> bool {
    let mut used = 0u32;
    let keep = cuts
        .iter()
        .take_while(|c| {
            used += c.tokens;
            used <= limit
        })
        .count();
    let cut = keep < cuts.len();
    cuts.truncate(keep);
    cut
}

/// The mock's timing. Each token is due at a deadline reckoned from the
/// previous deadline, not from when the previous token was written, so the
/// pace does not drift by the timer's rounding (tokio's timer has 1 ms
/// granularity) or by a slow reader.
struct Pace {
    ttft: Duration,
    token_delay_ms: u64,
    jitter_ms: u64,
    due: tokio::time::Instant,
}

impl Pace {
    fn new(knobs: &MockKnobs) -> Pace {
        Pace {
            ttft: Duration::from_millis(knobs.ttft_ms.unwrap_or(DEFAULT_TTFT_MS)),
            token_delay_ms: knobs.token_delay_ms.unwrap_or(DEFAULT_TOKEN_DELAY_MS),
            jitter_ms: knobs.jitter_ms.unwrap_or(DEFAULT_JITTER_MS),
            due: tokio::time::Instant::now(),
        }
    }

    async fn first_token(&mut self) {
        self.due += self.ttft;
        if !self.ttft.is_zero() {
            tokio::time::sleep_until(self.due).await;
        }
    }

    /// Waits the gap before the next token: `token_delay_ms`, spread by up to
    /// `jitter_ms` either way.
    async fn between_tokens(&mut self, rng: &mut fastrand::Rng) {
        let jitter = self.jitter_ms.min(self.token_delay_ms);
        let delay = self.token_delay_ms - jitter + rng.u64(0..=2 * jitter);
        if delay > 0 {
            self.due += Duration::from_millis(delay);
            tokio::time::sleep_until(self.due).await;
        }
    }
}

/// The same conversation and seed give the same answer.
fn seed_for(request: &GenRequest) -> u64 {
    // FNV-1a: tiny, and stable across Rust versions (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for message in &request.messages {
        for byte in message.content.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^ request
        .seed
        .unwrap_or(0)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::time::{Duration, Instant};

    use super::*;
    use crate::generation::{Message, Role};

    fn request(knobs: MockKnobs) -> GenRequest {
        GenRequest {
            messages: vec![Message {
                role: Role::User,
                content: "hello".into(),
            }],
            mock: knobs,
            ..GenRequest::default()
        }
    }

    /// Paused time: the clock moves only when every task waits, so the gaps
    /// seen here are the mock's own schedule, exactly.
    #[tokio::test(start_paused = true)]
    async fn tokens_come_at_their_deadlines_ttft_then_one_gap_each() {
        let knobs = MockKnobs {
            ttft_ms: Some(300),
            token_delay_ms: Some(40),
            tokens: Some(5),
            ..MockKnobs::default()
        };
        let started = Instant::now();
        let mut events = Mock::new(MockKnobs::default()).generate(request(knobs));
        let mut at = Vec::new();
        while let Some(event) = events.next().await {
            if let TokenEvent::Token(_) = event {
                at.push(started.elapsed());
            }
        }
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [300, 340, 380, 420, 460]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_the_gaps_within_its_bound_and_keeps_the_pace() {
        let knobs = MockKnobs {
            ttft_ms: Some(0),
            token_delay_ms: Some(50),
            jitter_ms: Some(20),
            tokens: Some(60),
            ..MockKnobs::default()
        };
        let mut events = Mock::new(MockKnobs::default()).generate(request(knobs));
        let mut last: Option<Instant> = None;
        let mut gaps: Vec<u128> = Vec::new();
        while let Some(event) = events.next().await {
            if let TokenEvent::Token(_) = event {
                let now = Instant::now();
                if let Some(last) = last {
                    gaps.push((now - last).as_millis());
                }
                last = Some(now);
            }
        }
        assert!(gaps.len() >= 50, "{} gaps", gaps.len());
        assert!(gaps.iter().all(|g| (30..=70).contains(g)), "{gaps:?}");
        let distinct: std::collections::HashSet<_> = gaps.iter().collect();
        assert!(distinct.len() > 5, "the gaps do not spread: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_status_fails_at_once_and_a_cut_comes_after_its_tokens() {
        let failing = MockKnobs {
            error_status: Some(429),
            ..MockKnobs::default()
        };
        let mut events = Mock::new(MockKnobs::default()).generate(request(failing));
        assert_eq!(
            events.next().await,
            Some(TokenEvent::Error(UpstreamError::MockStatus {
                status: 429,
                retry_after: Some(1)
            }))
        );
        assert_eq!(events.next().await, None);

        let dropping = MockKnobs {
            ttft_ms: Some(0),
            token_delay_ms: Some(1),
            drop_after: Some(3),
            ..MockKnobs::default()
        };
        let events: Vec<_> = Mock::new(MockKnobs::default())
            .generate(request(dropping))
            .collect()
            .await;
        assert_eq!(events.len(), 4);
        assert_eq!(events.last(), Some(&TokenEvent::Cut));
    }

    async fn finish_of(request: GenRequest) -> (String, Finish) {
        let events: Vec<_> = Mock::new(MockKnobs::default())
            .generate(request)
            .collect()
            .await;
        let text = events
            .iter()
            .filter_map(|e| match e {
                TokenEvent::Token(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        match events.last() {
            Some(TokenEvent::Done(finish)) => (text, finish.clone()),
            other => panic!("no done: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_sequence_ends_the_text_before_it_and_is_reported() {
        let knobs = MockKnobs {
            text: Some("one two three. four five".into()),
            ..MockKnobs::default()
        };
        let stopped = GenRequest {
            stop: vec!["zzz".into(), "ree.".into(), "four".into()],
            ..request(knobs.clone())
        };
        let (text, finish) = finish_of(stopped.clone()).await;
        // "ree." begins inside the token " three": that piece is cut again.
        assert_eq!(text, "one two th");
        assert_eq!(finish.finish_reason, "stop");
        assert_eq!(finish.stop_sequence.as_deref(), Some("ree."));
        assert_eq!(finish.usage.completion_tokens, 3);

        // A stop sequence the cap comes before is a `length` finish.
        let capped = GenRequest {
            max_tokens: Some(2),
            ..stopped
        };
        let (text, finish) = finish_of(capped).await;
        assert_eq!(text, "one two");
        assert_eq!(
            (finish.finish_reason.as_str(), finish.stop_sequence),
            ("length", None)
        );

        let (text, finish) = finish_of(request(knobs)).await;
        assert_eq!(text, "one two three. four five");
        assert_eq!(finish.stop_sequence, None);
    }
}
