//! One attempt at a generation: a provider's stream, up to its first event
//! within the first-token deadline. The failover makes attempts before the
//! first token, the midstream continuation after it.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::deadlines::Deadlines;
use crate::generation::{GenRequest, TokenEvent, TokenStream, UpstreamError};
use crate::models::ModelRoute;

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
    request: GenRequest,
    mut deadlines: Deadlines,
) -> Result<Attempt, UpstreamError> {
    let mut events = route.provider.generate(request);
    let (due, timeout) = deadlines.due();
    match tokio::time::timeout_at(due, events.next()).await {
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
    }
}

/// Counts an upstream failure of `model` by its kind.
pub fn count_error(model: &str, err: &UpstreamError) {
    metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "model" => model.to_owned(), "kind" => err.kind_name())
        .increment(1);
}
