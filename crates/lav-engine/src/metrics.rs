//! Serving metrics from per-request timestamps, the way serving benchmarks define
//! them (vLLM's `benchmark_serving`, MLPerf Inference):
//!
//! - **TTFT** (time to first token) = first token − arrival = queueing + prefill.
//! - **TPOT** (time per output token) = (E2E − TTFT) / (N_out − 1): the mean gap
//!   between output tokens of one request; request-weighted when summarised.
//! - **ITL** (inter-token latency): every gap between consecutive output tokens;
//!   token-weighted when summarised.
//! - **E2E**: finish − arrival.
//! - **Throughput**: output tokens per second of the run; **goodput**: requests per
//!   second that met every SLO.
//!
//! Percentiles interpolate linearly between order statistics (numpy's default), so
//! the P50 of two values is their mean.

use std::fmt::Write;

/// When things happened to one request, in seconds on one clock (measured or
/// simulated; the summary does not care which).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestTimes {
    pub arrival: f64,
    /// When the scheduler first gave it a place (end of queueing).
    pub scheduled: Option<f64>,
    /// When each output token was produced; the first is the first token.
    pub tokens: Vec<f64>,
    pub finish: Option<f64>,
    pub prompt_tokens: usize,
}

impl RequestTimes {
    pub fn ttft(&self) -> Option<f64> {
        self.tokens.first().map(|t| t - self.arrival)
    }

    pub fn queue(&self) -> Option<f64> {
        self.scheduled.map(|t| t - self.arrival)
    }

    pub fn e2e(&self) -> Option<f64> {
        self.finish.map(|t| t - self.arrival)
    }

    /// (E2E − TTFT) / (N − 1); undefined for fewer than two output tokens.
    pub fn tpot(&self) -> Option<f64> {
        let n = self.tokens.len();
        if n < 2 {
            return None;
        }
        Some((self.e2e()? - self.ttft()?) / (n - 1) as f64)
    }

    /// Every gap between consecutive output tokens.
    pub fn itls(&self) -> impl Iterator<Item = f64> + '_ {
        self.tokens.windows(2).map(|w| w[1] - w[0])
    }
}

/// The latency limits a request must meet to count towards goodput.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slo {
    pub ttft: f64,
    pub tpot: f64,
}

impl Slo {
    /// Whether a finished request met both limits (a one-token reply has no TPOT to
    /// miss).
    pub fn met(&self, r: &RequestTimes) -> bool {
        r.finish.is_some()
            && r.ttft().is_some_and(|t| t <= self.ttft)
            && r.tpot().is_none_or(|t| t <= self.tpot)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub count: usize,
}

/// The `q`-th percentile (0–100) of `values`, interpolating linearly between the
/// two nearest order statistics. `None` when there are no values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = q.clamp(0.0, 100.0) / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let p = |q| percentile(values, q).expect("values exist");
        Self {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: p(50.0),
            p90: p(90.0),
            p99: p(99.0),
            count: values.len(),
        }
    }
}

/// A run summarised.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub requests: usize,
    pub finished: usize,
    /// From the first arrival to the last finish.
    pub duration: f64,
    pub output_tokens: usize,
    pub throughput_tok_s: f64,
    pub request_rate: f64,
    pub goodput_req_s: f64,
    /// Fraction of finished requests that met the SLO.
    pub slo_attainment: f64,
    pub ttft: Percentiles,
    pub tpot: Percentiles,
    pub itl: Percentiles,
    pub e2e: Percentiles,
    pub queue: Percentiles,
}

pub fn summarize(reqs: &[RequestTimes], slo: Slo) -> Summary {
    let done: Vec<&RequestTimes> = reqs.iter().filter(|r| r.finish.is_some()).collect();
    let start = reqs.iter().map(|r| r.arrival).fold(f64::INFINITY, f64::min);
    let end = done
        .iter()
        .filter_map(|r| r.finish)
        .fold(f64::NEG_INFINITY, f64::max);
    let duration = if done.is_empty() { 0.0 } else { end - start };
    let per_s = |n: usize| {
        if duration > 0.0 {
            n as f64 / duration
        } else {
            0.0
        }
    };
    let output_tokens = done.iter().map(|r| r.tokens.len()).sum();
    let good = done.iter().filter(|r| slo.met(r)).count();
    let collect = |f: &dyn Fn(&RequestTimes) -> Option<f64>| -> Vec<f64> {
        done.iter().filter_map(|r| f(r)).collect()
    };
    let itls: Vec<f64> = done.iter().flat_map(|r| r.itls()).collect();
    Summary {
        requests: reqs.len(),
        finished: done.len(),
        duration,
        output_tokens,
        throughput_tok_s: per_s(output_tokens),
        request_rate: per_s(done.len()),
        goodput_req_s: per_s(good),
        slo_attainment: if done.is_empty() {
            0.0
        } else {
            good as f64 / done.len() as f64
        },
        ttft: Percentiles::of(&collect(&RequestTimes::ttft)),
        tpot: Percentiles::of(&collect(&RequestTimes::tpot)),
        itl: Percentiles::of(&itls),
        e2e: Percentiles::of(&collect(&RequestTimes::e2e)),
        queue: Percentiles::of(&collect(&RequestTimes::queue)),
    }
}

/// Requests in the system at time `t`: arrived and not yet finished.
pub fn in_flight(reqs: &[RequestTimes], t: f64) -> usize {
    reqs.iter()
        .filter(|r| r.arrival <= t && r.finish.is_none_or(|f| f > t))
        .count()
}

/// The mean number in flight over `[from, to)`, integrated exactly from the
/// arrival and finish times (the L of Little's law).
pub fn mean_in_flight(reqs: &[RequestTimes], from: f64, to: f64) -> f64 {
    if to <= from {
        return 0.0;
    }
    let inside: f64 = reqs
        .iter()
        .map(|r| {
            let (a, f) = (r.arrival.max(from), r.finish.unwrap_or(to).min(to));
            (f - a).max(0.0)
        })
        .sum();
    inside / (to - from)
}

/// The summary in Prometheus' text exposition format (what `/metrics` serves),
/// names prefixed `lav_`; latencies as summaries with quantile labels, in seconds.
pub fn prometheus(s: &Summary) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP lav_{name} {help}\n# TYPE lav_{name} gauge\nlav_{name} {v}"
        );
    };
    let counter = |out: &mut String, name: &str, help: &str, v: usize| {
        let _ = writeln!(
            out,
            "# HELP lav_{name} {help}\n# TYPE lav_{name} counter\nlav_{name} {v}"
        );
    };
    counter(&mut out, "requests_total", "Requests received.", s.requests);
    counter(
        &mut out,
        "requests_finished_total",
        "Requests finished.",
        s.finished,
    );
    counter(
        &mut out,
        "generation_tokens_total",
        "Output tokens produced.",
        s.output_tokens,
    );
    gauge(
        &mut out,
        "throughput_tokens_per_second",
        "Output tokens per second over the run.",
        s.throughput_tok_s,
    );
    gauge(
        &mut out,
        "goodput_requests_per_second",
        "Requests per second that met every SLO.",
        s.goodput_req_s,
    );
    for (name, help, p) in [
        (
            "time_to_first_token_seconds",
            "Arrival to first token.",
            &s.ttft,
        ),
        (
            "time_per_output_token_seconds",
            "(E2E - TTFT) / (output tokens - 1), per request.",
            &s.tpot,
        ),
        (
            "inter_token_latency_seconds",
            "Every gap between consecutive output tokens.",
            &s.itl,
        ),
        ("e2e_request_latency_seconds", "Arrival to finish.", &s.e2e),
    ] {
        let _ = writeln!(out, "# HELP lav_{name} {help}\n# TYPE lav_{name} summary");
        for (q, v) in [("0.5", p.p50), ("0.9", p.p90), ("0.99", p.p99)] {
            let _ = writeln!(out, "lav_{name}{{quantile=\"{q}\"}} {v}");
        }
        let _ = writeln!(out, "lav_{name}_sum {}", p.mean * p.count as f64);
        let _ = writeln!(out, "lav_{name}_count {}", p.count);
    }
    out
}
