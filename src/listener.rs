//! The accept loop: each connection, TLS first when `[tls]` is set, then
//! HTTP/1.1 or HTTP/2 on the same port (hyper-util's auto builder tells them
//! apart by the HTTP/2 preface, or by ALPN under TLS), until the drain says
//! stop; then the connections finish gracefully.
//!
//! Why not `axum::serve`: it does not expose HTTP/2's settings, and it has no
//! TLS. The settings (see [`builder`]) bound what one connection may hold.
//!
//! Every connection, every request's handler and every HTTP/2 stream's task
//! runs in a [`warden`](crate::warden) scope: the warden ends a response
//! whose client stopped reading once it is due, and closes connections idle
//! for `idle_connection_ms`.
//!
//! What it may not do: know any route; it serves whatever router it is given.

// Connections are tasks of their own, as in any server: each lives as long
// as its socket, and the drain ends them.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::coalesce::Coalesce;
use crate::stall::SendDeadline;
use crate::warden::{Scope, Warden};

/// What bounds the connections of one server: how many may be open (shared
/// by every thread's listener), how long a client has for its first bytes
/// and each request head, and how long a write may stay blocked.
#[derive(Clone)]
pub struct Bounds {
    pub permits: Arc<tokio::sync::Semaphore>,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_connection: Duration,
}

/// How often, at most, the log says the connection cap is being hit.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// How long a client has to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// After an accept error (out of file descriptors, say), the loop waits this
/// long before trying again, instead of spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// HTTP/1.1 and HTTP/2 with settings chosen for long-lived token streams.
pub fn builder(header_timeout: Duration, streams: StreamTasks) -> auto::Builder<StreamTasks> {
    let mut builder = auto::Builder::new(streams);
    builder
        .http1()
        .timer(TokioTimer::new())
        // Runs while hyper waits for a request head, between requests too:
        // slowloris and idle keep-alive connections are both closed.
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A dashboard of parallel generations, or many tabs, on one
        // connection; past it a client opens another connection.
        .max_concurrent_streams(256)
        // A stream's response may queue this much for a client that reads
        // slowly before its body stops being polled: tokens are small, so
        // this bounds memory per stream without holding any back.
        .max_send_buf_size(64 * 1024)
        // Requests are small JSON bodies; the default windows (64 KiB) fit.
        // Pings find a dead peer, whose streams are then cancelled like a
        // client that left (its upstream requests closed).
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves `router` on `listener` until `stop` fires, then waits for the open
/// connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    stop: CancellationToken,
    bounds: Bounds,
) {
    let tls = tls.map(TlsAcceptor::from);
    let connections = TaskTracker::new();
    let warden = Warden::new(bounds.send_timeout, bounds.idle_connection);
    let draining = CancellationToken::new();
    let sweep = tokio::spawn(warden.clone().sweep(draining.clone()));
    let mut refused = Refused::default();
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!("could not accept a connection: {err}; retrying in {} ms", ACCEPT_BACKOFF.as_millis());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = bounds.permits.clone().try_acquire_owned() else {
            refused.one();
            continue; // dropping `tcp` closes it
        };
        // Tokens are small writes that must leave at once: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let scope = warden.connection();
        // The router for this connection, which knows its peer's address.
        let router = router.clone();
        let connection = scope.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            let mut router = router.clone();
            let connection = connection.clone();
            async move {
                // An HTTP/2 stream's task has its own scope; an HTTP/1.1
                // request runs in its connection's. The connection is busy
                // until the handler returns, and a streaming body's guard
                // keeps it busy until the body ends.
                let scope = Scope::current().unwrap_or(connection);
                let open = scope.open();
                let response = scope.within(router.call(request)).await;
                drop(open);
                response
            }
        });
        let header_timeout = bounds.header_timeout;
        let first_bytes = async move {
            // hyper's head timeout starts only once the protocol is known;
            // until the first byte, the wait is bounded here.
            let mut byte = [0u8; 1];
            matches!(
                tokio::time::timeout(header_timeout, tcp.peek(&mut byte)).await,
                Ok(Ok(1..))
            )
            .then_some(tcp)
        };
        let send_timeout = bounds.send_timeout;
        // One builder per connection: its HTTP/2 streams' tasks run in this
        // connection's scope.
        let builder = builder(bounds.header_timeout, StreamTasks(scope.clone()));
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            // Each protocol's connection future in a box of its own size:
            // inline, every plain connection's task was as large as a TLS
            // one's (handshake state and all).
            let served = match tls {
                None => {
                    Box::pin(async move {
                        let tcp = first_bytes.await?;
                        let io = Coalesce::new(SendDeadline::new(tcp, send_timeout));
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                        Some(scope.serve(conn, |conn| conn.graceful_shutdown()).await)
                    })
                    .await
                }
                Some(tls) => {
                    Box::pin(async move {
                        let tcp = first_bytes.await?;
                        let io = Coalesce::new(SendDeadline::new(tcp, send_timeout));
                        let handshake = tokio::time::timeout(HANDSHAKE, tls.accept(io));
                        let Ok(Ok(stream)) = handshake.await else {
                            return None;
                        };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        Some(scope.serve(conn, |conn| conn.graceful_shutdown()).await)
                    })
                    .await
                }
            };
            let Some(served) = served else {
                return;
            };
            match served {
                Some(Ok(())) => {}
                Some(Err(err)) => tracing::debug!("connection from {addr} ended: {err}"),
                None => tracing::debug!("connection from {addr} cut: its client stopped reading"),
            }
        });
    }
    drop(listener);
    // Every connection finishes what it has in flight and takes no more.
    draining.cancel();
    connections.close();
    connections.wait().await;
    sweep.abort();
}

/// The executor of HTTP/2 streams: each stream's task runs in a warden
/// scope of its own under its connection's, so the warden can end (reset)
/// one stream without its connection.
#[derive(Clone)]
pub struct StreamTasks(Scope);

impl<F> hyper::rt::Executor<F> for StreamTasks
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        drop(tokio::spawn(self.0.stream().run(task)));
    }
}

/// Connections refused at the cap, and when the log last said so.
#[derive(Default)]
struct Refused {
    since_warning: u64,
    warned: Option<tokio::time::Instant>,
}

impl Refused {
    fn one(&mut self) {
        self.since_warning += 1;
        let now = tokio::time::Instant::now();
        if self.warned.is_none_or(|at| now - at >= CAP_WARNING_EVERY) {
            tracing::warn!(
                refused = self.since_warning,
                "limits.max_connections reached: closing new connections"
            );
            metrics::counter!(crate::metrics::REJECTED, "reason" => "connections")
                .increment(self.since_warning);
            self.since_warning = 0;
            self.warned = Some(now);
        }
    }
}
