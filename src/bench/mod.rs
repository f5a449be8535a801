//! `sluice bench`: a load generator for any SSE token endpoint, ours, an
//! OpenAI-compatible one, or a Responses or Anthropic Messages one (the frame
//! format is detected from the stream).
//!
//! It opens streams at a given concurrency (optionally ramped), for a number
//! of requests or a duration, or holds N streams open, or hangs up after K
//! tokens, and records per stream the time to first content token, every gap
//! between tokens, the token count and how the stream ended. The metrics are
//! defined as vLLM's `benchmark_serving` defines them:
//!
//! - TTFT: request sent to first content token received;
//! - ITL (inter-token latency): each gap between consecutive tokens;
//! - TPOT (time per output token): (end-to-end latency − TTFT) / (tokens − 1),
//!   per stream;
//! - output throughput: tokens received / wall time.
//!
//! A stall is a gap longer than 10× the expected pace (`--expected-gap-ms`,
//! default: the median ITL of the run).

mod args;
mod report;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use tokio::sync::Semaphore;

pub use args::BenchArgs;
pub use report::Report;
pub use stream::{End, StreamResult};

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let report = measure(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("serialisable")
        );
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Runs the streams and gathers their results.
pub async fn measure(args: &BenchArgs) -> Result<Report, String> {
    let target = Arc::new(stream::Target::new(args)?);
    let total = if args.hold {
        args.concurrency as u64
    } else {
        args.requests.unwrap_or(args.concurrency as u64)
    };
    let until = match (args.hold, args.duration) {
        (false, Some(secs)) => Some(Instant::now() + Duration::from_secs_f64(secs)),
        _ => None,
    };
    let hold_for = args
        .hold
        .then(|| Duration::from_secs_f64(args.duration.unwrap_or(10.0)));
    let progress = progress_bar(args, total, until.is_some());
    let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let started = Arc::new(AtomicU64::new(0));
    let ramp_gap = args
        .ramp
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let began = Instant::now();
    let hold_until = hold_for.map(|hold| began + hold);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let n = started.load(Ordering::Relaxed);
        let more = match until {
            Some(until) => Instant::now() < until,
            None => n < total,
        };
        if !more {
            break;
        }
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        if until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        started.fetch_add(1, Ordering::Relaxed);
        let target = target.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let result = target.run_one(hold_until).await;
            progress.inc(1);
            drop(permit);
            result
        });
        if let Some(gap) = ramp_gap {
            tokio::time::sleep(gap).await;
        }
    }
    let mut results = Vec::with_capacity(total as usize);
    while let Some(result) = tasks.join_next().await {
        results.push(result.map_err(|e| format!("a stream task failed: {e}"))?);
    }
    progress.finish_and_clear();
    Ok(Report::new(&results, began.elapsed(), args))
}

fn progress_bar(args: &BenchArgs, total: u64, timed: bool) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = if timed {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} streams")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
