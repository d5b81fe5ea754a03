//! planning-reflection: the runtime's planner (plan-and-execute with re-planning, and
//! a reflect/retry loop under caps) on customer questions that take more than one
//! step. The plan tree shows every plan, step and attempt as it ran, where a failed
//! step led to a reflection, a retry or a revised plan, and which cap stopped it.
//! Each task has a deterministic checker, so a failure is a real failure; calls and
//! tokens are the runs' own. Recorded by `lav bench --planner --record`, or run live.

use super::{Context, Endpoint, RECORDED, driver_names};
use crate::agent_trace::clip;
use crate::planning::{self, PlanRun, PlanTask, Recording};
use crate::workflows::Shop;
use lav_agent::planner::{Attempt, Caps, Outcome, Plan};
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
    let tasks = planning::load(&ctx.dir).map_err(LabError::Input)?;
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let names: Vec<&str> = planning::presets().iter().map(|(n, _)| *n).collect();
    let c = Controls {
        driver: Control::choice(
            "driver",
            "Who drives the model",
            &driver_names(&endpoint),
            RECORDED,
        ),
        task: Control::choice("task", "Task", &ids, ids[0]),
        caps: Control::choice("caps", "Caps", &names, names[names.len() - 1]),
    };
    let steps = vec![
        Step::new("tree", &[&c.driver, &c.task, &c.caps], PlanningLab::tree),
        Step::new("caps", &[], PlanningLab::compare),
    ];
    Steps::lab(
        PlanningLab {
            c,
            rec,
            tasks,
            facts: lav_lab::published::facts(&ctx.dir, "planning-reflection")?,
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
    caps: Control,
}

struct PlanningLab {
    c: Controls,
    rec: Recording,
    tasks: Vec<PlanTask>,
    facts: Vec<lav_lab::published::Fact>,
    loader: Arc<dyn Loader>,
    endpoint: Option<Endpoint>,
    /// One task under one preset, live, by (driver, task, preset).
    live: Job<(String, String, String), PlanRun>,
}

impl LabState for PlanningLab {
    fn busy(&self) -> bool {
        self.live.busy()
    }
}

fn preset(name: &str) -> Result<Caps> {
    planning::presets()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c)
        .ok_or_else(|| LabError::Input(format!("no cap preset {name}")))
}

/// The caps in words.
pub fn describe_caps(c: &Caps) -> String {
    format!(
        "{} retr{} per step, {} reflection{}, {} re-plan{}, {} tokens, {} s",
        c.retries,
        if c.retries == 1 { "y" } else { "ies" },
        c.reflections,
        if c.reflections == 1 { "" } else { "s" },
        c.replans,
        if c.replans == 1 { "" } else { "s" },
        c.tokens,
        sig(c.time.as_secs_f64())
    )
}

impl PlanningLab {
    /// The run the controls select, or the progress of the job making it.
    fn selected(&mut self, v: &Values) -> Result<std::result::Result<(PlanRun, Provenance), Item>> {
        let which = v.text(&self.c.driver).to_string();
        let task = v.text(&self.c.task).to_string();
        let name = v.text(&self.c.caps).to_string();
        if which == RECORDED {
            let run = self.rec.get(&task, &name).cloned().ok_or_else(|| {
                LabError::Input(format!(
                    "{} holds no run of {task} under {name}; record it with `lav bench --planner --record`",
                    planning::RECORDING
                ))
            })?;
            let prov = super::recorded_prov(&self.rec.driver, &self.rec.recorded);
            return Ok(Ok((run, prov)));
        }
        let t = self
            .tasks
            .iter()
            .find(|t| t.id == task)
            .cloned()
            .ok_or_else(|| LabError::Input(format!("no planning task {task}")))?;
        let caps = preset(&name)?;
        let key = (which.clone(), task, name.clone());
        let work = move |shop: Shop, p: &lav_lab::job::Progress| {
            p.set(0, 1, "planning, executing and reflecting…");
            PlanRun::run(&shop, &t, &name, caps).map_err(LabError::Input)
        };
        super::live_run(
            &mut self.live,
            key,
            (&self.loader, &self.endpoint, &which),
            "Running the planner on the task",
            work,
        )
    }

    fn tree(&mut self, v: &Values) -> Result<Scene> {
        let (run, prov) = match self.selected(v)? {
            Ok(r) => r,
            Err(progress) => return Ok(Scene::new().with(progress)),
        };
        let task = self
            .tasks
            .iter()
            .find(|t| t.id == run.task)
            .cloned()
            .ok_or_else(|| LabError::Input(format!("no planning task {}", run.task)))?;
        let o = &run.outcome;
        let mut scene = Scene::new().with(text(
            "task",
            "The task and how it ended",
            prov.clone(),
            format!(
                "{}: \u{201c}{}\u{201d} (the right answer: {}). Driven by: {}. Caps: {}. Stopped by {}. {}",
                task.id,
                task.prompt,
                task.working,
                prov.label(),
                describe_caps(&run.caps),
                o.stop.describe(),
                match (&o.answer, run.passed) {
                    (Some(a), true) => format!("Answer: \u{201c}{}\u{201d}; the checker passed it.", clip(a, 120)),
                    _ => "No answer passed the checker.".to_string(),
                }
            ),
        ));
        scene.push(Item::new(
            "plan",
            "The plan tree: plans, their steps, each attempt and reflection",
            prov.clone(),
            Primitive::Tree(Tree { root: plan_tree(o) }),
        ));
        scene.push(table(
            "calls",
            "Every model call the planner made",
            prov.clone(),
            &["call", "what", "model calls", "tokens in / out", "outcome"],
            calls(o),
        ));
        scene.push(text(
            "cost",
            "What it cost",
            prov,
            format!(
                "{} model calls, {} tokens in and {} out, {:.1} s; {} reflection{} ({} of the calls).",
                o.calls,
                o.usage.input_tokens,
                o.usage.output_tokens,
                o.seconds,
                o.reflections,
                if o.reflections == 1 { "" } else { "s" },
                o.reflections
            ),
        ));
        Ok(scene)
    }

    /// Every task under every preset, from the recording (a live sweep is twelve
    /// planner runs, several minutes on a laptop: `lav bench --planner` runs it).
    fn compare(&mut self, _: &Values) -> Result<Scene> {
        let prov = super::recorded_prov(&self.rec.driver, &self.rec.recorded);
        let mut rows = Vec::new();
        let mut totals = Vec::new();
        for (name, caps) in planning::presets() {
            let mine: Vec<&PlanRun> = self.rec.runs.iter().filter(|r| r.preset == name).collect();
            for r in &mine {
                let o = &r.outcome;
                rows.push(vec![
                    name.to_string(),
                    r.task.clone(),
                    if r.passed {
                        "pass".into()
                    } else {
                        "fails".into()
                    },
                    o.plans.len().to_string(),
                    attempts(o).to_string(),
                    o.reflections.to_string(),
                    o.calls.to_string(),
                    (o.usage.input_tokens + o.usage.output_tokens).to_string(),
                    o.stop.describe().to_string(),
                ]);
            }
            totals.push((name, caps, mine));
        }
        let mut scene = Scene::new().with(table(
            "runs",
            "Each task under each preset of caps",
            prov.clone(),
            &[
                "caps",
                "task",
                "checker",
                "plans",
                "attempts",
                "reflections",
                "model calls",
                "tokens",
                "stopped by",
            ],
            rows,
        ));
        scene.push(bars(
            "solved",
            &format!("Tasks solved, of {}", self.tasks.len()),
            prov.clone(),
            "tasks",
            totals
                .iter()
                .map(|(n, _, m)| {
                    bar(
                        *n,
                        m.iter().filter(|r| r.passed).count() as f64,
                        Role::Channel,
                    )
                })
                .collect(),
        ));
        scene.push(bars(
            "calls",
            "Model calls over all tasks",
            prov.clone(),
            "calls",
            totals
                .iter()
                .map(|(n, _, m)| {
                    bar(
                        *n,
                        m.iter().map(|r| r.outcome.calls as f64).sum(),
                        Role::Residual,
                    )
                })
                .collect(),
        ));
        scene.push(table(
            "presets",
            "The presets",
            Provenance::computed("the caps the runtime enforced"),
            &["caps", "limits"],
            totals
                .iter()
                .map(|(n, c, _)| vec![n.to_string(), describe_caps(c)])
                .collect(),
        ));
        scene.push(lav_lab::published::table(
            "facts",
            "Reflection, published",
            &self.facts,
        ));
        Ok(scene)
    }
}

/// Attempts over every step of every plan.
fn attempts(o: &Outcome) -> usize {
    o.plans
        .iter()
        .flat_map(|p| &p.steps)
        .map(|s| s.attempts.len())
        .sum()
}

fn attempt_node(i: usize, a: &Attempt) -> TreeNode {
    let mut children = Vec::new();
    if !a.failure.is_empty() {
        children.push(TreeNode {
            label: "failed".into(),
            value: Some(clip(&a.failure, 90)),
            children: Vec::new(),
        });
    }
    if let Some(r) = &a.reflection {
        children.push(TreeNode {
            label: "reflection".into(),
            value: Some(clip(r, 90)),
            children: Vec::new(),
        });
    }
    TreeNode {
        label: format!("attempt {}", i + 1),
        value: Some(format!(
            "{}: {}",
            if a.failure.is_empty() {
                "passed"
            } else {
                "failed"
            },
            clip(&a.output, 70)
        )),
        children,
    }
}

fn plan_node(p: &Plan) -> TreeNode {
    TreeNode {
        label: format!("plan {}", p.version),
        value: Some(clip(&p.because, 90)),
        children: p
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| TreeNode {
                label: format!("step {}: {}", i + 1, clip(&s.text, 60)),
                value: Some(match (s.attempts.is_empty(), s.passed()) {
                    (true, _) => "not reached".into(),
                    (false, true) => "done".into(),
                    (false, false) => "failed".into(),
                }),
                children: s
                    .attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| attempt_node(i, a))
                    .collect(),
            })
            .collect(),
    }
}

/// The run as a tree: the task, then each plan with its steps and their attempts.
pub fn plan_tree(o: &Outcome) -> TreeNode {
    TreeNode {
        label: clip(&o.task, 70),
        value: Some(o.stop.describe().into()),
        children: o.plans.iter().map(plan_node).collect(),
    }
}

/// Every agent run of the planner in order (planning, step attempts, reflections),
/// each with what it was and how it came out.
pub fn runs(o: &Outcome) -> Vec<(String, &lav_agent::Run, String)> {
    let mut out = Vec::new();
    for p in &o.plans {
        out.push((
            format!("plan {}", p.version),
            &p.run,
            format!("{} steps", p.steps.len()),
        ));
        for (i, s) in p.steps.iter().enumerate() {
            for (j, a) in s.attempts.iter().enumerate() {
                out.push((
                    format!("plan {} step {} attempt {}", p.version, i + 1, j + 1),
                    &a.run,
                    if a.failure.is_empty() {
                        "passed".into()
                    } else {
                        clip(&a.failure, 60)
                    },
                ));
                if let (Some(r), Some(run)) = (&a.reflection, &a.reflection_run) {
                    out.push(("reflection".into(), run, clip(r, 60)));
                }
            }
        }
    }
    out
}

/// One row per run of the planner, in order.
fn calls(o: &Outcome) -> Vec<Vec<String>> {
    runs(o)
        .into_iter()
        .enumerate()
        .map(|(n, (what, r, outcome))| {
            vec![
                (n + 1).to_string(),
                what,
                r.state.ticks.to_string(),
                format!(
                    "{} / {}",
                    r.state.usage.input_tokens, r.state.usage.output_tokens
                ),
                outcome,
            ]
        })
        .collect()
}
