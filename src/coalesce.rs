//! Write coalescing on client connections: several ready tokens leave in one
//! write, and a token that is ready alone is never held back.
//!
//! Why: an upstream's tokens reach the relay one HTTP chunk at a time (hyper's
//! client hands its body over through a channel that holds one chunk), so
//! when an upstream bursts, the relay sees one token, the client connection
//! finds nothing more ready and writes it, and the next token costs another
//! `writev` — on loopback about half of the proxy's CPU per token (perf:
//! `Buffered::poll_flush` → `tcp_sendmsg` under the firehose benchmark; one
//! `writev` per relayed token, while the upstream side needed one `recvfrom`
//! per hundred).
//!
//! What: while a connection is in a burst (its previous write went out less
//! than [`BURST`] ago), a write is deferred with tokio's `yield_now`
//! semantics: the task runs again only after the runtime has run every other
//! ready task and polled the IO driver, by which time the upstream's next
//! chunks, if any had arrived, are in hyper's queue. As long as each deferral
//! brings more bytes the write waits again (hyper stops queueing at 16 frames,
//! which ends the wait); the first time nothing more has arrived it goes out.
//! A token that arrives after a quiet spell (every paced stream: a chat model
//! sends one every 10–50 ms) is written at once, without a deferral.
//!
//! What it may not do: hold bytes across a wait for the network or a timer;
//! it only lets tasks that are already runnable go first.

// Real time on purpose: whether a write is part of a burst is a fact about
// the socket's writes, which paused test time must not change.
#![allow(clippy::disallowed_types)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write that follows the previous one this closely is part of a burst.
pub const BURST: Duration = Duration::from_millis(1);

/// A connection whose writes wait for ready tasks while it is in a burst.
pub struct Coalesce<IO> {
    io: IO,
    /// When the last write went out.
    last_write: Option<Instant>,
    /// Bytes offered at the last deferral (0: none deferred).
    deferred_len: usize,
}

impl<IO> Coalesce<IO> {
    pub fn new(io: IO) -> Coalesce<IO> {
        Coalesce {
            io,
            last_write: None,
            deferred_len: 0,
        }
    }

    /// Whether a write of `len` bytes should wait for the tasks that are ready.
    fn should_defer(&mut self, len: usize, now: Instant) -> bool {
        let in_burst = self
            .last_write
            .is_some_and(|last| now.saturating_duration_since(last) < BURST);
        if in_burst && len > self.deferred_len {
            self.deferred_len = len;
            true
        } else {
            self.deferred_len = 0;
            false
        }
    }

    /// Writes with `write` unless the write should wait; one clock read
    /// serves both the decision and the record of when the write went out.
    fn write_or_wait<T>(
        &mut self,
        len: usize,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut IO>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        IO: Unpin,
    {
        let now = Instant::now();
        if self.should_defer(len, now) {
            wake_after_ready_tasks(cx);
            return Poll::Pending;
        }
        let result = write(Pin::new(&mut self.io), cx);
        if result.is_ready() {
            self.last_write = Some(now);
        }
        result
    }
}

/// Wakes the task once the runtime has run the other ready tasks and polled
/// the IO driver (what `tokio::task::yield_now` does), not at once.
fn wake_after_ready_tasks(cx: &mut Context<'_>) {
    let yielded = std::pin::pin!(tokio::task::yield_now());
    let _ = yielded.poll(cx);
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesce<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_or_wait(buf.len(), cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.write_or_wait(len, cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalesce<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn a_write_after_a_quiet_spell_goes_out_at_once() {
        let start = Instant::now();
        let mut conn = Coalesce::new(());
        assert!(!conn.should_defer(100, start), "first write");
        conn.last_write = Some(start);
        assert!(!conn.should_defer(100, at(start, 5_000)));
    }

    #[test]
    fn a_burst_waits_while_more_arrives_and_no_longer() {
        let start = Instant::now();
        let mut conn = Coalesce::new(());
        conn.last_write = Some(start);
        assert!(conn.should_defer(100, at(start, 10)));
        assert!(conn.should_defer(300, at(start, 20)), "more arrived");
        assert!(!conn.should_defer(300, at(start, 30)), "nothing new: write");
        conn.last_write = Some(at(start, 30));
        assert!(
            conn.should_defer(100, at(start, 40)),
            "next burst write waits again"
        );
    }
}
