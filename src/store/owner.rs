//! A generation this replica runs, in the shared store: its log is written
//! here first (the relay appends to the in-process [`Log`], as without
//! Redis, so the stream never waits on Redis), and a writer task copies it
//! out.
//!
//! The writer is woken by each append ([`Log::written`]) and sends everything
//! new in one pipeline of `XADD`s, so a burst of tokens costs one round trip;
//! while one is in flight the next tokens gather, and, while no other replica
//! watches, for [`LINGER`] more. Each `XADD` trims the stream to the frames
//! the local log still holds (`MINID`), so Redis keeps no more of a log than
//! `max_log_bytes`, whatever the size of its frames.
//!
//! The writer renews the generation's lease (`gen:{GEN}:alive`, see
//! [`super::codec`]) with each append at most once a [`LEASE_EVERY`], and
//! with each look: watchers elsewhere give the generation up once the lease
//! is gone.
//!
//! Each [`LEASE_EVERY`] while it runs, the writer also learns whether another
//! replica watches (so the abandonment timer counts those watchers) and
//! whether a `DELETE` elsewhere asked it to stop (besides the `cancel`
//! channel, in case that message was missed), and keeps the keys from
//! expiring. When the record is gone (Redis restarted empty), it writes it
//! again and sends the log from what it still holds, so the generation stays
//! alive for every replica. When Redis is down the stream goes on here; the
//! writer tries again every [`RETRY`].
//!
//! What it may not do: make the stream wait for Redis.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::codec::{self, GenKeys};
use super::connection::{unix_ms, Redis, LEASE_EVERY, LEASE_FOR};
use crate::generations::{Elsewhere, Entry, Gone, Log, Read, Replication, Status};

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
/// The record of a generation being made lives this long until its writer
/// first renews it: a create that timed out here but ran later in Redis
/// leaves no `running` record for longer.
pub const CREATED_TTL: Duration = Duration::from_secs(5);

/// How long the keys of an ended generation stay (`retain_secs`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub retain: Duration,
}

/// The [`Replication`] of a generation run here: what the writer learned of
/// the other replicas.
#[derive(Debug, Default)]
pub struct Owned {
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

impl Replication for Owned {
    fn elsewhere(&self) -> Elsewhere {
        let remote = lock(&self.remote);
        match remote.now {
            true => Elsewhere::Watched,
            false => Elsewhere::Unwatched(remote.seen),
        }
    }

    /// Nothing to follow: the frames are written here.
    fn follow(&self) {}

    /// It runs here: the log stops it.
    fn cancel(&self) -> bool {
        false
    }
}

/// The `HSET` of `log`'s whole record as Redis keeps it under `keys`
/// (`status` is the log's).
pub fn record(keys: &GenKeys, redis: &Redis, log: &Log, owner_name: &str) -> redis::Cmd {
    let mut hset = redis::cmd("HSET");
    hset.arg(&keys.meta).arg(&[
        ("owner", owner_name.to_owned()),
        ("model", log.model()),
        ("created", log.created().to_string()),
        ("prompt_tokens", log.prompt_tokens().to_string()),
        ("status", log.progress().0.as_str().to_owned()),
        ("replica", redis.replica().to_owned()),
        ("created_ms", unix_ms().to_string()),
    ]);
    hset
}

/// Adds the renewal of the generation's lease under `keys` to `pipe`.
pub fn renew_lease(pipe: &mut redis::Pipeline, keys: &GenKeys, redis: &Redis) {
    pipe.cmd("SET")
        .arg(&keys.alive)
        .arg(redis.replica())
        .arg("PX")
        .arg(LEASE_FOR.as_millis() as u64)
        .ignore();
}

/// Starts copying `log` out to Redis under `keys`.
pub fn start(redis: Arc<Redis>, log: Arc<Log>, owner_name: String, bounds: Bounds) -> Arc<Owned> {
    let owned = Arc::new(Owned::default());
    let writer = Writer {
        keys: GenKeys::of(&redis, log.id().as_str()),
        redis,
        log,
        owned: owned.clone(),
        owner_name,
        bounds,
    };
    // The writer lives as long as the generation runs, and then until its
    // terminal frame is out (or kept no longer).
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(writer.run());
    owned
}

struct Writer {
    redis: Arc<Redis>,
    log: Arc<Log>,
    owned: Arc<Owned>,
    keys: GenKeys,
    owner_name: String,
    bounds: Bounds,
}

impl Writer {
    async fn run(self) {
        let mut sent: Option<u64> = None;
        let mut model = self.log.model();
        let mut tick = tokio::time::interval(LEASE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a failure part of a pipeline may have landed: ask what did.
        let mut resync = false;
        let mut failing_since: Option<Instant> = None;
        // When the generation's lease was last renewed by an append.
        let mut leased: Option<Instant> = None;
        loop {
            if resync {
                match self.last_written().await {
                    Ok(last) => {
                        sent = sent.max(last);
                        resync = false;
                    }
                    Err(()) => {
                        if self.gave_up(failing_since) {
                            return;
                        }
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            // Registered before the read, so no append is missed.
            let written = self.log.written();
            let mut read = match self.log.read(sent) {
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
                let now_model = self.log.model();
                let renew = !ends && leased.is_none_or(|at| at.elapsed() >= LEASE_EVERY);
                let pipe = self.append(&read, now_model != model, ends, renew);
                match self.redis.pipeline::<()>("append", &pipe).await {
                    Ok(()) => {
                        sent = Some(last);
                        if renew {
                            leased = Some(Instant::now());
                        }
                        model = now_model;
                        failing_since = None;
                        if ends {
                            // Dropped for retention while this flush was on
                            // its way: the delete `forget` sent may have
                            // come first, so the keys go again.
                            if self.log.is_forgotten() {
                                let mut del = redis::cmd("DEL");
                                del.arg(&self.keys.meta).arg(&self.keys.log);
                                let _ = self.redis.command::<()>("forget", &del).await;
                            }
                            return;
                        }
                        // Unwatched elsewhere, nobody reads Redis yet: let the
                        // next frames gather (a resume elsewhere reads them a
                        // little later; the client here is not held up).
                        if self.owned.elsewhere() != Elsewhere::Watched {
                            tokio::time::sleep(LINGER).await;
                        }
                    }
                    Err(_) => {
                        failing_since.get_or_insert_with(Instant::now);
                        if self.gave_up(failing_since) {
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
                () = written => {}
                _ = tick.tick() => {
                    if self.look().await == Some(false) {
                        // The record is gone (Redis restarted empty): write
                        // it again, and the log from what is still held.
                        let _ = self.redis.pipeline::<()>("republish", &self.republish()).await;
                        sent = None;
                        resync = true;
                    }
                }
            }
        }
    }

    /// The pipeline that appends `read`'s entries (with the model, if it
    /// changed, the lease's renewal if `renew`, and at the end the whole
    /// record again, in case Redis lost it, and the keys' time to live).
    fn append(&self, read: &Read, model_changed: bool, ends: bool, renew: bool) -> redis::Pipeline {
        let keys = &self.keys;
        let mut pipe = redis::pipe();
        let min_id = codec::stream_id(self.log.first_kept());
        for (i, entry) in read.entries.iter().enumerate() {
            let (field, value) = codec::encode(entry);
            pipe.cmd("XADD")
                .arg(&keys.log)
                .arg("MINID")
                .arg("~")
                .arg(&min_id)
                .arg(codec::stream_id(read.first + i as u64))
                .arg(field)
                .arg(value)
                .ignore();
        }
        if model_changed && !ends {
            pipe.hset(&keys.meta, "model", self.log.model()).ignore();
        }
        if renew {
            renew_lease(&mut pipe, keys, &self.redis);
        }
        if ends {
            let retain = self.bounds.retain.as_millis() as i64;
            pipe.add_command(record(&self.keys, &self.redis, &self.log, &self.owner_name))
                .ignore()
                .pexpire(&keys.meta, retain)
                .ignore()
                .pexpire(&keys.log, retain)
                .ignore();
        }
        pipe
    }

    /// The record again, with a running generation's time to live.
    fn republish(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(record(&self.keys, &self.redis, &self.log, &self.owner_name))
            .ignore()
            .pexpire(&self.keys.meta, RUNNING_TTL.as_millis() as i64)
            .ignore();
        pipe
    }

    /// The index of the last frame in Redis.
    async fn last_written(&self) -> Result<Option<u64>, ()> {
        let mut last = redis::cmd("XREVRANGE");
        last.arg(&self.keys.log)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let reply: redis::streams::StreamRangeReply =
            self.redis.command("resync", &last).await.map_err(|_| ())?;
        Ok(reply.ids.first().and_then(|id| codec::index_of(&id.id)))
    }

    /// An ended generation whose frames Redis could not take for longer than
    /// they would have been kept is given up.
    fn gave_up(&self, failing_since: Option<Instant>) -> bool {
        self.log.progress().0 != Status::Running
            && failing_since.is_some_and(|since| since.elapsed() > self.bounds.retain)
    }

    /// One look at what other replicas said, and the keys' expiry pushed on:
    /// whether the record is still there (`None`: Redis did not answer).
    async fn look(&self) -> Option<bool> {
        let keys = &self.keys;
        let ttl = RUNNING_TTL.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.exists(&keys.watched)
            .exists(&keys.cancel)
            .pexpire(&keys.meta, ttl)
            .pexpire(&keys.log, ttl)
            .ignore();
        renew_lease(&mut pipe, keys, &self.redis);
        let (watched, cancel, kept) = self
            .redis
            .pipeline::<(bool, bool, bool)>("look", &pipe)
            .await
            .ok()?;
        {
            let mut remote = lock(&self.owned.remote);
            remote.now = watched;
            if watched {
                remote.seen = Some(Instant::now());
            }
        }
        if cancel {
            self.log.cancel();
        }
        Some(kept)
    }
}
