//! [`Log`]: one generation as this process holds it: its frames, its model,
//! its watchers and its stop token. The relay appends to it once per frame
//! (a direct call, a lock and no wake-up while nobody watches); watchers
//! read windows of it and wait on [`Log::changed`].
//!
//! A log is made here ([`Generations::create`](super::Generations::create))
//! or is a read-only copy of one another replica runs ([`Log::copy`], filled
//! by the store's follower through [`Log::copy_frame`]). With `[store]`, a
//! [`Replication`] port is set on it once, before anyone else sees it.
//!
//! What it may not do: reach Redis, or wait on anything but its own lock.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frames::{Entry, Frames, Gone, Read, Snapshot, Status};
use super::gate::Gate;
use super::id::{GenId, Owner};
use super::ports::{Elsewhere, Replication};
use crate::generation::Usage;
use crate::metrics as names;

/// What a log made here calls once, when it ends: its id, its bytes and
/// how it ended (the registry's retention takes it from there).
pub type Retire = Box<dyn Fn(&GenId, usize, Status) + Send + Sync>;

pub struct Log {
    id: GenId,
    owner: Owner,
    /// Unix seconds.
    created: u64,
    prompt_tokens: u32,
    state: Mutex<State>,
    changed: Notify,
    /// Wakes the writer that copies a replicated log out, once per append.
    written: Notify,
    stop: CancellationToken,
    /// Pause and step (section 14).
    gate: Gate,
    /// The registry dropped it for retention: a writer that copies it out
    /// must not leave it in the store after that.
    forgotten: std::sync::atomic::AtomicBool,
    /// Hands it to its registry's retention when it ends; none for a copy
    /// of another replica's generation, to which appends do nothing.
    retire: Option<Retire>,
    replication: OnceLock<Arc<dyn Replication>>,
}

struct State {
    model: String,
    frames: Frames,
    watchers: usize,
    /// When the last watcher left (or the generation began).
    unwatched_since: Instant,
}

/// What a log is made from: the generation's record.
pub struct Record {
    pub id: GenId,
    pub owner: Owner,
    pub model: String,
    pub created: u64,
    pub prompt_tokens: u32,
    pub max_log_bytes: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Log {
    /// A log of a generation made here, which `retire` hands to its
    /// registry when it ends.
    pub(super) fn made_here(from: Record, stop: CancellationToken, retire: Retire) -> Log {
        Log {
            retire: Some(retire),
            ..Log::copy(from, stop)
        }
    }

    /// A read-only log that copies another replica's generation, frame by
    /// frame through [`Log::copy_frame`]; watchers here read it as any log.
    pub fn copy(from: Record, stop: CancellationToken) -> Log {
        Log {
            id: from.id,
            owner: from.owner,
            created: from.created,
            prompt_tokens: from.prompt_tokens,
            state: Mutex::new(State {
                model: from.model,
                frames: Frames::new(from.max_log_bytes),
                watchers: 0,
                unwatched_since: Instant::now(),
            }),
            changed: Notify::new(),
            written: Notify::new(),
            stop,
            gate: Gate::default(),
            forgotten: std::sync::atomic::AtomicBool::new(false),
            retire: None,
            replication: OnceLock::new(),
        }
    }

    /// Sets the port of a log other replicas see; once, before the log is
    /// handed to anyone.
    pub fn replicate(&self, port: Arc<dyn Replication>) {
        let _ = self.replication.set(port);
    }

    pub fn id(&self) -> &GenId {
        &self.id
    }

    /// Whether its frames flow (section 14's pause and step).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The registry dropped it for retention.
    pub(super) fn forget(&self) {
        self.forgotten
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the registry dropped it for retention (see
    /// [`Remote::forget`](super::Remote::forget)).
    pub fn is_forgotten(&self) -> bool {
        self.forgotten.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether this process runs it (it is not a copy of another replica's).
    pub fn runs_here(&self) -> bool {
        self.retire.is_some()
    }

    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Unix seconds.
    pub fn created(&self) -> u64 {
        self.created
    }

    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// The model serving it (a fallback, perhaps; the route's until known).
    pub fn model(&self) -> String {
        lock(&self.state).model.clone()
    }

    /// Names the model that serves, once the failover has chosen.
    pub fn serving(&self, model: &str) {
        model.clone_into(&mut lock(&self.state).model);
    }

    /// Appends a frame and returns its index. A terminal entry ends the
    /// generation; nothing is appended after it, nor to a copy.
    pub fn append(&self, entry: Entry) -> u64 {
        if self.retire.is_none() {
            return self.progress().1;
        }
        let (index, ended, bytes, status, watched) = {
            let mut state = lock(&self.state);
            let (index, ended) = state.frames.push(entry);
            let watched = state.watchers > 0;
            let (bytes, status) = (state.frames.bytes(), state.frames.status());
            (index, ended, bytes, status, watched)
        };
        // With no watcher (a stream with its one client), nobody waits for a
        // token: only the end is worth a wake-up (`DELETE` waits for it).
        if watched || ended {
            self.changed.notify_waiters();
        }
        if self.replication.get().is_some() {
            self.written.notify_one();
        }
        if ended {
            if let Some(retire) = &self.retire {
                retire(&self.id, bytes, status);
            }
        }
        index
    }

    /// Frame `index` of the generation copied; see `Frames::push_at`.
    pub fn copy_frame(&self, index: u64, entry: Entry) {
        let (ended, watched) = {
            let mut state = lock(&self.state);
            let (_, ended) = state.frames.push_at(index, entry);
            (ended, state.watchers > 0)
        };
        if watched || ended {
            self.changed.notify_waiters();
        }
    }

    /// The frames after index `after` (from the first when `None`), at most
    /// a window of them.
    pub fn read(&self, after: Option<u64>) -> Result<Read, Gone> {
        lock(&self.state).frames.read(after)
    }

    /// Resolves once the log has grown, ended or its watchers changed, after
    /// this was called (call it before [`Log::read`], then await). On a copy
    /// it starts the follower that keeps it current.
    pub fn changed(&self) -> Notified<'_> {
        if let Some(port) = self.replication.get() {
            port.follow();
        }
        self.changed.notified()
    }

    /// Resolves after the next append: what the writer that copies a
    /// replicated log out waits on.
    pub fn written(&self) -> Notified<'_> {
        self.written.notified()
    }

    /// Asks whoever runs the generation to stop: here, [`Log::stopping`]
    /// fires; a copy sends the cancel to its owner. Does nothing to an ended
    /// one.
    pub fn cancel(&self) {
        let sent = self.replication.get().is_some_and(|port| port.cancel());
        if !sent {
            self.stop.cancel();
        }
    }

    /// Fires when the generation has been asked to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// The usage so far, for the `done` frame of a cancelled generation.
    pub fn usage_so_far(&self) -> Usage {
        lock(&self.state).frames.usage(self.prompt_tokens)
    }

    /// Its status and how many frames its log has: what a reconnect or a
    /// cancel needs, without the text and usage [`Log::snapshot`] builds.
    pub fn progress(&self) -> (Status, u64) {
        let state = lock(&self.state);
        (state.frames.status(), state.frames.len())
    }

    /// What its frames hold, in bytes.
    pub fn bytes(&self) -> usize {
        lock(&self.state).frames.bytes()
    }

    /// The index of the oldest frame still held (older ones were dropped
    /// past `max_log_bytes`).
    pub fn first_kept(&self) -> u64 {
        lock(&self.state).frames.first_kept()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = lock(&self.state);
        let text = state.frames.text();
        let (finish_reason, usage, error) = match state.frames.terminal() {
            Some(Entry::Done(finish)) => (Some(finish.finish_reason.clone()), finish.usage, None),
            Some(Entry::Error(err)) => (
                None,
                state.frames.usage(self.prompt_tokens),
                Some(err.clone()),
            ),
            Some(
                Entry::Token(_)
                | Entry::Reasoning(_)
                | Entry::ToolCalls(_)
                | Entry::Signature(_)
                | Entry::Malformed
                | Entry::Continued(_),
            )
            | None => (None, state.frames.usage(self.prompt_tokens), None),
        };
        Snapshot {
            id: self.id.to_string(),
            model: state.model.clone(),
            status: state.frames.status(),
            text,
            finish_reason,
            usage,
            error,
            created: self.created,
            frames: state.frames.len(),
            paused: self.gate.is_paused(),
        }
    }

    /// Counts a watcher in or out; see [`Watching`].
    fn watchers_changed(&self, joined: bool) {
        if joined {
            if let Some(port) = self.replication.get() {
                port.follow();
            }
        }
        {
            let mut state = lock(&self.state);
            if joined {
                state.watchers += 1;
                metrics::gauge!(names::WATCHERS).increment(1.0);
            } else {
                state.watchers = state.watchers.saturating_sub(1);
                metrics::gauge!(names::WATCHERS).decrement(1.0);
                if state.watchers == 0 {
                    state.unwatched_since = Instant::now();
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// Watchers here now.
    pub fn watched_here(&self) -> bool {
        lock(&self.state).watchers > 0
    }

    /// `None` while anyone watches, here or (for a generation run here) on
    /// another replica; else for how long nobody has.
    pub fn unwatched_for(&self) -> Option<Duration> {
        let here = {
            let state = lock(&self.state);
            (state.watchers == 0).then(|| state.unwatched_since.elapsed())
        }?;
        match self.replication.get().map(|port| port.elsewhere()) {
            Some(Elsewhere::Watched) => None,
            Some(Elsewhere::Unwatched(Some(seen))) => Some(here.min(seen.elapsed())),
            Some(Elsewhere::Unwatched(None)) | None => Some(here),
        }
    }
}

/// A watcher of a generation, counted while this lives.
pub struct Watching(Arc<Log>);

impl Watching {
    pub fn new(log: Arc<Log>) -> Watching {
        log.watchers_changed(true);
        Watching(log)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watchers_changed(false);
    }
}
