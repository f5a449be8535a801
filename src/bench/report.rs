//! The benchmark's numbers: percentiles from HDR histograms, throughput,
//! ends by kind, stalls; as a table for people or JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::args::BenchArgs;
use super::stream::StreamResult;

pub struct Report {
    pub streams: usize,
    pub wall: Duration,
    pub tokens: u64,
    pub ttft: Histogram<u64>,
    pub itl: Histogram<u64>,
    pub tpot: Histogram<u64>,
    pub ends: BTreeMap<String, usize>,
    pub stalls: u64,
    pub expected_gap_us: f64,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to an hour, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Report {
    pub fn new(results: &[StreamResult], wall: Duration, args: &BenchArgs) -> Report {
        let (mut ttft, mut itl, mut tpot) = (histogram(), histogram(), histogram());
        let mut ends = BTreeMap::new();
        let mut tokens = 0;
        for result in results {
            tokens += result.tokens;
            *ends.entry(result.end.label()).or_insert(0) += 1;
            if let Some(first) = result.ttft {
                let _ = ttft.record(micros(first));
                if result.tokens > 1 {
                    let per_token = (result.latency - first) / (result.tokens as u32 - 1);
                    let _ = tpot.record(micros(per_token));
                }
            }
            for gap in &result.gaps {
                let _ = itl.record(micros(*gap));
            }
        }
        let expected_gap_us = args
            .expected_gap_ms
            .map(|ms| ms * 1000.0)
            .unwrap_or_else(|| itl.value_at_quantile(0.5) as f64);
        let stalls = results
            .iter()
            .flat_map(|r| &r.gaps)
            .filter(|gap| expected_gap_us > 0.0 && gap.as_micros() as f64 > 10.0 * expected_gap_us)
            .count() as u64;
        Report {
            streams: results.len(),
            wall,
            tokens,
            ttft,
            itl,
            tpot,
            ends,
            stalls,
            expected_gap_us,
        }
    }

    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn errors(&self) -> usize {
        self.ends
            .iter()
            .filter(|(label, _)| !matches!(label.as_str(), "done" | "hung_up"))
            .map(|(_, n)| n)
            .sum()
    }

    fn percentiles(h: &Histogram<u64>) -> Value {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Value::Null;
        }
        json!({
            "p50_ms": ms(h.value_at_quantile(0.5)),
            "p90_ms": ms(h.value_at_quantile(0.9)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "max_ms": ms(h.max()),
            "mean_ms": h.mean() / 1000.0,
            "count": h.len(),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "streams": self.streams,
            "wall_s": self.wall.as_secs_f64(),
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_second(),
            "ttft": Self::percentiles(&self.ttft),
            "itl": Self::percentiles(&self.itl),
            "tpot": Self::percentiles(&self.tpot),
            "ends": self.ends,
            "errors": self.errors(),
            "stalls": self.stalls,
            "expected_gap_ms": self.expected_gap_us / 1000.0,
        })
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} streams, {} tokens in {:.2} s: {:.0} tokens/s",
            self.streams,
            self.tokens,
            self.wall.as_secs_f64(),
            self.tokens_per_second()
        );
        let _ = writeln!(
            out,
            "\n{:<6} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"
        );
        for (name, h) in [
            ("TTFT", &self.ttft),
            ("ITL", &self.itl),
            ("TPOT", &self.tpot),
        ] {
            if h.is_empty() {
                let _ = writeln!(out, "{name:<6} {:>10}", "-");
                continue;
            }
            let ms = |v: u64| v as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name:<6} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
                h.mean() / 1000.0
            );
        }
        let ends: Vec<String> = self.ends.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "\nends: {}", ends.join(", "));
        let _ = writeln!(
            out,
            "stalls (gap > 10 x {:.2} ms): {}",
            self.expected_gap_us / 1000.0,
            self.stalls
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::End;

    fn args() -> BenchArgs {
        BenchArgs {
            url: String::new(),
            body: None,
            headers: Vec::new(),
            concurrency: 1,
            requests: None,
            duration: None,
            ramp: None,
            hold: false,
            hangup_after: None,
            expected_gap_ms: Some(10.0),
            timeout: 1.0,
            json: true,
            http2: false,
        }
    }

    #[test]
    fn percentiles_tpot_and_stalls_follow_the_definitions() {
        let ms = Duration::from_millis;
        let results = vec![
            StreamResult {
                ttft: Some(ms(100)),
                gaps: vec![ms(10), ms(10), ms(200)],
                tokens: 4,
                latency: ms(320),
                end: End::Done,
            },
            StreamResult {
                ttft: None,
                gaps: vec![],
                tokens: 0,
                latency: ms(5),
                end: End::Status(503),
            },
        ];
        let report = Report::new(&results, Duration::from_secs(2), &args());
        assert_eq!(report.tokens, 4);
        assert_eq!(report.tokens_per_second(), 2.0);
        assert_eq!(report.stalls, 1, "one gap over 10 x 10 ms");
        assert_eq!(report.errors(), 1);
        // TPOT = (320 - 100) / 3
        let tpot = report.tpot.value_at_quantile(0.5) as f64 / 1000.0;
        assert!((tpot - 73.33).abs() < 0.1, "{tpot}");
        assert_eq!(report.ttft.len(), 1);
        assert_eq!(report.itl.len(), 3);
    }
}
