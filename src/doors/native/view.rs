//! The native door's view of a generation's log (`doors::watch` in the
//! native frames): every native view frames the same entries with the same
//! `GEN:N` ids, and names the generation in a header.

use std::sync::Arc;
use std::time::Duration;

use crate::doors::with_generation;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use super::frames::{Format, NativeFrames};
use crate::generations::Log;

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
