//! The follower of a copy ([`super::copy`]): it keeps a generation another
//! replica runs current here, for as long as the generation runs and
//! someone here waits on it.
//!
//! It reads new frames with `XREAD BLOCK` on a connection of its own (past
//! `[store] blocking_readers` such followers, it polls every [`POLL`] on the
//! shared connection instead), marks the generation watched for its owner
//! while watchers are here, and, each time a read comes back empty, checks
//! that the generation's lease (its owner renews it each
//! [`LEASE_EVERY`](super::connection::LEASE_EVERY) while it runs, beside its
//! other keys, so that this check and the script below stay in the
//! generation's Cluster slot) and its record still exist.
//!
//! - The lease gone for [`LOST_AFTER`] (not at once: a Redis that restarted
//!   empty has no leases until each owner renews its own): the generation
//!   is lost, and a `generation_lost` error ends it for every watcher, within
//!   [`LEASE_FOR`](super::connection::LEASE_FOR) + `LOST_AFTER` + two
//!   [`BLOCK`]s of the owner's death, 8 s, under the contract's 10 s. The
//!   error is written to Redis only if the lease is still gone and the
//!   record still says `running`, in one script, so a live owner's stream
//!   never gets a false terminal frame.
//! - The record gone while the owner lives (Redis restarted empty): the
//!   owner writes it again within a look; only after [`UNKEPT_AFTER`] does
//!   the copy here end, and Redis is left alone.
//!
//! A follower that cannot reach Redis for [`GIVE_UP`] ends the copy with
//! `store_unavailable`, so a watcher never hangs.
//!
//! What it may not do: write a frame of a generation whose owner lives.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::link::Shared;
use redis::streams::StreamReadReply;
use redis::Script;
use tokio::time::Instant;

use super::codec::{self, GenKeys};
use super::connection::Redis;
use crate::error::{ApiError, ErrorKind};
use crate::generations::{Entry, Log, Status};

/// How long one `XREAD` blocks, and so how often an idle follower looks at
/// the generation's lease.
pub const BLOCK: Duration = Duration::from_secs(1);
/// How long a generation's lease must stay missing before its generation is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(2);
/// How long a generation's record may stay missing while its owner lives
/// before the copy here gives it up (the owner writes it again each second).
pub const UNKEPT_AFTER: Duration = Duration::from_secs(5);
/// How long the `watched` mark outlives the follower's last renewal.
const WATCHED_FOR: Duration = Duration::from_secs(3);
/// How long a follower goes on trying to reach Redis before it ends the copy.
pub const GIVE_UP: Duration = Duration::from_secs(10);
/// Frames read at once.
const READ_COUNT: usize = 512;
/// How often a polling follower reads.
const POLL: Duration = Duration::from_millis(100);

/// KEYS: the record, the log, the generation's lease. ARGV: the error frame's
/// stream id, field and value. Writes it only for a dead owner's running
/// generation; 1 if it did.
const LOSE: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'running' then return 0 end
redis.pcall('XADD', KEYS[2], 'NOMKSTREAM', ARGV[1], ARGV[2], ARGV[3])
if status then redis.call('HSET', KEYS[1], 'status', 'error') end
return 1
";

pub struct Follower {
    pub redis: Arc<Redis>,
    pub keys: GenKeys,
    pub log: Weak<Log>,
}

/// What a follower last saw missing, and since when.
#[derive(Default)]
struct Missing {
    lease: Option<Instant>,
    record: Option<Instant>,
}

/// How a follower reads: blocking on a connection of its own, or polling
/// on the shared one (past `[store] blocking_readers`).
enum Reader {
    Blocking {
        conn: Option<Shared>,
        _slot: tokio::sync::OwnedSemaphorePermit,
    },
    Polling {
        /// When the generation's lease was last looked at.
        looked: Option<Instant>,
    },
}

impl Follower {
    pub async fn run(self) {
        let mut reader = match self.redis.followers().try_acquire_owned() {
            Ok(slot) => Reader::Blocking {
                conn: None,
                _slot: slot,
            },
            Err(_) => Reader::Polling { looked: None },
        };
        let mut failing_since: Option<Instant> = None;
        let mut marked: Option<Instant> = None;
        let mut missing = Missing::default();
        loop {
            let (next, watched) = {
                let Some(log) = self.log.upgrade() else {
                    return;
                };
                let (status, next) = log.progress();
                if status != Status::Running {
                    return;
                }
                (next, log.watched_here())
            };
            let mark = watched && marked.is_none_or(|at| at.elapsed() >= WATCHED_FOR / 3);
            match self.round(&mut reader, next, mark, &mut missing).await {
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
                    tokio::time::sleep(super::owner::RETRY).await;
                }
            }
        }
    }

    /// One read of the frames after `next - 1` (blocking, or a poll); when
    /// none came, a look at the generation's lease (at most once per [`BLOCK`]).
    async fn round(
        &self,
        reader: &mut Reader,
        next: u64,
        mark: bool,
        missing: &mut Missing,
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
        // `PTTL` first: a pipeline goes where its first keyed command's
        // slot is, and `EXISTS` (a multi-key command) names none.
        let mut pipe = redis::pipe();
        pipe.pttl(&self.keys.alive).exists(&self.keys.meta);
        let (lease_ttl, kept): (i64, bool) = self.redis.pipeline("follow", &pipe).await?;
        // -2: no such key.
        let alive = lease_ttl != -2;
        if alive {
            missing.lease = None;
        }
        if kept {
            missing.record = None;
        }
        let since = |at: &mut Option<Instant>| at.get_or_insert_with(Instant::now).elapsed();
        if !alive && since(&mut missing.lease) >= LOST_AFTER {
            lose(&self.redis, &self.keys, &log).await?;
        } else if !kept && since(&mut missing.record) >= UNKEPT_AFTER {
            log.copy_frame(log.progress().1, Entry::Error(lost(&self.keys)));
        }
        Ok(())
    }
}

fn lost(keys: &GenKeys) -> ApiError {
    ApiError::new(
        ErrorKind::GenerationLost,
        format!(
            "the replica running generation `{}` stopped; its answer is lost",
            keys.id
        ),
    )
}

/// Ends a generation whose owner died: `generation_lost` for the watchers
/// here, and in Redis for every other replica's, unless the generation's lease
/// came back or the generation ended meanwhile (then the follower reads on).
async fn lose(redis: &Redis, keys: &GenKeys, log: &Log) -> Result<(), ApiError> {
    let (_, next) = log.progress();
    let lost = lost(keys);
    let (field, value) = codec::encode(&Entry::Error(lost.clone()));
    let script = Script::new(LOSE);
    let mut invocation = script.key(&keys.meta);
    invocation
        .key(&keys.log)
        .key(&keys.alive)
        .arg(codec::stream_id(next))
        .arg(field)
        .arg(value);
    let wrote: u8 = redis.script("lose", &invocation).await?;
    if wrote == 1 {
        log.copy_frame(next, Entry::Error(lost));
    }
    Ok(())
}
