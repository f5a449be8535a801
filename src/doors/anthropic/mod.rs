//! The Anthropic Messages door (section 10 of the contract): `POST /v1/messages`,
//! the API the `anthropic` SDKs, the AI SDK's `@ai-sdk/anthropic` provider and
//! Anthropic-native coding tools speak, in front of any provider.
//!
//! Anthropic's request shape in (`request`), Anthropic's typed events out
//! (`frames`), or one `message` object (`objects`), errors in Anthropic's
//! shape and types (`error`). The client's sluice key may come as `x-api-key`
//! (what the SDKs send) or as a Bearer token; the gate reads both.

pub mod error;
mod frames;
mod objects;
mod request;

use axum::extract::State;
use axum::response::Response;
use axum::Json;

use super::{Admission, LimitedBody, Planned};
use crate::pipeline::framer::Framer;
use crate::state::AppState;
use crate::tokenizer;
use error::AnthropicError;
use frames::MessageEvents;
use objects::Head;
use request::ParsedRequest;

pub async fn messages(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, AnthropicError> {
    let ParsedRequest {
        model,
        stream,
        generation,
    } = request::parse_request(&body)?;
    let planned = Planned::new(&app, &admission.tally, model.as_deref(), generation)?;
    if !stream {
        let collected = super::collect(&app, admission, planned).await?;
        let head = Head::new(&collected.served_by, collected.finish.usage.prompt_tokens);
        let message = head.finished(&collected);
        return Ok(super::served_by(Json(message), &collected));
    }
    let prompt_tokens = tokenizer::prompt_tokens(&planned.request.messages);
    let framer_for = |route: &str| -> Box<dyn Framer> {
        Box::new(MessageEvents::new(Head::new(route, prompt_tokens)))
    };
    Ok(super::stream(&app, admission, planned, framer_for, None).await?)
}

/// `POST /v1/messages/count_tokens`: the input tokens of a Messages request
/// (`model`, `messages`, `system`, `tools`), counted with sluice's
/// tokenizer over the prompt as the door would send it.
pub async fn count_tokens(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Json<serde_json::Value>, AnthropicError> {
    let ParsedRequest {
        model, generation, ..
    } = request::parse_count(&body)?;
    let planned = Planned::new(&app, &admission.tally, model.as_deref(), generation)?;
    let tokens = super::input_tokens(&planned).await?;
    Ok(Json(serde_json::json!({ "input_tokens": tokens })))
}

/// For the fuzz targets: the request parser on untrusted bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(body: &[u8]) {
    let _ = request::parse_request(body);
}
