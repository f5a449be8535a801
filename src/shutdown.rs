//! Draining for a graceful shutdown.
//!
//! On SIGTERM or Ctrl-C: `/readyz` turns 503 at once, so load balancers stop
//! sending; after `shutdown_delay_secs` the listener stops accepting; streams
//! in flight may finish for `shutdown_grace_secs`; then every stream still
//! running ends with an `event: error` of type `shutting_down` (a stream that
//! cannot go on gets a terminal frame, never a silent cut), and the process
//! exits 0.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    stop_accepting: CancellationToken,
    expired: CancellationToken,
}

impl Drain {
    /// The whole sequence: waits for `shutdown`, then not ready; after
    /// `delay`, no new connections; after `grace` more, streams end.
    pub async fn run(&self, shutdown: impl Future<Output = ()>, delay: Duration, grace: Duration) {
        shutdown.await;
        self.start();
        tokio::time::sleep(delay).await;
        self.stop_accepting.cancel();
        tokio::time::sleep(grace).await;
        self.expire();
    }

    /// Shutdown has begun: not ready any more.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The grace period is over: streams still running must end now.
    pub fn expire(&self) {
        self.expired.cancel();
    }

    /// A token that fires when listeners must stop accepting.
    pub fn stopped_accepting(&self) -> CancellationToken {
        self.stop_accepting.clone()
    }

    /// A token that fires when the grace period is over.
    pub fn expiry(&self) -> CancellationToken {
        self.expired.clone()
    }
}
