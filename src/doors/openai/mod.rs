//! The OpenAI-compatible front door (section 2 of the contract):
//! `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`.
//!
//! OpenAI's request bodies in (`request`), `chat.completion.chunk` and
//! `text_completion` frames out (`frames`), or one whole object
//! (`objects`), errors in OpenAI's shape (`error`); between them the shared
//! pipeline.
//!
//! Shape fidelity is the point of this door: strict clients (the official
//! SDKs, LangChain, the Vercel AI SDK, the Mistral SDK) break on small
//! deviations, so the rules are kept exactly: a role-only first delta,
//! `finish_reason: null` until the last chunk, the same `id`/`created`/`model`
//! on every chunk, a `choices: []` usage chunk when asked, then `[DONE]`, and
//! never a synthetic `stop` after a failure.

pub mod embeddings;
pub mod error;
mod frames;
mod identity;
mod objects;
mod request;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use error::OpenAiError;
pub use frames::{ChatChunks, CompletionChunks};
pub use identity::Identity;
use request::ParsedRequest;

use super::{Admission, LimitedBody, Planned};
use crate::pipeline::framer::Framer;
use crate::state::AppState;

pub async fn chat_completions(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, OpenAiError> {
    respond(app, admission, request::chat(&body)?, Endpoint::Chat).await
}

pub async fn completions(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, OpenAiError> {
    respond(
        app,
        admission,
        request::completion(&body)?,
        Endpoint::Completion,
    )
    .await
}

#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    /// A fresh identity, with OpenAI's id prefix for the endpoint.
    fn identity(self, model: &str) -> Identity {
        match self {
            Endpoint::Chat => Identity::new("chatcmpl", model),
            Endpoint::Completion => Identity::new("cmpl", model),
        }
    }
}

async fn respond(
    app: AppState,
    admission: Admission,
    parsed: ParsedRequest,
    endpoint: Endpoint,
) -> Result<Response, OpenAiError> {
    let ParsedRequest {
        model,
        stream,
        include_usage,
        generation,
    } = parsed;
    let planned = Planned::new(&app, &admission.tally, model.as_deref(), generation)?;
    if !stream {
        let collected = super::collect(&app, admission, planned).await?;
        let identity = endpoint.identity(&collected.served_by);
        let object = match endpoint {
            Endpoint::Chat => objects::chat_completion(&identity, &collected),
            Endpoint::Completion => objects::text_completion(&identity, &collected),
        };
        return Ok(super::served_by(Json(object), &collected));
    }
    let framer_for = |route: &str| {
        let identity = endpoint.identity(route);
        let framer: Box<dyn Framer> = match endpoint {
            Endpoint::Chat => Box::new(ChatChunks::new(&identity, include_usage)),
            Endpoint::Completion => Box::new(CompletionChunks::new(&identity, include_usage)),
        };
        framer
    };
    Ok(super::stream(&app, admission, planned, framer_for, None).await?)
}

/// The model list, readable by both OpenAI's SDKs (`object`, `data`) and
/// Anthropic's (`data`, `has_more`, `first_id`, `last_id`), whose
/// `models.list()` asks the same path.
pub async fn models(State(app): State<AppState>) -> Json<Value> {
    let names = app.models.names();
    let data: Vec<Value> = names.iter().map(|name| model_object(name)).collect();
    Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": names.first(),
        "last_id": names.last(),
    }))
}

pub async fn model(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let route = app
        .models
        .get(Some(&id))
        .map_err(crate::error::ApiError::from)?;
    Ok(Json(model_object(&route.name)))
}

/// A model as OpenAI describes one (`object`, `created`, `owned_by`) and as
/// Anthropic does (`type`, `display_name`, `created_at`).
fn model_object(name: &str) -> Value {
    json!({
        "id": name, "object": "model", "created": 0, "owned_by": "sluice",
        "type": "model", "display_name": name, "created_at": "1970-01-01T00:00:00Z",
    })
}

/// For the fuzz targets: both request parsers on untrusted bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_requests(body: &[u8]) {
    let _ = request::chat(body);
    let _ = request::completion(body);
}
