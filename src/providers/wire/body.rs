//! A response body, read in the task that polls it.
//!
//! Each read borrows this thread's read buffer ([`SCRATCH`]) only for as long
//! as the bytes are in flight: it reads what the socket has, frames it and
//! hands the body's bytes to the caller's sink before the poll returns. So a
//! stream that waits for its next token holds a socket and a few words of
//! framing state, not a buffer (nginx's way with its idle connections).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::conn::Conn;

use super::framing::{Decoded, Framing, FramingError};
use super::pool::Pool;

/// Bytes read from an upstream socket in one go: the largest a token burst
/// needs (a firehose of chunks back to back), one per serving thread.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// Why a body could not be read to its end.
#[derive(Debug)]
pub enum BodyError {
    Io(io::Error),
    Framing(FramingError),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Io(err) => write!(f, "{err}"),
            BodyError::Framing(err) => write!(f, "{err}"),
        }
    }
}

/// What a read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Some of the body went to the sink (possibly nothing but framing).
    Data,
    /// The body has ended.
    End,
}

/// A response body still on its connection.
pub struct Body {
    /// `None` once the body has ended (the connection went back to the pool
    /// or was closed).
    conn: Option<Conn>,
    framing: Framing,
    /// Body bytes that came in the same read as the head.
    early: Vec<u8>,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl Body {
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        early: Vec<u8>,
        keep_alive: bool,
        pool: Arc<Pool>,
    ) -> Body {
        let mut body = Body {
            conn: Some(conn),
            framing,
            early,
            keep_alive,
            pool,
        };
        if body.early.is_empty() && body.framing.is_done() {
            body.ended(0);
        }
        body
    }

    /// Reads what has arrived, or waits for it; the body's bytes go to `sink`.
    pub async fn read(&mut self, sink: &mut (dyn FnMut(&[u8]) + Send)) -> Result<Read, BodyError> {
        poll_fn(|cx| self.poll_read(cx, sink)).await
    }

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Poll<Result<Read, BodyError>> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            return Poll::Ready(self.framed(&early, sink));
        }
        if self.conn.is_none() {
            return Poll::Ready(Ok(Read::End));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(scratch);
            if let Some(conn) = self.conn.as_mut() {
                ready!(Pin::new(conn).poll_read(cx, &mut buf)).map_err(BodyError::Io)?;
            }
            let read = buf.filled();
            if read.is_empty() {
                self.conn = None;
                self.framing.at_eof().map_err(BodyError::Framing)?;
                return Poll::Ready(Ok(Read::End));
            }
            Poll::Ready(self.framed(read, sink))
        })
    }

    /// Frames bytes read from the socket.
    fn framed(
        &mut self,
        read: &[u8],
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Read, BodyError> {
        match self.framing.push(read, sink) {
            Ok(Decoded::More) => Ok(Read::Data),
            Ok(Decoded::Done { extra }) => {
                self.ended(extra);
                Ok(Read::End)
            }
            Err(err) => {
                self.conn = None;
                Err(BodyError::Framing(err))
            }
        }
    }

    /// The body ended with `extra` bytes after it: the connection goes back
    /// to the pool if nothing is amiss.
    fn ended(&mut self, extra: usize) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && extra == 0 {
                self.pool.put(conn);
            }
        }
    }

    /// The caller has what it needs from the body: the connection is
    /// parked for reuse, to be read past its body's end by the next taker.
    /// Only for a body whose answer is whole: dropping the body instead closes
    /// the connection, which is what tells an upstream to stop generating.
    pub fn park(mut self) {
        let early = std::mem::take(&mut self.early);
        if !early.is_empty() {
            match self.framing.push(&early, &mut |_| {}) {
                Ok(Decoded::More) => {}
                Ok(Decoded::Done { extra }) => return self.ended(extra),
                // Broken framing: the connection is closed with the body.
                Err(_) => return,
            }
        }
        if let (Some(conn), true) = (self.conn.take(), self.keep_alive) {
            match self.framing.is_done() {
                true => self.pool.put(conn),
                false => {
                    let framing = std::mem::replace(&mut self.framing, Framing::Close);
                    self.pool.park(conn, framing);
                }
            }
        }
    }
}
