//! The OpenAI Responses door (section 10 of the contract): `POST /v1/responses`,
//! the API the AI SDK's `@ai-sdk/openai` provider and OpenAI's newer SDK
//! examples speak.
//!
//! Its request shape in (`request`: `input`, `instructions`,
//! `max_output_tokens`), named events with sequence numbers out (`frames`), or
//! one `response` object (`objects`). Errors are OpenAI's shape, shared with
//! the Chat Completions door (`doors::openai::error`), the one thing this door
//! takes from another.
//!
//! What it may not do: keep responses. sluice stores no conversation, so
//! `previous_response_id` is refused and `store` is answered `false`.

mod after;
mod background;
mod events;
mod frames;
mod objects;
mod request;

pub use background::{cancel, retrieve};

use axum::response::Response;
use axum::Json;

use super::openai::error::OpenAiError;
use super::{Admission, LimitedBody, Planned};
use crate::pipeline::framer::Framer;
use crate::state::AppState;
use frames::ResponseEvents;
use objects::Head;
use request::ParsedRequest;

/// `POST /v1/responses/input_tokens`: the input tokens of a Responses
/// request, counted with sluice's tokenizer over the prompt as the door
/// would send it.
pub async fn input_tokens(
    axum::extract::State(app): axum::extract::State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Json<serde_json::Value>, OpenAiError> {
    let ParsedRequest {
        model, generation, ..
    } = request::parse_request(&body)?;
    let planned = Planned::new(&app, &admission.tally, model.as_deref(), generation)?;
    let tokens = super::input_tokens(&planned).await?;
    Ok(Json(serde_json::json!({
        "object": "response.input_tokens",
        "input_tokens": tokens,
    })))
}

pub async fn create(
    axum::extract::State(app): axum::extract::State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, OpenAiError> {
    let ParsedRequest {
        model,
        stream,
        background,
        echo,
        generation,
    } = request::parse_request(&body)?;
    let planned = Planned::new(&app, &admission.tally, model.as_deref(), generation)?;
    if background {
        return Ok(background::create(&app, admission, planned, echo, stream).await?);
    }
    if !stream {
        let collected = super::collect(&app, admission, planned).await?;
        let head = Head::new(&collected.served_by, echo);
        let (status, _) = objects::status_of(&collected.finish);
        let items = objects::Item::all_of(&collected, status);
        let response = head.response(objects::Outcome::Finished(&collected.finish), &items);
        return Ok(super::served_by(Json(response), &collected));
    }
    let framer_for =
        |route: &str| -> Box<dyn Framer> { Box::new(ResponseEvents::new(Head::new(route, echo))) };
    Ok(super::stream(&app, admission, planned, framer_for, None).await?)
}

/// For the fuzz targets: the request parser on untrusted bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(body: &[u8]) {
    let _ = request::parse_request(body);
}
