//! What both native handler files do with generations: make one for a
//! request, find one for a client, and answer a reconnect.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::frames::Format;
use super::request::StreamRequest;
use super::view;
use crate::doors::{Admission, Planned};
use crate::error::ApiError;
use crate::generations::{EventId, Log, Status};
use crate::state::AppState;

/// The request as a new generation, and the plan to run it.
pub async fn create(
    app: &AppState,
    admission: &Admission,
    request: StreamRequest,
) -> Result<(Arc<Log>, Planned), ApiError> {
    let (generation, model) = request.into_generation(&app.templates)?;
    let planned = Planned::new(app, &admission.tally, model.as_deref(), generation)?;
    let log = crate::doors::new_generation(app, admission, &planned).await?;
    Ok((log, planned))
}

/// The generation `id`, if this client may see it.
pub async fn find(app: &AppState, admission: &Admission, id: &str) -> Result<Arc<Log>, ApiError> {
    let found = app.generations.find(id, admission.owner()).await?;
    found.ok_or_else(|| {
        ApiError::not_found(
            "generation",
            format!("generation `{id}` is unknown or has expired"),
        )
    })
}

/// `Last-Event-ID: GEN:N`; anything else is not a reconnect.
pub fn last_event_id(headers: &HeaderMap) -> Option<EventId> {
    let value = headers.get("last-event-id")?.to_str().ok()?;
    EventId::parse(value)
}

/// Where a reconnect's last frame comes from.
#[derive(Clone, Copy)]
pub enum Named {
    /// `Last-Event-ID: GEN:N`: a frame the client says it received.
    LastEventId,
    /// `?after=N` on the events endpoint.
    Query,
}

/// A reconnect: the frames after `after`, then live ones; `204` when that
/// frame was the terminal one (a browser's `EventSource` then stops), `404`
/// when it is no longer kept. A frame not written (yet) is a `400`: no
/// client received it, and an `EventSource` given an empty `200` would
/// reconnect with it for ever; except `?after=N` past the end of an ended
/// log, which is `204` like the terminal frame (section 18).
pub fn after(
    app: &AppState,
    admission: &Admission,
    log: Arc<Log>,
    after: u64,
    named: Named,
    format: Format,
) -> Result<Response, ApiError> {
    let (status, frames) = log.progress();
    let ended = status != Status::Running;
    let written = after < frames;
    if ended
        && (after.saturating_add(1) == frames || matches!((written, named), (false, Named::Query)))
    {
        let response = StatusCode::NO_CONTENT.into_response();
        return Ok(crate::doors::with_generation(response, log.id().as_str()));
    }
    if !written {
        let param = match named {
            Named::LastEventId => "last-event-id",
            Named::Query => "after",
        };
        return Err(ApiError::invalid(
            param,
            format!(
                "frame {after} of generation `{}` was never written: it has {frames} frames",
                log.id()
            ),
        ));
    }
    if let Err(gone) = log.read(Some(after)) {
        return Err(ApiError::not_found(
            "last-event-id",
            format!(
                "frame {after} of generation `{}` is no longer kept (the log starts at frame {})",
                log.id(),
                gone.first_kept
            ),
        ));
    }
    admission.tally.resumed(log.id().as_str(), Some(after));
    Ok(watch(app, log, Some(after), format))
}

/// A response watching `log` after frame `after`.
pub fn watch(app: &AppState, log: Arc<Log>, after: Option<u64>, format: Format) -> Response {
    view::watch(
        log,
        after,
        format,
        app.config.heartbeat(),
        app.drain.expiry(),
    )
}
