//! Responses in the background (contract section 16): `background: true`
//! makes the response a generation that outlives its request, named
//! `resp_X` after its generation `gen_X` for its whole life, so the
//! official SDKs' `responses.retrieve(ID)`, `responses.retrieve(ID,
//! stream=True, starting_after=N)` and `responses.cancel(ID)` work against
//! any upstream.
//!
//! - `POST /v1/responses` with `background: true`: the response object at
//!   once (`in_progress`), or with `stream: true` its events as usual; it
//!   runs on when the client leaves, until it ends, is cancelled or passes
//!   `total_ms` (nobody need watch it).
//! - `GET /v1/responses/ID`: the object now, with the output so far.
//! - `GET /v1/responses/ID?stream=true&starting_after=N`: the events after
//!   sequence number N (`after`), then live.
//! - `POST /v1/responses/ID/cancel`: stops it; the object, `cancelled`.
//!
//! What the object repeats of the request (`instructions`, `temperature`,
//! ...) is known only to the view that created it: a retrieved object has
//! the defaults.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::after::After;
use super::frames::ResponseEvents;
use super::objects::{self, Head, Item, Outcome};
use super::request::Echo;
use crate::doors::idempotency::{self, Start};
use crate::doors::openai::error::OpenAiError;
use crate::doors::{watch, Admission, Planned};
use crate::error::ApiError;
use crate::generation::Finish;
use crate::generations::{Log, CANCELLED};
use crate::pipeline::collect::Reading;
use crate::state::AppState;

/// `POST /v1/responses` with `background: true`.
pub async fn create(
    app: &AppState,
    admission: Admission,
    planned: Planned,
    echo: Echo,
    stream: bool,
) -> Result<Response, ApiError> {
    let log = match idempotency::begin(app, &admission, &planned).await? {
        Start::Replay(log) => log,
        Start::New(log) => {
            // Nobody need watch a background response: it ends by itself,
            // by a cancel, or at `total_ms`.
            let unwatched = app.config.timeouts.total();
            idempotency::run(app, admission, planned, &log, unwatched);
            log
        }
    };
    if !stream {
        return Ok(Json(object(&log, echo)?).into_response());
    }
    let framer = ResponseEvents::seeded(Head::of_generation(&log, echo), seed(&log));
    Ok(watch::watch(
        log,
        None,
        Box::new(framer),
        app.config.heartbeat(),
        app.drain.expiry(),
    ))
}

/// `GET /v1/responses/ID`, and `?stream=true&starting_after=N`.
pub async fn retrieve(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, OpenAiError> {
    let (mut stream, mut after) = (false, None);
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "stream" => stream = value == "true",
            "starting_after" => {
                after = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::invalid(
                        "starting_after",
                        format!("`starting_after` must be a sequence number, not `{value}`"),
                    )
                })?)
            }
            // `include[]` and the like change nothing here.
            _ => {}
        }
    }
    let log = find(&app, &admission, &id).await?;
    if !stream {
        return Ok(Json(object(&log, Echo::default())?).into_response());
    }
    let events = ResponseEvents::seeded(Head::of_generation(&log, Echo::default()), seed(&log));
    let framer: Box<dyn crate::pipeline::framer::Framer> = match after {
        Some(after) => Box::new(After::new(events, after)),
        None => Box::new(events),
    };
    Ok(watch::watch(
        log,
        None,
        framer,
        app.config.heartbeat(),
        app.drain.expiry(),
    ))
}

/// `POST /v1/responses/ID/cancel`.
pub async fn cancel(
    State(app): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, OpenAiError> {
    let log = find(&app, &admission, &id).await?;
    crate::doors::stop(&log).await;
    Ok(Json(object(&log, Echo::default())?).into_response())
}

/// The generation response `id` is, if this client may see it.
async fn find(app: &AppState, admission: &Admission, id: &str) -> Result<Arc<Log>, ApiError> {
    let unknown = || {
        ApiError::not_found(
            "response_id",
            format!("No response with id '{id}' found (or it has expired)."),
        )
    };
    let generation = objects::generation_of(id).ok_or_else(unknown)?;
    app.generations
        .find(&generation, admission.owner())
        .await?
        .ok_or_else(unknown)
}

/// What item ids derive from: the generation's id.
fn seed(log: &Log) -> String {
    log.id()
        .as_str()
        .strip_prefix("gen_")
        .unwrap_or(log.id().as_str())
        .to_owned()
}

/// The response object of `log` now: its status, and its output so far.
fn object(log: &Log, echo: Echo) -> Result<serde_json::Value, ApiError> {
    let head = Head::of_generation(log, echo);
    let mut reading = Reading::default();
    reading.read(log)?;
    let seed = seed(log);
    let end = reading.end.take();
    let value = match end {
        None => {
            let so_far = Finish::new("", log.usage_so_far());
            let items = Item::all_seeded(
                &reading.collected(log.model(), so_far),
                "in_progress",
                Some(&seed),
            );
            serde_json::to_value(head.response(Outcome::InProgress, &items))
        }
        Some(Ok(finish)) => {
            let cancelled = finish.finish_reason == CANCELLED;
            let status = match cancelled {
                true => "incomplete",
                false => objects::status_of(&finish).0,
            };
            let collected = reading.collected(log.model(), finish.clone());
            let items = Item::all_seeded(&collected, status, Some(&seed));
            let outcome = match cancelled {
                true => Outcome::Cancelled(&finish),
                false => Outcome::Finished(&finish),
            };
            serde_json::to_value(head.response(outcome, &items))
        }
        Some(Err(err)) => {
            let collected = reading.collected(log.model(), Finish::new("", log.usage_so_far()));
            let items = Item::all_seeded(&collected, "incomplete", Some(&seed));
            serde_json::to_value(head.response(Outcome::Failed(&err), &items))
        }
    };
    value.map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))
}
