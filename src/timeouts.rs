//! Deadlines on a generation: `first_token_ms`, `idle_ms` and `total_ms`
//! (`connect_ms` belongs to the HTTP client), applied the same way to every
//! provider, the mock included.
//!
//! The guard wraps a token stream. When a deadline passes it yields a timeout
//! error as the terminal event and drops the inner stream, which cancels the
//! upstream request. The idle clock only runs while the guard is waiting on
//! the upstream: time spent waiting for a slow client to read does not count
//! against the upstream.

use async_stream::stream;
use futures_util::StreamExt;
use tokio::time::{timeout_at, Instant};

use crate::config::Timeouts;
use crate::generation::{TokenEvent, TokenStream};
use crate::providers::UpstreamError;

pub fn guard(mut inner: TokenStream, timeouts: &Timeouts) -> TokenStream {
    let (first_token, idle, total) = (timeouts.first_token(), timeouts.idle(), timeouts.total());
    Box::pin(stream! {
        let started = Instant::now();
        let total_deadline = started + total;
        let mut got_token = false;
        loop {
            let (deadline, timeout) = if got_token {
                (Instant::now() + idle, UpstreamError::IdleTimeout(idle))
            } else {
                (started + first_token, UpstreamError::FirstTokenTimeout(first_token))
            };
            let (deadline, timeout) = if total_deadline <= deadline {
                (total_deadline, UpstreamError::TotalTimeout(total))
            } else {
                (deadline, timeout)
            };
            match timeout_at(deadline, inner.next()).await {
                Ok(Some(event)) => {
                    let terminal = event.is_terminal();
                    got_token |= event.is_output();
                    yield event;
                    if terminal {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    yield TokenEvent::Error(timeout);
                    return;
                }
            }
        }
    })
}
