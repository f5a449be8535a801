//! The send deadline: a client connection whose socket takes none of the
//! bytes written to it for `limits.send_timeout_ms` fails its writes, so hyper
//! closes the connection and drops its streams, and with them their upstream
//! requests. A client that stops reading cannot hold a stream, its upstream
//! call and its stream slot past the deadline (nginx's `send_timeout`).
//!
//! The timer exists only while a write is blocked: a connection that writes
//! freely holds no timer, so an open stream costs nothing more.
//!
//! What it may not do: delay or reorder bytes; it only watches.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// An IO whose writes fail once they have been blocked for `limit`.
pub struct SendDeadline<IO> {
    io: IO,
    limit: Duration,
    /// Armed when a write is blocked, disarmed when one goes through.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<IO> SendDeadline<IO> {
    pub fn new(io: IO, limit: Duration) -> SendDeadline<IO> {
        SendDeadline {
            io,
            limit,
            blocked: None,
        }
    }

    /// `poll` of a write: ready disarms the timer; pending arms it, and fails
    /// once it has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.blocked = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self.blocked.get_or_insert_with(|| Box::pin(sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took no bytes for limits.send_timeout_ms",
        )))
    }
}

use std::future::Future;

impl<IO: AsyncWrite + Unpin> AsyncWrite for SendDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SendDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}
