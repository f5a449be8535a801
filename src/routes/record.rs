//! The outermost middleware on the API routes: it opens the request's
//! [`Tally`], lets the gate and the handler fill it in, and records the
//! status. A stream's meter holds the tally as long as the response body, so
//! a stream's access-log line is written when the stream is really over; any
//! other response's, once it is made.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::doors::Door;
use crate::error::ErrorKind;
use crate::observe::Tally;

pub async fn record(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let door = Door::of(request.extensions().get::<MatchedPath>());
    let tally = Tally::new(request_id, door.label());
    tally.set_target(request.method().as_str(), request.uri().path());
    tally.trace(request.headers());
    request.extensions_mut().insert(tally.clone());
    let mut response = next.run(request).await;
    for (name, value) in tally.take_headers() {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    let error = response.extensions().get::<ErrorKind>().copied();
    tally.set_status(response.status().as_u16(), error);
    response
}
