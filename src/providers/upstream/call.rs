//! A request to an upstream as a provider builds it ([`Call`]), sent on
//! whichever client carries its URL, and the body that comes back ([`Body`]).
//!
//! Two clients: the wire client (`providers::wire`) for `http://` and
//! `https://` upstreams, read in the stream's own task; reqwest for an
//! `https://` upstream that chooses HTTP/2 by ALPN, and for proxies. A
//! provider sees neither: it adds its headers, sends, and reads bytes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::errors::{self, ERROR_BODY_LIMIT};
use crate::generation::UpstreamError;
use crate::providers::wire;
use crate::redact::Redactor;

/// A POST with a JSON body, still taking headers.
pub struct Call {
    fields: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Call {
    pub(super) fn new(body: &Value) -> Call {
        Call {
            fields: Vec::new(),
            // A `Value` always serialises.
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.fields.push((name, value.into()));
        self
    }

    pub fn bearer_auth(self, key: &str) -> Call {
        self.header("authorization", format!("Bearer {key}"))
    }

    /// The fields as header values. A value with a line break or another
    /// control character (a key pasted with its newline) is refused here,
    /// named but never echoed: on the wire it would split the request.
    fn fields(&self) -> Result<Vec<(&'static str, http::HeaderValue)>, String> {
        self.fields
            .iter()
            .map(|(name, value)| match http::HeaderValue::from_str(value) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    Ok((*name, value))
                }
                Err(_) => Err(format!(
                    "the `{name}` header's value is not a valid header value"
                )),
            })
            .collect()
    }
}

/// What carries an endpoint's calls.
#[derive(Clone)]
pub(super) enum Carrier {
    /// The wire client; for `https://`, reqwest as well, for an upstream
    /// that chooses HTTP/2.
    Wire {
        wire: Arc<wire::Client>,
        http2: Option<Arc<Reqwest>>,
    },
    Reqwest(Arc<Reqwest>),
}

#[derive(Clone)]
pub(super) struct Reqwest {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
}

/// A response's status, its `Retry-After` and its body.
type Answer = (u16, Option<String>, Body);

/// Sends `call`: the response's body when its status is a success, else the
/// upstream's error.
pub(super) async fn send(
    carrier: Carrier,
    call: Call,
    connect_timeout: Duration,
    redactor: Arc<Redactor>,
) -> Result<Body, UpstreamError> {
    let fields = call
        .fields()
        .map_err(|why| UpstreamError::Transport(format!("could not reach the upstream: {why}")))?;
    let sent = match carrier {
        Carrier::Wire {
            wire,
            http2: Some(http2),
        } if wire.speaks_http2() => Box::pin(by_reqwest(&http2, call.body, fields)).await,
        Carrier::Wire { wire, http2 } => match (wire.send(&fields, &call.body).await, http2) {
            // The first handshake found an HTTP/2 upstream: nothing was sent.
            (Err(wire::SendError::Http2), Some(http2)) => {
                Box::pin(by_reqwest(&http2, call.body, fields)).await
            }
            (Ok(response), _) => Ok((
                response.status,
                response.retry_after,
                Body::Wire(response.body),
            )),
            (Err(err), _) => return Err(errors::wire_send_error(&err, connect_timeout, &redactor)),
        },
        Carrier::Reqwest(reqwest) => Box::pin(by_reqwest(&reqwest, call.body, fields)).await,
    };
    let (status, retry_after, mut body) =
        sent.map_err(|err| errors::send_error(&err.without_url(), connect_timeout, &redactor))?;
    if (200..=299).contains(&status) {
        return Ok(body);
    }
    let text = body
        .read_to_limit(ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    Err(errors::status_error(
        status,
        retry_after.as_deref(),
        &text,
        &redactor,
    ))
}

/// Sends on reqwest: behind a proxy, or to an upstream that chose HTTP/2.
/// Its callers box it: inline, reqwest's future would enlarge every stream's
/// future, the wire client's too, for as long as the stream lives.
async fn by_reqwest(
    Reqwest { client, url }: &Reqwest,
    body: Vec<u8>,
    fields: Vec<(&'static str, http::HeaderValue)>,
) -> Result<Answer, reqwest::Error> {
    let mut request = client
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in fields {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, retry_after, Body::Reqwest(response)))
}

/// A successful response's body.
pub enum Body {
    Wire(wire::Body),
    Reqwest(reqwest::Response),
}

impl Body {
    /// The next bytes of the body, to `sink`: `Ok(false)` once it has
    /// ended, an `Err` with what broke it (not yet scrubbed).
    pub async fn read(&mut self, sink: &mut (dyn FnMut(&[u8]) + Send)) -> Result<bool, String> {
        match self {
            Body::Wire(body) => match body.read(sink).await {
                Ok(wire::Read::Data) => Ok(true),
                Ok(wire::Read::End) => Ok(false),
                Err(err) => Err(err.to_string()),
            },
            Body::Reqwest(response) => match response.chunk().await {
                Ok(Some(bytes)) => {
                    sink(&bytes);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(err) => Err(errors::describe(&err.without_url())),
            },
        }
    }

    /// The provider has its whole answer: the connection may be reused once
    /// the body's last bytes are read (see `wire::Body::park`). Dropping the
    /// body instead closes it.
    pub fn park(self) {
        match self {
            Body::Wire(body) => body.park(),
            // reqwest's pool takes a connection back only once the body
            // has been read to its end; this one is closed.
            Body::Reqwest(_) => {}
        }
    }

    /// The body, up to `limit` bytes (an error body's message, a JSON answer).
    pub async fn read_to_limit(&mut self, limit: usize) -> Result<Vec<u8>, String> {
        let mut text = Vec::new();
        while text.len() < limit {
            if !self
                .read(&mut |bytes| text.extend_from_slice(bytes))
                .await?
            {
                break;
            }
        }
        Ok(text)
    }

    /// The whole body as JSON (an embedding, a token count), up to `limit`.
    pub async fn json(mut self, limit: usize) -> Result<Value, String> {
        let text = self.read_to_limit(limit).await?;
        if text.len() >= limit {
            return Err(format!(
                "the upstream's answer is longer than {limit} bytes"
            ));
        }
        serde_json::from_slice(&text).map_err(|err| err.to_string())
    }
}
