//! OpenTelemetry traces (contract section 19): where a request's time went.
//!
//! Off unless `[telemetry] otlp_endpoint` or one of the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! variables is set (and `OTEL_SDK_DISABLED` is not `true`). When on, every
//! API request is one span (`observe::Tally` holds it), named and attributed
//! after the GenAI semantic conventions (`chat gpt-4o`,
//! `gen_ai.request.model`, `gen_ai.usage.output_tokens`, ...), with a child
//! span for each upstream attempt (retries, fallbacks, hedges,
//! continuations; `pipeline::attempt`) and events for the first token, a
//! continuation and a resume. A client's `traceparent` is the request span's
//! parent, and each attempt's context goes upstream as `traceparent`.
//!
//! Spans leave through a bounded queue ([`export`]): when the collector is
//! slow or down, spans past the queue are dropped and counted
//! (`sluice_trace_spans_dropped_total`), and no request waits for it.
//!
//! What it may not do: export a prompt or an answer (no span carries
//! either), or cost anything per token (one event at the first token; when
//! off, one load per request).

mod export;

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::{ProviderKind, Telemetry as Settings};

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Where spans go, from the config or the standard environment, if tracing
/// is on.
fn endpoint(settings: &Settings) -> Option<String> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    if let Some(base) = &settings.otlp_endpoint {
        return Some(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    })
}

/// Turns tracing on for this process when the settings (or environment)
/// ask: the exporting task, for the server to run. The first call wins: a
/// process has one tracer.
pub fn install(settings: &Settings) -> Option<impl std::future::Future<Output = ()> + Send> {
    let endpoint = endpoint(settings)?;
    if TRACER.get().is_some() {
        return None;
    }
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| settings.service_name.clone());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // The exporter puts the resource on the wire; the provider keeps it for
    // the spans' own view.
    let (processor, exporting) = export::start(&endpoint, settings, &resource)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let _ = TRACER.set(provider.tracer("sluice"));
    tracing::info!(endpoint = %endpoint, "exporting traces over OTLP/HTTP");
    Some(exporting)
}

/// The tracer, when tracing is on.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// A request's span, started now under the client's `traceparent` (if it
/// sent one): a context holding it, or `None` when tracing is off.
pub fn request_span(headers: &axum::http::HeaderMap, name: String) -> Option<Context> {
    let tracer = tracer()?;
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// A child of the current context's span (an upstream attempt), with
/// `attributes`; `None` when tracing is off.
pub fn child_span(name: String, attributes: Vec<KeyValue>) -> Option<Context> {
    let tracer = tracer()?;
    let parent = Context::current();
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// The GenAI convention's `gen_ai.provider.name` for a configured provider
/// (the well-known names where there is one; sluice's own otherwise).
pub fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Ollama => "ollama",
        ProviderKind::Mock => "sluice.mock",
        ProviderKind::Replay => "sluice.replay",
    }
}

/// The W3C `traceparent` of `cx`'s span, for the upstream request.
pub fn traceparent(cx: &Context) -> Option<String> {
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut Fields(&mut fields));
    fields.remove("traceparent")
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Injector for Fields<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
