//! The native door's view of a generation's log (`doors::watch` in the
//! native frames): every native view frames the same entries with the same
//! `GEN:N` ids, and names the generation in a header.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use super::frames::{Format, NativeFrames};
use crate::generations::Log;

/// The header naming the generation a native response carries.
pub const GENERATION: &str = "x-sluice-generation";

/// A streaming response of `log`'s frames after index `after` (from the
/// first when `None`).
pub fn watch(
    log: Arc<Log>,
    after: Option<u64>,
    format: Format,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> Response {
    let first = after.map_or(0, |n| n.saturating_add(1));
    let framer = NativeFrames::of_generation(format, log.model(), log.id().as_str(), first);
    let id = log.id().to_string();
    let response = crate::doors::watch::watch(log, after, Box::new(framer), heartbeat, shutdown);
    with_generation(response, &id)
}

/// Names the generation in the response's `X-Sluice-Generation` header.
pub fn with_generation(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(GENERATION, value);
    }
    response
}
