//! The limits every replica shares: rate buckets and open-stream counts in
//! Redis, each decided by one Lua script so that two replicas cannot both
//! take the last slot.
//!
//! - Rate: GCRA, as governor computes it in-process: a client's key holds
//!   its theoretical arrival time in microseconds of Redis's own clock
//!   (`TIME`, so replicas' clocks need not agree), and expires once the
//!   client is back to a full burst.
//! - Streams: a hash of open streams per replica (`streams`, and
//!   `streams:CLIENT` per client), counted by the script that admits one.
//!   A replica's counts are summed only while its lease
//!   ([`super::connection`]) lives: the script drops a dead replica's, so a
//!   crash frees its slots within the lease's life, with no renewal per
//!   stream. Slots are given back in batches by [`SharedLimits::give_back`]
//!   (a dropped permit only queues its slot); a batch that fails waits for
//!   Redis to come back.
//!
//! Callers (`limits`) fall back to this replica's own limits when Redis
//! cannot be reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::Notify;

use super::connection::Redis;
use crate::error::ApiError;
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

/// The answer to a request for a stream slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// `max_concurrent_streams` streams are open across the replicas.
    ProxyFull,
    /// The client has `per_client_concurrent_streams` open.
    ClientFull,
}

pub struct SharedLimits {
    redis: Arc<Redis>,
    /// Microseconds per request and of burst tolerance; `None`: no rate limit.
    rate: Option<(u64, u64)>,
    max_streams: usize,
    per_client_streams: usize,
    rate_script: Script,
    open_script: Script,
    close_script: Script,
    /// Clients whose slots wait to be given back.
    closing: Mutex<Vec<String>>,
    wake: Notify,
}

impl SharedLimits {
    pub fn new(redis: Arc<Redis>, config: &crate::config::Limits) -> SharedLimits {
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
        SharedLimits {
            redis,
            rate,
            max_streams: config.max_concurrent_streams,
            per_client_streams: config.per_client_concurrent_streams,
            rate_script: Script::new(RATE),
            open_script: Script::new(OPEN),
            close_script: Script::new(CLOSE),
            closing: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Counts one request of `client`: `Some(wait)` when it is over its rate.
    pub async fn check_rate(&self, client: &str) -> Result<Option<Duration>, ApiError> {
        let Some((interval, tolerance)) = self.rate else {
            return Ok(None);
        };
        let mut invocation = self
            .rate_script
            .key(self.redis.key(&format!("rate:{client}")));
        invocation.arg(interval).arg(tolerance);
        let wait: u64 = self.redis.script("rate", &invocation).await?;
        Ok((wait > 0).then(|| Duration::from_micros(wait)))
    }

    /// Takes a stream slot for `client`, across the replicas.
    pub async fn open(&self, client: &str) -> Result<Admission, ApiError> {
        let mut invocation = self.open_script.key(self.redis.key("streams"));
        invocation
            .key(self.redis.key(&format!("streams:{client}")))
            .arg(self.redis.key("replica:"))
            .arg(self.redis.replica())
            .arg(self.max_streams)
            .arg(self.per_client_streams)
            .arg(CLIENT_COUNT_TTL.as_millis() as u64);
        let answer: u8 = self.redis.script("open", &invocation).await?;
        Ok(match answer {
            0 => Admission::Admitted,
            1 => Admission::ProxyFull,
            _ => Admission::ClientFull,
        })
    }

    /// Gives a slot of `client`'s back (soon, in [`SharedLimits::give_back`]).
    pub fn close(&self, client: String) {
        self.closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
        self.wake.notify_one();
    }

    /// Gives back the slots of ended streams, in batches, for as long as the
    /// process serves.
    pub async fn give_back(&self) {
        loop {
            self.wake.notified().await;
            loop {
                let batch: Vec<String> = {
                    let mut closing = self.closing.lock().unwrap_or_else(|e| e.into_inner());
                    let n = closing.len().min(CLOSE_BATCH);
                    closing.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let mut invocation = self.close_script.key(self.redis.key("streams"));
                for client in &batch {
                    invocation.key(self.redis.key(&format!("streams:{client}")));
                }
                invocation.arg(self.redis.replica());
                let closed: Result<(), ApiError> = self.redis.script("close", &invocation).await;
                if closed.is_err() {
                    metrics::counter!(names::STORE_FALLBACKS, "limit" => "close").increment(1);
                    self.closing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(batch);
                    tokio::time::sleep(super::writer::RETRY).await;
                }
            }
        }
    }
}
