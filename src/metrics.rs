//! Prometheus metrics (`GET /metrics`), recorded with the `metrics` crate and
//! rendered by its Prometheus exporter.
//!
//! Names follow the OpenTelemetry GenAI conventions where one fits
//! (`gen_ai_server_time_to_first_token_seconds`,
//! `gen_ai_server_time_per_output_token_seconds`); the rest are `sluice_*`.
//! This module names every metric in one place; `observe` decides when they
//! move. Per-token work uses handles fetched once per stream, so a token costs
//! an atomic add and a histogram observation, not a label lookup.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "sluice_requests_total";
pub const ACTIVE_STREAMS: &str = "sluice_active_streams";
pub const TOKENS: &str = "sluice_tokens_relayed_total";
pub const TTFT: &str = "gen_ai_server_time_to_first_token_seconds";
pub const INTER_TOKEN: &str = "gen_ai_server_time_per_output_token_seconds";
pub const STREAMS_ENDED: &str = "sluice_streams_ended_total";
pub const UPSTREAM_ERRORS: &str = "sluice_upstream_errors_total";
pub const UPSTREAM_CANCELLED: &str = "sluice_upstream_cancellations_total";
pub const REJECTED: &str = "sluice_rejections_total";
pub const OVERHEAD: &str = "sluice_proxy_overhead_seconds";
pub const GENERATIONS: &str = "sluice_generations_total";
pub const GENERATIONS_RUNNING: &str = "sluice_generations_running";
pub const WATCHERS: &str = "sluice_generation_watchers";
pub const RESUMES: &str = "sluice_generation_resumes_total";
pub const GENERATION_LOG_BYTES: &str = "sluice_generation_log_bytes";
pub const STORE_LATENCY: &str = "sluice_store_seconds";
pub const STORE_ERRORS: &str = "sluice_store_errors_total";
pub const STORE_LEASE_RENEWALS: &str = "sluice_store_lease_renewals_total";
pub const STORE_FALLBACKS: &str = "sluice_store_fallbacks_total";
pub const CONTINUATIONS: &str = "sluice_continuations_total";
pub const HEDGES: &str = "sluice_hedges_total";
pub const TRACE_SPANS_DROPPED: &str = "sluice_trace_spans_dropped_total";

/// Seconds buckets from 1 ms to 60 s for time to first token.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Inter-token gaps are shorter.
const GAP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// The proxy's own share of the first token's latency.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it) and
/// describes the metrics.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(TTFT.into()), TTFT_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(INTER_TOKEN.into()), GAP_BUCKETS))
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(OVERHEAD.into()), OVERHEAD_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(STORE_LATENCY.into()), OVERHEAD_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's);
        // then /metrics shows what this handle sees, which is nothing.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Folds histogram samples into their buckets once a second, for as long as
/// it runs. The exporter queues every observation until then (one per relayed
/// token, for the inter-token gap), so without this a server nobody scrapes
/// grows by about 17 bytes per token (measured: 14 MB over 819,200 tokens).
pub async fn upkeep() {
    let handle = install();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// The Prometheus text exposition.
pub fn render() -> String {
    let handle = install();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "Requests by front door, model and HTTP status.");
    describe_gauge!(ACTIVE_STREAMS, "Streams open now.");
    describe_counter!(TOKENS, "Tokens relayed to clients, by model.");
    describe_histogram!(
        TTFT,
        Unit::Seconds,
        "Time from the request to its first token frame, by model."
    );
    describe_histogram!(
        INTER_TOKEN,
        Unit::Seconds,
        "Gap between consecutive token frames, by model."
    );
    describe_counter!(STREAMS_ENDED, "Streams by how they ended: done, error (with error_type), client_gone, shutting_down, cut.");
    describe_counter!(UPSTREAM_ERRORS, "Upstream failures by model and kind.");
    describe_counter!(
        CONTINUATIONS,
        "Answers continued after their upstream failed mid-stream, by model and reason (section 17)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED,
        "Trace spans dropped: the export queue was full, or the collector did not take them."
    );
    describe_counter!(
        HEDGES,
        "Hedged first attempts by model and which won: primary, hedge or neither (section 17)."
    );
    describe_counter!(
        UPSTREAM_CANCELLED,
        "Generations cancelled because the client left or the proxy shut down."
    );
    describe_counter!(
        REJECTED,
        "Requests refused by the gate, by reason (rate, client_streams, overloaded, unauthorized)."
    );
    describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "Time to first token at the client minus the upstream's own, by model."
    );
    describe_counter!(
        GENERATIONS,
        "Generations ended, by status: done, error, cancelled."
    );
    describe_gauge!(
        GENERATIONS_RUNNING,
        "Generations running now, watched or not."
    );
    describe_gauge!(WATCHERS, "Responses watching a generation's log now.");
    describe_counter!(
        RESUMES,
        "Reconnects that resumed a generation (Last-Event-ID or ?after=)."
    );
    describe_gauge!(
        GENERATION_LOG_BYTES,
        Unit::Bytes,
        "Bytes held by the logs of ended generations kept for reconnects."
    );
    describe_histogram!(
        STORE_LATENCY,
        Unit::Seconds,
        "Round trips to the shared store (Redis), by operation."
    );
    describe_counter!(
        STORE_ERRORS,
        "Failed round trips to the shared store (Redis), by operation."
    );
    describe_counter!(
        STORE_LEASE_RENEWALS,
        "Renewals of this replica's lease in the shared store."
    );
    describe_counter!(
        STORE_FALLBACKS,
        "Limit checks made by this replica alone because the shared store was down, by limit."
    );
}
