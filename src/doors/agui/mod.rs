//! The AG-UI door (contract section 15): `POST /v1/agui` takes AG-UI's
//! `RunAgentInput` (`request`) and answers with AG-UI's events (`frames`),
//! so `@ag-ui/client`'s `HttpAgent` (and CopilotKit over it) runs against
//! sluice with only its `url` set.
//!
//! A run is relayed to its one client, as on the OpenAI-compatible doors:
//! a client that leaves cancels it. Once the input is read, every failure
//! is a `RUN_ERROR` event in a `200` stream (what AG-UI clients surface as
//! the run's error), one before the first token included; an input sluice
//! cannot read is a `400` in the native shape, which `HttpAgent` reports
//! with its status.

mod frames;
mod request;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;

pub use frames::AgUiEvents;

use super::{Admission, LimitedBody, Planned};
use crate::error::ApiError;
use crate::pipeline::framer::Framer;
use crate::state::AppState;

/// `POST /v1/agui`.
pub async fn run(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let input = request::parse(&body, &app.templates)?;
    let (thread, run) = (input.thread_id.clone(), input.run_id.clone());
    let started = async {
        let planned = Planned::new(
            &app,
            &admission.tally,
            input.model.as_deref(),
            input.generation,
        )
        .map_err(|err| (err, None))?;
        let model = planned.route.name.clone();
        let framer_for = {
            let (thread, run) = (thread.clone(), run.clone());
            move |route: &str| -> Box<dyn Framer> {
                Box::new(AgUiEvents::new(thread, run, route.to_owned()))
            }
        };
        super::stream(&app, admission, planned, framer_for, None)
            .await
            .map_err(|err| (err, Some(model)))
    };
    match started.await {
        Ok(response) => Ok(response),
        // A repeat with another body is the client's mistake, not the run's.
        Err((err, _)) if err.kind == crate::error::ErrorKind::IdempotencyConflict => Err(err),
        Err((err, model)) => Ok(failed_run(thread, run, model.unwrap_or_default(), &err)),
    }
}

/// A run that failed before its first token: `RUN_STARTED`, `RUN_ERROR`.
fn failed_run(thread: String, run: String, model: String, err: &ApiError) -> Response {
    let mut framer = AgUiEvents::new(thread, run, model);
    let mut bytes = framer.preamble().map(|b| b.to_vec()).unwrap_or_default();
    bytes.extend_from_slice(&framer.error(err));
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// For the fuzz targets: the input parser on untrusted bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(body: &[u8]) {
    let templates = crate::templates::Templates::load(std::path::Path::new("/nonexistent"));
    let _ = request::parse(body, &templates);
}
