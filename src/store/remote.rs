//! [`RedisRemote`]: the generations registry's [`Remote`] port when
//! `[store] redis_url` is set.
//!
//! A generation made here is published (its record, [`owner::record`]) and
//! copied out by its writer ([`super::owner`]); a generation another replica
//! runs is opened as a copy ([`super::copy`]). Cancels from other replicas
//! come on the `cancel` channel ([`RedisRemote::take_cancels`]). A generation
//! the registry here drops for retention is deleted from Redis too, so
//! `retain_max_bytes` holds there as well.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::codec::GenKeys;
use super::connection::Redis;
use super::copy::{self, Copied, Opening};
use super::owner::{self, Bounds, CREATED_TTL, RETRY};
use crate::auth::Keys;
use crate::config::Streams;
use crate::generations::{Entry, Log, Name, NameKind, Named, Owner, Pending, Remote, Replication};

/// Copies kept after their last use while nobody follows them, so that a
/// status poll reads only the new frames: how many, how many bytes of
/// frames together, and for how long.
const COPIES_KEPT: usize = 16;
const COPY_BYTES_KEPT: usize = 16 * 1024 * 1024;
const COPY_KEPT_FOR: Duration = Duration::from_secs(10);
/// How long a chat's binding outlives `retain_secs`: the longest a chat's
/// generation is expected to run and still be found by a reconnect on
/// another replica (one that runs longer is found only on its own).
const CHAT_BOUND_FOR: Duration = Duration::from_secs(3600);
/// `KEYS[1]` the name, `ARGV[1]` the value, `ARGV[2]` its time to live in ms.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";
/// Copies remembered (weakly, while someone holds them) at most.
const COPIES_KNOWN: usize = 1024;

pub struct RedisRemote {
    redis: Arc<Redis>,
    /// Generations made here, for the cancels other replicas send.
    made: Mutex<HashMap<String, Weak<Log>>>,
    /// Copies of other replicas' generations opened here, shared by their
    /// watchers (one follower each).
    copies: Mutex<HashMap<String, Known>>,
    keys: Arc<Keys>,
    bounds: Bounds,
    /// Puts a name that is free, or answers what it holds (one round trip,
    /// and atomic: two replicas cannot both claim a key).
    claim_script: redis::Script,
    max_log_bytes: usize,
    /// `XRANGE` reads at most this many frames: no fewer than a local log
    /// can hold (each costs at least its slot and 16 bytes of text).
    max_entries: usize,
}

/// A copy opened here.
struct Known {
    log: Weak<Log>,
    copy: Arc<Copied>,
    /// Held for a while after its last use.
    kept: Option<(Arc<Log>, Instant)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisRemote {
    pub fn new(redis: Arc<Redis>, streams: &Streams, keys: Arc<Keys>) -> RedisRemote {
        let smallest = std::mem::size_of::<Entry>() + 16;
        RedisRemote {
            redis,
            made: Mutex::default(),
            copies: Mutex::default(),
            keys,
            claim_script: redis::Script::new(CLAIM),
            bounds: Bounds {
                retain: Duration::from_secs(streams.retain_secs),
            },
            max_log_bytes: streams.max_log_bytes,
            max_entries: (streams.max_log_bytes / smallest).max(16),
        }
    }

    /// Whose a generation is, as Redis names it.
    fn owner_name(&self, owner: Owner) -> String {
        owner.map_or_else(String::new, |key| self.keys.fingerprint(key))
    }

    /// A copy opened before, still held, with its owner's name.
    fn known(&self, id: &str) -> Option<(Arc<Log>, Arc<Copied>)> {
        let copies = lock(&self.copies);
        let known = copies.get(id)?;
        Some((known.log.upgrade()?, known.copy.clone()))
    }

    fn keep(&self, id: &str, log: &Arc<Log>, copy: Arc<Copied>) {
        let now = Instant::now();
        let mut copies = lock(&self.copies);
        copies.insert(
            id.to_owned(),
            Known {
                log: Arc::downgrade(log),
                copy,
                kept: Some((log.clone(), now)),
            },
        );
        // Bounded: the oldest held go past COPIES_KEPT, COPY_BYTES_KEPT or
        // COPY_KEPT_FOR, and the dead past COPIES_KNOWN.
        let mut held: Vec<(Instant, String, usize)> = copies
            .iter()
            .filter_map(|(id, known)| {
                let (log, at) = known.kept.as_ref()?;
                Some((*at, id.clone(), log.bytes()))
            })
            .collect();
        // Newest first: they are the ones kept.
        held.sort_by_key(|held| std::cmp::Reverse(held.0));
        let mut bytes = 0;
        for (i, (at, id, size)) in held.into_iter().enumerate() {
            bytes += size;
            if i >= COPIES_KEPT || bytes > COPY_BYTES_KEPT || now - at >= COPY_KEPT_FOR {
                if let Some(known) = copies.get_mut(&id) {
                    known.kept = None;
                }
            }
        }
        if copies.len() > COPIES_KNOWN {
            copies.retain(|_, known| known.log.strong_count() > 0);
        }
    }

    async fn open_copy(
        &self,
        id: &str,
        owner: Owner,
    ) -> Result<Option<Arc<Log>>, crate::error::ApiError> {
        let owner_name = self.owner_name(owner);
        if let Some((log, copy)) = self.known(id) {
            if copy.current_for(&log, &owner_name) {
                return Ok(Some(log));
            }
            if copy.owner_name() == owner_name {
                if !copy::catch_up(&copy, &log, self.max_entries).await? {
                    return Ok(None);
                }
                self.keep(id, &log, copy);
                return Ok(Some(log));
            }
        }
        let opened = copy::open(Opening {
            redis: &self.redis,
            id,
            owner,
            owner_name: &owner_name,
            max_log_bytes: self.max_log_bytes,
            max_entries: self.max_entries,
        })
        .await?;
        Ok(opened.map(|(log, copy)| {
            self.keep(id, &log, copy);
            log
        }))
    }

    /// Cancels the generations of this replica that a `DELETE` elsewhere
    /// stopped, for as long as the process serves; reconnects after a failure.
    pub async fn take_cancels(&self) {
        let channel = self.redis.key("cancel");
        loop {
            if let Ok(mut pubsub) = self.redis.pubsub().await {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(id) = message.get_payload::<String>() else {
                            continue;
                        };
                        let log = lock(&self.made).get(&id).and_then(Weak::upgrade);
                        if let Some(log) = log {
                            log.cancel();
                        }
                    }
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

impl Remote for RedisRemote {
    fn publish<'a>(&'a self, log: &'a Arc<Log>) -> Pending<'a, Arc<dyn Replication>> {
        Box::pin(async move {
            let id = log.id().as_str();
            let keys = GenKeys::of(&self.redis, id);
            let owner_name = self.owner_name(log.owner());
            let mut pipe = redis::pipe();
            pipe.add_command(owner::record(&keys, &self.redis, log, &owner_name))
                .ignore()
                .pexpire(&keys.meta, CREATED_TTL.as_millis() as i64)
                .ignore();
            owner::renew_lease(&mut pipe, &keys, &self.redis);
            self.redis.pipeline::<()>("create", &pipe).await?;
            {
                let mut made = lock(&self.made);
                if made.len() >= COPIES_KNOWN {
                    made.retain(|_, log| log.strong_count() > 0);
                }
                made.insert(id.to_owned(), Arc::downgrade(log));
            }
            let owned = owner::start(self.redis.clone(), log.clone(), owner_name, self.bounds);
            Ok(owned as Arc<dyn Replication>)
        })
    }

    fn open<'a>(&'a self, id: &'a str, owner: Owner) -> Pending<'a, Option<Arc<Log>>> {
        Box::pin(self.open_copy(id, owner))
    }

    fn forget(&self, id: &str) {
        lock(&self.made).remove(id);
        let keys = GenKeys::of(&self.redis, id);
        let redis = self.redis.clone();
        // Best effort: keys left behind expire after `retain_secs`.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            let mut del = redis::cmd("DEL");
            del.arg(&keys.meta).arg(&keys.log);
            let _ = redis.command::<()>("forget", &del).await;
        });
    }

    fn name<'a>(
        &'a self,
        name: Name<'a>,
        named: &'a Named,
        only_new: bool,
    ) -> Pending<'a, Option<Named>> {
        Box::pin(async move {
            let key = self.name_key(name);
            let ttl = match name.kind {
                NameKind::Chat => self.bounds.retain + CHAT_BOUND_FOR,
                NameKind::IdempotencyKey => self.bounds.retain,
            };
            let ttl = ttl.as_millis() as u64;
            if !only_new {
                let mut set = redis::cmd("SET");
                set.arg(&key).arg(named.encode()).arg("PX").arg(ttl);
                self.redis.command::<()>("name", &set).await?;
                return Ok(None);
            }
            let mut claim = self.claim_script.prepare_invoke();
            claim.key(&key).arg(named.encode()).arg(ttl);
            let held: Option<String> = self.redis.script("claim", &claim).await?;
            Ok(held.as_deref().and_then(Named::decode))
        })
    }

    fn named<'a>(&'a self, name: Name<'a>) -> Pending<'a, Option<Named>> {
        Box::pin(async move {
            let mut get = redis::cmd("GET");
            get.arg(self.name_key(name));
            let held: Option<String> = self.redis.command("named", &get).await?;
            Ok(held.as_deref().and_then(Named::decode))
        })
    }

    fn ready(&self) -> bool {
        self.redis.healthy()
    }
}

impl RedisRemote {
    /// Where a name is kept: by kind and owner, so that one client cannot
    /// reach another's chat or key by its name.
    fn name_key(&self, name: Name<'_>) -> String {
        self.redis.key(&format!(
            "{}:{}:{}",
            name.kind.as_str(),
            self.owner_name(name.owner),
            name.name
        ))
    }
}
