//! A generation this replica runs, in the shared store: its log is written
//! here first (the relay appends to an in-process log, as without Redis, so
//! the stream never waits on Redis), and a writer task copies it out.
//!
//! The writer is woken by each append and sends everything new in one
//! pipeline of `XADD`s, so a burst of tokens costs one round trip; while one
//! is in flight the next tokens gather, and, while no other replica watches,
//! for [`LINGER`] more. Each [`LEASE_EVERY`] while it runs,
//! it also learns whether another replica watches (so the abandonment timer
//! counts those watchers) and whether a `DELETE` elsewhere asked it to stop
//! (besides the `cancel` channel, in case that message was missed), and
//! keeps the keys from expiring. When Redis is down the stream goes on here;
//! the writer tries again every [`RETRY`] and sends what the local log still
//! holds (a gap, if it dropped frames meanwhile, is a gap for readers too).
//!
//! What it may not do: make the stream wait for Redis.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, GenKeys};
use super::connection::{Redis, LEASE_EVERY};
use crate::generation::Usage;
use crate::generations::{Entry, GenId, GenerationLog, Gone, LocalLog, Read, Snapshot, Status};

/// How long after a failed write the writer tries again.
pub const RETRY: Duration = Duration::from_millis(500);
/// How long the writer lets frames gather between pipelines while no other
/// replica watches (once one does, each frame goes as it comes): at 5 ms a
/// token it writes a quarter as often (`benches/replicas.py`).
const LINGER: Duration = Duration::from_millis(20);
/// Frames sent in one pipeline at most.
const MAX_BATCH: usize = 512;
/// A running generation's keys expire this long after the owner last
/// renewed them: a dead owner's keys do not stay forever.
pub const RUNNING_TTL: Duration = Duration::from_secs(60);

/// What the writer needs beyond the log.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `MAXLEN ~` of the stream: no fewer entries than the local log can hold.
    pub max_entries: usize,
    /// How long the keys of an ended generation stay (`retain_secs`).
    pub retain: Duration,
}

/// A generation this replica runs: the in-process log, and what the writer
/// learns from Redis.
pub struct OwnedLog {
    log: Arc<LocalLog>,
    wake: Notify,
    remote: Mutex<RemoteWatchers>,
}

/// Whether another replica watches, as of the last look.
#[derive(Debug, Default)]
struct RemoteWatchers {
    now: bool,
    /// When they were last seen.
    seen: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts copying `log` out to Redis under `keys`.
pub fn start(
    redis: Arc<Redis>,
    log: Arc<LocalLog>,
    keys: GenKeys,
    bounds: Bounds,
) -> Arc<OwnedLog> {
    let owned = Arc::new(OwnedLog {
        log,
        wake: Notify::new(),
        remote: Mutex::default(),
    });
    // The writer lives as long as the generation runs, and then until its
    // terminal frame is out (or kept no longer).
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(write_out(redis, owned.clone(), keys, bounds));
    owned
}

async fn write_out(redis: Arc<Redis>, owned: Arc<OwnedLog>, keys: GenKeys, bounds: Bounds) {
    let mut sent: Option<u64> = None;
    let mut model = owned.log.model();
    let mut tick = tokio::time::interval(LEASE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After a failure part of a pipeline may have landed: ask what did.
    let mut resync = false;
    let mut failing_since: Option<Instant> = None;
    loop {
        if resync {
            match last_written(&redis, &keys).await {
                Ok(last) => {
                    sent = sent.max(last);
                    resync = false;
                }
                Err(()) => {
                    if gave_up(&owned, failing_since, bounds) {
                        return;
                    }
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        let mut read = match owned.log.read(sent) {
            Ok(read) => read,
            Err(Gone { first_kept }) => {
                sent = first_kept.checked_sub(1);
                continue;
            }
        };
        // A backlog (after an outage) goes in pipelines of a bounded size.
        read.entries.truncate(MAX_BATCH);
        if let Some(last) = read.entries.len().checked_sub(1) {
            let last = read.first + last as u64;
            let ends = read.entries.last().is_some_and(Entry::is_terminal);
            let now_model = owned.log.model();
            let end = ends.then(|| owned.log.progress().0);
            let changed = (now_model != model).then_some(&now_model);
            let pipe = append(&keys, &read, bounds, changed, end);
            match redis.pipeline::<()>("append", &pipe).await {
                Ok(()) => {
                    sent = Some(last);
                    model = now_model;
                    failing_since = None;
                    if ends {
                        return;
                    }
                    // Unwatched elsewhere, nobody reads Redis yet: let the
                    // next frames gather (a resume elsewhere reads them a
                    // little later; the client here is not held up).
                    if !owned.watched_elsewhere() {
                        tokio::time::sleep(LINGER).await;
                    }
                }
                Err(_) => {
                    failing_since.get_or_insert_with(Instant::now);
                    if gave_up(&owned, failing_since, bounds) {
                        return;
                    }
                    resync = true;
                    tokio::time::sleep(RETRY).await;
                }
            }
            continue;
        }
        if read.ended {
            return;
        }
        tokio::select! {
            () = owned.wake.notified() => {}
            _ = tick.tick() => owned.look(&redis, &keys).await,
        }
    }
}

/// The pipeline that appends `read`'s entries (with the model, if it
/// changed, and the end).
fn append(
    keys: &GenKeys,
    read: &Read,
    bounds: Bounds,
    model: Option<&String>,
    end: Option<Status>,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for (i, entry) in read.entries.iter().enumerate() {
        let (field, value) = codec::encode(entry);
        pipe.cmd("XADD")
            .arg(&keys.log)
            .arg("MAXLEN")
            .arg("~")
            .arg(bounds.max_entries)
            .arg(codec::stream_id(read.first + i as u64))
            .arg(field)
            .arg(value)
            .ignore();
    }
    if let Some(model) = model {
        pipe.hset(&keys.meta, "model", model).ignore();
    }
    if let Some(status) = end {
        let retain = bounds.retain.as_millis() as u64;
        pipe.hset(&keys.meta, "status", status.as_str())
            .ignore()
            .pexpire(&keys.meta, retain as i64)
            .ignore()
            .pexpire(&keys.log, retain as i64)
            .ignore();
    }
    pipe
}

/// The index of the last frame in Redis.
async fn last_written(redis: &Redis, keys: &GenKeys) -> Result<Option<u64>, ()> {
    let mut last = redis::cmd("XREVRANGE");
    last.arg(&keys.log).arg("+").arg("-").arg("COUNT").arg(1);
    let reply: redis::streams::StreamRangeReply =
        redis.command("resync", &last).await.map_err(|_| ())?;
    Ok(reply.ids.first().and_then(|id| codec::index_of(&id.id)))
}

/// An ended generation whose frames Redis could not take for longer than
/// they would have been kept is given up.
fn gave_up(owned: &OwnedLog, failing_since: Option<Instant>, bounds: Bounds) -> bool {
    owned.log.progress().0 != Status::Running
        && failing_since.is_some_and(|since| since.elapsed() > bounds.retain)
}

impl OwnedLog {
    fn watched_elsewhere(&self) -> bool {
        lock(&self.remote).now
    }

    /// One look at what other replicas said, and the keys' expiry pushed on.
    async fn look(&self, redis: &Redis, keys: &GenKeys) {
        let ttl = RUNNING_TTL.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.exists(&keys.watched)
            .exists(&keys.cancel)
            .pexpire(&keys.meta, ttl)
            .ignore()
            .pexpire(&keys.log, ttl)
            .ignore();
        let Ok((watched, cancel)) = redis.pipeline::<(bool, bool)>("look", &pipe).await else {
            return;
        };
        {
            let mut remote = lock(&self.remote);
            remote.now = watched;
            if watched {
                remote.seen = Some(Instant::now());
            }
        }
        if cancel {
            self.log.cancel();
        }
    }
}

impl GenerationLog for OwnedLog {
    fn id(&self) -> &GenId {
        self.log.id()
    }

    fn model(&self) -> String {
        self.log.model()
    }

    fn serving(&self, model: &str) {
        self.log.serving(model);
    }

    fn append(&self, entry: Entry) -> u64 {
        let index = self.log.append(entry);
        self.wake.notify_one();
        index
    }

    fn read(&self, after: Option<u64>) -> Result<Read, Gone> {
        self.log.read(after)
    }

    fn changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.log.changed()
    }

    fn cancel(&self) {
        self.log.cancel();
    }

    fn stopping(&self) -> CancellationToken {
        self.log.stopping()
    }

    fn usage_so_far(&self) -> Usage {
        self.log.usage_so_far()
    }

    fn progress(&self) -> (Status, u64) {
        self.log.progress()
    }

    fn snapshot(&self) -> Snapshot {
        self.log.snapshot()
    }

    fn watchers_changed(&self, joined: bool) {
        self.log.watchers_changed(joined);
    }

    /// Unwatched only when neither this replica nor another has watchers;
    /// for as long as both have had none.
    fn unwatched_for(&self) -> Option<Duration> {
        let here = self.log.unwatched_for()?;
        let remote = lock(&self.remote);
        if remote.now {
            return None;
        }
        Some(remote.seen.map_or(here, |seen| here.min(seen.elapsed())))
    }
}
