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
mod gate;
mod id;
mod log;
mod naming;
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
use naming::Names;
pub use naming::{Keyed, Name, NameKind, Named};
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
    /// goes everywhere (never waits). Its log says so too
    /// ([`Log::is_forgotten`]), for a writer still flushing it.
    fn forget(&self, id: &str);

    /// Puts `named` under `name` for every replica; with `only_new`, only
    /// when the name is free, and then answers what the name already holds.
    fn name<'a>(
        &'a self,
        name: Name<'a>,
        named: &'a Named,
        only_new: bool,
    ) -> Pending<'a, Option<Named>>;

    /// What `name` holds, put there by any replica.
    fn named<'a>(&'a self, name: Name<'a>) -> Pending<'a, Option<Named>>;

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
    chats: Mutex<Names>,
    /// The generation each `Idempotency-Key` started, while it is kept.
    keys: Mutex<Names>,
    remote: Option<Arc<dyn Remote>>,
}

/// What a kept generation costs besides its frames: its record, its id, its
/// map entry (an estimate, counted against `retain_max_bytes`).
const PER_GENERATION: usize = 512;

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
                keys: Mutex::default(),
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
        let named = Named {
            id: log.id().to_string(),
            tag: String::new(),
        };
        let name = Name {
            kind: NameKind::Chat,
            owner: log.owner(),
            name: chat,
        };
        if let Some(remote) = &self.inner.remote {
            remote.name(name, &named, false).await?;
        }
        lock(&self.inner.chats).insert(log.owner(), chat, named);
        Ok(())
    }

    /// The generation bound to `owner`'s chat `chat`, if one is kept (it
    /// may have ended since: the caller looks at its status).
    pub async fn of_chat(&self, owner: Owner, chat: &str) -> Result<Option<Arc<Log>>, ApiError> {
        let name = Name {
            kind: NameKind::Chat,
            owner,
            name: chat,
        };
        Ok(self
            .named(&self.inner.chats, name)
            .await?
            .map(|(_, log)| log))
    }

    /// The generation `owner`'s `Idempotency-Key` `key` started, if it is
    /// kept, with the digest of the body that started it.
    pub async fn keyed(
        &self,
        owner: Owner,
        key: &str,
    ) -> Result<Option<(String, Arc<Log>)>, ApiError> {
        let name = Name {
            kind: NameKind::IdempotencyKey,
            owner,
            name: key,
        };
        self.named(&self.inner.keys, name).await
    }

    /// Names `log`, just made here, by its owner's `Idempotency-Key` `key`
    /// for a body of `digest`, unless a generation another request started
    /// holds the key already (two requests raced): then that one's name.
    pub async fn claim_key(
        &self,
        key: &str,
        digest: &str,
        log: &Arc<Log>,
    ) -> Result<Option<Named>, ApiError> {
        let owner = log.owner();
        let named = Named {
            id: log.id().to_string(),
            tag: digest.to_owned(),
        };
        {
            let mut keys = lock(&self.inner.keys);
            if let Some(held) = keys.get(owner, key) {
                if self.find_here(&held.id, owner).is_some() {
                    return Ok(Some(held.clone()));
                }
            }
            keys.insert(owner, key, named.clone());
        }
        let Some(remote) = &self.inner.remote else {
            return Ok(None);
        };
        let name = Name {
            kind: NameKind::IdempotencyKey,
            owner,
            name: key,
        };
        let claimed = match remote.name(name, &named, true).await {
            // The key names a generation no replica keeps any more (dropped
            // early for `retain_max_bytes`): it is this one's now.
            Ok(Some(held)) if held.id != named.id => match self.find(&held.id, owner).await {
                Ok(Some(_)) => Ok(Some(held)),
                Ok(None) => remote.name(name, &named, false).await.map(|_| None),
                Err(err) => Err(err),
            },
            Ok(_) => Ok(None),
            Err(err) => Err(err),
        };
        if !matches!(claimed, Ok(None)) {
            lock(&self.inner.keys).forget(&named.id);
        }
        claimed
    }

    /// What `name` holds here, else in the store, if its generation is kept.
    async fn named(
        &self,
        table: &Mutex<Names>,
        name: Name<'_>,
    ) -> Result<Option<(String, Arc<Log>)>, ApiError> {
        let here = lock(table).get(name.owner, name.name).cloned();
        if let Some(named) = here {
            if let Some(log) = self.find_here(&named.id, name.owner) {
                return Ok(Some((named.tag, log)));
            }
        }
        let Some(remote) = &self.inner.remote else {
            return Ok(None);
        };
        let Some(named) = remote.named(name).await? else {
            return Ok(None);
        };
        let log = self.find(&named.id, name.owner).await?;
        Ok(log.map(|log| (named.tag, log)))
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
        let mut keys = lock(&self.keys);
        for id in dropped {
            if let Some(log) = logs.remove(&id) {
                log.forget();
            }
            keys.forget(&id);
            if let Some(remote) = &self.remote {
                remote.forget(&id);
            }
        }
    }

    /// A log made here ended: it is kept for retention from now.
    fn retire(&self, id: &GenId, bytes: usize, status: Status) {
        metrics::gauge!(names::GENERATIONS_RUNNING).decrement(1.0);
        metrics::counter!(names::GENERATIONS, "status" => status.as_str()).increment(1);
        lock(&self.chats).forget(id.as_str());
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
