//! Retries and fallbacks, before the first token only: which attempt serves.
//!
//! A generation tries its model, retrying it up to `retries` times when the
//! failure is one a retry can fix (a connect error, a 5xx, a 429 or 529, a
//! first-token timeout, an error event before any token), waiting a capped
//! exponential backoff with jitter, or the upstream's `Retry-After` when it is
//! longer. When the model is out of tries, its `fallbacks` are tried in order,
//! each with its own retries. Every failed attempt is logged with its reason
//! and counted by kind.
//!
//! [`choose`] returns at the first attempt that yields anything but an error:
//! after that nothing is retried, because the client is about to get bytes
//! from that model. It hands the attempt over as a [`Serving`], with the
//! attempt's own deadlines (each attempt has its own first-token window),
//! for the relay or the collector to drive to its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::deadlines::Deadlines;
use crate::config::Timeouts;
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
}

/// Runs `request` on the models of `chain` (a route and its fallbacks, from
/// `ModelTable::chain`), with their retries, until one attempt starts to
/// serve; the last failure when none does.
pub async fn choose(
    chain: Vec<Arc<ModelRoute>>,
    request: GenRequest,
    timeouts: Timeouts,
) -> Result<Serving, UpstreamError> {
    // Kept for the attempts after this one, and given to the last one, so a
    // long stream does not hold a copy of its conversation for nothing.
    let mut request = Some(request);
    let mut last_error = UpstreamError::Stream("no model to try".into());
    for (position, route) in chain.iter().enumerate() {
        for attempt in 0..=route.retries {
            let last_try = attempt == route.retries && position + 1 == chain.len();
            let this_try = match (&request, last_try) {
                (Some(_), true) => request.take(),
                (Some(request), false) => Some(request.clone()),
                (None, _) => None,
            };
            let Some(this_try) = this_try else { break };
            let err = match try_once(route, this_try, &timeouts).await {
                Ok(serving) => return Ok(serving),
                Err(err) => err,
            };
            count_error(&route.configured, &err);
            let wait = (attempt < route.retries)
                .then(|| retry_wait(&err, attempt))
                .flatten();
            let then = match (wait, chain.get(position + 1)) {
                (Some(wait), _) => format!("retrying in {} ms", wait.as_millis()),
                (None, Some(next)) => format!("falling back to {}", next.name),
                (None, None) => "no retry or fallback left".to_owned(),
            };
            tracing::warn!(
                model = %route.name, attempt = attempt + 1, reason = %err,
                "upstream failed before its first token; {then}"
            );
            last_error = err;
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
    }
    Err(last_error)
}

/// One attempt: the provider's first event within the first-token deadline.
async fn try_once(
    route: &ModelRoute,
    request: GenRequest,
    timeouts: &Timeouts,
) -> Result<Serving, UpstreamError> {
    let mut deadlines = Deadlines::new(timeouts, Instant::now());
    let mut events = route.provider.generate(request);
    let (due, timeout) = deadlines.due();
    match tokio::time::timeout_at(due, events.next()).await {
        Ok(Some(TokenEvent::Error(err))) => Err(err),
        Ok(Some(first)) => {
            deadlines.on_output(Instant::now());
            Ok(Serving {
                model: route.name.clone(),
                first,
                rest: events,
                deadlines,
            })
        }
        Ok(None) => Err(UpstreamError::ended_early()),
        // Dropping `events` cancels the attempt's upstream request.
        Err(_) => Err(timeout),
    }
}

/// Counts an upstream failure of `model` by its kind.
pub fn count_error(model: &str, err: &UpstreamError) {
    metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "model" => model.to_owned(), "kind" => err.kind_name())
        .increment(1);
}

/// How long to wait before retrying after `err`, or `None` if a retry of the
/// same model cannot help (or the upstream asks for a wait past the cap).
fn retry_wait(err: &UpstreamError, attempt: u32) -> Option<Duration> {
    // Exhaustive on purpose: a new kind of failure must be decided here.
    let retry_after = match err {
        UpstreamError::Status {
            status,
            retry_after,
            ..
        } => {
            if !(*status == 429 || *status == 529 || *status >= 500) {
                // A client error: the same request would fail the same way.
                return None;
            }
            retry_after.map(Duration::from_secs)
        }
        UpstreamError::Transport(_)
        | UpstreamError::ConnectTimeout(_)
        | UpstreamError::FirstTokenTimeout(_)
        | UpstreamError::Stream(_) => None,
        // The mock's failures were asked for; a prompt past the context
        // length is as long on the next try.
        UpstreamError::MockStatus { .. }
        | UpstreamError::ContextLength(_)
        | UpstreamError::NoRecording(_) => return None,
        // Idle needs output first, so it cannot end an attempt before its
        // first token; a total deadline shorter than the first-token one has
        // spent the request's time.
        UpstreamError::IdleTimeout(_) | UpstreamError::TotalTimeout(_) => return None,
    };
    let backoff = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    // "Equal jitter": half fixed, half random, so retries spread but never
    // come back immediately.
    let jittered = backoff / 2 + backoff.mul_f64(fastrand::f64() / 2.0);
    match retry_after {
        Some(asked) if asked > RETRY_AFTER_CAP => None,
        Some(asked) => Some(asked.max(jittered)),
        None => Some(jittered),
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
            let wait = retry_wait(&status(503, None), attempt).unwrap();
            let full = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(10))
                .min(BACKOFF_CAP);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
        assert!(retry_wait(&UpstreamError::Transport("refused".into()), 0).is_some());
        assert!(retry_wait(&status(529, None), 0).is_some());
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_cap() {
        assert_eq!(
            retry_wait(&status(429, Some(3)), 0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_wait(&status(429, Some(3600)), 0), None);
    }

    #[test]
    fn client_errors_and_asked_for_mock_failures_are_not_retried() {
        assert_eq!(retry_wait(&status(400, None), 0), None);
        assert_eq!(retry_wait(&status(401, None), 0), None);
        let mock = UpstreamError::MockStatus {
            status: 503,
            retry_after: None,
        };
        assert_eq!(retry_wait(&mock, 0), None);
    }
}
