//! Generations as resources (contract section 7): one answer being produced,
//! with an id and an append-only log of its frames, which any number of
//! responses read. The HTTP response that started it is only one view of it.
//!
//! - [`GenerationStore`] makes and finds generations; [`LocalStore`] (in
//!   `local.rs`) keeps them in this process, the embedded default. A shared
//!   store (Redis) implements the same two traits without changing the doors.
//! - [`GenerationLog`] is one generation as the store keeps it: append a frame,
//!   read from frame N, wait for the next one, cancel, report its status.
//! - [`EventId`] is a frame's SSE id, `GEN:N`, as `Last-Event-ID` brings it back.
//!
//! Who writes a log: the relay, frame by frame, as it writes them to the
//! client (`pipeline::relay`), so a stream with its one client pays one append
//! per token and no extra task or channel; or, for a generation that must run
//! with no client attached, the same relay loop in a task of its own
//! (`pipeline::detached`).
//!
//! What it may not do: run a generation or know any door's frame format.

mod id;
mod local;
mod log;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::KeyId;
use crate::generation::Usage;

pub use id::{EventId, GenId};
pub use local::LocalStore;
pub use log::{Entry, Gone, Read, Snapshot, Status, CANCELLED};

/// Whose a generation is: the API key that made it, when auth is on. Any
/// other key finds nothing (a 404, as for an unknown id).
pub type Owner = Option<KeyId>;

/// Where generations are kept.
pub trait GenerationStore: Send + Sync + 'static {
    /// A new, running generation of `model`, owned by `owner`, whose prompt
    /// counts `prompt_tokens` (for the usage of a cancelled one).
    fn create(&self, owner: Owner, model: &str, prompt_tokens: u32) -> Arc<dyn GenerationLog>;

    /// The generation `id` if it is kept and `owner`'s.
    fn find(&self, id: &str, owner: Owner) -> Option<Arc<dyn GenerationLog>>;
}

/// One generation's log and status.
pub trait GenerationLog: Send + Sync + 'static {
    fn id(&self) -> &GenId;

    /// The model serving it (a fallback, perhaps; the route's until known).
    fn model(&self) -> String;

    /// Names the model that serves, once the failover has chosen.
    fn serving(&self, model: &str);

    /// Appends a frame and returns its index. A terminal entry ends the
    /// generation; nothing is appended after it.
    fn append(&self, entry: Entry) -> u64;

    /// The frames after index `after` (from the first when `None`).
    fn read(&self, after: Option<u64>) -> Result<Read, Gone>;

    /// Resolves once the log has grown, ended or its watchers changed, after
    /// this was called (call it before [`GenerationLog::read`], then await).
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Asks whoever runs the generation to stop; [`GenerationLog::stopping`]
    /// fires. Does nothing to an ended one.
    fn cancel(&self);

    /// Fires when the generation has been asked to stop.
    fn stopping(&self) -> CancellationToken;

    /// The usage so far, for the `done` frame of a cancelled generation.
    fn usage_so_far(&self) -> Usage;

    fn snapshot(&self) -> Snapshot;

    /// Counts a watcher in or out; see [`Watching`].
    fn watchers_changed(&self, joined: bool);

    /// Watchers now, and for how long there have been none.
    fn unwatched_for(&self) -> Option<std::time::Duration>;
}

/// A watcher of a generation, counted while this lives.
pub struct Watching(Arc<dyn GenerationLog>);

impl Watching {
    pub fn new(log: Arc<dyn GenerationLog>) -> Watching {
        log.watchers_changed(true);
        Watching(log)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watchers_changed(false);
    }
}
