//! Eval arithmetic: pass@k and pass^k (from a per-trial success rate, and unbiased
//! from n trials with c successes), their standard errors, a judge's TPR and TNR
//! against reference labels, and the failure-category × step matrix that trace
//! labelling fills; and a trace read turn by turn, by a learner or by a judge model.

use crate::agent::{Limits, Llm, Role, Run, State, ToolSpec};
use crate::workflow::choose_once;
use serde::{Deserialize, Serialize};

/// The chance that at least one of k independent trials succeeds: 1 − (1 − p)^k.
pub fn pass_at_k(p: f64, k: u32) -> f64 {
    1.0 - (1.0 - p).powi(k as i32)
}

/// The chance that all k independent trials succeed: p^k (τ-bench's pass^k).
pub fn pass_hat_k(p: f64, k: u32) -> f64 {
    p.powi(k as i32)
}

/// C(n, k) as a float (exact for the small n of an eval).
fn choose(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// pass@k estimated from n trials with c successes, without bias: 1 − C(n−c, k) / C(n, k)
/// (Chen et al. 2021). `None` when k > n.
pub fn pass_at_k_estimate(n: u64, c: u64, k: u64) -> Option<f64> {
    (k <= n && c <= n).then(|| 1.0 - choose(n - c, k) / choose(n, k))
}

/// pass^k estimated from n trials with c successes: C(c, k) / C(n, k) (τ-bench).
pub fn pass_hat_k_estimate(n: u64, c: u64, k: u64) -> Option<f64> {
    (k <= n && c <= n).then(|| choose(c, k) / choose(n, k))
}

/// The standard error of a rate p measured on n trials: √(p(1 − p)/n).
pub fn standard_error(p: f64, n: u64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    (p * (1.0 - p) / n as f64).sqrt()
}

/// A judge's verdicts against reference labels (true = pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Reference pass, judge pass.
    pub tp: usize,
    /// Reference fail, judge fail.
    pub tn: usize,
    /// Reference fail, judge pass.
    pub fp: usize,
    /// Reference pass, judge fail.
    pub fn_: usize,
}

impl Confusion {
    /// Pairs of (reference, judge).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Confusion {
        let mut c = Confusion::default();
        for (reference, judge) in pairs {
            match (reference, judge) {
                (true, true) => c.tp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
            }
        }
        c
    }

    /// Of the passes, how many the judge passed. `None` with no passes.
    pub fn tpr(&self) -> Option<f64> {
        let n = self.tp + self.fn_;
        (n > 0).then(|| self.tp as f64 / n as f64)
    }

    /// Of the failures, how many the judge failed. `None` with no failures.
    pub fn tnr(&self) -> Option<f64> {
        let n = self.tn + self.fp;
        (n > 0).then(|| self.tn as f64 / n as f64)
    }
}

/// Failure labels over traces: which category each trace's first wrong step falls
/// in, and at which step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub categories: Vec<String>,
    /// Step names (columns), in order.
    pub steps: Vec<String>,
    /// `counts[category][step]`.
    pub counts: Vec<Vec<usize>>,
}

impl Matrix {
    pub fn new(categories: &[&str], steps: &[&str]) -> Matrix {
        Matrix {
            categories: categories.iter().map(|s| s.to_string()).collect(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            counts: vec![vec![0; steps.len()]; categories.len()],
        }
    }

    /// Counts one label; `Err` names what is not a row or column.
    pub fn add(&mut self, category: &str, step: &str) -> Result<(), String> {
        let r = self
            .categories
            .iter()
            .position(|c| c == category)
            .ok_or_else(|| format!("no failure category {category:?}"))?;
        let c = self
            .steps
            .iter()
            .position(|s| s == step)
            .ok_or_else(|| format!("no step {step:?}"))?;
        self.counts[r][c] += 1;
        Ok(())
    }

    /// Each category's total, in the categories' order.
    pub fn totals(&self) -> Vec<usize> {
        self.counts.iter().map(|r| r.iter().sum()).collect()
    }

    /// The category with the most failures (the first among ties), and its count:
    /// the fix that would clear the most traces. `None` when nothing is labelled.
    pub fn top_fix(&self) -> Option<(&str, usize)> {
        let t = self.totals();
        let best = (0..t.len()).max_by_key(|&i| (t[i], usize::MAX - i))?;
        (t[best] > 0).then(|| (self.categories[best].as_str(), t[best]))
    }
}

/// One assistant turn of a trace: what the model did, and what came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// 1-based.
    pub n: usize,
    /// The calls it made (`name {arguments}`), or its answer.
    pub did: String,
    /// The tools' results, each marked when it was an error; empty for an answer.
    pub got: String,
    /// Whether this turn was the final answer.
    pub answer: bool,
}

/// A run's assistant turns in order, each with the results of its calls.
pub fn turns(run: &Run) -> Vec<Turn> {
    let t = &run.state.transcript;
    let mut out = Vec::new();
    for m in t.iter().filter(|m| m.role == Role::Assistant) {
        let n = out.len() + 1;
        if m.tool_calls.is_empty() {
            out.push(Turn {
                n,
                did: m.content.trim().to_string(),
                got: String::new(),
                answer: true,
            });
            continue;
        }
        let did = m
            .tool_calls
            .iter()
            .map(|c| format!("{} {}", c.name, c.arguments))
            .collect::<Vec<_>>()
            .join("; ");
        let got = m
            .tool_calls
            .iter()
            .map(|c| {
                t.iter()
                    .find(|r| r.role == Role::Tool && r.tool_call_id.as_deref() == Some(&c.id))
                    .map_or("(no result)".to_string(), |r| {
                        if r.is_error {
                            format!("error: {}", r.content.trim())
                        } else {
                            r.content.trim().to_string()
                        }
                    })
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(Turn {
            n,
            did,
            got,
            answer: false,
        });
    }
    out
}

/// The trace as a judge reads it: the task, then each turn.
pub fn trace_text(task: &str, run: &Run) -> String {
    let mut s = format!("Task: {task}\n");
    for t in turns(run) {
        if t.answer {
            s.push_str(&format!("Turn {}: answered: {}\n", t.n, t.did));
        } else {
            s.push_str(&format!(
                "Turn {}: called {}\n  result: {}\n",
                t.n, t.did, t.got
            ));
        }
    }
    if run.answer.is_none() {
        s.push_str(&format!("No final answer: {}\n", run.stop.describe()));
    }
    s
}

/// What a judge model said of one trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// `None` when the model gave no verdict (counted as a fail by [`Judgement::passes`]).
    pub verdict: Option<bool>,
    pub reason: String,
    /// The judging call.
    pub run: Run,
}

impl Judgement {
    pub fn passes(&self) -> bool {
        self.verdict == Some(true)
    }
}

/// The judge's instructions: binary, and about the answer's support in the trace.
pub const JUDGE_SYSTEM: &str = "You grade an assistant's work on a customer's task. Pass it only if its final answer is right and backed by the tool results in the trace. Fail it if it made up a number or detail, called the wrong tool or with wrong arguments, or gave no answer.";

/// Asks `llm` for a binary verdict on a trace (one grammar-constrained call).
pub fn judge(llm: &mut dyn Llm, task: &str, run: &Run) -> crate::agent::Result<Judgement> {
    let spec = ToolSpec {
        name: "grade".into(),
        description: "Grade the trace: pass or fail, and why in a few words.".into(),
        input_schema: serde_json::json!({
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["pass", "fail"]},
                "reason": {"type": "string", "minLength": 1, "maxLength": 120}
            },
            "required": ["verdict", "reason"],
            "additionalProperties": false
        }),
    };
    let state = State::new(JUDGE_SYSTEM, &trace_text(task, run));
    let (judged, args) = choose_once(llm, state, spec, Limits::default())?;
    let verdict = args
        .as_ref()
        .and_then(|a| a["verdict"].as_str())
        .and_then(|v| match v {
            "pass" => Some(true),
            "fail" => Some(false),
            _ => None,
        });
    let reason = args
        .as_ref()
        .and_then(|a| a["reason"].as_str())
        .unwrap_or("no verdict")
        .to_string();
    Ok(Judgement {
        verdict,
        reason,
        run: judged,
    })
}
