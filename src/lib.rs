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
//! listener until a shutdown signal; [`server`] also runs it on one runtime
//! per core, as the binary does.

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
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod templates;
pub mod timeouts;
pub mod tokenizer;

use std::sync::Arc;

use axum::Router;

use crate::auth::Keys;
use crate::config::Config;
use crate::limits::Limits;
use crate::providers::Models;
use crate::shutdown::Drain;
use crate::templates::Templates;

/// What every runtime shares: the config and what is built from it once.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub limits: Arc<Limits>,
    pub templates: Arc<Templates>,
    pub drain: Arc<Drain>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        Shared {
            keys: Arc::new(Keys::new(&config.auth.api_keys)),
            limits: Arc::new(Limits::new(&config.limits)),
            templates: Arc::new(Templates::load(&config.prompts_dir)),
            drain: Arc::default(),
            config: Arc::new(config),
        }
    }
}

/// What every handler shares: [`Shared`] (reached through `Deref`), and the
/// providers with their upstream connection pools, one set per runtime.
#[derive(Clone)]
pub struct AppState {
    shared: Shared,
    pub models: Arc<Models>,
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        AppState::on(&Shared::new(config))
    }

    /// The state for one runtime on `shared`.
    pub fn on(shared: &Shared) -> AppState {
        AppState {
            models: Arc::new(Models::from_config(&shared.config)),
            shared: shared.clone(),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// The whole HTTP application for a config.
pub fn app(config: Config) -> Router {
    routes::router(AppState::new(config))
}

pub use server::serve;
