//! A response that watches a generation's log: the frames after a given
//! index, then live ones as they are appended, with heartbeats in silences,
//! until the terminal frame. Any number of views may watch one generation;
//! they all frame the same entries with the same `GEN:N` ids.
//!
//! A view is not the generation: dropping it stops nothing (the generation's
//! runner decides, by its own lifetime rules).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_stream::stream;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::frames::{Format, NativeFrames};
use crate::error::ApiError;
use crate::generations::{Entry, Log, Watching};
use crate::pipeline::framer::Framer;
use crate::pipeline::relay::opened;
use crate::warden::Guard;

/// The header naming the generation a native response carries.
pub const GENERATION: &str = "x-sluice-generation";

/// A streaming response of `log`'s frames after index `after` (from the
/// first when `None`).
pub fn watch(
    log: Arc<Log>,
    after: Option<u64>,
    format: Format,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> Response {
    let first = after.map_or(0, |n| n.saturating_add(1));
    let framer = NativeFrames::of_generation(format, log.model(), log.id().as_str(), first);
    let id = log.id().to_string();
    // A watcher whose client stops reading is ended from outside once it
    // has been blocked for `send_timeout_ms`, or at the shutdown.
    let guard = Guard::here(shutdown.clone());
    let body = guard.watch(frames(log, after, framer, heartbeat, shutdown));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    with_generation(response, &id)
}

/// Names the generation in the response's `X-Sluice-Generation` header.
pub fn with_generation(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(GENERATION, value);
    }
    response
}

fn frames(
    log: Arc<Log>,
    mut after: Option<u64>,
    mut framer: NativeFrames,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send {
    stream! {
        let _watching = Watching::new(log.clone());
        let mut opening = framer.preamble();
        let beats = framer.heartbeat().is_some();
        let mut last_write = Instant::now();
        // One timer per view, moved on lazily, as in the relay.
        let quiet = sleep_until(last_write + heartbeat);
        tokio::pin!(quiet);
        let shutdown = shutdown.cancelled_owned();
        tokio::pin!(shutdown);
        loop {
            // Registered before the read, so nothing appended between the
            // two is missed.
            let changed = log.changed();
            let read = match log.read(after) {
                Ok(read) => read,
                Err(gone) => {
                    let err = ApiError::not_found(
                        "after",
                        format!(
                            "this watcher fell behind: the log now starts at frame {} (streams.max_log_bytes)",
                            gone.first_kept
                        ),
                    );
                    // No id: the frame is not one of the log's, and a client
                    // that kept its id would resume from a frame it never had.
                    yield Ok(opened(&mut opening, framer.unnumbered_error(&err)));
                    return;
                }
            };
            let (count, ended, more) = (read.entries.len() as u64, read.ended, read.more);
            for entry in read.entries {
                let aborts = matches!(entry, Entry::Error(_)) && framer.aborts_on_error();
                let frame = match entry {
                    Entry::Token(text) => framer.token(&text),
                    Entry::Reasoning(text) => framer.reasoning(&text),
                    Entry::Done(finish) => {
                        framer.serving(&log.model());
                        framer.done(&finish)
                    }
                    Entry::Error(err) => framer.error(&err),
                };
                if !frame.is_empty() {
                    yield Ok(opened(&mut opening, frame));
                }
                if aborts {
                    tokio::task::yield_now().await;
                    yield Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the stream failed"));
                    return;
                }
                last_write = Instant::now();
            }
            if count > 0 {
                after = Some(read.first + count - 1);
            }
            if ended {
                return;
            }
            if more {
                continue;
            }
            tokio::select! {
                () = changed => {}
                () = &mut quiet, if beats => {
                    if Instant::now() >= last_write + heartbeat {
                        if let Some(beat) = framer.heartbeat() {
                            yield Ok(opened(&mut opening, beat));
                        }
                        last_write = Instant::now();
                    }
                    quiet.as_mut().reset(last_write + heartbeat);
                }
                () = &mut shutdown => {
                    yield Ok(opened(&mut opening, framer.error(&ApiError::shutting_down())));
                    return;
                }
            }
        }
    }
}
