//! Spans out of the process: a bounded queue that drops rather than blocks,
//! and one task that sends them in batches over OTLP/HTTP (protobuf).
//!
//! The SDK's own batch processor also drops when full, but says so only in
//! its log; this one counts every dropped span in
//! `sluice_trace_spans_dropped_total`, so an operator sees a slow or absent
//! collector on the dashboard they already have.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

use crate::config::Telemetry as Settings;
use crate::metrics::TRACE_SPANS_DROPPED;

/// Spans sent in one request, at most.
const BATCH: usize = 512;
/// How long a batch waits for more spans after its first.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// One export's deadline: past it the batch is given up.
const EXPORT_DEADLINE: Duration = Duration::from_secs(10);

/// The processor the tracer hands ended spans to.
#[derive(Debug)]
pub struct Bounded {
    queue: mpsc::Sender<SpanData>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            metrics::counter!(TRACE_SPANS_DROPPED).increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The processor, and the task that exports what it queues (for the
/// server to run); `None` (and a warning) if the exporter cannot be built.
pub fn start(
    endpoint: &str,
    settings: &Settings,
    resource: &opentelemetry_sdk::Resource,
) -> Option<(
    Bounded,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?;
    // OTEL_EXPORTER_OTLP_HEADERS (an API key for a hosted collector) is read
    // by the exporter itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_DEADLINE)
        .build();
    let mut exporter = match exporter {
        Ok(exporter) => exporter,
        Err(err) => {
            tracing::warn!(error = %err, "traces stay off: the OTLP exporter could not be built");
            return None;
        }
    };
    exporter.set_resource(resource);
    let (queue, spans) = mpsc::channel(settings.max_queue_spans.max(1));
    Some((Bounded { queue }, send(spans, exporter)))
}

/// Sends the queue's spans in batches, one request at a time, until the
/// tracer is gone.
async fn send(mut spans: mpsc::Receiver<SpanData>, exporter: impl SpanExporter) {
    let mut failing = false;
    while let Some(first) = spans.recv().await {
        let mut batch = vec![first];
        let gathering = tokio::time::sleep(BATCH_DELAY);
        tokio::pin!(gathering);
        while batch.len() < BATCH {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => batch.push(span),
                    None => break,
                },
                () = &mut gathering => break,
            }
        }
        let count = batch.len();
        let sent = tokio::time::timeout(EXPORT_DEADLINE, exporter.export(batch)).await;
        match sent {
            Ok(Ok(())) => failing = false,
            Ok(Err(err)) => failed(&mut failing, count, &err.to_string()),
            Err(_) => failed(&mut failing, count, "timed out"),
        }
    }
}

/// A batch that did not go: counted as dropped, and logged once per outage.
fn failed(failing: &mut bool, count: usize, why: &str) {
    metrics::counter!(TRACE_SPANS_DROPPED).increment(count as u64);
    if !std::mem::replace(failing, true) {
        tracing::warn!(
            reason = why,
            "could not export traces; dropping them until the collector answers"
        );
    }
}
