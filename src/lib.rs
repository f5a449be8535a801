//! sluice: an LLM token-streaming proxy.
//!
//! A client POSTs a prompt; sluice asks an upstream model (or its built-in
//! mock) and relays every token as its own Server-Sent Events frame the moment
//! it exists, ending with one `done` or `error` frame. The external contract
//! is `shared/API.md`. The request path, top to bottom, one folder or file
//! each:
//!
//! - `routes`: the router and its layers (request ids, CORS, the access
//!   record, auth, rate and stream limits);
//! - `doors`: one folder per front door (`native`, `openai`, `responses`,
//!   `anthropic`): its request shape, its framers, its error shape;
//! - `pipeline`: the one generation pipeline every door shares: failover
//!   and deadlines, then the relay (streaming) or the collector (whole);
//! - `models`: which configured model serves a request;
//! - `providers`: where tokens come from (the mock, OpenAI-compatible
//!   servers, Anthropic, Ollama);
//! - `generation`: the floor: token events, the request a provider gets,
//!   upstream errors, mock knobs. It imports nothing from the crate.
//!
//! Beside the path: [`config`], `error` (every client-facing error and
//! its status), `observe` (access log and metrics), `limits`, `auth`,
//! `generations` (the log a generation's watchers read) and `store` (the
//! same, and the limits, shared with other replicas through Redis),
//! `templates`, [`sse`] (the upstream SSE decoder), [`tokenizer`], and
//! [`server`] (one runtime per core, graceful drain). [`bench`](mod@bench) is the
//! `sluice bench` load generator.
//!
//! [`app`] builds the router (tests use it in-process); [`serve`] runs it on
//! a listener until a shutdown signal.

#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod server;
pub mod sse;
pub mod tokenizer;

mod auth;
mod coalesce;
mod doors;
mod error;
mod generation;
mod generations;
mod limits;
mod listener;
mod metrics;
mod models;
mod observe;
mod parse;
mod pipeline;
mod providers;
mod redact;
mod routes;
mod scenarios;
mod shutdown;
mod stall;
mod state;
mod store;
mod telemetry;
mod templates;
mod tls;
mod warden;
mod watched;

use axum::Router;

pub use config::Config;
pub use server::serve;

/// The frame builders, for `benches/hot_path.rs`: the native door's and the
/// OpenAI door's, behind the trait the relay drives them through.
pub mod frames {
    pub use crate::doors::native::{Format, NativeFrames};
    pub use crate::doors::openai::{ChatChunks, Identity};
    pub use crate::pipeline::framer::Framer;
}

/// The whole HTTP application for a config.
pub fn app(config: Config) -> Router {
    routes::router(state::AppState::on(&state::Shared::new(config)))
}

/// Entry points for the fuzz targets in `fuzz/` (the parsers that read
/// untrusted bytes); built only with the `fuzzing` feature, not part of the API.
/// `sluice replay --list DIR`: one line per recording in `dir`.
pub fn recordings(dir: &std::path::Path) -> Vec<String> {
    providers::replay::list(dir)
}

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::doors::agui::fuzz_request as agui_request;
    pub use crate::doors::anthropic::fuzz_request as anthropic_request;
    pub use crate::doors::native::fuzz_request as native_request;
    pub use crate::doors::openai::fuzz_requests as openai_requests;
    pub use crate::doors::responses::fuzz_request as responses_request;
    pub use crate::doors::ui::fuzz_request as ui_request;
    pub use crate::pipeline::midstream::fuzz_seam as seam;
    pub use crate::providers::fuzz_anthropic_events as anthropic_events;
    pub use crate::providers::fuzz_mock_arguments as mock_arguments;
    pub use crate::providers::fuzz_openai_events as openai_events;
    pub use crate::providers::fuzz_upstream_response as upstream_response;
}
