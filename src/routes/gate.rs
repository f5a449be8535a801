//! The gate in front of the API routes: auth, then rate and concurrency
//! limits, as two axum middlewares. Each answers in the shape of the door it
//! guards (OpenAI's error shape on the OpenAI-compatible paths).
//!
//! The concurrency slot is held by the request's tally, which lives as long as
//! the response body: a stream counts as open until its body ends or its
//! client goes away.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorKind};
use crate::limits::ClientKey;
use crate::observe::{self, Tally};
use crate::openai_compat::error::OpenAiError;
use crate::AppState;

/// Checks the API key when auth is on, and records who the client is.
pub async fn authenticate(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = if app.keys.enabled() {
        match app.keys.check(request.headers()) {
            Ok(key) => ClientKey::Key(key),
            Err(err) => {
                observe::rejected("unauthorized");
                return reject(request.uri().path(), err);
            }
        }
    } else {
        client_address(&request, app.config.limits.trust_forwarded_for)
            .map_or(ClientKey::Unknown, ClientKey::Addr)
    };
    if let Some(tally) = request.extensions().get::<Tally>() {
        tally.set_client(client);
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Applies the client's rate limit and takes a stream slot for the response.
pub async fn limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ClientKey>()
        .copied()
        .unwrap_or(ClientKey::Unknown);
    if let Err(err) = app.limits.check_rate(client) {
        observe::rejected("rate");
        return reject(request.uri().path(), err);
    }
    let permit = match app.limits.open_stream(client) {
        Ok(permit) => permit,
        Err(err) => {
            observe::rejected(if err.kind == ErrorKind::Overloaded {
                "overloaded"
            } else {
                "client_streams"
            });
            return reject(request.uri().path(), err);
        }
    };
    match request.extensions().get::<Tally>() {
        // The tally lives as long as the response body.
        Some(tally) => tally.hold(permit),
        None => drop(permit),
    }
    next.run(request).await
}

/// The client's address: the connection's peer, or the last
/// `X-Forwarded-For` entry when the proxy in front is trusted to set it.
fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        if let Some(addr) = forwarded_for(request.headers()) {
            return Some(addr);
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())?;
    last.parse().ok()
}

/// An error in the shape of the door at `path`.
pub fn reject(path: &str, err: ApiError) -> Response {
    if is_openai_path(path) {
        OpenAiError(err).into_response()
    } else {
        err.into_response()
    }
}

fn is_openai_path(path: &str) -> bool {
    ["/v1/chat/", "/v1/completions", "/v1/models"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}
