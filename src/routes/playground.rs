//! `GET /`: the playground (contract section 9), one self-contained page for
//! trying models by hand: the stream frame by frame, its timing, Stop, the
//! mock's knobs. The page is `playground.html`, compiled in; it talks only to
//! the sluice that served it (its Content-Security-Policy says so to the
//! browser too), through the generations API.
//!
//! `playground = false` in the config turns it off: `/` is then a 404.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

const PAGE: &str = include_str!("playground.html");

/// Inline style and script are the page's own; every connection goes back to
/// where the page came from; and no other page may frame it, where a click
/// on Send or Stop could be stolen (T3-15; `X-Frame-Options` for browsers
/// that predate `frame-ancestors`).
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

pub async fn page(State(app): State<AppState>) -> Response {
    if !app.config.playground {
        return super::not_found(axum::http::Uri::from_static("/"))
            .await
            .into_response();
    }
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(POLICY),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        PAGE,
    )
        .into_response()
}
