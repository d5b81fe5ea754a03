//! The evals-diagnostics lab's material: twelve traces of the local agent on
//! labelled tool tasks (recorded from the runtime by `lav bench --evals --record`,
//! successes and failures), their reference labels (verdict, failure category, first
//! wrong turn) written by reading each trace, a judge model's verdicts on the same
//! traces, and repeated seeded trials for pass@k and pass^k.

use lav_agent::evals::{self, Judgement, Matrix};
use lav_agent::tasks::{self, Task};
use lav_agent::{Llm, Run};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The failure categories, from open coding the agent's failures into a few kinds
/// (axial coding).
pub const CATEGORIES: [&str; 6] = [
    "answered without the tool",
    "called a tool it did not need",
    "wrong tool",
    "wrong arguments",
    "misread the result",
    "no answer",
];

/// The columns of the matrix: the assistant turn where the trace first went wrong.
pub const TURNS: [&str; 4] = ["turn 1", "turn 2", "turn 3", "turn 4 or later"];

/// The column of a 1-based turn.
pub fn turn_name(n: usize) -> &'static str {
    TURNS[n.clamp(1, TURNS.len()) - 1]
}

/// A reference label, from `labs/data/agents/eval-labels.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The trace's id (t01 … t12).
    pub id: String,
    /// The labelled task it ran.
    pub task: String,
    pub pass: bool,
    /// For a failure: one of [`CATEGORIES`].
    #[serde(default)]
    pub category: Option<String>,
    /// For a failure: the first wrong assistant turn (1-based).
    #[serde(default)]
    pub turn: Option<usize>,
    /// What the labeller saw, in a sentence.
    pub note: String,
}

#[derive(Deserialize)]
struct LabelFile {
    trace: Vec<Label>,
}

pub const LABELS: &str = "data/agents/eval-labels.toml";

/// The reference labels, checked: a failure names a known category and a turn.
pub fn labels(labs: &Path) -> Result<Vec<Label>, String> {
    let path = labs.join(LABELS);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: LabelFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for l in &f.trace {
        let ok = if l.pass {
            l.category.is_none() && l.turn.is_none()
        } else {
            l.category
                .as_deref()
                .is_some_and(|c| CATEGORIES.contains(&c))
                && l.turn.is_some_and(|t| t >= 1)
        };
        if !ok {
            return Err(format!(
                "{}: trace {}: a pass has no category or turn; a failure has one of [{}] and a turn from 1",
                path.display(),
                l.id,
                CATEGORIES.join(", ")
            ));
        }
    }
    Ok(f.trace)
}

/// The matrix a set of failure labels fills: (category, 1-based turn) each.
pub fn matrix<'a>(fails: impl IntoIterator<Item = (&'a str, usize)>) -> Matrix {
    let mut m = Matrix::new(&CATEGORIES, &TURNS);
    for (c, t) in fails {
        // Categories come from CATEGORIES, so a miss is a bug in the caller.
        m.add(c, turn_name(t)).expect("a known category");
    }
    m
}

/// The reference labels' matrix.
pub fn reference_matrix(labels: &[Label]) -> Matrix {
    matrix(
        labels
            .iter()
            .filter_map(|l| Some((l.category.as_deref()?, l.turn?))),
    )
}

/// One recorded trace with the checker's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trace {
    pub id: String,
    pub task: String,
    pub run: Run,
    pub passed: bool,
    pub reason: String,
}

/// A judge's verdict on one trace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Judged {
    pub trace: String,
    pub judgement: Judgement,
}

/// Repeated trials of one task, each sampled with its own seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trials {
    pub task: String,
    pub temperature: f32,
    /// (seed, passed) per trial.
    pub outcomes: Vec<(u64, bool)>,
}

impl Trials {
    pub fn n(&self) -> u64 {
        self.outcomes.len() as u64
    }
    pub fn successes(&self) -> u64 {
        self.outcomes.iter().filter(|(_, p)| *p).count() as u64
    }
}

/// Sampling temperature of the trials.
pub const TEMPERATURE: f32 = 0.7;
/// Trials per task.
pub const TRIALS: u64 = 6;

/// What `lav bench --evals --record` saves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    pub driver: String,
    pub recorded: String,
    pub traces: Vec<Trace>,
    /// The judge that `driver` names, on every trace.
    pub judge: Vec<Judged>,
    pub trials: Vec<Trials>,
}

pub const RECORDING: &str = "data/agents/eval-runs.json";

impl Recording {
    pub fn load(labs: &Path) -> Result<Recording, String> {
        crate::workflows::read_recording(labs, RECORDING, "lav bench --evals --record")
    }

    pub fn trace(&self, id: &str) -> Option<&Trace> {
        self.traces.iter().find(|t| t.id == id)
    }
}

/// The labelled task a label names.
pub fn task_of<'a>(all: &'a [Task], label: &Label) -> Result<&'a Task, String> {
    all.iter()
        .find(|t| t.id == label.task)
        .ok_or_else(|| format!("trace {} names no labelled task {}", label.id, label.task))
}

/// Judges every trace with `llm`.
pub fn judge_all(llm: &mut dyn Llm, traces: &[Trace], all: &[Task]) -> Result<Vec<Judged>, String> {
    traces
        .iter()
        .map(|t| {
            let task = all
                .iter()
                .find(|x| x.id == t.task)
                .ok_or_else(|| format!("no labelled task {}", t.task))?;
            let judgement = evals::judge(llm, &task.prompt, &t.run).map_err(|e| e.to_string())?;
            Ok(Judged {
                trace: t.id.clone(),
                judgement,
            })
        })
        .collect()
}

/// The checker's verdict on a run of `task`.
pub fn check(task: &Task, run: &Run) -> (bool, String) {
    let o = tasks::check(task, run);
    (o.passed, o.reason)
}

/// pass@k and pass^k over k = 1..=max, three ways: from the pooled per-trial rate p
/// by the formulas, the same at p ± its standard error, and the unbiased estimates
/// from each task's own trials averaged over tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    /// The pooled per-trial success rate and its standard error √(p(1 − p)/n).
    pub p: f64,
    pub se: f64,
    pub n: u64,
    /// (k, formula, at p − SE, at p + SE, measured mean over tasks).
    pub at: Vec<(u32, f64, f64, f64, f64)>,
    pub hat: Vec<(u32, f64, f64, f64, f64)>,
}

pub fn curves(trials: &[Trials]) -> Curves {
    let n: u64 = trials.iter().map(Trials::n).sum();
    let c: u64 = trials.iter().map(Trials::successes).sum();
    let p = if n == 0 { 0.0 } else { c as f64 / n as f64 };
    let se = evals::standard_error(p, n);
    let max = trials.iter().map(Trials::n).min().unwrap_or(0) as u32;
    let (lo, hi) = ((p - se).max(0.0), (p + se).min(1.0));
    let mean = |f: &dyn Fn(&Trials) -> Option<f64>| {
        let v: Vec<f64> = trials.iter().filter_map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let at = (1..=max)
        .map(|k| {
            (
                k,
                evals::pass_at_k(p, k),
                evals::pass_at_k(lo, k),
                evals::pass_at_k(hi, k),
                mean(&|t| evals::pass_at_k_estimate(t.n(), t.successes(), k as u64)),
            )
        })
        .collect();
    let hat = (1..=max)
        .map(|k| {
            (
                k,
                evals::pass_hat_k(p, k),
                evals::pass_hat_k(lo, k),
                evals::pass_hat_k(hi, k),
                mean(&|t| evals::pass_hat_k_estimate(t.n(), t.successes(), k as u64)),
            )
        })
        .collect();
    Curves { p, se, n, at, hat }
}
