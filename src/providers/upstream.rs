//! What every HTTP upstream shares: its endpoint (client, URL, key, the
//! model name it knows), sending a streaming request, reading an SSE body as
//! events, and turning failures into [`UpstreamError`]s with the provider's
//! message, secrets scrubbed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_stream::stream;
use futures_util::StreamExt;
use serde_json::Value;

use crate::config::{ModelConfig, Timeouts};
use crate::generation::{GenRequest, UpstreamError};
use crate::generation::{TokenEvent, TokenStream};
use crate::redact::Redactor;
use crate::sse;

/// One configured upstream model's endpoint.
pub struct Endpoint {
    client: reqwest::Client,
    url: String,
    /// `url`, parsed once (reqwest would parse the string on every request:
    /// 7% of a short request's CPU under callgrind, commit 66c8530). `None` only if it does not parse, which
    /// config validation rules out; then reqwest reports it per request.
    parsed_url: Option<reqwest::Url>,
    pub api_key: Option<String>,
    /// The model name sent upstream.
    pub upstream_model: String,
    connect_timeout: Duration,
    /// How long to wait for the rest (usage, `[DONE]`) once the upstream has
    /// given its finish reason: an answer that is complete ends as done, not
    /// as an idle timeout.
    pub after_answer: Duration,
    pub redactor: Arc<Redactor>,
    /// The configured model's name, the metrics' label.
    pub label: String,
}

/// The longest wait for an answered stream's last events.
const AFTER_ANSWER_MAX: Duration = Duration::from_secs(2);

impl Endpoint {
    /// `path` is appended to the model's `base_url` (or its provider's default).
    pub fn new(model: &ModelConfig, timeouts: &Timeouts, path: &str) -> Endpoint {
        let base_url = model
            .base_url
            .as_deref()
            .or(model.provider.default_base_url())
            .unwrap_or_default();
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        Endpoint {
            client: client(timeouts),
            parsed_url: reqwest::Url::parse(&url).ok(),
            url,
            api_key: model.api_key.clone(),
            upstream_model: model.upstream_model().to_owned(),
            connect_timeout: timeouts.connect(),
            after_answer: (timeouts.idle() / 2).min(AFTER_ANSWER_MAX),
            redactor: Arc::new(Redactor::new(model.api_key.clone())),
            label: model.name.clone(),
        }
    }

    /// A POST of `body` to the endpoint for `request` (its trace context
    /// as `traceparent`), for the provider to add its headers to.
    pub fn post(&self, body: &Value, request: &GenRequest) -> reqwest::RequestBuilder {
        let call = match &self.parsed_url {
            Some(url) => self.client.post(url.clone()),
            None => self.client.post(&self.url),
        };
        let call = match &request.traceparent {
            Some(traceparent) => call.header("traceparent", traceparent),
            None => call,
        };
        call.json(body)
    }

    /// Sends `call`; an error status becomes the upstream's error. The future
    /// owns what it needs, so a provider's stream can hold it.
    pub fn send(
        &self,
        call: reqwest::RequestBuilder,
    ) -> impl Future<Output = Result<reqwest::Response, UpstreamError>> + Send + 'static {
        let (connect_timeout, redactor) = (self.connect_timeout, self.redactor.clone());
        async move { send(call, connect_timeout, &redactor).await }
    }
}

/// What an SSE provider makes of its upstream's events.
pub trait SseState: Send + 'static {
    /// One event's `data`: a token event to relay, nothing, or a failure
    /// (its message already scrubbed with `redactor`).
    fn on_event(
        &mut self,
        data: &str,
        redactor: &Redactor,
    ) -> Result<Option<TokenEvent>, UpstreamError>;

    /// The upstream said it is done: nothing after this is read.
    fn finished(&self) -> bool;

    /// The upstream gave its finish reason: what follows (usage, the end
    /// marker) is waited for only [`Endpoint::after_answer`].
    fn answered(&self) -> bool;

    /// The terminal event once the events have ended (or [`Self::finished`]).
    fn into_terminal(self) -> TokenEvent;
}

/// A provider's token stream from its upstream's SSE response: the body is
/// decoded as it arrives (an event split across reads waits for its end, a
/// last event without a blank line still counts) and each event goes through
/// `state`. A broken body ends the stream with an error. One generator from
/// body bytes to token events, since every upstream token passes through it.
pub fn sse_generation<S: SseState>(
    response: impl Future<Output = Result<reqwest::Response, UpstreamError>> + Send + 'static,
    endpoint: &Endpoint,
    mut state: S,
) -> TokenStream {
    let (redactor, after_answer) = (endpoint.redactor.clone(), endpoint.after_answer);
    let mut forgiving = Forgiving::new(endpoint);
    Box::pin(stream! {
        let response = match response.await {
            Ok(response) => response,
            Err(err) => {
                yield TokenEvent::Error(err);
                return;
            }
        };
        let mut body = response.bytes_stream();
        let mut decoder = sse::Decoder::new();
        'read: loop {
            let next = match state.answered() {
                false => body.next().await,
                true => match tokio::time::timeout(after_answer, body.next()).await {
                    Ok(next) => next,
                    Err(_) => break 'read,
                },
            };
            let eof = match next {
                Some(Ok(bytes)) => {
                    decoder.push(&bytes);
                    if decoder.overflowed() {
                        yield TokenEvent::Error(UpstreamError::Stream(format!(
                            "the upstream sent an SSE line or event longer than {} bytes",
                            sse::MAX_EVENT_BYTES
                        )));
                        return;
                    }
                    false
                }
                Some(Err(err)) => {
                    yield TokenEvent::Error(broke(&err.without_url(), &redactor));
                    return;
                }
                None => {
                    decoder.finish();
                    true
                }
            };
            while let Some(event) = decoder.next_event() {
                match state.on_event(&event.data, &redactor) {
                    Ok(Some(event)) => yield event,
                    Ok(None) => {}
                    Err(err @ UpstreamError::Malformed(_)) => {
                        if let Some(err) = forgiving.skip(err) {
                            yield TokenEvent::Error(err);
                            return;
                        }
                    }
                    Err(err) => {
                        yield TokenEvent::Error(err);
                        return;
                    }
                }
                if state.finished() {
                    break 'read;
                }
            }
            if eof {
                break;
            }
        }
        yield state.into_terminal();
    })
}

/// Unparsable upstream events one stream forgives (section 17): each is
/// skipped, logged and counted; the one after them ends the stream.
pub const MALFORMED_FORGIVEN: u32 = 3;

/// A stream's count of the unparsable events it skipped.
pub struct Forgiving {
    skipped: u32,
    label: String,
}

impl Forgiving {
    pub fn new(endpoint: &Endpoint) -> Forgiving {
        Forgiving {
            skipped: 0,
            label: endpoint.label.clone(),
        }
    }

    /// Skips one unparsable event (`err`, a `Malformed`): `None` while it
    /// is forgiven, else the error that ends the stream.
    pub fn skip(&mut self, err: UpstreamError) -> Option<UpstreamError> {
        self.skipped += 1;
        if self.skipped > MALFORMED_FORGIVEN {
            // Counted where the stream's failure is.
            return Some(UpstreamError::Malformed(format!(
                "the upstream sent more than {MALFORMED_FORGIVEN} events that could not be parsed; the last: {err}"
            )));
        }
        metrics::counter!(crate::metrics::UPSTREAM_ERRORS, "model" => self.label.clone(), "kind" => err.kind_name())
            .increment(1);
        tracing::warn!(model = %self.label, reason = %err, "skipped an upstream event that could not be parsed");
        None
    }
}

/// How much of an upstream error body is read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The HTTP client for streaming upstreams: a connect timeout, and no
/// whole-request timeout (a stream may rightly run for minutes; the relay's
/// deadlines govern it). Redirects are not followed: reqwest keeps custom
/// headers such as Anthropic's `x-api-key` on a cross-origin redirect, so a
/// redirecting hop would be handed the key and the prompt. A 3xx is an
/// upstream error, as nginx and Envoy pass it back; no `Referer` either.
fn client(timeouts: &Timeouts) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect())
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .expect("the HTTP client's TLS backend initialises")
}

/// Sends a request; an error status becomes the upstream's error.
async fn send(
    call: reqwest::RequestBuilder,
    connect_timeout: Duration,
    redactor: &Arc<Redactor>,
) -> Result<reqwest::Response, UpstreamError> {
    let response = call
        .send()
        .await
        .map_err(|err| send_error(&err.without_url(), connect_timeout, redactor))?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(status_error(response, redactor).await)
    }
}

/// The body broke off mid-stream.
pub fn broke(err: &reqwest::Error, redactor: &Redactor) -> UpstreamError {
    let message = format!(
        "the upstream connection failed mid-stream: {}",
        describe(err)
    );
    UpstreamError::Stream(redactor.scrub(&message))
}

/// A failure to send the request or to read the response head.
fn send_error(
    err: &reqwest::Error,
    connect_timeout: Duration,
    redactor: &Redactor,
) -> UpstreamError {
    if err.is_connect() && err.is_timeout() {
        return UpstreamError::ConnectTimeout(connect_timeout);
    }
    let message = format!("could not reach the upstream: {}", describe(err));
    UpstreamError::Transport(redactor.scrub(&message))
}

/// An upstream error status, with the message from its body.
async fn status_error(response: reqwest::Response, redactor: &Redactor) -> UpstreamError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after_secs(v, std::time::SystemTime::now()));
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(bytes)) = stream.next().await {
        body.extend_from_slice(&bytes);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    let json = serde_json::from_slice::<Value>(&body).ok();
    let error = json.as_ref().map(|json| json.get("error").unwrap_or(json));
    let message = match error {
        Some(error) => error_message(error),
        None => String::from_utf8_lossy(&body).chars().take(500).collect(),
    };
    if status == 400 && error.is_some_and(refuses_content) {
        return UpstreamError::ContentPolicy(redactor.scrub(message.trim()));
    }
    UpstreamError::Status {
        status,
        message: redactor.scrub(message.trim()),
        retry_after,
    }
}

/// Whether an upstream's error object refuses the request's content on
/// policy grounds: OpenAI's `content_policy_violation`, Azure OpenAI's
/// `content_filter` (its `code`, or `innererror.code`
/// `ResponsibleAIPolicyViolation`).
fn refuses_content(error: &Value) -> bool {
    let named = |field: &Value| {
        field.as_str().is_some_and(|name| {
            matches!(
                name,
                "content_filter" | "content_policy_violation" | "ResponsibleAIPolicyViolation"
            )
        })
    };
    named(&error["code"]) || named(&error["type"]) || named(&error["innererror"]["code"])
}

/// `Retry-After` as whole seconds from `now`: delay-seconds, or an
/// HTTP-date (a date already past is 0).
fn retry_after_secs(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map_or(0, |d| d.as_secs_f64().ceil() as u64),
    )
}

/// The human message in an OpenAI-style error object (or whatever it is).
pub fn error_message(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        Value::Object(fields) => fields
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string()),
        other => other.to_string(),
    }
}

/// A transport error and its causes. Callers pass it `without_url()`: the
/// upstream's address is the operator's business, not the client's.
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::retry_after_secs;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after_secs(" 7 ", now), Some(7));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after_secs(&later, now), Some(30));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after_secs(&earlier, now), Some(0));
        assert_eq!(retry_after_secs("soon", now), None);
    }
}
