//! Eval arithmetic: pass@k and pass^k (from a per-trial success rate, and unbiased
//! from n trials with c successes), their standard errors, a judge's TPR and TNR
//! against reference labels, and the failure-category × step matrix that trace
//! labelling fills.

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
