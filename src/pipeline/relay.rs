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
//! When the generation is a resource (the native door's, contract section 7),
//! the body also appends every frame it writes to the generation's log
//! ([`LogWriter`]), so a reconnect can resume it, and it stops with a
//! `cancelled` done frame when the generation is cancelled (`DELETE`).
//!
//! Cancellation is ownership: the body owns the generation, hyper owns the
//! body, and when the client goes away hyper drops the body, which drops the
//! generation and closes the upstream connection. Nothing is spawned here; a
//! generation that must outlive its client runs this same body in a task of
//! its own (`pipeline::detached`).

use std::future::Future;
use std::io;
use std::time::Duration;

use async_stream::stream;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::failover::{Choice, Serving};
use super::framer::Framer;
use super::source::{Next, Source};
use crate::error::ApiError;
use crate::generation::{FaultEvent, TokenEvent, UpstreamError};
use crate::generations::Entry;
use crate::limits::StreamPermit;
use crate::observe::{Ended, StreamMeter};
use crate::warden::Guard;
pub use write::LogWriter;
use write::{write, End};

/// A generation whose response may begin.
pub struct Started {
    source: Source,
    /// How long the generation took to give its first token, when it gave
    /// one within the window: the upstream's own time to first token.
    pub upstream_ttft: Option<Duration>,
    /// The model serving, when known before the response starts.
    pub served_by: Option<String>,
}

impl Started {
    /// A generation whose choice is still to come, with no window waited
    /// (the detached runner's: it has no status to answer).
    pub fn waiting(choice: Choice) -> Started {
        Started {
            source: Source::Choosing(choice),
            upstream_ttft: None,
            served_by: None,
        }
    }
}

/// Waits for `choice`, up to `heartbeat`; a failure in that time, or the
/// end of the shutdown grace, is returned as the error response.
pub async fn start(
    choice: impl Future<Output = Result<Serving, UpstreamError>> + Send + 'static,
    heartbeat: Duration,
    shutdown: &CancellationToken,
) -> Result<Started, ApiError> {
    let asked = Instant::now();
    let mut choice: Choice = Box::pin(choice);
    let waited = tokio::select! {
        waited = tokio::time::timeout_at(asked + heartbeat, &mut choice) => waited,
        // The grace period ended before the response began: a real 503,
        // not a connection dropped with no reply.
        () = shutdown.cancelled() => return Err(ApiError::shutting_down()),
    };
    match waited {
        // The mock's `hang` and `reset` faults: no response until the
        // client gives up (the handler is dropped), `total_ms` passes or
        // the grace ends; a reset drops the handler at once.
        Ok(Ok(Serving {
            first: TokenEvent::Fault(fault @ (FaultEvent::Hang | FaultEvent::Reset)),
            deadlines,
            ..
        })) => {
            if fault == FaultEvent::Reset {
                crate::warden::cut_here();
            }
            let (total, err) = deadlines.total();
            tokio::select! {
                () = tokio::time::sleep_until(total) => Err(err.into()),
                () = shutdown.cancelled() => Err(ApiError::shutting_down()),
            }
        }
        Ok(Ok(serving)) => Ok(Started {
            upstream_ttft: matches!(serving.first, TokenEvent::Token(_)).then(|| asked.elapsed()),
            served_by: Some(serving.model.clone()),
            source: Source::from(serving),
        }),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Ok(Started {
            source: Source::Choosing(choice),
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
    /// The generation's log, when the generation is a resource.
    pub log: Option<LogWriter>,
}

/// A streaming response: status 200, the framer's content type, the headers
/// that stop caches and proxies from buffering, and the body, which the
/// warden ends from outside should its client stop reading while it is due
/// (stopped, past a deadline, or blocked for `send_timeout_ms`).
pub fn response(started: Started, mut framer: Box<dyn Framer>, context: StreamContext) -> Response {
    let content_type = framer.content_type();
    let mut context = context;
    if let Some(model) = &started.served_by {
        framer.serving(model);
        context.meter.serving(model);
    }
    let guard = Guard::here(stop_of(&context));
    // Due before the body is first polled: hyper may never poll it (a zero
    // HTTP/2 window).
    guard.due(started.source.next_due(None));
    let body = guard.clone().watch(body(started, framer, context, guard));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What ends a body early: its generation's cancel when it has a log (a
/// generation's stop token is a child of the shutdown one, see
/// `Generations::create`), else the end of the shutdown grace.
fn stop_of(context: &StreamContext) -> CancellationToken {
    context
        .log
        .as_ref()
        .map_or_else(|| context.shutdown.clone(), |l| l.log.stopping())
}

/// The response body: the generation's frames, as `framer` writes them;
/// `guard` is told each deadline the body will keep.
pub fn body(
    started: Started,
    mut framer: Box<dyn Framer>,
    context: StreamContext,
    guard: Guard,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let stop = stop_of(&context);
    let StreamContext {
        heartbeat,
        mut meter,
        shutdown,
        permit,
        mut log,
    } = context;
    let mut source = started.source;
    // The generation's pause gate (section 14), when it is one.
    let gated = log.as_ref().map(|writer| writer.log.clone());
    // One registration serves both the generation's stop and the shutdown
    // (see `stop_of`): polling a second one on every token cost ~300
    // instructions per token (callgrind, benches/instructions.sh).
    stream! {
        let _slot = permit;
        // Sent with the first frame, not as a write of its own.
        let mut opening = framer.preamble();
        let beats = framer.heartbeat().is_some();
        let choosing = matches!(source, Source::Choosing(_));
        if let (false, Some(log)) = (choosing, &log) {
            log.log.serving(source.model());
        }
        if let (true, Some(beat)) = (choosing, framer.heartbeat()) {
            yield Ok(opened(&mut opening, beat));
        }
        // One timer and one shutdown registration per stream, not per token:
        // a write only notes the time, and the timer is moved on lazily.
        let mut last_write = Instant::now();
        let timer = sleep_until(source.next_due(beats.then_some(last_write + heartbeat)));
        tokio::pin!(timer);
        let stopped = stop.clone().cancelled_owned();
        tokio::pin!(stopped);
        // Whether `stopped` and `timer` hold this task's waker: then each is
        // polled only once fired (`armed`; polling the `Notified` per event
        // cost ~400 instructions a token). A timer wake renews the stop's,
        // and every reset the timer's.
        let (mut stop_armed, mut timer_armed) = (false, false);
        loop {
            // A paused generation (section 14) takes no event until its gate
            // opens. Off the per-token path: an atomic load when there is a
            // gate, nothing when there is none.
            let paused = gated.as_deref().filter(|log| !log.gate().open());
            let step = match paused {
                None => {
                    // In this order, so neither a stop nor a deadline waits
                    // behind an upstream that always has the next event ready
                    // (and no random start, which `select!` otherwise draws
                    // per poll).
                    tokio::select! {
                        biased;
                        () = armed::stopped(stopped.as_mut(), stop_armed, || stop.is_cancelled()) => Step::stopped(&shutdown),
                        () = armed::fired(timer.as_mut(), timer_armed) => Step::Timer,
                        next = source.next() => Step::Event(next),
                    }
                }
                Some(log) => {
                    // Made before the gate is read again, so no change
                    // between the two is missed.
                    let changed = log.gate().changed();
                    if log.gate().open() {
                        continue;
                    }
                    tokio::select! {
                        biased;
                        () = armed::stopped(stopped.as_mut(), stop_armed, || stop.is_cancelled()) => Step::stopped(&shutdown),
                        () = armed::fired(timer.as_mut(), timer_armed) => Step::Timer,
                        () = changed => Step::Gate,
                    }
                }
            };
            let flowing = paused.is_none();
            stop_armed = !matches!(step, Step::Timer);
            // The biased order polled the timer before the event or the gate.
            timer_armed = match step {
                Step::Event(_) | Step::Gate => true,
                Step::Timer => false,
                Step::Shutdown | Step::Cancelled => timer_armed,
            };
            let event = match step {
                Step::Event(Next::Chosen) => {
                    framer.serving(source.model());
                    meter.serving(source.model());
                    if let Some(log) = &log {
                        log.log.serving(source.model());
                    }
                    // The attempt's own deadlines apply from here.
                    timer.as_mut().reset(source.next_due(beats.then_some(last_write + heartbeat)));
                    timer_armed = false;
                    guard.due(source.next_due(None));
                    continue;
                }
                Step::Event(Next::Event(event)) => event,
                Step::Gate => continue,
                Step::Timer => {
                    let now = Instant::now();
                    // Paused time does not count toward `idle_ms` (it does
                    // toward `total_ms`).
                    if !flowing {
                        source.on_output(now);
                    }
                    if let Some(err) = source.passed(now) {
                        TokenEvent::Error(err)
                    } else {
                        if beats && now >= last_write + heartbeat {
                            if let Some(beat) = framer.heartbeat() {
                                yield Ok(opened(&mut opening, beat));
                            }
                            last_write = now;
                        }
                        timer.as_mut().reset(source.next_due(beats.then_some(last_write + heartbeat)));
                        timer_armed = false;
                        guard.due(source.next_due(None));
                        continue;
                    }
                }
                Step::Shutdown => {
                    meter.end(Ended::ShuttingDown);
                    let err = ApiError::shutting_down();
                    yield Ok(opened(&mut opening, framer.error(&err)));
                    if let Some(log) = &mut log {
                        log.append(Entry::Error(err));
                    }
                    if framer.aborts_on_error() {
                        flush_point().await;
                        yield Err(cut("the proxy is shutting down"));
                    }
                    return;
                }
                Step::Cancelled => {
                    meter.end(Ended::Cancelled);
                    if let Some(log) = &mut log {
                        let finish = log.cancelled();
                        let frame = framer.done(&finish);
                        log.append(Entry::Done(finish));
                        if !frame.is_empty() {
                            yield Ok(opened(&mut opening, frame));
                        }
                    }
                    return;
                }
            };
            if let TokenEvent::Error(err) = &event {
                source.count_error(err);
            }
            let written = write(&mut *framer, &mut meter, log.as_mut(), event);
            if let Some(frame) = written.frame {
                yield Ok(opened(&mut opening, frame));
                last_write = Instant::now();
            }
            if let Some(log) = &gated {
                log.gate().passed();
            }
            match written.end {
                None => {
                    source.on_output(last_write);
                    guard.due(source.next_due(None));
                }
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
    /// The generation was cancelled (`DELETE`, or abandoned).
    Cancelled,
    /// Its pause gate changed (section 14).
    Gate,
}

impl Step {
    /// What the body's stop having fired means: the end of the shutdown
    /// grace, or the generation cancelled.
    fn stopped(shutdown: &CancellationToken) -> Step {
        match shutdown.is_cancelled() {
            true => Step::Shutdown,
            false => Step::Cancelled,
        }
    }
}

/// `frame`, after the body's opening (the framer's preamble) if it has not
/// gone out yet.
pub(crate) fn opened(opening: &mut Option<Bytes>, frame: Bytes) -> Bytes {
    match opening.take() {
        None => frame,
        Some(opening) => {
            let mut both = Vec::with_capacity(opening.len() + frame.len());
            both.extend_from_slice(&opening);
            both.extend_from_slice(&frame);
            Bytes::from(both)
        }
    }
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

mod armed;
mod write;

#[cfg(test)]
mod tests;
