//! The model table: which configured model a request's `model` names, the
//! provider that serves it, and the fallbacks to try after it.
//!
//! Built once per serving runtime from the config (each runtime has its own
//! upstream connection pools). Resolution is where a client's model name
//! meets the config, so its failures are client errors ([`ModelError`]),
//! answered by the doors as a 404 or 400 naming `model`.
//!
//! What it may not do: start a generation (that is the pipeline's), or know
//! which door asked.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{Config, ProviderKind};
use crate::error::ApiError;
use crate::generation::{GenRequest, InvalidField, MockKnobs};
use crate::parse::{coerce, deserialize_strict};
use crate::providers::{self, Provider};

/// A configured model name and the provider that serves it.
pub struct ModelRoute {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    pub kind: ProviderKind,
    /// Retries before the first token.
    pub retries: u32,
    /// Models to try, in order, when this one fails before its first token.
    pub fallbacks: Vec<String>,
}

/// Why a requested model name cannot be served.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// No model of that name is configured.
    NotConfigured { name: String },
    /// Knobs after a `:` on a model that is not a mock.
    KnobsOnNonMock { name: String },
    /// The knobs after the `:` do not parse or are out of bounds.
    BadKnobs(ApiError),
}

impl From<ModelError> for ApiError {
    fn from(err: ModelError) -> Self {
        match err {
            ModelError::NotConfigured { name } => {
                ApiError::not_found("model", format!("model `{name}` is not configured"))
            }
            ModelError::KnobsOnNonMock { name } => ApiError::not_found(
                "model",
                format!(
                    "model `{name}` is not configured (knobs after `:` are for mock models only)"
                ),
            ),
            ModelError::BadKnobs(err) => err,
        }
    }
}

/// Model name to route, built once from the config.
pub struct ModelTable {
    routes: HashMap<String, Arc<ModelRoute>>,
    default_model: String,
}

impl ModelTable {
    pub fn from_config(config: &Config) -> ModelTable {
        let routes = config
            .models
            .iter()
            .map(|model| {
                let route = ModelRoute {
                    name: model.name.clone(),
                    provider: providers::build(model, &config.timeouts),
                    kind: model.provider,
                    retries: model.retries(),
                    fallbacks: model.fallbacks.clone(),
                };
                (model.name.clone(), Arc::new(route))
            })
            .collect();
        ModelTable {
            routes,
            default_model: config.default_model.clone(),
        }
    }

    /// The route for a configured model name, or the default model's.
    pub fn get(&self, requested: Option<&str>) -> Result<Arc<ModelRoute>, ModelError> {
        let name = requested.unwrap_or(&self.default_model);
        self.routes
            .get(name)
            .cloned()
            .ok_or_else(|| ModelError::NotConfigured { name: name.into() })
    }

    /// Resolves the requested model for `generation`. A mock model's name may
    /// carry knobs after a colon (`mock:ttft_ms=800,seed=7`), for chat UIs
    /// that only let a user pick a model name; they go into the generation
    /// under any the request itself sets. A configured name always wins, so
    /// upstream names with colons (`llama3:8b`) still work.
    pub fn resolve(
        &self,
        requested: Option<&str>,
        generation: &mut GenRequest,
    ) -> Result<Arc<ModelRoute>, ModelError> {
        let Some(name) = requested else {
            return self.get(None);
        };
        if let Some(route) = self.routes.get(name) {
            return Ok(route.clone());
        }
        let Some((base, knobs)) = name.split_once(':') else {
            return self.get(Some(name));
        };
        match self.routes.get(base) {
            Some(route) if route.kind == ProviderKind::Mock => {
                let (from_name, seed) = knobs_from_model_name(knobs)?;
                generation.mock = from_name.overridden_by(&generation.mock);
                generation.seed = generation.seed.or(seed);
                Ok(route.clone())
            }
            Some(_) => Err(ModelError::KnobsOnNonMock { name: name.into() }),
            None => self.get(Some(name)),
        }
    }

    /// The route, then its fallbacks in order (each once).
    pub fn chain(&self, route: &Arc<ModelRoute>) -> Vec<Arc<ModelRoute>> {
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

/// `ttft_ms=800,seed=7` into mock knobs and a seed.
fn knobs_from_model_name(text: &str) -> Result<(MockKnobs, Option<u64>), ModelError> {
    let bad = |message: String| ModelError::BadKnobs(ApiError::invalid("model", message));
    let mut knobs = Map::new();
    let mut seed = None;
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(bad(format!(
                "`model`: mock knob `{pair}` has no value: write it as name=value"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "seed" {
            let parsed = value
                .parse()
                .map_err(|_| bad(format!("`model`: seed `{value}` is not a whole number")))?;
            seed = Some(parsed);
        } else {
            knobs.insert(key.to_owned(), coerce(key, value.to_owned()));
        }
    }
    let knobs: MockKnobs = deserialize_strict(Value::Object(knobs)).map_err(|mut e| {
        e.message = format!("mock knobs in `model`: {}", e.message);
        e.param = Some("model".into());
        ModelError::BadKnobs(e)
    })?;
    knobs
        .validate_in_request()
        .map_err(|err: InvalidField| ModelError::BadKnobs(err.into()))?;
    Ok((knobs, seed))
}
