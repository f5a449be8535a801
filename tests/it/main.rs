//! sluice's integration tests: one binary, so the harness and the fakes are
//! compiled once. Every test starts the real server on 127.0.0.1 port 0 (or
//! the real binary) and talks HTTP; upstreams are real local servers speaking
//! each provider's wire format, with faults on demand.

// Tests spawn servers and fakes for as long as a test runs, and measure real
// time across processes, so the library's rules on both do not apply here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

// The harness: `spawn` a sluice, `receive` its frames, and the fake
// upstreams (OpenAI, Anthropic, Ollama).
mod common;

// The native door, `/v1/stream`: frames, request forms, formats, heartbeats.
mod native_stream;
// Generations as resources: ids, the generations API, reconnects.
mod generations;
// A real browser's EventSource reconnecting through a cut connection.
mod browser;
// The playground page at `/`, in the browser.
mod playground;
// The mock's knobs and pacing, through the native door.
mod mock;
// The mock as a stand-in for a model (section 13): any model name.
mod mock_as_model;
// The mock's scripted answers: scenario files.
mod scenarios;
// The mock lab (section 14): rate-limit headers.
mod mock_lab;
// HTTP/2, cleartext and over TLS.
mod http2;
// The OpenAI-compatible door: chunk shapes, objects, errors, tool calls.
mod openai_door;
// The OpenAI Responses door: event sequences, objects, errors, providers.
mod responses_door;
// The Anthropic Messages door: event sequences, objects, errors, providers.
mod messages_door;
// Reasoning and tool calls on every door, from upstreams and the mock.
mod reasoning_and_tools;
// The official OpenAI SDKs (Python, Node) against the OpenAI door.
mod sdk_clients;
// Section 15: the chat UI doors.
mod ui_doors;
// Section 16: Idempotency-Key on every door.
mod idempotency;

// Provider `openai` against a fake upstream: timeouts, errors, hang-ups.
mod openai_upstream;
// The upstream's connections: kept, reused, replaced, closed on a hang-up.
mod upstream_connections;
// An https:// upstream on the wire client: TLS, reuse, cancel, trust.
mod upstream_tls;
// Providers `anthropic` and `ollama`, retries and fallbacks.
mod providers;

// API keys, rate limits and stream limits.
mod auth_and_limits;
// Prompt templates.
mod templates;
// Every malformed request, on both doors.
mod bad_input;
// The defects review's findings, one regression test each.
mod hardening;
// Section 18: every way of ending a stream works whoever the client is.
mod reader_stalls;
// The T3 review's other findings (the mock's bounds, watchers, auth, resume
// edges, browsers), one regression test each.
mod hardening_t3;
// Every upstream fault on both streaming doors.
mod fault_matrix;
// Section 17: failures mid-stream continued, hedging, failures by class.
mod midstream;

// The real binary: config errors exit 2, metrics, access log, SIGTERM.
mod config;
mod operations;
// The docs against the code: config keys, the README's curl examples.
mod docs;
// Two replicas behind the shipped nginx config.
mod behind_nginx;
// Two replicas sharing one Redis (section 12).
mod scale_out;
// Section 19: the same over TLS with an ACL user, as managed Redis runs.
mod managed_redis;
// Section 19: the same on a three-node Redis Cluster.
mod redis_cluster;
// Section 19: OpenTelemetry traces to a real OTLP receiver.
mod traces;
// The shared store under faults: Redis stalled, restarted empty, over its bounds.
mod store_faults;
// `sluice bench`.
mod bench_cli;
// The upstream SSE decoder, split at every byte.
mod sse_decoder;
