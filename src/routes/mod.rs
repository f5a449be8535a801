//! The router: every endpoint, and the layers around them (request ids, CORS).
//! Handlers live one front door per file.

mod stream;

use axum::http::{HeaderName, Method, Uri};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::Cors;
use crate::error::ApiError;
use crate::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors);
    Router::new()
        .route("/v1/stream", get(stream::get).post(stream::post))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(not_found)
        .with_state(state)
        // Compression is deliberately absent: it would hold tokens back.
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found("path", format!("no endpoint at {}", uri.path()))
}

/// Permissive by default, so a frontend dev server on another port can call
/// the mock; `cors.allow_origins` narrows it to a list.
fn cors_layer(config: &Cors) -> CorsLayer {
    let origins = if config.allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(
            config
                .allow_origins
                .iter()
                .filter_map(|origin| origin.parse().ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([REQUEST_ID, HeaderName::from_static("retry-after")])
        .max_age(std::time::Duration::from_secs(600))
}
