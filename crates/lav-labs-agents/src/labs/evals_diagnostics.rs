//! evals-diagnostics: read twelve real traces of the local agent (recorded from the
//! runtime, successes and failures), label each one (pass, or the failure category
//! and the first wrong turn) and watch the failure-category × turn matrix fill; pick
//! the top fix; score a judge model's verdicts by TPR and TNR against the reference
//! labels; and see pass@k and pass^k from repeated seeded trials, with standard
//! errors. The learner's labels are control values, so every renderer (and `lav lab
//! --set`) labels the same way.

use super::{Context, Endpoint, RECORDED, driver_names};
use crate::agent_trace::clip;
use crate::eval_traces::{self, CATEGORIES, Curves, Judged, Label, Recording, TURNS, turn_name};
use crate::workflows::Shop;
use lav_agent::evals::{self, Confusion, Matrix};
use lav_agent::tasks::{self, Task};
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::job::Job;
use lav_lab::{Control, Lab, LabError, LabState, Result, Step, Steps, Values};
use lav_model::Loader;
use lav_scene::*;
use std::sync::Arc;

/// How many traces the lab labels (the ids t01 … t12 of the labels file).
pub const TRACES: usize = 12;

const STEP_IDS: [&str; TRACES] = [
    "trace-01", "trace-02", "trace-03", "trace-04", "trace-05", "trace-06", "trace-07", "trace-08",
    "trace-09", "trace-10", "trace-11", "trace-12",
];
const VERDICT_KEYS: [&str; TRACES] = [
    "label-01", "label-02", "label-03", "label-04", "label-05", "label-06", "label-07", "label-08",
    "label-09", "label-10", "label-11", "label-12",
];
const TURN_KEYS: [&str; TRACES] = [
    "turn-01", "turn-02", "turn-03", "turn-04", "turn-05", "turn-06", "turn-07", "turn-08",
    "turn-09", "turn-10", "turn-11", "turn-12",
];

const UNLABELLED: &str = "unlabelled";
const PASS: &str = "pass";

/// A verdict control's option for a failure category.
fn fail_option(category: &str) -> String {
    format!("fail: {category}")
}

type SceneFn = fn(&mut EvalLab, &Values) -> Result<Scene>;

fn trace_step<const I: usize>(l: &mut EvalLab, v: &Values) -> Result<Scene> {
    l.trace(I, v)
}

const TRACE_FNS: [SceneFn; TRACES] = [
    trace_step::<0>,
    trace_step::<1>,
    trace_step::<2>,
    trace_step::<3>,
    trace_step::<4>,
    trace_step::<5>,
    trace_step::<6>,
    trace_step::<7>,
    trace_step::<8>,
    trace_step::<9>,
    trace_step::<10>,
    trace_step::<11>,
];

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    open_with(ctx, None)
}

/// Opens the lab with `endpoint` offered as a third judge.
pub fn open_with(ctx: &Context, endpoint: Option<Endpoint>) -> Result<Box<dyn Lab>> {
    let rec = Recording::load(&ctx.dir).map_err(LabError::Input)?;
    let labels = eval_traces::labels(&ctx.dir).map_err(LabError::Input)?;
    let tasks = tasks::load(&ctx.dir).map_err(LabError::Input)?;
    if labels.len() != TRACES {
        return Err(LabError::Input(format!(
            "{} holds {} traces; the lab labels {TRACES}",
            eval_traces::LABELS,
            labels.len()
        )));
    }
    for l in &labels {
        eval_traces::task_of(&tasks, l).map_err(LabError::Input)?;
        if rec.trace(&l.id).is_none() {
            return Err(LabError::Input(format!(
                "{} holds no trace {}; record it with `lav bench --evals --record`",
                eval_traces::RECORDING,
                l.id
            )));
        }
    }
    let fails: Vec<String> = CATEGORIES.iter().map(|c| fail_option(c)).collect();
    let mut options: Vec<&str> = vec![UNLABELLED, PASS];
    options.extend(fails.iter().map(String::as_str));
    let verdicts: Vec<Control> = VERDICT_KEYS
        .iter()
        .map(|k| Control::choice(k, "Your label", &options, UNLABELLED))
        .collect();
    let turns: Vec<Control> = TURN_KEYS
        .iter()
        .map(|k| Control::choice(k, "First wrong turn (for a failure)", &TURNS, TURNS[0]))
        .collect();
    let c = Controls {
        whose: Control::choice("whose", "Whose labels", &[YOURS, REFERENCE], YOURS),
        judge: Control::choice("judge", "Who judges", &driver_names(&endpoint), RECORDED),
        verdicts,
        turns,
    };
    let mut steps: Vec<Step<EvalLab>> = (0..TRACES)
        .map(|i| Step::new(STEP_IDS[i], &[&c.verdicts[i], &c.turns[i]], TRACE_FNS[i]))
        .collect();
    steps.push(Step::new("matrix", &[&c.whose], EvalLab::matrix));
    steps.push(Step::new("judge", &[&c.judge], EvalLab::judge));
    steps.push(Step::new("pass-k", &[], EvalLab::pass_k));
    Steps::lab(
        EvalLab {
            c,
            rec,
            labels,
            tasks,
            loader: ctx.loader.clone(),
            endpoint,
            live: Job::default(),
        },
        steps,
    )
}

const YOURS: &str = "your labels";
const REFERENCE: &str = "reference labels";

struct Controls {
    whose: Control,
    judge: Control,
    verdicts: Vec<Control>,
    turns: Vec<Control>,
}

struct EvalLab {
    c: Controls,
    rec: Recording,
    labels: Vec<Label>,
    tasks: Vec<Task>,
    loader: Arc<dyn Loader>,
    endpoint: Option<Endpoint>,
    /// A live judge over every trace, by driver.
    live: Job<String, Vec<Judged>>,
}

impl LabState for EvalLab {
    fn busy(&self) -> bool {
        self.live.busy()
    }
}

/// A learner's label of one trace.
#[derive(Clone, Debug, PartialEq)]
enum Mine {
    Unlabelled,
    Pass,
    Fail { category: String, turn: usize },
}

impl Mine {
    fn describe(&self) -> String {
        match self {
            Mine::Unlabelled => "unlabelled".into(),
            Mine::Pass => "pass".into(),
            Mine::Fail { category, turn } => format!("fail: {category} at {}", turn_name(*turn)),
        }
    }
}

fn reference_describe(l: &Label) -> String {
    match (&l.category, l.turn) {
        (Some(c), Some(t)) if !l.pass => format!("fail: {c} at {}", turn_name(t)),
        _ => "pass".into(),
    }
}

impl EvalLab {
    fn recorded_prov(&self) -> Provenance {
        super::recorded_prov(&self.rec.driver, &self.rec.recorded)
    }

    fn mine(&self, i: usize, v: &Values) -> Mine {
        let verdict = v.text(&self.c.verdicts[i]);
        let turn = TURNS
            .iter()
            .position(|t| *t == v.text(&self.c.turns[i]))
            .unwrap_or(0)
            + 1;
        match verdict {
            UNLABELLED => Mine::Unlabelled,
            PASS => Mine::Pass,
            other => Mine::Fail {
                category: other.trim_start_matches("fail: ").to_string(),
                turn,
            },
        }
    }

    fn task(&self, id: &str) -> Result<&Task> {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| LabError::Input(format!("no labelled task {id}")))
    }

    fn trace(&mut self, i: usize, v: &Values) -> Result<Scene> {
        let label = &self.labels[i];
        let trace = self
            .rec
            .trace(&label.id)
            .ok_or_else(|| LabError::Input(format!("no trace {}", label.id)))?;
        let task = self.task(&label.task)?;
        let prov = self.recorded_prov();
        let turns = evals::turns(&trace.run);
        let mut scene = Scene::new().with(text(
            "task",
            &format!("Trace {} of {TRACES}: the task", i + 1),
            prov.clone(),
            format!(
                "\u{201c}{}\u{201d} ({}). Read every turn, then label the trace: pass, or the category of its first wrong turn and that turn's number.",
                task.prompt,
                task.kind.name()
            ),
        ));
        scene.push(table(
            "turns",
            "The model's turns, as the runtime recorded them",
            prov.clone(),
            &["turn", "the model", "what came back"],
            turns
                .iter()
                .map(|t| {
                    vec![
                        t.n.to_string(),
                        if t.answer {
                            format!("answered: {}", clip(&t.did, 140))
                        } else {
                            format!("called {}", clip(&t.did, 100))
                        },
                        clip(&t.got, 100),
                    ]
                })
                .collect(),
        ));
        scene.push(text(
            "end",
            "How the run ended",
            prov.clone(),
            format!(
                "{} turns; stopped by {}.",
                trace.run.state.ticks,
                trace.run.stop.describe()
            ),
        ));
        let mine = self.mine(i, v);
        let body = if mine == Mine::Unlabelled {
            "Label it to see the reference label and the checker's verdict.".to_string()
        } else {
            let agree = agrees(&mine, label);
            format!(
                "Your label: {}. The reference label: {} ({}). {}. The task's checker: {}.",
                mine.describe(),
                reference_describe(label),
                label.note,
                match agree {
                    (true, true) => "You agree on the verdict and the first wrong turn".to_string(),
                    (true, false) =>
                        "You agree on the verdict but not on the category or turn".to_string(),
                    (false, _) => "You disagree on the verdict".to_string(),
                },
                if trace.passed {
                    "pass".to_string()
                } else {
                    format!("fail ({})", trace.reason)
                }
            )
        };
        scene.push(text("feedback", "Your label and the reference", prov, body));
        Ok(scene)
    }

    fn matrix(&mut self, v: &Values) -> Result<Scene> {
        let yours = v.text(&self.c.whose) == YOURS;
        let mine: Vec<Mine> = (0..TRACES).map(|i| self.mine(i, v)).collect();
        let m: Matrix = if yours {
            eval_traces::matrix(mine.iter().filter_map(|l| match l {
                Mine::Fail { category, turn } => Some((category.as_str(), *turn)),
                _ => None,
            }))
        } else {
            eval_traces::reference_matrix(&self.labels)
        };
        let labelled = mine.iter().filter(|l| **l != Mine::Unlabelled).count();
        let prov = if yours {
            Provenance::computed(format!(
                "your labels of the recorded traces ({labelled} of {TRACES} labelled)"
            ))
        } else {
            Provenance::computed("the reference labels of the recorded traces")
        };
        let max = m.counts.iter().flatten().copied().max().unwrap_or(0).max(1);
        let mut scene = Scene::new().with(Item::new(
            "matrix",
            "Failures by category and first wrong turn",
            prov.clone(),
            Primitive::Heatmap(Heatmap {
                rows: m.categories.clone(),
                // Short column names: the 3-D view sets them side by side.
                cols: ["1", "2", "3", "4+"].map(String::from).to_vec(),
                values: m.counts.iter().flatten().map(|&c| c as f32).collect(),
                scale: ColorScale::Sequential {
                    min: 0.0,
                    max: max as f64,
                },
                selected: None,
                row_axis: "failure category".into(),
                col_axis: "first wrong turn".into(),
            }),
        ));
        scene.push(bars(
            "categories",
            "Failures per category",
            prov.clone(),
            "traces",
            m.categories
                .iter()
                .zip(m.totals())
                .map(|(c, n)| bar(c.clone(), n as f64, Role::Channel))
                .collect(),
        ));
        scene.push(text(
            "fix",
            "The top fix",
            prov,
            match m.top_fix() {
                Some((c, n)) => format!(
                    "Fix \u{201c}{c}\u{201d} first: it is the first wrong step of {n} of the {} failures{}.",
                    m.totals().iter().sum::<usize>(),
                    if yours { " you labelled" } else { "" }
                ),
                None => "No failure labelled yet: label the traces, one step each.".into(),
            },
        ));
        let rows = self
            .labels
            .iter()
            .zip(&mine)
            .map(|(l, y)| {
                let (verdict, all) = agrees(y, l);
                vec![
                    l.id.clone(),
                    l.task.clone(),
                    y.describe(),
                    // The reference stays hidden until the trace is labelled.
                    if yours && *y == Mine::Unlabelled {
                        "(label it first)".into()
                    } else {
                        reference_describe(l)
                    },
                    match (y, verdict, all) {
                        (Mine::Unlabelled, ..) => "".into(),
                        (_, true, true) => "agree".into(),
                        (_, true, false) => "verdict only".into(),
                        _ => "disagree".into(),
                    },
                ]
            })
            .collect();
        scene.push(table(
            "agreement",
            "Your labels beside the reference",
            Provenance::computed("your labels against the reference labels"),
            &["trace", "task", "yours", "reference", "agreement"],
            rows,
        ));
        Ok(scene)
    }

    /// The judge's verdicts: recorded, or run now by the chosen driver.
    fn judged(
        &mut self,
        v: &Values,
    ) -> Result<std::result::Result<(Vec<Judged>, Provenance), Item>> {
        let which = v.text(&self.c.judge).to_string();
        if which == RECORDED {
            return Ok(Ok((self.rec.judge.clone(), self.recorded_prov())));
        }
        let (traces, tasks) = (self.rec.traces.clone(), self.tasks.clone());
        let work = move |shop: Shop, p: &lav_lab::job::Progress| {
            let mut out = Vec::new();
            for (i, t) in traces.iter().enumerate() {
                p.check()?;
                p.set(i as u64, traces.len() as u64, format!("judging {}…", t.id));
                let mut llm = lav_agent::workflow::Backend::llm(&shop, 0);
                out.extend(
                    eval_traces::judge_all(llm.as_mut(), std::slice::from_ref(t), &tasks)
                        .map_err(LabError::Input)?,
                );
            }
            Ok(out)
        };
        super::live_run(
            &mut self.live,
            which.clone(),
            (&self.loader, &self.endpoint, &which),
            "The judge reads every trace",
            work,
        )
    }

    fn judge(&mut self, v: &Values) -> Result<Scene> {
        let (judged, prov) = match self.judged(v)? {
            Ok(j) => j,
            Err(progress) => return Ok(Scene::new().with(progress)),
        };
        let verdict_of = |id: &str| {
            judged
                .iter()
                .find(|j| j.trace == id)
                .map(|j| j.judgement.passes())
        };
        let mut pairs = Vec::new();
        let mut rows = Vec::new();
        for l in &self.labels {
            let j = judged.iter().find(|j| j.trace == l.id);
            if let Some(pass) = verdict_of(&l.id) {
                pairs.push((l.pass, pass));
            }
            rows.push(vec![
                l.id.clone(),
                if l.pass { "pass" } else { "fail" }.into(),
                j.map_or("not judged".into(), |j| match j.judgement.verdict {
                    Some(true) => "pass".into(),
                    Some(false) => "fail".into(),
                    None => "no verdict (counted as fail)".into(),
                }),
                j.map_or(String::new(), |j| clip(&j.judgement.reason, 80)),
            ]);
        }
        let judge = Confusion::from_pairs(pairs.iter().copied());
        let always = Confusion::from_pairs(self.labels.iter().map(|l| (l.pass, true)));
        let rate = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{:.0}%", r * 100.0));
        let mut scene = Scene::new().with(table(
            "verdicts",
            "The judge's verdict on each trace, beside the reference",
            prov.clone(),
            &["trace", "reference", "judge", "the judge's reason"],
            rows,
        ));
        let computed = Provenance::computed("the verdicts against the reference labels");
        scene.push(table(
            "scores",
            "Judges scored against the reference labels",
            computed.clone(),
            &[
                "judge",
                "TPR (passes it passed)",
                "TNR (failures it failed)",
                "TP",
                "TN",
                "FP",
                "FN",
            ],
            [("this judge", judge), ("always says pass", always)]
                .iter()
                .map(|(n, c)| {
                    vec![
                        n.to_string(),
                        rate(c.tpr()),
                        rate(c.tnr()),
                        c.tp.to_string(),
                        c.tn.to_string(),
                        c.fp.to_string(),
                        c.fn_.to_string(),
                    ]
                })
                .collect(),
        ));
        let same = if judge == always {
            " This judge said pass to every trace: it is no better than one that always does."
        } else {
            ""
        };
        scene.push(text(
            "why",
            "Why two rates",
            computed,
            format!(
                "Agreement alone flatters a judge when most traces pass: a judge that always says pass agrees on {} of {} traces here, yet it catches no failure (TNR {}). Trust a judge once both rates are high on labels you made by reading traces.{same}",
                always.tp,
                self.labels.len(),
                rate(always.tnr())
            ),
        ));
        Ok(scene)
    }

    fn pass_k(&mut self, _: &Values) -> Result<Scene> {
        let prov = self.recorded_prov();
        let cv: Curves = eval_traces::curves(&self.rec.trials);
        let series = |name: &str, pts: Vec<(f64, f64)>, line: bool, role: Role| Series {
            name: name.into(),
            points: pts,
            line,
            role,
        };
        let curve = |rows: &[(u32, f64, f64, f64, f64)],
                     f: fn(&(u32, f64, f64, f64, f64)) -> f64| {
            rows.iter().map(|r| (r.0 as f64, f(r))).collect::<Vec<_>>()
        };
        let plot = Plot {
            x_label: "k (trials)".into(),
            y_label: "rate".into(),
            x_log: false,
            y_log: false,
            series: vec![
                series(
                    "pass@k = 1 − (1 − p)^k",
                    curve(&cv.at, |r| r.1),
                    true,
                    Role::Channel,
                ),
                series(
                    "pass@k at p ± SE",
                    curve(&cv.at, |r| r.2),
                    true,
                    Role::Muted,
                ),
                series(
                    "pass@k at p ± SE",
                    curve(&cv.at, |r| r.3),
                    true,
                    Role::Muted,
                ),
                series(
                    "pass@k measured",
                    curve(&cv.at, |r| r.4),
                    false,
                    Role::Channel,
                ),
                series("pass^k = p^k", curve(&cv.hat, |r| r.1), true, Role::WhatIf),
                series(
                    "pass^k at p ± SE",
                    curve(&cv.hat, |r| r.2),
                    true,
                    Role::Muted,
                ),
                series(
                    "pass^k at p ± SE",
                    curve(&cv.hat, |r| r.3),
                    true,
                    Role::Muted,
                ),
                series(
                    "pass^k measured",
                    curve(&cv.hat, |r| r.4),
                    false,
                    Role::WhatIf,
                ),
            ],
        };
        let mut scene = Scene::new().with(Item::new(
            "curves",
            "pass@k and pass^k: formula at p (band ± SE), tasks' own trials (points)",
            prov.clone(),
            Primitive::Plot(plot),
        ));
        scene.push(table(
            "k",
            "By k",
            prov.clone(),
            &[
                "k",
                "pass@k formula",
                "pass@k measured",
                "pass^k formula",
                "pass^k measured",
            ],
            cv.at
                .iter()
                .zip(&cv.hat)
                .map(|(a, h)| {
                    vec![
                        a.0.to_string(),
                        format!("{:.2}", a.1),
                        format!("{:.2}", a.4),
                        format!("{:.2}", h.1),
                        format!("{:.2}", h.4),
                    ]
                })
                .collect(),
        ));
        scene.push(table(
            "trials",
            "Each task's trials (sampled, one seed per trial)",
            prov.clone(),
            &["task", "trials", "passed", "rate", "SE"],
            self.rec
                .trials
                .iter()
                .map(|t| {
                    let p = t.successes() as f64 / t.n().max(1) as f64;
                    vec![
                        t.task.clone(),
                        t.n().to_string(),
                        t.successes().to_string(),
                        format!("{:.2}", p),
                        format!("{:.2}", evals::standard_error(p, t.n())),
                    ]
                })
                .collect(),
        ));
        scene.push(text(
            "rate",
            "The per-trial rate",
            prov,
            format!(
                "p = {} over {} trials at temperature {}, SE = √(p(1 − p)/n) = {}. pass@k climbs with k (one success in k tries is enough); pass^k falls (every try must succeed, as a customer who asks k times expects). Where the measured points leave the formula's curve, the tasks are not alike: some always pass, some never do, and the formula's independence does not hold.",
                sig(cv.p),
                cv.n,
                eval_traces::TEMPERATURE,
                sig(cv.se)
            ),
        ));
        Ok(scene)
    }
}

/// (same verdict, same verdict and same category and turn column).
fn agrees(mine: &Mine, l: &Label) -> (bool, bool) {
    match mine {
        Mine::Unlabelled => (false, false),
        Mine::Pass => (l.pass, l.pass),
        Mine::Fail { category, turn } => (
            !l.pass,
            !l.pass
                && l.category.as_deref() == Some(category.as_str())
                && l.turn.map(turn_name) == Some(turn_name(*turn)),
        ),
    }
}
