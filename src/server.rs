//! Serving the app: on one listener in the caller's runtime ([`serve`], what
//! the tests use), or on one single-threaded runtime per core ([`serve_per_core`],
//! what the binary does).
//!
//! Why per core: a relayed token crosses two tasks (the upstream connection's
//! and the client connection's). On tokio's work-stealing runtime the first
//! wakes the second and, with another worker parked, often that worker too
//! (a futex call) to come and steal. With one runtime per core, each with its
//! own listening socket on the same port (`SO_REUSEPORT`: the kernel spreads
//! new connections across them) and its own upstream connection pools, a
//! stream lives on one thread from accept to its last frame. Measured side by
//! side on the chat workload: about 10% less CPU per token (BENCHMARKS.md).
//! The cost: connections are spread by the kernel's hash, not by load, as
//! with nginx's `reuseport`.
//!
//! Shared by every runtime: config, keys, limits (so a global cap stays
//! global), templates and the drain. Per runtime: the upstream clients.

// The one place that spawns: the accept loops' runtimes, and the chores that
// run once per process (template reloads, metrics upkeep, the drain), which
// live as long as the server, not as long as a request.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::{AppState, Shared};
use crate::{listener, metrics, routes, tokenizer};

/// How long a client that will not read its final frame may hold up the exit,
/// after the grace period.
const LAST_WORD: Duration = Duration::from_secs(5);

/// Serves the app on `listener` until `shutdown` completes, then drains:
/// `/readyz` turns 503 at once; new connections are refused after
/// `shutdown_delay_secs`; streams in flight may finish for
/// `shutdown_grace_secs`, after which the ones left end with a
/// `shutting_down` error frame. Returns when every connection has closed (or a
/// few seconds after the grace period, if a client will not read its last frame).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = start(config, shutdown);
    accept(listener, AppState::on(&shared)).await
}

/// [`serve`], on one single-threaded runtime per listener (see
/// [`bind_per_core`]). Blocks the calling thread, which runs the signals,
/// timers and reloads that are not per connection.
pub fn serve_per_core(
    listeners: Vec<std::net::TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    control.block_on(async move {
        let shared = start(config, shutdown);
        let threads = listeners
            .into_iter()
            .enumerate()
            .map(|(core, listener)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("sluice-core-{core}"))
                    .spawn(move || serve_on_this_thread(listener, &shared))
            })
            .collect::<io::Result<Vec<_>>>()?;
        // Joined off this runtime: its timers run the drain meanwhile.
        tokio::task::spawn_blocking(move || {
            threads.into_iter().try_for_each(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a serving thread panicked")))
            })
        })
        .await?
    })
}

/// `count` listening sockets on `addr`, all with `SO_REUSEPORT` (port 0 is
/// resolved once, so they share one port). Fails like a plain bind when the
/// address is taken, even by another sluice that would otherwise share it.
pub fn bind_per_core(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
    (0..count.max(1))
        .map(|_| reuse_port_listener(addr))
        .collect()
}

fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn serve_on_this_thread(listener: std::net::TcpListener, shared: &Shared) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let state = AppState::on(shared);
    runtime.block_on(async move { accept(TcpListener::from_std(listener)?, state).await })
}

/// What runs once per process, on the current runtime: metrics, the
/// tokenizer's warm-up, template reloads, histogram upkeep and the drain
/// sequence that `shutdown` starts.
fn start(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Shared {
    metrics::install();
    // The trace exporter runs for the process's life: spans of requests
    // still draining go out too.
    if let Some(exporting) = crate::telemetry::install(&config.telemetry) {
        tokio::spawn(exporting);
    }
    tokio::task::spawn_blocking(tokenizer::warm_up);
    let shared = Shared::new(config);
    let watcher = tokio::spawn(templates_watcher(
        shared.templates.clone(),
        shared.scenarios.clone(),
    ));
    let upkeep = tokio::spawn(metrics::upkeep());
    let store = shared.store.clone().map(|store| tokio::spawn(store.run()));
    let (delay, grace) = (
        shared.config.shutdown_delay(),
        shared.config.shutdown_grace(),
    );
    let drain = shared.drain.clone();
    tokio::spawn(async move {
        drain.run(shutdown, delay, grace).await;
        watcher.abort();
        upkeep.abort();
        if let Some(store) = store {
            store.abort();
        }
    });
    shared
}

/// Accepts connections until the drain stops it, then waits for them to end.
async fn accept(listener: TcpListener, state: AppState) -> io::Result<()> {
    let tls = match &state.config.tls {
        Some(tls) => Some(
            crate::tls::server_config(&tls.cert_file, &tls.key_file)
                .map_err(|err| io::Error::other(format!("{err:?}")))?,
        ),
        None => None,
    };
    let (stopped, expired) = (state.drain.stopped_accepting(), state.drain.expiry());
    let bounds = listener::Bounds {
        permits: state.connections.clone(),
        header_timeout: state.config.limits.header_timeout(),
        send_timeout: state.config.limits.send_timeout(),
        idle_connection: state.config.limits.idle_connection(),
    };
    let served = listener::serve(listener, routes::router(state), tls, stopped, bounds);
    // After the grace period, streams get their final frame at once; a client
    // that does not read it does not hold the process up for long.
    let last_word = async move {
        expired.cancelled().await;
        tokio::time::sleep(LAST_WORD).await;
    };
    tokio::select! {
        () = served => Ok(()),
        () = last_word => Ok(()),
    }
}

/// Re-reads the prompt templates when their files change, or on SIGHUP.
/// Re-reads the prompt templates and the mock's scenarios when they change
/// (a poll once a second), and the templates on SIGHUP.
async fn templates_watcher(
    templates: std::sync::Arc<crate::templates::Templates>,
    scenarios: std::sync::Arc<crate::scenarios::Scenarios>,
) {
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup_received = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_received = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = poll.tick() => {
                let (templates, scenarios) = (templates.clone(), scenarios.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    templates.reload_if_changed();
                    scenarios.reload_if_changed();
                })
                .await;
            }
            Some(()) = hangup_received => {
                let templates = templates.clone();
                let _ = tokio::task::spawn_blocking(move || templates.reload()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_sockets_share_one_port_and_a_taken_address_is_refused() {
        let listeners = bind_per_core("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(listeners.len(), 3);
        let addr = listeners[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(listeners.iter().all(|l| l.local_addr().unwrap() == addr));
        let again = bind_per_core(addr, 2).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
    }
}
