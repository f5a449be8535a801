//! The in-process store: generations in a map, ended ones kept for
//! `streams.retain_secs` or until their logs together pass
//! `streams.retain_max_bytes`, oldest dropped first. Retention is enforced on
//! every create, find and end (no task of its own).
//!
//! Shared by every serving runtime; a running log's lock is taken by its
//! writer once per frame and by each watcher once per read.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::id::GenId;
use super::log::{Entry, Frames, Gone, Read, Snapshot, Status};
use super::store::{GenerationLog, GenerationStore, Owner, Pending};
use crate::config::Streams;
use crate::generation::Usage;
use crate::metrics as names;

pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    retain: Duration,
    retain_max_bytes: usize,
    max_log_bytes: usize,
    logs: Mutex<HashMap<String, Arc<LocalLog>>>,
    ended: Mutex<Retained>,
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

impl LocalStore {
    pub fn new(config: &Streams) -> LocalStore {
        LocalStore {
            inner: Arc::new(Inner {
                retain: Duration::from_secs(config.retain_secs),
                retain_max_bytes: config.retain_max_bytes,
                max_log_bytes: config.max_log_bytes,
                logs: Mutex::default(),
                ended: Mutex::default(),
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
        if !dropped.is_empty() {
            let mut logs = lock(&self.logs);
            for id in dropped {
                logs.remove(&id);
            }
        }
    }

    fn retire(&self, id: &GenId, bytes: usize, status: Status) {
        metrics::gauge!(names::GENERATIONS_RUNNING).decrement(1.0);
        metrics::counter!(names::GENERATIONS, "status" => status.as_str()).increment(1);
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

impl GenerationStore for LocalStore {
    fn create<'a>(
        &'a self,
        owner: Owner,
        model: &'a str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Pending<'a, Arc<dyn GenerationLog>> {
        let log = self.create_now(owner, model, prompt_tokens, stop);
        Box::pin(async move { Ok(log as Arc<dyn GenerationLog>) })
    }

    fn find<'a>(
        &'a self,
        id: &'a str,
        owner: Owner,
    ) -> Pending<'a, Option<Arc<dyn GenerationLog>>> {
        let found = self.find_now(id, owner);
        Box::pin(async move { Ok(found) })
    }
}

impl LocalStore {
    /// [`GenerationStore::create`], at once.
    pub fn create_now(
        &self,
        owner: Owner,
        model: &str,
        prompt_tokens: u32,
        stop: CancellationToken,
    ) -> Arc<LocalLog> {
        let now = Instant::now();
        self.inner.sweep(now);
        let log = Arc::new(LocalLog {
            id: GenId::random(),
            owner,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            prompt_tokens,
            state: Mutex::new(State {
                model: model.to_owned(),
                frames: Frames::new(self.inner.max_log_bytes),
                watchers: 0,
                unwatched_since: now,
            }),
            changed: Notify::new(),
            stop,
            store: Arc::downgrade(&self.inner),
        });
        metrics::gauge!(names::GENERATIONS_RUNNING).increment(1.0);
        lock(&self.inner.logs).insert(log.id.to_string(), log.clone());
        log
    }

    /// [`GenerationStore::find`], at once.
    pub fn find_now(&self, id: &str, owner: Owner) -> Option<Arc<dyn GenerationLog>> {
        self.inner.sweep(Instant::now());
        let log = lock(&self.inner.logs).get(id).cloned()?;
        (log.owner == owner).then_some(log as Arc<dyn GenerationLog>)
    }

    /// The generation `id` whoever owns it: for a cancel from another
    /// replica, which checked the owner there.
    pub fn find_any(&self, id: &str) -> Option<Arc<dyn GenerationLog>> {
        lock(&self.inner.logs)
            .get(id)
            .cloned()
            .map(|log| log as Arc<dyn GenerationLog>)
    }
}

/// One generation's frames in this process: a generation of this store's,
/// or (made with [`LocalLog::copy`]) a copy of one another replica runs.
pub struct LocalLog {
    id: GenId,
    owner: Owner,
    created: u64,
    prompt_tokens: u32,
    state: Mutex<State>,
    changed: Notify,
    stop: CancellationToken,
    /// The store it is retired to when it ends; none for a copy.
    store: Weak<Inner>,
}

/// What a copy of another replica's generation starts from.
pub struct Copied {
    pub id: GenId,
    pub owner: Owner,
    pub model: String,
    pub created: u64,
    pub prompt_tokens: u32,
    pub max_log_bytes: usize,
}

impl LocalLog {
    /// A log that copies another replica's generation, frame by frame
    /// through [`LocalLog::copy_frame`]; watchers here read it as any log.
    pub fn copy(from: Copied, stop: CancellationToken) -> LocalLog {
        LocalLog {
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
            stop,
            store: Weak::new(),
        }
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

    /// Unix seconds.
    pub fn created(&self) -> u64 {
        self.created
    }
}

struct State {
    model: String,
    frames: Frames,
    watchers: usize,
    /// When the last watcher left (or the generation began).
    unwatched_since: Instant,
}

impl GenerationLog for LocalLog {
    fn id(&self) -> &GenId {
        &self.id
    }

    fn model(&self) -> String {
        lock(&self.state).model.clone()
    }

    fn serving(&self, model: &str) {
        model.clone_into(&mut lock(&self.state).model);
    }

    fn append(&self, entry: Entry) -> u64 {
        let (index, ended, bytes, status, watched) = {
            let mut state = lock(&self.state);
            let (index, ended) = state.frames.push(entry);
            let watched = state.watchers > 0;
            (
                index,
                ended,
                state.frames.bytes(),
                state.frames.status(),
                watched,
            )
        };
        // With no watcher (a stream with its one client), nobody waits for a
        // token: only the end is worth a wake-up (`DELETE` waits for it).
        if watched || ended {
            self.changed.notify_waiters();
        }
        if ended {
            if let Some(store) = self.store.upgrade() {
                store.retire(&self.id, bytes, status);
            }
        }
        index
    }

    fn read(&self, after: Option<u64>) -> Result<Read, Gone> {
        lock(&self.state).frames.read(after)
    }

    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.changed.notified())
    }

    fn cancel(&self) {
        self.stop.cancel();
    }

    fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn usage_so_far(&self) -> Usage {
        lock(&self.state).frames.usage(self.prompt_tokens)
    }

    fn progress(&self) -> (Status, u64) {
        let state = lock(&self.state);
        (state.frames.status(), state.frames.len())
    }

    fn snapshot(&self) -> Snapshot {
        let state = lock(&self.state);
        let text = state.frames.text();
        let (finish_reason, usage, error) = match state.frames.terminal() {
            Some(Entry::Done(finish)) => (Some(finish.finish_reason.clone()), finish.usage, None),
            Some(Entry::Error(err)) => (
                None,
                state.frames.usage(self.prompt_tokens),
                Some(err.clone()),
            ),
            Some(Entry::Token(_) | Entry::Reasoning(_)) | None => {
                (None, state.frames.usage(self.prompt_tokens), None)
            }
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
        }
    }

    fn watchers_changed(&self, joined: bool) {
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

    fn unwatched_for(&self) -> Option<Duration> {
        let state = lock(&self.state);
        (state.watchers == 0).then(|| state.unwatched_since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Finish;

    fn store(retain_secs: u64, retain_max_bytes: usize) -> LocalStore {
        LocalStore::new(&Streams {
            retain_secs,
            retain_max_bytes,
            ..Streams::default()
        })
    }

    fn finish(log: &dyn GenerationLog) {
        log.append(Entry::Token("x".repeat(100)));
        log.append(Entry::Done(Finish::new("stop", Usage::default())));
    }

    #[tokio::test(start_paused = true)]
    async fn ended_logs_stay_for_retain_secs_then_go() {
        let store = store(300, usize::MAX);
        let log = store.create_now(None, "m", 1, CancellationToken::new());
        let id = log.id().to_string();
        finish(log.as_ref());
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(store.find_now(&id, None).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.find_now(&id, None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn past_retain_max_bytes_the_oldest_ended_logs_go_first_and_running_ones_stay() {
        let one = Entry::Token("x".repeat(100)).bytes()
            + Entry::Done(Finish::new("stop", Usage::default())).bytes()
            + PER_GENERATION;
        let store = store(300, 2 * one);
        let running = store.create_now(None, "m", 1, CancellationToken::new());
        running.append(Entry::Token("y".repeat(10_000)));
        let ids: Vec<String> = (0..3)
            .map(|_| {
                let log = store.create_now(None, "m", 1, CancellationToken::new());
                finish(log.as_ref());
                log.id().to_string()
            })
            .collect();
        assert!(store.find_now(&ids[0], None).is_none(), "the oldest went");
        assert!(store.find_now(&ids[1], None).is_some());
        assert!(store.find_now(&ids[2], None).is_some());
        assert!(store.find_now(&running.id().to_string(), None).is_some());
    }

    #[test]
    fn a_copy_keeps_the_source_s_indexes_skips_repeats_and_says_what_a_gap_lost() {
        let copy = LocalLog::copy(
            Copied {
                id: GenId::known("gen_copy"),
                owner: None,
                model: "m".into(),
                created: 0,
                prompt_tokens: 1,
                max_log_bytes: usize::MAX,
            },
            CancellationToken::new(),
        );
        copy.copy_frame(0, Entry::Token("a".into()));
        copy.copy_frame(0, Entry::Token("a".into()));
        copy.copy_frame(1, Entry::Token("b".into()));
        assert_eq!(copy.progress(), (Status::Running, 2));
        // Frames 2 and 3 were dropped at the source.
        copy.copy_frame(4, Entry::Token("e".into()));
        assert_eq!(copy.read(Some(0)).unwrap_err(), Gone { first_kept: 4 });
        let read = copy.read(Some(3)).unwrap();
        assert_eq!(
            (read.first, read.entries),
            (4, vec![Entry::Token("e".into())])
        );
        copy.copy_frame(5, Entry::Done(Finish::new("stop", Usage::default())));
        assert_eq!(copy.progress(), (Status::Done, 6));
    }

    #[tokio::test]
    async fn another_owner_finds_nothing() {
        let store = store(300, usize::MAX);
        let log = store.create_now(
            Some(crate::auth::KeyId(0)),
            "m",
            1,
            CancellationToken::new(),
        );
        let id = log.id().to_string();
        assert!(store.find_now(&id, Some(crate::auth::KeyId(0))).is_some());
        assert!(store.find_now(&id, Some(crate::auth::KeyId(1))).is_none());
        assert!(store.find_now(&id, None).is_none());
    }
}
