//! A generation another replica runs, watched here: an in-process copy of
//! its log, filled from Redis, which watchers here read as any log.
//!
//! Opening one reads the generation's record and its frames so far
//! (`HGETALL`, `XRANGE`). Once someone waits on it (a watcher, or a
//! `DELETE` waiting for the end), a follower task reads new frames with
//! `XREAD BLOCK` on a connection of its own (past `[store] blocking_readers`
//! such followers, it polls every [`POLL`] on the shared connection instead;
//! watchers here share one followed copy through `RedisStore`), marks the
//! generation watched for its owner while watchers are here, and, each time
//! a read comes back empty, checks that the owner's lease still exists: when
//! it has been gone for [`LOST_AFTER`] (not at once: a Redis that restarted
//! empty has no leases until each replica renews its own), the generation is
//! lost, and a `generation_lost` error ends it for every watcher: within
//! [`LEASE_FOR`](super::connection::LEASE_FOR) + `LOST_AFTER` + two
//! [`BLOCK`]s of the owner's death, 8 s, under the contract's 10 s.
//! A follower that cannot reach Redis for [`GIVE_UP`] ends the copy with
//! `store_unavailable`, so a watcher never hangs. `DELETE` here sets the
//! cancel flag and tells the owner on the `cancel` channel.
//!
//! What it may not do: write frames of a generation whose owner lives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, GenKeys};
use super::connection::Redis;
use crate::error::{ApiError, ErrorKind};
use crate::generation::Usage;
use crate::generations::{
    Copied, Entry, GenId, GenerationLog, Gone, LocalLog, Owner, Read, Snapshot, Status,
};

/// How long one `XREAD` blocks, and so how often an idle follower looks at
/// the owner's lease.
pub const BLOCK: Duration = Duration::from_secs(1);
/// How long an owner's lease must stay missing before its generation is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(2);
/// How long the `watched` mark outlives the follower's last renewal.
const WATCHED_FOR: Duration = Duration::from_secs(3);
/// How long a follower goes on trying to reach Redis before it ends the copy.
pub const GIVE_UP: Duration = Duration::from_secs(10);
/// How long a cancel request stays for an owner that missed the message.
const CANCEL_FOR: Duration = Duration::from_secs(60);
/// Frames read at once.
const READ_COUNT: usize = 512;
/// How often a polling follower reads.
const POLL: Duration = Duration::from_millis(100);

pub struct CopiedLog {
    log: Arc<LocalLog>,
    redis: Arc<Redis>,
    keys: GenKeys,
    replica: String,
    /// Whose it is, as the record names it.
    owner_name: String,
    following: AtomicBool,
}

/// What [`open`] needs to know of the store.
pub struct Opening<'a> {
    pub redis: &'a Arc<Redis>,
    pub id: &'a str,
    pub owner: Owner,
    /// The owner's fingerprint, as the record names it.
    pub owner_name: &'a str,
    pub max_log_bytes: usize,
    pub max_entries: usize,
}

/// A copy of generation `id` if Redis has it and it is `owner`'s.
pub async fn open(opening: Opening<'_>) -> Result<Option<Arc<CopiedLog>>, ApiError> {
    let redis = opening.redis;
    let keys = GenKeys::of(redis, opening.id);
    let meta: HashMap<String, String> = redis
        .command("find", redis::cmd("HGETALL").arg(&keys.meta))
        .await?;
    if meta.is_empty() || meta.get("owner").map(String::as_str) != Some(opening.owner_name) {
        return Ok(None);
    }
    let replica = meta.get("replica").cloned().unwrap_or_default();
    let number = |field: &str| {
        meta.get(field)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut range = redis::cmd("XRANGE");
    range
        .arg(&keys.log)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(opening.max_entries);
    let frames: StreamRangeReply = redis.command("find", &range).await?;
    let log = Arc::new(LocalLog::copy(
        Copied {
            id: GenId::known(opening.id),
            owner: opening.owner,
            model: meta.get("model").cloned().unwrap_or_default(),
            created: number("created"),
            prompt_tokens: u32::try_from(number("prompt_tokens")).unwrap_or(u32::MAX),
            max_log_bytes: opening.max_log_bytes,
        },
        CancellationToken::new(),
    ));
    for frame in frames.ids {
        if let (Some(index), Some(entry)) = (codec::index_of(&frame.id), codec::decode(&frame.map))
        {
            log.copy_frame(index, entry);
        }
    }
    Ok(Some(Arc::new(CopiedLog {
        log,
        redis: redis.clone(),
        keys,
        replica,
        owner_name: opening.owner_name.to_owned(),
        following: AtomicBool::new(false),
    })))
}

impl CopiedLog {
    /// Another watcher here of the same generation may share this copy: it
    /// is kept current (followed, or ended) and `owner_name`'s.
    pub fn shareable_with(&self, owner_name: &str) -> bool {
        self.owner_name == owner_name
            && (self.following.load(Ordering::SeqCst) || self.log.progress().0 != Status::Running)
    }

    /// Starts the follower, once, if the generation still runs.
    fn follow(&self) {
        if self.following.swap(true, Ordering::SeqCst) || self.log.progress().0 != Status::Running {
            return;
        }
        let follower = Follower {
            redis: self.redis.clone(),
            keys: self.keys.clone(),
            replica: self.replica.clone(),
            log: Arc::downgrade(&self.log),
        };
        // It ends with the generation, or soon after the last watcher here.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(follower.run());
    }
}

struct Follower {
    redis: Arc<Redis>,
    keys: GenKeys,
    replica: String,
    log: Weak<LocalLog>,
}

/// How a follower reads: blocking on a connection of its own, or polling
/// on the shared one (past `[store] blocking_readers`).
enum Reader {
    Blocking {
        conn: Option<MultiplexedConnection>,
        _slot: tokio::sync::OwnedSemaphorePermit,
    },
    Polling {
        /// When the owner's lease was last looked at.
        looked: Option<Instant>,
    },
}

impl Follower {
    async fn run(self) {
        let mut reader = match self.redis.followers().try_acquire_owned() {
            Ok(slot) => Reader::Blocking {
                conn: None,
                _slot: slot,
            },
            Err(_) => Reader::Polling { looked: None },
        };
        let mut failing_since: Option<Instant> = None;
        let mut marked: Option<Instant> = None;
        let mut owner_missing: Option<Instant> = None;
        loop {
            let (next, watched) = {
                let Some(log) = self.log.upgrade() else {
                    return;
                };
                let (status, next) = log.progress();
                if status != Status::Running {
                    return;
                }
                (next, log.unwatched_for().is_none())
            };
            let mark = watched && marked.is_none_or(|at| at.elapsed() >= WATCHED_FOR / 3);
            match self
                .round(&mut reader, next, mark, &mut owner_missing)
                .await
            {
                Ok(()) => {
                    failing_since = None;
                    if mark {
                        marked = Some(Instant::now());
                    }
                }
                Err(_) => {
                    if let Reader::Blocking { conn, .. } = &mut reader {
                        *conn = None;
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= GIVE_UP {
                        if let Some(log) = self.log.upgrade() {
                            log.copy_frame(next, Entry::Error(super::connection::unavailable()));
                        }
                        return;
                    }
                    tokio::time::sleep(super::writer::RETRY).await;
                }
            }
        }
    }

    /// One read of the frames after `next - 1` (blocking, or a poll); when
    /// none came, a look at the owner's lease (at most once per [`BLOCK`]).
    async fn round(
        &self,
        reader: &mut Reader,
        next: u64,
        mark: bool,
        owner_missing: &mut Option<Instant>,
    ) -> Result<(), ApiError> {
        let mut pipe = redis::pipe();
        if mark {
            pipe.cmd("SET")
                .arg(&self.keys.watched)
                .arg(self.redis.replica())
                .arg("PX")
                .arg(WATCHED_FOR.as_millis() as u64)
                .ignore();
        }
        pipe.cmd("XREAD").arg("COUNT").arg(READ_COUNT);
        if let Reader::Blocking { .. } = reader {
            pipe.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        pipe.arg("STREAMS")
            .arg(&self.keys.log)
            .arg(format!("0-{next}"));
        let (reply,): (Option<StreamReadReply>,) = match reader {
            Reader::Blocking { conn, .. } => {
                let conn = match conn {
                    Some(conn) => conn,
                    None => conn.insert(self.redis.dedicated(BLOCK).await?),
                };
                self.redis.timed("follow", pipe.query_async(conn)).await?
            }
            Reader::Polling { .. } => self.redis.pipeline("follow", &pipe).await?,
        };
        let frames: Vec<_> = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        let Some(log) = self.log.upgrade() else {
            return Ok(());
        };
        if !frames.is_empty() {
            for frame in frames {
                if let (Some(index), Some(entry)) =
                    (codec::index_of(&frame.id), codec::decode(&frame.map))
                {
                    log.copy_frame(index, entry);
                }
            }
            return Ok(());
        }
        if let Reader::Polling { looked } = reader {
            if looked.is_some_and(|at| at.elapsed() < BLOCK) {
                drop(log);
                tokio::time::sleep(POLL).await;
                return Ok(());
            }
            *looked = Some(Instant::now());
        }
        let mut pipe = redis::pipe();
        pipe.exists(self.redis.replica_key(&self.replica))
            .exists(&self.keys.meta);
        let (alive, kept): (bool, bool) = self.redis.pipeline("follow", &pipe).await?;
        if alive {
            *owner_missing = None;
        }
        let gone_long =
            !alive && owner_missing.get_or_insert_with(Instant::now).elapsed() >= LOST_AFTER;
        if !kept || gone_long {
            lose(&self.redis, &self.keys, &log).await;
        }
        Ok(())
    }
}

/// Ends a generation whose owner died: `generation_lost` for the watchers
/// here, and in Redis for every other replica's (best effort: Redis may be
/// what failed).
async fn lose(redis: &Redis, keys: &GenKeys, log: &LocalLog) {
    let (_, next) = log.progress();
    let lost = ApiError::new(
        ErrorKind::GenerationLost,
        format!(
            "the replica running generation `{}` stopped; its answer is lost",
            keys.id
        ),
    );
    let (field, value) = codec::encode(&Entry::Error(lost.clone()));
    let mut pipe = redis::pipe();
    pipe.cmd("XADD")
        .arg(&keys.log)
        .arg(codec::stream_id(next))
        .arg(field)
        .arg(value)
        .ignore()
        .hset(&keys.meta, "status", Status::Error.as_str())
        .ignore();
    // Another replica may have written it first (the id is then taken).
    let _ = redis.pipeline::<()>("lose", &pipe).await;
    log.copy_frame(next, Entry::Error(lost));
}

impl GenerationLog for CopiedLog {
    fn id(&self) -> &GenId {
        self.log.id()
    }

    fn model(&self) -> String {
        self.log.model()
    }

    fn serving(&self, model: &str) {
        self.log.serving(model);
    }

    /// Nobody here runs it; frames come from its owner.
    fn append(&self, _entry: Entry) -> u64 {
        self.log.progress().1
    }

    fn read(&self, after: Option<u64>) -> Result<Read, Gone> {
        self.log.read(after)
    }

    fn changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.follow();
        self.log.changed()
    }

    fn cancel(&self) {
        let (redis, keys) = (self.redis.clone(), self.keys.clone());
        let cancel = async move {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&keys.cancel)
                .arg(1)
                .arg("PX")
                .arg(CANCEL_FOR.as_millis() as u64)
                .ignore()
                .cmd("PUBLISH")
                .arg(redis.key("cancel"))
                .arg(&keys.id)
                .ignore();
            let _ = redis.pipeline::<()>("cancel", &pipe).await;
        };
        // A `DELETE` answers after the cancelled frame comes back, or after
        // its own wait; the request to the owner goes either way.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(cancel);
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
        if joined {
            self.follow();
        }
        self.log.watchers_changed(joined);
    }

    fn unwatched_for(&self) -> Option<Duration> {
        self.log.unwatched_for()
    }
}
