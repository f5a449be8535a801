//! One `[[models]]` entry: which provider serves a model name, where, with
//! which key, retries and fallbacks, and (for the mock) its knobs.

use std::fmt;

use serde::Deserialize;

use crate::generation::{MockKnobs, MockMode};

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
    /// Answers from recordings in `dir` (section 14).
    Replay,
}

impl ProviderKind {
    /// As the config writes it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Mock => "mock",
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Replay => "replay",
        }
    }

    /// Where the provider lives when `base_url` is not given.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Mock | ProviderKind::Replay => None,
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Ollama => Some("http://127.0.0.1:11434"),
        }
    }
}

/// What a route does when its upstream fails after the first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Midstream {
    /// The answer ends with an error frame.
    #[default]
    Error,
    /// The answer is asked for again with the text so far as a prefill,
    /// and the continuation relayed after it (`pipeline::midstream`).
    Continue,
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
    /// What a failure after the first token does (section 17): end the
    /// answer with an error frame (the default), or continue it.
    #[serde(default)]
    pub midstream: Midstream,
    /// How many continuations one answer may ask for (default 2, 1 to 5).
    pub midstream_attempts: Option<u32>,
    /// With no first token by then, the request also goes to the first
    /// fallback, and the first of the two to give a token serves.
    pub hedge_after_ms: Option<u64>,
    /// `max_tokens` sent when the client gives none, for providers that
    /// require one (Anthropic). Default 4096.
    pub default_max_tokens: Option<u32>,
    /// For `openai` models: the request fields sluice does not read that
    /// clients may pass to the upstream (say `["tools", "tool_choice",
    /// "response_format"]`). Absent: all of them. Fields such as
    /// `service_tier` or `store` act on the operator's account.
    pub passthrough: Option<Vec<String>>,

    pub ttft_ms: Option<u64>,
    pub token_delay_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub tokens: Option<u32>,
    pub text: Option<String>,
    pub mode: Option<MockMode>,
    pub fail_after: Option<u32>,
    pub error_status: Option<u16>,
    pub drop_after: Option<u32>,
    pub reasoning_tokens: Option<u32>,
    pub tool_call: Option<String>,
    /// Requests and tokens per minute per client, with a provider's
    /// rate-limit headers (mock only, section 14).
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    /// A misbehaviour by name, and its settings (mock only, section 14).
    pub fault: Option<crate::generation::Fault>,
    pub fault_after: Option<u32>,
    pub fault_ms: Option<u64>,
    pub fault_status: Option<u16>,
    /// Record every exchange of this route to `[record] dir` (section 14).
    #[serde(default)]
    pub record: bool,
    /// For `replay`: the directory of recordings it answers from.
    pub dir: Option<std::path::PathBuf>,
    /// For `replay`: `"mock"` answers a request with no recording.
    pub fallback: Option<String>,
    /// For `replay`: its recorded timing times this (default 1.0; 0: at
    /// once).
    pub speed: Option<f64>,

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
    pub(super) fn builtin_mock() -> ModelConfig {
        ModelConfig {
            name: "mock".into(),
            provider: ProviderKind::Mock,
            base_url: None,
            api_key_env: None,
            upstream_model: None,
            fallbacks: Vec::new(),
            retries: None,
            midstream: Midstream::Error,
            midstream_attempts: None,
            hedge_after_ms: None,
            default_max_tokens: None,
            passthrough: None,
            ttft_ms: None,
            token_delay_ms: None,
            jitter_ms: None,
            tokens: None,
            text: None,
            mode: None,
            fail_after: None,
            error_status: None,
            drop_after: None,
            reasoning_tokens: None,
            tool_call: None,
            rpm: None,
            tpm: None,
            fault: None,
            fault_after: None,
            fault_ms: None,
            fault_status: None,
            record: false,
            dir: None,
            fallback: None,
            speed: None,
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
            reasoning_tokens: self.reasoning_tokens,
            tool_call: self.tool_call.clone(),
            rpm: self.rpm,
            tpm: self.tpm,
            fault: self.fault,
            fault_after: self.fault_after,
            fault_ms: self.fault_ms,
            fault_status: self.fault_status,
            speed: self.speed,
        }
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

    /// Continuations one answer may ask for: `midstream_attempts`, else 2.
    pub fn midstream_attempts(&self) -> u32 {
        self.midstream_attempts.unwrap_or(2)
    }

    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.name)
    }
}

/// The matcher of a model name that is a glob pattern (it has `*`, `?` or
/// `[`), or its error; `None` for an exact name.
pub fn name_pattern(name: &str) -> Option<Result<globset::GlobMatcher, globset::Error>> {
    name.contains(['*', '?', '['])
        .then(|| globset::Glob::new(name).map(|glob| glob.compile_matcher()))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::generation::{MockKnobs, MockMode};

    /// The knob fields are listed twice (here, flat, as the contract shows
    /// them, and in `MockKnobs`): every one of them must arrive.
    #[test]
    fn every_mock_knob_in_a_models_entry_reaches_the_mock() {
        let config = Config::parse(
            r#"
            [[models]]
            name = "m"
            provider = "mock"
            ttft_ms = 1
            token_delay_ms = 2
            jitter_ms = 3
            tokens = 4
            text = "five"
            mode = "echo"
            fail_after = 6
            error_status = 507
            drop_after = 8
            reasoning_tokens = 9
            tool_call = "ten"
            fault = "stall"
            fault_after = 11
            fault_ms = 12
            fault_status = 529
            "#,
            |_| None,
        )
        .unwrap();
        let knobs = config
            .models
            .iter()
            .find(|m| m.name == "m")
            .unwrap()
            .mock_knobs();
        assert_eq!(
            knobs,
            MockKnobs {
                ttft_ms: Some(1),
                token_delay_ms: Some(2),
                jitter_ms: Some(3),
                tokens: Some(4),
                text: Some("five".into()),
                mode: Some(MockMode::Echo),
                fail_after: Some(6),
                error_status: Some(507),
                drop_after: Some(8),
                reasoning_tokens: Some(9),
                tool_call: Some("ten".into()),
                rpm: None,
                tpm: None,
                fault: Some(crate::generation::Fault::Stall),
                fault_after: Some(11),
                fault_ms: Some(12),
                fault_status: Some(529),
                speed: None,
            }
        );
    }

    #[test]
    fn a_models_entry_is_held_to_the_same_knob_bounds_as_a_request() {
        let err = Config::parse(
            "[[models]]\nname = \"m\"\nprovider = \"mock\"\ntokens = 100001\n",
            |_| None,
        )
        .unwrap_err();
        assert_eq!(err.key, "models[0].tokens");
        assert!(err.message.contains("at most 100000"), "{}", err.message);
    }
}
