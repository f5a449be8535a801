//! A response that watches a generation's log: the frames after a given
//! index, then live ones as they are appended, with heartbeats in silences,
//! until the terminal frame, framed by any door's [`Framer`]. Any number of
//! views may watch one generation, each in its own format.
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

use crate::error::ApiError;
use crate::generations::{Entry, Log, Watching};
use crate::pipeline::framer::Framer;
use crate::pipeline::relay::opened;
use crate::warden::Guard;

/// A streaming response of `log`'s frames after index `after` (from the
/// first when `None`), written by `framer`.
pub fn watch(
    log: Arc<Log>,
    after: Option<u64>,
    framer: Box<dyn Framer>,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> Response {
    let content_type = framer.content_type();
    // A watcher whose client stops reading is ended from outside once it
    // has been blocked for `send_timeout_ms`, or at the shutdown.
    let guard = Guard::here(shutdown.clone());
    let body = guard.watch(frames(log, after, framer, heartbeat, shutdown));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One entry's frame (empty when the format does not carry it).
fn frame_of(framer: &mut dyn Framer, log: &Log, entry: Entry) -> bytes::Bytes {
    match entry {
        Entry::Token(text) => framer.token(&text),
        Entry::Reasoning(text) => framer.reasoning(&text),
        Entry::ToolCalls(calls) => framer.tool_calls(&calls).unwrap_or_default(),
        Entry::Signature(signature) => framer.signature(&signature).unwrap_or_default(),
        Entry::Malformed => framer.malformed(),
        Entry::Continued(seam) => framer.continued(&seam),
        Entry::Done(finish) => {
            framer.serving(&log.model());
            framer.done(&finish)
        }
        Entry::Error(err) => framer.error(&err),
    }
}

fn frames(
    log: Arc<Log>,
    mut after: Option<u64>,
    mut framer: Box<dyn Framer>,
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
                    yield Ok(opened(&mut opening, framer.outside_error(&err)));
                    return;
                }
            };
            let (count, ended, more) = (read.entries.len() as u64, read.ended, read.more);
            for entry in read.entries {
                let aborts = matches!(entry, Entry::Error(_)) && framer.aborts_on_error();
                let frame = frame_of(framer.as_mut(), &log, entry);
                if !frame.is_empty() {
                    yield Ok(opened(&mut opening, frame));
                    last_write = Instant::now();
                }
                if aborts {
                    tokio::task::yield_now().await;
                    yield Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the stream failed"));
                    return;
                }
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
