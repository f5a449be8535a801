//! Providers: where tokens come from.
//!
//! Each provider turns a [`GenRequest`] into a [`TokenStream`] and nothing
//! more: it does not know which front door or frame format carries its tokens,
//! and it does not apply timeouts (the relay does, the same way for all). One
//! file per provider; [`Models`] maps the configured model names to them.

pub mod anthropic;
pub mod failover;
pub mod mock;
pub mod ollama;
pub mod openai;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;

use crate::config::{Config, ProviderKind};
use crate::error::ApiError;
use crate::generation::{GenRequest, TokenStream};

/// A source of tokens.
pub trait Provider: Send + Sync {
    /// Starts a generation. The stream yields tokens then exactly one terminal
    /// event; dropping it cancels the generation.
    fn generate(&self, request: GenRequest) -> TokenStream;
}

/// Why an upstream (or the mock acting as one) could not give us tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamError {
    /// The upstream answered with an HTTP error status before streaming.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// The mock was told to fail with this status; it is passed on as is.
    MockStatus {
        status: StatusCode,
        retry_after: Option<u64>,
    },
    /// The connection could not be made or broke.
    Transport(String),
    /// The upstream's stream reported a failure, was malformed or ended early.
    Stream(String),
    ConnectTimeout(Duration),
    FirstTokenTimeout(Duration),
    IdleTimeout(Duration),
    TotalTimeout(Duration),
}

/// A configured model name and the provider that serves it.
pub struct Route {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    pub kind: ProviderKind,
    /// Retries before the first token.
    pub retries: u32,
    /// Models to try, in order, when this one fails before its first token.
    pub fallbacks: Vec<String>,
}

impl UpstreamError {
    /// The failure's kind, as a metric label.
    pub fn kind_name(&self) -> &'static str {
        match self {
            UpstreamError::Status { .. } => "status",
            UpstreamError::MockStatus { .. } => "mock_status",
            UpstreamError::Transport(_) => "transport",
            UpstreamError::Stream(_) => "stream",
            UpstreamError::ConnectTimeout(_) => "connect_timeout",
            UpstreamError::FirstTokenTimeout(_) => "first_token_timeout",
            UpstreamError::IdleTimeout(_) => "idle_timeout",
            UpstreamError::TotalTimeout(_) => "total_timeout",
        }
    }
}

/// The route table: model name to provider, built once from the config.
pub struct Models {
    routes: HashMap<String, Arc<Route>>,
    default_model: String,
}

impl Models {
    pub fn from_config(config: &Config) -> Models {
        let routes = config
            .models
            .iter()
            .map(|model| {
                let provider: Arc<dyn Provider> = match model.provider {
                    ProviderKind::Mock => Arc::new(mock::Mock::new(model.mock_knobs())),
                    ProviderKind::Openai => Arc::new(openai::OpenAi::new(model, &config.timeouts)),
                    ProviderKind::Anthropic => {
                        Arc::new(anthropic::Anthropic::new(model, &config.timeouts))
                    }
                    ProviderKind::Ollama => Arc::new(ollama::Ollama::new(model, &config.timeouts)),
                };
                let route = Route {
                    name: model.name.clone(),
                    provider,
                    kind: model.provider,
                    retries: model.retries(),
                    fallbacks: model.fallbacks.clone(),
                };
                (model.name.clone(), Arc::new(route))
            })
            .collect();
        Models {
            routes,
            default_model: config.default_model.clone(),
        }
    }

    /// The route for a requested model name, or the default model's.
    pub fn resolve(&self, requested: Option<&str>) -> Result<Arc<Route>, ApiError> {
        let name = requested.unwrap_or(&self.default_model);
        self.routes.get(name).cloned().ok_or_else(|| {
            ApiError::not_found("model", format!("model `{name}` is not configured"))
        })
    }

    /// The route for a model name that may carry mock knobs after a colon
    /// (`mock:ttft_ms=800,seed=7`), for chat UIs that only let a user pick a
    /// model name. A configured name always wins, so upstream names with
    /// colons (`llama3:8b`) still work. Returns the knob text, if any.
    pub fn resolve_with_knobs<'a>(
        &self,
        requested: Option<&'a str>,
    ) -> Result<(Arc<Route>, Option<&'a str>), ApiError> {
        let Some(name) = requested else {
            return Ok((self.resolve(None)?, None));
        };
        if let Some(route) = self.routes.get(name) {
            return Ok((route.clone(), None));
        }
        match name.split_once(':') {
            Some((base, knobs)) => match self.routes.get(base) {
                Some(route) if route.kind == ProviderKind::Mock => Ok((route.clone(), Some(knobs))),
                Some(_) => Err(ApiError::not_found(
                    "model",
                    format!("model `{name}` is not configured (knobs after `:` are for mock models only)"),
                )),
                None => self.resolve(Some(name)).map(|route| (route, None)),
            },
            None => Ok((self.resolve(Some(name))?, None)),
        }
    }

    /// The route, then its fallbacks in order (each once).
    pub fn chain(&self, route: &Arc<Route>) -> Vec<Arc<Route>> {
        let mut chain = vec![route.clone()];
        for name in &route.fallbacks {
            if let Some(fallback) = self.routes.get(name) {
                if !chain.iter().any(|r| r.name == fallback.name) {
                    chain.push(fallback.clone());
                }
            }
        }
        chain
    }

    /// Configured model names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
