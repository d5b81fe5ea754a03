//! Serving metrics against their definitions: the curriculum's worked example, numpy's
//! percentile on known values, Little's law on a queue whose answer is known, and
//! seeded Poisson arrivals whose mean gap is 1/rate.

use lav_engine::metrics::{
    Percentiles, RequestTimes, Slo, mean_in_flight, percentile, prometheus, summarize,
};
use lav_engine::workload::{Lengths, WorkloadSpec, from_jsonl, generate};

/// Queue 85 ms, prefill 62 ms, then 340 ms of decode over 8 output tokens.
fn worked() -> RequestTimes {
    let first = 0.085 + 0.062;
    RequestTimes {
        arrival: 0.0,
        scheduled: Some(0.085),
        tokens: (0..8).map(|i| first + 0.340 * i as f64 / 7.0).collect(),
        finish: Some(first + 0.340),
        prompt_tokens: 100,
    }
}

#[test]
fn the_worked_example_gives_ttft_147_tpot_49_e2e_487() {
    let r = worked();
    let ms = |x: Option<f64>| (x.unwrap() * 1e3 * 1e6).round() / 1e6;
    assert_eq!(ms(r.ttft()), 147.0);
    assert_eq!(ms(r.e2e()), 487.0);
    assert_eq!(ms(r.queue()), 85.0);
    // (E2E − TTFT) / (N − 1) = 340 / 7.
    assert!((r.tpot().unwrap() * 1e3 - 340.0 / 7.0).abs() < 1e-9);
    assert_eq!((r.tpot().unwrap() * 1e3).round(), 49.0);
    // Evenly spaced tokens: every gap equals the TPOT.
    assert!(r.itls().all(|g| (g - r.tpot().unwrap()).abs() < 1e-12));
    let slo = |ttft, tpot| Slo { ttft, tpot };
    assert!(slo(0.150, 0.050).met(&r));
    assert!(!slo(0.140, 0.050).met(&r), "TTFT over");
    assert!(
        !slo(0.150, 0.040).met(&r),
        "TPOT over the 40 ms interactive threshold"
    );
}

#[test]
fn percentiles_interpolate_like_numpy() {
    // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) = [3.0, 7.6, 9.76].
    let v = [4.0, 1.0, 10.0, 3.0, 2.0];
    assert_eq!(percentile(&v, 50.0), Some(3.0));
    assert!((percentile(&v, 90.0).unwrap() - 7.6).abs() < 1e-12);
    assert!((percentile(&v, 99.0).unwrap() - 9.76).abs() < 1e-12);
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[5.0, 7.0], 50.0), Some(6.0));
    let p = Percentiles::of(&v);
    assert_eq!((p.mean, p.count), (4.0, 5));
}

#[test]
fn tpot_is_request_weighted_and_itl_token_weighted() {
    // One request with 2 tokens 100 ms apart, one with 11 tokens 10 ms apart.
    let req = |arrival: f64, n: usize, gap: f64| RequestTimes {
        arrival,
        scheduled: Some(arrival),
        tokens: (0..n).map(|i| arrival + 0.05 + gap * i as f64).collect(),
        finish: Some(arrival + 0.05 + gap * (n - 1) as f64),
        prompt_tokens: 10,
    };
    let s = summarize(
        &[req(0.0, 2, 0.1), req(0.0, 11, 0.01)],
        Slo {
            ttft: 1.0,
            tpot: 1.0,
        },
    );
    assert!(
        (s.tpot.mean - 0.055).abs() < 1e-12,
        "mean of 100 ms and 10 ms"
    );
    assert!(
        (s.itl.mean - (0.1 + 10.0 * 0.01) / 11.0).abs() < 1e-12,
        "11 gaps"
    );
    assert_eq!(s.output_tokens, 13);
    assert_eq!(s.finished, 2);
    assert!((s.throughput_tok_s - 13.0 / 0.15).abs() < 1e-9);
    let text = prometheus(&s);
    assert!(text.contains("lav_generation_tokens_total 13"), "{text}");
    let p50: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lav_time_per_output_token_seconds{quantile=\"0.5\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((p50 - 0.055).abs() < 1e-12, "{text}");
    assert!(
        text.contains("# TYPE lav_e2e_request_latency_seconds summary"),
        "{text}"
    );
}

#[test]
fn goodput_counts_only_requests_meeting_every_slo() {
    let mut late = worked();
    late.tokens[0] += 0.1; // first token 100 ms later: TTFT 247 ms
    let s = summarize(
        &[worked(), late, worked()],
        Slo {
            ttft: 0.2,
            tpot: 0.05,
        },
    );
    assert!((s.slo_attainment - 2.0 / 3.0).abs() < 1e-12);
    assert!((s.goodput_req_s - 2.0 / s.duration).abs() < 1e-12);
}

#[test]
fn littles_law_holds_on_a_deterministic_queue() {
    // One arrival every 50 ms (λ = 20/s), each in the system for 6 s: L = λW = 120.
    let reqs: Vec<RequestTimes> = (0..2000)
        .map(|i| {
            let a = i as f64 * 0.05;
            RequestTimes {
                arrival: a,
                finish: Some(a + 6.0),
                ..Default::default()
            }
        })
        .collect();
    let l = mean_in_flight(&reqs, 10.0, 90.0);
    assert!((l - 120.0).abs() < 1e-6, "{l}");
}

#[test]
fn poisson_arrivals_are_seeded_with_mean_gap_one_over_rate() {
    let spec = WorkloadSpec {
        rate: 4.0,
        count: 20_000,
        prompt: Lengths::Uniform { min: 16, max: 64 },
        output: Lengths::Fixed(32),
        seed: 11,
    };
    let a = generate(&spec);
    assert_eq!(a, generate(&spec), "the same seed, the same requests");
    assert!(a.windows(2).all(|w| w[0].arrival <= w[1].arrival));
    let mean_gap = a.last().unwrap().arrival / a.len() as f64;
    // Exponential gaps: the standard error of the mean is (1/rate)/sqrt(n), 0.18 ms.
    assert!(
        (mean_gap - 0.25).abs() < 4.0 * 0.25 / (a.len() as f64).sqrt(),
        "{mean_gap}"
    );
    assert!(
        a.iter()
            .all(|r| (16..=64).contains(&r.prompt_tokens) && r.max_tokens == 32)
    );
    let other = generate(&WorkloadSpec { seed: 12, ..spec });
    assert_ne!(a[0].arrival, other[0].arrival);
}

#[test]
fn jsonl_workloads_replay_and_name_the_bad_line() {
    let ok = "{\"arrival\": 0, \"prompt\": \"Hi\", \"max_tokens\": 4}\n\n{\"arrival\": 0.5, \"prompt_tokens\": 20, \"max_tokens\": 8}\n";
    let r = from_jsonl(ok).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!((r[1].id, r[1].prompt_tokens, r[1].max_tokens), (1, 20, 8));
    let e = from_jsonl("{\"arrival\": 1, \"prompt\": \"a\", \"max_tokens\": 4}\n{\"arrival\": 0.5, \"prompt\": \"b\", \"max_tokens\": 4}")
        .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.to_string().contains("back in time"), "{e}");
    let e = from_jsonl("{\"arrival\": 0, \"max_tokens\": 4}").unwrap_err();
    assert!(
        e.to_string().contains("line 1") && e.to_string().contains("prompt"),
        "{e}"
    );
    assert!(
        from_jsonl("not json")
            .unwrap_err()
            .to_string()
            .contains("line 1")
    );
}
