//! Request sets to serve: seeded Poisson arrivals with chosen prompt and output
//! lengths, or a recorded set replayed from JSONL. The same seed gives the same
//! requests on every machine (ChaCha8), so a load run is repeatable.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How long prompts or outputs are.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lengths {
    Fixed(usize),
    /// Uniform over `min..=max`.
    Uniform {
        min: usize,
        max: usize,
    },
}

impl Lengths {
    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        match *self {
            Lengths::Fixed(n) => n,
            Lengths::Uniform { min, max } => rng.random_range(min..=max.max(min)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadSpec {
    /// Mean arrivals per second (a Poisson process); infinite: all arrive at 0.
    pub rate: f64,
    pub count: usize,
    pub prompt: Lengths,
    pub output: Lengths,
    pub seed: u64,
}

/// One request of a workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: u64,
    /// Seconds from the start of the run.
    pub arrival: f64,
    /// The prompt's text, when the set was recorded with one; otherwise the prompt
    /// is `prompt_tokens` tokens of filler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default)]
    pub prompt_tokens: usize,
    pub max_tokens: usize,
}

/// The requests of `spec`, in arrival order. Inter-arrival gaps are exponential
/// with mean 1/rate (inverse transform of a uniform draw).
pub fn generate(spec: &WorkloadSpec) -> Vec<Request> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut t = 0.0;
    (0..spec.count as u64)
        .map(|id| {
            if spec.rate.is_finite() && spec.rate > 0.0 {
                let u: f64 = rng.random();
                t += -(1.0 - u).ln() / spec.rate;
            }
            Request {
                id,
                arrival: t,
                prompt: None,
                prompt_tokens: spec.prompt.sample(&mut rng).max(1),
                max_tokens: spec.output.sample(&mut rng).max(1),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workload line {line}: {message}")]
pub struct WorkloadError {
    pub line: usize,
    pub message: String,
}

/// A recorded request set, one JSON object per line:
/// `{"arrival": 0.25, "prompt": "…", "max_tokens": 64}` or with `"prompt_tokens"`
/// instead of a prompt. Blank lines are skipped; ids are the line order.
pub fn from_jsonl(text: &str) -> Result<Vec<Request>, WorkloadError> {
    let mut out: Vec<Request> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| WorkloadError {
            line: i + 1,
            message,
        };
        let mut r: Request = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        if r.prompt.is_none() && r.prompt_tokens == 0 {
            return Err(err("needs \"prompt\" or \"prompt_tokens\"".into()));
        }
        if r.max_tokens == 0 {
            return Err(err("\"max_tokens\" must be at least 1".into()));
        }
        if !r.arrival.is_finite() || r.arrival < 0.0 {
            return Err(err(
                "\"arrival\" must be seconds from the start, 0 or more".into()
            ));
        }
        if out.last().is_some_and(|p| r.arrival < p.arrival) {
            return Err(err("arrivals must not go back in time".into()));
        }
        r.id = out.len() as u64;
        out.push(r);
    }
    Ok(out)
}
