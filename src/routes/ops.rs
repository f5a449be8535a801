//! Endpoints for operators: liveness, readiness, metrics. They need no API
//! key and are not in the access log, so probes and scrapes do not drown it.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::state::AppState;

/// 200 while the process serves.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the config is loaded and the proxy takes new work; 503 once a
/// shutdown has begun, or while the shared store (`[store]`) cannot be
/// reached, so load balancers move traffic away.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    if app.drain.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !app.generations.ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Prometheus text format.
pub async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(),
    )
}
