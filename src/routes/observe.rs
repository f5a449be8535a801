//! The outermost middleware on the API routes: it opens the request's
//! [`Tally`], lets the handlers fill it in, records the status, and keeps the
//! tally alive as long as the response body, so the access-log line is
//! written when the response is really over.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;

use crate::error::ErrorKind;
use crate::observe::Tally;

pub async fn observe(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let tally = Tally::new(request_id, door(request.uri().path()));
    request.extensions_mut().insert(tally.clone());
    let response = next.run(request).await;
    let error = response.extensions().get::<ErrorKind>().copied();
    tally.set_status(response.status().as_u16(), error);
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &tally;
            chunk
        }))
    })
}

/// Which front door a path belongs to, as a metric label.
fn door(path: &str) -> &'static str {
    match path {
        "/v1/stream" => "native",
        "/v1/chat/completions" => "openai_chat",
        "/v1/completions" => "openai_completions",
        p if p.starts_with("/v1/models") => "models",
        "/v1/prompts" => "prompts",
        _ => "other",
    }
}
