//! The front doors: each parses its own request shape into a [`GenRequest`],
//! picks its [`Framer`] and answers errors in its own shape; everything
//! between is the one pipeline ([`stream`] and [`collect`] here, over
//! `crate::pipeline`).
//!
//! A new door is one folder beside `native/`, `openai/`, `responses/`,
//! `anthropic/`, `ui/` and `agui/`: its request
//! parsing, its framers, its error body, and handlers that end in [`stream`]
//! or [`collect`]; plus a [`Door`] variant and a route.
//!
//! What it may not do: reach into another door's folder (but for OpenAI's
//! error shape, which the Responses door shares), or copy the pipeline's
//! steps.

pub mod agui;
pub mod anthropic;
mod calls;
mod format;
pub mod idempotency;
mod json;
pub mod native;
pub mod openai;
pub mod provider_limits;
pub mod responses;
mod settings;
mod tools;
pub mod ui;
pub mod watch;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;

use crate::auth::ClientKey;
use crate::error::{ApiError, ErrorKind};
use crate::generation::GenRequest;
use crate::generations::{Log, Owner};
use crate::limits::PermitSlot;
use crate::models::ModelRoute;
use crate::observe::Tally;
use crate::pipeline::collect::Collected;
use crate::pipeline::failover::Choice;
use crate::pipeline::framer::Framer;
use crate::pipeline::relay::{self, LogWriter, StreamContext};
use crate::pipeline::{collect as collector, failover};
use crate::state::AppState;

/// The routes of the API, by door.
pub mod paths {
    pub const STREAM: &str = "/v1/stream";
    pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
    pub const COMPLETIONS: &str = "/v1/completions";
    pub const RESPONSES: &str = "/v1/responses";
    pub const MESSAGES: &str = "/v1/messages";
    pub const EMBEDDINGS: &str = "/v1/embeddings";
    pub const MESSAGES_COUNT_TOKENS: &str = "/v1/messages/count_tokens";
    pub const RESPONSES_INPUT_TOKENS: &str = "/v1/responses/input_tokens";
    pub const RESPONSE: &str = "/v1/responses/{id}";
    pub const RESPONSE_CANCEL: &str = "/v1/responses/{id}/cancel";
    pub const MODELS: &str = "/v1/models";
    pub const MODEL: &str = "/v1/models/{*id}";
    pub const PROMPTS: &str = "/v1/prompts";
    pub const GENERATIONS: &str = "/v1/generations";
    pub const GENERATION: &str = "/v1/generations/{id}";
    pub const GENERATION_EVENTS: &str = "/v1/generations/{id}/events";
    pub const GENERATION_PAUSE: &str = "/v1/generations/{id}/pause";
    pub const GENERATION_STEP: &str = "/v1/generations/{id}/step";
    pub const GENERATION_RESUME: &str = "/v1/generations/{id}/resume";
    pub const UI_CHAT: &str = "/v1/ui/chat";
    pub const UI_CHAT_STREAM: &str = "/v1/ui/chat/{id}/stream";
    pub const AGUI: &str = "/v1/agui";
}

/// Which front door a request came in by: its metric label and error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Native,
    /// The generations API (section 7): native shapes.
    Generations,
    OpenAiChat,
    OpenAiCompletions,
    /// `POST /v1/embeddings` (section 13).
    OpenAiEmbeddings,
    /// The OpenAI Responses API (section 10).
    OpenAiResponses,
    /// The Anthropic Messages API (section 10).
    AnthropicMessages,
    /// The AI SDK's `useChat` (section 15).
    UiChat,
    /// AG-UI's `HttpAgent` (section 15).
    AgUi,
    Models,
    Prompts,
    /// No API route matched (a 404), or an operations endpoint.
    Other,
}

impl Door {
    /// The door of a route, as axum matched it.
    pub fn of(route: Option<&MatchedPath>) -> Door {
        match route.map(MatchedPath::as_str) {
            Some(paths::STREAM) => Door::Native,
            Some(
                paths::GENERATIONS
                | paths::GENERATION
                | paths::GENERATION_EVENTS
                | paths::GENERATION_PAUSE
                | paths::GENERATION_STEP
                | paths::GENERATION_RESUME,
            ) => Door::Generations,
            Some(paths::CHAT_COMPLETIONS) => Door::OpenAiChat,
            Some(paths::COMPLETIONS) => Door::OpenAiCompletions,
            Some(paths::EMBEDDINGS) => Door::OpenAiEmbeddings,
            Some(
                paths::RESPONSES
                | paths::RESPONSES_INPUT_TOKENS
                | paths::RESPONSE
                | paths::RESPONSE_CANCEL,
            ) => Door::OpenAiResponses,
            Some(paths::MESSAGES | paths::MESSAGES_COUNT_TOKENS) => Door::AnthropicMessages,
            Some(paths::UI_CHAT | paths::UI_CHAT_STREAM) => Door::UiChat,
            Some(paths::AGUI) => Door::AgUi,
            Some(paths::MODELS | paths::MODEL) => Door::Models,
            Some(paths::PROMPTS) => Door::Prompts,
            Some(_) | None => Door::Other,
        }
    }

    /// The door a path no route matched would belong to, by its prefix: an
    /// unknown path under `/v1/messages` gets Anthropic's error shape, one
    /// under the OpenAI routes OpenAI's.
    pub fn of_unknown_path(path: &str) -> Door {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        if under(paths::MESSAGES) {
            Door::AnthropicMessages
        } else if under(paths::RESPONSES) {
            Door::OpenAiResponses
        } else if under(paths::CHAT_COMPLETIONS)
            || under(paths::COMPLETIONS)
            || under(paths::EMBEDDINGS)
            || under(paths::MODELS)
        {
            Door::OpenAiChat
        } else {
            Door::Other
        }
    }

    /// The door of a request on its way in.
    pub fn of_parts(parts: &Parts) -> Door {
        Door::of(parts.extensions.get::<MatchedPath>())
    }

    /// Every door.
    const ALL: [Door; 12] = [
        Door::Native,
        Door::Generations,
        Door::OpenAiChat,
        Door::OpenAiCompletions,
        Door::OpenAiEmbeddings,
        Door::OpenAiResponses,
        Door::AnthropicMessages,
        Door::UiChat,
        Door::AgUi,
        Door::Models,
        Door::Prompts,
        Door::Other,
    ];

    /// The door whose [`Door::label`] a request's record carries.
    pub fn of_label(label: &str) -> Door {
        Door::ALL
            .into_iter()
            .find(|door| door.label() == label)
            .unwrap_or(Door::Other)
    }

    /// The name a mock scenario's `match.door` gives this door.
    pub fn scenario_name(self) -> &'static str {
        match self {
            Door::OpenAiChat | Door::OpenAiCompletions | Door::OpenAiEmbeddings => "openai",
            Door::OpenAiResponses => "responses",
            Door::AnthropicMessages => "messages",
            Door::UiChat => "ui",
            Door::AgUi => "agui",
            Door::Native | Door::Generations | Door::Models | Door::Prompts | Door::Other => {
                "native"
            }
        }
    }

    /// The metric and access-log label.
    pub fn label(self) -> &'static str {
        match self {
            Door::Native => "native",
            Door::Generations => "generations",
            Door::OpenAiChat => "openai_chat",
            Door::OpenAiCompletions => "openai_completions",
            Door::OpenAiEmbeddings => "openai_embeddings",
            Door::OpenAiResponses => "openai_responses",
            Door::AnthropicMessages => "anthropic_messages",
            Door::UiChat => "ui_chat",
            Door::AgUi => "agui",
            Door::Models => "models",
            Door::Prompts => "prompts",
            Door::Other => "other",
        }
    }

    /// `err` in this door's error shape.
    pub fn reject(self, err: ApiError) -> Response {
        match self {
            Door::OpenAiChat
            | Door::OpenAiCompletions
            | Door::OpenAiEmbeddings
            | Door::OpenAiResponses
            | Door::Models => openai::error::OpenAiError(err).into_response(),
            Door::AnthropicMessages => anthropic::error::AnthropicError(err).into_response(),
            Door::Native
            | Door::Generations
            | Door::UiChat
            | Door::AgUi
            | Door::Prompts
            | Door::Other => err.into_response(),
        }
    }
}

/// A request body read whole, refusing more than `limits.max_body_bytes`
/// with a 413 in the door's error shape.
pub struct LimitedBody(pub Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let limit = app.config.limits.max_body_bytes;
        let too_large = || {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("the request body is larger than limits.max_body_bytes ({limit} bytes)"),
            )
        };
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let read = match declared {
            Some(n) if n > limit as u64 => Err(too_large()),
            _ => match Limited::new(body, limit).collect().await {
                Ok(collected) => Ok(LimitedBody(collected.to_bytes())),
                Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
                Err(err) => Err(ApiError::invalid(
                    "body",
                    format!("could not read the request body: {err}"),
                )),
            },
        };
        let body = read.map_err(|err| Door::of_parts(&parts).reject(err))?;
        idempotency::note(&parts, &body.0).map_err(|err| Door::of_parts(&parts).reject(err))?;
        Ok(body)
    }
}

/// What the gate admitted a request with: the request's record, who the
/// client is, and the stream slot the gate took for it (routes that start no
/// generation have none).
pub struct Admission {
    pub tally: Tally,
    pub client: ClientKey,
    pub slot: PermitSlot,
}

impl Admission {
    /// Whose generations this request may see: its key's, when auth is on.
    pub fn owner(&self) -> Owner {
        match self.client {
            ClientKey::Key(key) => Some(key),
            ClientKey::Addr(_) | ClientKey::Unknown => None,
        }
    }
}

impl FromRequestParts<AppState> for Admission {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Tally>() {
            Some(tally) => Ok(Admission {
                tally: tally.clone(),
                client: parts
                    .extensions
                    .get::<ClientKey>()
                    .copied()
                    .unwrap_or(ClientKey::Unknown),
                slot: parts
                    .extensions
                    .get::<PermitSlot>()
                    .cloned()
                    .unwrap_or_default(),
            }),
            None => Err(Door::of_parts(parts).reject(ApiError::new(
                ErrorKind::Internal,
                "the request was routed past the record middleware",
            ))),
        }
    }
}

/// `stop`: one sequence or several, in both doors' requests.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(stop: Option<Stop>) -> Vec<String> {
        match stop {
            None => Vec::new(),
            Some(Stop::One(one)) => vec![one],
            Some(Stop::Many(many)) => many,
        }
    }
}

/// The header naming the model that serves (a fallback, perhaps).
pub const SERVED_BY: &str = "x-sluice-model";

/// The header naming the generation behind an answer.
pub const GENERATION: &str = "x-sluice-generation";

/// Names generation `id` in the response's `X-Sluice-Generation` header.
pub fn with_generation(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(GENERATION, value);
    }
    response
}

fn with_served_by(mut response: Response, model: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(model) {
        response.headers_mut().insert(SERVED_BY, value);
    }
    response
}

/// A request resolved to the model that serves it, ready for the pipeline.
pub struct Planned {
    pub route: Arc<ModelRoute>,
    pub request: GenRequest,
}

impl Planned {
    /// Resolves the model and notes it in the request's record.
    pub fn new(
        app: &AppState,
        tally: &Tally,
        model: Option<&str>,
        mut request: GenRequest,
    ) -> Result<Planned, ApiError> {
        let route = app.models.resolve(model, &mut request)?;
        tally.set_model(&route.name, &route.configured, route.kind);
        if route.kind == crate::config::ProviderKind::Mock {
            let door = Door::of_label(tally.door()).scenario_name();
            if let Some(scenario) = app.scenarios.apply(door, &route.name, &mut request) {
                tally.add_headers(vec![("x-sluice-scenario", scenario)]);
            }
            emulated_limits(app, tally, &route, &request)?;
        }
        Ok(Planned { route, request })
    }

    /// The failover's choice of the attempt that serves; its attempts are
    /// spans under the request's, when tracing is on.
    pub fn choose(self, app: &AppState, tally: &Tally) -> Choice {
        let choosing = failover::choose(
            app.models.chain(&self.route),
            self.request,
            app.config.timeouts.clone(),
        );
        match tally.trace_context() {
            Some(cx) => Box::pin(opentelemetry::trace::FutureExt::with_context(choosing, cx)),
            None => Box::pin(choosing),
        }
    }
}

/// The pipeline for a streaming door: choose the attempt that serves, and
/// relay it through the framer `framer_for` makes for the route's name,
/// into `log` too when the generation is a resource. A request with an
/// `Idempotency-Key` is answered by [`idempotency`] instead.
pub async fn stream(
    app: &AppState,
    admission: Admission,
    planned: Planned,
    framer_for: impl FnOnce(&str) -> Box<dyn Framer>,
    log: Option<Arc<Log>>,
) -> Result<Response, ApiError> {
    if let Some(keyed) = admission.tally.keyed() {
        return idempotency::stream(app, admission, planned, framer_for, log, &keyed).await;
    }
    let route = planned.route.clone();
    let heartbeat = app.config.heartbeat();
    let started = relay::start(
        planned.choose(app, &admission.tally),
        heartbeat,
        &app.drain.expiry(),
    )
    .await?;
    // Unknown until the first token when it took longer than a heartbeat.
    let served_by = started
        .served_by
        .clone()
        .unwrap_or_else(|| route.name.clone());
    let context = StreamContext {
        heartbeat,
        meter: admission
            .tally
            .meter(&route.configured, started.upstream_ttft),
        shutdown: app.drain.expiry(),
        permit: admission.slot.take(),
        log: log.map(LogWriter::new),
    };
    let response = relay::response(started, framer_for(&route.name), context);
    Ok(with_served_by(response, &served_by))
}

/// How long a stop (`DELETE`, a UI chat's stop, a background response's
/// cancel) waits for the generation's runner to write its end, so that the
/// answer shows the status it ended with.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Cancels `log`'s generation (its upstream request is closed) and waits,
/// at most [`STOP_WAIT`], for it to end.
pub async fn stop(log: &Log) {
    log.cancel();
    let ended = async {
        loop {
            let changed = log.changed();
            if log.progress().0 != crate::generations::Status::Running {
                return;
            }
            changed.await;
        }
    };
    let _ = tokio::time::timeout(STOP_WAIT, ended).await;
}

/// A new generation of `planned` (a resource, section 7), owned by the
/// request's client; its prompt counted now, for the usage of one
/// cancelled part way.
pub async fn new_generation(
    app: &AppState,
    admission: &Admission,
    planned: &Planned,
) -> Result<Arc<Log>, ApiError> {
    let prompt_tokens = crate::tokenizer::prompt_tokens(&planned.request.messages);
    app.generations
        .create(
            admission.owner(),
            &planned.route.name,
            prompt_tokens,
            app.drain.expiry().child_token(),
        )
        .await
}

/// A mock route's emulated provider limits (`rpm`, `tpm`): the headers go
/// on the answer, and past a limit the answer is a 429.
fn emulated_limits(
    app: &AppState,
    tally: &Tally,
    route: &ModelRoute,
    request: &GenRequest,
) -> Result<(), ApiError> {
    use provider_limits::{Ask, Style};
    let knobs = route.knobs.overridden_by(&request.mock);
    if knobs.rpm.is_none() && knobs.tpm.is_none() {
        return Ok(());
    }
    let style = match Door::of_label(tally.door()) {
        Door::AnthropicMessages => Style::Anthropic,
        Door::Native
        | Door::Generations
        | Door::OpenAiChat
        | Door::OpenAiCompletions
        | Door::OpenAiEmbeddings
        | Door::OpenAiResponses
        | Door::UiChat
        | Door::AgUi
        | Door::Models
        | Door::Prompts
        | Door::Other => Style::OpenAi,
    };
    let verdict = app.provider_limits.admit(Ask {
        route: &route.configured,
        client: tally.client().unwrap_or(ClientKey::Unknown),
        rpm: knobs.rpm,
        tpm: knobs.tpm,
        tokens: crate::tokenizer::input_tokens(request)
            .saturating_add(request.max_tokens.unwrap_or(0)),
        style,
    });
    tally.add_headers(verdict.headers);
    match verdict.refused {
        None => Ok(()),
        Some(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Err(ApiError {
                retry_after: Some(secs.max(1)),
                ..ApiError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "rate limit reached for {} (the mock's rpm/tpm); retry in {} ms",
                        route.name,
                        wait.as_millis()
                    ),
                )
            })
        }
    }
}

/// The input tokens of a planned request, for the counting endpoints: the
/// upstream's own count where its provider has one (Anthropic's), else
/// sluice's tokenizer over the prompt as the door would send it.
pub async fn input_tokens(planned: &Planned) -> Result<u32, ApiError> {
    match planned.route.provider.count_tokens(&planned.request).await {
        Some(counted) => counted.map_err(ApiError::from),
        None => Ok(crate::tokenizer::input_tokens(&planned.request)),
    }
}

/// The pipeline for a non-streaming answer: the generation run to its end,
/// for the door to make one object of (see [`served_by`]); through its
/// log when the request has an `Idempotency-Key`.
pub async fn collect(
    app: &AppState,
    admission: Admission,
    planned: Planned,
) -> Result<Collected, ApiError> {
    if let Some(keyed) = admission.tally.keyed() {
        return idempotency::collect(app, admission, planned, &keyed).await;
    }
    let _slot = admission.slot.take();
    let meter = admission.tally.meter(&planned.route.configured, None);
    collector::collect(
        planned.choose(app, &admission.tally),
        meter,
        app.drain.expiry(),
    )
    .await
}

/// A whole answer's response, naming the model that served it.
pub fn served_by(response: impl IntoResponse, collected: &Collected) -> Response {
    with_served_by(response.into_response(), &collected.served_by)
}
