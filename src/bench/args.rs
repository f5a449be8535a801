//! `sluice bench`'s command line.

const HELP: &str = "Metrics, as vLLM's benchmark_serving defines them:
  TTFT  time to first token: request sent -> first content token received
  ITL   inter-token latency: every gap between two consecutive tokens
  TPOT  time per output token: (end-to-end - TTFT) / (tokens - 1), per stream
  tok/s output throughput: tokens received / wall time
  stall a gap longer than 10x the expected pace (--expected-gap-ms, default the median ITL)";

/// `sluice bench` options.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = HELP)]
pub struct BenchArgs {
    /// The streaming endpoint: sluice's /v1/stream, any OpenAI-compatible
    /// /v1/chat/completions or /v1/completions, or a Responses
    /// (/v1/responses) or Anthropic Messages (/v1/messages) endpoint.
    #[arg(long, default_value = "http://127.0.0.1:7800/v1/stream")]
    pub url: String,
    /// The JSON body to POST (default: a prompt for /v1/stream, a streaming
    /// chat request for model `mock` on the OpenAI paths).
    #[arg(long)]
    pub body: Option<String>,
    /// Extra request headers, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Streams open at once.
    #[arg(long, short = 'c', default_value_t = 10)]
    pub concurrency: usize,
    /// Streams to run in all (default: one per concurrency slot).
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Keep starting streams for this many seconds instead of a count; with
    /// --hold, how long to hold the streams open (default 10).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Start at most this many streams per second.
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Open --concurrency streams and keep them open for --duration seconds.
    #[arg(long)]
    pub hold: bool,
    /// Hang up each stream after this many tokens.
    #[arg(long)]
    pub hangup_after: Option<u64>,
    /// The expected gap between tokens, for stall detection.
    #[arg(long)]
    pub expected_gap_ms: Option<f64>,
    /// Give up on a stream after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Print the report as JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Speak HTTP/2 with prior knowledge (cleartext): every stream of the
    /// run shares one connection.
    #[arg(long)]
    pub http2: bool,
}
