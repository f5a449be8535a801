//! State that replicas share through Redis (`[store] redis_url`, contract
//! section 12), so that any number of sluice processes behind a load
//! balancer act as one. Without `[store]` none of this runs: generations and
//! limits live in the process (`generations::LocalStore`, `limits`).
//!
//! - `connection`: the one connection, each command under a deadline, timed
//!   and counted; this replica's lease, which says it is alive.
//! - `codec`: a generation's keys, and its frames as stream entries.
//! - `generations`: [`RedisStore`], the generations store: generations made
//!   here run here (`writer` copies their logs out as they grow), ones made
//!   elsewhere are watched as copies (`copy`), cancels cross on a channel.
//! - `limits`: [`SharedLimits`], rate buckets and stream counts as Lua
//!   scripts.
//!
//! When Redis cannot be reached, what needs it fails with
//! `503 store_unavailable` (making or finding a generation), what can go on
//! goes on (streams already running; limits, which each replica then keeps
//! alone), `/readyz` answers 503, and everything resumes by itself once Redis
//! answers again.
//!
//! What it may not do: make a token wait for Redis.

mod codec;
mod connection;
mod copy;
mod generations;
mod limits;
mod writer;

use std::sync::Arc;

pub use connection::Redis;
pub use generations::RedisStore;
pub use limits::{Admission, SharedLimits};

/// What a replica with `[store]` shares, and its chores.
#[derive(Clone)]
pub struct Shared {
    pub redis: Arc<Redis>,
    pub generations: Arc<RedisStore>,
    pub limits: Arc<SharedLimits>,
}

impl Shared {
    /// The chores that run for as long as the process serves: its lease, the
    /// cancels from other replicas, the slots given back.
    pub async fn run(self) {
        tokio::join!(
            self.redis.keep_lease(),
            self.generations.take_cancels(),
            self.limits.give_back(),
        );
    }
}
