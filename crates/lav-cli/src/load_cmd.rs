//! `lav load`: a load against any OpenAI-compatible server (see `lav-load`).

use anyhow::{Context, Result};
use lav_engine::metrics::Slo;
use lav_engine::workload::{self, Lengths, WorkloadSpec};
use lav_load::{Load, LoadConfig, Point};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The server, e.g. http://127.0.0.1:8000 (lav serve, vLLM, SGLang, llama-server).
    #[arg(long)]
    url: String,
    /// The model id to send (default: the first the server lists at /v1/models).
    #[arg(long, value_name = "ID")]
    model_id: Option<String>,
    /// Open loop: Poisson arrivals, this many requests per second.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: this many clients, each sending when its last reply ends
    /// (default 1, or the workload's own arrival times with --workload).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds of sending per load level (requests in flight at the end finish).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Requests from a JSONL file: {"arrival": s, "prompt": "…" or "prompt_tokens": n,
    /// "max_tokens": n} per line.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
    /// Prompt tokens per request (default: uniform 64–256).
    #[arg(long, value_name = "N")]
    prompt_tokens: Option<usize>,
    /// Output tokens per request (default: uniform 16–128).
    #[arg(long, value_name = "N")]
    output_tokens: Option<usize>,
    /// Run a saturation curve: concurrency 1, 2, 4, … up to --concurrency, or a
    /// quarter, half, three quarters and all of --rate.
    #[arg(long)]
    sweep: bool,
    /// Goodput's SLO: time to first token, in milliseconds.
    #[arg(long, default_value_t = 2000.0)]
    slo_ttft_ms: f64,
    /// Goodput's SLO: time per output token, in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    slo_tpot_ms: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Give up on one request after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Also write every level's summary and per-request times as JSON (what the
    /// serving-metrics lab shows).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn load(a: LoadArgs) -> Result<()> {
    anyhow::ensure!(
        a.duration.is_finite() && a.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    if let Some(r) = a.rate {
        anyhow::ensure!(
            r.is_finite() && r > 0.0,
            "--rate must be above 0 requests per second"
        );
    }
    anyhow::ensure!(a.concurrency != Some(0), "--concurrency must be at least 1");
    anyhow::ensure!(
        a.timeout.is_finite() && a.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let url = lav_load::base_url(&a.url)?;
    let requests = match &a.workload {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --workload {}", p.display()))?;
            workload::from_jsonl(&text).with_context(|| format!("--workload {}", p.display()))?
        }
        None => workload::generate(&WorkloadSpec {
            rate: f64::INFINITY,
            count: 1000,
            prompt: a
                .prompt_tokens
                .map_or(Lengths::Uniform { min: 64, max: 256 }, Lengths::Fixed),
            output: a
                .output_tokens
                .map_or(Lengths::Uniform { min: 16, max: 128 }, Lengths::Fixed),
            seed: a.seed,
        }),
    };
    let top = match (a.rate, a.concurrency, &a.workload) {
        (Some(r), _, _) => Load::Rate(r),
        (None, Some(c), _) => Load::Concurrency(c),
        (None, None, Some(_)) => Load::Replay,
        (None, None, None) => Load::Concurrency(1),
    };
    let model = match &a.model_id {
        Some(m) => m.clone(),
        None => lav_load::first_model(&url)?,
    };
    let levels = if a.sweep {
        lav_load::sweep(top)
    } else {
        vec![top]
    };
    let slo = Slo {
        ttft: a.slo_ttft_ms / 1000.0,
        tpot: a.slo_tpot_ms / 1000.0,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(1000 * levels.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {msg}").expect("a valid template"),
        );
        b
    });
    if !a.json {
        println!(
            "lav load: {url}, model `{model}`; SLO TTFT {} ms, TPOT {} ms; measured on this client's clock",
            a.slo_ttft_ms, a.slo_tpot_ms
        );
        println!("{}", header());
    }
    let mut points: Vec<Point> = Vec::new();
    for (k, load) in levels.iter().enumerate() {
        let cfg = LoadConfig {
            url: url.clone(),
            model: model.clone(),
            load: *load,
            duration: a.duration,
            requests: requests.clone(),
            slo,
            seed: a.seed,
            timeout: Duration::from_secs_f64(a.timeout),
        };
        let progress = |f: f64, done: usize| {
            if let Some(b) = &bar {
                b.set_position((k as f64 * 1000.0 + f * 1000.0) as u64);
                b.set_message(format!("{load}: {done} requests done"));
            }
        };
        let p = lav_load::run(&cfg, &progress)?;
        if !a.json {
            if let Some(b) = &bar {
                b.suspend(|| println!("{}", row(&p)));
            } else {
                println!("{}", row(&p));
            }
        }
        points.push(p);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = serde_json::json!({
        "url": url,
        "model": model,
        "slo": slo,
        "clock": "measured (this client)",
        "points": points,
    });
    if let Some(p) = &a.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write --out {}", p.display()))?;
    }
    if a.json {
        println!("{report}");
    } else {
        for p in &points {
            if let Some(e) = &p.first_error {
                println!("{}: {} failed requests; the first: {e}", p.load, p.errors);
            }
        }
    }
    Ok(())
}

fn header() -> String {
    format!(
        "{:<16} {:>5} {:>4} {:>7} {:>6} {:>7}  {:>20}  {:>13}  {:>13}",
        "load",
        "reqs",
        "err",
        "tok/s",
        "req/s",
        "goodput",
        "TTFT p50/p90/p99 ms",
        "TPOT p50/p99",
        "ITL p50/p99"
    )
}

fn row(p: &Point) -> String {
    let s = &p.summary;
    let ms = |x: f64| format!("{:.0}", x * 1000.0);
    format!(
        "{:<16} {:>5} {:>4} {:>7.1} {:>6.2} {:>7.2}  {:>20}  {:>13}  {:>13}",
        p.load.to_string(),
        s.finished,
        p.errors,
        s.throughput_tok_s,
        s.request_rate,
        s.goodput_req_s,
        format!("{}/{}/{}", ms(s.ttft.p50), ms(s.ttft.p90), ms(s.ttft.p99)),
        format!("{}/{}", ms(s.tpot.p50), ms(s.tpot.p99)),
        format!("{}/{}", ms(s.itl.p50), ms(s.itl.p99)),
    )
}
