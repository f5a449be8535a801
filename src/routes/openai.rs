//! The OpenAI-compatible front door (section 2 of the contract):
//! `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`.
//!
//! The request path is the native door's with OpenAI's shapes at both ends:
//! parse the OpenAI body, resolve the model (mock knobs may ride in its
//! name), start the generation under its deadlines, then either stream
//! chunks through the relay or collect one whole object.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::read_body;
use crate::frame::Framer;
use crate::observe::Tally;
use crate::openai_compat::collect::{self, collect};
use crate::openai_compat::error::OpenAiError;
use crate::openai_compat::frames::{ChatChunks, CompletionChunks};
use crate::openai_compat::request::{self as openai_request, Prepared};
use crate::openai_compat::Identity;
use crate::providers::failover;
use crate::relay::{self, Relay};
use crate::{request, AppState};

pub async fn chat_completions(
    State(app): State<AppState>,
    Extension(tally): Extension<Tally>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let body = read_body(body, &headers, app.config.limits.max_body_bytes).await?;
    let prepared = openai_request::chat(&body)?;
    respond(app, tally, prepared, Kind::Chat).await
}

pub async fn completions(
    State(app): State<AppState>,
    Extension(tally): Extension<Tally>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let body = read_body(body, &headers, app.config.limits.max_body_bytes).await?;
    let prepared = openai_request::completion(&body)?;
    respond(app, tally, prepared, Kind::Completion).await
}

#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

async fn respond(
    app: AppState,
    tally: Tally,
    prepared: Prepared,
    kind: Kind,
) -> Result<Response, OpenAiError> {
    let Prepared {
        model,
        stream,
        include_usage,
        mut generation,
    } = prepared;
    let route = request::resolve_model(&app.models, model.as_deref(), &mut generation)?;
    tally.set_model(&route.name);
    let events = failover::generate(&app.models, &route, generation, &app.config.timeouts);
    let identity = match kind {
        Kind::Chat => Identity::new("chatcmpl", &route.name),
        Kind::Completion => Identity::new("cmpl", &route.name),
    };
    if !stream {
        let meter = tally.meter(&route.name, None);
        let collected = collect(events, meter, app.drain.expiry()).await?;
        let served_by = collected
            .served_by
            .clone()
            .unwrap_or_else(|| route.name.clone());
        let object = match kind {
            Kind::Chat => collect::chat_completion(&identity, collected),
            Kind::Completion => collect::text_completion(&identity, collected),
        };
        return Ok(relay::with_served_by(
            Json(object).into_response(),
            &served_by,
        ));
    }
    let heartbeat = app.config.heartbeat();
    let started = relay::start(events, heartbeat).await?;
    let relay = Relay {
        heartbeat,
        meter: tally.meter(&route.name, started.upstream_ttft),
        shutdown: app.drain.expiry(),
    };
    let framer: Box<dyn Framer> = match kind {
        Kind::Chat => Box::new(ChatChunks::new(&identity, include_usage)),
        Kind::Completion => Box::new(CompletionChunks::new(&identity, include_usage)),
    };
    let served_by = started
        .served_by
        .clone()
        .unwrap_or_else(|| route.name.clone());
    Ok(relay::with_served_by(
        relay::response(started, framer, relay),
        &served_by,
    ))
}

pub async fn models(State(app): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = app.models.names().into_iter().map(model_object).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn model(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let route = app.models.resolve(Some(&id))?;
    Ok(Json(model_object(&route.name)))
}

fn model_object(name: &str) -> Value {
    json!({ "id": name, "object": "model", "created": 0, "owned_by": "sluice" })
}
