//! The connection to Redis every part of the shared store uses: one
//! multiplexed connection to a server or a Cluster ([`super::link`]), which
//! reconnects by itself, every command under a named deadline, timed and
//! counted, and whether the server answered last.
//!
//! A circuit breaker: once a command fails for want of Redis (a timeout, a
//! refused or dropped connection), every command on the shared connection
//! fails at once with `store_unavailable` instead of waiting out its
//! deadline, until the lease, which keeps trying, gets an answer. A hung
//! Redis then costs one request its deadline, not every request.
//!
//! Also this replica's lease: `PREFIX:{replicas}:lease:RID`, set every
//! [`LEASE_EVERY`] to expire after [`LEASE_FOR`]. The stream slots a replica
//! holds name its RID; once the lease is gone, the replica is dead and its
//! slots are free. (Its generations have a lease each, in their own slot:
//! [`super::codec`].) The hash tag puts the leases in the slot of the stream
//! counts ([`super::counts`]), whose script reads them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use redis::{FromRedisValue, RedisResult};

use super::link::{timed_out, Link, Shared, Target, Timing};

use crate::error::{ApiError, ErrorKind};
use crate::metrics as names;

/// The deadline of one command (or pipeline) on the shared connection: past
/// it the request that needs it gets `store_unavailable`.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(1);
/// How long connecting may take.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(1);
/// How often a replica renews its lease.
pub const LEASE_EVERY: Duration = Duration::from_secs(1);
/// How long a lease outlives its last renewal: how long a dead replica's
/// generations look alive. A watcher gives them up once the lease has been
/// gone a while ([`super::copy`]): within 8 s of the death, inside the
/// contract's 10 s.
pub const LEASE_FOR: Duration = Duration::from_secs(4);
/// After a failed renewal the next comes this soon, so that a Redis that
/// lost its data (restarted) has this replica's lease back at once.
const LEASE_RETRY: Duration = Duration::from_millis(200);

pub struct Redis {
    link: Link,
    prefix: String,
    replica: String,
    healthy: AtomicBool,
    /// Tripped by a failure for want of Redis; reset by the next answer.
    tripped: AtomicBool,
    /// Slots for followers that block on a connection of their own.
    followers: Arc<tokio::sync::Semaphore>,
    /// When the lease was last renewed (ms since start; 0: never).
    leased_ms: AtomicU64,
    /// When an error was last logged (ms since start), so an outage logs once
    /// a few seconds, not once a request.
    last_warned_ms: AtomicU64,
    started: Instant,
}

impl Redis {
    /// A handle on `target`; it connects on first use and again after a
    /// failure. `blocking_readers` (`[store]`) bounds the followers
    /// (`super::copy`) with a blocking connection of their own.
    pub fn new(target: Target<'_>, prefix: &str, blocking_readers: usize) -> RedisResult<Redis> {
        // The redis client builds its rustls config with the process's
        // default provider: sluice's one (aws-lc), whatever else is linked.
        let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
        let timing = Timing {
            connect: CONNECT_DEADLINE,
            response: COMMAND_DEADLINE,
        };
        Ok(Redis {
            link: Link::new(target, timing)?,
            prefix: prefix.to_owned(),
            replica: uuid::Uuid::new_v4().simple().to_string(),
            healthy: AtomicBool::new(false),
            tripped: AtomicBool::new(false),
            followers: Arc::new(tokio::sync::Semaphore::new(blocking_readers)),
            leased_ms: AtomicU64::new(0),
            last_warned_ms: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// This process's replica id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The shared connection (a handle; clones share its sockets).
    pub fn conn(&self) -> Shared {
        self.link.shared()
    }

    /// A connection of its own, for a command that blocks (`XREAD BLOCK`),
    /// whose replies may take up to `wait` longer than a command's deadline.
    pub async fn dedicated(&self, wait: Duration) -> Result<Shared, ApiError> {
        let timing = Timing {
            connect: CONNECT_DEADLINE,
            response: COMMAND_DEADLINE + wait,
        };
        self.timed("connect", self.link.dedicated(timing)).await
    }

    /// The slots of followers that block on a connection of their own.
    pub fn followers(&self) -> Arc<tokio::sync::Semaphore> {
        self.followers.clone()
    }

    /// A pub/sub connection.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, ApiError> {
        self.timed("subscribe", self.link.pubsub(CONNECT_DEADLINE))
            .await
    }

    /// Runs a pipeline on the shared connection; see [`Redis::timed`].
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, ApiError> {
        self.on_shared(
            op,
            |mut conn| async move { pipe.query_async(&mut conn).await },
        )
        .await
    }

    /// Runs one command on the shared connection.
    pub async fn command<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, ApiError> {
        self.on_shared(
            op,
            |mut conn| async move { cmd.query_async(&mut conn).await },
        )
        .await
    }

    /// Runs a Lua script on the shared connection.
    pub async fn script<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        self.script_within(op, invocation, COMMAND_DEADLINE).await
    }

    /// [`Redis::script`] under a deadline of its own (shorter than a
    /// command's).
    pub async fn script_within<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
        deadline: Duration,
    ) -> Result<T, ApiError> {
        self.on_shared(op, |mut conn| async move {
            match tokio::time::timeout(deadline, invocation.invoke_async(&mut conn)).await {
                Ok(answer) => answer,
                Err(_) => Err(timed_out()),
            }
        })
        .await
    }

    /// `send` on the shared connection, once more if it was refused; at
    /// once `store_unavailable` while the breaker is tripped.
    async fn on_shared<T, Sent>(
        &self,
        op: &'static str,
        send: impl Fn(Shared) -> Sent,
    ) -> Result<T, ApiError>
    where
        Sent: Future<Output = RedisResult<T>>,
    {
        if self.tripped.load(Ordering::Relaxed) {
            metrics::counter!(names::STORE_ERRORS, "op" => op).increment(1);
            return Err(unavailable());
        }
        self.timed(op, async {
            match send(self.conn()).await {
                Err(err) if err.is_connection_refusal() => send(self.conn()).await,
                first => first,
            }
        })
        .await
    }

    /// Ready for work: Redis answered the last command, and this replica's
    /// lease is current (so other replicas see it alive).
    pub fn healthy(&self) -> bool {
        let leased = self.leased_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        self.healthy.load(Ordering::Relaxed)
            && leased > 0
            && now.saturating_sub(leased) < LEASE_FOR.as_millis() as u64
    }

    /// Runs one command or pipeline (`op` names it in the metrics): its
    /// latency is recorded, a failure counted and logged, and mapped to
    /// `503 store_unavailable`.
    ///
    /// [`Redis::pipeline`], [`Redis::command`] and [`Redis::script`] run
    /// theirs on the shared connection, and try once more when it was
    /// refused: after an outage the connection manager hands out its failed
    /// connection once more (the failure then starts the reconnect), and a
    /// refused command never reached Redis, so sending it again is safe.
    pub async fn timed<T>(
        &self,
        op: &'static str,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, ApiError> {
        let start = Instant::now();
        let result = command.await;
        metrics::histogram!(names::STORE_LATENCY, "op" => op).record(start.elapsed().as_secs_f64());
        match result {
            Ok(value) => {
                self.healthy.store(true, Ordering::Relaxed);
                self.tripped.store(false, Ordering::Relaxed);
                Ok(value)
            }
            Err(err) => {
                metrics::counter!(names::STORE_ERRORS, "op" => op).increment(1);
                // A script or type error is a bug of ours, not an outage.
                let down = err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error();
                if down {
                    self.healthy.store(false, Ordering::Relaxed);
                    self.tripped.store(true, Ordering::Relaxed);
                }
                self.warn(op, &err);
                Err(unavailable())
            }
        }
    }

    fn warn(&self, op: &str, err: &redis::RedisError) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 5_000)
            && self
                .last_warned_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // The error's text names the command and the failure, never the URL.
            tracing::warn!(op, error = %err, "the shared store (Redis) failed");
        }
    }

    /// `PREFIX:PART`: every key and channel sluice uses.
    pub fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.prefix)
    }

    /// `PREFIX:{replicas}:PART`: the replicas' leases and the stream
    /// counts, which one script reads together, so in one Cluster slot.
    pub fn replicas_key(&self, part: &str) -> String {
        self.key(&format!("{{replicas}}:{part}"))
    }

    /// The lease key of replica `rid`.
    pub fn lease_key(&self, rid: &str) -> String {
        self.replicas_key(&format!("lease:{rid}"))
    }

    /// Renews this replica's lease every [`LEASE_EVERY`], for as long as the
    /// process serves; also what keeps [`Redis::healthy`] current while no
    /// request comes.
    pub async fn keep_lease(&self) {
        let key = self.lease_key(&self.replica);
        loop {
            let mut renew = redis::cmd("SET");
            renew
                .arg(&key)
                .arg(unix_ms())
                .arg("PX")
                .arg(LEASE_FOR.as_millis() as u64);
            // Not through the breaker: the lease is what resets it.
            let renewed = self
                .timed("lease", async {
                    let mut conn = self.conn();
                    match renew.query_async::<()>(&mut conn).await {
                        Err(err) if err.is_connection_refusal() => {
                            renew.query_async::<()>(&mut self.conn()).await
                        }
                        first => first,
                    }
                })
                .await;
            if renewed.is_ok() {
                metrics::counter!(names::STORE_LEASE_RENEWALS).increment(1);
                let now = self.started.elapsed().as_millis() as u64;
                self.leased_ms.store(now.max(1), Ordering::Relaxed);
                tokio::time::sleep(LEASE_EVERY).await;
            } else {
                tokio::time::sleep(LEASE_RETRY).await;
            }
        }
    }
}

/// The error a request that needs the shared store gets while it is down.
pub fn unavailable() -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            ErrorKind::StoreUnavailable,
            "the shared store (Redis) cannot be reached; try again shortly",
        )
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
