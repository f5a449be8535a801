//! Retries, fallbacks and hedging, before the first token: which attempt
//! serves.
//!
//! A generation tries its model, and what it does after a failed attempt
//! depends on the failure's class (contract section 17, [`after`]):
//! - a connect error, a 5xx, a 429 or 529, an error event or an unparsable
//!   stream: the same model again, up to `retries` times, after a capped
//!   exponential backoff with jitter (or the upstream's `Retry-After` when it
//!   is longer);
//! - no first token within `first_token_ms` (an upstream that sends nothing),
//!   a 400 for context length, any other 4xx: the next fallback at once;
//! - a 400 refusing the content on policy grounds: no one else is asked,
//!   the refusal is the client's answer.
//!
//! With `hedge_after_ms`, a first attempt with no first token by then is
//! joined by the same request on the first fallback; the first of the two to
//! give a token serves and the other is dropped (which cancels it).
//!
//! [`choose`] returns at the first attempt that yields anything but an error:
//! after that nothing is retried here, because the client is about to get
//! bytes from that model (a failure after it is `midstream`'s). It hands the
//! attempt over as a [`Serving`], with the attempt's own deadlines, for the
//! relay or the collector to drive to its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{count_error, try_once, Attempt};
use super::deadlines::Deadlines;
use super::midstream::Midstream;
use crate::config::{Midstream as OnMidstream, Timeouts};
use crate::generation::{GenRequest, TokenEvent, TokenStream, UpstreamError};
use crate::models::ModelRoute;

const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A `Retry-After` longer than this is not waited for: the next model is tried.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// The failover's choice, still to come: [`choose`], boxed.
pub type Choice = Pin<Box<dyn Future<Output = Result<Serving, UpstreamError>> + Send>>;

/// The attempt that serves a generation.
pub struct Serving {
    /// The configured model serving (a fallback, perhaps).
    pub model: String,
    /// Its first event: an output, or a terminal event if it had no output.
    pub first: TokenEvent,
    /// The events after the first; dropping them cancels the upstream.
    pub rest: TokenStream,
    /// The attempt's deadlines, its first output already noted.
    pub deadlines: Deadlines,
    /// How a failure after the first token is continued, on a route with
    /// `midstream = "continue"`.
    pub midstream: Option<Box<Midstream>>,
}

impl From<Attempt> for Serving {
    fn from(attempt: Attempt) -> Serving {
        Serving {
            model: attempt.model,
            first: attempt.first,
            rest: attempt.rest,
            deadlines: attempt.deadlines,
            midstream: None,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq)]
enum After {
    /// The same model again, after this wait (if it has retries left).
    Retry(Duration),
    /// The next fallback, now.
    Fallback,
    /// No one else: the failure is the answer.
    Answer,
}

/// Runs `request` on the models of `chain` (a route and its fallbacks, from
/// `ModelTable::chain`), with their retries, until one attempt starts to
/// serve; the last failure when none does.
pub async fn choose(
    chain: Vec<Arc<ModelRoute>>,
    request: GenRequest,
    timeouts: Timeouts,
) -> Result<Serving, UpstreamError> {
    let continues = chain
        .first()
        .is_some_and(|route| route.midstream == OnMidstream::Continue);
    // Kept for the attempts after this one (and for continuations, on a
    // route that continues), and otherwise given to the last one, so a long
    // stream does not hold a copy of its conversation for nothing.
    let mut request = Some(request);
    let mut last_error = UpstreamError::Stream("no model to try".into());
    for (position, route) in chain.iter().enumerate() {
        for attempt in 0..=route.retries {
            let last_try = attempt == route.retries && position + 1 == chain.len() && !continues;
            let this_try = match (&request, last_try) {
                (Some(_), true) => request.take(),
                (Some(request), false) => Some(request.clone()),
                (None, _) => None,
            };
            let Some(this_try) = this_try else { break };
            let hedge = match (position, attempt, route.hedge_after) {
                (0, 0, Some(after)) => chain.get(1).map(|second| (second, after)),
                _ => None,
            };
            let tried = match hedge {
                Some((second, after)) => {
                    try_hedged(route, second, after, this_try, &timeouts).await
                }
                None => try_once(route, this_try, Deadlines::new(&timeouts, Instant::now())).await,
            };
            let err = match tried.map(Serving::from) {
                Ok(mut serving) => {
                    if let (true, Some(request)) = (continues, request) {
                        let serving_at = chain
                            .iter()
                            .position(|r| r.name == serving.model)
                            .unwrap_or(position);
                        serving.midstream =
                            Some(Box::new(Midstream::new(chain, serving_at, request)));
                    }
                    return Ok(serving);
                }
                Err(err) => err,
            };
            count_error(&route.configured, &err);
            let after = after(&err, attempt);
            let then = match (&after, chain.get(position + 1)) {
                (After::Answer, _) => "the failure is the answer".to_owned(),
                (After::Retry(wait), _) if attempt < route.retries => {
                    format!("retrying in {} ms", wait.as_millis())
                }
                (After::Retry(_) | After::Fallback, Some(next)) => {
                    format!("falling back to {}", next.name)
                }
                (After::Retry(_) | After::Fallback, None) => "no retry or fallback left".to_owned(),
            };
            tracing::warn!(
                model = %route.name, attempt = attempt + 1, reason = %err,
                "upstream failed before its first token; {then}"
            );
            match after {
                After::Answer => return Err(err),
                After::Retry(wait) if attempt < route.retries => {
                    last_error = err;
                    tokio::time::sleep(wait).await;
                }
                After::Retry(_) | After::Fallback => {
                    last_error = err;
                    break;
                }
            }
        }
    }
    Err(last_error)
}

/// The first attempt on `route`, joined after `after` with no first token
/// by the same request on `second`: the first to serve wins and the other
/// is dropped; when both fail, `route`'s failure.
async fn try_hedged(
    route: &ModelRoute,
    second: &ModelRoute,
    after: Duration,
    request: GenRequest,
    timeouts: &Timeouts,
) -> Result<Attempt, UpstreamError> {
    let now = Instant::now();
    let first = try_once(route, request.clone(), Deadlines::new(timeouts, now));
    tokio::pin!(first);
    tokio::select! {
        tried = &mut first => return tried,
        () = tokio::time::sleep_until(now + after) => {}
    }
    tracing::info!(model = %route.name, hedge = %second.name, "no first token after {} ms; hedging", after.as_millis());
    let hedge = try_once(second, request, Deadlines::new(timeouts, Instant::now()));
    tokio::pin!(hedge);
    let won = |serving: Attempt, winner: &'static str| {
        metrics::counter!(crate::metrics::HEDGES, "model" => route.configured.clone(), "won" => winner)
            .increment(1);
        Ok(serving)
    };
    let mut failed: (Option<UpstreamError>, bool) = (None, false);
    loop {
        tokio::select! {
            tried = &mut first, if failed.0.is_none() => match tried {
                Ok(serving) => return won(serving, "primary"),
                Err(err) => failed.0 = Some(err),
            },
            tried = &mut hedge, if !failed.1 => match tried {
                Ok(serving) => return won(serving, "hedge"),
                Err(err) => {
                    count_error(&second.configured, &err);
                    failed.1 = true;
                }
            },
        }
        if let (Some(err), true) = &failed {
            metrics::counter!(crate::metrics::HEDGES, "model" => route.configured.clone(), "won" => "neither")
                .increment(1);
            return Err(err.clone());
        }
    }
}

/// What follows `err`, the failure of try number `attempt` (from 0), by
/// its class (section 17).
fn after(err: &UpstreamError, attempt: u32) -> After {
    // Exhaustive on purpose: a new kind of failure must be decided here.
    let retry_after = match err {
        UpstreamError::Status {
            status,
            retry_after,
            ..
        } => {
            if !(*status == 429 || *status == 529 || *status >= 500) {
                // A client error (a context length among them): the same
                // request would fail the same way here, perhaps not there.
                return After::Fallback;
            }
            retry_after.map(Duration::from_secs)
        }
        UpstreamError::Transport(_)
        | UpstreamError::ConnectTimeout(_)
        | UpstreamError::Stream(_)
        | UpstreamError::Malformed(_) => None,
        // Silence: asking the same upstream again would wait as long.
        UpstreamError::FirstTokenTimeout(_) => return After::Fallback,
        // Another model would answer what this one refused on policy grounds.
        UpstreamError::ContentPolicy(_) => return After::Answer,
        // The mock's failures were asked for; a prompt past the context
        // length is as long on the next try.
        UpstreamError::MockStatus { .. }
        | UpstreamError::ContextLength(_)
        | UpstreamError::NoRecording(_) => return After::Fallback,
        // Idle needs output first, so it cannot end an attempt before its
        // first token; a total deadline shorter than the first-token one has
        // spent the request's time.
        UpstreamError::IdleTimeout(_) | UpstreamError::TotalTimeout(_) => return After::Fallback,
    };
    let backoff = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    // "Equal jitter": half fixed, half random, so retries spread but never
    // come back immediately.
    let jittered = backoff / 2 + backoff.mul_f64(fastrand::f64() / 2.0);
    match retry_after {
        Some(asked) if asked > RETRY_AFTER_CAP => After::Fallback,
        Some(asked) => After::Retry(asked.max(jittered)),
        None => After::Retry(jittered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> UpstreamError {
        UpstreamError::Status {
            status,
            message: String::new(),
            retry_after,
        }
    }

    #[test]
    fn retryable_failures_wait_a_capped_jittered_backoff() {
        for attempt in 0..20 {
            let After::Retry(wait) = after(&status(503, None), attempt) else {
                panic!("a 503 is retried");
            };
            let full = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(10))
                .min(BACKOFF_CAP);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
        let retried = |err| matches!(after(&err, 0), After::Retry(_));
        assert!(retried(UpstreamError::Transport("refused".into())));
        assert!(retried(status(529, None)));
        assert!(retried(UpstreamError::Malformed("4 bad events".into())));
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_cap() {
        assert_eq!(
            after(&status(429, Some(3)), 0),
            After::Retry(Duration::from_secs(3))
        );
        assert_eq!(after(&status(429, Some(3600)), 0), After::Fallback);
    }

    #[test]
    fn client_errors_silence_and_asked_for_mock_failures_fall_back() {
        assert_eq!(after(&status(400, None), 0), After::Fallback);
        assert_eq!(after(&status(401, None), 0), After::Fallback);
        let silent = UpstreamError::FirstTokenTimeout(Duration::from_secs(1));
        assert_eq!(after(&silent, 0), After::Fallback);
        let mock = UpstreamError::MockStatus {
            status: 503,
            retry_after: None,
        };
        assert_eq!(after(&mock, 0), After::Fallback);
    }

    #[test]
    fn a_content_refusal_is_the_answer() {
        let refused = UpstreamError::ContentPolicy("filtered".into());
        assert_eq!(after(&refused, 0), After::Answer);
    }
}
