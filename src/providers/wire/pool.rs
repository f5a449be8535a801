//! An endpoint's idle connections, reused most-recent first.
//!
//! A connection comes back here when its response body has ended cleanly
//! ([`Pool::put`]), or *parked* when the provider has its answer but the
//! body's last bytes (the chunked terminator after `[DONE]`) may still be in
//! flight ([`Pool::park`]): the next taker reads that tail without waiting,
//! and a connection whose tail has not come is closed, never reused. A
//! connection dropped anywhere else is closed, which is how a client that
//! leaves cancels its upstream.
//!
//! A taken connection is checked for a close the upstream sent while it sat
//! idle (a read that does not wait, through TLS when the connection has it); the close that crosses the request on the
//! wire is caught by the retry in `super::Client::send`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::conn::Conn;
use super::framing::{Decoded, Framing};

/// How long a connection may sit idle before it is closed: reqwest's and
/// hyper-util's default.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// The most idle connections kept per endpoint; more are closed.
const MAX_IDLE: usize = 256;

/// The most bytes of a parked body's tail read at checkout.
const TAIL_LIMIT: usize = 4096;

#[derive(Default)]
pub struct Pool {
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
    /// The body's framing, when its end has not been read yet.
    tail: Option<Framing>,
}

impl Pool {
    /// A connection whose last response ended cleanly.
    pub fn put(&self, conn: Conn) {
        self.keep(Idle {
            conn,
            since: Instant::now(),
            tail: None,
        });
    }

    /// A connection whose response has been answered but whose body's end
    /// (per `framing`) may still be on its way.
    pub fn park(&self, conn: Conn, framing: Framing) {
        self.keep(Idle {
            conn,
            since: Instant::now(),
            tail: Some(framing),
        });
    }

    fn keep(&self, idle: Idle) {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while pool
            .front()
            .is_some_and(|oldest| pool.len() >= MAX_IDLE || oldest.since.elapsed() > IDLE_FOR)
        {
            pool.pop_front();
        }
        pool.push_back(idle);
    }

    /// The most recently used connection that is still open and clean.
    pub fn take(&self) -> Option<Conn> {
        loop {
            let idle = {
                let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let idle = pool.pop_back()?;
                if idle.since.elapsed() > IDLE_FOR {
                    // Everything older went idle earlier still.
                    pool.clear();
                    return None;
                }
                idle
            };
            if let Some(conn) = ready(idle) {
                return Some(conn);
            }
        }
    }
}

/// `idle`'s connection if it can carry a request: its body's tail read
/// whole, and nothing else waiting on it (not a close, not stray bytes).
fn ready(idle: Idle) -> Option<Conn> {
    let Idle { mut conn, tail, .. } = idle;
    if let Some(mut framing) = tail {
        let mut buf = [0u8; TAIL_LIMIT];
        let read = conn.read_now(&mut buf).ok()?;
        match framing.push(&buf[..read], &mut |_| {}) {
            Ok(Decoded::Done { extra: 0 }) => {}
            Ok(Decoded::Done { .. } | Decoded::More) | Err(_) => return None,
        }
    }
    let mut probe = [0u8; 1];
    match conn.read_now(&mut probe) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Some(conn),
        // A close, stray bytes or an error.
        Ok(_) | Err(_) => None,
    }
}
