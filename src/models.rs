//! The model table: which configured model a request's `model` names, the
//! provider that serves it, and the fallbacks to try after it.
//!
//! A request's name is matched against the exact names first, then against
//! the names that are glob patterns (`"*"`, `"gpt-*"`), in file order
//! (contract section 13). A route found by a pattern answers under the name
//! asked for; its metrics keep the pattern's name, so a client cannot grow
//! the metrics by making names up.
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

use globset::GlobMatcher;
use serde_json::{Map, Value};

use crate::config::{name_pattern, Config, Midstream, ProviderKind};
use crate::error::ApiError;
use crate::generation::{GenRequest, InvalidField, MockKnobs};
use crate::parse::{coerce, deserialize_strict};
use crate::providers::{self, Provider};

/// A configured model name and the provider that serves it.
pub struct ModelRoute {
    /// The name it answers under: the configured one, or the name asked
    /// for when a pattern matched it.
    pub name: String,
    /// The name in the config (a pattern, perhaps): the metrics' label.
    pub configured: String,
    pub provider: Arc<dyn Provider>,
    pub kind: ProviderKind,
    /// Retries before the first token.
    pub retries: u32,
    /// Models to try, in order, when this one fails before its first token.
    pub fallbacks: Vec<String>,
    /// After the first token: an error frame, or a continuation (section 17).
    pub midstream: Midstream,
    /// Continuations one answer may ask for.
    pub midstream_attempts: u32,
    /// When the first fallback is also asked, with no first token yet.
    pub hedge_after: Option<std::time::Duration>,
    /// A mock's configured knobs (what the door reads of them: `rpm`, `tpm`).
    pub knobs: MockKnobs,
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
    /// The routes whose names are glob patterns, in file order.
    patterns: Vec<(GlobMatcher, Arc<ModelRoute>)>,
    default_model: String,
}

impl ModelTable {
    pub fn from_config(config: &Config) -> ModelTable {
        let mut routes = HashMap::new();
        let mut patterns = Vec::new();
        for model in &config.models {
            let route = Arc::new(ModelRoute {
                name: model.name.clone(),
                configured: model.name.clone(),
                provider: providers::build(model, config),
                kind: model.provider,
                retries: model.retries(),
                fallbacks: model.fallbacks.clone(),
                midstream: model.midstream,
                midstream_attempts: model.midstream_attempts(),
                hedge_after: model.hedge_after_ms.map(std::time::Duration::from_millis),
                knobs: model.mock_knobs(),
            });
            // The config's validation compiled every pattern once already.
            match name_pattern(&model.name) {
                Some(Ok(matcher)) => patterns.push((matcher, route)),
                Some(Err(_)) | None => {
                    routes.insert(model.name.clone(), route);
                }
            }
        }
        ModelTable {
            routes,
            patterns,
            default_model: config.default_model.clone(),
        }
    }

    /// The route for a model name (exact, then the patterns), or the
    /// default model's.
    pub fn get(&self, requested: Option<&str>) -> Result<Arc<ModelRoute>, ModelError> {
        let name = requested.unwrap_or(&self.default_model);
        self.find(name)
            .ok_or_else(|| ModelError::NotConfigured { name: name.into() })
    }

    fn find(&self, name: &str) -> Option<Arc<ModelRoute>> {
        if let Some(route) = self.routes.get(name) {
            return Some(route.clone());
        }
        let (_, route) = self.patterns.iter().find(|(glob, _)| glob.is_match(name))?;
        Some(Arc::new(ModelRoute {
            name: name.to_owned(),
            configured: route.configured.clone(),
            provider: route.provider.clone(),
            kind: route.kind,
            retries: route.retries,
            fallbacks: route.fallbacks.clone(),
            midstream: route.midstream,
            midstream_attempts: route.midstream_attempts,
            hedge_after: route.hedge_after,
            knobs: route.knobs.clone(),
        }))
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
        // A `:` starts knobs only when `knob=value` pairs follow it; else it
        // is part of the name (`qwen2.5:7b`).
        let knobbed = name
            .split_once(':')
            .filter(|(_, knobs)| looks_like_knobs(knobs));
        let Some((base, knobs)) = knobbed else {
            return self.get(Some(name));
        };
        match self.find(base) {
            Some(route) if route.kind == ProviderKind::Mock => {
                let (from_name, seed) = knobs_from_model_name(knobs)?;
                generation.mock = from_name.overridden_by(&generation.mock);
                generation.seed = generation.seed.or(seed);
                Ok(route)
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

    /// Configured model names (not the patterns), sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Whether the text after a model name's `:` is a list of `knob=value`
/// pairs (`tokens=5,seed=7`), not part of the name (`7b`).
fn looks_like_knobs(text: &str) -> bool {
    let mut pairs = text.split(',').filter(|p| !p.trim().is_empty()).peekable();
    pairs.peek().is_some() && pairs.all(|pair| pair.contains('='))
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
