//! The gate in front of the API routes: auth (failed attempts limited per
//! address; a key that checks out always passes), then rate and concurrency
//! limits, as two axum middlewares.
//! Each answers in the shape of the door it guards (OpenAI's error shape on
//! the OpenAI-compatible paths).
//!
//! The concurrency slot is left in the request (a `PermitSlot`) for the
//! handler, which moves it into the stream it starts: a stream counts as open
//! until its body ends or its client goes away.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::ClientKey;
use crate::doors::Door;
use crate::error::{ApiError, ErrorKind};
use crate::limits::PermitSlot;
use crate::observe::{self, Tally};
use crate::state::AppState;

/// Checks the API key when auth is on, and records who the client is.
pub async fn authenticate(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = if app.keys.enabled() {
        // The key first: one that checks out is never refused, so others'
        // bad keys from the same address (a NAT, a proxy) cannot lock a
        // valid one out (T3-11). Only failures are counted and throttled.
        match app.keys.check(request.headers()) {
            Ok(key) => ClientKey::Key(key),
            Err(err) => {
                let addr = client_address(&request, app.config.limits.trust_forwarded_for);
                let failures = &app.limits.auth_failures;
                let refused = addr.and_then(|addr| {
                    failures
                        .check(addr)
                        .and_then(|()| failures.failed(addr))
                        .err()
                });
                let err = match refused {
                    Some(refused) => {
                        observe::rejected("auth_failures");
                        refused
                    }
                    None => {
                        observe::rejected("unauthorized");
                        err
                    }
                };
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

/// Applies the client's rate limit only: the routes that read or stop a
/// generation start none, so they take no stream slot, but each costs a
/// rate token like any request (T3-6: watchers are not free).
pub async fn rate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let client = client_of(&request);
    if let Err(err) = within_rate(&app, client).await {
        return reject(&request, err);
    }
    next.run(request).await
}

/// Who the request counts against, as [`authenticate`] said.
fn client_of(request: &Request) -> ClientKey {
    request
        .extensions()
        .get::<ClientKey>()
        .copied()
        .unwrap_or(ClientKey::Unknown)
}

/// One more request of `client`, if its rate allows it (a refusal counted).
async fn within_rate(app: &AppState, client: ClientKey) -> Result<(), ApiError> {
    let checked = app.limits.check_rate(client).await;
    if checked.is_err() {
        observe::rejected("rate");
    }
    checked
}

/// Applies the client's rate limit and takes a stream slot for the response.
pub async fn limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let client = client_of(&request);
    if let Err(err) = within_rate(&app, client).await {
        return reject(&request, err);
    }
    let permit = match app.limits.open_stream(client).await {
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
/// `X-Forwarded-For` entry when the proxy in front is trusted to set it; an
/// IPv6 client as its /64, the block one host is usually given, so that a
/// host cannot multiply its limits by changing addresses.
fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| forwarded_for(request.headers()))
        .flatten();
    if trust_forwarded_for && forwarded.is_none() {
        untrusted_fallback();
    }
    let addr = forwarded.or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    })?;
    Some(client_block(addr))
}

/// With `trust_forwarded_for`, a request without a usable `X-Forwarded-For`
/// is keyed by its peer, the proxy in front, and so shares one budget with
/// every other such request: worth a warning, at most once a minute.
fn untrusted_fallback() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_WARNED_SECS.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST_WARNED_SECS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            "limits.trust_forwarded_for is on, but a request had no usable X-Forwarded-For: \
             it counts against the proxy's own address"
        );
    }
}

/// An IPv4 address as is (an IPv4-mapped IPv6 one as IPv4), an IPv6 one as
/// its /64.
fn client_block(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::client_block;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = |text: &str| client_block(text.parse::<IpAddr>().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
    }
}
