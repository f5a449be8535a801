//! A generation with no response attached: `POST /v1/generations`, or a
//! `/v1/stream` generation that must outlive its client for
//! `streams.reconnect_grace_ms`.
//!
//! It runs the relay's own body in a task of its own, writing only to the
//! generation's log (its framer writes nothing), so deadlines, retries,
//! shutdown and the log's frames are exactly a stream's. Responses watch the
//! log. A watchdog cancels the generation once it has had no watcher for
//! `unwatched` (`abandon_ms`, or the reconnect grace), checked at least every
//! quarter second while someone watches, so the cancel comes at most that
//! late.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::failover::Choice;
use super::framer::Framer;
use super::relay::{self, LogWriter, Started, StreamContext};
use crate::error::ApiError;
use crate::generation::Finish;
use crate::generations::Log;
use crate::limits::StreamPermit;
use crate::observe::StreamMeter;
use crate::warden::Guard;

/// How often the watchdog looks while the generation is watched.
const WATCHED_CHECK: Duration = Duration::from_millis(250);

/// What the detached generation holds while it runs.
pub struct Detached {
    pub meter: StreamMeter,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub permit: Option<StreamPermit>,
    /// How long it may run with no watcher.
    pub unwatched: Duration,
}

/// Starts `choice` in a task of its own, writing to `log`.
pub fn spawn(choice: Choice, log: Arc<Log>, detached: Detached) {
    let context = StreamContext {
        // The log has no heartbeats; watchers send their own.
        heartbeat: Duration::from_secs(86_400),
        meter: detached.meter,
        shutdown: detached.shutdown,
        permit: detached.permit,
        log: Some(LogWriter::new(log.clone())),
    };
    // Nobody reads this body: the warden has nothing to watch.
    let body = relay::body(
        Started::waiting(choice),
        Box::new(LogOnly),
        context,
        Guard::none(),
    );
    // The point of a detached generation is to outlive its request; it ends
    // with its terminal frame, its deadlines, a cancel or its abandonment.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        tokio::pin!(body);
        let run = async { while body.next().await.is_some() {} };
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {}
            () = watchdog(log.as_ref(), detached.unwatched) => run.await,
        }
    });
}

/// Returns once the generation has been cancelled for having no watcher.
async fn watchdog(log: &Log, unwatched: Duration) {
    loop {
        match log.unwatched_for() {
            Some(idle) if idle >= unwatched => {
                log.cancel();
                return;
            }
            Some(idle) => tokio::time::sleep(unwatched - idle).await,
            None => tokio::time::sleep(WATCHED_CHECK.min(unwatched)).await,
        }
    }
}

/// The framer of a body nobody reads: every frame is empty.
struct LogOnly;

impl Framer for LogOnly {
    fn token(&mut self, _token: &str) -> Bytes {
        Bytes::new()
    }
    fn reasoning(&mut self, _text: &str) -> Bytes {
        Bytes::new()
    }
    fn done(&mut self, _finish: &Finish) -> Bytes {
        Bytes::new()
    }
    fn error(&mut self, _error: &ApiError) -> Bytes {
        Bytes::new()
    }
    fn heartbeat(&self) -> Option<Bytes> {
        None
    }
}
