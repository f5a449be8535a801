//! sluice: an LLM token-streaming proxy.
//!
//! A client POSTs a prompt; sluice asks an upstream model (or its built-in
//! mock) and relays every token as its own Server-Sent Events frame the moment
//! it exists, ending with one `done` or `error` frame. The external contract
//! is `shared/API.md`; the request path, top to bottom:
//!
//! - [`routes`]: the router and its layers; one file per front door.
//! - [`request`]: parsing and validating a request into a [`generation::GenRequest`].
//! - [`providers`]: where tokens come from (the mock, OpenAI-compatible
//!   servers), each yielding a stream of [`generation::TokenEvent`]s.
//! - [`timeouts`]: deadlines on that stream, the same for every provider.
//! - [`relay`]: from token events to a response body, with heartbeats.
//! - [`frame`]: the bytes of each frame, per wire format.
//! - [`error`]: every client-facing error and its status, in one place.
//!
//! [`app`] builds the router (tests use it in-process); [`serve`] runs it on a
//! listener until a shutdown signal.

pub mod auth;
pub mod bench;
pub mod coalesce;
pub mod config;
pub mod error;
pub mod frame;
pub mod generation;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openai_compat;
pub mod providers;
pub mod redact;
pub mod relay;
pub mod request;
pub mod routes;
pub mod shutdown;
pub mod sse;
pub mod templates;
pub mod timeouts;
pub mod tokenizer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::auth::Keys;
use crate::config::Config;
use crate::limits::Limits;
use crate::providers::Models;
use crate::shutdown::Drain;
use crate::templates::Templates;

/// What every handler shares: the config and what is built from it once.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub models: Arc<Models>,
    pub keys: Arc<Keys>,
    pub limits: Arc<Limits>,
    pub templates: Arc<Templates>,
    pub drain: Arc<Drain>,
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        AppState {
            models: Arc::new(Models::from_config(&config)),
            keys: Arc::new(Keys::new(&config.auth.api_keys)),
            limits: Arc::new(Limits::new(&config.limits)),
            templates: Arc::new(Templates::load(&config.prompts_dir)),
            drain: Arc::default(),
            config: Arc::new(config),
        }
    }
}

/// The whole HTTP application for a config.
pub fn app(config: Config) -> Router {
    routes::router(AppState::new(config))
}

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
) -> std::io::Result<()> {
    // Tokens are small writes that must leave at once: no Nagle delay.
    let listener = coalesce::CoalescingListener(listener).tap_io(|conn| {
        let _ = conn.get_ref().set_nodelay(true);
    });
    metrics::install();
    tokio::task::spawn_blocking(tokenizer::warm_up);
    let state = AppState::new(config);
    let (delay, grace) = (state.config.shutdown_delay(), state.config.shutdown_grace());
    let drain = state.drain.clone();
    let watcher = tokio::spawn(templates_watcher(state.templates.clone()));
    let upkeep = tokio::spawn(metrics::upkeep());
    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        drain.start();
        tokio::time::sleep(delay).await;
        let _ = stop_accepting.send(());
        tokio::time::sleep(grace).await;
        drain.expire();
    });
    let expired = state.drain.expiry();
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = accepting_stopped.await;
    });
    // After the grace period, streams get their final frame at once; a client
    // that does not read it does not hold the process up for long.
    let last_word = async move {
        expired.cancelled().await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    let result = tokio::select! {
        result = served => result,
        () = last_word => Ok(()),
    };
    watcher.abort();
    upkeep.abort();
    result
}

/// Re-reads the prompt templates when their files change, or on SIGHUP.
async fn templates_watcher(templates: Arc<Templates>) {
    let mut poll = tokio::time::interval(std::time::Duration::from_secs(1));
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
                let templates = templates.clone();
                let _ = tokio::task::spawn_blocking(move || templates.reload_if_changed()).await;
            }
            Some(()) = hangup_received => {
                let templates = templates.clone();
                let _ = tokio::task::spawn_blocking(move || templates.reload()).await;
            }
        }
    }
}
