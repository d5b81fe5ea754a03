//! serving-metrics: every metric computed from per-request timestamps the engine
//! recorded while serving the model under a seeded load on this machine: the
//! lifecycle of a request (with the curriculum's worked example run through the same
//! code), P50/P99 and goodput against SLO lines as the load rises (measured here,
//! and simulated on a GPU row), the percentiles themselves, and Little's law checked
//! against the in-flight count. A `lav load --out` file can be shown beside them.

use super::{Context, lifecycle, ms, pct, prompt_text};
use crate::trace::{self, Trace};
use lav_engine::metrics::{self, RequestTimes, Slo, Summary};
use lav_engine::scheduler::SchedulerConfig;
use lav_engine::sim::{self, SimRun};
use lav_engine::workload::{self, Lengths, WorkloadSpec};
use lav_gpusim::step_cost::StepModel;
use lav_gpusim::{Gpu, ModelConfig};
use lav_lab::items::{ModelSource, bar, bars, sig, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{
    Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values, published,
};
use lav_model::{Llama, Tokenizer};
use lav_scene::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Requests in a measured run, and in a simulated one.
const MEASURED_REQUESTS: usize = 12;
const SIMULATED_REQUESTS: usize = 300;
/// The GPU load slider's range, requests per second (one simulated run each).
const SIM_RATES: std::ops::RangeInclusive<u32> = 1..=64;

/// The simulated runs at every rate of [`SIM_RATES`], with their TTFT percentiles.
struct SimCurve {
    label: String,
    runs: Vec<SimRun>,
    /// (rate, P50, P99) of TTFT, in seconds.
    ttft: Vec<(f64, f64, f64)>,
}

impl SimCurve {
    fn at(&self, rate: f64) -> &SimRun {
        let i =
            (rate.round() as u32).clamp(*SIM_RATES.start(), *SIM_RATES.end()) - SIM_RATES.start();
        &self.runs[i as usize]
    }
}

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let gpus = lav_gpusim::gpus(&ctx.dir).lab()?;
    let model = lav_gpusim::model_configs(&ctx.dir)
        .lab()?
        .into_iter()
        .find(|m| m.id == "llama-3-8b")
        .ok_or_else(|| LabError::Lesson("labs/data/model-configs.toml has no llama-3-8b".into()))?;
    let names: Vec<&str> = gpus.iter().map(|g| g.name.as_str()).collect();
    let c = Controls {
        request: Control::slider(
            "request",
            "Request",
            0.0,
            (MEASURED_REQUESTS - 1) as f64,
            1.0,
            3.0,
        ),
        rate: Control::slider("rate", "Load on this CPU (requests/s)", 0.5, 12.0, 0.5, 2.0),
        sim_rate: Control::slider(
            "sim_rate",
            "Load on the GPU (requests/s)",
            1.0,
            64.0,
            1.0,
            16.0,
        ),
        gpu: Control::choice("gpu", "GPU (simulated)", &names, "H100 SXM 80GB"),
        ttft: Control::slider("ttft_slo", "TTFT SLO (ms)", 50.0, 2000.0, 50.0, 500.0),
        tpot: Control::slider("tpot_slo", "TPOT SLO (ms)", 10.0, 200.0, 5.0, 100.0),
        file: Control::text("file", "A `lav load --out` file to show", 300, ""),
    };
    let steps = vec![
        Step::new("lifecycle", &[&c.rate, &c.request], Metrics::lifecycle),
        Step::new(
            "load",
            &[&c.rate, &c.sim_rate, &c.gpu, &c.ttft, &c.tpot, &c.file],
            Metrics::load,
        ),
        Step::new("percentiles", &[&c.rate], Metrics::percentiles),
        Step::new("little", &[&c.rate, &c.sim_rate, &c.gpu], Metrics::little),
    ];
    Steps::lab(
        Metrics {
            c,
            text: prompt_text(&ctx.dir)?,
            facts: published::facts(&ctx.dir, "serving-metrics")?,
            tokenizer: ctx.loader.tokenizer().lab()?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            model: ctx.loader.model().lab()?,
            gpus,
            sim_model: model,
            run: Job::default(),
            done: BTreeMap::new(),
            curve: Job::default(),
        },
        steps,
    )
}

struct Controls {
    request: Control,
    rate: Control,
    sim_rate: Control,
    gpu: Control,
    ttft: Control,
    tpot: Control,
    file: Control,
}

struct Metrics {
    c: Controls,
    text: String,
    facts: Vec<published::Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    source: ModelSource,
    gpus: Vec<Gpu>,
    sim_model: ModelConfig,
    /// The measured run at the current rate (in tenths of a request per second).
    run: Job<u32, Trace>,
    /// Every measured run finished so far, by rate, so the curve fills in as the
    /// learner moves the load.
    done: BTreeMap<u32, Trace>,
    /// The simulated runs on a GPU at every rate the slider offers, by GPU name:
    /// tens of milliseconds each, so they run in the background.
    curve: Job<String, SimCurve>,
}

impl LabState for Metrics {
    fn busy(&self) -> bool {
        self.run.busy() || self.curve.busy()
    }
}

/// The curriculum's worked example as timestamps: queued 85 ms, prefill 62 ms, then
/// 7 more tokens over 340 ms.
pub fn worked_example() -> RequestTimes {
    let first = 0.085 + 0.062;
    RequestTimes {
        arrival: 0.0,
        scheduled: Some(0.085),
        tokens: (0..8).map(|i| first + 0.340 * i as f64 / 7.0).collect(),
        finish: Some(first + 0.340),
        prompt_tokens: 0,
    }
}

fn sim_workload(rate: f64) -> Vec<workload::Request> {
    workload::generate(&WorkloadSpec {
        rate,
        count: SIMULATED_REQUESTS,
        prompt: Lengths::Uniform {
            min: 128,
            max: 1024,
        },
        output: Lengths::Uniform { min: 32, max: 256 },
        seed: 3,
    })
}

fn sim_config() -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 2048,
        num_blocks: 8192,
        ..Default::default()
    }
}

/// A `lav load --out` report: the parts the lab shows.
#[derive(serde::Deserialize)]
struct Report {
    url: String,
    #[serde(default)]
    model: String,
    points: Vec<ReportPoint>,
}

#[derive(serde::Deserialize)]
struct ReportPoint {
    load: serde_json::Value,
    summary: Summary,
}

fn read_report(path: &str) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LabError::Input(format!(
            "cannot read {path}: {e}; write one with `lav load --url URL --out FILE`"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        LabError::Input(format!(
            "{path} is not a `lav load --out` report ({e}); write one with `lav load --url URL --out FILE`"
        ))
    })
}

impl Metrics {
    fn engine(&self) -> Provenance {
        Provenance::engine(format!(
            "lav's engine serving {} under a seeded load, timestamps measured on this machine",
            self.source
        ))
    }

    fn slo(&self, v: &Values) -> Slo {
        Slo {
            ttft: v.num(&self.c.ttft) / 1e3,
            tpot: v.num(&self.c.tpot) / 1e3,
        }
    }

    fn gpu(&self, v: &Values) -> Gpu {
        let name = v.text(&self.c.gpu);
        self.gpus
            .iter()
            .find(|g| g.name == name)
            .unwrap_or(&self.gpus[0])
            .clone()
    }

    /// The simulated curve on the chosen GPU (a progress item while it runs).
    fn simulated(&mut self, v: &Values, scene: &mut Scene) -> Result<Option<String>> {
        let g = self.gpu(v);
        let key = g.name.clone();
        let label = format!(
            "{} BF16 on the {} row of the hardware table",
            self.sim_model.name, g.name
        );
        let cost = StepModel::bf16(self.sim_model.clone(), g);
        let job = self.curve.get(&key, move |p| {
            let (mut runs, mut ttft) = (Vec::new(), Vec::new());
            let total = SIM_RATES.clone().count() as u64;
            for r in SIM_RATES {
                p.check()?;
                p.set(u64::from(r), total, format!("simulating {r} requests/s"));
                let run = sim::simulate(&sim_workload(f64::from(r)), sim_config(), &cost).lab()?;
                let t: Vec<f64> = run.requests.iter().filter_map(RequestTimes::ttft).collect();
                let pc = metrics::Percentiles::of(&t);
                ttft.push((f64::from(r), pc.p50, pc.p99));
                runs.push(run);
            }
            Ok(SimCurve { label, runs, ttft })
        })?;
        if let State::Running(p) = job {
            scene.push(progress_item(
                "sim-progress",
                "Simulating the GPU at every load",
                p,
            ));
            return Ok(None);
        }
        Ok(Some(key))
    }

    /// The measured run at the chosen rate (a progress item while it runs).
    fn measured(&mut self, v: &Values, scene: &mut Scene) -> Result<Option<u32>> {
        let rate = v.num(&self.c.rate);
        let key = (rate * 10.0).round() as u32;
        if self.done.contains_key(&key) {
            return Ok(Some(key));
        }
        let reqs = trace::arrivals(
            &self.tokenizer,
            &self.text,
            rate,
            MEASURED_REQUESTS,
            Lengths::Uniform { min: 16, max: 64 },
            Lengths::Uniform { min: 8, max: 32 },
            21,
        )?;
        let model = self.model.clone();
        let cfg = SchedulerConfig {
            max_num_seqs: 8,
            num_blocks: 64,
            ..Default::default()
        };
        match self
            .run
            .get(&key, move |p| trace::serve(&model, &reqs, cfg, p))?
        {
            State::Running(p) => {
                scene.push(progress_item(
                    "progress",
                    &format!("Serving {MEASURED_REQUESTS} requests at {rate} per second"),
                    p,
                ));
                Ok(None)
            }
            State::Ready(t) => {
                self.done.insert(key, t.clone());
                Ok(Some(key))
            }
        }
    }

    fn lifecycle(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let w = worked_example();
        scene.push(table(
            "worked",
            "Worked example: queue 85 ms, prefill 62 ms, decode 340 ms over 8 tokens",
            Provenance::computed("lav's metrics code on the example's timestamps".to_string()),
            &["metric", "formula", "value"],
            vec![
                vec![
                    "TTFT".into(),
                    "queue + prefill".into(),
                    ms(w.ttft().unwrap_or(0.0)),
                ],
                vec![
                    "TPOT".into(),
                    "(E2E − TTFT) / (N − 1)".into(),
                    ms(w.tpot().unwrap_or(0.0)),
                ],
                vec![
                    "E2E".into(),
                    "finish − arrival".into(),
                    ms(w.e2e().unwrap_or(0.0)),
                ],
            ],
        ));
        let Some(key) = self.measured(v, &mut scene)? else {
            return Ok(scene);
        };
        let t = &self.done[&key];
        let i = v.usize(&self.c.request).min(t.times.len() - 1);
        let r = &t.times[i];
        scene.push(Item::new(
            "timeline",
            format!(
                "{MEASURED_REQUESTS} requests at {:.1}/s: queue | prefill | decode (ms)",
                key as f64 / 10.0
            ),
            self.engine(),
            Primitive::Timeline(Timeline {
                lanes: (0..t.times.len()).map(|k| format!("req {k}")).collect(),
                spans: t
                    .times
                    .iter()
                    .enumerate()
                    .flat_map(|(k, x)| {
                        let mut s = lifecycle(k, x);
                        if k == i {
                            s.iter_mut().for_each(|s| s.role = Role::Highlight);
                        }
                        s
                    })
                    .collect(),
                unit: "ms".into(),
            }),
        ));
        let f = |x: Option<f64>| x.map_or("–".to_string(), ms);
        scene.push(table(
            "request",
            &format!("Request {i}, from its own timestamps"),
            self.engine(),
            &["", "value"],
            vec![
                vec![
                    "prompt / output tokens".into(),
                    format!("{} / {}", r.prompt_tokens, r.tokens.len()),
                ],
                vec!["queue".into(), f(r.queue())],
                vec![
                    "prefill (scheduled → first token)".into(),
                    f(r.scheduled.zip(r.tokens.first()).map(|(s, t)| t - s)),
                ],
                vec!["TTFT".into(), f(r.ttft())],
                vec!["TPOT".into(), f(r.tpot())],
                vec!["E2E".into(), f(r.e2e())],
            ],
        ));
        Ok(scene)
    }

    fn load(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let slo = self.slo(v);
        let sim_rate = v.num(&self.c.sim_rate);
        let row = |name: &str, s: &Summary| {
            vec![
                name.to_string(),
                ms(s.ttft.p50),
                ms(s.ttft.p99),
                ms(s.tpot.p50),
                ms(s.tpot.p99),
                format!("{:.1}", s.throughput_tok_s),
                format!("{:.2}/s ({})", s.goodput_req_s, pct(s.slo_attainment)),
            ]
        };
        let mut rows = Vec::new();
        if let Some(key) = self.simulated(v, &mut scene)? {
            let c = self.curve.ready(&key).expect("ready");
            let here = metrics::summarize(&c.at(sim_rate).requests, slo);
            let (x0, x1) = (f64::from(*SIM_RATES.start()), f64::from(*SIM_RATES.end()));
            let line = |name: &str, f: fn(&(f64, f64, f64)) -> f64, role| Series {
                name: name.into(),
                points: c.ttft.iter().map(|t| (t.0, f(t) * 1e3)).collect(),
                line: true,
                role,
            };
            scene.push(Item::new(
                "simulated",
                format!("TTFT as the load rises on {} (simulated)", self.gpu(v).name),
                Provenance::simulated(c.label.clone()),
                Primitive::Plot(Plot {
                    x_label: "requests/s".into(),
                    y_label: "TTFT (ms)".into(),
                    x_log: true,
                    y_log: true,
                    series: vec![
                        line("P50", |t| t.1, Role::Token),
                        line("P99", |t| t.2, Role::Attention),
                        Series {
                            name: format!("SLO {:.0} ms", slo.ttft * 1e3),
                            points: vec![(x0, slo.ttft * 1e3), (x1, slo.ttft * 1e3)],
                            line: true,
                            role: Role::WhatIf,
                        },
                        Series {
                            name: format!("{sim_rate}/s"),
                            points: vec![(sim_rate, here.ttft.p99 * 1e3)],
                            line: false,
                            role: Role::Highlight,
                        },
                    ],
                }),
            ));
            rows.push(row(&format!("GPU, {sim_rate}/s (simulated)"), &here));
        }
        let measured = self.measured(v, &mut scene)?;
        if measured.is_some() {
            for (k, t) in &self.done {
                rows.push(row(
                    &format!("this CPU, {:.1}/s (measured)", *k as f64 / 10.0),
                    &metrics::summarize(&t.times, slo),
                ));
            }
        }
        scene.push(table(
            "percentiles",
            &format!(
                "Against the SLO (TTFT ≤ {:.0} ms, TPOT ≤ {:.0} ms); every load tried so far",
                slo.ttft * 1e3,
                slo.tpot * 1e3
            ),
            self.engine(),
            &[
                "run", "TTFT P50", "TTFT P99", "TPOT P50", "TPOT P99", "tok/s", "goodput",
            ],
            rows,
        ));
        if let Some(k) = measured {
            let s = metrics::summarize(&self.done[&k].times, slo);
            scene.push(bars(
                "goodput",
                &format!(
                    "This CPU at {:.1}/s: requests that met the SLO",
                    k as f64 / 10.0
                ),
                self.engine(),
                "requests/s",
                vec![
                    bar("served", s.request_rate, Role::Muted),
                    bar("within the SLO (goodput)", s.goodput_req_s, Role::Highlight),
                ],
            ));
        }
        let file = v.text(&self.c.file).trim().to_string();
        if !file.is_empty() {
            let r = read_report(&file)?;
            scene.push(table(
                "file",
                &format!("{file}: `lav load` against {} ({})", r.url, r.model),
                Provenance::engine(format!(
                    "lav load against {}, measured by the client",
                    r.url
                )),
                &[
                    "load", "TTFT P50", "TTFT P99", "TPOT P50", "tok/s", "goodput",
                ],
                r.points
                    .iter()
                    .map(|p| {
                        vec![
                            p.load.to_string(),
                            ms(p.summary.ttft.p50),
                            ms(p.summary.ttft.p99),
                            ms(p.summary.tpot.p50),
                            format!("{:.1}", p.summary.throughput_tok_s),
                            format!("{:.2}/s", p.summary.goodput_req_s),
                        ]
                    })
                    .collect(),
            ));
        } else {
            scene.push(published::table(
                "published",
                "A threshold, as published",
                &self.facts,
            ));
        }
        Ok(scene)
    }

    fn percentiles(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(k) = self.measured(v, &mut scene)? else {
            return Ok(scene);
        };
        let t = &self.done[&k];
        let mut ttfts: Vec<(usize, f64)> = t
            .times
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.ttft().map(|x| (i, x)))
            .collect();
        ttfts.sort_by(|a, b| a.1.total_cmp(&b.1));
        let s = metrics::summarize(
            &t.times,
            Slo {
                ttft: f64::INFINITY,
                tpot: f64::INFINITY,
            },
        );
        scene.push(bars(
            "sorted",
            &format!(
                "Every request's TTFT at {:.1}/s, sorted: the tail is the P99",
                k as f64 / 10.0
            ),
            self.engine(),
            "ms",
            ttfts
                .iter()
                .map(|(i, x)| {
                    let role = if *x >= s.ttft.p90 {
                        Role::Attention
                    } else {
                        Role::Token
                    };
                    bar(format!("req {i}"), x * 1e3, role)
                })
                .collect(),
        ));
        let p = |x: &metrics::Percentiles| {
            vec![
                ms(x.mean),
                ms(x.p50),
                ms(x.p90),
                ms(x.p99),
                x.count.to_string(),
            ]
        };
        let mut rows = Vec::new();
        for (name, x) in [
            ("TTFT (per request)", &s.ttft),
            ("TPOT (per request)", &s.tpot),
            ("ITL (per token gap)", &s.itl),
            ("E2E (per request)", &s.e2e),
        ] {
            let mut r = vec![name.to_string()];
            r.extend(p(x));
            rows.push(r);
        }
        scene.push(table(
            "summary",
            "Mean and percentiles (linear interpolation, as numpy)",
            self.engine(),
            &["metric", "mean", "P50", "P90", "P99", "count"],
            rows,
        ));
        scene.push(text(
            "weighting",
            "Request-weighted vs token-weighted",
            Provenance::computed("from the same timestamps".to_string()),
            format!(
                "Mean TPOT {} weighs every request once; mean ITL {} weighs every gap between tokens once, so long answers count more. A mean hides the tail: the slowest request here waited {} for its first token, against a median of {}.",
                ms(s.tpot.mean),
                ms(s.itl.mean),
                ms(ttfts.last().map_or(0.0, |x| x.1)),
                ms(s.ttft.p50)
            ),
        ));
        Ok(scene)
    }

    fn little(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let sim_rate = v.num(&self.c.sim_rate);
        let Some(key) = self.simulated(v, &mut scene)? else {
            return Ok(scene);
        };
        let c = self.curve.ready(&key).expect("ready");
        let (run, label) = (c.at(sim_rate), c.label.clone());
        let reqs = &run.requests;
        let from = reqs.iter().map(|r| r.arrival).fold(f64::INFINITY, f64::min);
        let to = reqs.iter().filter_map(|r| r.finish).fold(0.0, f64::max);
        let lambda = reqs.len() as f64 / (to - from);
        let w = reqs.iter().filter_map(|r| r.e2e()).sum::<f64>() / reqs.len() as f64;
        let counted = run.mean_in_flight_counted(from, to);
        let cols = [
            "run",
            "λ (req/s)",
            "W (mean E2E)",
            "λ × W",
            "L counted",
            "difference",
        ];
        scene.push(table(
            "law",
            "Little's law: in flight L = arrival rate λ × time inside W",
            Provenance::simulated(label),
            &cols,
            vec![vec![
                format!("GPU at {sim_rate}/s, L from the scheduler's queues"),
                sig(lambda),
                ms(w),
                sig(lambda * w),
                sig(counted),
                pct((counted - lambda * w).abs() / (lambda * w)),
            ]],
        ));
        if let Some(k) = self.measured(v, &mut scene)? {
            let t = &self.done[&k].times;
            let from = t.iter().map(|r| r.arrival).fold(f64::INFINITY, f64::min);
            let to = t.iter().filter_map(|r| r.finish).fold(0.0, f64::max);
            let lambda = t.len() as f64 / (to - from);
            let w = t.iter().filter_map(|r| r.e2e()).sum::<f64>() / t.len() as f64;
            let l = metrics::mean_in_flight(t, from, to);
            scene.push(table(
                "law-measured",
                "The same on this CPU",
                self.engine(),
                &cols,
                vec![vec![
                    format!(
                        "this CPU at {:.1}/s, L from the timestamps",
                        k as f64 / 10.0
                    ),
                    sig(lambda),
                    ms(w),
                    sig(lambda * w),
                    sig(l),
                    pct((l - lambda * w).abs() / (lambda * w)),
                ]],
            ));
        }
        scene.push(table(
            "example",
            "The curriculum's example",
            Provenance::computed("L = λW".to_string()),
            &["λ", "W", "L"],
            vec![vec![
                "20 req/s".into(),
                "6 s".into(),
                format!("{:.0} requests in flight", 20.0 * 6.0),
            ]],
        ));
        Ok(scene)
    }
}
