//! context-engineering: the context is a budget. A long audit (twelve order
//! lookups, then a question about an early one) runs through the runtime's context
//! manager; every view the model is sent is counted per segment with the model's
//! tokenizer against its window. Compaction (summaries written by the model),
//! memory notes in a file and sub-agents with clean windows change whether it
//! overflows, what it costs and whether the model's answer is right. Recorded runs
//! play back; live runs use this machine's model.

use super::{Context, ENDPOINT, Endpoint, RECORDED, driver_names, live_who};
use crate::context_failures::{self, ModeRun};
use crate::long_task::{self, AuditRun, Setup};
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::job::{Job, State as JobState, progress_item};
use lav_lab::{Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::Loader;
use lav_scene::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where the lab finds its recording, under the labs folder.
pub const RECORDING: &str = "data/agents/context-runs.json";

/// Audits saved by `lav bench --context --record`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    pub driver: String,
    pub recorded: String,
    pub runs: Vec<AuditRun>,
}

/// The windows the lab offers: what-ifs below the model's own, and the model's.
pub fn windows(model_window: usize) -> Vec<usize> {
    let mut w: Vec<usize> = [1024, 2048]
        .into_iter()
        .filter(|&w| w < model_window)
        .collect();
    w.push(model_window);
    w
}

/// Every setup the recording holds: each window × compaction × memory × sub-agents,
/// stable prefix first; and the model's window with memory, prefix order flipped.
pub fn setups(model_window: usize) -> Vec<Setup> {
    let mut out = Vec::new();
    for window in windows(model_window) {
        for bits in 0..8u8 {
            out.push(Setup {
                window,
                compaction: bits & 1 != 0,
                memory: bits & 2 != 0,
                subagents: bits & 4 != 0,
                stable_prefix_first: true,
            });
        }
    }
    out.push(Setup {
        window: model_window,
        compaction: false,
        memory: true,
        subagents: false,
        stable_prefix_first: false,
    });
    out
}

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    open_with(ctx, None)
}

/// The lab with an OpenAI-compatible endpoint offered as a driver: it writes the
/// summaries and answers, and its prefix cache's hits are read per view.
pub fn open_with(ctx: &Context, endpoint: Option<Endpoint>) -> Result<Box<dyn Lab>> {
    let path = ctx.dir.join(RECORDING);
    let rec: Recording = serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| {
        LabError::Input(format!(
            "{}: {e}; record it with `lav bench --context --record`",
            path.display()
        ))
    })?)
    .map_err(|e| LabError::Input(format!("{}: {e}", path.display())))?;
    let model_window = rec
        .runs
        .iter()
        .map(|r| r.setup.window)
        .max()
        .ok_or_else(|| LabError::Input(format!("{} holds no run", path.display())))?;
    let names: Vec<String> = windows(model_window)
        .iter()
        .map(|w| window_name(*w, model_window))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let c = Controls {
        driver: Control::choice(
            "driver",
            "Who drives the model",
            &driver_names(&endpoint),
            RECORDED,
        ),
        window: Control::choice("window", "Context window", &names, names[0]),
        compaction: Control::toggle("compaction", "Compaction (model-written summaries)", false),
        memory: Control::toggle("memory", "Memory notes in a file", false),
        subagents: Control::toggle("subagents", "Sub-agents with clean windows", false),
        tick: Control::slider("tick", "Tick", 0.0, 40.0, 1.0, 40.0),
        stable: Control::toggle("stable", "Stable prefix first", true),
        mode: Control::choice(
            "mode",
            "Failure mode",
            &context_failures::MODES.map(|m| m.name),
            context_failures::MODES[0].name,
        ),
    };
    let steps = vec![
        Step::new(
            "budget",
            &[
                &c.driver,
                &c.window,
                &c.compaction,
                &c.memory,
                &c.subagents,
                &c.tick,
            ],
            ContextLab::budget,
        ),
        Step::new("prefix", &[&c.driver, &c.stable], ContextLab::prefix),
        Step::new("failures", &[&c.driver, &c.mode], ContextLab::failures),
    ];
    let failures = context_failures::Recording::load(&ctx.dir).map_err(LabError::Input)?;
    Steps::lab(
        ContextLab {
            c,
            rec,
            model_window,
            loader: ctx.loader.clone(),
            endpoint,
            live: Job::default(),
            failures,
            dir: ctx.dir.clone(),
            live_modes: Job::default(),
        },
        steps,
    )
}

fn window_name(w: usize, model: usize) -> String {
    if w == model {
        format!("{w} (the model's)")
    } else {
        format!("{w} (what-if)")
    }
}

struct Controls {
    driver: Control,
    window: Control,
    compaction: Control,
    memory: Control,
    subagents: Control,
    tick: Control,
    stable: Control,
    mode: Control,
}

struct ContextLab {
    c: Controls,
    rec: Recording,
    model_window: usize,
    loader: Arc<dyn Loader>,
    endpoint: Option<Endpoint>,
    /// Live audits by (driver, setup).
    live: Job<(String, Setup), AuditRun>,
    failures: context_failures::Recording,
    dir: std::path::PathBuf,
    /// A mode's failing and fixed runs, live, by mode.
    /// A mode's failing and fixed runs, live, by (driver, mode).
    live_modes: Job<(String, String), Vec<ModeRun>>,
}

impl LabState for ContextLab {
    fn busy(&self) -> bool {
        self.live.busy() || self.live_modes.busy()
    }
}

impl ContextLab {
    fn setup(&self, v: &Values, stable: bool) -> Setup {
        let w = v.text(&self.c.window);
        let window = windows(self.model_window)
            .into_iter()
            .find(|x| window_name(*x, self.model_window) == w)
            .unwrap_or(self.model_window);
        Setup {
            window,
            compaction: v.flag(&self.c.compaction),
            memory: v.flag(&self.c.memory),
            subagents: v.flag(&self.c.subagents),
            stable_prefix_first: stable,
        }
    }

    /// The audit under `setup`: recorded, or run live in the background.
    fn audit(
        &mut self,
        v: &Values,
        setup: Setup,
    ) -> Result<std::result::Result<(AuditRun, Provenance), Item>> {
        if v.text(&self.c.driver) == RECORDED {
            let r = self
                .rec
                .runs
                .iter()
                .find(|r| r.setup == setup)
                .cloned()
                .ok_or_else(|| {
                    LabError::Input("this setup is not in the recording: run it live".into())
                })?;
            let prov = super::recorded_prov(&self.rec.driver, &self.rec.recorded);
            return Ok(Ok((r, prov)));
        }
        let loader = self.loader.clone();
        let driver = v.text(&self.c.driver).to_string();
        let endpoint = self.endpoint.clone().filter(|_| driver == ENDPOINT);
        let state = self.live.get(&(driver.clone(), setup), move |p| {
            p.set(
                0,
                1,
                "the audit, with the model writing summaries and the answer",
            );
            let tok = loader.tokenizer().lab()?;
            match endpoint {
                Some(e) => long_task::audit_endpoint(setup, &e.url, &e.model, tok),
                None => {
                    let model = loader.model().lab()?;
                    let trie = Arc::new(lav_local::vocab_trie(&tok));
                    long_task::audit_local(setup, model, tok, trie, &loader.model_name())
                }
            }
            .map_err(LabError::Input)
        })?;
        match state {
            JobState::Running(p) => Ok(Err(progress_item("progress", "Running the audit", p))),
            JobState::Ready(r) => Ok(Ok((
                r.clone(),
                Provenance::model(format!(
                    "{}, run now; tokens counted by {}'s tokenizer",
                    live_who(&self.loader, &self.endpoint, &driver),
                    self.loader.model_name()
                )),
            ))),
        }
    }

    fn budget(&mut self, v: &Values) -> Result<Scene> {
        let setup = self.setup(v, true);
        let (run, prov) = match self.audit(v, setup)? {
            Ok(x) => x,
            Err(item) => return Ok(Scene::new().with(item)),
        };
        let names = ["system", "tools", "scratch", "history", "retrieved"];
        let roles = [
            Role::Norm,
            Role::Weight,
            Role::Head,
            Role::Token,
            Role::Channel,
        ];
        // Stacked: each series is the running sum up to its segment.
        let mut series: Vec<Series> = names
            .iter()
            .zip(roles)
            .map(|(n, role)| Series {
                name: n.to_string(),
                points: Vec::new(),
                line: true,
                role,
            })
            .collect();
        for (i, view) in run.views.iter().enumerate() {
            let mut sum = 0.0;
            for (k, (_, t)) in view.budget.segments().iter().enumerate() {
                sum += *t as f64;
                series[k].points.push((i as f64 + 1.0, sum));
            }
        }
        // A segment that stays empty would draw on top of the one below it.
        let used: Vec<bool> = (0..names.len())
            .map(|k| run.views.iter().any(|v| v.budget.segments()[k].1 > 0))
            .collect();
        let mut series: Vec<Series> = series
            .into_iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(s, _)| s)
            .collect();
        let limit = run.views.first().map_or(0, |v| v.budget.limit());
        let last = run.views.len() as f64;
        series.push(Series {
            name: "limit (window − reply reserve)".into(),
            points: vec![(1.0, limit as f64), (last.max(1.0), limit as f64)],
            line: true,
            role: Role::WhatIf,
        });
        let tick = v.usize(&self.c.tick).clamp(1, run.views.len().max(1));
        let mut scene = Scene::new().with(Item::new(
            "stack",
            "Tokens the model is sent each tick, by segment (stacked)",
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "tick".into(),
                y_label: "tokens".into(),
                x_log: false,
                y_log: false,
                series,
            }),
        ));
        if let Some(view) = run.views.get(tick - 1) {
            scene.push(bars(
                "segments",
                &format!(
                    "Tick {tick}: {} of {} tokens",
                    view.budget.total(),
                    view.budget.limit()
                ),
                prov.clone(),
                "tokens",
                view.budget
                    .segments()
                    .iter()
                    .zip(roles)
                    .map(|((n, t), role)| bar(*n, *t as f64, role))
                    .collect(),
            ));
        }
        let status = match run.stop {
            lav_agent::Stop::ContextFull => {
                let b = run.views.last().map(|v| v.budget).unwrap_or_default();
                format!(
                    "OVERFLOW at tick {}: the view needs {} tokens, the window leaves {}; the run stopped with no answer.",
                    run.views.len(),
                    b.total(),
                    b.limit()
                )
            }
            _ => format!(
                "Fits: {} ticks, peak {} of {} tokens. Answer: {}",
                run.ticks,
                run.views
                    .iter()
                    .map(|v| v.budget.total())
                    .max()
                    .unwrap_or(0),
                limit,
                run.answer.as_deref().unwrap_or("(none)")
            ),
        };
        scene.push(text("status", "What happened", prov.clone(), status));
        let compactions = run.views.iter().filter(|v| v.compacted).count();
        scene.push(table(
            "outcome",
            "The run",
            prov,
            &["measure", "value"],
            vec![
                vec!["ticks".into(), run.ticks.to_string()],
                vec![
                    "tokens sent over the run (every view, as an API bills them)".into(),
                    run.views
                        .iter()
                        .map(|v| v.budget.total())
                        .sum::<usize>()
                        .to_string(),
                ],
                vec!["compactions".into(), compactions.to_string()],
                vec![
                    "model input tokens (the summaries and the answer)".into(),
                    run.usage.input_tokens.to_string(),
                ],
                vec![
                    "model output tokens".into(),
                    run.usage.output_tokens.to_string(),
                ],
                vec![
                    "sub-agents' model tokens (scripted clerks: none)".into(),
                    (run.sub_usage.input_tokens + run.sub_usage.output_tokens).to_string(),
                ],
                vec![
                    "checker".into(),
                    if run.passed {
                        format!("right: names {}", run.expected)
                    } else {
                        format!("wrong: should name {}", run.expected)
                    },
                ],
                vec!["wall s".into(), sig(run.seconds)],
            ],
        ));
        Ok(scene)
    }

    /// The failing and the fixed run of `mode`: recorded, or live.
    fn mode_runs(
        &mut self,
        v: &Values,
        mode: &'static context_failures::Mode,
    ) -> Result<std::result::Result<(Vec<ModeRun>, Provenance), Item>> {
        if v.text(&self.c.driver) == RECORDED {
            let runs = [false, true]
                .iter()
                .filter_map(|f| self.failures.get(mode.name, *f).cloned())
                .collect();
            let prov = super::recorded_prov(&self.failures.driver, &self.failures.recorded);
            return Ok(Ok((runs, prov)));
        }
        let which = v.text(&self.c.driver).to_string();
        let key = (which.clone(), mode.name.to_string());
        let dir = self.dir.clone();
        let work = move |shop: crate::workflows::Shop, p: &lav_lab::job::Progress| {
            let full = crate::capstone::FullShop::new(shop, &dir).map_err(LabError::Input)?;
            let mut out = Vec::new();
            for (i, fixed) in [false, true].into_iter().enumerate() {
                p.check()?;
                p.set(
                    i as u64,
                    2,
                    if fixed {
                        "the fixed context"
                    } else {
                        "the failing context"
                    },
                );
                out.push(context_failures::run(&full, mode, fixed).map_err(LabError::Input)?);
            }
            Ok(out)
        };
        super::live_run(
            &mut self.live_modes,
            key,
            (&self.loader, &self.endpoint, &which),
            "Running both contexts",
            work,
        )
    }

    fn failures(&mut self, v: &Values) -> Result<Scene> {
        let mode = context_failures::mode(v.text(&self.c.mode))
            .ok_or_else(|| LabError::Input(format!("no failure mode {}", v.text(&self.c.mode))))?;
        let (runs, prov) = match self.mode_runs(v, mode)? {
            Ok(x) => x,
            Err(item) => return Ok(Scene::new().with(item)),
        };
        let scripted = Provenance::scripted("the context the lab built for this mode");
        let mut scene = Scene::new().with(text(
            "mode",
            &format!("Context {}", mode.name),
            scripted.clone(),
            format!(
                "What goes wrong: {}. The fix: {}. The question: \u{201c}{}\u{201d} (the answer: {}).",
                mode.what, mode.fix, mode.question, mode.answer
            ),
        ));
        let mut rows = Vec::new();
        for r in &runs {
            let setup = if r.fixed { "fixed" } else { "failing" };
            // Past the system prompt: the lab's context, then the model's own turns.
            for m in r.run.state.transcript.iter().skip(1) {
                let said = if m.tool_calls.is_empty() {
                    m.content.clone()
                } else {
                    m.tool_calls
                        .iter()
                        .map(|c| format!("called {} {}", c.name, c.arguments))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                if said.trim().is_empty() {
                    continue;
                }
                rows.push(vec![
                    setup.to_string(),
                    format!("{:?}", m.role).to_lowercase(),
                    crate::agent_trace::clip(&said.replace('\n', " / "), 150),
                ]);
            }
            if !r.tools.is_empty() {
                rows.push(vec![setup.to_string(), "tools".into(), r.tools.join(", ")]);
            }
        }
        scene.push(table(
            "contexts",
            "Both contexts as the model saw them, then what it did",
            scripted,
            &["context", "who", "text"],
            rows,
        ));
        scene.push(table(
            "runs",
            "The model's answer in each context",
            prov,
            &["context", "answer", "check", "tokens in", "tools called"],
            runs.iter()
                .map(|r| {
                    vec![
                        if r.fixed { "fixed" } else { "failing" }.into(),
                        crate::agent_trace::clip(&r.answer, 90),
                        if r.passed {
                            "right".into()
                        } else {
                            format!("wrong: {}", r.reason)
                        },
                        r.run.state.usage.input_tokens.to_string(),
                        r.run
                            .state
                            .transcript
                            .iter()
                            .flat_map(|m| &m.tool_calls)
                            .map(|c| format!("{} {}", c.name, c.arguments))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]
                })
                .collect(),
        ));
        let rec = &self.failures;
        scene.push(table(
            "modes",
            "All four modes, recorded",
            super::recorded_prov(&rec.driver, &rec.recorded),
            &["mode", "failing context", "fixed context"],
            context_failures::MODES
                .iter()
                .map(|m| {
                    let verdict = |f: bool| {
                        rec.get(m.name, f).map_or("not recorded".to_string(), |r| {
                            if r.passed { "right" } else { "wrong" }.to_string()
                        })
                    };
                    vec![m.name.to_string(), verdict(false), verdict(true)]
                })
                .collect(),
        ));
        Ok(scene)
    }

    fn prefix(&mut self, v: &Values) -> Result<Scene> {
        let stable = v.flag(&self.c.stable);
        let setup = Setup {
            window: self.model_window,
            compaction: false,
            memory: true,
            subagents: false,
            stable_prefix_first: stable,
        };
        let (run, prov) = match self.audit(v, setup)? {
            Ok(x) => x,
            Err(item) => return Ok(Scene::new().with(item)),
        };
        let reuse = Provenance::computed(format!(
            "tokens each prompt shares from its start with the one before, by the model's tokenizer ({})",
            prov.label()
        ));
        let total: usize = run.shared_prefix.iter().sum();
        let prompts: usize = run.prompt_tokens.iter().sum();
        let mut scene = Scene::new();
        // Against an endpoint every view was also sent to it: what its prefix cache
        // served is the engine's own count, beside the tokenizer's upper bound.
        if !run.engine_cached.is_empty() {
            let served: u64 = run.engine_cached.iter().flatten().sum();
            let counted: u64 = run.engine_prompt.iter().sum();
            scene.push(bars(
                "engine",
                &format!(
                    "Prefix-cache hits the endpoint reported per view: {served} of {counted} prompt tokens"
                ),
                prov.clone(),
                "tokens",
                run.engine_cached
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        bar(
                            format!("tick {}", i + 1),
                            n.unwrap_or(0) as f64,
                            Role::Token,
                        )
                    })
                    .collect(),
            ));
        }
        Ok(scene
            .with(bars(
                "shared",
                &format!(
                    "Reusable prefix per tick ({}): {} of {} prompt tokens",
                    if stable { "stable parts first" } else { "notes first" },
                    total,
                    prompts
                ),
                reuse.clone(),
                "tokens",
                run.shared_prefix
                    .iter()
                    .enumerate()
                    .map(|(i, n)| bar(format!("tick {}", i + 1), *n as f64, Role::Channel))
                    .collect(),
            ))
            .with(text(
                "backend",
                "Prefix-cache hits reported by the backend",
                prov,
                if !run.engine_cached.is_empty() {
                    if run.engine_cached.iter().all(Option::is_none) {
                        "unavailable: the endpoint's replies carry no usage.prompt_tokens_details.cached_tokens".into()
                    } else {
                        "each view was also sent to the endpoint for one token; the chart of hits per view shows the cached_tokens it reported (in steps of whole KV blocks, as an engine caches them), beside the tokenizer's count of what could be shared".into()
                    }
                } else {
                    match run.views.iter().filter_map(|v| v.cached).max() {
                        Some(c) => format!("the backend reported up to {c} cached input tokens on a call"),
                        None => "unavailable: the scripted moves make no model call until the answer; drive it with an endpoint (`lav lab context-engineering --llm-url URL`, e.g. `lav serve`) to read an engine's prefix-cache hits per view".into(),
                    }
                },
            )))
    }
}
