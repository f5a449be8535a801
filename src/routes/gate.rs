//! The gate in front of the API routes: auth, then rate and concurrency
//! limits, as two axum middlewares. Each answers in the shape of the door it
//! guards (OpenAI's error shape on the OpenAI-compatible paths).
//!
//! The concurrency slot is left in the request (a `PermitSlot`) for the
//! handler, which moves it into the stream it starts: a stream counts as open
//! until its body ends or its client goes away.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::doors::Door;
use crate::error::{ApiError, ErrorKind};
use crate::limits::{ClientKey, PermitSlot};
use crate::observe::{self, Tally};
use crate::state::AppState;

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
                return reject(&request, err);
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
        return reject(&request, err);
    }
    let permit = match app.limits.open_stream(client) {
        Ok(permit) => permit,
        Err(err) => {
            observe::rejected(if err.kind == ErrorKind::Overloaded {
                "overloaded"
            } else {
                "client_streams"
            });
            return reject(&request, err);
        }
    };
    let mut request = request;
    request.extensions_mut().insert(PermitSlot::new(permit));
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

/// An error in the shape of the request's door.
fn reject(request: &Request, err: ApiError) -> Response {
    Door::of(request.extensions().get::<MatchedPath>()).reject(err)
}
