//! A generation another replica runs, seen here: a read-only [`Log`] filled
//! from Redis, which watchers here read as any log, and its [`Copied`] port.
//!
//! Opening one reads the generation's record and its frames so far
//! (`HGETALL`, `XRANGE`). Once someone waits on it (a watcher, or a `DELETE`
//! waiting for the end), the [`Follower`](super::follower) keeps it current.
//! A copy opened again while nobody follows it (a status `GET` after
//! another) only reads the frames it lacks ([`catch_up`]), so a status poll
//! costs Redis the new frames, not the whole log. `DELETE` here sets the
//! cancel flag and tells the owner on the `cancel` channel.
//!
//! What it may not do: write frames of a generation whose owner lives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::streams::StreamRangeReply;
use tokio_util::sync::CancellationToken;

use super::codec::{self, GenKeys};
use super::connection::Redis;
use super::follower::Follower;
use crate::error::ApiError;
use crate::generations::{Elsewhere, GenId, Log, Owner, Record, Replication, Status};

/// How long a cancel request stays for an owner that missed the message.
const CANCEL_FOR: Duration = Duration::from_secs(60);

/// The [`Replication`] of a copy.
pub struct Copied {
    redis: Arc<Redis>,
    keys: GenKeys,
    /// Whose it is, as the record names it.
    owner_name: String,
    log: Weak<Log>,
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
pub async fn open(opening: Opening<'_>) -> Result<Option<(Arc<Log>, Arc<Copied>)>, ApiError> {
    let redis = opening.redis;
    let keys = GenKeys::of(redis, opening.id);
    let meta: HashMap<String, String> = redis
        .command("find", redis::cmd("HGETALL").arg(&keys.meta))
        .await?;
    if meta.is_empty() || meta.get("owner").map(String::as_str) != Some(opening.owner_name) {
        return Ok(None);
    }
    let number = |field: &str| {
        meta.get(field)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let log = Arc::new(Log::copy(
        Record {
            id: GenId::known(opening.id),
            owner: opening.owner,
            model: meta.get("model").cloned().unwrap_or_default(),
            created: number("created"),
            prompt_tokens: u32::try_from(number("prompt_tokens")).unwrap_or(u32::MAX),
            max_log_bytes: opening.max_log_bytes,
        },
        CancellationToken::new(),
    ));
    let copy = Arc::new(Copied {
        redis: redis.clone(),
        keys,
        owner_name: opening.owner_name.to_owned(),
        log: Arc::downgrade(&log),
        following: AtomicBool::new(false),
    });
    log.replicate(copy.clone());
    // The record was read above: only the frames are.
    let frames: StreamRangeReply = redis
        .command("find", &frames_from(&copy.keys, 0, opening.max_entries))
        .await?;
    copy_frames(&log, frames);
    Ok(Some((log, copy)))
}

/// Reads the frames `log` lacks, once the record says the generation is
/// still there and `copy`'s owner's (false if not).
pub async fn catch_up(copy: &Copied, log: &Log, max_entries: usize) -> Result<bool, ApiError> {
    let (_, next) = log.progress();
    let mut pipe = redis::pipe();
    pipe.hget(&copy.keys.meta, "owner")
        .add_command(frames_from(&copy.keys, next, max_entries));
    let (owner, frames): (Option<String>, StreamRangeReply) =
        copy.redis.pipeline("find", &pipe).await?;
    if owner.as_deref() != Some(copy.owner_name.as_str()) {
        return Ok(false);
    }
    copy_frames(log, frames);
    Ok(true)
}

/// The `XRANGE` of at most `max_entries` frames from frame `next` on.
fn frames_from(keys: &GenKeys, next: u64, max_entries: usize) -> redis::Cmd {
    let mut range = redis::cmd("XRANGE");
    range
        .arg(&keys.log)
        .arg(codec::stream_id(next))
        .arg("+")
        .arg("COUNT")
        .arg(max_entries);
    range
}

fn copy_frames(log: &Log, frames: StreamRangeReply) {
    for frame in frames.ids {
        if let (Some(index), Some(entry)) = (codec::index_of(&frame.id), codec::decode(&frame.map))
        {
            log.copy_frame(index, entry);
        }
    }
}

impl Copied {
    /// Another request here for the same generation may share this copy
    /// as it is: it is kept current (followed, or ended) and `owner_name`'s.
    pub fn current_for(&self, log: &Log, owner_name: &str) -> bool {
        self.owner_name == owner_name
            && (self.following.load(Ordering::SeqCst) || log.progress().0 != Status::Running)
    }

    pub fn owner_name(&self) -> &str {
        &self.owner_name
    }
}

impl Replication for Copied {
    /// Its watchers elsewhere are its owner's business.
    fn elsewhere(&self) -> Elsewhere {
        Elsewhere::Unwatched(None)
    }

    /// Starts the follower, once, if the generation still runs.
    fn follow(&self) {
        let Some(log) = self.log.upgrade() else {
            return;
        };
        if self.following.swap(true, Ordering::SeqCst) || log.progress().0 != Status::Running {
            return;
        }
        let follower = Follower {
            redis: self.redis.clone(),
            keys: self.keys.clone(),
            log: self.log.clone(),
        };
        // It ends with the generation, or soon after the last watcher here.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(follower.run());
    }

    fn cancel(&self) -> bool {
        let (redis, keys) = (self.redis.clone(), self.keys.clone());
        let cancel = async move {
            // Two commands, not a pipeline: the flag is in the generation's
            // Cluster slot, the channel in another.
            let mut flag = redis::cmd("SET");
            flag.arg(&keys.cancel)
                .arg(1)
                .arg("PX")
                .arg(CANCEL_FOR.as_millis() as u64);
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(redis.key("cancel")).arg(&keys.id);
            let _ = redis.command::<()>("cancel", &flag).await;
            let _ = redis.command::<()>("cancel", &publish).await;
        };
        // A `DELETE` answers after the cancelled frame comes back, or after
        // its own wait; the request to the owner goes either way.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(cancel);
        true
    }
}
