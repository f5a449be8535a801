//! Deadlines on a generation: `first_token_ms`, `idle_ms` and `total_ms`
//! (`connect_ms` belongs to the HTTP client), applied the same way to every
//! provider, the mock included.
//!
//! The guard wraps a token stream. When a deadline passes it yields a timeout
//! error as the terminal event and drops the inner stream, which cancels the
//! upstream request. The idle clock only runs while the guard is waiting on
//! the upstream: time spent waiting for a slow client to read does not count
//! against the upstream.
//!
//! One timer per stream, re-armed lazily: each event only notes the time, and
//! when the timer fires early (because events came since it was set) it is
//! moved to the real deadline. Registering a fresh timer for every token cost
//! more than relaying the token.

use async_stream::stream;
use futures_util::StreamExt;
use tokio::time::{sleep_until, Instant};

use crate::config::Timeouts;
use crate::generation::{TokenEvent, TokenStream};
use crate::providers::UpstreamError;

pub fn guard(mut inner: TokenStream, timeouts: &Timeouts) -> TokenStream {
    let (first_token, idle, total) = (timeouts.first_token(), timeouts.idle(), timeouts.total());
    Box::pin(stream! {
        let started = Instant::now();
        let total_deadline = started + total;
        // When output last came; `None` until the first token.
        let mut last_output: Option<Instant> = None;
        let deadline = |last_output: Option<Instant>| {
            let (at, err) = match last_output {
                Some(last) => (last + idle, UpstreamError::IdleTimeout(idle)),
                None => (started + first_token, UpstreamError::FirstTokenTimeout(first_token)),
            };
            if total_deadline <= at {
                (total_deadline, UpstreamError::TotalTimeout(total))
            } else {
                (at, err)
            }
        };
        let timer = sleep_until(deadline(None).0);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                event = inner.next() => {
                    let Some(event) = event else { return };
                    let terminal = event.is_terminal();
                    let output = event.is_output();
                    yield event;
                    if terminal {
                        return;
                    }
                    if output {
                        // The idle clock starts when we wait on the upstream
                        // again: a slow reader is not the upstream's silence.
                        let first = last_output.is_none();
                        last_output = Some(Instant::now());
                        if first {
                            // The idle deadline may come before the
                            // first-token one the timer was set for.
                            timer.as_mut().reset(deadline(last_output).0);
                        }
                    }
                }
                () = &mut timer => {
                    let (at, err) = deadline(last_output);
                    if Instant::now() >= at {
                        yield TokenEvent::Error(err);
                        return;
                    }
                    timer.as_mut().reset(at);
                }
            }
        }
    })
}
