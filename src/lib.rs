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

pub mod config;
pub mod error;
pub mod frame;
pub mod generation;
pub mod openai_compat;
pub mod providers;
pub mod redact;
pub mod relay;
pub mod request;
pub mod routes;
pub mod sse;
pub mod timeouts;
pub mod tokenizer;

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::providers::Models;

/// What every handler shares: the config and the route table, both read-only.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub models: Arc<Models>,
}

/// The whole HTTP application for a config.
pub fn app(config: Config) -> Router {
    let models = Arc::new(Models::from_config(&config));
    routes::router(AppState {
        config: Arc::new(config),
        models,
    })
}

/// Serves the app on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Tokens are small writes that must leave at once: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::task::spawn_blocking(tokenizer::warm_up);
    axum::serve(listener, app(config))
        .with_graceful_shutdown(shutdown)
        .await
}
