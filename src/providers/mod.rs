//! Providers: where tokens come from.
//!
//! Each provider turns a [`GenRequest`] into a [`TokenStream`] and nothing
//! more: it does not know which front door or frame format carries its tokens,
//! and it does not apply deadlines, retries or fallbacks (the pipeline does,
//! the same way for all). One file per provider; [`build`] makes the one a
//! `[[models]]` entry names.
//!
//! What it may not do: import anything above `generation`, `config` and the
//! helpers beside them (`sse`, `redact`, `tokenizer`); no HTTP error vocabulary
//! of the client side.

mod anthropic;
pub mod cassette;
mod mock;
mod ollama;
mod openai;
mod record;
pub mod replay;
mod upstream;
mod wire;

/// For the fuzz targets (`sluice::fuzzing`): bytes as an upstream's
/// response head and chunked body.
#[cfg(feature = "fuzzing")]
pub use wire::fuzz_response as fuzz_upstream_response;

/// For the fuzz targets (`sluice::fuzzing`).
#[cfg(feature = "fuzzing")]
pub fn fuzz_anthropic_events(events: &[&str]) {
    anthropic::fuzz_events(events);
}

/// For the fuzz targets (`sluice::fuzzing`): any bytes as a JSON Schema
/// (seeded by their length), whose arguments must stay within 64 KiB.
#[cfg(feature = "fuzzing")]
pub fn fuzz_mock_arguments(data: &[u8]) {
    let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut rng = fastrand::Rng::with_seed(data.len() as u64);
    let arguments = mock::arguments::generate(&schema, &mut rng, "");
    let bytes = arguments.to_string().len();
    assert!(bytes <= 64 * 1024, "{bytes} bytes of arguments");
}

/// For the fuzz targets (`sluice::fuzzing`).
#[cfg(feature = "fuzzing")]
pub fn fuzz_openai_events(events: &[&str]) {
    openai::fuzz_events(events);
}

use std::sync::Arc;

use crate::config::{Config, ModelConfig, ProviderKind};
use crate::generation::{EmbedRequest, Embedded, GenRequest, TokenStream, UpstreamError};

/// A source of tokens.
pub trait Provider: Send + Sync {
    /// Starts a generation. The stream yields outputs then exactly one
    /// terminal event; dropping it cancels the generation.
    fn generate(&self, request: GenRequest) -> TokenStream;

    /// The upstream's own count of `request`'s input tokens (the counting
    /// endpoints, section 13); `None` where sluice's tokenizer counts.
    fn count_tokens(&self, _request: &GenRequest) -> Counting<'_> {
        Box::pin(async { None })
    }

    /// Embeds texts (`POST /v1/embeddings`); a provider without embeddings
    /// says so.
    fn embed(&self, _request: EmbedRequest) -> Embedding<'_> {
        Box::pin(async {
            Err(UpstreamError::Stream(
                "this model's provider has no embeddings endpoint in sluice".into(),
            ))
        })
    }
}

/// What [`Provider::count_tokens`] answers: the upstream's count, or `None`
/// when sluice counts itself.
pub type Counting<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<Result<u32, UpstreamError>>> + Send + 'a>,
>;

/// What [`Provider::embed`] answers, when it has.
pub type Embedding<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Embedded, UpstreamError>> + Send + 'a>,
>;

/// The provider for one configured model of `config`; recorded when the
/// model says `record = true`.
pub fn build(model: &ModelConfig, config: &Config) -> Arc<dyn Provider> {
    let timeouts = &config.timeouts;
    let provider: Arc<dyn Provider> = match model.provider {
        ProviderKind::Mock => Arc::new(mock::Mock::new(model.mock_knobs())),
        ProviderKind::Openai => Arc::new(openai::OpenAi::new(model, timeouts)),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(model, timeouts)),
        ProviderKind::Ollama => Arc::new(ollama::Ollama::new(model, timeouts)),
        ProviderKind::Replay => {
            let fallback = model
                .fallback
                .as_ref()
                .map(|_| Arc::new(mock::Mock::new(model.mock_knobs())) as Arc<dyn Provider>);
            let dir = config.relative(model.dir.as_deref().unwrap_or(std::path::Path::new(".")));
            Arc::new(replay::Replay::new(
                &model.name,
                dir,
                model.speed.unwrap_or(1.0),
                fallback,
            ))
        }
    };
    match (&config.record.dir, model.record) {
        (Some(dir), true) => Arc::new(record::Recorded::new(
            provider,
            &model.name,
            model.provider.name(),
            config.relative(dir),
            config.record.max_bytes,
            model.api_key.iter().cloned().collect(),
        )),
        (Some(_) | None, _) => provider,
    }
}
