//! Generations as resources (contract section 7): one answer being produced,
//! with an id and an append-only log of its frames, which any number of
//! responses read. The HTTP response that started it is only one view of it.
//!
//! - [`Generations`] (here) makes and finds them: the registry of the logs
//!   made in this process, ended ones kept for `streams.retain_secs` or until
//!   their logs together pass `streams.retain_max_bytes`, oldest dropped
//!   first. Retention is enforced on every create, find and end (no task of
//!   its own).
//! - [`Log`] (`log.rs`) is one generation: append a frame, read from frame
//!   N, wait for the next one, cancel, report its status.
//! - `frames.rs`: the frames themselves, bounded, with the status and usage
//!   they imply. [`EventId`] (`id.rs`) is a frame's SSE id, `GEN:N`.
//! - What a shared store plugs in with `[store]`: [`Remote`] (here) for the
//!   registry, [`Replication`] (`ports.rs`) for a log. Nothing here knows
//!   Redis.
//!
//! Who writes a log: the relay, frame by frame, as it writes them to the
//! client (`pipeline::relay`), so a stream with its one client pays one append
//! per token and no extra task or channel; or, for a generation that must run
//! with no client attached, the same relay loop in a task of its own
//! (`pipeline::detached`).
//!
//! What it may not do: run a generation or know any door's frame format.

mod frames;
mod id;
mod log;
mod ports;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use frames::{Entry, Gone, Read, Status, CANCELLED};
pub use id::{EventId, GenId, Owner};
use log::Retire;
pub use log::{Log, Record, Watching};
pub use ports::{Elsewhere, Replication};

use std::future::Future;
use std::pin::Pin;

use crate::config::Streams;
use crate::error::ApiError;
use crate::metrics as names;

/// What a port's asking returns: it asks its server, so it may wait, and
/// fails with `store_unavailable` when that is down.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// Where generations are shared with other replicas.
pub trait Remote: Send + Sync + 'static {
    /// Makes the generation `log`, just made here, visible to the other
    /// replicas, and starts copying its frames out (woken by
    /// [`Log::written`](Log::written)). Fails, and the generation is
    /// not made, when the store cannot be reached.
    fn publish<'a>(&'a self, log: &'a Arc<Log>) -> Pending<'a, Arc<dyn Replication>>;

    /// A read-only copy of generation `id`, run by another replica, if it is
    /// kept and `owner`'s.
    fn open<'a>(&'a self, id: &'a str, owner: Owner) -> Pending<'a, Option<Arc<Log>>>;

    /// The ended generation `id`, made here, was dropped for retention: it
    /// goes everywhere (never waits).
    fn forget(&self, id: &str);

    /// Names generation `id`, made here, as the one running for `owner`'s
    /// chat `chat` (a chat UI door's), for every replica.
    fn bind<'a>(&'a self, owner: Owner, chat: &'a str, id: &'a str) -> Pending<'a, ()>;

    /// The generation last bound to `owner`'s chat `chat`, by any replica.
    fn bound<'a>(&'a self, owner: Owner, chat: &'a str) -> Pending<'a, Option<String>>;

    /// Ready for work while the store answers (`/readyz`).
    fn ready(&self) -> bool;
}

/// The generations of this process, and the way to other replicas' when a
/// shared store is set.
pub struct Generations {
    inner: Arc<Inner>,
}

struct Inner {
    retain: Duration,
    retain_max_bytes: usize,
    max_log_bytes: usize,
    logs: Mutex<HashMap<String, Arc<Log>>>,
    ended: Mutex<Retained>,
    /// The generation running for each chat of the chat UI doors, while it
    /// runs (a log leaves it when it ends).
    chats: Mutex<Chats>,
    remote: Option<Arc<dyn Remote>>,
}

/// What a kept generation costs besides its frames: its record, its id, its
/// map entry (an estimate, counted against `retain_max_bytes`).
const PER_GENERATION: usize = 512;

/// Chats and the generations running for them, both ways.
#[derive(Default)]
struct Chats {
    running: HashMap<(Owner, String), String>,
    chat_of: HashMap<String, (Owner, String)>,
}

/// Ended generations, oldest first, with their logs' bytes.
#[derive(Default)]
struct Retained {
    queue: VecDeque<(Instant, String, usize)>,
    bytes: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Generations {
    /// The registry of this process alone.
    pub fn new(config: &Streams) -> Generations {
        Generations::shared(config, None)
    }

    /// The registry, with generations shared through `remote` when set.
    pub fn shared(config: &Streams, remote: Option<Arc<dyn Remote>>) -> Generations {
        Generations {
            inner: Arc::new(Inner {
                retain: Duration::from_secs(config.retain_secs),
                retain_max_bytes: config.retain_max_bytes,
                max_log_bytes: config.max_log_bytes,
                logs: Mutex::default(),
                ended: Mutex::default(),
                chats: Mutex::default(),
                remote,
            }),
        }
    }

    /// A new, running generation of `model`, owned by `owner`, whose prompt
    /// counts `prompt_tokens` (for the usage of a cancelled one). `stop` is
    /// its stop token: a child of the shutdown grace's, so that whoever runs
    /// it waits on one token for both. With a shared store it is published
    /// there first, and is not made when the store cannot be reached.
    pub async fn create(
        &self,
        owner: Owner,
        model: &str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Result<Arc<Log>, ApiError> {
        let log = self.create_here(owner, model, prompt_tokens, stop);
        if let Some(remote) = &self.inner.remote {
            match remote.publish(&log).await {
                Ok(port) => log.replicate(port),
                Err(err) => {
                    // Ended at once, so that it retires like any other.
                    log.append(Entry::Error(err.clone()));
                    return Err(err);
                }
            }
        }
        Ok(log)
    }

    /// [`Generations::create`] in this process only.
    pub fn create_here(
        &self,
        owner: Owner,
        model: &str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Arc<Log> {
        self.inner.sweep(Instant::now());
        let log = Arc::new(Log::made_here(
            Record {
                id: GenId::random(),
                owner,
                model: model.to_owned(),
                created: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                prompt_tokens,
                max_log_bytes: self.inner.max_log_bytes,
            },
            stop,
            retire_to(Arc::downgrade(&self.inner)),
        ));
        metrics::gauge!(names::GENERATIONS_RUNNING).increment(1.0);
        lock(&self.inner.logs).insert(log.id().to_string(), log.clone());
        log
    }

    /// The generation `id` if it is kept and `owner`'s: made here, or (with
    /// a shared store) a copy of another replica's.
    pub async fn find(&self, id: &str, owner: Owner) -> Result<Option<Arc<Log>>, ApiError> {
        if let Some(log) = self.find_here(id, owner) {
            return Ok(Some(log));
        }
        match &self.inner.remote {
            Some(remote) => remote.open(id, owner).await,
            None => Ok(None),
        }
    }

    /// The generation `id` made here, if it is kept and `owner`'s.
    pub fn find_here(&self, id: &str, owner: Owner) -> Option<Arc<Log>> {
        self.inner.sweep(Instant::now());
        let log = lock(&self.inner.logs).get(id).cloned()?;
        (log.owner() == owner).then_some(log)
    }

    /// Binds `log`, just made here, to its owner's chat `chat`: the one a
    /// reconnect to the chat finds while it runs (a later one replaces it).
    pub async fn bind_chat(&self, chat: &str, log: &Arc<Log>) -> Result<(), ApiError> {
        let owner = log.owner();
        let id = log.id().to_string();
        if let Some(remote) = &self.inner.remote {
            remote.bind(owner, chat, &id).await?;
        }
        let mut chats = lock(&self.inner.chats);
        let key = (owner, chat.to_owned());
        if let Some(previous) = chats.running.insert(key.clone(), id.clone()) {
            chats.chat_of.remove(&previous);
        }
        chats.chat_of.insert(id, key);
        Ok(())
    }

    /// The generation bound to `owner`'s chat `chat`, if one is kept (it
    /// may have ended since: the caller looks at its status).
    pub async fn of_chat(&self, owner: Owner, chat: &str) -> Result<Option<Arc<Log>>, ApiError> {
        let here = lock(&self.inner.chats)
            .running
            .get(&(owner, chat.to_owned()))
            .cloned();
        if let Some(id) = here {
            if let Some(log) = self.find_here(&id, owner) {
                return Ok(Some(log));
            }
        }
        let Some(remote) = &self.inner.remote else {
            return Ok(None);
        };
        match remote.bound(owner, chat).await? {
            Some(id) => self.find(&id, owner).await,
            None => Ok(None),
        }
    }

    /// Ready for work: always, or while the shared store answers.
    pub fn ready(&self) -> bool {
        self.inner
            .remote
            .as_ref()
            .is_none_or(|remote| remote.ready())
    }
}

/// How a log made here is retired when it ends.
fn retire_to(registry: std::sync::Weak<Inner>) -> Retire {
    Box::new(move |id, bytes, status| {
        if let Some(registry) = registry.upgrade() {
            registry.retire(id, bytes, status);
        }
    })
}

impl Inner {
    /// Drops the ended generations past their time or over the byte budget.
    fn sweep(&self, now: Instant) {
        let mut ended = lock(&self.ended);
        let mut dropped = Vec::new();
        while let Some((at, _, bytes)) = ended.queue.front() {
            let (at, bytes) = (*at, *bytes);
            if now < at + self.retain && ended.bytes <= self.retain_max_bytes {
                break;
            }
            if let Some((_, id, _)) = ended.queue.pop_front() {
                ended.bytes -= bytes;
                dropped.push(id);
            }
        }
        metrics::gauge!(names::GENERATION_LOG_BYTES).set(ended.bytes as f64);
        drop(ended);
        if dropped.is_empty() {
            return;
        }
        let mut logs = lock(&self.logs);
        for id in dropped {
            logs.remove(&id);
            if let Some(remote) = &self.remote {
                remote.forget(&id);
            }
        }
    }

    /// A log made here ended: it is kept for retention from now.
    fn retire(&self, id: &GenId, bytes: usize, status: Status) {
        metrics::gauge!(names::GENERATIONS_RUNNING).decrement(1.0);
        metrics::counter!(names::GENERATIONS, "status" => status.as_str()).increment(1);
        {
            let mut chats = lock(&self.chats);
            if let Some(key) = chats.chat_of.remove(id.as_str()) {
                chats.running.remove(&key);
            }
        }
        let now = Instant::now();
        {
            let mut ended = lock(&self.ended);
            let bytes = bytes + PER_GENERATION;
            ended.queue.push_back((now, id.to_string(), bytes));
            ended.bytes += bytes;
        }
        self.sweep(now);
    }
}

#[cfg(test)]
mod tests;
