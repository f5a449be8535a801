//! What happened to each request, for the access log and the metrics.
//!
//! A [`Tally`] is created per API request by the `routes::record` middleware
//! and shared (it is an `Arc`) with the gate, the handler and a stream's
//! meter. When its last holder lets go (the middleware once the response is
//! made, the meter when a stream's body ends or is dropped) it writes one
//! access-log line and moves the request metrics. A [`StreamMeter`] is owned by a stream's body and counts its
//! tokens on the hot path with metric handles fetched once per stream; it
//! hands its totals to the tally when it is dropped.
//!
//! Nothing here records prompt text or keys: clients appear as their address
//! or as `key#N`, the position of their key in the config.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;

use crate::auth::ClientKey;
use crate::config::ProviderKind;
use crate::error::ErrorKind;
use crate::generation::Finish;
use crate::generations::Keyed;
use crate::metrics as names;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A terminal `done` (or a whole non-streaming answer).
    Done,
    /// A terminal error frame, or an error status, of this type.
    Error(ErrorKind),
    /// The client left before the end.
    ClientGone,
    /// Still running when the shutdown grace period ran out.
    ShuttingDown,
    /// Cut with no terminal frame (the mock's `drop_after`).
    Cut,
    /// The generation was cancelled (`DELETE`, or no watcher for too long).
    Cancelled,
}

impl Ended {
    fn label(self) -> &'static str {
        match self {
            Ended::Done => "done",
            Ended::Error(_) => "error",
            Ended::ClientGone => "client_gone",
            Ended::ShuttingDown => "shutting_down",
            Ended::Cut => "cut",
            Ended::Cancelled => "cancelled",
        }
    }

    fn error_type(self) -> &'static str {
        match self {
            Ended::Error(kind) => kind.as_str(),
            _ => "",
        }
    }
}

/// One request's record; cheap to clone.
#[derive(Clone)]
pub struct Tally(Arc<Record>);

struct Record {
    request_id: String,
    door: &'static str,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    client: Option<ClientKey>,
    /// The name asked for (the access log's), and the configured one (the
    /// metrics' label: a client cannot grow the label set).
    model: Option<String>,
    model_label: Option<String>,
    /// `METHOD /path` for the access log (the path cut at 256 bytes).
    target: Option<String>,
    /// Headers the answer carries whatever it is (the mock scenario that
    /// answered, a provider's rate limits).
    headers: Vec<(&'static str, String)>,
    /// The request's `Idempotency-Key`, noted with its body's digest by
    /// the body extractor (`doors::LimitedBody`).
    keyed: Option<Keyed>,
    status: Option<u16>,
    error: Option<ErrorKind>,
    ttft: Option<Duration>,
    tokens: u64,
    /// Continuations joined to the answer (section 17).
    continuations: u32,
    /// The configured provider serving.
    provider: Option<ProviderKind>,
    /// The model that served (a fallback, perhaps).
    served_by: Option<String>,
    /// How the generation finished, when it did.
    finish: Option<Finish>,
    /// The request's span, when tracing is on (`crate::telemetry`).
    trace: Option<opentelemetry::Context>,
    ended: Option<Ended>,
    /// A generation was started (so leaving early cancels an upstream).
    generating: bool,
}

impl Tally {
    pub fn new(request_id: String, door: &'static str) -> Tally {
        Tally(Arc::new(Record {
            request_id,
            door,
            started: Instant::now(),
            state: Mutex::default(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.0.started
    }

    pub fn set_client(&self, client: ClientKey) {
        self.state().client = Some(client);
    }

    /// What was asked: its method and path, for the access log.
    pub fn set_target(&self, method: &str, path: &str) {
        let mut end = path.len().min(256);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        self.state().target = Some(format!("{method} {}", &path[..end]));
    }

    /// The door's label.
    pub fn door(&self) -> &'static str {
        self.0.door
    }

    /// The answer, whatever it is, carries these headers.
    pub fn add_headers(&self, headers: Vec<(&'static str, String)>) {
        self.state().headers.extend(headers);
    }

    /// The headers [`Tally::add_headers`] gave, once.
    pub fn take_headers(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.state().headers)
    }

    pub fn set_keyed(&self, keyed: Keyed) {
        self.state().keyed = Some(keyed);
    }

    /// The request's `Idempotency-Key` with its body's digest, if it has one.
    pub fn keyed(&self) -> Option<Keyed> {
        self.state().keyed.clone()
    }

    /// Who the request counts against, once the gate has said.
    pub fn client(&self) -> Option<ClientKey> {
        self.state().client
    }

    /// The model asked for, the configured model (a pattern, perhaps) that
    /// serves it, and its provider.
    pub fn set_model(&self, model: &str, configured: &str, provider: ProviderKind) {
        let mut state = self.state();
        state.model = Some(model.to_owned());
        state.model_label = Some(configured.to_owned());
        state.provider = Some(provider);
        state.generating = true;
    }

    /// Starts the request's span under the client's `traceparent`, when
    /// tracing is on.
    pub fn trace(&self, headers: &axum::http::HeaderMap) {
        if crate::telemetry::tracer().is_none() {
            return;
        }
        let target = self.state().target.clone().unwrap_or_default();
        if let Some(cx) = crate::telemetry::request_span(headers, target) {
            self.state().trace = Some(cx);
        }
    }

    /// The request span's context, for the attempts it makes.
    pub fn trace_context(&self) -> Option<opentelemetry::Context> {
        self.state().trace.clone()
    }

    /// A reconnect resumed generation `id` after frame `after`: counted, and
    /// an event on the request's span.
    pub fn resumed(&self, id: &str, after: Option<u64>) {
        counter!(names::RESUMES).increment(1);
        let Some(cx) = self.trace_context() else {
            return;
        };
        let mut attributes = vec![KeyValue::new("sluice.generation", id.to_owned())];
        if let Some(after) = after {
            attributes.push(KeyValue::new("sluice.after_frame", after as i64));
        }
        cx.span().add_event("resume", attributes);
    }

    pub fn set_status(&self, status: u16, error: Option<ErrorKind>) {
        let mut state = self.state();
        state.status = Some(status);
        state.error = error;
    }

    /// A meter for the stream this request serves.
    pub fn meter(&self, model: &str, upstream_ttft: Option<Duration>) -> StreamMeter {
        let model = model.to_owned();
        let active = gauge!(names::ACTIVE_STREAMS);
        active.increment(1.0);
        StreamMeter {
            tally: self.clone(),
            tokens_relayed: counter!(names::TOKENS, "model" => model.clone()),
            ttft: histogram!(names::TTFT, "model" => model.clone()),
            gap: histogram!(names::INTER_TOKEN, "model" => model.clone()),
            overhead: histogram!(names::OVERHEAD, "model" => model),
            active,
            upstream_ttft,
            first_at: None,
            last_at: None,
            tokens: 0,
            continuations: 0,
            ended: None,
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let ended = state.ended.unwrap_or(match (state.status, state.error) {
            (None, _) => Ended::ClientGone,
            (Some(_), Some(kind)) => Ended::Error(kind),
            (Some(_), None) => Ended::Done,
        });
        // 499: nginx's "client closed request", for a client gone before any status.
        let status = state.status.unwrap_or(499);
        let model = state.model.as_deref().unwrap_or("");
        let label = state.model_label.as_deref().unwrap_or("");
        counter!(names::REQUESTS, "door" => self.door, "model" => label.to_owned(), "status" => status.to_string())
            .increment(1);
        if state.generating {
            counter!(names::STREAMS_ENDED, "model" => label.to_owned(), "ended" => ended.label(), "error_type" => ended.error_type())
                .increment(1);
            if matches!(
                ended,
                Ended::ClientGone | Ended::ShuttingDown | Ended::Cancelled
            ) {
                counter!(names::UPSTREAM_CANCELLED, "model" => label.to_owned()).increment(1);
            }
        }
        if let Some(cx) = state.trace.take() {
            end_span(&cx, self.door, &self.request_id, state, status, ended);
        }
        let client = match state.client {
            Some(ClientKey::Addr(addr)) => addr.to_string(),
            Some(ClientKey::Key(key)) => format!("key#{}", key.0),
            Some(ClientKey::Unknown) | None => "-".to_owned(),
        };
        tracing::info!(
            target: "sluice::access",
            request_id = %self.request_id,
            client = %client,
            door = self.door,
            target = state.target.as_deref().unwrap_or("-"),
            model = model,
            status = status,
            ttft_ms = state.ttft.map(|t| t.as_secs_f64() * 1000.0),
            tokens = state.tokens,
            continued = state.continuations,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            ended = ended.label(),
            error_type = ended.error_type(),
            "request"
        );
    }
}

/// Per-stream counting on the hot path.
pub struct StreamMeter {
    tally: Tally,
    tokens_relayed: Counter,
    ttft: Histogram,
    gap: Histogram,
    overhead: Histogram,
    active: Gauge,
    upstream_ttft: Option<Duration>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    tokens: u64,
    continuations: u32,
    ended: Option<Ended>,
}

impl StreamMeter {
    /// A token frame is about to be written.
    pub fn token(&mut self) {
        let now = Instant::now();
        match self.last_at {
            None => {
                let ttft = now - self.tally.started();
                self.ttft.record(ttft.as_secs_f64());
                if let Some(cx) = self.tally.trace_context() {
                    cx.span().add_event("gen_ai.first_token", Vec::new());
                }
                if let Some(upstream) = self.upstream_ttft {
                    self.overhead
                        .record(ttft.saturating_sub(upstream).as_secs_f64());
                }
                self.first_at = Some(now);
            }
            Some(last) => self.gap.record((now - last).as_secs_f64()),
        }
        self.last_at = Some(now);
        self.tokens += 1;
        self.tokens_relayed.increment(1);
    }

    pub fn end(&mut self, ended: Ended) {
        self.ended = Some(ended);
    }

    /// A continuation joined the answer (section 17).
    pub fn continued(&mut self) {
        self.continuations += 1;
    }

    /// The model now serving the stream.
    pub fn serving(&mut self, model: &str) {
        self.tally.state().served_by = Some(model.to_owned());
    }

    /// The generation finished with `finish` (its usage, its reason).
    pub fn finished(&mut self, finish: &Finish) {
        self.tally.state().finish = Some(finish.clone());
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        self.active.decrement(1.0);
        let mut state = self.tally.state();
        state.tokens = self.tokens;
        state.continuations = self.continuations;
        state.ttft = self.first_at.map(|at| at - self.tally.started());
        state.ended = Some(self.ended.unwrap_or(Ended::ClientGone));
    }
}

/// Counts a refusal by the gate.
pub fn rejected(reason: &'static str) {
    counter!(names::REJECTED, "reason" => reason).increment(1);
}

/// Ends a request's span with what the request came to: the GenAI
/// attributes for a generation (the operation, provider, models, usage and
/// finish reason), the HTTP status, and an error status for a failure.
fn end_span(
    cx: &opentelemetry::Context,
    door: &'static str,
    request_id: &str,
    state: &State,
    status: u16,
    ended: Ended,
) {
    use opentelemetry::trace::Status;
    let span = cx.span();
    let mut attributes = vec![
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("sluice.door", door),
        KeyValue::new("sluice.request_id", request_id.to_owned()),
    ];
    if state.generating {
        let operation = match door {
            "openai_completions" => "text_completion",
            "openai_embeddings" => "embeddings",
            _ => "chat",
        };
        let model = state.model.clone().unwrap_or_default();
        span.update_name(format!("{operation} {model}"));
        attributes.extend([
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new(
                "gen_ai.provider.name",
                state
                    .provider
                    .map_or("unknown", crate::telemetry::provider_name),
            ),
            KeyValue::new("gen_ai.request.model", model.clone()),
            KeyValue::new(
                "gen_ai.response.model",
                state.served_by.clone().unwrap_or(model),
            ),
            KeyValue::new("sluice.tokens_relayed", state.tokens as i64),
            KeyValue::new("sluice.continuations", i64::from(state.continuations)),
        ]);
        if let Some(finish) = &state.finish {
            attributes.extend([
                KeyValue::new(
                    "gen_ai.usage.input_tokens",
                    i64::from(finish.usage.prompt_tokens),
                ),
                KeyValue::new(
                    "gen_ai.usage.output_tokens",
                    i64::from(finish.usage.completion_tokens),
                ),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    opentelemetry::Value::Array(
                        vec![opentelemetry::StringValue::from(
                            finish.finish_reason.clone(),
                        )]
                        .into(),
                    ),
                ),
            ]);
        }
        if let Some(ttft) = state.ttft {
            attributes.push(KeyValue::new("sluice.ttft_ms", ttft.as_secs_f64() * 1000.0));
        }
    }
    if let Some(kind) = state.error {
        attributes.push(KeyValue::new("error.type", kind.as_str()));
    }
    span.set_attributes(attributes);
    let failed = status >= 500 || matches!(ended, Ended::Error(_));
    if failed {
        span.set_status(Status::error(ended.error_type()));
    }
    span.end();
}
