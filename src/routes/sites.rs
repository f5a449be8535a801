//! Which pages and which names sluice answers: a browser page's `Origin`
//! (`cors.allow_origins`, loopback origins by default) and the request's
//! `Host` (`cors.allowed_hosts`, the loopback names by default when
//! listening on loopback).
//!
//! Why enforce, not only answer CORS: a page may send a "simple" request
//! (a `text/plain` POST, which sluice reads as JSON, as the contract asks)
//! without a preflight; CORS only stops it reading the answer, not spending
//! the operator's upstream credit. So a request whose `Origin` is not
//! allowed is a 403 before any route. And a page on an attacker's name
//! that resolves to 127.0.0.1 (DNS rebinding) is same-origin to the
//! browser, so only the `Host` tells it apart. A no-cors request from a
//! page (`<img src=...>`) carries no `Origin` at all, but a browser marks it
//! `Sec-Fetch-Site: cross-site`: refused the same way.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{Config, LOOPBACK};
use crate::error::{ApiError, ErrorKind};

/// The origins and hosts one server answers.
#[derive(Debug)]
pub struct Sites {
    origins: Origins,
    /// `None`: any host.
    hosts: Option<Vec<String>>,
}

#[derive(Debug)]
enum Origins {
    Any,
    /// Exact origins, and whether every loopback origin is in too.
    Listed {
        exact: Vec<String>,
        loopback: bool,
    },
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Sites {
    pub fn of(config: &Config) -> Sites {
        let listed = &config.cors.allow_origins;
        let origins = match listed.iter().any(|o| o == "*") {
            true => Origins::Any,
            false => Origins::Listed {
                exact: listed.iter().filter(|o| *o != LOOPBACK).cloned().collect(),
                loopback: listed.iter().any(|o| o == LOOPBACK),
            },
        };
        let hosts = match &config.cors.allowed_hosts {
            Some(hosts) => Some(hosts.iter().map(|h| h.to_ascii_lowercase()).collect()),
            None if config.listen.ip().is_loopback() => {
                Some(LOOPBACK_NAMES.iter().map(|h| (*h).to_owned()).collect())
            }
            None => None,
        };
        Sites { origins, hosts }
    }

    /// Whether a page from `origin` may call sluice.
    pub fn allows_origin(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        match &self.origins {
            Origins::Any => true,
            Origins::Listed { exact, loopback } => {
                exact.iter().any(|o| o == origin) || (*loopback && is_loopback_origin(origin))
            }
        }
    }

    /// Whether every origin is allowed (`cors.allow_origins = ["*"]`).
    fn allows_any_origin(&self) -> bool {
        matches!(self.origins, Origins::Any)
    }

    /// Whether `host` (a `Host` header or HTTP/2 authority, port and all) is
    /// a name sluice answers.
    fn allows_host(&self, host: Option<&str>) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        let Some(host) = host else {
            return false;
        };
        let name = strip_port(host).to_ascii_lowercase();
        // `*.localhost` names resolve to loopback (RFC 6761): no one else's.
        name.ends_with(".localhost") || hosts.iter().any(|allowed| strip_port(allowed) == name)
    }
}

/// `host[:port]` without the port (`[::1]:7800` keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        Some(_) | None => host,
    }
}

/// `http(s)://localhost|127.0.0.1|[::1][:port]`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let name = strip_port(rest);
    let port_ok = rest[name.len()..]
        .strip_prefix(':')
        .is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    LOOPBACK_NAMES.contains(&name) && port_ok
}

/// The middleware: a 403 for an origin or a host sluice does not serve.
pub async fn check(State(sites): State<Arc<Sites>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if !sites.allows_host(host) {
        return forbidden("this Host is not one sluice answers (cors.allowed_hosts)");
    }
    match request.headers().get(ORIGIN) {
        Some(origin) if !sites.allows_origin(origin) => {
            return forbidden("pages from this origin may not call sluice (cors.allow_origins)");
        }
        Some(_) => {}
        // A browser's no-cors request (`<img src>`, `<script src>`) carries
        // no Origin, but says it came from another site (T3-14).
        None if from_another_site(request.headers()) && !sites.allows_any_origin() => {
            return forbidden(
                "pages from another site may not call sluice (Sec-Fetch-Site: cross-site; cors.allow_origins)",
            );
        }
        None => {}
    }
    next.run(request).await
}

/// `Sec-Fetch-Site: cross-site`: a browser sent this for a page of another
/// site. (`same-site` is a page on the same host name, another port: a
/// frontend dev server beside sluice; `none` is the user's own navigation.)
fn from_another_site(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

fn forbidden(message: &str) -> Response {
    ApiError::new(ErrorKind::Forbidden, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_and_names_are_recognised() {
        for yes in [
            "http://localhost:5173",
            "http://127.0.0.1",
            "https://[::1]:8443",
        ] {
            assert!(is_loopback_origin(yes), "{yes}");
        }
        for no in [
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "file://",
            "http://localhost:",
            "null",
        ] {
            assert!(!is_loopback_origin(no), "{no}");
        }
        assert_eq!(strip_port("[::1]:7800"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("localhost:7800"), "localhost");
        let config = crate::config::Config::default();
        let sites = Sites::of(&config);
        assert!(sites.allows_host(Some("127.0.0.1:7800")));
        assert!(sites.allows_host(Some("app.localhost:5173")));
        assert!(!sites.allows_host(Some("rebind.attacker.example")));
        assert!(!sites.allows_host(Some("localhost.attacker.example")));
        assert!(!sites.allows_host(None));
    }
}
