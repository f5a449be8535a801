//! What every HTTP upstream shares: its endpoint (URL, key, the model name
//! it knows, the client that carries it), sending a streaming request
//! ([`call`]), reading an SSE body as events, and turning failures into
//! [`UpstreamError`]s with the provider's message, secrets scrubbed
//! ([`errors`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_stream::stream;
use serde_json::Value;

use crate::config::{ModelConfig, Timeouts};
use crate::generation::{GenRequest, UpstreamError};
use crate::generation::{TokenEvent, TokenStream};
use crate::providers::wire;
use crate::redact::Redactor;
use crate::sse;
pub use call::{Body, Call};
use call::{Carrier, Reqwest};
use errors::broke;
pub use errors::error_message;

mod call;
mod errors;

/// One configured upstream model's endpoint.
pub struct Endpoint {
    /// The URL parsed once (reqwest would parse a string on every request:
    /// 7% of a short request's CPU under callgrind, commit 66c8530), and the
    /// client for it. `None` only if it does not parse, which config
    /// validation rules out.
    carrier: Option<Carrier>,
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

/// The longest whole answer read as JSON (embeddings, token counts).
pub const JSON_ANSWER_LIMIT: usize = 64 * 1024 * 1024;

impl Endpoint {
    /// `path` is appended to the model's `base_url` (or its provider's default).
    pub fn new(model: &ModelConfig, timeouts: &Timeouts, path: &str) -> Endpoint {
        let base_url = model
            .base_url
            .as_deref()
            .or(model.provider.default_base_url())
            .unwrap_or_default();
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        let carrier = reqwest::Url::parse(&url).ok().map(|url| {
            let wire = wire::Client::for_url(&url, timeouts.connect());
            let reqwest = || {
                Arc::new(Reqwest {
                    client: client(timeouts),
                    url: url.clone(),
                })
            };
            match wire {
                Some(wire) => Carrier::Wire {
                    wire: Arc::new(wire),
                    http2: (url.scheme() == "https").then(reqwest),
                },
                None => Carrier::Reqwest(reqwest()),
            }
        });
        Endpoint {
            carrier,
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
    pub fn post(&self, body: &Value, request: &GenRequest) -> Call {
        let call = Call::new(body);
        match &request.traceparent {
            Some(traceparent) => call.header("traceparent", traceparent.as_str()),
            None => call,
        }
    }

    /// Sends `call`; an error status becomes the upstream's error. The future
    /// owns what it needs, so a provider's stream can hold it.
    pub fn send(
        &self,
        call: Call,
    ) -> impl Future<Output = Result<Body, UpstreamError>> + Send + 'static {
        let carrier = self.carrier.clone();
        let (connect_timeout, redactor) = (self.connect_timeout, self.redactor.clone());
        async move {
            let Some(carrier) = carrier else {
                let why = "could not reach the upstream: its URL does not parse";
                return Err(UpstreamError::Transport(why.into()));
            };
            call::send(carrier, call, connect_timeout, redactor).await
        }
    }
}

/// The HTTP client for upstreams the wire client does not carry (behind a
/// proxy, or an `https://` one that chooses HTTP/2): a connect
/// timeout, and no whole-request timeout (a stream may rightly run for
/// minutes; the relay's deadlines govern it). Redirects are not followed:
/// reqwest keeps custom headers such as Anthropic's `x-api-key` on a
/// cross-origin redirect, so a redirecting hop would be handed the key and the
/// prompt. A 3xx is an upstream error, as nginx and Envoy pass it back; no
/// `Referer` either.
fn client(timeouts: &Timeouts) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect())
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .expect("the HTTP client's TLS backend initialises")
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
    response: impl Future<Output = Result<Body, UpstreamError>> + Send + 'static,
    endpoint: &Endpoint,
    mut state: S,
) -> TokenStream {
    let (redactor, after_answer) = (endpoint.redactor.clone(), endpoint.after_answer);
    let mut forgiving = Forgiving::new(endpoint);
    Box::pin(stream! {
        let mut body = match response.await {
            Ok(body) => body,
            Err(err) => {
                yield TokenEvent::Error(err);
                return;
            }
        };
        let mut decoder = sse::Decoder::new();
        'read: loop {
            let mut push = |bytes: &[u8]| decoder.push(bytes);
            let read = match state.answered() {
                false => body.read(&mut push).await,
                true => match tokio::time::timeout(after_answer, body.read(&mut push)).await {
                    Ok(read) => read,
                    Err(_) => break 'read,
                },
            };
            let eof = match read {
                Ok(true) => {
                    if decoder.overflowed() {
                        yield TokenEvent::Error(UpstreamError::Stream(format!(
                            "the upstream sent an SSE line or event longer than {} bytes",
                            sse::MAX_EVENT_BYTES
                        )));
                        return;
                    }
                    false
                }
                Err(why) => {
                    yield TokenEvent::Error(broke(&why, &redactor));
                    return;
                }
                Ok(false) => {
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
        // The answer is whole (or the body ended): its connection may serve
        // another stream. Every `return` above drops it instead, closed.
        body.park();
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
