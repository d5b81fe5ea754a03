//! workflow-patterns: one customer question through a single agent and each of the
//! five workflow patterns (chain with a gate, routing, parallel voting,
//! orchestrator–workers, evaluator–optimizer), built from the runtime's workflow
//! primitives over the real calculator and orders tools. Calls, tokens and wall time
//! come from the run's own trace; accuracy from the labelled tasks' deterministic
//! checker. The model is driven live (SmolLM2 under the tool grammar, or an
//! OpenAI-compatible endpoint) or played back from a recording, and every item says
//! which.

use super::{Context, Endpoint, RECORDED, driver_names};
use crate::agent_trace::clip;
use crate::workflows::{self, PatternRun, Recording, Shop};
use lav_agent::tasks::Task;
use lav_agent::workflow::{Node, Shape};
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::job::Job;
use lav_lab::{Control, Lab, LabError, LabState, Result, Step, Steps, Values};
use lav_model::Loader;
use lav_scene::*;
use std::sync::Arc;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    open_with(ctx, None)
}

/// Opens the lab with `endpoint` offered as a third driver.
pub fn open_with(ctx: &Context, endpoint: Option<Endpoint>) -> Result<Box<dyn Lab>> {
    let rec = Recording::load(&ctx.dir).map_err(LabError::Input)?;
    let tasks = workflows::labelled(&ctx.dir).map_err(LabError::Input)?;
    let recorded: Vec<&str> = tasks
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| rec.runs.iter().any(|r| r.task == *id))
        .collect();
    let first = *recorded
        .first()
        .ok_or_else(|| LabError::Input(format!("{} holds no run", workflows::RECORDING)))?;
    let names: Vec<&str> = workflows::patterns().iter().map(|(n, _)| *n).collect();
    let drivers = driver_names(&endpoint);
    let c = Controls {
        driver: Control::choice("driver", "Who drives the model", &drivers, RECORDED),
        task: Control::choice("task", "Task (from the labelled set)", &recorded, first),
        pattern: Control::choice("pattern", "Pattern", &names, names[1]),
    };
    let steps = vec![
        Step::new("compare", &[&c.driver, &c.task], WorkflowLab::compare),
        Step::new(
            "waterfall",
            &[&c.driver, &c.task, &c.pattern],
            WorkflowLab::waterfall,
        ),
        Step::new("accuracy", &[], WorkflowLab::accuracy),
    ];
    Steps::lab(
        WorkflowLab {
            c,
            rec,
            tasks,
            facts: lav_lab::published::facts(&ctx.dir, "workflow-patterns")?,
            loader: ctx.loader.clone(),
            endpoint,
            live: Job::default(),
        },
        steps,
    )
}

struct Controls {
    driver: Control,
    task: Control,
    pattern: Control,
}

struct WorkflowLab {
    c: Controls,
    rec: Recording,
    tasks: Vec<Task>,
    facts: Vec<lav_lab::published::Fact>,
    loader: Arc<dyn Loader>,
    endpoint: Option<Endpoint>,
    /// Every pattern on one task, live, by (driver, task).
    live: Job<(String, String), Vec<PatternRun>>,
}

impl LabState for WorkflowLab {
    fn busy(&self) -> bool {
        self.live.busy()
    }
}

/// Runs of one task or of the whole set, or the progress of the job making them.
enum Runs {
    Ready(Vec<PatternRun>, Provenance),
    Running(Item),
}

impl WorkflowLab {
    fn recorded_prov(&self) -> Provenance {
        super::recorded_prov(&self.rec.driver, &self.rec.recorded)
    }

    /// Every pattern's run on `task`.
    fn task_runs(&mut self, v: &Values, task: &str) -> Result<Runs> {
        let which = v.text(&self.c.driver).to_string();
        if which == RECORDED {
            let prov = self.recorded_prov();
            let runs = self
                .rec
                .runs
                .iter()
                .filter(|r| r.task == task)
                .cloned()
                .collect();
            return Ok(Runs::Ready(runs, prov));
        }
        let t = self
            .tasks
            .iter()
            .find(|t| t.id == task)
            .cloned()
            .ok_or_else(|| LabError::Input(format!("no labelled task {task}")))?;
        let key = (which.clone(), task.to_string());
        let work = move |shop: Shop, p: &lav_lab::job::Progress| {
            let all = workflows::patterns();
            let mut out = Vec::new();
            for (i, (name, flow)) in all.iter().enumerate() {
                p.check()?;
                p.set(i as u64, all.len() as u64, format!("{name}…"));
                out.push(PatternRun::run(&shop, &t, name, flow).map_err(LabError::Input)?);
            }
            Ok(out)
        };
        match super::live_run(
            &mut self.live,
            key,
            (&self.loader, &self.endpoint, &which),
            "Running every pattern on the task",
            work,
        )? {
            Err(progress) => Ok(Runs::Running(progress)),
            Ok((runs, prov)) => Ok(Runs::Ready(runs, prov)),
        }
    }

    fn compare(&mut self, v: &Values) -> Result<Scene> {
        let task = v.text(&self.c.task).to_string();
        let prompt = self
            .tasks
            .iter()
            .find(|t| t.id == task)
            .map(|t| t.prompt.clone())
            .unwrap_or_default();
        let (runs, prov) = match self.task_runs(v, &task)? {
            Runs::Running(item) => return Ok(Scene::new().with(item)),
            Runs::Ready(r, p) => (r, p),
        };
        let mut scene = Scene::new().with(text(
            "task",
            "The task",
            prov.clone(),
            format!(
                "{task}: \u{201c}{prompt}\u{201d}. Driven by: {}. The same question goes through a single agent and each pattern; the checker (the labelled answer, the right tool with a good result) says whether it was answered.",
                prov.label()
            ),
        ));
        let rows = runs
            .iter()
            .map(|r| {
                let t = &r.outcome.trace;
                let (i, o) = t.tokens();
                vec![
                    r.pattern.clone(),
                    t.model_calls().to_string(),
                    t.tool_calls().to_string(),
                    format!("{i} / {o}"),
                    sig(t.seconds()),
                    sig(t.serial_seconds()),
                    sig(t.rule_seconds()),
                    clip(&r.outcome.output.text, 60),
                    if r.passed {
                        "pass".into()
                    } else {
                        format!("fails: {}", clip(&r.reason, 50))
                    },
                ]
            })
            .collect();
        scene.push(table(
            "patterns",
            "Each pattern on the task: cost, time and the checker's verdict",
            prov.clone(),
            &[
                "pattern",
                "model calls",
                "tool calls",
                "tokens in / out",
                "wall s",
                "calls end to end s",
                "rule s",
                "answer",
                "checker",
            ],
            rows,
        ));
        scene.push(bars(
            "latency",
            "Wall time per pattern",
            prov,
            "s",
            runs.iter()
                .map(|r| {
                    bar(
                        r.pattern.clone(),
                        r.outcome.trace.seconds(),
                        if r.passed { Role::Channel } else { Role::Muted },
                    )
                })
                .collect(),
        ));
        Ok(scene)
    }

    fn waterfall(&mut self, v: &Values) -> Result<Scene> {
        let task = v.text(&self.c.task).to_string();
        let pattern = v.text(&self.c.pattern).to_string();
        let (runs, prov) = match self.task_runs(v, &task)? {
            Runs::Running(item) => return Ok(Scene::new().with(item)),
            Runs::Ready(r, p) => (r, p),
        };
        let run = runs
            .iter()
            .find(|r| r.pattern == pattern)
            .ok_or_else(|| LabError::Input(format!("no run of {pattern} on {task}")))?;
        let mut lanes = Vec::new();
        let mut spans = Vec::new();
        let mut rows = Vec::new();
        walk(&run.outcome.trace, 0, &mut |n: &Node, depth: usize| {
            let lane = lanes.len();
            lanes.push(format!("{}{}", "  ".repeat(depth), n.label));
            let role = match (n.shape, n.output.ok) {
                (Shape::Stage, true) => Role::Token,
                (Shape::Stage, false) => Role::WhatIf,
                (Shape::Parallel, _) => Role::Channel,
                (Shape::Serial, _) => Role::Residual,
            };
            spans.push(Span {
                lane,
                start: n.start * 1e3,
                end: n.end * 1e3,
                label: if n.note.is_empty() {
                    clip(&n.output.text, 30)
                } else {
                    clip(&n.note, 30)
                },
                role,
            });
            let calls = n.run.as_ref().map_or(String::new(), |r| {
                format!(
                    "{} ({} in / {} out)",
                    r.state.ticks, r.state.usage.input_tokens, r.state.usage.output_tokens
                )
            });
            rows.push(vec![
                format!("{}{}", "  ".repeat(depth), n.label),
                format!("{:?}", n.shape).to_lowercase(),
                sig(n.start * 1e3),
                sig(n.seconds() * 1e3),
                calls,
                clip(&n.note, 50),
                clip(&n.output.text, 60),
            ]);
        });
        let t = &run.outcome.trace;
        Ok(Scene::new()
            .with(Item::new(
                "waterfall",
                format!("{pattern}: every node's span (ms from the start)"),
                prov.clone(),
                Primitive::Timeline(Timeline {
                    lanes,
                    spans,
                    unit: "ms".into(),
                }),
            ))
            .with(table(
                "nodes",
                "Nodes in order",
                prov.clone(),
                &[
                    "node",
                    "shape",
                    "start ms",
                    "ms",
                    "model calls (tokens)",
                    "what decided",
                    "output",
                ],
                rows,
            ))
            .with(text(
                "rule",
                "The latency rule, on this run's own timings",
                prov,
                format!(
                    "Measured wall time {} ms. The rule (sum of the serial calls + the max of each parallel group) gives {} ms from the nodes' recorded times. All calls end to end would take {} ms.",
                    sig(t.seconds() * 1e3),
                    sig(t.rule_seconds() * 1e3),
                    sig(t.serial_seconds() * 1e3)
                ),
            )))
    }

    /// Over the whole labelled set: from the recording (a live sweep is 26 tasks ×
    /// 6 designs, a quarter of an hour on a laptop: `lav bench --workflows` runs it).
    fn accuracy(&mut self, _: &Values) -> Result<Scene> {
        let (runs, prov): (Vec<&PatternRun>, Provenance) =
            (self.rec.runs.iter().collect(), self.recorded_prov());
        let summary = summarize(&runs);
        let n = summary.first().map_or(0, |s| s.tasks);
        let mut scene = Scene::new();
        scene.push(bars(
            "accuracy",
            &format!("Tasks the checker passed, of {n} (calculations and order lookups)"),
            prov.clone(),
            "tasks",
            summary
                .iter()
                .map(|s| bar(s.pattern.clone(), s.passed as f64, Role::Channel))
                .collect(),
        ));
        scene.push(table(
            "totals",
            "Per pattern over the labelled set",
            prov.clone(),
            &[
                "pattern",
                "passed",
                "tasks",
                "model calls / task",
                "tokens / task",
                "wall s / task",
            ],
            summary
                .iter()
                .map(|s| {
                    vec![
                        s.pattern.clone(),
                        s.passed.to_string(),
                        s.tasks.to_string(),
                        sig(s.calls),
                        sig(s.tokens),
                        sig(s.seconds),
                    ]
                })
                .collect(),
        ));
        scene.push(lav_lab::published::table(
            "rule",
            "Workflow or agent?",
            &self.facts,
        ));
        scene.push(text(
            "live",
            "Measure it yourself",
            Provenance::computed("what lav bench runs"),
            "`lav bench --workflows` runs every design on every task on this machine (a quarter of an hour on two cores) and prints this table; `--llm-url URL` drives an endpoint instead, and `--record` replaces the recording shown here.",
        ));
        Ok(scene)
    }
}

/// Each node depth first, with its depth.
fn walk(n: &Node, depth: usize, f: &mut impl FnMut(&Node, usize)) {
    f(n, depth);
    for c in &n.children {
        walk(c, depth + 1, f);
    }
}

/// One pattern's totals over a set of runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub pattern: String,
    pub passed: usize,
    pub tasks: usize,
    /// Means per task.
    pub calls: f64,
    pub tokens: f64,
    pub seconds: f64,
}

/// Totals per pattern, in the order the patterns first appear.
pub fn summarize(runs: &[&PatternRun]) -> Vec<Summary> {
    let mut order: Vec<&str> = Vec::new();
    for r in runs {
        if !order.contains(&r.pattern.as_str()) {
            order.push(&r.pattern);
        }
    }
    order
        .iter()
        .map(|p| {
            let mine: Vec<&&PatternRun> = runs.iter().filter(|r| r.pattern == *p).collect();
            let n = mine.len().max(1) as f64;
            Summary {
                pattern: p.to_string(),
                passed: mine.iter().filter(|r| r.passed).count(),
                tasks: mine.len(),
                calls: mine
                    .iter()
                    .map(|r| r.outcome.trace.model_calls() as f64)
                    .sum::<f64>()
                    / n,
                tokens: mine
                    .iter()
                    .map(|r| {
                        let (i, o) = r.outcome.trace.tokens();
                        (i + o) as f64
                    })
                    .sum::<f64>()
                    / n,
                seconds: mine.iter().map(|r| r.outcome.trace.seconds()).sum::<f64>() / n,
            }
        })
        .collect()
}
