//! One attempt at a generation: a provider's stream, up to its first event
//! within the first-token deadline. The failover makes attempts before the
//! first token, the midstream continuation after it.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::deadlines::Deadlines;
use crate::generation::{GenRequest, TokenEvent, TokenStream, UpstreamError};
use crate::models::ModelRoute;
use crate::telemetry;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;

/// An attempt that gave its first event.
pub struct Attempt {
    /// The configured model that gave it.
    pub model: String,
    /// An output, or a terminal event if it had no output.
    pub first: TokenEvent,
    /// The events after the first; dropping them cancels the upstream.
    pub rest: TokenStream,
    /// The attempt's deadlines, its first output already noted.
    pub deadlines: Deadlines,
}

/// One attempt: the provider's first event within the first-token deadline
/// of `deadlines`.
pub async fn try_once(
    route: &ModelRoute,
    mut request: GenRequest,
    mut deadlines: Deadlines,
) -> Result<Attempt, UpstreamError> {
    // A span of its own under the request's, when tracing is on: it ends
    // with the attempt's first event (or its failure, or its cancellation,
    // when a hedge or the client drops it), and its context goes upstream.
    let mut span = AttemptSpan(telemetry::child_span(
        format!("attempt {}", route.name),
        vec![
            KeyValue::new("gen_ai.request.model", route.name.clone()),
            KeyValue::new("sluice.route", route.configured.clone()),
            KeyValue::new("gen_ai.provider.name", telemetry::provider_name(route.kind)),
        ],
    ));
    request.traceparent = span.0.as_ref().and_then(telemetry::traceparent);
    let mut events = route.provider.generate(request);
    let (due, timeout) = deadlines.due();
    let tried = match tokio::time::timeout_at(due, events.next()).await {
        Ok(Some(TokenEvent::Error(err))) => Err(err),
        Ok(Some(first)) => {
            deadlines.on_output(Instant::now());
            Ok(Attempt {
                model: route.name.clone(),
                first,
                rest: events,
                deadlines,
            })
        }
        Ok(None) => Err(UpstreamError::ended_early()),
        // Dropping `events` cancels the attempt's upstream request.
        Err(_) => Err(timeout),
    };
    span.end(&tried);
    tried
}

/// An attempt's span: ended with its outcome, or as `cancelled` when the
/// attempt is dropped first (a hedge's loser, a client gone).
struct AttemptSpan(Option<opentelemetry::Context>);

impl AttemptSpan {
    fn end(&mut self, tried: &Result<Attempt, UpstreamError>) {
        let Some(cx) = self.0.take() else { return };
        let span = cx.span();
        match tried {
            Ok(_) => span.set_attribute(KeyValue::new("sluice.attempt.outcome", "served")),
            Err(err) => {
                span.set_attribute(KeyValue::new("sluice.attempt.outcome", "failed"));
                span.set_attribute(KeyValue::new("error.type", err.kind_name()));
                span.set_status(opentelemetry::trace::Status::error(err.to_string()));
            }
        }
        span.end();
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            cx.span()
                .set_attribute(KeyValue::new("sluice.attempt.outcome", "cancelled"));
            cx.span().end();
        }
    }
}

/// Counts an upstream failure of `model` by its kind.
pub fn count_error(model: &str, err: &UpstreamError) {
    metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "model" => model.to_owned(), "kind" => err.kind_name())
        .increment(1);
}
