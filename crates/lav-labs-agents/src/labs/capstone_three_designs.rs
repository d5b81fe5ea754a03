//! capstone-three-designs: the customer-order questions answered by RAG only, a
//! deterministic workflow, an autonomous agent and an orchestrator with sub-agents,
//! scored side by side on accuracy (the same answer check for all), model and tool
//! calls, tokens, wall time and trifecta exposure (from each design's tools), with
//! the traces side by side and the decision rule applied to the measured scorecard.
//! Published multi-agent figures appear as reference.

use super::{Context, Endpoint, RECORDED, driver_names};
use crate::agent_trace::clip;
use crate::capstone::{self, DESIGNS, DesignRun, FullShop, Recording, Score};
use crate::workflows::Shop;
use lav_agent::tasks::Task;
use lav_lab::items::{bar, bars, table, text};
use lav_lab::job::Job;
use lav_lab::{Control, Lab, LabError, LabState, Result, Step, Steps, Values};
use lav_model::Loader;
use lav_scene::*;
use std::path::PathBuf;
use std::sync::Arc;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    open_with(ctx, None)
}

/// Opens the lab with `endpoint` offered as a third driver.
pub fn open_with(ctx: &Context, endpoint: Option<Endpoint>) -> Result<Box<dyn Lab>> {
    let rec = Recording::load(&ctx.dir).map_err(LabError::Input)?;
    let tasks = capstone::tasks(&ctx.dir).map_err(LabError::Input)?;
    let ids: Vec<&str> = tasks
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| rec.runs.iter().any(|r| r.task == *id))
        .collect();
    let first = *ids
        .first()
        .ok_or_else(|| LabError::Input(format!("{} holds no run", capstone::RECORDING)))?;
    let c = Controls {
        driver: Control::choice(
            "driver",
            "Who drives the model",
            &driver_names(&endpoint),
            RECORDED,
        ),
        task: Control::choice("task", "Customer question", &ids, first),
    };
    let steps = vec![
        Step::new("scorecard", &[], CapstoneLab::scorecard),
        Step::new("traces", &[&c.driver, &c.task], CapstoneLab::traces),
        Step::new("risk", &[], CapstoneLab::risk),
    ];
    Steps::lab(
        CapstoneLab {
            c,
            rec,
            tasks,
            dir: ctx.dir.clone(),
            facts: lav_lab::published::facts(&ctx.dir, "capstone-three-designs")?,
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
}

struct CapstoneLab {
    c: Controls,
    rec: Recording,
    tasks: Vec<Task>,
    dir: PathBuf,
    facts: Vec<lav_lab::published::Fact>,
    loader: Arc<dyn Loader>,
    endpoint: Option<Endpoint>,
    /// Every design on one question, live, by (driver, task).
    live: Job<(String, String), Vec<DesignRun>>,
}

impl LabState for CapstoneLab {
    fn busy(&self) -> bool {
        self.live.busy()
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The legs in words.
pub fn exposure(legs: [bool; 3]) -> String {
    let n = legs.iter().filter(|l| **l).count();
    if n == 3 {
        "ALL THREE legs: private data, untrusted content and a way out".into()
    } else {
        format!("{n} of 3 legs")
    }
}

impl CapstoneLab {
    fn recorded_prov(&self) -> Provenance {
        super::recorded_prov(&self.rec.driver, &self.rec.recorded)
    }

    fn scorecard(&mut self, _: &Values) -> Result<Scene> {
        let prov = self.recorded_prov();
        let runs: Vec<&DesignRun> = self.rec.runs.iter().collect();
        let scores = capstone::scorecard(&runs);
        let n = scores.first().map_or(0, |s| s.tasks);
        let mut scene = Scene::new().with(table(
            "scorecard",
            &format!("The scorecard over {n} customer questions (means per question)"),
            prov.clone(),
            &[
                "design",
                "answered right",
                "model calls",
                "tool calls",
                "tokens",
                "wall s",
                "private data",
                "untrusted content",
                "way out",
                "exposure",
            ],
            scores
                .iter()
                .map(|s| {
                    vec![
                        s.design.clone(),
                        format!("{}/{}", s.passed, s.tasks),
                        format!("{:.1}", s.model_calls),
                        format!("{:.1}", s.tool_calls),
                        format!("{:.0}", s.tokens),
                        format!("{:.1}", s.seconds),
                        yes(s.legs[0]).into(),
                        yes(s.legs[1]).into(),
                        yes(s.legs[2]).into(),
                        exposure(s.legs),
                    ]
                })
                .collect(),
        ));
        scene.push(bars(
            "accuracy",
            &format!("Questions answered right, of {n}"),
            prov.clone(),
            "questions",
            scores
                .iter()
                .map(|s| {
                    bar(
                        s.design.clone(),
                        s.passed as f64,
                        if s.legs.iter().all(|l| *l) {
                            Role::WhatIf
                        } else {
                            Role::Channel
                        },
                    )
                })
                .collect(),
        ));
        scene.push(bars(
            "tokens",
            "Tokens per question",
            prov.clone(),
            "tokens",
            scores
                .iter()
                .map(|s| bar(s.design.clone(), s.tokens.round(), Role::Residual))
                .collect(),
        ));
        scene.push(text(
            "rule",
            "The decision rule, applied to this scorecard",
            Provenance::computed("the rule over the recorded scorecard"),
            decision(&scores),
        ));
        Ok(scene)
    }

    /// Every design's run on `task`, recorded or live.
    fn task_runs(
        &mut self,
        v: &Values,
    ) -> Result<std::result::Result<(Vec<DesignRun>, Provenance), Item>> {
        let which = v.text(&self.c.driver).to_string();
        let task = v.text(&self.c.task).to_string();
        if which == RECORDED {
            let runs = DESIGNS
                .iter()
                .filter_map(|d| self.rec.get(&task, d).cloned())
                .collect();
            return Ok(Ok((runs, self.recorded_prov())));
        }
        let t = self
            .tasks
            .iter()
            .find(|t| t.id == task)
            .cloned()
            .ok_or_else(|| LabError::Input(format!("no customer question {task}")))?;
        let key = (which.clone(), task);
        let dir = self.dir.clone();
        let work = move |shop: Shop, p: &lav_lab::job::Progress| {
            let full = FullShop::new(shop, &dir).map_err(LabError::Input)?;
            let mut out = Vec::new();
            for (i, d) in DESIGNS.iter().enumerate() {
                p.check()?;
                p.set(i as u64, DESIGNS.len() as u64, format!("{d}…"));
                out.push(capstone::run(&full, &t, d).map_err(LabError::Input)?);
            }
            Ok(out)
        };
        super::live_run(
            &mut self.live,
            key,
            (&self.loader, &self.endpoint, &which),
            "Running every design on the question",
            work,
        )
    }

    fn traces(&mut self, v: &Values) -> Result<Scene> {
        let (runs, prov) = match self.task_runs(v)? {
            Ok(r) => r,
            Err(progress) => return Ok(Scene::new().with(progress)),
        };
        let task = v.text(&self.c.task).to_string();
        let t = self.tasks.iter().find(|t| t.id == task);
        let mut scene = Scene::new().with(text(
            "question",
            "The customer's question",
            prov.clone(),
            format!(
                "{task}: \u{201c}{}\u{201d}. The answer check wants \u{201c}{}\u{201d}. Driven by: {}.",
                t.map_or("", |t| t.prompt.as_str()),
                t.and_then(|t| t.answer.as_deref()).unwrap_or(""),
                prov.label()
            ),
        ));
        scene.push(table(
            "runs",
            "Each design on the question",
            prov.clone(),
            &[
                "design",
                "answer",
                "check",
                "model calls",
                "tool calls",
                "tokens in / out",
                "wall s",
            ],
            runs.iter()
                .map(|r| {
                    vec![
                        r.design.clone(),
                        clip(&r.answer, 70),
                        if r.passed { "right" } else { "wrong" }.into(),
                        r.model_calls.to_string(),
                        r.tool_calls.to_string(),
                        format!("{} / {}", r.input_tokens, r.output_tokens),
                        format!("{:.1}", r.seconds),
                    ]
                })
                .collect(),
        ));
        let depth = runs.iter().map(|r| r.steps.len()).max().unwrap_or(0);
        let columns: Vec<&str> = std::iter::once("step")
            .chain(runs.iter().map(|r| r.design.as_str()))
            .collect();
        scene.push(table(
            "side-by-side",
            "The traces side by side: what code and the model did, step by step",
            prov,
            &columns,
            (0..depth)
                .map(|i| {
                    std::iter::once((i + 1).to_string())
                        .chain(
                            runs.iter()
                                .map(|r| r.steps.get(i).map_or(String::new(), |s| clip(s, 90))),
                        )
                        .collect()
                })
                .collect(),
        ));
        Ok(scene)
    }

    fn risk(&mut self, _: &Values) -> Result<Scene> {
        let prov = self.recorded_prov();
        let runs: Vec<&DesignRun> = self.rec.runs.iter().collect();
        let scores = capstone::scorecard(&runs);
        let mut held: Vec<(String, Vec<String>)> = Vec::new();
        for d in DESIGNS {
            let mut t: Vec<String> = self
                .rec
                .runs
                .iter()
                .filter(|r| r.design == d)
                .flat_map(|r| r.tools.clone())
                .collect();
            t.sort();
            t.dedup();
            held.push((d.to_string(), t));
        }
        let mut scene = Scene::new().with(table(
            "tools",
            "What each design holds, and the leg each brings",
            Provenance::computed("each design's tools, labelled by the trifecta table"),
            &["design", "tools and sources", "exposure"],
            held.iter()
                .map(|(d, t)| {
                    let legs = capstone::legs(t);
                    vec![
                        d.clone(),
                        t.iter()
                            .map(|name| {
                                let leg = capstone::legs(std::slice::from_ref(name));
                                let what = match leg {
                                    [true, _, _] => "private data",
                                    [_, true, _] => "untrusted content",
                                    [_, _, true] => "a way out",
                                    _ => "none",
                                };
                                format!("{name} ({what})")
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        exposure(legs),
                    ]
                })
                .collect(),
        ));
        let rag = scores.iter().find(|s| s.design == DESIGNS[0]);
        let ratio = |d: &str| {
            let s = scores.iter().find(|s| s.design == d)?;
            Some(s.tokens / rag?.tokens)
        };
        scene.push(table(
            "ratios",
            "Tokens against one retrieval-and-answer call (the nearest thing here to a chat)",
            prov,
            &["design", "tokens / RAG's"],
            DESIGNS
                .iter()
                .filter_map(|d| Some(vec![d.to_string(), format!("{:.1}×", ratio(d)?)]))
                .collect(),
        ));
        scene.push(lav_lab::published::table(
            "published",
            "Multi-agent systems, published",
            &self.facts,
        ));
        Ok(scene)
    }
}

/// The decision rule in words, with the design it picks from `scores`.
pub fn decision(scores: &[Score]) -> String {
    let rule = "Use the simplest design that meets the bar: among designs that do not hold all three legs of the trifecta, take the most accurate, and among those within one question of it, the one that spends the fewest tokens. Add autonomy only when the questions need steps code cannot foresee, and then remove a leg.";
    // The most accurate design of all, when it is one the rule set aside.
    let exposed = scores
        .iter()
        .max_by_key(|s| s.passed)
        .filter(|s| s.legs.iter().all(|l| *l))
        .map_or(String::new(), |s| {
            format!(
                " The {} is right more often ({}/{}) but holds all three legs: remove one before choosing it.",
                s.design, s.passed, s.tasks
            )
        });
    match capstone::decide(scores) {
        Some(s) => format!(
            "{rule} Here that is the {} ({}/{} right, {:.0} tokens per question).{exposed}",
            s.design, s.passed, s.tasks, s.tokens
        ),
        None => format!("{rule} Here every design holds all three legs: remove one first."),
    }
}
