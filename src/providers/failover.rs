//! Retries and fallbacks, before the first token only.
//!
//! A generation tries its model, retrying it up to `retries` times when the
//! failure is one a retry can fix (a connect error, a 5xx, a 429 or 529, a
//! first-token timeout, an error event before any token), waiting a capped
//! exponential backoff with jitter, or the upstream's `Retry-After` when it is
//! longer. When the model is out of tries, its `fallbacks` are tried in order,
//! each with its own retries. Every failed attempt is logged with its reason.
//!
//! The moment an attempt yields its first output, the failover layer sends a
//! `Serving` event naming the model and then only forwards: after the first
//! token nothing is retried, because the client already has bytes from that
//! model. Each attempt runs under its own deadlines (`timeouts::guard`).

use std::sync::Arc;
use std::time::Duration;

use async_stream::stream;
use futures_util::StreamExt;

use super::{Models, Route, UpstreamError};
use crate::config::Timeouts;
use crate::error::ApiError;
use crate::generation::{GenRequest, TokenEvent, TokenStream};
use crate::timeouts;

const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A `Retry-After` longer than this is not waited for: the next model is tried.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// Runs `request` on `route`, with its retries and fallbacks.
pub fn generate(
    models: &Models,
    route: &Arc<Route>,
    request: GenRequest,
    limits: &Timeouts,
) -> TokenStream {
    let chain = models.chain(route);
    let limits = limits.clone();
    Box::pin(stream! {
        // Kept for the attempts after this one; freed once one serves, since
        // nothing is retried after the first token (a long stream should not
        // hold a copy of its conversation for nothing).
        let mut request = Some(request);
        let mut last_error = None;
        for (position, route) in chain.iter().enumerate() {
            for attempt in 0..=route.retries {
                let last_try = attempt == route.retries && position + 1 == chain.len();
                let this_try = match (&mut request, last_try) {
                    (Some(_), true) => request.take(),
                    (Some(request), false) => Some(request.clone()),
                    (None, _) => None,
                };
                let Some(this_try) = this_try else { break };
                let mut events = attempt_on(route, this_try, &limits);
                let first = events.next().await;
                let err = match first {
                    Some(TokenEvent::Error(err)) => err,
                    Some(event) => {
                        drop(request.take());
                        yield TokenEvent::Serving(route.name.clone());
                        let terminal = event.is_terminal();
                        yield event;
                        if !terminal {
                            while let Some(event) = events.next().await {
                                yield event;
                            }
                        }
                        return;
                    }
                    None => UpstreamError::Stream("the generation ended without finishing".into()),
                };
                let wait = (attempt < route.retries).then(|| retry_wait(&err, attempt)).flatten();
                let reason = ApiError::from(err.clone()).message;
                match (wait, chain.get(position + 1)) {
                    (Some(wait), _) => tracing::warn!(
                        model = %route.name, attempt = attempt + 1, reason = %reason,
                        "upstream failed before its first token; retrying in {} ms", wait.as_millis()
                    ),
                    (None, Some(next)) => tracing::warn!(
                        model = %route.name, attempt = attempt + 1, reason = %reason,
                        "upstream failed before its first token; falling back to {}", next.name
                    ),
                    (None, None) => tracing::warn!(
                        model = %route.name, attempt = attempt + 1, reason = %reason,
                        "upstream failed before its first token; no retry or fallback left"
                    ),
                }
                last_error = Some(err);
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => break,
                }
            }
        }
        yield TokenEvent::Error(last_error.unwrap_or_else(|| UpstreamError::Stream("no model to try".into())));
    })
}

/// One attempt on one route: its provider under the deadlines, with its
/// failures counted by kind.
fn attempt_on(route: &Route, request: GenRequest, limits: &Timeouts) -> TokenStream {
    let model = route.name.clone();
    let events = timeouts::guard(route.provider.generate(request), limits);
    Box::pin(events.inspect(move |event| {
        if let TokenEvent::Error(err) = event {
            metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "model" => model.clone(), "kind" => err.kind_name())
                .increment(1);
        }
    }))
}

/// How long to wait before retrying after `err`, or `None` if a retry of the
/// same model cannot help (or the upstream asks for a wait past the cap).
fn retry_wait(err: &UpstreamError, attempt: u32) -> Option<Duration> {
    let retry_after = match err {
        UpstreamError::Status {
            status,
            retry_after,
            ..
        } if *status == 429 || *status == 529 || *status >= 500 => {
            retry_after.map(Duration::from_secs)
        }
        UpstreamError::Transport(_)
        | UpstreamError::ConnectTimeout(_)
        | UpstreamError::FirstTokenTimeout(_)
        | UpstreamError::Stream(_) => None,
        // Client errors, and the mock's failures, which were asked for.
        _ => return None,
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
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
        };
        assert_eq!(retry_wait(&mock, 0), None);
    }
}
