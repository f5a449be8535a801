//! Rate and concurrency limits (`[limits]`), per client and for the whole
//! proxy. This module decides; the HTTP side (`routes::gate`) asks it.
//!
//! - Rate: a governor GCRA limiter keyed by client, `requests_per_second`
//!   sustained with `burst` at once; over it is a 429 whose `Retry-After` is
//!   the limiter's own wait time, rounded up to whole seconds.
//! - Concurrency: a count of open streams for the proxy (over
//!   `max_concurrent_streams`: 503) and per client (over
//!   `per_client_concurrent_streams`: 429). A [`StreamPermit`] holds one slot
//!   and gives it back when dropped, that is when the response body ends or
//!   the client goes away.
//!
//! With `[store]`, the same limits hold across replicas through the
//! [`SharedCounts`] port (defined here; Redis implements it in the `store`
//! module): each request is counted there too, and a stream holds a shared
//! slot beside this replica's own. When Redis cannot be reached, each
//! replica keeps the limits alone (counted in `sluice_store_fallbacks_total`)
//! rather than refuse everything: a Redis outage degrades the limits, not
//! the service.
//!
//! Keyed state stays bounded: a sweep at most once per `SWEEP_EVERY` drops
//! the limiter state of clients idle long enough to be back at full burst,
//! and a client's concurrency entry goes when its last stream does. A flood
//! of distinct addresses therefore holds memory for a few seconds, not forever.

mod auth_failures;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use auth_failures::AuthFailures;

use crate::auth::{ClientKey, Keys};
use crate::config;
use crate::error::{ApiError, ErrorKind};
use crate::metrics as names;

const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What asking the shared counts returns: they are asked of a server, so
/// they may wait, and fail when it cannot be reached (the limits then hold
/// per replica).
pub type Asked<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// The limits' port to counts shared by every replica. A client is named
/// the same on every replica ([`ClientKey::shared_name`]).
pub trait SharedCounts: Send + Sync + 'static {
    /// Counts one request of `client`: `Some(wait)` when it is over its rate.
    fn check_rate<'a>(&'a self, client: &'a str) -> Asked<'a, Option<Duration>>;

    /// Takes a stream slot for `client` across the replicas.
    fn open<'a>(&'a self, client: &'a str) -> Asked<'a, Admission>;

    /// Gives back a slot [`SharedCounts::open`] admitted (never waits).
    fn close(&self, client: String);

    /// An [`SharedCounts::open`] failed: Redis may still run it later, so
    /// the counts of `client` are in doubt until set right (never waits).
    fn doubt(&self, client: String);
}

/// The answer to a request for a shared stream slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// `max_concurrent_streams` streams are open across the replicas.
    ProxyFull,
    /// The client has `per_client_concurrent_streams` open.
    ClientFull,
}

pub struct Limits {
    /// Failed authentications, per address.
    pub auth_failures: AuthFailures,
    rate: Option<DefaultKeyedRateLimiter<ClientKey>>,
    clock: DefaultClock,
    started: Instant,
    last_sweep_ms: AtomicU64,
    streams: Arc<Streams>,
    max_streams: usize,
    per_client_streams: usize,
    /// The limits shared with other replicas, and the keys that name clients there.
    shared: Option<(Arc<dyn SharedCounts>, Arc<Keys>)>,
}

/// Open streams, in all and per client.
#[derive(Debug, Default)]
struct Streams {
    open: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

/// One open stream's slot; dropping it frees the slot.
pub struct StreamPermit {
    streams: Arc<Streams>,
    client: ClientKey,
    /// The shared slot, given back with this one.
    shared: Option<(Arc<dyn SharedCounts>, String)>,
}

impl std::fmt::Debug for StreamPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPermit")
            .field("client", &self.client)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Where the gate leaves a request's [`StreamPermit`] for its handler (a
/// request extension must be `Clone`): the handler takes it into the stream
/// it starts, so the slot is held exactly as long as that stream. A request
/// that ends before streaming frees it when its last clone goes.
#[derive(Debug, Clone, Default)]
pub struct PermitSlot(Arc<Mutex<Option<StreamPermit>>>);

impl PermitSlot {
    pub fn new(permit: StreamPermit) -> PermitSlot {
        PermitSlot(Arc::new(Mutex::new(Some(permit))))
    }

    /// The permit, once.
    pub fn take(&self) -> Option<StreamPermit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Limits {
    pub fn new(config: &config::Limits) -> Limits {
        let rate = NonZeroU32::new(config.requests_per_second).map(|per_second| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(per_second);
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Limits {
            auth_failures: AuthFailures::new(),
            rate,
            clock: DefaultClock::default(),
            started: Instant::now(),
            last_sweep_ms: AtomicU64::new(0),
            streams: Arc::default(),
            max_streams: config.max_concurrent_streams,
            per_client_streams: config.per_client_concurrent_streams,
            shared: None,
        }
    }

    /// The same limits, held across the replicas sharing `shared`.
    pub fn shared(
        config: &config::Limits,
        shared: Arc<dyn SharedCounts>,
        keys: Arc<Keys>,
    ) -> Limits {
        Limits {
            shared: Some((shared, keys)),
            ..Limits::new(config)
        }
    }

    /// Counts one request against the client's rate.
    pub async fn check_rate(&self, client: ClientKey) -> Result<(), ApiError> {
        if let Some((shared, keys)) = &self.shared {
            match shared.check_rate(&client.shared_name(keys)).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(over_rate(wait)),
                Err(_) => {
                    metrics::counter!(names::STORE_FALLBACKS, "limit" => "rate").increment(1);
                }
            }
        }
        self.check_rate_here(client)
    }

    /// [`Limits::check_rate`] with this replica's own bucket.
    pub fn check_rate_here(&self, client: ClientKey) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        self.sweep_if_due(rate);
        rate.check_key(&client)
            .map_err(|not_until| over_rate(not_until.wait_time_from(self.clock.now())))
    }

    /// Takes a stream slot for the client, or says why not.
    pub async fn open_stream(&self, client: ClientKey) -> Result<StreamPermit, ApiError> {
        let mut permit = self.open_stream_here(client)?;
        if let Some((shared, keys)) = &self.shared {
            let name = client.shared_name(keys);
            match shared.open(&name).await {
                Ok(Admission::Admitted) => permit.shared = Some((shared.clone(), name)),
                Ok(Admission::ProxyFull) => return Err(self.proxy_full()),
                Ok(Admission::ClientFull) => return Err(self.client_full()),
                Err(_) => {
                    metrics::counter!(names::STORE_FALLBACKS, "limit" => "streams").increment(1);
                    shared.doubt(name);
                }
            }
        }
        Ok(permit)
    }

    fn proxy_full(&self) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "the proxy is at limits.max_concurrent_streams ({}); try again shortly",
                    self.max_streams
                ),
            )
        }
    }

    fn client_full(&self) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "too many open streams for this client: limits.per_client_concurrent_streams is {}",
                    self.per_client_streams
                ),
            )
        }
    }

    /// [`Limits::open_stream`] with this replica's own counts.
    pub fn open_stream_here(&self, client: ClientKey) -> Result<StreamPermit, ApiError> {
        let streams = &self.streams;
        if streams.open.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            streams.open.fetch_sub(1, Ordering::SeqCst);
            return Err(self.proxy_full());
        }
        let mut per_client = streams.per_client.lock().expect("stream counts lock");
        let count = per_client.entry(client).or_insert(0);
        if *count >= self.per_client_streams {
            drop(per_client);
            streams.open.fetch_sub(1, Ordering::SeqCst);
            return Err(self.client_full());
        }
        *count += 1;
        Ok(StreamPermit {
            streams: streams.clone(),
            client,
            shared: None,
        })
    }

    /// Streams open now (for the unit tests).
    #[cfg(test)]
    pub fn open_streams(&self) -> usize {
        self.streams.open.load(Ordering::SeqCst)
    }

    /// Clients the rate limiter holds state for (for the unit tests).
    #[cfg(test)]
    pub fn tracked_clients(&self) -> usize {
        self.rate.as_ref().map_or(0, |rate| rate.len())
    }

    fn sweep_if_due(&self, rate: &DefaultKeyedRateLimiter<ClientKey>) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64 {
            return;
        }
        // One request does the sweep; the others go on.
        if self
            .last_sweep_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }
}

fn over_rate(wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError {
        retry_after: Some(secs.max(1)),
        ..ApiError::new(
            ErrorKind::RateLimited,
            format!(
                "too many requests: over limits.requests_per_second; retry in {} ms",
                wait.as_millis().max(1)
            ),
        )
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Some((shared, name)) = self.shared.take() {
            shared.close(name);
        }
        let mut per_client = self.streams.per_client.lock().expect("stream counts lock");
        if let Some(count) = per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
        drop(per_client);
        self.streams.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn limits(rps: u32, burst: u32, max: usize, per_client: usize) -> Limits {
        Limits::new(&config::Limits {
            requests_per_second: rps,
            burst,
            max_concurrent_streams: max,
            per_client_concurrent_streams: per_client,
            ..config::Limits::default()
        })
    }

    fn addr(i: u32) -> ClientKey {
        ClientKey::Addr(IpAddr::from(i.to_be_bytes()))
    }

    #[test]
    fn a_burst_admits_exactly_burst_then_says_when_to_retry() {
        let limits = limits(1, 3, 10, 10);
        for _ in 0..3 {
            limits.check_rate_here(addr(1)).unwrap();
        }
        let err = limits.check_rate_here(addr(1)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after, Some(1));
        limits
            .check_rate_here(addr(2))
            .expect("another client has its own budget");
    }

    #[test]
    fn stream_slots_come_back_when_permits_drop() {
        let limits = limits(0, 0, 3, 2);
        let a = limits.open_stream_here(addr(1)).unwrap();
        let _b = limits.open_stream_here(addr(1)).unwrap();
        assert_eq!(
            limits.open_stream_here(addr(1)).unwrap_err().kind,
            ErrorKind::RateLimited
        );
        let _c = limits.open_stream_here(addr(2)).unwrap();
        assert_eq!(
            limits.open_stream_here(addr(3)).unwrap_err().kind,
            ErrorKind::Overloaded
        );
        drop(a);
        let _d = limits.open_stream_here(addr(1)).unwrap();
        assert_eq!(limits.open_streams(), 3);
    }

    #[test]
    fn idle_clients_are_forgotten_so_memory_stays_bounded() {
        // 1000/s with a burst of 1: a client is back to full burst after 1 ms.
        let limits = limits(1000, 1, 10, 10);
        for i in 0..50_000 {
            limits.check_rate_here(addr(i)).unwrap();
        }
        assert!(limits.tracked_clients() >= 49_000);
        std::thread::sleep(SWEEP_EVERY + Duration::from_millis(50));
        limits.check_rate_here(addr(u32::MAX)).unwrap();
        assert!(
            limits.tracked_clients() <= 1,
            "{} clients still tracked",
            limits.tracked_clients()
        );
        let per_client = limits.streams.per_client.lock().unwrap();
        assert!(per_client.is_empty());
    }
}
