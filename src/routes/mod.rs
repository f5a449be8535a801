//! The router: every endpoint, and the layers around them (request ids, CORS).
//! Handlers live one front door per file.

mod gate;
mod observe;
mod openai;
mod ops;
mod prompts;
mod stream;

use axum::body::Body;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderName, Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::Cors;
use crate::error::{ApiError, ErrorKind};
use crate::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors);
    // Routes that start a generation: rate and concurrency limits apply.
    let generation = Router::new()
        .route("/v1/stream", get(stream::get).post(stream::post))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route_layer(from_fn_with_state(state.clone(), gate::limit));
    // Every API route: auth when it is on.
    let api = Router::new()
        .merge(generation)
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/prompts", get(prompts::list))
        .route_layer(from_fn_with_state(state.clone(), gate::authenticate))
        .route_layer(from_fn_with_state(state.clone(), observe::observe));
    Router::new()
        .merge(api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .with_state(state)
        // Compression is deliberately absent: it would hold tokens back.
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
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

/// Reads the whole body, refusing more than `limit` bytes with a 413.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body is larger than limits.max_body_bytes ({limit} bytes)"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::invalid(
            "body",
            format!("could not read the request body: {err}"),
        )),
    }
}
