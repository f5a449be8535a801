//! The relay: from a generation's token events to an HTTP response body.
//!
//! Two phases:
//! 1. [`start`] waits for the generation's first event, for at most one
//!    heartbeat interval, before any response is sent. A failure in that window
//!    (upstream error, first-token timeout, the mock's `error_status`) is still
//!    an HTTP status with a JSON body. If the interval passes with nothing, the
//!    response starts anyway with a heartbeat, and a later failure becomes an
//!    error frame: a client is never left in silence longer than the heartbeat.
//! 2. [`body`] writes each event the moment it arrives, one frame per token, no
//!    batching, with a heartbeat after every `heartbeat` of silence, and ends
//!    after exactly one terminal frame.
//!
//! When the shutdown grace period runs out, a stream still running ends with
//! an `event: error` of type `shutting_down`.
//!
//! Cancellation is ownership: the body stream owns the generation, hyper owns
//! the body, and when the client goes away hyper drops the body, which drops
//! the generation and closes the upstream connection. Nothing is spawned.

use std::io;
use std::time::Duration;

use async_stream::stream;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{sleep_until, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorKind};
use crate::frame::Framer;
use crate::generation::{TokenEvent, TokenStream};
use crate::observe::{Ended, StreamMeter};
use crate::providers::UpstreamError;

/// A generation whose response may begin.
pub struct Started {
    /// The first event, or `None` when the heartbeat interval passed first.
    first: Option<TokenEvent>,
    rest: TokenStream,
    /// How long the generation took to give its first token, when it gave
    /// one within the window: the upstream's own time to first token.
    pub upstream_ttft: Option<Duration>,
    /// The model serving, when known before the response starts.
    pub served_by: Option<String>,
}

/// Waits for the first event, up to `heartbeat`; an error in that time is
/// returned as the error response.
pub async fn start(mut events: TokenStream, heartbeat: Duration) -> Result<Started, ApiError> {
    let asked = Instant::now();
    let deadline = asked + heartbeat;
    let mut served_by = None;
    let first = loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(TokenEvent::Serving(model))) => served_by = Some(model),
            Ok(Some(TokenEvent::Error(err))) => return Err(err.into()),
            Ok(Some(event)) => break Some(event),
            Ok(None) => return Err(ended_early()),
            Err(_) => break None,
        }
    };
    let upstream_ttft = matches!(first, Some(TokenEvent::Token(_))).then(|| asked.elapsed());
    Ok(Started {
        first,
        rest: events,
        upstream_ttft,
        served_by,
    })
}

/// What a stream's body needs besides its events and framer.
pub struct Relay {
    pub heartbeat: Duration,
    pub meter: StreamMeter,
    /// Fires when the shutdown grace period is over.
    pub shutdown: CancellationToken,
}

/// A streaming response: status 200, the framer's content type, the headers
/// that stop caches and proxies from buffering, and the body.
pub fn response(started: Started, mut framer: impl Framer, relay: Relay) -> Response {
    let content_type = framer.content_type();
    if let Some(model) = &started.served_by {
        framer.serving(model);
    }
    let mut response = Response::new(Body::from_stream(body(started, framer, relay)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The header naming the model that served (a fallback, perhaps).
pub const SERVED_BY: &str = "x-sluice-model";

/// Names the model that serves in a header (known before the response
/// starts unless the first token took longer than a heartbeat).
pub fn with_served_by(mut response: Response, model: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(model) {
        response.headers_mut().insert(SERVED_BY, value);
    }
    response
}

/// The response body: the generation's frames, as `framer` writes them.
pub fn body(
    started: Started,
    mut framer: impl Framer,
    relay: Relay,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let Started {
        first, mut rest, ..
    } = started;
    let Relay {
        heartbeat,
        mut meter,
        shutdown,
    } = relay;
    stream! {
        let mut pending = match first {
            Some(event) => Some(event),
            None => {
                if let Some(beat) = framer.heartbeat() {
                    yield Ok(beat);
                }
                None
            }
        };
        let beats = framer.heartbeat().is_some();
        // One timer and one shutdown registration per stream, not per token:
        // a write only notes the time, and the timer is moved on lazily.
        let mut last_write = Instant::now();
        let quiet = sleep_until(last_write + heartbeat);
        tokio::pin!(quiet);
        let shutdown = shutdown.cancelled_owned();
        tokio::pin!(shutdown);
        loop {
            let event = match pending.take() {
                Some(event) => event,
                None => {
                    tokio::select! {
                        event = rest.next() => event.unwrap_or_else(|| TokenEvent::Error(ended_early_upstream())),
                        () = &mut quiet, if beats => {
                            if Instant::now() >= last_write + heartbeat {
                                if let Some(beat) = framer.heartbeat() {
                                    yield Ok(beat);
                                }
                                last_write = Instant::now();
                            }
                            quiet.as_mut().reset(last_write + heartbeat);
                            continue;
                        }
                        () = &mut shutdown => {
                            meter.end(Ended::ShuttingDown);
                            yield Ok(framer.error(&shutting_down()));
                            if framer.aborts_on_error() {
                                flush_point().await;
                                yield Err(cut("the proxy is shutting down"));
                            }
                            return;
                        }
                    }
                }
            };
            match event {
                TokenEvent::Token(token) => {
                    meter.token();
                    yield Ok(framer.token(&token));
                    last_write = Instant::now();
                }
                TokenEvent::ToolCalls(calls) => {
                    if let Some(frame) = framer.tool_calls(&calls) {
                        yield Ok(frame);
                        last_write = Instant::now();
                    }
                }
                TokenEvent::Done(finish) => {
                    meter.end(Ended::Done);
                    let frame = framer.done(&finish);
                    if !frame.is_empty() {
                        yield Ok(frame);
                    }
                    return;
                }
                TokenEvent::Error(err) => {
                    let err = ApiError::from(err);
                    meter.end(Ended::Error(err.kind));
                    yield Ok(framer.error(&err));
                    if framer.aborts_on_error() {
                        flush_point().await;
                        yield Err(cut("the stream failed"));
                    }
                    return;
                }
                TokenEvent::Serving(model) => framer.serving(&model),
                TokenEvent::Cut => {
                    meter.end(Ended::Cut);
                    flush_point().await;
                    yield Err(cut("the mock was asked to drop the connection"));
                    return;
                }
            }
        }
    }
}

/// The error that ends streams still running when the grace period is over.
pub fn shutting_down() -> ApiError {
    ApiError::new(
        ErrorKind::ShuttingDown,
        "the proxy is shutting down and the grace period for streams in flight is over",
    )
}

/// Returns `Pending` once. hyper flushes its write buffer whenever the body
/// is pending, but on a body error it closes the connection without flushing:
/// without this, frames written just before a cut would be lost.
async fn flush_point() {
    tokio::task::yield_now().await;
}

/// An error from the body stream makes hyper abort the response: the client
/// sees the connection close without the chunked terminator.
fn cut(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_owned())
}

fn ended_early() -> ApiError {
    ApiError::from(ended_early_upstream())
}

/// A provider broke the "exactly one terminal event" rule.
fn ended_early_upstream() -> UpstreamError {
    UpstreamError::Stream("the generation ended without finishing".into())
}
