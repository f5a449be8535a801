//! [`RedisStore`]: the generations store when `[store] redis_url` is set.
//!
//! A generation made here is kept here as without Redis (a [`LocalStore`],
//! its retention and all), and copied out by its writer
//! ([`super::writer`]); finding one looks here first, then in Redis, where a
//! generation another replica runs is opened as a copy ([`super::copy`]).
//! Cancels from other replicas come on the `cancel` channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::codec::GenKeys;
use super::connection::{unix_ms, Redis};
use super::copy::{self, CopiedLog, Opening};
use super::writer::{self, Bounds, RUNNING_TTL};
use crate::auth::Keys;
use crate::config::Streams;
use crate::generations::{
    Entry, GenerationLog, GenerationStore, LocalStore, Owner, Pending, Status,
};

pub struct RedisStore {
    redis: Arc<Redis>,
    local: LocalStore,
    /// Copies of other replicas' generations being watched here, shared by
    /// their watchers (one follower, one connection each).
    copies: Mutex<HashMap<String, Weak<CopiedLog>>>,
    keys: Arc<Keys>,
    bounds: Bounds,
    max_log_bytes: usize,
}

impl RedisStore {
    pub fn new(redis: Arc<Redis>, streams: &Streams, keys: Arc<Keys>) -> RedisStore {
        // The local log holds at most this many entries (each costs at least
        // its slot and 16 bytes of text): the stream is trimmed to no fewer.
        let smallest = std::mem::size_of::<Entry>() + 16;
        RedisStore {
            redis,
            local: LocalStore::new(streams),
            copies: Mutex::default(),
            keys,
            bounds: Bounds {
                max_entries: (streams.max_log_bytes / smallest).max(16),
                retain: std::time::Duration::from_secs(streams.retain_secs),
            },
            max_log_bytes: streams.max_log_bytes,
        }
    }

    /// Whose a generation is, as Redis names it.
    fn owner_name(&self, owner: Owner) -> String {
        owner.map_or_else(String::new, |key| self.keys.fingerprint(key))
    }

    fn shared_copy(&self, id: &str, owner_name: &str) -> Option<Arc<CopiedLog>> {
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let copy = copies.get(id)?.upgrade()?;
        copy.shareable_with(owner_name).then_some(copy)
    }

    fn keep_copy(&self, id: &str, copy: &Arc<CopiedLog>) {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded by the copies alive: past a thousand, the dead go.
        if copies.len() >= 1024 {
            copies.retain(|_, c| c.strong_count() > 0);
        }
        copies.insert(id.to_owned(), Arc::downgrade(copy));
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
                        if let Some(log) = self.local.find_any(&id) {
                            log.cancel();
                        }
                    }
                }
            }
            tokio::time::sleep(writer::RETRY).await;
        }
    }
}

impl GenerationStore for RedisStore {
    fn create<'a>(
        &'a self,
        owner: Owner,
        model: &'a str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Pending<'a, Arc<dyn GenerationLog>> {
        Box::pin(async move {
            let log = self.local.create_now(owner, model, prompt_tokens, stop);
            let keys = GenKeys::of(&self.redis, log.id().as_str());
            let mut pipe = redis::pipe();
            pipe.hset_multiple(
                &keys.meta,
                &[
                    ("owner", self.owner_name(owner)),
                    ("model", model.to_owned()),
                    ("created", log.created().to_string()),
                    ("prompt_tokens", prompt_tokens.to_string()),
                    ("status", Status::Running.as_str().to_owned()),
                    ("replica", self.redis.replica().to_owned()),
                    ("created_ms", unix_ms().to_string()),
                ],
            )
            .ignore()
            .pexpire(&keys.meta, RUNNING_TTL.as_millis() as i64)
            .ignore();
            if let Err(err) = self.redis.pipeline::<()>("create", &pipe).await {
                // Ended at once, so that it retires like any other.
                log.append(Entry::Error(err.clone()));
                return Err(err);
            }
            let owned = writer::start(self.redis.clone(), log, keys, self.bounds);
            Ok(owned as Arc<dyn GenerationLog>)
        })
    }

    fn find<'a>(
        &'a self,
        id: &'a str,
        owner: Owner,
    ) -> Pending<'a, Option<Arc<dyn GenerationLog>>> {
        Box::pin(async move {
            if let Some(log) = self.local.find_now(id, owner) {
                return Ok(Some(log));
            }
            let owner_name = self.owner_name(owner);
            if let Some(copy) = self.shared_copy(id, &owner_name) {
                return Ok(Some(copy as Arc<dyn GenerationLog>));
            }
            let copy = copy::open(Opening {
                redis: &self.redis,
                id,
                owner,
                owner_name: &owner_name,
                max_log_bytes: self.max_log_bytes,
                max_entries: self.bounds.max_entries,
            })
            .await?;
            if let Some(copy) = &copy {
                self.keep_copy(id, copy);
            }
            Ok(copy.map(|copy| copy as Arc<dyn GenerationLog>))
        })
    }

    fn ready(&self) -> bool {
        self.redis.healthy()
    }
}
