//! The relay: from the serving generation to a streaming response body.
//!
//! Two phases:
//! 1. [`start`] waits for the failover's choice (the first event of the
//!    attempt that serves) for at most one heartbeat interval, before any
//!    response is sent. A failure in that window (upstream error, first-token
//!    timeout, the mock's `error_status`) is still an HTTP status with a JSON
//!    body. If the interval passes first, the response starts anyway with a
//!    heartbeat and the body goes on waiting for the same choice; a later
//!    failure becomes an error frame. A client is never left in silence longer
//!    than the heartbeat.
//! 2. [`body`] is one loop: wait for the next event, a timer or the end of
//!    the shutdown grace ([`Step`]), then write what it calls for
//!    ([`write`](fn@write)): one frame per token the moment it arrives, a heartbeat
//!    after every `heartbeat` of silence, and exactly one terminal frame. The
//!    one timer serves both the heartbeat and the idle/total deadlines.
//!
//! Cancellation is ownership: the body owns the generation, hyper owns the
//! body, and when the client goes away hyper drops the body, which drops the
//! generation and closes the upstream connection. Nothing is spawned.

use std::future::Future;
use std::io;
use std::pin::Pin;
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

use super::deadlines::Deadlines;
use super::failover::{self, Serving};
use super::framer::Framer;
use crate::error::ApiError;
use crate::generation::{TokenEvent, TokenStream, UpstreamError};
use crate::limits::StreamPermit;
use crate::observe::{Ended, StreamMeter};

/// The failover's choice, still to come.
pub type Choice = Pin<Box<dyn Future<Output = Result<Serving, UpstreamError>> + Send>>;

/// A generation whose response may begin.
pub struct Started {
    generation: Generation,
    /// How long the generation took to give its first token, when it gave
    /// one within the window: the upstream's own time to first token.
    pub upstream_ttft: Option<Duration>,
    /// The model serving, when known before the response starts.
    pub served_by: Option<String>,
}

/// Waits for `choice`, up to `heartbeat`; a failure in that time is returned
/// as the error response.
pub async fn start(
    choice: impl Future<Output = Result<Serving, UpstreamError>> + Send + 'static,
    heartbeat: Duration,
) -> Result<Started, ApiError> {
    let asked = Instant::now();
    let mut choice: Choice = Box::pin(choice);
    match tokio::time::timeout_at(asked + heartbeat, &mut choice).await {
        Ok(Ok(serving)) => Ok(Started {
            upstream_ttft: matches!(serving.first, TokenEvent::Token(_)).then(|| asked.elapsed()),
            served_by: Some(serving.model.clone()),
            generation: Generation::from(serving),
        }),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Ok(Started {
            generation: Generation::Choosing(choice),
            upstream_ttft: None,
            served_by: None,
        }),
    }
}

/// What a stream's body holds besides its generation and framer.
pub struct StreamContext {
    pub heartbeat: Duration,
    pub meter: StreamMeter,
    /// Fires when the shutdown grace period is over.
    pub shutdown: CancellationToken,
    /// The stream slot, freed when the body ends or is dropped.
    pub permit: Option<StreamPermit>,
}

/// A streaming response: status 200, the framer's content type, the headers
/// that stop caches and proxies from buffering, and the body.
pub fn response(started: Started, mut framer: Box<dyn Framer>, context: StreamContext) -> Response {
    let content_type = framer.content_type();
    if let Some(model) = &started.served_by {
        framer.serving(model);
    }
    let mut response = Response::new(Body::from_stream(body(started, framer, context)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The response body: the generation's frames, as `framer` writes them.
pub fn body(
    started: Started,
    mut framer: Box<dyn Framer>,
    context: StreamContext,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let StreamContext {
        heartbeat,
        mut meter,
        shutdown,
        permit,
    } = context;
    let mut generation = started.generation;
    stream! {
        let _slot = permit;
        let beats = framer.heartbeat().is_some();
        let choosing = matches!(generation, Generation::Choosing(_));
        if let (true, Some(beat)) = (choosing, framer.heartbeat()) {
            yield Ok(beat);
        }
        // One timer and one shutdown registration per stream, not per token:
        // a write only notes the time, and the timer is moved on lazily.
        let mut last_write = Instant::now();
        let timer = sleep_until(generation.next_due(beats.then_some(last_write + heartbeat)));
        tokio::pin!(timer);
        let shutdown = shutdown.cancelled_owned();
        tokio::pin!(shutdown);
        loop {
            let step = tokio::select! {
                next = generation.next() => Step::Event(next),
                () = &mut timer => Step::Timer,
                () = &mut shutdown => Step::Shutdown,
            };
            let event = match step {
                Step::Event(Next::Chosen(event)) => {
                    framer.serving(generation.model());
                    event
                }
                Step::Event(Next::Event(event)) => event,
                Step::Timer => {
                    let now = Instant::now();
                    if let Some(err) = generation.passed(now) {
                        TokenEvent::Error(err)
                    } else {
                        if beats && now >= last_write + heartbeat {
                            if let Some(beat) = framer.heartbeat() {
                                yield Ok(beat);
                            }
                            last_write = now;
                        }
                        timer.as_mut().reset(generation.next_due(beats.then_some(last_write + heartbeat)));
                        continue;
                    }
                }
                Step::Shutdown => {
                    meter.end(Ended::ShuttingDown);
                    yield Ok(framer.error(&ApiError::shutting_down()));
                    if framer.aborts_on_error() {
                        flush_point().await;
                        yield Err(cut("the proxy is shutting down"));
                    }
                    return;
                }
            };
            if let TokenEvent::Error(err) = &event {
                generation.count_error(err);
            }
            let written = write(&mut *framer, &mut meter, event);
            if let Some(frame) = written.frame {
                yield Ok(frame);
                last_write = Instant::now();
            }
            match written.end {
                None => generation.on_output(last_write),
                Some(End::Close) => return,
                Some(End::Abort(why)) => {
                    flush_point().await;
                    yield Err(cut(why));
                    return;
                }
            }
        }
    }
}

/// What woke the body.
enum Step {
    Event(Next),
    /// The heartbeat or a deadline may be due.
    Timer,
    /// The shutdown grace period is over.
    Shutdown,
}

/// An event, and whether it is the first of the attempt just chosen.
enum Next {
    Chosen(TokenEvent),
    Event(TokenEvent),
}

/// The generation a body relays: still being chosen, or serving.
enum Generation {
    Choosing(Choice),
    Serving {
        model: String,
        /// The attempt's first event, until the body takes it.
        first: Option<TokenEvent>,
        rest: TokenStream,
        deadlines: Deadlines,
    },
}

impl From<Serving> for Generation {
    fn from(serving: Serving) -> Generation {
        Generation::Serving {
            model: serving.model,
            first: Some(serving.first),
            rest: serving.rest,
            deadlines: serving.deadlines,
        }
    }
}

impl Generation {
    /// The next event. Cancel-safe: `select!` may drop it half way and call
    /// again, since the choice and the stream keep their own state.
    async fn next(&mut self) -> Next {
        match self {
            Generation::Choosing(choice) => match choice.as_mut().await {
                Ok(serving) => {
                    let mut generation = Generation::from(serving);
                    let first = match &mut generation {
                        Generation::Serving { first, .. } => first.take(),
                        Generation::Choosing(_) => None,
                    };
                    *self = generation;
                    Next::Chosen(first.unwrap_or(TokenEvent::Error(UpstreamError::ended_early())))
                }
                // Counted by the failover already.
                Err(err) => Next::Event(TokenEvent::Error(err)),
            },
            Generation::Serving { first, rest, .. } => {
                let event = match first.take() {
                    Some(first) => Some(first),
                    None => rest.next().await,
                };
                Next::Event(event.unwrap_or(TokenEvent::Error(UpstreamError::ended_early())))
            }
        }
    }

    /// When the timer must next fire: the deadline, or `beat` if sooner.
    fn next_due(&self, beat: Option<Instant>) -> Instant {
        let deadline = match self {
            Generation::Serving { deadlines, .. } => Some(deadlines.due().0),
            Generation::Choosing(_) => None,
        };
        match (deadline, beat) {
            (Some(a), Some(b)) => a.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            // Nothing to wake for: the failover runs its own deadlines.
            (None, None) => Instant::now() + Duration::from_secs(86_400),
        }
    }

    fn passed(&self, now: Instant) -> Option<UpstreamError> {
        match self {
            Generation::Serving { deadlines, .. } => deadlines.passed(now),
            Generation::Choosing(_) => None,
        }
    }

    fn on_output(&mut self, now: Instant) {
        match self {
            Generation::Serving { deadlines, .. } => deadlines.on_output(now),
            Generation::Choosing(_) => {}
        }
    }

    /// Counts a failure of the serving model (the failover counts the ones
    /// before it serves).
    fn count_error(&self, err: &UpstreamError) {
        match self {
            Generation::Serving { model, .. } => failover::count_error(model, err),
            Generation::Choosing(_) => {}
        }
    }

    fn model(&self) -> &str {
        match self {
            Generation::Serving { model, .. } => model,
            Generation::Choosing(_) => "",
        }
    }
}

/// What one event makes the body write.
struct Written {
    frame: Option<Bytes>,
    end: Option<End>,
}

enum End {
    /// The terminal frame is written: end the body.
    Close,
    /// Abort the response, so the client sees a failed transfer.
    Abort(&'static str),
}

/// The frame for `event`, and whether the body ends with it.
fn write(framer: &mut dyn Framer, meter: &mut StreamMeter, event: TokenEvent) -> Written {
    let (frame, end) = match event {
        TokenEvent::Token(token) => {
            meter.token();
            (Some(framer.token(&token)), None)
        }
        TokenEvent::ToolCalls(calls) => (framer.tool_calls(&calls), None),
        TokenEvent::Done(finish) => {
            meter.end(Ended::Done);
            let frame = framer.done(&finish);
            ((!frame.is_empty()).then_some(frame), Some(End::Close))
        }
        TokenEvent::Error(err) => {
            let err = ApiError::from(err);
            meter.end(Ended::Error(err.kind));
            let end = match framer.aborts_on_error() {
                true => End::Abort("the stream failed"),
                false => End::Close,
            };
            (Some(framer.error(&err)), Some(end))
        }
        TokenEvent::Cut => {
            meter.end(Ended::Cut);
            (
                None,
                Some(End::Abort("the mock was asked to drop the connection")),
            )
        }
    };
    Written { frame, end }
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

#[cfg(test)]
mod tests;
