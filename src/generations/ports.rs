//! [`Replication`]: one log's port to a shared store (Redis, in the `store`
//! module), the three points where a log that other replicas see differs
//! from one they do not. The registry's port, `Remote`, is beside
//! the registry (`mod.rs`). Without `[store]` neither is set.
//!
//! Not called per token: a log made here wakes the writer that copies it
//! out through a plain `Notify` it holds itself
//! ([`Log::written`](super::Log::written)).

use tokio::time::Instant;

/// What differs for a log other replicas see.
pub trait Replication: Send + Sync + 'static {
    /// Whether another replica watches this generation (run here), for the
    /// abandonment timer.
    fn elsewhere(&self) -> Elsewhere;

    /// Someone here waits on this copy's frames: keep it current.
    fn follow(&self);

    /// Sends a cancel to the replica that runs this generation; false when
    /// it runs here (the log stops it itself).
    fn cancel(&self) -> bool;
}

/// Whether other replicas watch a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// One does now.
    Watched,
    /// None does; one last did at this instant (`None`: never).
    Unwatched(Option<Instant>),
}
