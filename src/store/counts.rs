//! The limits every replica shares: rate buckets and open-stream counts in
//! Redis, each decided by one Lua script so that two replicas cannot both
//! take the last slot.
//!
//! - Rate: GCRA, as governor computes it in-process: a client's key holds
//!   its theoretical arrival time in microseconds of Redis's own clock
//!   (`TIME`, so replicas' clocks need not agree), and expires once the
//!   client is back to a full burst.
//! - Streams: a hash of open streams per replica (`{replicas}:streams`, and
//!   `{replicas}:streams:CLIENT` per client), counted by the script that
//!   admits one. The hash tag puts them, and the leases the script reads, in
//!   one Cluster slot: the proxy-wide count is one key that every admission
//!   touches, so a tag per client would only split an admission across two
//!   slots and lose its atomicity. (Rate keys are one per client, untagged.)
//!   A replica's counts are summed only while its lease
//!   ([`super::connection`]) lives: the script drops a dead replica's, so a
//!   crash frees its slots within the lease's life, with no renewal per
//!   stream. Slots are given back in batches by [`RedisCounts::give_back`]
//!   (a dropped permit only queues its slot).
//! - Doubt: a script whose deadline passed may still run when Redis wakes
//!   (it sat in the socket), and would count a slot nobody holds. So after
//!   any failed `OPEN` or `CLOSE`, this replica writes its real counts (the
//!   slots it holds, per client and in all) over its own fields, once a
//!   second, until [`DOUBT_ROUNDS`] such writes in a row have landed: a
//!   stall leaks no slot for longer than that.
//!
//! The scripts run under [`LIMIT_DEADLINE`], shorter than other commands':
//! callers (`limits`) fall back to this replica's own limits when Redis
//! cannot be reached, and a hung Redis should cost a request little.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::Script;
use tokio::sync::Notify;

use super::connection::{Redis, LEASE_EVERY};
use super::owner::RETRY;
use crate::error::ApiError;
use crate::limits::{Admission, Asked, SharedCounts};
use crate::metrics as names;

const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return math.max(1, allow_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

/// KEYS: every stream's hash, the client's. ARGV: the lease key prefix, this
/// replica, the cap, the client's cap, the client hash's lifetime (ms).
const OPEN: &str = r"
local function open_in(key)
  local total = 0
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local rid = fields[i]
    if rid ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. rid) == 0 then
      redis.call('HDEL', key, rid)
    else
      total = total + tonumber(fields[i + 1])
    end
  end
  return total
end
if open_in(KEYS[1]) >= tonumber(ARGV[3]) then return 1 end
if open_in(KEYS[2]) >= tonumber(ARGV[4]) then return 2 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 0
";

/// KEYS: every stream's hash, then one client hash per client. ARGV: this
/// replica, the client hash's lifetime (ms), then the slots held here in
/// all and per client: this replica's fields set to what it holds.
const RECONCILE: &str = r"
for i = 1, #KEYS do
  local n = tonumber(ARGV[i + 2])
  if n > 0 then
    redis.call('HSET', KEYS[i], ARGV[1], n)
    if i > 1 then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
  else
    redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return 0
";

/// KEYS: every stream's hash, then one client hash per slot given back.
/// ARGV: this replica.
const CLOSE: &str = r"
for i = 1, #KEYS do
  local by = (i == 1) and (1 - #KEYS) or -1
  if redis.call('HINCRBY', KEYS[i], ARGV[1], by) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return 0
";

/// A client's stream count outlives its last change by this much: longer
/// than any stream may run (`timeouts.total_ms` is at most an hour).
const CLIENT_COUNT_TTL: Duration = Duration::from_secs(2 * 3600);
/// Slots given back in one script call at most.
const CLOSE_BATCH: usize = 256;
/// The deadline of a limit's script: past it the request goes on under
/// this replica's own limits.
pub const LIMIT_DEADLINE: Duration = Duration::from_millis(250);
/// Writes of the real counts that must land in a row to end a doubt: a
/// script that timed out runs, if ever, when Redis wakes, before these.
const DOUBT_ROUNDS: u32 = 3;

pub struct RedisCounts {
    redis: Arc<Redis>,
    /// Microseconds per request and of burst tolerance; `None`: no rate limit.
    rate: Option<(u64, u64)>,
    max_streams: usize,
    per_client_streams: usize,
    rate_script: Script,
    open_script: Script,
    close_script: Script,
    reconcile_script: Script,
    slots: Mutex<Slots>,
    wake: Notify,
}

/// The shared slots as this replica knows them.
#[derive(Default)]
struct Slots {
    /// Held here, per client: admitted, not given back.
    held: HashMap<String, usize>,
    /// Given back, not yet sent.
    closing: Vec<String>,
    /// Clients whose counts in Redis may be wrong.
    doubtful: HashSet<String>,
    /// Writes of the real counts still to land before the doubt is over.
    doubt_rounds: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisCounts {
    pub fn new(redis: Arc<Redis>, config: &crate::config::Limits) -> RedisCounts {
        let rate = (config.requests_per_second > 0).then(|| {
            let interval = 1_000_000 / u64::from(config.requests_per_second);
            let burst = if config.burst == 0 {
                config.requests_per_second
            } else {
                config.burst
            };
            (
                interval.max(1),
                interval * u64::from(burst.saturating_sub(1)),
            )
        });
        RedisCounts {
            redis,
            rate,
            max_streams: config.max_concurrent_streams,
            per_client_streams: config.per_client_concurrent_streams,
            rate_script: Script::new(RATE),
            open_script: Script::new(OPEN),
            close_script: Script::new(CLOSE),
            reconcile_script: Script::new(RECONCILE),
            slots: Mutex::default(),
            wake: Notify::new(),
        }
    }

    async fn rate_of(&self, client: &str) -> Result<Option<Duration>, ApiError> {
        let Some((interval, tolerance)) = self.rate else {
            return Ok(None);
        };
        let mut invocation = self
            .rate_script
            .key(self.redis.key(&format!("rate:{client}")));
        invocation.arg(interval).arg(tolerance);
        let wait: u64 = self
            .redis
            .script_within("rate", &invocation, LIMIT_DEADLINE)
            .await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }

    async fn open_for(&self, client: &str) -> Result<Admission, ApiError> {
        let mut invocation = self.open_script.key(self.redis.replicas_key("streams"));
        invocation
            .key(self.client_key(client))
            .arg(self.redis.lease_key(""))
            .arg(self.redis.replica())
            .arg(self.max_streams)
            .arg(self.per_client_streams)
            .arg(CLIENT_COUNT_TTL.as_millis() as u64);
        let answer: u8 = self
            .redis
            .script_within("open", &invocation, LIMIT_DEADLINE)
            .await?;
        Ok(match answer {
            0 => {
                *lock(&self.slots).held.entry(client.to_owned()).or_default() += 1;
                Admission::Admitted
            }
            1 => Admission::ProxyFull,
            _ => Admission::ClientFull,
        })
    }

    fn client_key(&self, client: &str) -> String {
        self.redis.replicas_key(&format!("streams:{client}"))
    }

    /// Gives back the slots of ended streams, in batches, and sets the
    /// counts right while they are in doubt, for as long as the process
    /// serves.
    pub async fn give_back(&self) {
        loop {
            if lock(&self.slots).doubt_rounds > 0 {
                // One write a second: the rounds span the time a stale
                // script needs to run once Redis wakes.
                tokio::time::sleep(LEASE_EVERY).await;
                self.reconcile().await;
                continue;
            }
            self.wake.notified().await;
            if lock(&self.slots).doubt_rounds == 0 {
                self.send_closes().await;
            }
        }
    }

    async fn send_closes(&self) {
        loop {
            let batch: Vec<String> = {
                let mut slots = lock(&self.slots);
                let n = slots.closing.len().min(CLOSE_BATCH);
                slots.closing.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            let mut invocation = self.close_script.key(self.redis.replicas_key("streams"));
            for client in &batch {
                invocation.key(self.client_key(client));
            }
            invocation.arg(self.redis.replica());
            let closed: Result<(), ApiError> = self.redis.script("close", &invocation).await;
            if closed.is_err() {
                metrics::counter!(names::STORE_FALLBACKS, "limit" => "close").increment(1);
                let mut slots = lock(&self.slots);
                slots.doubtful.extend(batch);
                slots.doubt_rounds = DOUBT_ROUNDS;
                return;
            }
        }
    }

    /// Writes the slots held here over this replica's fields.
    async fn reconcile(&self) {
        let (clients, counts, total) = {
            let mut slots = lock(&self.slots);
            // The counts written are the slots held: what waits to be
            // given back is in them already.
            slots.closing.clear();
            let doubtful: Vec<String> = slots.doubtful.iter().cloned().collect();
            let mut clients: Vec<String> = slots.held.keys().cloned().collect();
            clients.extend(doubtful.into_iter().filter(|c| !slots.held.contains_key(c)));
            let counts: Vec<usize> = clients
                .iter()
                .map(|c| slots.held.get(c).copied().unwrap_or(0))
                .collect();
            let total: usize = slots.held.values().sum();
            (clients, counts, total)
        };
        let mut invocation = self
            .reconcile_script
            .key(self.redis.replicas_key("streams"));
        for client in &clients {
            invocation.key(self.client_key(client));
        }
        invocation
            .arg(self.redis.replica())
            .arg(CLIENT_COUNT_TTL.as_millis() as u64)
            .arg(total);
        for count in counts {
            invocation.arg(count);
        }
        let done: Result<(), ApiError> = self.redis.script("reconcile", &invocation).await;
        let landed = {
            let mut slots = lock(&self.slots);
            match done {
                Ok(()) => {
                    slots.doubt_rounds = slots.doubt_rounds.saturating_sub(1);
                    if slots.doubt_rounds == 0 {
                        slots.doubtful.clear();
                    }
                    true
                }
                Err(_) => {
                    slots.doubt_rounds = DOUBT_ROUNDS;
                    false
                }
            }
        };
        if !landed {
            tokio::time::sleep(RETRY).await;
        }
    }
}

impl SharedCounts for RedisCounts {
    fn check_rate<'a>(&'a self, client: &'a str) -> Asked<'a, Option<Duration>> {
        Box::pin(self.rate_of(client))
    }

    fn open<'a>(&'a self, client: &'a str) -> Asked<'a, Admission> {
        Box::pin(self.open_for(client))
    }

    fn close(&self, client: String) {
        {
            let mut slots = lock(&self.slots);
            if let Some(held) = slots.held.get_mut(&client) {
                *held -= 1;
                if *held == 0 {
                    slots.held.remove(&client);
                }
            }
            slots.closing.push(client);
        }
        self.wake.notify_one();
    }

    fn doubt(&self, client: String) {
        {
            let mut slots = lock(&self.slots);
            slots.doubtful.insert(client);
            slots.doubt_rounds = DOUBT_ROUNDS;
        }
        self.wake.notify_one();
    }
}
