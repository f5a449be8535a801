//! State that replicas share through Redis (`[store] redis_url`, contract
//! section 12), so that any number of sluice processes behind a load
//! balancer act as one: adapters under the ports the domain modules define,
//! the way `providers/` sits under `Provider`. Without `[store]` none of
//! this runs, and nothing but the wiring (`state.rs`, `server.rs`) imports it.
//!
//! - `link`: one server or a Redis Cluster, and the connections to it.
//! - `connection`: the one connection, each command under a deadline, timed
//!   and counted, behind a circuit breaker; this replica's lease, which says
//!   it is alive.
//! - `codec`: a generation's keys, and its frames as stream entries.
//! - `remote`: [`RedisRemote`], the generations registry's
//!   `generations::Remote`: generations made here are published and run
//!   here (`owner` copies their logs out as they grow), ones made elsewhere
//!   are opened as copies (`copy`, kept current by `follower`), cancels
//!   cross on a channel.
//! - `counts`: [`RedisCounts`], the limits' `limits::SharedCounts`: rate
//!   buckets and stream counts as Lua scripts.
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
mod counts;
mod follower;
mod link;
mod owner;
mod remote;

use std::sync::Arc;

use crate::auth::Keys;
use crate::config::Config;

pub use connection::Redis;
pub use counts::RedisCounts;
pub use remote::RedisRemote;

/// What a replica with `[store]` plugs into the ports, and its chores.
#[derive(Clone)]
pub struct Adapters {
    pub redis: Arc<Redis>,
    pub remote: Arc<RedisRemote>,
    pub counts: Arc<RedisCounts>,
}

/// The adapters for `config`'s `[store]`, if it has one. Connecting is lazy.
pub fn connect(config: &Config, keys: &Arc<Keys>) -> Option<Adapters> {
    // The URLs and the CA file were read and checked with the config.
    let target = link::Target {
        url: config.store.redis_url.as_deref()?,
        ca: config
            .store
            .ca_file
            .as_ref()
            .and_then(|file| std::fs::read(file).ok()),
        cluster: config.store.cluster.seeds(),
    };
    let redis = Arc::new(
        Redis::new(
            target,
            &config.store.key_prefix,
            config.store.blocking_readers,
        )
        .expect("a valid store.redis_url"),
    );
    Some(Adapters {
        remote: Arc::new(RedisRemote::new(
            redis.clone(),
            &config.streams,
            keys.clone(),
        )),
        counts: Arc::new(RedisCounts::new(redis.clone(), &config.limits)),
        redis,
    })
}

impl Adapters {
    /// The chores that run for as long as the process serves: its lease, the
    /// cancels from other replicas, the slots given back.
    pub async fn run(self) {
        tokio::join!(
            self.redis.keep_lease(),
            self.remote.take_cancels(),
            self.counts.give_back(),
        );
    }
}
