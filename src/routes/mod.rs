//! The router: every endpoint, and the layers around them. Handlers live in
//! `doors` (one folder per front door) and, for operations, here.
//!
//! The layers, outermost first (in axum each `.layer()` or `.route_layer()`
//! call wraps what was built before it, so the code lists them innermost
//! first):
//! 1. `SetRequestIdLayer`, `PropagateRequestIdLayer`: an `X-Request-Id` on
//!    every request and response;
//! 2. `sites::check`: a 403 for a page's origin or a `Host` sluice does not
//!    serve; then `CorsLayer`;
//! 3. on the API routes, `record::record`: the request's access record;
//! 4. `gate::authenticate`: the API key, when auth is on;
//! 5. on the routes that start a generation, `gate::limit`: the rate limit and
//!    a stream slot; on those that watch or stop one, `gate::rate`: the rate
//!    limit alone.

mod gate;
mod ops;
mod playground;
mod prompts;
mod record;
mod sites;

use axum::http::{HeaderName, Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::doors::{agui, anthropic, native, openai, paths, responses, ui};
use crate::error::ApiError;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let sites = std::sync::Arc::new(sites::Sites::of(&state.config));
    let cors = cors_layer(sites.clone());
    // Routes that start a generation: rate and concurrency limits apply.
    let generation = Router::new()
        // HEAD would run the GET handler and start a generation nobody reads.
        .route(
            paths::STREAM,
            get(native::get).post(native::post).head(head_refused),
        )
        .route(paths::CHAT_COMPLETIONS, post(openai::chat_completions))
        .route(paths::COMPLETIONS, post(openai::completions))
        .route(paths::RESPONSES, post(responses::create))
        .route(paths::MESSAGES, post(anthropic::messages))
        .route(paths::GENERATIONS, post(native::create))
        .route(paths::UI_CHAT, post(ui::chat))
        .route(paths::AGUI, post(agui::run))
        .route_layer(from_fn_with_state(state.clone(), gate::limit));
    // Watching or stopping a generation, or counting tokens, starts none:
    // no stream slot, but a rate token each.
    let watching = Router::new()
        .route(
            paths::GENERATION,
            get(native::status).delete(native::cancel),
        )
        .route(paths::GENERATION_EVENTS, get(native::events))
        .route(paths::GENERATION_PAUSE, post(native::pause))
        .route(paths::GENERATION_STEP, post(native::step))
        .route(paths::GENERATION_RESUME, post(native::resume))
        .route(paths::UI_CHAT_STREAM, get(ui::resume).delete(ui::stop))
        .route(paths::RESPONSE, get(responses::retrieve))
        .route(paths::RESPONSE_CANCEL, post(responses::cancel))
        // Counting tokens, or embedding texts, starts nothing either.
        .route(paths::EMBEDDINGS, post(openai::embeddings::create))
        .route(paths::MESSAGES_COUNT_TOKENS, post(anthropic::count_tokens))
        .route(paths::RESPONSES_INPUT_TOKENS, post(responses::input_tokens))
        .route_layer(from_fn_with_state(state.clone(), gate::rate));
    // Every API route: auth when it is on.
    let api = Router::new()
        .merge(generation)
        .merge(watching)
        .route(paths::MODELS, get(openai::models))
        .route(paths::MODEL, get(openai::model))
        .route(paths::PROMPTS, get(prompts::list))
        .route_layer(from_fn_with_state(state.clone(), gate::authenticate))
        .route_layer(axum::middleware::from_fn(record::record));
    Router::new()
        .merge(api)
        .route("/", get(playground::page))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(unknown_path)
        .with_state(state)
        // Compression is deliberately absent: it would hold tokens back.
        .layer(cors)
        .layer(from_fn_with_state(sites, sites::check))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Outermost: an id a client sends is kept only if it is short and
        // plain, else a fresh one replaces it (it is logged and echoed).
        .layer(axum::middleware::map_request(drop_unfit_request_id))
}

/// Removes an `X-Request-Id` that is not 1 to 128 of `[A-Za-z0-9._-]`, so
/// that `SetRequestIdLayer` makes a fresh one.
async fn drop_unfit_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let fit = |id: &[u8]| {
        (1..=128).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let headers = request.headers_mut();
    let ids = headers.get_all(REQUEST_ID).iter().count();
    if ids > 1
        || headers
            .get(REQUEST_ID)
            .is_some_and(|id| !fit(id.as_bytes()))
    {
        headers.remove(REQUEST_ID);
    }
    request
}

/// `HEAD /v1/stream`: 405, naming the methods that work.
async fn head_refused() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = ApiError::new(
        crate::error::ErrorKind::InvalidRequest,
        "HEAD would start a generation: use GET or POST",
    )
    .into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, POST"),
    );
    response
}

/// A request no route matched: a 404 in the shape of the door its path
/// belongs to, recorded like any request (the access log and the request
/// metrics): unknown paths are what an operator needs to see.
async fn unknown_path(request: axum::extract::Request) -> axum::response::Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let door = crate::doors::Door::of_unknown_path(request.uri().path());
    let tally = crate::observe::Tally::new(request_id, door.label());
    tally.set_target(request.method().as_str(), request.uri().path());
    let err = ApiError::not_found("path", format!("no endpoint at {}", request.uri().path()));
    tally.set_status(404, Some(err.kind));
    door.reject(err)
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found("path", format!("no endpoint at {}", uri.path()))
}

/// The CORS answers for the origins `sites` allows: loopback origins by
/// default, so a frontend dev server on another port can call the mock.
fn cors_layer(sites: std::sync::Arc<sites::Sites>) -> CorsLayer {
    let origins = AllowOrigin::predicate(move |origin, _| sites.allows_origin(origin));
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        // Mirrored rather than `*`: a wildcard does not cover `Authorization`,
        // and an `EventSource` reconnecting cross-origin sends `Last-Event-ID`.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            REQUEST_ID,
            HeaderName::from_static("retry-after"),
            HeaderName::from_static(crate::doors::GENERATION),
            HeaderName::from_static("x-sluice-model"),
            axum::http::header::LOCATION,
        ])
        .max_age(std::time::Duration::from_secs(600))
}
