//! The two traits a store of generations implements, and the watcher count.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::id::GenId;
use super::log::{Entry, Gone, Read, Snapshot, Status};
use crate::auth::KeyId;
use crate::error::ApiError;
use crate::generation::Usage;

/// What a store's making and finding return: a shared store asks its server,
/// so both may wait, and both fail with `store_unavailable` when it is down.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// Whose a generation is: the API key that made it, when auth is on. Any
/// other key finds nothing (a 404, as for an unknown id).
pub type Owner = Option<KeyId>;

/// Where generations are kept.
pub trait GenerationStore: Send + Sync + 'static {
    /// A new, running generation of `model`, owned by `owner`, whose prompt
    /// counts `prompt_tokens` (for the usage of a cancelled one). `stop` is
    /// its stop token: a child of the shutdown grace's, so that whoever runs
    /// it waits on one token for both.
    fn create<'a>(
        &'a self,
        owner: Owner,
        model: &'a str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Pending<'a, Arc<dyn GenerationLog>>;

    /// The generation `id` if it is kept and `owner`'s.
    fn find<'a>(&'a self, id: &'a str, owner: Owner)
        -> Pending<'a, Option<Arc<dyn GenerationLog>>>;

    /// Ready for work: an in-process store always is; a shared one while its
    /// server answers (`/readyz`).
    fn ready(&self) -> bool {
        true
    }
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

    /// Its status and how many frames its log has: what a reconnect or a
    /// cancel needs, without the text and usage [`GenerationLog::snapshot`]
    /// builds.
    fn progress(&self) -> (Status, u64);

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
