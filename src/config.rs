//! Configuration: the TOML file of section 6 of the contract, its defaults, and
//! strict validation.
//!
//! sluice runs with no file at all (the mock on 127.0.0.1:7800). A file is
//! parsed strictly: an unknown key, a wrong type, an unknown provider, a
//! fallback or default model that does not exist, or an environment variable
//! a model needs that is not set, stops start-up with a [`ConfigError`] that
//! names the file and the key. Secrets read from the environment are resolved
//! here, once, and never printed (`ModelConfig`'s `Debug` hides them).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::providers::mock::{MockKnobs, MockMode};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub default_model: String,
    pub heartbeat_secs: u64,
    pub prompts_dir: PathBuf,
    /// After SIGTERM/Ctrl-C, how long streams in flight may go on.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/Ctrl-C, how long to keep accepting (with `/readyz`
    /// already 503) so a load balancer can notice before connections are refused.
    pub shutdown_delay_secs: u64,
    pub limits: Limits,
    pub auth: Auth,
    pub cors: Cors,
    pub timeouts: Timeouts,
    pub models: Vec<ModelConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            default_model: "mock".into(),
            heartbeat_secs: 15,
            prompts_dir: "prompts".into(),
            shutdown_grace_secs: 20,
            shutdown_delay_secs: 0,
            limits: Limits::default(),
            auth: Auth::default(),
            cors: Cors::default(),
            timeouts: Timeouts::default(),
            models: Vec::new(),
        }
        .with_builtin_mock()
    }
}

/// Request limits. `max_body_bytes` is enforced by the front doors, the rest
/// by the limits layer (`crate::limits`), per client: its API key when auth
/// is on, else its address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Sustained requests per second per client; 0 turns rate limiting off.
    pub requests_per_second: u32,
    /// Requests a client may make at once before the rate applies.
    pub burst: u32,
    pub max_concurrent_streams: usize,
    pub per_client_concurrent_streams: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry, for a
    /// sluice behind a trusted reverse proxy. Off by default: clients could
    /// otherwise pick their own rate-limit key.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            requests_per_second: 50,
            burst: 100,
            max_concurrent_streams: 10_000,
            per_client_concurrent_streams: 200,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Client keys, sent as `Authorization: Bearer` or `x-api-key`. Empty (and
    /// no `api_keys_env`): no auth.
    pub api_keys: Vec<String>,
    /// An environment variable holding more keys, comma-separated, so real
    /// deployments keep them out of the file. Read once at start-up.
    pub api_keys_env: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field(
                "api_keys",
                &format_args!("[{} hidden]", self.api_keys.len()),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// `["*"]` allows any origin.
    pub allow_origins: Vec<String>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allow_origins: vec!["*".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub first_token_ms: u64,
    /// Longest silence between upstream tokens.
    pub idle_ms: u64,
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 5_000,
            first_token_ms: 60_000,
            idle_ms: 30_000,
            total_ms: 600_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn first_token(&self) -> Duration {
        Duration::from_millis(self.first_token_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Mock,
    /// OpenAI and every OpenAI-compatible server.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Ollama's native `/api/chat`.
    Ollama,
}

impl ProviderKind {
    /// Where the provider lives when `base_url` is not given.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Mock => None,
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Ollama => Some("http://127.0.0.1:11434"),
        }
    }
}

/// One `[[models]]` entry. The mock's knobs sit directly in the entry, as the
/// contract shows them; other providers reject them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub provider: ProviderKind,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    /// The model name sent upstream; defaults to `name`.
    pub upstream_model: Option<String>,
    /// Models tried in order when this one fails before its first token.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Retries of this model before its first token (connect error, 5xx,
    /// 429/529, first-token timeout). Default 1 for upstreams; 0 for the mock,
    /// whose failures are asked for.
    pub retries: Option<u32>,
    /// `max_tokens` sent when the client gives none, for providers that
    /// require one (Anthropic). Default 4096.
    pub default_max_tokens: Option<u32>,

    pub ttft_ms: Option<u64>,
    pub token_delay_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub tokens: Option<u32>,
    pub text: Option<String>,
    pub mode: Option<MockMode>,
    pub fail_after: Option<u32>,
    pub error_status: Option<u16>,
    pub drop_after: Option<u32>,

    /// The upstream key, read from `api_key_env` at load time.
    #[serde(skip)]
    pub api_key: Option<String>,
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("upstream_model", &self.upstream_model)
            .field("fallbacks", &self.fallbacks)
            .field("api_key", &self.api_key.as_ref().map(|_| "[hidden]"))
            .finish_non_exhaustive()
    }
}

impl ModelConfig {
    fn builtin_mock() -> ModelConfig {
        ModelConfig {
            name: "mock".into(),
            provider: ProviderKind::Mock,
            base_url: None,
            api_key_env: None,
            upstream_model: None,
            fallbacks: Vec::new(),
            retries: None,
            default_max_tokens: None,
            ttft_ms: None,
            token_delay_ms: None,
            jitter_ms: None,
            tokens: None,
            text: None,
            mode: None,
            fail_after: None,
            error_status: None,
            drop_after: None,
            api_key: None,
        }
    }

    /// The mock knobs this entry sets (the route's defaults; a request may override them).
    pub fn mock_knobs(&self) -> MockKnobs {
        MockKnobs {
            ttft_ms: self.ttft_ms,
            token_delay_ms: self.token_delay_ms,
            jitter_ms: self.jitter_ms,
            tokens: self.tokens,
            text: self.text.clone(),
            mode: self.mode,
            fail_after: self.fail_after,
            error_status: self.error_status,
            drop_after: self.drop_after,
        }
    }

    fn has_mock_knobs(&self) -> bool {
        self.mock_knobs() != MockKnobs::default()
    }

    /// Retries before the first token: `retries`, else 1 for upstreams and 0
    /// for the mock.
    pub fn retries(&self) -> u32 {
        self.retries
            .unwrap_or(if self.provider == ProviderKind::Mock {
                0
            } else {
                1
            })
    }

    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.name)
    }
}

/// A config problem, naming the file and the key.
#[derive(Debug)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config error in {}: ", file.display())?,
            None => write!(f, "config error: ")?,
        }
        if self.key.is_empty() || self.key == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file, resolving model secrets from the
    /// environment through `env`.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, env).map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })
    }

    /// Parses and validates config text (no file named in errors).
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: None,
            key: String::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let config: Config =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError {
                file: None,
                key: e.path().to_string(),
                message: e.inner().message().to_string(),
            })?;
        config.with_builtin_mock().validated(env)
    }

    /// `mock` exists in every config that does not define it itself.
    fn with_builtin_mock(mut self) -> Config {
        if !self.models.iter().any(|m| m.name == "mock") {
            self.models.push(ModelConfig::builtin_mock());
        }
        self
    }

    fn validated(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            file: None,
            key,
            message,
        };
        let names: Vec<String> = self.models.iter().map(|m| m.name.clone()).collect();
        if !names.contains(&self.default_model) {
            return Err(err(
                "default_model".into(),
                format!("no model named `{}` is configured", self.default_model),
            ));
        }
        if self.heartbeat_secs == 0 {
            return Err(err("heartbeat_secs".into(), "must be at least 1".into()));
        }
        self.validate_limits()?;
        self.resolve_auth(&env)?;
        for (i, origin) in self.cors.allow_origins.iter().enumerate() {
            if origin != "*" && !is_origin(origin) {
                return Err(err(
                    format!("cors.allow_origins[{i}]"),
                    format!(
                        "`{origin}` is not an origin such as \"http://localhost:5173\" (or \"*\")"
                    ),
                ));
            }
        }
        for (i, model) in self.models.iter_mut().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if names.iter().filter(|n| **n == model.name).count() > 1 {
                return Err(err(
                    key("name"),
                    format!("model `{}` is defined twice", model.name),
                ));
            }
            for fallback in &model.fallbacks {
                if !names.contains(fallback) {
                    return Err(err(
                        key("fallbacks"),
                        format!("no model named `{fallback}` is configured"),
                    ));
                }
            }
            if let Some(status) = model.error_status {
                if !(400..=599).contains(&status) {
                    return Err(err(
                        key("error_status"),
                        "must be an HTTP error status (400-599)".into(),
                    ));
                }
            }
            if model.fallbacks.contains(&model.name) {
                return Err(err(
                    key("fallbacks"),
                    "a model cannot fall back to itself".into(),
                ));
            }
            if let Some(default_url) = model.provider.default_base_url() {
                if model.has_mock_knobs() {
                    return Err(err(
                        key("provider"),
                        "mock knobs (ttft_ms, text, ...) only apply to provider \"mock\"".into(),
                    ));
                }
                let base_url = model.base_url.get_or_insert_with(|| default_url.into());
                if reqwest::Url::parse(base_url).is_err() {
                    return Err(err(key("base_url"), format!("`{base_url}` is not a URL")));
                }
            }
            if model.default_max_tokens == Some(0) {
                return Err(err(key("default_max_tokens"), "must be at least 1".into()));
            }
            if let Some(var) = &model.api_key_env {
                match env(var) {
                    Some(value) if !value.is_empty() => model.api_key = Some(value),
                    _ => {
                        return Err(err(
                            key("api_key_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
            }
        }
        Ok(self)
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let checks = [
            ("limits.max_body_bytes", limits.max_body_bytes == 0),
            (
                "limits.max_concurrent_streams",
                limits.max_concurrent_streams == 0,
            ),
            (
                "limits.per_client_concurrent_streams",
                limits.per_client_concurrent_streams == 0,
            ),
            (
                "limits.burst",
                limits.requests_per_second > 0 && limits.burst == 0,
            ),
        ];
        match checks.into_iter().find(|(_, bad)| *bad) {
            Some((key, _)) => Err(ConfigError {
                file: None,
                key: key.into(),
                message: "must be at least 1".into(),
            }),
            None => Ok(()),
        }
    }

    /// Adds the keys from `auth.api_keys_env`; empty keys are refused, since
    /// an empty bearer token would then open the door.
    fn resolve_auth(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let err = |key: String, message: String| ConfigError {
            file: None,
            key,
            message,
        };
        if let Some(var) = &self.auth.api_keys_env {
            let Some(value) = env(var) else {
                return Err(err(
                    "auth.api_keys_env".into(),
                    format!("environment variable {var} is not set"),
                ));
            };
            let keys: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            if keys.is_empty() {
                return Err(err(
                    "auth.api_keys_env".into(),
                    format!("environment variable {var} holds no keys"),
                ));
            }
            self.auth.api_keys.extend(keys);
        }
        if let Some(i) = self.auth.api_keys.iter().position(|k| k.trim().is_empty()) {
            return Err(err(
                format!("auth.api_keys[{i}]"),
                "must not be empty".into(),
            ));
        }
        Ok(())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
}

/// `scheme://host[:port]` with nothing after it, as browsers send `Origin`.
fn is_origin(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(url) => {
            url.has_host()
                && url.path() == "/"
                && !text.ends_with('/')
                && url.query().is_none()
                && axum::http::HeaderValue::from_str(text).is_ok()
        }
        Err(_) => false,
    }
}
